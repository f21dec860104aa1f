"""Project-level facts: simple-page statuses and journal status rows, fed into the timeline.

The journal and the simple page are the authorities (pypi-signals.md): a journal row is a timestamped change, a
page is the state at a serial. Both become StatusPoints; the timeline decides which transitions they imply.
"""

from __future__ import annotations

from processors import kinds, timeline
from processors.draft import JOURNAL, Draft, Pending
from processors.state import (
    ACTIVE,
    ARCHIVED,
    FLOATING_RANK,
    JOURNAL_RANK,
    PAGE_RANK,
    QUARANTINED,
    REMOVED,
    Sighting,
    StatusPoint,
)
from qwatch import events

PAGE_STATUS = {"active": ACTIVE, "deprecated": ACTIVE, "archived": ARCHIVED, "quarantined": QUARANTINED}
"""PEP 792 markers → our statuses. PyPI never emits 'deprecated'; if an index does, the project still installs."""

JOURNAL_STATUS = {
    "project quarantined": QUARANTINED,
    "project quarantine cleared": ACTIVE,
    "remove project": REMOVED,
    "create": ACTIVE,
}
"""Journal actions that change the project status; everything else only moves the serial."""

IMPLIES = {"project quarantine cleared": QUARANTINED, "create": REMOVED}
"""Journal actions that prove the status just before them (see processors.timeline)."""


class _Emitted:
    """``in`` over the draft's remembered transition ids, as the timeline's Container."""

    def __init__(self, draft: Draft) -> None:
        self._draft = draft

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self._draft.emitted(event_id)


def page_status(obs: events.ProjectStatusObserved) -> str | None:
    """The status a page proves, or None when the response proves nothing (an error status)."""
    if obs.http_status == 404 or obs.status == "absent":
        return REMOVED
    if 200 <= obs.http_status < 300:
        return PAGE_STATUS.get(obs.status)
    return None


def _detail(start: StatusPoint) -> str:
    if start.rank == FLOATING_RANK:
        return f"{start.source}, no serial"
    return f"serial {start.serial}, {start.source}"


def apply_point(d: Draft, point: StatusPoint) -> None:
    """Insert a status fact and queue the transitions (or evidence) it yields."""

    def id_for(kind: str, start: StatusPoint, previous: StatusPoint | None) -> str:
        if kind in kinds.SAME_SERIAL_KINDS:
            return d.transition_id(kind, start.serial, start.at)
        exited = kinds.EXITS.get(kind)
        if start.rank == JOURNAL_RANK:
            return d.transition_id(kind, start.serial)  # the row is the change, whatever arrived before it
        if exited is not None and previous is not None and previous.status == exited:
            # Pages authority: "the restoration after the removal that began at Q", whichever page reveals it.
            return d.transition_id(kind, "after", previous.serial)
        return d.transition_id(kind, start.serial)

    res = timeline.insert(d.points, d.horizon, point, id_for, _Emitted(d), d.authority == JOURNAL)
    if res.outcome != "new":
        d.note(res.outcome)
        if res.outcome == "duplicate":
            # The same fact again (a re-ingested journal row, a redelivered page): evidence at most.
            matching = [m.event_id for p in d.points if _same(p, point) for m in p.marks]
            if d.add_evidence(matching, point.upstream_time):
                d.note("evidence")
        return
    d.points, d.horizon = res.points, res.horizon
    d.status = res.points[-1].status
    d.note("evidence")
    if not res.emissions:
        if res.run_marks:
            d.add_evidence([m.event_id for m in res.run_marks], point.upstream_time)
        return
    mine = Sighting(point.source, point.observation_id, point.observed_at)
    for em in res.emissions:
        kind, before, after = em.step
        evidence = _evidence(em.run, mine)
        upstream = min((p.upstream_time for p in em.run if p.upstream_time is not None), default=None)
        summary = kinds.describe(kind, d.base.ecosystem, d.base.package, None, None, _detail(em.run[0]))
        d.decide(Pending(kind, em.event_id, evidence, upstream, summary, before_status=before, after_status=after))
    new_ids = {e.event_id for e in res.emissions}
    d.add_evidence([m.event_id for m in res.run_marks if m.event_id not in new_ids], point.upstream_time)


def _same(p: StatusPoint, q: StatusPoint) -> bool:
    return p.rank == q.rank and p.serial == q.serial and p.status == q.status


def _evidence(run: tuple[StatusPoint, ...], mine: Sighting) -> tuple[Sighting, ...]:
    out = [Sighting(p.source, p.observation_id, p.observed_at) for p in run]
    if all(s.observation_id != mine.observation_id for s in out):
        out.append(mine)
    seen: set[str] = set()
    unique = []
    for s in out:
        if s.observation_id not in seen:
            seen.add(s.observation_id)
            unique.append(s)
    return tuple(unique)


def on_page(d: Draft, obs: events.ProjectStatusObserved) -> bool:
    """A fetched project page. Returns True when the page shows installable versions (for release handling)."""
    status = page_status(obs)
    if status is None:
        return False
    serial = obs.last_serial
    rank = PAGE_RANK if serial is not None else FLOATING_RANK
    point = StatusPoint(
        serial if serial is not None else -1,
        rank,
        obs.observed_at,
        status,
        "",
        obs.source,
        obs.event_id,
        obs.observed_at,
        obs.upstream_time,
    )
    d.see_serial(serial)
    apply_point(d, point)
    return status in (ACTIVE, ARCHIVED) and serial is not None


def on_journal_status(d: Draft, obs: events.JournalEntryObserved, action: str) -> None:
    """A journal row that changes the project status."""
    point = StatusPoint(
        obs.serial,
        JOURNAL_RANK,
        obs.timestamp,
        JOURNAL_STATUS[action],
        IMPLIES.get(action, ""),
        obs.source,
        obs.event_id,
        obs.observed_at,
        obs.timestamp,
    )
    d.see_serial(obs.serial)
    apply_point(d, point)
