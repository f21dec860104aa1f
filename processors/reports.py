"""Report facts: OpenSSF malicious-package report changes for one package.

A report is ordered by its own ``modified`` time (bumped on every merge and on withdrawal), with the commit time
breaking ties (an un-withdrawal may keep ``modified``). A change older than the report as last seen is stale: the
OpenSSF ingestor emits in commit order, so an older change arriving late is a redelivery or a replay, and emitting
it would, say, re-alert on a report that is already withdrawn.

Kinds: a report that becomes live (added, reinstated, or first seen as modified) is REPORTED; a live report whose
affected versions change is REPORT_UPDATED (a merge that only adds an origin is not news); a live report that is
withdrawn or deleted is REPORT_WITHDRAWN. A withdrawal of a report never seen live is recorded silently.
"""

from __future__ import annotations

from processors import kinds as k
from processors.draft import Draft, Pending
from processors.state import ReportRecord
from qwatch import events, ids

LIVE = "live"
GONE = {"withdrawn": "withdrawn", "deleted": "deleted"}
LIVE_CHANGES = frozenset({"added", "modified", "reinstated"})


def _modified_ms(obs: events.ReportObserved) -> int:
    if obs.modified:
        try:
            return ids.parse_rfc3339_ms(obs.modified)
        except ValueError:
            pass
    return obs.upstream_time or 0


def _kind(current: ReportRecord | None, new: ReportRecord) -> str | None:
    if new.status != LIVE:
        return k.K_REPORT_WITHDRAWN if current is not None and current.status == LIVE else None
    if current is None or current.status != LIVE:
        return k.K_REPORTED
    if set(current.affected_versions) != set(new.affected_versions) or current.all_versions != new.all_versions:
        return k.K_REPORT_UPDATED
    return None


def on_report(d: Draft, obs: events.ReportObserved) -> None:
    """Apply one report change."""
    if obs.change in LIVE_CHANGES:
        status = LIVE
    elif obs.change in GONE:
        status = GONE[obs.change]
    else:
        return
    reports = d.report_map()
    current = reports.get(obs.report_id)
    modified_at = _modified_ms(obs)
    position = (modified_at, obs.upstream_time or 0)
    fact_key = obs.modified or obs.commit
    if current is not None:
        seen_at = (current.modified_at, current.commit_time or 0)
        if position < seen_at or (position == seen_at and (current.status == LIVE) == (status == LIVE)):
            candidates = [d.transition_id(kind, obs.report_id, fact_key) for kind in k.REPORT_KINDS]
            if position == seen_at and d.add_evidence(candidates, obs.upstream_time):
                d.note("evidence")
            else:
                d.note("stale" if position < seen_at else "duplicate")
            return
    record = ReportRecord(
        obs.report_id,
        status,
        tuple(obs.affected_versions),
        obs.all_versions,
        obs.modified,
        modified_at,
        obs.upstream_time,
        current.first_seen if current is not None else obs.observed_at,
    )
    reports[obs.report_id] = record
    d.note("applied")
    kind = _kind(current, record)
    if kind is None:
        return
    eid = d.transition_id(kind, obs.report_id, fact_key)
    if d.emitted(eid):
        d.add_evidence([eid], obs.upstream_time)
        return
    detail = f"{obs.change} in {obs.commit[:12]}" if obs.commit else obs.change
    summary = k.describe(kind, obs.ecosystem, obs.package, None, obs.report_id, detail)
    d.decide(Pending(kind, eid, (d.sighting(),), obs.upstream_time, summary, report=record))
    if kind == k.K_REPORTED and obs.ecosystem == "PyPI":
        d.watch_request("new-report", (obs.report_id, fact_key), obs.upstream_time)
