"""Build the PyPI observations and dead letters, with their deterministic event ids in one place.

Event id recipes (``qwatch.ids.event_id``; never wall-clock time):
- IndexMembershipObserved: (source, package, present, last_serial, index_serial).
- ProjectStatusObserved: (source, package, status, last_serial, page digest, previous id). The previous id
  (what this ingestor last emitted for the package, None on a fresh state) chains the observations, because
  archive/unarchive changes no serial: active → archived → active → archived would otherwise repeat an id and
  be dropped as a duplicate. A replay after a crash (state not saved) reproduces the same ids.
- ReleasesObserved: (source, package, http_status, last_serial, release digest, previous id), same reason.
- JournalEntryObserved: (source, serial): a journal serial is unique.
- DeadLetter: (source, pointer, reason, payload digest): the same bad body is parked once.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from qwatch import deadletters
from qwatch.events import (
    DeadLetter,
    IndexMembershipObserved,
    JournalEntryObserved,
    ProjectStatusObserved,
    ReleaseInfo,
    ReleasesObserved,
)
from qwatch.ids import event_id
from qwatch.metrics import Metrics
from qwatch.pypi.model import JournalRow
from qwatch.pypi.names import normalize

ECOSYSTEM = "PyPI"
SIMPLE = "pypi-simple"
JSON = "pypi-json"
JOURNAL = "pypi-journal"
PROVENANCE = "pypi-provenance"
PAYLOAD_CAP = 4096


@dataclass(frozen=True, slots=True)
class Seen:
    """What an ingestor last emitted for one project, and the highest serial it believed (the stale floor)."""

    status: str | None = None
    serial: int | None = None
    digest: str | None = None
    event_id: str | None = None
    floor: int | None = None

    def dump(self) -> list[object]:
        """Compact list form for the state file."""
        return [self.status, self.serial, self.digest, self.event_id, self.floor]

    @classmethod
    def load(cls, raw: object) -> Seen:
        """Inverse of ``dump``; a malformed record raises ValueError (the state file is then corrupt)."""
        if not isinstance(raw, list) or len(raw) != 5:
            raise ValueError(f"bad per-project record {raw!r}")
        status, serial, digest, eid, floor = raw
        return cls(status, serial, digest, eid, floor)


def max_serial(*values: int | None) -> int | None:
    """The largest known serial, None when none is known."""
    known = [v for v in values if v is not None]
    return max(known) if known else None


def membership(
    package: str, present: bool, last_serial: int | None, index_serial: int | None, observed_at: int
) -> IndexMembershipObserved:
    """A root-index membership change (a hint only: the root lags at the CDN)."""
    return IndexMembershipObserved(
        event_id=event_id(SIMPLE, package, present, last_serial, index_serial),
        source=SIMPLE,
        ecosystem=ECOSYSTEM,
        package=package,
        observed_at=observed_at,
        upstream_time=None,
        present=present,
        last_serial=last_serial if present else None,
        index_serial=index_serial,
    )


def project_status(
    source: str,
    package: str,
    *,
    status: str,
    serial: int | None,
    versions: tuple[str, ...],
    yanked: tuple[str, ...],
    http_status: int,
    digest: str,
    previous: str | None,
    observed_at: int,
) -> ProjectStatusObserved:
    """What one Simple page (or its 404) showed."""
    return ProjectStatusObserved(
        event_id=event_id(source, package, status, serial, digest, previous),
        source=source,
        ecosystem=ECOSYSTEM,
        package=package,
        observed_at=observed_at,
        upstream_time=None,
        status=status,
        last_serial=serial,
        versions=versions,
        yanked_versions=yanked,
        http_status=http_status,
    )


def releases(
    package: str,
    *,
    http_status: int,
    serial: int | None,
    infos: tuple[ReleaseInfo, ...],
    newest_upload: int | None,
    digest: str,
    previous: str | None,
    observed_at: int,
) -> ReleasesObserved:
    """What the JSON API showed (a 404 carries no releases and is ambiguous on its own)."""
    return ReleasesObserved(
        event_id=event_id(JSON, package, http_status, serial, digest, previous),
        source=JSON,
        ecosystem=ECOSYSTEM,
        package=package,
        observed_at=observed_at,
        upstream_time=newest_upload,
        http_status=http_status,
        last_serial=serial,
        releases=infos,
    )


def journal_entry(row: JournalRow, observed_at: int) -> JournalEntryObserved:
    """One journal row, name kept verbatim and normalized for the key."""
    return JournalEntryObserved(
        event_id=event_id(JOURNAL, row.serial),
        source=JOURNAL,
        ecosystem=ECOSYSTEM,
        package=normalize(row.name),
        observed_at=observed_at,
        upstream_time=row.timestamp,
        action=row.action,
        version=row.version,
        serial=row.serial,
        timestamp=row.timestamp,
        name=row.name,
    )


def dead_letter(
    source: str, package: str, reason: str, error: str, pointer: str, payload: bytes | None, observed_at: int
) -> DeadLetter:
    """Park a bad response with its reason; the payload is capped and decoded leniently."""
    digest = hashlib.sha256(payload or b"").hexdigest()[:16]
    return deadletters.dead_letter(
        source=source,
        reason=reason,
        error=error,
        pointer=pointer,
        observed_at=observed_at,
        payload=payload,
        payload_cap=PAYLOAD_CAP,
        ecosystem=ECOSYSTEM,
        package=package,
        extra_key=(digest,),
    )


def record_pass(metrics: Metrics, source: str, fetched: int, dead_letters: int, started: float) -> None:
    """A committed pass's duration and outcome: when every project failed (upstream down, or every answer
    unreadable) the source is down, loudly; otherwise it is up."""
    metrics.poll_duration.labels(source).observe(time.monotonic() - started)
    if fetched and dead_letters >= fetched:
        metrics.polls.labels(source, "all-failed").inc()
        metrics.source_failed(source)
    else:
        metrics.polls.labels(source, "ok").inc()
        metrics.source_succeeded(source)
