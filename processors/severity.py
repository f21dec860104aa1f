"""How urgent a transition is, from what it means for someone who may install the package right now.

| kind                | severity                                                                    |
|---------------------|-----------------------------------------------------------------------------|
| REPORTED            | critical: PyPI serves the package (active/archived) and an affected version |
|                     | is visible (or the report covers all versions); high: installable or not    |
|                     | yet checked (any non-PyPI ecosystem); medium: quarantined or removed        |
| REPORT_UPDATED      | one level below what REPORTED would be now                                  |
| REPORT_WITHDRAWN    | low                                                                         |
| QUARANTINED         | high (PyPI itself acted; installs break)                                    |
| CLEARED             | high if a live report still names the package, else low                     |
| REMOVED             | medium (protective, but breaks builds)                                      |
| RESTORED            | high (a removed name is back: possibly re-registered by someone else);      |
|                     | critical if a live report names the package                                 |
| ARCHIVED/UNARCHIVED | low                                                                         |
| RELEASE_QUARANTINED | high                                                                        |
| RELEASE_CLEARED     | high if a live report affects that version, else low                        |
| RELEASE_REMOVED     | medium                                                                      |
| YANKED              | medium if a live report affects that version, else low                      |
"""

from __future__ import annotations

from collections.abc import Iterable

from processors import kinds as k
from processors.state import ACTIVE, ARCHIVED, QUARANTINED, REMOVED, ReportRecord

LEVELS = ("low", "medium", "high", "critical")

_FIXED = {
    k.K_REPORT_WITHDRAWN: "low",
    k.K_QUARANTINED: "high",
    k.K_REMOVED: "medium",
    k.K_ARCHIVED: "low",
    k.K_UNARCHIVED: "low",
    k.K_RELEASE_QUARANTINED: "high",
    k.K_RELEASE_REMOVED: "medium",
}


def _affects(report: ReportRecord, version: str) -> bool:
    return report.all_versions or version in report.affected_versions


def _reported(status: str, report: ReportRecord | None, visible: Iterable[str]) -> str:
    if status in (QUARANTINED, REMOVED):
        return "medium"
    if status not in (ACTIVE, ARCHIVED) or report is None:
        return "high"
    if report.all_versions or not set(report.affected_versions).isdisjoint(visible):
        return "critical"
    return "high"


def severity(
    kind: str,
    status: str,
    live: Iterable[ReportRecord],
    visible: Iterable[str] = (),
    report: ReportRecord | None = None,
    version: str | None = None,
) -> str:
    """The severity of ``kind`` given the package's status and live reports after the change."""
    fixed = _FIXED.get(kind)
    if fixed is not None:
        return fixed
    live = tuple(live)
    if kind == k.K_REPORTED:
        return _reported(status, report, visible)
    if kind == k.K_REPORT_UPDATED:
        return LEVELS[max(0, LEVELS.index(_reported(status, report, visible)) - 1)]
    if kind == k.K_CLEARED:
        return "high" if live else "low"
    if kind == k.K_RESTORED:
        return "critical" if live else "high"
    affected = version is not None and any(_affects(r, version) for r in live)
    if kind == k.K_RELEASE_CLEARED:
        return "high" if affected else "low"
    if kind == k.K_YANKED:
        return "medium" if affected else "low"
    raise ValueError(f"unknown transition kind {kind!r}")
