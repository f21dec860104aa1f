"""Simulation tests: the processor core against the reference model, seed by seed (processors/README.md, S1-S7).

* ``test_simulation``: ``QWATCH_SIM_SEEDS`` seeds (default ``CI_SEEDS``), in chunks; a failing chunk prints each
  failure class once, shrunk, with the command that replays its seed, then every failing seed's command.
* ``test_replay``: ``QWATCH_SIM_SEED=N .venv/bin/pytest tests/simulation -k replay`` replays seed N exactly;
  without it, the seeds in ``REGRESSION_SEEDS``.
* The generator keeps PyPI's rules, and the reference model's readings of the spec, on small fixed cases.

The environment is read at import (collection), before the suite's fixture clears QWATCH_* variables.
"""

from __future__ import annotations

import dataclasses
import os
import random

import pytest

from qwatch import events
from qwatch.ids import event_id
from testing.samples import journal, page, report

from . import reference, streams, upstream
from .harness import REPLAY_HINT, Budget, Failure, check_set, dump, minimize, run_seed

CI_SEEDS = 1500
"""Seeds per CI run: about 35 s on the 2-vCPU host (30-40 seeds/s with the default budget); measure before raising."""
CHUNK = 150
SEEDS = int(os.environ.get("QWATCH_SIM_SEEDS", CI_SEEDS))
REPLAY_SEED = os.environ.get("QWATCH_SIM_SEED")

REGRESSION_SEEDS = [
    0,  # S6: report withdrawn before the page showing exposure arrived: final severity depends on arrival order
    5,  # S6: report content {1.2,1.4} -> {9.9} before the page listing 1.2 arrived: REPORTED stays high
    46,  # S3: 404 page, then 'project quarantined': RESTORED emitted (journal authority: only 'create' restores)
    63,  # S3: first-sight quarantined page, then a repeated 'project quarantined' row: no QUARANTINED
    88,  # S3/S4: stale CDN 404 minutes after creation, then 'remove project': REMOVED only if the row comes first
    1939,  # S3: a 404 between two 'project quarantined' rows splits the episode: extra RESTORED and QUARANTINED
    19864,  # S3/S4: 404, then a stale archived page, both before the journal rows: an extra ARCHIVED
    17727,  # reference: a 'create' stamped in the second of a 404's fetch is taken as after it (the README's tie)
    # Failed with the README's earlier OpenSSF conventions (an edit of a withdrawn report, and a move's new
    # package, told as 'modified'); the generator now follows ingestors/openssf/README.md, see test_spec_case.
    16,
    108,
    341,
    922,
    1727,
]
"""Seeds that failed once; they run on every CI pass and are kept after they pass. A seed means the same history
only for the same generator (upstream.py, streams.py) and budget: after changing those, re-pick them (the bench's
``--classes`` lists one seed per failure class)."""


def _report(failures: list[Failure], failing: list[int]) -> str:
    """Each failure class once (set differences first), a few of them shrunk, then every failing seed's command."""
    by_class: dict[str, Failure] = {}
    for f in failures:
        for c in f.classes():
            by_class.setdefault(c, f)
    order = sorted(by_class, key=lambda c: (by_class[c].check != "set", "not live" in c, c))
    lines = [f"{len(failing)} failing seeds, {len(by_class)} failure classes:"]
    lines += [f"  {c}   (seed {by_class[c].seed}: {REPLAY_HINT.format(seed=by_class[c].seed)})" for c in order]
    shown: list[Failure] = []
    for c in order:
        f = by_class[c]
        if len(shown) < 4 and all(f is not g for g in shown):
            shown.append(f)
            lines += ["", minimize(f, 1.5).render()]
    lines += ["", "replay commands:"] + [f"  {REPLAY_HINT.format(seed=s)}" for s in failing]
    return "\n".join(lines)


@pytest.mark.parametrize("first", range(0, SEEDS, CHUNK), ids=lambda f: f"seeds_{f}_{f + CHUNK - 1}")
def test_simulation(first: int) -> None:
    failures: list[Failure] = []
    failing: list[int] = []
    for seed in range(first, min(first + CHUNK, SEEDS)):
        result = run_seed(seed, Budget())
        if not result.ok:
            failing.append(seed)
            failures += result.failures
    if failing:
        pytest.fail(_report(failures, failing), pytrace=False)


@pytest.mark.parametrize("seed", [int(REPLAY_SEED)] if REPLAY_SEED else REGRESSION_SEEDS, ids=lambda s: f"seed_{s}")
def test_replay(seed: int) -> None:
    result = run_seed(seed, Budget(shrink=True))
    if not result.ok:
        pytest.fail("\n\n".join(f.render() for f in result.failures), pytrace=False)


# -- the generator keeps PyPI's rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_generator_follows_pypi_rules(seed: int) -> None:
    tl = upstream.generate(seed)
    serials = [r.serial for r in tl.rows]
    assert serials == sorted(serials) and len(set(serials)) == len(serials)
    for package, views in tl.views.items():
        rows = [r for r in tl.rows if r.package == package]
        for before, v in zip(views, views[1:], strict=False):
            last = [r for r in rows if r.ts <= v.t]
            if v.status == upstream.ABSENT:
                assert v.serial is None and v.json is None and not v.versions
                continue
            assert v.serial == last[-1].serial, "a page shows the project's last journal row"
            if v.status == upstream.QUARANTINED:
                assert not v.versions and v.json is None
            if v.status == upstream.ARCHIVED and before.status != upstream.ARCHIVED:
                assert before.status == upstream.ACTIVE and before.serial == v.serial, "archive: from active, no row"
            if before.status == upstream.ARCHIVED and v.status == upstream.ACTIVE and before.serial != v.serial:
                pytest.fail("unarchive bumped the serial")
        for r in rows:
            if r.action == "project quarantine cleared":
                assert tl.view_at(package, r.ts).status == upstream.ACTIVE, "a clearance comes back active"
    for ps in streams.build(tl).values():
        distinct = set(ps.all())
        assert len({o.event_id for o in distinct}) == len(distinct), "one id per distinct observation"
        for source, obs in ps.sources.items():
            firsts = list(dict.fromkeys(obs))  # a redelivery repeats a record later; the first copies are in order
            assert [o.observed_at for o in firsts] == sorted(o.observed_at for o in firsts), source
            if source == streams.JOURNAL:
                assert [o.serial for o in firsts if isinstance(o, events.JournalEntryObserved)] == sorted(
                    o.serial for o in firsts if isinstance(o, events.JournalEntryObserved)
                )


# -- the reference's readings of the spec, on small cases ---------------------------------------------------------

P = "demo"
T = upstream.T0


def _ids(model: reference.Model) -> set[tuple[str, tuple[object, ...]]]:
    return {(e.kind, e.key) for e in model.transitions.values()}


def test_reference_is_a_function_of_the_set() -> None:
    tl = upstream.generate(7)
    for ps in streams.build(tl).values():
        obs = ps.all()
        if not obs:
            continue
        shuffled = obs[:]
        random.Random(7).shuffle(shuffled)
        for authority in (reference.JOURNAL, reference.PAGES):
            a, b = reference.expect(obs, authority), reference.expect(shuffled, authority)
            assert (a.idents(), a.severity) == (b.idents(), b.severity)


def test_reference_journal_rows_decide_and_repeats_are_one_episode() -> None:
    obs: list[events.Observation] = [
        page(P, "active", 10, T + 1),
        journal(P, 11, "project quarantined"),
        journal(P, 12, "project quarantined"),
        page(P, "quarantined", 12, T + 20_000),
        journal(P, 13, "project quarantine cleared"),
        journal(P, 14, "remove project"),
        page(P, "absent", None, T + 30_000),
        journal(P, 15, "create"),
        journal(P, 16, "yank release", "1.0"),
    ]
    assert _ids(reference.expect(obs, "journal")) == {
        ("QUARANTINED", (11,)),
        ("CLEARED", (13,)),
        ("REMOVED", (14,)),
        ("RESTORED", (15,)),
        ("YANKED", ("1.0", 16)),
    }
    expected_id = event_id("processor", "PyPI", P, "QUARANTINED", 11)
    assert expected_id in reference.expect(obs, "journal").transitions


def test_reference_archive_and_unarchive_from_pages() -> None:
    obs: list[events.Observation] = [
        journal(P, 10, "create"),
        page(P, "active", 10, T + 100_000),
        page(P, "archived", 10, T + 200_000),
        page(P, "active", 10, T + 300_000),  # same serial: UNARCHIVED
        page(P, "archived", 10, T + 400_000),
        page(P, "active", 12, T + 500_000),  # higher serial: left to the rows (journal authority)
    ]
    assert _ids(reference.expect(obs, "journal")) == {
        ("ARCHIVED", (10, T + 200_000)),
        ("UNARCHIVED", (10, T + 300_000)),
        ("ARCHIVED", (10, T + 400_000)),
    }
    assert ("UNARCHIVED", (12, T + 500_000)) in _ids(reference.expect(obs, "pages"))


def test_reference_pages_authority() -> None:
    obs: list[events.Observation] = [
        page(P, "archived", 10, T + 100_000),  # first sight: nothing
        page(P, "quarantined", 11, T + 200_000),
        page(P, "active", 12, T + 300_000),  # never CLEARED from pages
        page(P, "absent", None, T + 400_000),  # anchor 12
        page(P, "absent", None, T + 450_000),
        page(P, "quarantined", 20, T + 500_000),
    ]
    assert _ids(reference.expect(obs, "pages")) == {
        ("QUARANTINED", (11,)),
        ("REMOVED", (12,)),
        ("RESTORED", ("after", 12)),
        ("QUARANTINED", (20,)),
    }


def test_reference_reports_and_exposure() -> None:
    def rep(change: str, day: int, affected: tuple[str, ...] = ("1.0",)) -> events.ReportObserved:
        return report(P, "MAL-1", change, f"2026-01-{day:02d}T00:00:00Z", f"c{day}", T + day * 86_400_000, affected)

    withdrawn_edit = dataclasses.replace(rep("modified", 4), withdrawn="2026-01-04T00:00:00Z")
    obs: list[events.Observation] = [
        rep("existing", 1),  # snapshot: silent
        rep("modified", 2, ("1.0", "2.0")),  # live: versions changed
        rep("withdrawn", 3),
        withdrawn_edit,  # never revives
        rep("reinstated", 5),
        page(P, "active", 10, T, versions=("2.0",)),
    ]
    model = reference.expect(obs, "journal")
    assert _ids(model) == {
        ("REPORT_UPDATED", ("MAL-1", "2026-01-02T00:00:00Z")),
        ("REPORT_WITHDRAWN", ("MAL-1", "2026-01-03T00:00:00Z")),
        ("REPORTED", ("MAL-1", "2026-01-05T00:00:00Z")),
    }
    assert model.severity == {"MAL-1": "critical"}  # 2.0 was affected while live, and was served


# -- small spec cases, core against reference, in every interleaving ------------------------------------------------


def _merges(streams_: list[list[events.Observation]]) -> list[list[events.Observation]]:
    """Every interleaving that keeps each stream's order (small inputs only)."""
    live = [st for st in streams_ if st]
    if not live:
        return [[]]
    out: list[list[events.Observation]] = []
    for i, st in enumerate(live):
        rest = live[:i] + [st[1:]] + live[i + 1 :]
        out += [[st[0], *tail] for tail in _merges(rest)]
    return out


def _withdrawn(o: events.ReportObserved) -> events.ReportObserved:
    return dataclasses.replace(o, withdrawn=o.modified, path=o.path.replace("osv/malicious/", "osv/withdrawn/"))


SPEC_CASES: dict[str, tuple[str, list[list[events.Observation]]]] = {
    # S5: "modified never revives a withdrawn report", also when this package never knew it (an edit of a
    # withdrawn report as the README's earlier ingestor conventions told it, still on the observations topic)
    "s5-withdrawn-edit-unknown-report": (
        "journal",
        [[_withdrawn(report(P, "MAL-9", "modified", "2026-01-02T00:00:00Z", "c1", T, ("1.0",)))]],
    ),
    # S3: the journal's 'remove project' is one change with one id whatever a page showed first (here a CDN copy
    # older than the project, fetched before the removal)
    "s3-404-then-remove-row": (
        "journal",
        [
            [journal(P, 100, "create", ts=T), journal(P, 200, "remove project", ts=T + 3_600_000)],
            [page(P, "absent", None, T + 60_000)],
        ],
    ),
    # S3: with the journal as authority only 'create' restores; a 404 page before 'project quarantined' does not
    "s3-404-then-quarantine-row": (
        "journal",
        [[journal(P, 300, "project quarantined", ts=T + 7_200_000)], [page(P, "absent", None, T + 60_000)]],
    ),
}


@pytest.mark.parametrize("name", sorted(SPEC_CASES))
def test_spec_case(name: str) -> None:
    authority, parts = SPEC_CASES[name]
    problems = []
    for seq in _merges(parts):
        found = check_set(seq, authority)
        if found is not None:
            problems.append("\n".join(["order:", *dump(seq), found[1]]))
    if problems:
        head = f"{name}: {len(problems)} of {len(_merges(parts))} orders differ from the spec"
        pytest.fail("\n\n".join([head, *problems]), pytrace=False)
