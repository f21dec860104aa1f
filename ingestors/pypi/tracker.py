"""Decide, per fetched page, whether to emit, stay quiet, call it stale, or give up; stage the memory of it.

Rules (shared by ``pypi-simple`` and the JSON ingestor's 404 disambiguation):
- emit a ProjectStatusObserved when status, versions/yanks (the page digest) or serial differ from what this
  ingestor last emitted for the project; a 404 is status ``absent``;
- a page whose serial is lower than the *floor* (the highest serial already believed for the project, or
  the serial the root index promised) is **stale**: a CDN copy from before the change. It is not believed,
  its ETag is not kept, and the caller re-fetches it later. A 304 is stale in the same way when what we hold
  is older than the floor;
- nothing is committed until the caller's flush succeeded (``commit``/``rollback``), so a crash or a publish
  failure replays the observation instead of losing it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from ingestors.pypi import emit
from ingestors.pypi.emit import Seen, max_serial
from ingestors.pypi.pages import Fetched
from qwatch.events import ProjectStatusObserved
from qwatch.http import ETagCache
from qwatch.pypi.model import ProjectPage

ABSENT_DIGEST = "absent"


class Verdict(enum.Enum):
    """What became of one fetched page."""

    EMIT = "emit"
    SAME = "same"
    STALE = "stale"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Judged:
    """A verdict, and the event to emit when it is EMIT."""

    verdict: Verdict
    event: ProjectStatusObserved | None = None


class StatusTracker:
    """Per-project memory of emitted statuses, with staged updates and the stale floor."""

    def __init__(self, source: str, seen: Mapping[str, Seen], etags: ETagCache, clock_ms: Callable[[], int]) -> None:
        self.source = source
        self._seen: dict[str, Seen] = dict(seen)
        self._staged: dict[str, Seen] = {}
        self.etags = etags
        self._clock_ms = clock_ms

    def seen(self, name: str) -> Seen | None:
        """The committed record, if any."""
        return self._seen.get(name)

    def floor(self, name: str, promised: int | None = None) -> int | None:
        """The lowest serial a believable page may carry: what we believed, or what upstream promised."""
        record = self._staged.get(name) or self._seen.get(name)
        return max_serial(record.floor if record else None, promised)

    def judge(self, fetched: Fetched[ProjectPage], promised: int | None = None) -> Judged:
        """Classify one fetch and stage what to remember (see the module docstring)."""
        name = fetched.name
        if fetched.failure is not None:
            return Judged(Verdict.FAILED)
        floor = self.floor(name, promised)
        previous = self._staged.get(name) or self._seen.get(name)
        if fetched.http_status == 304:
            held = fetched.serial if fetched.serial is not None else (previous.serial if previous else None)
            if floor is not None and held is not None and held < floor:
                return Judged(Verdict.STALE)
            return Judged(Verdict.SAME)
        if fetched.http_status == 404:
            self.etags.stage(fetched.url, None)
            return self._compare(name, previous, "absent", None, (), (), 404, ABSENT_DIGEST, floor)
        page = fetched.value
        if page is None:
            return Judged(Verdict.FAILED)
        serial = fetched.serial
        if floor is not None and serial is not None and serial < floor:
            return Judged(Verdict.STALE)
        self.etags.stage(fetched.url, fetched.etag)
        new_floor = max_serial(floor, serial)
        return self._compare(
            name,
            previous,
            page.status,
            serial,
            page.versions,
            page.yanked_versions,
            200,
            page.digest(),
            new_floor,
        )

    def _compare(
        self,
        name: str,
        previous: Seen | None,
        status: str,
        serial: int | None,
        versions: tuple[str, ...],
        yanked: tuple[str, ...],
        http_status: int,
        digest: str,
        floor: int | None,
    ) -> Judged:
        if previous is not None and (previous.status, previous.serial, previous.digest) == (
            status,
            serial,
            digest,
        ):
            if previous.floor != floor:
                self._staged[name] = replace(previous, floor=floor)
            return Judged(Verdict.SAME)
        event = emit.project_status(
            self.source,
            name,
            status=status,
            serial=serial,
            versions=versions,
            yanked=yanked,
            http_status=http_status,
            digest=digest,
            previous=previous.event_id if previous else None,
            observed_at=self._clock_ms(),
        )
        self._staged[name] = Seen(status, serial, digest, event.event_id, floor)
        return Judged(Verdict.EMIT, event)

    def commit(self) -> None:
        """Make staged memory and ETags durable-to-be (call after a successful flush)."""
        self._seen.update(self._staged)
        self._staged.clear()
        self.etags.commit()

    def rollback(self) -> None:
        """Forget staged memory and ETags (the events were not acknowledged)."""
        self._staged.clear()
        self.etags.rollback()

    def dump(self) -> dict[str, list[object]]:
        """Committed memory for the state file."""
        return {name: record.dump() for name, record in self._seen.items()}
