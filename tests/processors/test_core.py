"""Table-driven tests of the processor's pure core: plain observations in, transitions and watch requests out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from processors.core import StepResult, step
from qwatch import events
from qwatch.events import kinds
from qwatch.events.codec import Codec
from qwatch.events.state import MAX_RUNS, PackageStateRecord
from testing.samples import T0, index, journal, json_api, page, provenance, report

P = "demo"
NOW = T0 + 3_600_000
MIN = 60_000
DAY = 86_400_000


def J(serial: int, action: str, version: str | None = None) -> events.JournalEntryObserved:  # noqa: N802
    return journal(P, serial, action, version)


def page_(status: str, serial: int | None, minute: int, **kw: object) -> events.ProjectStatusObserved:
    return page(P, status, serial, T0 + minute * MIN, **kw)  # type: ignore[arg-type]


ProvRelease = tuple[str, int, Sequence[tuple[str, str | None, str]]]


def prov(*releases: ProvRelease, minute: int = 0) -> events.ProvenanceObserved:
    """Provenance snapshot of ``demo``: (version, upload minute, files)."""
    return provenance(P, [(v, T0 + m * MIN, files) for v, m, files in releases], T0 + minute * MIN)


ATTESTED_1_0 = ("1.0", 1, [("demo-1.0.tar.gz", "org/demo", "ok")])


def rep(change: str, day: int, affected: Sequence[str] = ("1.0",), rid: str = "MAL-2026-1") -> events.ReportObserved:
    stamp = f"2026-01-{day + 2:02d}T00:00:00Z"
    return report(P, rid, change, stamp, f"c{day}{change}", T0 + day * DAY, affected)


@dataclass
class Run:
    """The outputs of feeding observations one by one, starting from ``state``."""

    state: PackageStateRecord | None = None
    authority: str = "journal"
    transitions: list[events.Transition] = field(default_factory=list)
    watch: list[events.WatchRequest] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    def feed(self, observations: Sequence[events.Observation]) -> Run:
        for obs in observations:
            result: StepResult = step(self.state, obs, NOW, self.authority)
            self.state = result.state
            self.transitions.extend(result.transitions)
            self.watch.extend(result.watch_requests)
            self.outcomes.append(result.outcome)
        return self

    @property
    def labels(self) -> list[str]:
        out = []
        for t in self.transitions:
            extra = t.version or t.report_id
            out.append(f"{t.kind}:{t.severity}" + (f":{extra}" if extra else ""))
        return out


def run(observations: Sequence[events.Observation], authority: str = "journal") -> Run:
    return Run(authority=authority).feed(observations)


ACTIVE3 = page_("active", 31000002, 0)

CASES: list[tuple[str, list[events.Observation], list[str], list[str], str]] = [
    # (name, observations, expected transitions "KIND:severity[:version|report]", watch reasons, final status)
    (
        "journal first, page confirms",
        [ACTIVE3, J(31000003, "project quarantined"), page_("quarantined", 31000003, 5)],
        ["QUARANTINED:high"],
        [],
        "quarantined",
    ),
    (
        "page first, journal confirms",
        [ACTIVE3, page_("quarantined", 31000003, 5), J(31000003, "project quarantined")],
        ["QUARANTINED:high"],
        [],
        "quarantined",
    ),
    (
        "duplicates of every source",
        [
            ACTIVE3,
            J(31000003, "project quarantined"),
            J(31000003, "project quarantined"),
            page_("quarantined", 31000003, 5),
            page_("quarantined", 31000003, 5),
            page_("quarantined", 31000003, 9),
        ],
        ["QUARANTINED:high"],
        [],
        "quarantined",
    ),
    (
        "stale CDN drop from the root index, never confirmed",
        [ACTIVE3, index(P, False, T0 + 5 * MIN), page_("active", 31000002, 10)],
        [],
        ["dropped-from-root-index"],
        "active",
    ),
    (
        "drop from the root index, then the page: the state follows, the journal row decides",
        [ACTIVE3, index(P, False, T0 + 5 * MIN), page_("quarantined", 31000003, 6)],
        [],
        ["dropped-from-root-index"],
        "quarantined",
    ),
    (
        "quarantine, clear, quarantine again",
        [
            ACTIVE3,
            J(31000003, "project quarantined"),
            J(31000007, "project quarantine cleared"),
            J(31000009, "project quarantined"),
        ],
        ["QUARANTINED:high", "CLEARED:low", "QUARANTINED:high"],
        [],
        "quarantined",
    ),
    (
        "quarantine, remove, re-register (journal create)",
        [ACTIVE3, J(31000003, "project quarantined"), J(31000010, "remove project"), J(31000020, "create")],
        ["QUARANTINED:high", "REMOVED:medium", "RESTORED:high"],
        [],
        "active",
    ),
    (
        "archive, quarantine, clear: back active, not archived",
        [
            ACTIVE3,
            page_("archived", 31000002, 5),
            J(31000003, "project quarantined"),
            J(31000004, "project quarantine cleared"),
            page_("active", 31000004, 20),
        ],
        ["ARCHIVED:low", "QUARANTINED:high", "CLEARED:low"],
        [],
        "active",
    ),
    (
        "archive and unarchive at one serial",
        [ACTIVE3, page_("archived", 31000002, 5), page_("active", 31000002, 10), page_("archived", 31000002, 15)],
        ["ARCHIVED:low", "UNARCHIVED:low", "ARCHIVED:low"],
        [],
        "archived",
    ),
    (
        "a quick quarantine and clear learned after a newer page",
        [
            ACTIVE3,
            page_("active", 31000009, 30),
            J(31000003, "project quarantined"),
            J(31000004, "project quarantine cleared"),
        ],
        ["QUARANTINED:high", "CLEARED:low"],
        [],
        "active",
    ),
    (
        "a clearance whose quarantine row was never seen",
        [ACTIVE3, J(31000007, "project quarantine cleared")],
        ["CLEARED:low"],
        [],
        "active",
    ),
    (
        "stale page (older fetch, lower serial) after a quarantine changes nothing",
        [ACTIVE3, J(31000003, "project quarantined"), page_("active", 31000002, 30)],
        ["QUARANTINED:high"],
        [],
        "quarantined",
    ),
    (
        "404 first, then the journal row: one REMOVED",
        [ACTIVE3, page_("absent", None, 10), J(31000005, "remove project")],
        ["REMOVED:medium"],
        [],
        "removed",
    ),
    (
        "a first page is a baseline, whatever it shows (S2)",
        [page_("quarantined", 31000003, 0)],
        [],
        [],
        "quarantined",
    ),
    (
        "a first 404 is a name not on PyPI: no transition",
        [page_("absent", None, 0)],
        [],
        [],
        "removed",
    ),
    (
        "a name reported, absent, then registered and served: the report escalates once",
        [
            rep("added", 0),
            page_("absent", None, 10),
            journal(P, 31000050, "create", ts=T0 + 20 * MIN),
            page_("active", 31000051, 30),
            page_("active", 31000052, 40, versions=("1.0", "1.1")),
        ],
        ["REPORTED:high:MAL-2026-1", "RESTORED:high", "REPORT_ESCALATED:critical:MAL-2026-1"],
        ["new-report"],
        "active",
    ),
    (
        "report added then withdrawn",
        [ACTIVE3, rep("added", 0), rep("withdrawn", 1)],
        ["REPORTED:critical:MAL-2026-1", "REPORT_WITHDRAWN:low:MAL-2026-1"],
        ["new-report"],
        "active",
    ),
    (
        "report withdrawn then reinstated: REPORTED again",
        [ACTIVE3, rep("added", 0), rep("withdrawn", 1), rep("reinstated", 2)],
        ["REPORTED:critical:MAL-2026-1", "REPORT_WITHDRAWN:low:MAL-2026-1", "REPORTED:critical:MAL-2026-1"],
        ["new-report", "new-report"],
        "active",
    ),
    (
        "report modified: only a change of affected versions is news",
        [ACTIVE3, rep("added", 0), rep("modified", 1), rep("modified", 2, ("1.0", "2.0"))],
        ["REPORTED:critical:MAL-2026-1", "REPORT_UPDATED:medium:MAL-2026-1"],
        ["new-report"],
        "active",
    ),
    (
        "report on a package whose affected versions are not installable is high, not critical",
        [ACTIVE3, rep("added", 0, ("0.9",))],
        ["REPORTED:high:MAL-2026-1"],
        ["new-report"],
        "active",
    ),
    (
        "report on a package never seen served is high",
        [page_("quarantined", 31000003, 0), rep("added", 0)],
        ["REPORTED:high:MAL-2026-1"],
        ["new-report"],
        "quarantined",
    ),
    (
        "exposure is a fact about the past: served, quarantined, then reported is critical",
        [ACTIVE3, J(31000004, "project quarantined"), rep("added", 0)],
        ["QUARANTINED:high", "REPORTED:critical:MAL-2026-1"],
        ["new-report"],
        "quarantined",
    ),
    (
        "reported first, served later: one escalation, not one per page",
        [rep("added", 0), ACTIVE3, page_("active", 31000004, 9, versions=("1.0", "1.1"))],
        ["REPORTED:high:MAL-2026-1", "REPORT_ESCALATED:critical:MAL-2026-1"],
        ["new-report"],
        "active",
    ),
    (
        "a snapshot's report is a baseline; served later, it stays silent",
        [report(P, "MAL-2026-1", "existing", "2026-01-02T00:00:00Z", "c0", T0), ACTIVE3],
        [],
        [],
        "active",
    ),
    (
        "an edit of a withdrawn report never revives it; a reinstatement does",
        [ACTIVE3, rep("added", 0), rep("withdrawn", 1), rep("modified", 2), rep("reinstated", 3)],
        ["REPORTED:critical:MAL-2026-1", "REPORT_WITHDRAWN:low:MAL-2026-1", "REPORTED:critical:MAL-2026-1"],
        ["new-report", "new-report"],
        "active",
    ),
    (
        "a report moved to another package is withdrawn here",
        [ACTIVE3, rep("added", 0), rep("moved", 1)],
        ["REPORTED:critical:MAL-2026-1", "REPORT_WITHDRAWN:low:MAL-2026-1"],
        ["new-report"],
        "active",
    ),
    (
        "a stale report change (older modified) is ignored",
        [ACTIVE3, rep("added", 0), rep("withdrawn", 2), rep("modified", 1)],
        ["REPORTED:critical:MAL-2026-1", "REPORT_WITHDRAWN:low:MAL-2026-1"],
        ["new-report"],
        "active",
    ),
    (
        "npm report: no PyPI watch request",
        [report("left-pad2", "MAL-2026-9", "added", "2026-01-02T00:00:00Z", "c1", T0, ecosystem="npm")],
        ["REPORTED:high:MAL-2026-9"],
        [],
        "unknown",
    ),
    (
        "release-level kinds from the journal",
        [
            ACTIVE3,
            J(31000003, "release quarantined", "1.0"),
            J(31000004, "release quarantine cleared", "1.0"),
            J(31000005, "remove release", "0.9"),
            J(31000006, "yank release", "0.8"),
            J(31000007, "unyank release", "0.8"),
        ],
        ["RELEASE_QUARANTINED:high:1.0", "RELEASE_CLEARED:low:1.0", "RELEASE_REMOVED:medium:0.9", "YANKED:low:0.8"],
        [],
        "active",
    ),
    (
        "yank seen on the page first, then the journal row at the same serial",
        [
            ACTIVE3,
            page_("active", 31000004, 5, versions=("1.0", "1.1"), yanked=("1.1",)),
            J(31000004, "yank release", "1.1"),
        ],
        ["YANKED:low:1.1"],
        [],
        "active",
    ),
    (
        "a yank is low whatever the reports say (the report carries the risk)",
        [ACTIVE3, rep("added", 0, ("1.1",)), J(31000004, "yank release", "1.1")],
        ["REPORTED:high:MAL-2026-1", "YANKED:low:1.1"],
        ["new-report"],
        "active",
    ),
    (
        "JSON yank flags are state, not news: only the journal's row is a yank",
        [
            ACTIVE3,
            json_api(P, 200, 31000004, T0 + 5 * MIN, [("1.0", True)]),
            page_("active", 31000005, 10, versions=("1.0",)),
        ],
        [],
        [],
        "active",
    ),
    (
        "JSON 404 alone is ambiguous: a watch request, no transition",
        [ACTIVE3, json_api(P, 404, None, T0 + 5 * MIN)],
        [],
        ["json-404"],
        "active",
    ),
    (
        "JSON 404 of a quarantined project is already explained",
        [page_("quarantined", 31000003, 0), json_api(P, 404, None, T0 + 5 * MIN)],
        [],
        [],
        "quarantined",
    ),
    (
        "JSON 200 newer than a quarantine asks for a look",
        [page_("quarantined", 31000003, 0), json_api(P, 200, 31000009, T0 + 5 * MIN, [("1.0", False)])],
        [],
        ["json-contradicts-state"],
        "quarantined",
    ),
    (
        "back in the root index while removed asks for a look",
        [ACTIVE3, page_("absent", None, 5), index(P, True, T0 + 10 * MIN, 31000030)],
        [],
        ["reappeared-in-root-index"],
        "removed",
    ),
    (
        "a cleared quarantine is low; the live report keeps its own severity",
        [
            ACTIVE3,
            rep("added", 0, ("0.1",)),
            J(31000003, "project quarantined"),
            J(31000004, "project quarantine cleared"),
        ],
        ["REPORTED:high:MAL-2026-1", "QUARANTINED:high", "CLEARED:low"],
        ["new-report"],
        "active",
    ),
]

PAGES_CASES: list[tuple[str, list[events.Observation], list[str], list[str], str]] = [
    # Without the journal (authority "pages"), the Simple pages' timeline decides the project status (S3).
    (
        "drop from the root index confirmed by the page",
        [ACTIVE3, index(P, False, T0 + 5 * MIN), page_("quarantined", 31000003, 6)],
        ["QUARANTINED:high"],
        ["dropped-from-root-index"],
        "quarantined",
    ),
    (
        "quarantine, 404, page active again with a higher serial",
        [ACTIVE3, page_("quarantined", 31000003, 5), page_("absent", None, 10), page_("active", 31000020, 20)],
        ["QUARANTINED:high", "REMOVED:medium", "RESTORED:high"],
        [],
        "active",
    ),
    (
        "a page shows a quarantined project active again: no CLEARED (a removal and re-registration look alike)",
        [ACTIVE3, page_("quarantined", 31000003, 5), page_("active", 31000004, 10)],
        ["QUARANTINED:high"],
        [],
        "active",
    ),
    (
        "a first page is a baseline here too",
        [page_("archived", 31000003, 0), page_("absent", None, 5)],
        ["REMOVED:medium"],
        [],
        "removed",
    ),
    (
        "yanks never come from pages, even without the journal",
        [ACTIVE3, page_("active", 31000004, 5, versions=("1.0", "1.1"), yanked=("1.1",))],
        [],
        [],
        "active",
    ),
]


CASES += [
    (
        "provenance: the next release has no attestation",
        [prov(ATTESTED_1_0), prov(ATTESTED_1_0, ("1.1", 10, [("demo-1.1.tar.gz", None, "ok")]), minute=11)],
        ["PROVENANCE_LOST:high:1.1"],
        [],
        "unknown",
    ),
    (
        "provenance: the next release is attested by another repository",
        [prov(ATTESTED_1_0), prov(ATTESTED_1_0, ("1.1", 10, [("demo-1.1.tar.gz", "evil/fork", "ok")]), minute=11)],
        ["PROVENANCE_CHANGED:high:1.1"],
        [],
        "unknown",
    ),
    (
        "provenance: the next release's attestation names another digest",
        [prov(ATTESTED_1_0), prov(ATTESTED_1_0, ("1.1", 10, [("demo-1.1.tar.gz", "org/demo", "digest")]), minute=11)],
        ["PROVENANCE_INVALID:critical:1.1"],
        [],
        "unknown",
    ),
    (
        "provenance: first sight is a baseline, even of a drift",
        [prov(ATTESTED_1_0, ("1.1", 10, [("demo-1.1.tar.gz", None, "ok")]))],
        [],
        [],
        "unknown",
    ),
]


@pytest.mark.parametrize(("name", "observations", "expected", "watch", "final"), CASES, ids=[c[0] for c in CASES])
def test_table(
    name: str, observations: list[events.Observation], expected: list[str], watch: list[str], final: str
) -> None:
    r = run(observations)
    assert r.labels == expected
    assert [w.reason for w in r.watch] == watch
    assert r.state is not None and r.state.status == final
    assert all(w.urgent and w.source == "processor" for w in r.watch)


@pytest.mark.parametrize(
    ("name", "observations", "expected", "watch", "final"), PAGES_CASES, ids=[c[0] for c in PAGES_CASES]
)
def test_pages_authority_table(
    name: str, observations: list[events.Observation], expected: list[str], watch: list[str], final: str
) -> None:
    r = run(observations, "pages")
    assert r.labels == expected
    assert [w.reason for w in r.watch] == watch
    assert r.state is not None and r.state.status == final


def test_every_kind_is_covered_by_the_table() -> None:
    seen = {label.split(":")[0] for c in CASES for label in run(c[1]).labels}
    assert seen == set(kinds.ALL_KINDS)


def test_journal_first_and_page_first_give_the_same_transition_id() -> None:
    a = run([ACTIVE3, J(31000003, "project quarantined"), page_("quarantined", 31000003, 5)])
    b = run([ACTIVE3, page_("quarantined", 31000003, 5), J(31000003, "project quarantined")])
    assert [t.event_id for t in a.transitions] == [t.event_id for t in b.transitions]
    # The row decides in both orders (S3), so both carry the journal timestamp ...
    assert a.transitions[0].upstream_time == b.transitions[0].upstream_time == T0 + 3_000
    # ... and page first, the page that came first is part of the evidence.
    assert [e.source for e in b.transitions[0].evidence] == ["pypi-journal", "pypi-simple"]
    assert b.state is not None
    fact = next(f for f in b.state.facts if f.event_id == b.transitions[0].event_id)
    assert {s.source for s in fact.seen} == {"pypi-simple", "pypi-journal"}
    assert fact.upstream_time == T0 + 3_000


def test_transition_envelope() -> None:
    r = run([ACTIVE3, J(31000003, "project quarantined")])
    (t,) = r.transitions
    assert t.before is not None and t.before.status == "active" and t.after.status == "quarantined"
    assert t.after.last_serial == 31000003
    assert t.detected_at == NOW and t.upstream_time == T0 + 3_000
    assert [e.source for e in t.evidence] == ["pypi-journal"]
    assert "quarantined demo" in t.summary and "31000003" in t.summary
    first = run([J(31000003, "project quarantined")]).transitions[0]
    assert first.before is None  # the package was unknown: a journal row is news even then (S2)


def test_event_ids_do_not_depend_on_the_clock() -> None:
    obs = [ACTIVE3, J(31000003, "project quarantined"), rep("added", 0)]
    a = [t.event_id for t in run(obs).transitions]
    later = Run()
    for o in obs:
        result = step(later.state, o, NOW + 99 * DAY)
        later.state = result.state
        later.transitions.extend(result.transitions)
    assert a == [t.event_id for t in later.transitions]


HISTORY = [
    ACTIVE3,
    rep("added", 0),
    page_("archived", 31000002, 5),
    J(31000003, "project quarantined"),
    page_("quarantined", 31000003, 6),
    J(31000004, "release quarantined", "1.0"),
    J(31000005, "project quarantine cleared"),
    page_("active", 31000005, 20, versions=("0.9",)),
    J(31000006, "yank release", "1.0"),
    rep("withdrawn", 1),
    J(31000010, "remove project"),
    page_("absent", None, 40),
    journal(P, 31000020, "create", ts=T0 + 50 * MIN),
    page_("active", 31000020, 60),
]


def test_replay_of_the_whole_history_emits_nothing() -> None:
    r = run(HISTORY)
    assert [t.kind for t in r.transitions] == [
        "REPORTED", "ARCHIVED", "QUARANTINED", "RELEASE_QUARANTINED", "CLEARED", "YANKED", "REPORT_WITHDRAWN",
        "REMOVED", "RESTORED",
    ]  # fmt: skip
    again = Run(state=r.state).feed(HISTORY)
    assert again.transitions == [] and again.watch == []
    assert set(again.outcomes) == {"duplicate"}


def test_reingested_history_emits_nothing() -> None:
    """The same upstream facts observed again later (an ingestor restarted from an old cursor)."""
    r = run(HISTORY)

    def later(o: events.Observation) -> events.Observation:
        from dataclasses import replace

        return replace(o, observed_at=o.observed_at + DAY)

    journal_and_reports = [later(o) for o in HISTORY if not isinstance(o, events.ProjectStatusObserved)]
    again = Run(state=r.state).feed(journal_and_reports)
    assert again.transitions == []


def test_state_round_trips_through_the_codec() -> None:
    codec = Codec()
    r = run(HISTORY)
    assert r.state is not None
    assert codec.decode(codec.encode(r.state)) == r.state
    assert codec.from_json_dict(codec.to_json_dict(r.state)) == r.state
    for t in r.transitions:
        assert codec.decode(codec.encode(t)) == t


def test_state_stays_bounded() -> None:
    obs: list[events.Observation] = [ACTIVE3]
    serial = 31000010
    for i in range(4 * MAX_RUNS):
        obs.append(J(serial, "project quarantined"))
        obs.append(J(serial + 1, "project quarantine cleared"))
        obs.append(J(serial + 2, "yank release", f"0.{i}"))
        serial += 3
    r = run(obs)
    assert len(r.transitions) == 4 * MAX_RUNS * 3
    assert r.state is not None and len(r.state.points) <= 3 * MAX_RUNS and len(r.state.applied) <= 24
    # A fact behind the horizon is stale: it can never re-emit.
    old = run([]).feed([])
    old.state = r.state
    old.feed([J(31000010, "project quarantined"), J(31000011, "project quarantine cleared")])
    assert old.transitions == [] and old.outcomes == ["duplicate", "duplicate"]


def test_observation_for_another_package_is_a_bug() -> None:
    r = run([ACTIVE3])
    with pytest.raises(ValueError, match="another|given an observation"):
        step(r.state, journal("other", 5, "create"), NOW)


def test_unknown_package_with_an_uninformative_row_keeps_no_state() -> None:
    result = step(None, J(31000003, "new release", "1.0"), NOW)
    assert result.state is None and result.outcome == "ignored"
