"""How urgent a transition is. Fixed per kind, except where it rests on a fact about the past (README, S6).

| kind                                                                  | severity                         |
|-----------------------------------------------------------------------|----------------------------------|
| QUARANTINED, RESTORED, RELEASE_QUARANTINED                            | high                             |
| REMOVED, RELEASE_REMOVED, REPORT_UPDATED                              | medium                           |
| CLEARED, RELEASE_CLEARED, YANKED, ARCHIVED, UNARCHIVED, REPORT_WITHDRAWN | low                           |
| REPORTED                                                              | critical if exposed, else high   |
| REPORT_ESCALATED, PROVENANCE_INVALID                                  | critical                         |
| PROVENANCE_LOST, PROVENANCE_CHANGED                                   | high                             |

Why fixed: a severity computed from whatever else happened to have arrived first (the status, a live report)
depends on arrival order, and nothing re-evaluates a transition once it is published. The one fact that makes a
report urgent, *exposure* (PyPI has served a version the report affects, at any time we know of), only ever grows,
so REPORTED takes it into account and a later exposure emits one REPORT_ESCALATED: the final severity of a report
on a package is then the same in every order.
"""

from __future__ import annotations

from collections.abc import Iterable

from qwatch.events import kinds as k
from qwatch.events.state import ReportRecord

LEVELS = ("low", "medium", "high", "critical")

FIXED = {
    k.K_QUARANTINED: "high",
    k.K_RESTORED: "high",
    k.K_RELEASE_QUARANTINED: "high",
    k.K_REMOVED: "medium",
    k.K_RELEASE_REMOVED: "medium",
    k.K_REPORT_UPDATED: "medium",
    k.K_CLEARED: "low",
    k.K_RELEASE_CLEARED: "low",
    k.K_YANKED: "low",
    k.K_ARCHIVED: "low",
    k.K_UNARCHIVED: "low",
    k.K_REPORT_WITHDRAWN: "low",
    k.K_REPORT_ESCALATED: "critical",
    k.K_PROVENANCE_LOST: "high",
    k.K_PROVENANCE_CHANGED: "high",
    k.K_PROVENANCE_INVALID: "critical",
}


def exposed(report: ReportRecord, seen_versions: Iterable[str]) -> bool:
    """True when PyPI has served a version ``report`` affected while live here (any version, once it covered all):
    what was served while the report named it stays a fact after an edit narrows the report."""
    seen = seen_versions if isinstance(seen_versions, (set, frozenset)) else set(seen_versions)
    if report.all_versions or report.all_ever:
        return bool(seen)
    return not seen.isdisjoint(report.affected_versions) or not seen.isdisjoint(report.affected_ever)


def reported(report: ReportRecord, seen_versions: Iterable[str]) -> str:
    """REPORTED's severity: critical when the package is exposed to the report, else high."""
    return "critical" if exposed(report, seen_versions) else "high"


def severity(kind: str) -> str:
    """The fixed severity of ``kind`` (REPORTED's depends on exposure: see ``reported``)."""
    try:
        return FIXED[kind]
    except KeyError:
        raise ValueError(f"kind {kind!r} has no fixed severity") from None
