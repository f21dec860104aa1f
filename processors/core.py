"""The processor's pure core: ``step(state, observation, now_ms)`` → new state, transitions, watch requests.

No I/O and no clock (``now_ms`` is passed in), so the same inputs always give the same outputs and the Kafka and
JSONL adapters share it. What each observation can prove:

* ``JournalEntryObserved``: authoritative, timestamped change rows (project status, release level).
* ``ProjectStatusObserved``: the authoritative state at a serial (a 404 means removed or never existed).
* ``ReleasesObserved``: yank flags and which releases exist; a 404 is ambiguous (quarantined? removed?), so it
  only asks the pypi ingestors for a confirming look (WatchRequest ``json-404``).
* ``IndexMembershipObserved``: a hint; the CDN's root index lags. Dropping out of it never makes a transition,
  it asks for a confirming look (``dropped-from-root-index``).
* ``ReportObserved``: report changes; a new report on a PyPI package also asks for a look (``new-report``).
* ``ProvenanceObserved``: who attested each file of the recent releases; drift from the project's habit is a
  transition (``processors.provenance``).

Ordering and idempotence: project status goes through the timeline (``processors.timeline``), release facts are
last-writer-wins by serial, reports by their ``modified`` time. An exact redelivery is recognized by its key in
``state.applied``; anything older than the state is stale and changes nothing; a later source for a change that
was already emitted only adds evidence to the remembered fact (the emitted Kafka record cannot be amended).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from processors import provenance, releases, reports, status
from processors.draft import AUTHORITIES, JOURNAL, Draft, Pending, applied_key, snapshot
from processors.severity import severity
from qwatch import events
from qwatch.events.state import QUARANTINED, REMOVED, PackageStateRecord, empty_state


class StepResult(NamedTuple):
    """What one observation did: the state to keep (None: nothing worth keeping), outputs, and the outcome label.

    A NamedTuple rather than a frozen dataclass: it is built once per observation, and that shows in the core's
    throughput."""

    state: PackageStateRecord | None
    transitions: tuple[events.Transition, ...]
    watch_requests: tuple[events.WatchRequest, ...]
    outcome: str


_result: Callable[[type[StepResult], tuple[Any, ...]], StepResult] = tuple.__new__
"""Builds a StepResult without the Python-level ``__new__`` NamedTuple generates (one frame per observation, which
the core's throughput shows)."""


GONE = (QUARANTINED, REMOVED)
"""Statuses in which PyPI serves nothing: a drop from the index or a JSON 404 is then already explained."""


def _on_page(d: Draft, obs: events.ProjectStatusObserved) -> None:
    if status.on_page(d, obs):
        releases.on_page_versions(d, obs)


def _on_journal(d: Draft, obs: events.JournalEntryObserved) -> None:
    action = obs.action.strip()
    if not d.see_journal(obs.serial):
        # At or below the newest row applied: the ingestor emits rows in serial order, so this is a redelivery or
        # a rebuild; the row's transition (if any) was decided when it first came.
        d.note("duplicate")
        return
    if obs.version is None and action in status.JOURNAL_STATUS:
        status.on_journal_status(d, obs, action)
    elif obs.version is not None and action in releases.JOURNAL_ACTIONS:
        releases.on_journal(d, obs, action)


def _on_index(d: Draft, obs: events.IndexMembershipObserved) -> None:
    if not obs.present and d.status not in GONE:
        d.watch_request("dropped-from-root-index", (obs.event_id,), obs.upstream_time)
    elif obs.present and d.status in GONE:
        d.watch_request("reappeared-in-root-index", (obs.event_id,), obs.upstream_time)


def _on_releases(d: Draft, obs: events.ReleasesObserved) -> None:
    if obs.http_status == 404:
        if d.status not in GONE:
            d.watch_request("json-404", (obs.event_id,), obs.upstream_time)
        return
    if obs.http_status != 200:
        return
    if d.status in GONE and obs.last_serial is not None and d.points:
        if obs.last_serial > max(p.serial for p in d.points):
            d.watch_request("json-contradicts-state", (obs.event_id,), obs.upstream_time)
    releases.on_json(d, obs)


_HANDLERS: dict[type, Callable[[Draft, Any], None]] = {
    events.ProjectStatusObserved: _on_page,
    events.JournalEntryObserved: _on_journal,
    events.IndexMembershipObserved: _on_index,
    events.ReleasesObserved: _on_releases,
    events.ReportObserved: reports.on_report,
    events.ProvenanceObserved: provenance.on_provenance,
}


def _with_status(s: events.PackageState, status: str) -> events.PackageState:
    """``dataclasses.replace(s, status=status)`` at a fraction of its cost (it runs for most transitions)."""
    return events.PackageState(
        status,
        s.last_serial,
        s.quarantined_versions,
        s.removed_versions,
        s.yanked_versions,
        s.live_reports,
        s.withdrawn_reports,
    )


def _build(d: Draft, p: Pending, before: events.PackageState | None, after: events.PackageState) -> events.Transition:
    if p.before_status is not None and before is not None:
        before = _with_status(before, p.before_status)
    if p.after_status is not None:
        after = _with_status(after, p.after_status)
    level = p.severity or severity(p.kind)
    return events.Transition(
        event_id=p.event_id,
        kind=p.kind,
        ecosystem=d.base.ecosystem,
        package=d.base.package,
        severity=level,
        version=p.version,
        report_id=p.report.report_id if p.report is not None else None,
        before=before,
        after=after,
        evidence=tuple(events.Evidence(s.observation_id, s.source, s.observed_at) for s in p.evidence),
        upstream_time=p.upstream_time,
        detected_at=d.now_ms,
        summary=p.summary,
    )


_PROJECT_ACTIONS = frozenset(status.JOURNAL_STATUS)
_RELEASE_ACTIONS = frozenset(releases.JOURNAL_ACTIONS)
DECIDING_JOURNAL_ACTIONS = _PROJECT_ACTIONS | _RELEASE_ACTIONS
"""Every journal action the core can act on; a row with any other action is ignored."""


def step(
    state: PackageStateRecord | None, obs: events.Observation, now_ms: int, authority: str = JOURNAL
) -> StepResult:
    """Apply one observation to one package's state (None when the package is new to us).

    ``authority`` (README, S3): ``journal`` when the journal ingestor runs, so its rows alone decide what PyPI
    journals; ``pages`` when it does not, so the Simple pages' timeline does."""
    # In line, not a helper: most observations are journal rows, and most of those end here.
    if type(obs) is events.JournalEntryObserved and (
        obs.action.strip() not in (_PROJECT_ACTIONS if obs.version is None else _RELEASE_ACTIONS)
    ):
        # 'new release', 'add py3 file x', role changes (most of the journal): nothing the processor decides on.
        return _result(StepResult, (state, (), (), "ignored"))
    key = applied_key(obs)
    if state is not None:
        if state.package != obs.package or state.ecosystem != obs.ecosystem:
            raise ValueError(f"state for {state.ecosystem}:{state.package} given an observation of {obs.package}")
        if key in state.applied:
            return _result(StepResult, (state, (), (), "duplicate"))
        base = state
    else:
        base = empty_state(obs.ecosystem, obs.package, now_ms)
    if authority not in AUTHORITIES:
        raise ValueError(f"authority must be one of {', '.join(AUTHORITIES)}, not {authority!r}")
    d = Draft(base, state is not None, obs, now_ms, key, authority)
    handler = _HANDLERS.get(type(obs))
    if handler is not None:
        handler(d, obs)
    new_state = d.freeze() if d.changed else state
    transitions: tuple[events.Transition, ...] = ()
    if d.pending:
        before = snapshot(base.status, base.last_serial, base.releases, base.reports) if state is not None else None
        final = new_state if new_state is not None else base
        after = snapshot(final.status, final.last_serial, final.releases, final.reports)
        transitions = tuple(_build(d, p, before, after) for p in d.pending)
    return _result(StepResult, (new_state, transitions, tuple(d.watch), d.outcome))
