"""Alerts, pure part: a transition × a registered inventory → an Alert, and what a package's current state implies.

Only PyPI-sourced packages match (a private-index or git package of the same name is somebody else's code).
Release kinds match only the locked version they name; report kinds match the versions the report affects when
the processor's state says which (otherwise every locked version: better a noisy alert than a missed one); every
other kind concerns the whole project. The alert id hashes the project and the transition id, so the live path
and the retroactive path raise the same alert once, however often either runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from qwatch import events, ids
from qwatch.events.outputs import Alert, InventoryPackage, InventoryRecord
from qwatch.logs import safe
from qwatch.remediation import links, remediation
from subscribers.gate.facts import ReportFact, vkey

SOURCE = "alerts"
PYPI = "PyPI"
JOURNAL = "pypi-journal"
RELEASE_KINDS = frozenset({"RELEASE_QUARANTINED", "RELEASE_CLEARED", "RELEASE_REMOVED", "YANKED"})
REPORT_KINDS = frozenset({"REPORTED", "REPORT_UPDATED", "REPORT_WITHDRAWN", "REPORT_ESCALATED"})
SEVERITIES = ("low", "medium", "high", "critical")
MAX_KEYS_PER_PACKAGE = 64
"""Latest transitions remembered per package for retroactive checks (one per kind/version/report)."""


def alert_id(project: str, transition_id: str) -> str:
    """Deterministic: the same project hit by the same transition is one alert."""
    return ids.event_id(SOURCE, project, transition_id)


def _affected(
    t: events.Transition, locked: list[InventoryPackage], scopes: Mapping[str, ReportFact]
) -> list[str | None]:
    if t.kind in RELEASE_KINDS:
        if t.version is None:
            return []
        key = vkey(t.version)
        return [p.version for p in locked if p.version is not None and vkey(p.version) == key]
    if t.kind in REPORT_KINDS and t.report_id is not None:
        scope = scopes.get(t.report_id)
        if scope is not None:
            return [p.version for p in locked if scope.affects(p.version)]
    return [p.version for p in locked]


def match(
    t: events.Transition,
    record: InventoryRecord,
    now_ms: int,
    scopes: Mapping[str, ReportFact] | None = None,
    retroactive: bool = False,
) -> Alert | None:
    """The alert this transition raises for this inventory, if any."""
    if t.ecosystem != PYPI or record.removed:
        return None
    locked = [p for p in record.packages if p.name == t.package and p.source_kind == "pypi"]
    if not locked:
        return None
    affected = _affected(t, locked, scopes or {})
    if not affected:
        return None
    versions = tuple(dict.fromkeys(v for v in affected if v is not None))
    path = record.path_to(t.package) or (t.package,)
    pin = f"=={versions[0]}" if versions else " (unpinned)"
    summary = (
        f"{t.severity.upper()} {t.kind}: {record.project} uses {t.package}{pin} via {' > '.join(path)}"
        f" ({record.lockfile}); {t.summary}"
    )
    return Alert(
        event_id=alert_id(record.project, t.event_id),
        source=SOURCE,
        ecosystem=t.ecosystem,
        package=t.package,
        observed_at=now_ms,
        upstream_time=t.upstream_time,
        project=record.project,
        lockfile=record.lockfile,
        version=versions[0] if versions else None,
        locked_versions=versions,
        kind=t.kind,
        severity=t.severity,
        path=path,
        transition_id=t.event_id,
        report_id=t.report_id,
        retroactive=retroactive,
        summary=safe(summary, 600),
        remediation=remediation(t.kind, t.package, versions[0] if versions else None),
        links=links(t.package, t.version, t.report_id),
        journal_serial=t.after.last_serial if any(e.source == JOURNAL for e in t.evidence) else None,
    )


def match_all(
    t: events.Transition, records: Iterable[InventoryRecord], now_ms: int, scopes: Mapping[str, ReportFact]
) -> list[Alert]:
    """Every inventory the transition hits."""
    return [a for r in records if (a := match(t, r, now_ms, scopes)) is not None]


@dataclass
class _Package:
    latest: events.Transition
    by_key: dict[tuple[str, str | None, str | None], events.Transition] = field(default_factory=dict)


class CurrentState:
    """Latest transitions per package: enough to say "bad right now, and which transition says so".

    Built from the transitions topic (always there); the newest ``after`` is the package's current state, and
    the newest transition per (kind, version, report) is what a retroactive alert points at.
    """

    def __init__(self) -> None:
        self._packages: dict[str, _Package] = {}

    def __len__(self) -> int:
        return len(self._packages)

    def apply(self, t: events.Transition) -> None:
        """Remember a transition (in topic order)."""
        if t.ecosystem != PYPI:
            return
        entry = self._packages.get(t.package)
        if entry is None:
            entry = self._packages[t.package] = _Package(t)
        entry.latest = t
        key = (t.kind, t.version, t.report_id)
        entry.by_key.pop(key, None)
        entry.by_key[key] = t
        while len(entry.by_key) > MAX_KEYS_PER_PACKAGE:
            del entry.by_key[next(iter(entry.by_key))]

    def adverse(self, package: str) -> list[events.Transition]:
        """The transitions behind every adverse condition the package is in now (empty when it is fine)."""
        entry = self._packages.get(package)
        if entry is None:
            return []
        after = entry.latest.after
        wanted: list[tuple[str, str | None, str | None]] = []
        if after.status == "quarantined":
            wanted.append(("QUARANTINED", None, None))
        elif after.status == "removed":
            wanted.append(("REMOVED", None, None))
        wanted += [("RELEASE_QUARANTINED", v, None) for v in after.quarantined_versions]
        wanted += [("RELEASE_REMOVED", v, None) for v in after.removed_versions]
        found: dict[str, events.Transition] = {}
        for key in wanted:
            t = entry.by_key.get(key)
            found.setdefault(t.event_id if t else entry.latest.event_id, t or entry.latest)
        for report in after.live_reports:
            t = _latest_of(entry, ("REPORT_ESCALATED", "REPORT_UPDATED", "REPORTED"), report) or entry.latest
            found.setdefault(t.event_id, t)
        return list(found.values())

    def retroactive(self, record: InventoryRecord, now_ms: int, scopes: Mapping[str, ReportFact]) -> list[Alert]:
        """Alerts for an inventory from current state alone (a lockfile registered after the fact)."""
        out: list[Alert] = []
        for name in sorted({p.name for p in record.packages if p.source_kind == "pypi"}):
            for t in self.adverse(name):
                alert = match(t, record, now_ms, scopes, retroactive=True)
                if alert is not None:
                    out.append(alert)
        return out


def _latest_of(entry: _Package, kinds: tuple[str, ...], report_id: str) -> events.Transition | None:
    candidates = [t for (kind, _, rid), t in entry.by_key.items() if kind in kinds and rid == report_id]
    return candidates[-1] if candidates else None


def at_least(severity: str, minimum: str) -> bool:
    """True when ``severity`` is ``minimum`` or worse (unknown severities always pass)."""
    if severity not in SEVERITIES or minimum not in SEVERITIES:
        return True
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)
