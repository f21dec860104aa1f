"""The subscribers' own records: registered inventories and the alerts raised for them.

Mirrored field by field by ``schemas/InventoryRecord.avsc`` and ``schemas/Alert.avsc`` (the parity test walks
``qwatch.events``, which re-exports these). Frozen and tuple-based like every event, because the ids are computed
from their content. This module imports nothing from ``qwatch`` at import time but ``qwatch.frozen`` (which
imports nothing itself): ``qwatch.events`` imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class InventoryPackage:
    """One locked package, reduced to what matching and the dependency path need."""

    SCHEMA: ClassVar[str] = "InventoryPackage"
    name: str
    version: str | None
    source_kind: str
    source_url: str | None
    direct: bool
    parent: str | None
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InventoryRecord:
    """A registered lockfile; the newest record per project on the compacted topic is the truth."""

    SCHEMA: ClassVar[str] = "InventoryRecord"
    project: str
    lockfile: str
    format: str
    root: str | None
    fingerprint: str
    registered_at: int
    removed: bool
    packages: tuple[InventoryPackage, ...]

    def path_to(self, name: str) -> tuple[str, ...]:
        """Follow ``parent`` links up to the root; the stored tree makes this O(depth), not a graph search."""
        parents = {p.name: p.parent for p in self.packages}
        if name not in parents:
            return ()
        chain = [name]
        step = parents[name]
        while step is not None and step not in chain:
            chain.append(step)
            step = parents.get(step)
        if self.root is not None and chain[-1] != self.root and self.root not in chain:
            chain.append(self.root)
        return tuple(reversed(chain))

    def render_line(self) -> str:
        """The ``qwatch tail`` line: which project, how many packages, or that it was removed."""
        from qwatch.logs import safe

        if self.removed:
            return f"project={safe(self.project)} removed"
        pypi = sum(1 for p in self.packages if p.source_kind == "pypi")
        return (
            f"project={safe(self.project)} {safe(self.lockfile)} ({self.format}) "
            f"packages={len(self.packages)} pypi={pypi}"
        )


@dataclass(frozen=True, slots=True)
class Alert:
    """A transition matched to a registered inventory, with the dependency path a developer can act on."""

    SCHEMA: ClassVar[str] = "Alert"
    event_id: str
    source: str
    ecosystem: str
    package: str
    observed_at: int
    upstream_time: int | None
    project: str
    lockfile: str
    version: str | None
    locked_versions: tuple[str, ...]
    kind: str
    severity: str
    path: tuple[str, ...]
    transition_id: str
    report_id: str | None
    retroactive: bool
    summary: str
    remediation: str = ""
    """What to do, in one sentence (the gate's wording, ``qwatch.remediation``); empty on older records."""
    links: tuple[str, ...] = ()
    """Where to read more: the PyPI project page, the release page, the report on osv.dev."""
    journal_serial: int | None = None
    """The PyPI journal serial the transition rests on, when the journal is its evidence."""

    def render_line(self) -> str:
        """The ``qwatch tail`` line: severity and kind first, then who is hit and how."""
        from qwatch.logs import safe

        version = f"=={safe(self.version)}" if self.version else ""
        report = f" {safe(self.report_id)}" if self.report_id else ""
        retro = " (retroactive)" if self.retroactive else ""
        return (
            f"{self.severity.upper():<8} {self.kind}{report} project={safe(self.project)} "
            f"{safe(self.package)}{version} via {safe(' > '.join(self.path), 300)}{retro}"
        )
