"""A mutable working copy of one package's state for the length of one ``step``.

The stored record is frozen (its tuples are what gets encoded); building a new record per observation field by
field with ``dataclasses.replace`` would cost more than the decision itself, so handlers mutate a draft and the
core freezes it once at the end, or returns the old record untouched when nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qwatch import events, ids
from qwatch.events.state import (
    MAX_APPLIED,
    MAX_FACTS,
    MAX_RELEASES,
    MAX_REPORTS,
    MAX_SEEN_VERSIONS,
    FactRecord,
    PackageStateRecord,
    ReleaseRecord,
    ReportRecord,
    Sighting,
    StatusPoint,
)
from qwatch.frozen import fast_init

SOURCE = "processor"
"""The ``source`` the processor puts in its own ids and watch requests."""

OUTCOME_RANK = {"ignored": 0, "duplicate": 1, "stale": 2, "evidence": 3, "applied": 4, "watch": 5, "transition": 6}
"""Observation outcomes (the ``outcome`` metric label); a step reports the strongest that applied."""


@fast_init
@dataclass(frozen=True, slots=True)
class Pending:
    """A transition decided during a step; built into a Transition once the step's final state is known."""

    kind: str
    event_id: str
    evidence: tuple[Sighting, ...]
    upstream_time: int | None
    summary: str
    before_status: str | None = None
    after_status: str | None = None
    version: str | None = None
    report: ReportRecord | None = None
    severity: str = ""
    """Set where the severity rests on facts (REPORTED, REPORT_ESCALATED); otherwise the kind's fixed severity."""


JOURNAL = "journal"
PAGES = "pages"
AUTHORITIES = (JOURNAL, PAGES)
"""Who decides the changes PyPI journals (README, S3): its journal rows, or (without a journal) the Simple pages."""


def applied_key(obs: events.Observation) -> str:
    """Redelivery key: the same observation record, not merely the same content (a page can legitimately recur)."""
    return f"{obs.event_id[:16]}:{obs.observed_at}"


def snapshot(
    status: str,
    last_serial: int | None,
    releases: Iterable[ReleaseRecord],
    reports: Iterable[ReportRecord],
) -> events.PackageState:
    """The externally visible ``PackageState`` for a transition's before/after (inputs sorted, as stored)."""
    quarantined: list[str] = []
    removed: list[str] = []
    yanked: list[str] = []
    for r in releases:
        if r.quarantined:
            quarantined.append(r.version)
        if r.removed:
            removed.append(r.version)
        if r.yanked:
            yanked.append(r.version)
    live: list[str] = []
    withdrawn: list[str] = []
    for rep in reports:
        (live if rep.status == "live" else withdrawn).append(rep.report_id)
    return events.PackageState(
        status, last_serial, tuple(quarantined), tuple(removed), tuple(yanked), tuple(live), tuple(withdrawn)
    )


class Draft:
    """Working copy of a PackageStateRecord plus what the step produced so far."""

    __slots__ = (
        "base", "known", "obs", "now_ms", "key", "status", "last_serial", "horizon", "points", "releases",
        "visible_versions", "visible_serial", "reports", "facts", "pending", "watch", "outcome", "changed",
        "authority", "journal_serial", "journal_action", "seen_versions", "provenance_since", "provenance",
    )  # fmt: skip

    def __init__(
        self,
        base: PackageStateRecord,
        known: bool,
        obs: events.Observation,
        now_ms: int,
        key: str,
        authority: str = JOURNAL,
    ) -> None:
        self.base = base
        self.authority = authority
        self.journal_serial = base.journal_serial
        self.journal_action = base.journal_action
        self.seen_versions = base.seen_versions
        self.provenance_since = base.provenance_since
        self.provenance = base.provenance
        self.key = key
        self.known = known
        self.obs = obs
        self.now_ms = now_ms
        self.status = base.status
        self.last_serial = base.last_serial
        self.horizon = base.horizon
        self.points: tuple[StatusPoint, ...] = base.points
        self.releases: dict[str, ReleaseRecord] | None = None
        self.visible_versions = base.visible_versions
        self.visible_serial = base.visible_serial
        self.reports: dict[str, ReportRecord] | None = None
        self.facts: list[FactRecord] | None = None
        self.pending: list[Pending] = []
        self.watch: list[events.WatchRequest] = []
        self.outcome = "ignored"
        self.changed = False

    # --- outcome -------------------------------------------------------------------------------------------
    def note(self, outcome: str) -> None:
        """Record an outcome; the strongest one wins."""
        if OUTCOME_RANK[outcome] > OUTCOME_RANK[self.outcome]:
            self.outcome = outcome
        if outcome in ("applied", "evidence", "transition"):
            self.changed = True

    # --- ids -----------------------------------------------------------------------------------------------
    def transition_id(self, kind: str, *key: object) -> str:
        """Deterministic transition id: package, kind and the upstream fact's natural key, never a clock."""
        return ids.event_id(SOURCE, self.base.ecosystem, self.base.package, kind, *key)

    def emitted(self, event_id: str) -> bool:
        """True if a transition with this id is in the remembered window."""
        return any(f.event_id == event_id for f in self.fact_list())

    # --- serials -------------------------------------------------------------------------------------------
    def see_serial(self, serial: int | None) -> None:
        """Raise last_serial; a change is material (it is part of every snapshot)."""
        if serial is not None and (self.last_serial is None or serial > self.last_serial):
            self.last_serial = serial
            self.changed = True

    def see_journal(self, serial: int) -> bool:
        """Advance the journal high-water mark; False when the row is not newer than one already applied (a replay:
        the journal ingestor emits rows in serial order, so only a redelivery or a rebuild brings an older one)."""
        if self.journal_serial is not None and serial <= self.journal_serial:
            return False
        self.journal_serial = serial
        self.changed = True
        return True

    def see_versions(self, versions: Iterable[str]) -> bool:
        """Remember versions PyPI served; True when one is new (exposure may have changed)."""
        known = self.seen_versions
        have = set(known)
        new = [v for v in versions if v not in have]
        if not new:
            return False
        merged = (*known, *dict.fromkeys(new))
        if len(merged) > MAX_SEEN_VERSIONS:
            merged = merged[len(merged) - MAX_SEEN_VERSIONS :]
        self.seen_versions = merged
        self.changed = True
        return True

    # --- collections (converted lazily: most steps touch none of them) ---------------------------------------
    def release_map(self) -> dict[str, ReleaseRecord]:
        """Releases by version."""
        if self.releases is None:
            self.releases = {r.version: r for r in self.base.releases}
        return self.releases

    def report_map(self) -> dict[str, ReportRecord]:
        """Reports by id."""
        if self.reports is None:
            self.reports = {r.report_id: r for r in self.base.reports}
        return self.reports

    def fact_list(self) -> list[FactRecord]:
        """Remembered transitions, oldest first."""
        if self.facts is None:
            self.facts = list(self.base.facts)
        return self.facts

    def live_reports(self) -> list[ReportRecord]:
        """Reports currently live."""
        return [r for r in self.report_map().values() if r.status == "live"]

    # --- evidence --------------------------------------------------------------------------------------------
    def sighting(self) -> Sighting:
        """The current observation as evidence."""
        return Sighting(self.obs.source, self.obs.event_id, self.obs.observed_at)

    def add_evidence(self, event_ids: Iterable[str], upstream_time: int | None) -> bool:
        """Merge the current observation into remembered facts: first sighting per source, earliest upstream time."""
        wanted = set(event_ids)
        if not wanted:
            return False
        facts = self.fact_list()
        touched = False
        for i, f in enumerate(facts):
            if f.event_id not in wanted:
                continue
            seen = f.seen
            if all(s.source != self.obs.source for s in seen):
                seen = (*seen, self.sighting())
            up = f.upstream_time
            if upstream_time is not None and (up is None or upstream_time < up):
                up = upstream_time
            if seen is not f.seen or up != f.upstream_time:
                facts[i] = FactRecord(f.event_id, f.kind, f.version, f.report_id, up, f.detected_at, seen)
                touched = True
        return touched

    def decide(self, pending: Pending) -> None:
        """Queue a transition and remember it, so a re-derivation in this or a later step is covered."""
        self.pending.append(pending)
        first: dict[str, Sighting] = {}
        for s in pending.evidence:
            first.setdefault(s.source, s)
        report_id = pending.report.report_id if pending.report is not None else None
        fact = FactRecord(
            pending.event_id,
            pending.kind,
            pending.version,
            report_id,
            pending.upstream_time,
            self.now_ms,
            tuple(first.values()),
        )
        self.remember(fact)
        self.note("transition")

    def watch_request(self, reason: str, key: tuple[object, ...], upstream_time: int | None) -> None:
        """Ask the PyPI ingestors to look at this package now; the id rests on the fact that prompted it."""
        eco, pkg = self.base.ecosystem, self.base.package
        eid = ids.event_id(SOURCE, eco, pkg, reason, *key)
        self.watch.append(events.WatchRequest(eid, SOURCE, eco, pkg, self.now_ms, upstream_time, reason, True))
        self.note("watch")
        self.changed = True  # remember the observation, so a replay does not ask again

    # --- freezing --------------------------------------------------------------------------------------------
    def remember(self, fact: FactRecord) -> None:
        """Keep an emitted transition in the bounded window."""
        facts = self.fact_list()
        facts.append(fact)
        if len(facts) > MAX_FACTS:
            del facts[: len(facts) - MAX_FACTS]

    def freeze(self) -> PackageStateRecord:
        """The new state record (the step marked itself changed)."""
        base = self.base
        releases = base.releases
        if self.releases is not None:
            rels = list(self.releases.values())
            if len(rels) > MAX_RELEASES:
                rels.sort(key=lambda r: max(r.quarantine_serial or -1, r.removed_serial or -1, r.yank_serial or -1))
                rels = rels[len(rels) - MAX_RELEASES :]
            releases = tuple(sorted(rels, key=lambda r: r.version))
        reports = base.reports
        if self.reports is not None:
            reps = list(self.reports.values())
            if len(reps) > MAX_REPORTS:
                reps.sort(key=lambda r: (r.status == "live", r.modified_at))
                reps = reps[len(reps) - MAX_REPORTS :]
            reports = tuple(sorted(reps, key=lambda r: r.report_id))
        facts = base.facts if self.facts is None else tuple(self.facts)
        applied = (*base.applied[-(MAX_APPLIED - 1) :], self.key)
        return PackageStateRecord(
            base.ecosystem,
            base.package,
            self.status,
            self.last_serial,
            self.horizon,
            self.points,
            releases,
            self.visible_versions,
            self.visible_serial,
            reports,
            facts,
            applied,
            self.now_ms,
            self.journal_serial,
            self.journal_action,
            self.seen_versions,
            self.provenance_since,
            self.provenance,
        )
