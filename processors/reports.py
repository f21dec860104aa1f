"""Report facts: OpenSSF malicious-package report changes for one package (README, S5 and S6).

A report is ordered by its own ``modified`` time (bumped on every merge and on withdrawal), with the commit time
breaking ties (an un-withdrawal may keep ``modified``). A change older than the report as last seen is stale: the
OpenSSF ingestor emits in commit order, so an older change arriving late is a redelivery or a replay, and emitting
it would, say, re-alert on a report that is already withdrawn.

Changes, as the ingestor names them:
* ``added``, ``reinstated``: the report becomes live here → REPORTED (REPORT_UPDATED if it already was, with other
  affected versions).
* ``modified``: an edit of a live report → REPORT_UPDATED when its affected versions change; REPORTED when the
  report was never seen here (a diff that starts after its addition). It **never revives a withdrawn report**: an
  edit of a file under ``osv/withdrawn/`` is still a withdrawn report.
* ``existing``: a snapshot's live report. The first time the package sees it, it is a baseline, recorded without
  a transition (S2); over a withdrawn report it is a reinstatement seen through a snapshot → REPORTED.
* ``withdrawn``, ``deleted``, ``moved`` (the report now names another package): gone → REPORT_WITHDRAWN if it was
  live here.
REPORTED is ``critical`` when PyPI has served an affected version (``severity.exposed``), else ``high``, and a
later exposure escalates it once (``escalate``).
"""

from __future__ import annotations

from processors.draft import Draft, Pending
from processors.severity import exposed, reported
from qwatch import events, ids
from qwatch.events import kinds as k
from qwatch.events.state import ReportRecord

LIVE = "live"
WITHDRAWN_DIR = "osv/withdrawn/"
MAX_AFFECTED_EVER = 256
GONE = {"withdrawn": "withdrawn", "deleted": "deleted", "moved": "moved"}
LIVE_CHANGES = frozenset({"added", "modified", "reinstated", "existing"})
REVIVING = frozenset({"added", "reinstated", "existing"})
"""Changes that make a withdrawn (or deleted, or moved-away) report live again; ``modified`` is not one."""


def _modified_ms(obs: events.ReportObserved) -> int:
    if obs.modified:
        try:
            return ids.parse_rfc3339_ms(obs.modified)
        except ValueError:
            pass
    return obs.upstream_time or 0


def _kind(current: ReportRecord | None, new: ReportRecord, change: str) -> str | None:
    if new.status != LIVE:
        return k.K_REPORT_WITHDRAWN if current is not None and current.status == LIVE else None
    if current is None:
        return None if change == "existing" else k.K_REPORTED
    if current.status != LIVE:
        return k.K_REPORTED
    if set(current.affected_versions) != set(new.affected_versions) or current.all_versions != new.all_versions:
        return k.K_REPORT_UPDATED
    return None


def withdrawn_copy(obs: events.ReportObserved) -> bool:
    """The change describes a withdrawn file (under ``osv/withdrawn/``, or with ``withdrawn`` set): whatever the
    change is called, it never makes the report live (records written before the ingestor said so still can)."""
    return obs.withdrawn is not None or obs.path.startswith(WITHDRAWN_DIR)


def on_report(d: Draft, obs: events.ReportObserved) -> None:
    """Apply one report change."""
    if obs.change in LIVE_CHANGES and withdrawn_copy(obs):
        status = "withdrawn"
    elif obs.change in LIVE_CHANGES:
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
        if status == LIVE and current.status != LIVE and obs.change not in REVIVING:
            status = current.status  # an edit of a withdrawn report: still withdrawn (S5)
    announced = current.announced if current is not None and current.status == LIVE and status == LIVE else ""
    ever, all_ever = (current.affected_ever, current.all_ever) if current is not None else ((), False)
    if status == LIVE:
        ever = tuple(dict.fromkeys((*ever, *obs.affected_versions)))[-MAX_AFFECTED_EVER:]
        all_ever = all_ever or obs.all_versions
    record = ReportRecord(
        obs.report_id,
        status,
        tuple(obs.affected_versions),
        obs.all_versions,
        obs.modified,
        modified_at,
        obs.upstream_time,
        current.first_seen if current is not None else obs.observed_at,
        announced,
        ever,
        all_ever,
    )
    reports[obs.report_id] = record
    d.note("applied")
    kind = _kind(current, record, obs.change)
    if kind is None:
        return
    eid = d.transition_id(kind, obs.report_id, fact_key)
    if d.emitted(eid):
        d.add_evidence([eid], obs.upstream_time)
        return
    detail = f"{obs.change} in {obs.commit[:12]}" if obs.commit else obs.change
    summary = k.describe(kind, obs.ecosystem, obs.package, None, obs.report_id, detail)
    level = ""
    if kind == k.K_REPORTED:
        level = reported(record, d.seen_versions)
        reports[obs.report_id] = record = _announce(record, level)
    d.decide(Pending(kind, eid, (d.sighting(),), obs.upstream_time, summary, report=record, severity=level))
    if kind == k.K_REPORTED and obs.ecosystem == "PyPI":
        d.watch_request("new-report", (obs.report_id, fact_key), obs.upstream_time)
    if kind == k.K_REPORT_UPDATED:
        escalate(d)


def _announce(r: ReportRecord, level: str) -> ReportRecord:
    return ReportRecord(
        r.report_id, r.status, r.affected_versions, r.all_versions, r.modified, r.modified_at, r.commit_time,
        r.first_seen, level, r.affected_ever, r.all_ever,
    )  # fmt: skip


def escalate(d: Draft) -> None:
    """One REPORT_ESCALATED for each live report announced at ``high`` that the package is now exposed to."""
    if not d.base.reports and d.reports is None:
        return
    seen = set(d.seen_versions)
    if not seen:
        return
    reports = d.report_map()
    for rid, r in list(reports.items()):
        if r.status != LIVE or r.announced != "high" or not exposed(r, seen):
            continue
        reports[rid] = r = _announce(r, "critical")
        d.note("applied")
        eid = d.transition_id(k.K_REPORT_ESCALATED, rid, r.modified or str(r.modified_at))
        if d.emitted(eid):
            continue
        summary = k.describe(k.K_REPORT_ESCALATED, d.base.ecosystem, d.base.package, None, rid, d.obs.source)
        d.decide(Pending(k.K_REPORT_ESCALATED, eid, (d.sighting(),), d.obs.upstream_time, summary, report=r))
