"""The project-status timeline: status facts from the journal and from pages, ordered by PyPI serial, and the
transitions their sequence implies.

Why a timeline and not last-writer-wins: the journal and the page pollers run on their own clocks. A page fetched
after a quick quarantine → clear shows ``active`` at the clearance serial; if it is processed before the journal
rows, last-writer-wins would call the late ``project quarantined`` row stale and lose the quarantine. Here every
fact is inserted at its position and the transitions are derived from the runs (maximal stretches of one status):

* Position: ``(serial, rank, at)``. A journal row creates its serial, so it sorts before pages showing that serial;
  pages at one serial (archive and unarchive never bump it) are ordered by fetch time. A page without a serial
  (a 404 has none) *floats*: it is anchored after the newest serial fetched or journaled before it, and
  re-anchored whenever such a fact arrives late. Journal stamps are whole seconds, so "before" is decided with
  care (``_anchor``).
* A run that follows a run of another status implies the transitions of ``kinds.STATUS_TABLE``. Two journal
  rows prove what came before them and always start their own run: ``project quarantine cleared`` (a quarantine,
  even if that row is not known yet) and ``create`` after earlier history (a removal: the name was free again).
  A first ``remove project`` row proves the project existed. ``project quarantined`` and ``remove project`` do not
  force a run: a page or a 404 seen first for the same episode must not count as a second one.
* CLEARED is taken only from a journal ``project quarantine cleared`` row: a page showing a quarantined project
  active again could also be a removal and a re-registration of the name, so it waits for the journal (``_steps``).
* A transition is emitted once per run: a run whose points already carry a Mark of that kind, or whose derived
  event id was already emitted, is covered. So a late fact that only extends a run (the journal row behind a page
  already acted on) adds evidence, and a late fact that splits a run emits exactly the missing transitions.
* Beyond ``MAX_RUNS`` runs or ``MAX_POINTS`` points the oldest information goes: first the oldest run's
  confirmations, then whole oldest runs, whose serials fall behind the ``horizon`` (facts that old are stale).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import NamedTuple

from qwatch.events.kinds import K_ARCHIVED, K_CLEARED, K_UNARCHIVED, Step, steps_between
from qwatch.events.state import (
    ACTIVE,
    FLOATING_RANK,
    JOURNAL_RANK,
    MAX_POINTS,
    MAX_RUNS,
    QUARANTINED,
    REMOVED,
    UNKNOWN,
    Mark,
    StatusPoint,
)

IdFor = Callable[[str, StatusPoint, StatusPoint | None], str]
"""(kind, run start, start of the previous run) → event id."""


class Emission(NamedTuple):
    """A transition the timeline requires and that was not emitted before."""

    step: Step
    event_id: str
    run: tuple[StatusPoint, ...]
    """The run's points, its start first: the evidence and the upstream time come from here."""


class Inserted(NamedTuple):
    """The timeline after one insertion."""

    points: tuple[StatusPoint, ...]
    horizon: int | None
    emissions: tuple[Emission, ...]
    run_marks: tuple[Mark, ...]
    """Marks of the run the new point ended up in: the transitions it adds evidence to."""
    outcome: str
    """'new', 'duplicate' or 'stale'."""


def _identity(p: StatusPoint) -> tuple[object, ...]:
    if p.rank == JOURNAL_RANK:
        return (JOURNAL_RANK, p.serial)
    if p.rank == FLOATING_RANK:
        return (FLOATING_RANK, p.at, p.source, p.observation_id)
    return (p.rank, p.serial, p.at, p.source, p.observation_id)


JOURNAL_TICK_MS = 1000
"""PyPI journal timestamps are whole seconds: a row stamped T was written at some moment in [T, T + 1 s)."""


def _anchor(p: StatusPoint, points: list[StatusPoint]) -> int:
    """The newest serial known to predate a floating point (by journal timestamp or fetch time), or -1.

    Fetch times are exact, journal stamps are whole seconds, so a row stamped in the second of the fetch may be on
    either side. It is taken as earlier (a fetch usually follows the change it shows), except from a row on that
    proves the status just before it was the one ``p`` shows: a 404 fetched at T + 0.04 s, just before a
    re-registration written at T + 0.2 s (stamped T), belongs to the removal that ``create`` row ends. Anchored
    after it (or after a quarantine written right after it), it would read as a second removal and restore."""
    barrier = min(
        (
            q.serial
            for q in points
            if q.rank == JOURNAL_RANK and q.implies == p.status and q.at <= p.at < q.at + JOURNAL_TICK_MS
        ),
        default=None,
    )
    best = -1
    for q in points:
        if q.rank == FLOATING_RANK or q.at >= p.at or q.serial <= best:
            continue
        if barrier is not None and q.rank == JOURNAL_RANK and q.serial >= barrier:
            continue
        best = q.serial
    return best


def _reanchor(points: list[StatusPoint]) -> list[StatusPoint]:
    if not any(p.rank == FLOATING_RANK for p in points):
        return points
    out = [p.with_serial(_anchor(p, points)) if p.rank == FLOATING_RANK else p for p in points]
    out.sort(key=StatusPoint.sort_key)
    return out


def _runs(points: list[StatusPoint]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i, p in enumerate(points):
        if i == 0 or p.implies or p.status != points[i - 1].status:
            runs.append([i])
        else:
            runs[-1].append(i)
    return runs


def _previous_status(start: StatusPoint, before: str) -> str:
    """What a run start proves about the status before it, beyond what the timeline holds."""
    if start.implies == QUARANTINED:
        return QUARANTINED
    if start.implies == REMOVED:
        return UNKNOWN if before == UNKNOWN else REMOVED  # a first 'create' is a new project
    if before == UNKNOWN and start.rank == JOURNAL_RANK and start.status == REMOVED:
        return ACTIVE
    return before


def _steps(start: StatusPoint, before: str, previous_end: int, journal: bool) -> tuple[Step, ...]:
    """The transitions a run starting at ``start`` implies after a run of ``before`` that ended at serial
    ``previous_end`` (README, S2 and S3).

    * A page that starts the first run is a baseline: a state source's first view is not news.
    * With the journal as authority, its rows decide by themselves, outside the timeline (``status.on_journal_status``:
      the journal's own sequence, so a stale 404 or a first-sight page in between cannot change what a row means),
      and a page only shows what PyPI does not journal: ARCHIVED, and UNARCHIVED when
      the archived view it follows was at the same serial (an unarchive never bumps it; at a higher serial the
      project may have been removed and re-registered, and those rows decide).
    * Without it (pages), a page implies every status change except a clearance: a page that shows a quarantined
      project active again cannot tell a clearance from a removal and a re-registration of the name (by anyone),
      and reporting CLEARED from it would be a false all-clear for a possible takeover.
    """
    if start.rank == JOURNAL_RANK:
        return () if journal else steps_between(_previous_status(start, before), start.status)
    if before == UNKNOWN:
        return ()
    steps = steps_between(before, start.status)
    if journal:
        return tuple(s for s in steps if s[0] == K_ARCHIVED or (s[0] == K_UNARCHIVED and previous_end == start.serial))
    return tuple(s for s in steps if s[0] != K_CLEARED)


def _before(points: Sequence[StatusPoint], index: int, journal: bool) -> tuple[str, int]:
    """(status, serial) of the fact just before ``points[index]``: the previous run's status and its last serial.
    With the journal as authority a 404 is passed over: it has no serial, and where it stands among the rows is
    known only once they arrive (a stale archived page after a 404 must not read as "archived after a removal"
    before the ``remove project`` row that the 404 really followed has come)."""
    for p in reversed(points[:index]):
        if journal and p.rank == FLOATING_RANK:
            continue
        return p.status, p.serial
    return UNKNOWN, -1


def _required(
    points: list[StatusPoint], runs: list[list[int]], truncated: bool, journal: bool
) -> list[tuple[Step, ...]]:
    out: list[tuple[Step, ...]] = []
    for r, run in enumerate(runs):
        if r == 0 and truncated:
            out.append(())  # what came before was dropped; its transitions were emitted back then
            continue
        before, previous_end = _before(points, run[0], journal)
        out.append(_steps(points[run[0]], before, previous_end, journal))
    return out


class _Marks:
    """The marks already on the timeline, handed out to the runs that need them (each mark to one run)."""

    def __init__(self, points: list[StatusPoint], run_of: list[int]) -> None:
        self.pool = [(i, m) for i, p in enumerate(points) for m in p.marks]
        self.run_of = run_of
        self.free = set(range(len(self.pool)))
        self.by_id = {m.event_id: j for j, (_, m) in enumerate(self.pool)}

    def take_id(self, event_id: str) -> Mark | None:
        j = self.by_id.get(event_id)
        return self._take(j) if j is not None and j in self.free else None

    def take_kind(self, run: int, kind: str) -> Mark | None:
        for j in sorted(self.free):
            i, m = self.pool[j]
            if self.run_of[i] == run and m.kind == kind:
                return self._take(j)
        return None

    def _take(self, j: int) -> Mark:
        self.free.discard(j)
        return self.pool[j][1]

    def orphans(self) -> list[tuple[int, Mark]]:
        return [self.pool[j] for j in sorted(self.free)]


def _derive(
    points: list[StatusPoint], truncated: bool, id_for: IdFor, emitted: Container[str], journal: bool
) -> tuple[list[StatusPoint], list[Emission], list[list[int]]]:
    """Give every run the transitions it requires, reusing marks before emitting anything new.

    A required transition is already covered by, in this order: a mark with exactly its id (wherever it sits:
    a run that grew or split keeps its transitions); a mark of its kind in its own run (the run grew backwards,
    so its start and id changed: same episode); a mark of its kind in a later run that no longer requires that
    kind (it was inferred across a gap, e.g. a removed name seen quarantined implies RESTORED, and the row that
    really made the change has now arrived). Marks no run claims stay where they are.
    """
    runs = _runs(points)
    run_of = [0] * len(points)
    for r, run in enumerate(runs):
        for i in run:
            run_of[i] = r
    required = _required(points, runs, truncated, journal)
    kinds = [{s[0] for s in steps} for steps in required]
    marks = _Marks(points, run_of)
    assigned: list[list[Mark]] = [[] for _ in runs]
    open_: list[list[tuple[Step, str]]] = [[] for _ in runs]
    for r, run in enumerate(runs):
        previous = points[runs[r - 1][0]] if r > 0 else None
        for s in required[r]:
            eid = id_for(s[0], points[run[0]], previous)
            m = marks.take_id(eid)
            if m is not None:
                assigned[r].append(m)
            else:
                open_[r].append((s, eid))
    for r in range(len(runs)):
        still = []
        for s, eid in open_[r]:
            m = marks.take_kind(r, s[0])
            if m is None:
                for r2 in range(r + 1, len(runs)):
                    if s[0] in kinds[r2]:
                        break
                    m = marks.take_kind(r2, s[0])
                    if m is not None:
                        break
            if m is not None:
                assigned[r].append(m)
            else:
                still.append((s, eid))
        open_[r] = still
    emissions: list[Emission] = []
    for r, items in enumerate(open_):
        for s, eid in items:
            assigned[r].append(Mark(s[0], eid))
            if eid not in emitted:
                emissions.append(Emission(s, eid, tuple(points[i] for i in runs[r])))
    placed: list[list[Mark]] = [[] for _ in points]
    for r, run in enumerate(runs):
        placed[run[0]].extend(assigned[r])
    for i, m in marks.orphans():
        placed[i].append(m)
    out = [p if tuple(placed[i]) == p.marks else p.with_marks(tuple(placed[i])) for i, p in enumerate(points)]
    return out, emissions, runs


def _evict(points: list[StatusPoint], horizon: int | None) -> tuple[list[StatusPoint], int | None]:
    """Bound the timeline, oldest information first: the first run's oldest unmarked interior point (a confirmation
    that only matters if a fact that old still arrives), else the whole first run, whose serials then fall behind
    the horizon."""
    if len(points) <= min(MAX_POINTS, MAX_RUNS):
        return points, horizon
    runs = _runs(points)
    while len(runs) > MAX_RUNS or len(points) > MAX_POINTS:
        first = runs[0]
        interior = [i for i in first[1:-1] if not points[i].marks]
        if len(runs) <= MAX_RUNS and interior:
            del points[interior[0]]
        elif len(runs) > 1:
            newest = max(points[i].serial for i in first)
            horizon = newest if horizon is None else max(horizon, newest)
            del points[: len(first)]
        else:
            break  # one run of marked points only: cannot shrink without losing what was emitted
        runs = _runs(points)
    return points, horizon


def _append(
    points: tuple[StatusPoint, ...],
    horizon: int | None,
    new: StatusPoint,
    id_for: IdFor,
    emitted: Container[str],
    journal: bool,
) -> Inserted:
    """The common case, without re-deriving the whole timeline: a fact newer than every point that re-anchors
    nothing. Runs before it cannot change, so only its own run matters."""
    start = len(points) - 1
    last = points[start]
    while start > 0 and not points[start].implies and points[start - 1].status == last.status:
        start -= 1
    emissions: list[Emission] = []
    if new.status == last.status and not new.implies:
        run_marks = tuple(m for p in points[start:] for m in p.marks)
    else:
        marks: list[Mark] = []
        before, previous_end = _before(points, len(points), journal)
        for s in _steps(new, before, previous_end, journal):
            eid = id_for(s[0], new, points[start])
            marks.append(Mark(s[0], eid))
            if eid not in emitted:
                emissions.append(Emission(s, eid, (new,)))
        if marks:
            new = new.with_marks(tuple(marks))
        run_marks = new.marks
    kept, horizon = _evict([*points, new], horizon)
    return Inserted(tuple(kept), horizon, tuple(emissions), run_marks, "new")


def _try_append(
    points: tuple[StatusPoint, ...],
    horizon: int | None,
    new: StatusPoint,
    id_for: IdFor,
    emitted: Container[str],
    journal: bool,
) -> Inserted | None:
    """Use ``_append`` when the new fact goes last and re-anchors nothing: no floating point was fetched after it."""
    newest_floating = -1
    for p in points:
        if p.rank == FLOATING_RANK and p.at > newest_floating:
            newest_floating = p.at
    if new.at < newest_floating:
        return None
    if new.rank == FLOATING_RANK:
        new = new.with_serial(_anchor(new, list(points)))
    last = points[-1]
    if new.serial < last.serial or (new.serial == last.serial and new.sort_key() <= last.sort_key()):
        return None
    return _append(points, horizon, new, id_for, emitted, journal)


def insert(
    points: tuple[StatusPoint, ...],
    horizon: int | None,
    new: StatusPoint,
    id_for: IdFor,
    emitted: Container[str],
    journal: bool = True,
) -> Inserted:
    """Insert one status fact and return the new timeline with the transitions it makes necessary; ``journal``
    says whether the journal is the authority for the changes it records (README, S3)."""
    if new.rank != FLOATING_RANK and horizon is not None and new.serial <= horizon:
        return Inserted(points, horizon, (), (), "stale")
    if points:
        fast = _try_append(points, horizon, new, id_for, emitted, journal)
        if fast is not None:
            return fast
    ident = _identity(new)
    if any(_identity(p) == ident for p in points):
        return Inserted(points, horizon, (), (), "duplicate")
    work = list(points)
    if new.rank == FLOATING_RANK:
        new = new.with_serial(_anchor(new, work))
        if horizon is not None and new.serial < 0:
            return Inserted(points, horizon, (), (), "stale")
    work.append(new)
    work.sort(key=StatusPoint.sort_key)
    work = _reanchor(work)
    work, emissions, runs = _derive(work, horizon is not None, id_for, emitted, journal)
    run_marks: tuple[Mark, ...] = ()
    for run in runs:
        if any(_identity(work[i]) == ident for i in run):
            run_marks = tuple(m for i in run for m in work[i].marks)
            break
    kept, horizon = _evict(work, horizon)
    return Inserted(tuple(kept), horizon, tuple(emissions), run_marks, "new")
