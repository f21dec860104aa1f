"""The processor's per-package state, as stored (Avro, compacted ``qwatch.state.v1``) and as the core sees it.

Frozen dataclasses mirrored by ``schemas/PackageStateRecord.avsc``. The record is everything the pure core needs
to decide the next transition for one ``ecosystem:package`` and nothing else, so restoring it from the compacted
topic (or ``--state-dir``) and replaying the same observations gives the same output. Every collection is bounded
(see the ``MAX_*`` constants) so one noisy package cannot grow a record without limit.

This module imports nothing from ``qwatch`` but ``qwatch.frozen``, which imports nothing itself: ``qwatch.events``
imports this one to register the record type, and a cycle would make the import order matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from qwatch.frozen import fast_init

MAX_RUNS = 16
"""Status runs (episodes) kept per package; older ones move behind the horizon and their facts become stale."""
MAX_POINTS = 32
"""Status points kept per package (re-fetches of an unchanged page add points; the ingestors rarely emit them)."""
MAX_FACTS = 32
"""Emitted transitions remembered with their merged evidence (the dedup window for re-derived transitions)."""
MAX_APPLIED = 24
"""Recent observation keys kept to recognize exact redeliveries cheaply."""
MAX_REPORTS = 16
"""Reports kept per package; withdrawn ones are evicted first."""
MAX_RELEASES = 256
"""Per-release records kept; the ones changed longest ago are evicted first."""
MAX_PROVENANCE = 16
"""Releases whose provenance is kept; the oldest uploads go first (drift is judged on the recent ones)."""
MAX_SEEN_VERSIONS = 512
"""Versions remembered as once served; past this the oldest-listed go (exposure then rests on newer versions)."""

UNKNOWN = "unknown"
ACTIVE = "active"
ARCHIVED = "archived"
QUARANTINED = "quarantined"
REMOVED = "removed"

JOURNAL_RANK = 0
"""Point ranks: at one serial, a journal row comes first (it created the serial), then pages fetched later."""
PAGE_RANK = 1
FLOATING_RANK = 2
"""A page without a serial (a 404 has none): anchored after the newest point that predates it, re-anchored later."""


@fast_init
@dataclass(frozen=True, slots=True)
class Sighting:
    """One observation that supports a fact: which source saw it first, and when."""

    SCHEMA: ClassVar[str] = "Sighting"
    source: str
    observation_id: str
    observed_at: int


@fast_init
@dataclass(frozen=True, slots=True)
class Mark:
    """A transition emitted with a status point as its run start; keeps re-derivations from emitting it twice."""

    SCHEMA: ClassVar[str] = "Mark"
    kind: str
    event_id: str


@fast_init
@dataclass(frozen=True, slots=True)
class StatusPoint:
    """One fact about the project status at a position on the PyPI timeline (serial, rank, time)."""

    SCHEMA: ClassVar[str] = "StatusPoint"
    serial: int
    rank: int
    at: int
    status: str
    implies: str
    source: str
    observation_id: str
    observed_at: int
    upstream_time: int | None
    marks: tuple[Mark, ...] = ()

    def sort_key(self) -> tuple[int, int, int, str, str]:
        """Timeline order; source and id break exact ties so the order never depends on arrival."""
        return (self.serial, self.rank, self.at, self.source, self.observation_id)

    # The timeline re-marks and re-anchors points on most insertions; these cost a fraction of dataclasses.replace.
    def with_marks(self, marks: tuple[Mark, ...]) -> StatusPoint:
        """This point carrying ``marks`` instead."""
        return self._rebuilt(self.serial, marks)

    def with_serial(self, serial: int) -> StatusPoint:
        """This point anchored at ``serial`` instead (a floating point)."""
        return self._rebuilt(serial, self.marks)

    def _rebuilt(self, serial: int, marks: tuple[Mark, ...]) -> StatusPoint:
        s = self
        return StatusPoint(
            serial, s.rank, s.at, s.status, s.implies, s.source, s.observation_id, s.observed_at, s.upstream_time, marks
        )


@fast_init
@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """Per-release state; each dimension is last-writer-wins by PyPI serial."""

    SCHEMA: ClassVar[str] = "ReleaseRecord"
    version: str
    quarantined: bool = False
    quarantine_serial: int | None = None
    removed: bool = False
    removed_serial: int | None = None
    yanked: bool = False
    yank_serial: int | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class ReportRecord:
    """One malicious-package report as last seen; ordered by the report's own ``modified`` then commit time."""

    SCHEMA: ClassVar[str] = "ReportRecord"
    report_id: str
    status: str
    affected_versions: tuple[str, ...]
    all_versions: bool
    modified: str | None
    modified_at: int
    commit_time: int | None
    first_seen: int
    announced: str = ""
    """The severity this live episode of the report was announced at (REPORTED or REPORT_ESCALATED); empty when
    it was recorded silently (a snapshot's baseline) or is not live: only an announced ``high`` escalates."""
    affected_ever: tuple[str, ...] = ()
    """Every version the report has affected while live here (bounded): exposure is judged on these, since a
    version served while the report named it stays exposed after an edit narrows the report (S6)."""
    all_ever: bool = False
    """True once any live content of the report covered every version."""


@fast_init
@dataclass(frozen=True, slots=True)
class FactRecord:
    """An emitted transition and the evidence merged into it afterwards (a Kafka record cannot be amended)."""

    SCHEMA: ClassVar[str] = "FactRecord"
    event_id: str
    kind: str
    version: str | None
    report_id: str | None
    upstream_time: int | None
    detected_at: int
    seen: tuple[Sighting, ...]


@dataclass(frozen=True, slots=True)
class ProvenanceFileRecord:
    """One file's provenance as the processor keeps it: enough to judge the next release against."""

    SCHEMA: ClassVar[str] = "ProvenanceFileRecord"
    filename: str
    attested: bool
    identities: tuple[str, ...]
    invalid: str = ""
    upload_time: int | None = None


@dataclass(frozen=True, slots=True)
class ProvenanceRecord:
    """One release's provenance as last seen."""

    SCHEMA: ClassVar[str] = "ProvenanceRecord"
    version: str
    upload_time: int | None
    files: tuple[ProvenanceFileRecord, ...]


@fast_init
@dataclass(frozen=True, slots=True)
class PackageStateRecord:
    """Everything the processor knows about one package; the value of the compacted state topic."""

    SCHEMA: ClassVar[str] = "PackageStateRecord"
    ecosystem: str
    package: str
    status: str
    last_serial: int | None
    horizon: int | None
    points: tuple[StatusPoint, ...]
    releases: tuple[ReleaseRecord, ...]
    visible_versions: tuple[str, ...]
    visible_serial: int | None
    reports: tuple[ReportRecord, ...]
    facts: tuple[FactRecord, ...]
    applied: tuple[str, ...]
    updated_at: int
    journal_serial: int | None = None
    """The newest journal row applied (status or release row): an older row is a replay, whatever pages showed."""
    journal_action: str = ""
    """The action of the newest project status row applied: a repeated row (quarantined twice without a
    clearance between) is one episode, one transition."""
    seen_versions: tuple[str, ...] = ()
    """Versions PyPI has been seen serving (a page listing them installable, a JSON-API 200 with files), ever,
    bounded by MAX_SEEN_VERSIONS: exposure to a report is a fact about the past too (S6 in the README)."""
    provenance_since: int | None = None
    """Newest upload time of the first provenance snapshot (the baseline, S2): only files uploaded after it are
    judged for drift; None until provenance was first seen."""
    provenance: tuple[ProvenanceRecord, ...] = ()
    """Per-release provenance, bounded by MAX_PROVENANCE (newest uploads kept), sorted by upload time."""

    def render_line(self) -> str:
        """The summary ``qwatch tail --topic state`` prints (upstream values sanitized)."""
        from qwatch.logs import safe  # here, not at the top: qwatch.events imports this module

        live = ",".join(r.report_id for r in self.reports if r.status == "live") or "-"
        return (
            f"status={self.status} serial={self.last_serial} points={len(self.points)} "
            f"releases={len(self.releases)} live_reports={safe(live, 120)} facts={len(self.facts)}"
        )


def empty_state(ecosystem: str, package: str, now_ms: int) -> PackageStateRecord:
    """The state of a package nothing is known about yet."""
    return PackageStateRecord(ecosystem, package, UNKNOWN, None, None, (), (), (), None, (), (), (), now_ms)


def state_key(ecosystem: str, package: str) -> str:
    """``ecosystem:package``: the Kafka key of the package's observations, transitions and state."""
    return f"{ecosystem}:{package}"
