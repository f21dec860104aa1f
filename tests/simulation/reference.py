"""The reference model: what processors/README.md ("Semantics: rules a reader can check", S1-S7) says must come out.

Written from the README alone, sharing no code with ``processors/`` (only the record types of ``qwatch.events``
and ``qwatch.ids.event_id``). It is a function of the SET of a package's observations: no arrival order, no
state carried between calls, everything re-derived from every fact each time. Slow and small on purpose.

The timeline. Every project status fact is a point ordered by ``(serial, rank, fetch time)``: a journal status row
at its serial (rank 0), a Simple page 200 at the serial it shows (rank 1; at one serial, by fetch time), a 404 page
(no serial) at its *anchor* (rank 2): the largest serial among the package's pages (ProjectStatusObserved with a
serial) fetched before it and, with the journal authority, among the project status rows whose journal timestamp
is before its fetch time ("floats after the newest fact that predates it"), or -1. Status: ``create`` and
``project quarantine cleared`` rows are active, ``project quarantined`` quarantined, ``remove project`` and 404
pages removed, a page 200 its status. A *run* is a maximal sequence of consecutive points of one status. The first
run is first sight (S2): it emits nothing.

Journal authority (S3):
- Each project status row, in serial order, emits its kind with key ``(serial,)``: ``project quarantined`` →
  QUARANTINED, ``project quarantine cleared`` → CLEARED, ``remove project`` → REMOVED, unless the previous
  project status row has the same action (a repeated row inside one episode); ``create`` → RESTORED when any
  point (row or page, a 404 included) precedes it on the timeline ("earlier history of the name"), else nothing.
  Rows are news even when they are the first thing known (S2, event sources).
- Each ``release quarantined`` / ``release quarantine cleared`` / ``remove release`` / ``yank release`` row →
  RELEASE_QUARANTINED / RELEASE_CLEARED / RELEASE_REMOVED / YANKED, key ``(version, serial)``. Pages never emit
  these, nor the four project kinds above.
- Runs of the timeline without its 404 pages (S3: a 404 has no serial, and where it stands among the rows is
  known only once they arrive): ARCHIVED for every run of ``archived`` that is not the first run, key
  ``(serial, fetch time)`` of its first page; UNARCHIVED for every run of ``active`` whose first point is a page
  and whose preceding point is an ``archived`` page at the same serial, key ``(serial, fetch time)`` of that first
  page.

Pages authority (S3; the journal is not read): runs over the pages alone. Start key of a run: its first page's
serial, or its first 404's anchor. After the first run, by (previous run → run):
- → quarantined: QUARANTINED ``(start,)``; → removed: REMOVED ``(start,)``; removed → present: RESTORED
  ``("after", start of the removed run)``, then QUARANTINED / ARCHIVED for quarantined / archived;
  → archived (from active or quarantined): ARCHIVED ``(serial, fetch time)``; archived → active: UNARCHIVED
  ``(serial, fetch time)`` (at any serial: the same-serial rule of S3 is stated for the journal authority, whose
  rows then settle a higher serial; here no rows will); quarantined → active: nothing (never CLEARED).
- No release kinds.

Reports (S5), per report id, its changes in commit order: ``added`` / ``reinstated`` → REPORTED unless live
(then REPORT_UPDATED if the affected versions differ); ``existing`` → live silently if unknown; ``modified`` of
an unknown report → REPORTED, of a live one → REPORT_UPDATED if the affected versions (as a set, with the all-versions
flag) differ, of a withdrawn / deleted / moved-away one → nothing (never revives); ``withdrawn`` / ``deleted``
/ ``moved`` of a live report → REPORT_WITHDRAWN, else only recorded. A change whose copy is withdrawn (under
``osv/withdrawn/``, or with ``withdrawn`` set) counts as ``withdrawn`` whatever it is called. Key
``(report_id, modified or commit)``.

Severity (S6). A (package, report) with a REPORTED has final severity ``critical`` iff exposed, else ``high``
(compared for reports live at the end, S4).
Exposed: some version the report affected while live on the package (the union of the affected versions of
every change that made it live or updated it there; all-versions if any did) was served: listed by a Simple
page 200 whose status is active or archived (yanked versions are listed, so they count), or by a JSON-API 200
with files (a first upload); for all versions, any served version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from qwatch import events
from qwatch.ids import event_id

JOURNAL = "journal"
PAGES = "pages"

ACTIVE = "active"
ARCHIVED = "archived"
QUARANTINED = "quarantined"
REMOVED = "removed"

ROW_STATUS = {
    "create": ACTIVE,
    "project quarantined": QUARANTINED,
    "project quarantine cleared": ACTIVE,
    "remove project": REMOVED,
}
ROW_KIND = {"project quarantined": "QUARANTINED", "project quarantine cleared": "CLEARED", "remove project": "REMOVED"}
RELEASE_KIND = {
    "release quarantined": "RELEASE_QUARANTINED",
    "release quarantine cleared": "RELEASE_CLEARED",
    "remove release": "RELEASE_REMOVED",
    "yank release": "YANKED",
}
FIXED_SEVERITY = {
    "QUARANTINED": "high",
    "RESTORED": "high",
    "RELEASE_QUARANTINED": "high",
    "REMOVED": "medium",
    "RELEASE_REMOVED": "medium",
    "REPORT_UPDATED": "medium",
    "CLEARED": "low",
    "RELEASE_CLEARED": "low",
    "YANKED": "low",
    "ARCHIVED": "low",
    "UNARCHIVED": "low",
    "REPORT_WITHDRAWN": "low",
    "REPORT_ESCALATED": "critical",
}
"""S6's table; REPORTED is ``critical`` if exposed, else ``high``."""
LEVELS = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Expected:
    """One transition the spec requires."""

    event_id: str
    kind: str
    package: str
    version: str | None
    report_id: str | None
    key: tuple[object, ...]
    why: str

    def ident(self) -> tuple[str, str, str, str | None, str | None]:
        """What S4 compares: (event id, kind, package, version, report id)."""
        return (self.event_id, self.kind, self.package, self.version, self.report_id)


@dataclass
class Model:
    """Everything the spec says one package's observations must produce."""

    package: str
    transitions: dict[str, Expected] = field(default_factory=dict)
    severity: dict[str, str] = field(default_factory=dict)
    """Report id → final severity (only reports with a REPORTED)."""
    live_at_end: set[str] = field(default_factory=set)

    def idents(self) -> set[tuple[str, str, str, str | None, str | None]]:
        """The set S4 compares."""
        return {e.ident() for e in self.transitions.values()}


@dataclass(frozen=True, slots=True)
class Point:
    """One status fact on the timeline."""

    serial: int
    rank: int
    at: int
    status: str
    what: str
    """row, page or 404."""
    obs: events.JournalEntryObserved | events.ProjectStatusObserved

    def order(self) -> tuple[int, int, int, str, str]:
        """Timeline order; source and id only break exact ties (never met: fetch times are unique)."""
        return (self.serial, self.rank, self.at, self.obs.source, self.obs.event_id)


def is_404(p: events.ProjectStatusObserved) -> bool:
    """A page that shows nothing: removed or never registered."""
    return p.http_status == 404 or p.status == "absent" or p.last_serial is None


def anchor(p: events.ProjectStatusObserved, pages: Iterable[events.ProjectStatusObserved]) -> int:
    """A 404's place (and, with the pages authority, its key): the largest serial among the package's pages
    fetched before it, or -1."""
    before = [q.last_serial for q in pages if q.last_serial is not None and q.observed_at < p.observed_at]
    return max(before, default=-1)


JOURNAL_TICK_MS = 1000
"""Journal timestamps are whole seconds: a row stamped T was written somewhere in [T, T + 1 s)."""


def row_anchor(p: events.ProjectStatusObserved, rows: Iterable[events.JournalEntryObserved]) -> int:
    """The largest serial among the project status rows that happened (journal timestamp) before a 404 was
    fetched, or -1: with the journal authority a 404 floats after the newest fact that predates it, row or page.

    The one tie (README: "journal stamps are whole seconds"): a ``create`` stamped in the very second of the fetch
    may have been written after it, and a 404 is what the name showed just before a re-registration; such a row,
    and every row from it on, is taken as after the 404."""
    rows = list(rows)
    barrier = min(
        (
            r.serial
            for r in rows
            if r.action.strip() == "create" and r.timestamp <= p.observed_at < r.timestamp + JOURNAL_TICK_MS
        ),
        default=None,
    )
    return max(
        (r.serial for r in rows if r.timestamp < p.observed_at and (barrier is None or r.serial < barrier)),
        default=-1,
    )


def timeline(observations: Iterable[events.Observation], with_rows: bool) -> list[Point]:
    """Every status point, in timeline order."""
    obs = list(observations)
    pages = [o for o in obs if isinstance(o, events.ProjectStatusObserved)]
    rows = [
        o
        for o in obs
        if with_rows
        and isinstance(o, events.JournalEntryObserved)
        and o.version is None
        and o.action.strip() in ROW_STATUS
    ]
    points: list[Point] = []
    for p in pages:
        if is_404(p):
            points.append(Point(max(anchor(p, pages), row_anchor(p, rows)), 2, p.observed_at, REMOVED, "404", p))
        else:
            assert p.last_serial is not None
            points.append(Point(p.last_serial, 1, p.observed_at, p.status, "page", p))
    points += [Point(o.serial, 0, o.observed_at, ROW_STATUS[o.action.strip()], "row", o) for o in rows]
    return sorted(points, key=Point.order)


def runs(points: list[Point]) -> list[list[Point]]:
    """Maximal sequences of consecutive points of one status."""
    out: list[list[Point]] = []
    for p in points:
        if out and out[-1][-1].status == p.status:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def start_key(run: list[Point]) -> int:
    """A run's start key: the serial of its first page, or the anchor of its first 404."""
    return run[0].serial


def describe(p: Point) -> str:
    """A point, for people."""
    o = p.obs
    if isinstance(o, events.JournalEntryObserved):
        return f"row {o.serial} {o.action!r}"
    if p.what == "404":
        return f"404 page fetched at {o.observed_at} (anchor {p.serial})"
    return f"page {o.status}@{o.last_serial} fetched at {o.observed_at}"


class _Out:
    def __init__(self, package: str, ecosystem: str) -> None:
        self.model = Model(package)
        self.ecosystem = ecosystem

    def emit(
        self, kind: str, key: tuple[object, ...], why: str, version: str | None = None, report: str | None = None
    ) -> None:
        eid = event_id("processor", self.ecosystem, self.model.package, kind, *key)
        self.model.transitions.setdefault(
            eid, Expected(eid, kind, self.model.package, version, report, key, why)
        )  # the same id twice is one transition (it can only be the same upstream change)


def _journal_authority(out: _Out, obs: list[events.Observation]) -> None:
    points = timeline(obs, with_rows=True)
    rows = sorted(
        (o for o in obs if isinstance(o, events.JournalEntryObserved)),
        key=lambda o: o.serial,
    )
    previous: str | None = None
    for r in rows:
        action = r.action.strip()
        if r.version is not None:
            if action in RELEASE_KIND:
                out.emit(RELEASE_KIND[action], (r.version, r.serial), f"row {r.serial} {action!r}", version=r.version)
            continue
        if action not in ROW_STATUS:
            continue
        if action == "create":
            mine = Point(r.serial, 0, r.observed_at, ACTIVE, "row", r).order()
            earlier = [p for p in points if p.order() < mine]
            if earlier:
                out.emit("RESTORED", (r.serial,), f"row {r.serial} 'create' after {describe(earlier[-1])}")
        elif action != previous:
            out.emit(ROW_KIND[action], (r.serial,), f"row {r.serial} {action!r}")
        previous = action
    all_runs = runs([p for p in points if p.what != "404"])  # S3: a 404 is passed over for archive/unarchive
    for i, run in enumerate(all_runs):
        first = run[0]
        if i == 0 or first.what != "page":
            continue
        if run[0].status == ARCHIVED:
            why = f"{describe(first)} after {describe(all_runs[i - 1][-1])}"
            out.emit("ARCHIVED", (first.serial, first.at), why)
        elif run[0].status == ACTIVE:
            before = all_runs[i - 1][-1]
            if before.status == ARCHIVED and before.what == "page" and before.serial == first.serial:
                out.emit("UNARCHIVED", (first.serial, first.at), f"{describe(first)} after {describe(before)}")


def _pages_authority(out: _Out, obs: list[events.Observation]) -> None:
    all_runs = runs(timeline(obs, with_rows=False))
    for i, run in enumerate(all_runs):
        if i == 0:
            continue
        prev = all_runs[i - 1]
        first = run[0]
        why = f"{describe(first)} after {describe(prev[-1])}"
        status = first.status
        if status == REMOVED:
            out.emit("REMOVED", (start_key(run),), why)
            continue
        if prev[0].status == REMOVED:
            out.emit("RESTORED", ("after", start_key(prev)), why)
        if status == QUARANTINED:
            out.emit("QUARANTINED", (start_key(run),), why)
        elif status == ARCHIVED:
            out.emit("ARCHIVED", (first.serial, first.at), why)
        elif status == ACTIVE and prev[0].status == ARCHIVED:
            out.emit("UNARCHIVED", (first.serial, first.at), why)


def withdrawn_copy(o: events.ReportObserved) -> bool:
    """The report's file is a withdrawn one."""
    return o.withdrawn is not None or o.path.startswith("osv/withdrawn/")


def served_versions(obs: Iterable[events.Observation]) -> set[str]:
    """Every version PyPI was seen serving: pages 200 (active or archived) and JSON 200 with files."""
    served: set[str] = set()
    for o in obs:
        if isinstance(o, events.ProjectStatusObserved) and not is_404(o) and o.status in (ACTIVE, ARCHIVED):
            served.update(o.versions)
        elif isinstance(o, events.ReleasesObserved) and o.http_status == 200:
            served.update(r.version for r in o.releases if r.first_upload is not None)
    return served


def _reports(out: _Out, obs: list[events.Observation]) -> None:
    served = served_versions(obs)
    changes = [o for o in obs if isinstance(o, events.ReportObserved)]
    for rid in sorted({o.report_id for o in changes}):
        mine = sorted((o for o in changes if o.report_id == rid), key=lambda o: (o.upstream_time or 0, o.observed_at))
        state: str | None = None
        content: tuple[tuple[str, ...], bool] | None = None
        contents: list[tuple[tuple[str, ...], bool]] = []
        reported = False
        for o in mine:
            key = (rid, o.modified or o.commit)
            new = (tuple(sorted(set(o.affected_versions))), o.all_versions)
            why = f"{rid} {o.change} in {o.commit[:8]}"
            c = o.change
            if c in ("added", "reinstated", "modified", "existing") and withdrawn_copy(o):
                c = "withdrawn"  # S5: a withdrawn file never makes the report live, whatever the change says
            if c in ("added", "reinstated") or (c == "modified" and state is None):
                if state == "live":
                    if new != content:
                        out.emit("REPORT_UPDATED", key, why, report=rid)
                else:
                    out.emit("REPORTED", key, why, report=rid)
                    reported = True
                state, content = "live", new
                contents.append(new)
            elif c == "existing":
                if state is None:
                    state, content = "live", new
                    contents.append(new)
            elif c == "modified":
                if state == "live" and new != content:
                    out.emit("REPORT_UPDATED", key, why, report=rid)
                    content = new
                    contents.append(new)
            elif c in ("withdrawn", "deleted", "moved"):
                if state == "live":
                    out.emit("REPORT_WITHDRAWN", key, why, report=rid)
                state = c
        if reported:
            every = any(a for _, a in contents)
            affected = {v for vs, _ in contents for v in vs}
            exposed = bool(served) if every else bool(served & affected)
            out.model.severity[rid] = "critical" if exposed else "high"
        if state == "live":
            out.model.live_at_end.add(rid)


def expect(observations: Iterable[events.Observation], authority: str) -> Model:
    """What S1-S7 require of one package's observations (all of one package), whatever their arrival order."""
    obs = list(dict.fromkeys(observations))  # a set: a redelivered record is the same observation
    if not obs:
        raise ValueError("no observations")
    packages = {o.package for o in obs}
    if len(packages) != 1:
        raise ValueError(f"observations of several packages: {sorted(packages)}")
    if authority not in (JOURNAL, PAGES):
        raise ValueError(f"unknown authority {authority!r}")
    out = _Out(obs[0].package, obs[0].ecosystem)
    if authority == JOURNAL:
        _journal_authority(out, obs)
    else:
        _pages_authority(out, [o for o in obs if not isinstance(o, events.JournalEntryObserved)])
    _reports(out, obs)
    return out.model
