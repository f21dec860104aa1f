"""Project-level facts: simple-page statuses and journal status rows, fed into the timeline.

The journal and the simple page are the authorities (pypi-signals.md): a journal row is a timestamped change, a
page is the state at a serial. Both become StatusPoints; the timeline decides which transitions they imply.
"""

from __future__ import annotations

from processors import timeline
from processors.draft import JOURNAL, Draft, Pending
from qwatch import events
from qwatch.events import kinds
from qwatch.events.state import (
    ACTIVE,
    ARCHIVED,
    FLOATING_RANK,
    JOURNAL_RANK,
    PAGE_RANK,
    QUARANTINED,
    REMOVED,
    UNKNOWN,
    Mark,
    Sighting,
    StatusPoint,
)

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
    if d.authority == JOURNAL:
        late_history(d, point)
    return status in (ACTIVE, ARCHIVED) and serial is not None


ROW_KINDS = {
    "project quarantined": kinds.K_QUARANTINED,
    "project quarantine cleared": kinds.K_CLEARED,
    "remove project": kinds.K_REMOVED,
    "create": kinds.K_RESTORED,
}
"""With the journal as authority, the kind each project status row is (README, S3)."""
ROW_BEFORE = {"project quarantine cleared": QUARANTINED, "create": REMOVED}
"""The status a row proves just before it."""


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
    if d.authority == JOURNAL:
        previous, d.journal_action = d.journal_action, action
        if action == "create" and not _history_before(d, point):
            return  # a new project, not a re-registration
        if action != "create" and action == previous:
            return  # a repeated row inside one episode
        _row_transition(d, point, action)


def _history_before(d: Draft, row: StatusPoint) -> bool:
    """Anything known of the name before ``row``: a point ordered before it (a row, a page, or a 404 fetched
    before it), or older history dropped behind the horizon."""
    if d.horizon is not None:
        return True
    first = d.points[0] if d.points else None
    return first is not None and not (first.rank == JOURNAL_RANK and first.serial == row.serial)


def _row_transition(d: Draft, row: StatusPoint, action: str) -> None:
    """Emit the row's own transition (id: its serial), with the pages of its run as evidence, and mark it on the
    row so evidence that arrives later (the page behind it) is merged."""
    kind = ROW_KINDS[action]
    eid = d.transition_id(kind, row.serial)
    if d.emitted(eid):
        if d.add_evidence([eid], row.upstream_time):
            d.note("evidence")
        return
    index = next(i for i, p in enumerate(d.points) if p.rank == JOURNAL_RANK and p.serial == row.serial)
    before = ROW_BEFORE.get(action) or (d.points[index - 1].status if index > 0 else UNKNOWN)
    run = [d.points[index]]
    for p in d.points[index + 1 :]:
        if p.rank == JOURNAL_RANK or p.status != row.status:
            break
        run.append(p)
    evidence = _evidence(tuple(run), Sighting(row.source, row.observation_id, row.observed_at))
    summary = kinds.describe(kind, d.base.ecosystem, d.base.package, None, None, _detail(row))
    after = ACTIVE if action == "create" else row.status
    d.decide(Pending(kind, eid, evidence, row.upstream_time, summary, before_status=before, after_status=after))
    marked = d.points[index].with_marks((*d.points[index].marks, Mark(kind, eid)))
    d.points = (*d.points[:index], marked, *d.points[index + 1 :])


def late_history(d: Draft, page: StatusPoint) -> None:
    """A page ordered before a ``create`` row that had no history when it came: the name did exist before it, so
    that row was a re-registration after all (RESTORED, late but once)."""
    seen_page = False
    for p in d.points:
        if p is page or (p.rank != JOURNAL_RANK and p.observation_id == page.observation_id):
            seen_page = True
        elif seen_page and p.rank == JOURNAL_RANK and p.implies == REMOVED:
            if not d.emitted(d.transition_id(kinds.K_RESTORED, p.serial)):
                _row_transition(d, p, "create")
