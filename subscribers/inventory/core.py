"""Registered inventories, pure part: a parsed lockfile → the compact record on ``qwatch.inventory.v1``.

The record keeps, per package, the parent on one shortest path from the root instead of the whole graph: that
is all an alert needs to print the dependency path, and it stays small for a 1,000-package lockfile. A
re-registration with the same bytes produces the same fingerprint, so consumers can skip it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from qwatch import events, ids
from qwatch.events.outputs import InventoryPackage, InventoryRecord
from subscribers.inventory.lockfiles import Inventory

SOURCE = "inventory"
WATCH_REASON = "inventory"
PYPI = "PyPI"


def build_record(
    project: str, lockfile_name: str, inventory: Inventory, lock_bytes: bytes, now_ms: int
) -> InventoryRecord:
    """One record for the whole lockfile; the path tree is computed once per name."""
    parents: dict[str, str | None] = {}
    packages = []
    for p in inventory.packages:
        if p.normalized not in parents:
            path = inventory.path_to(p.normalized)
            parents[p.normalized] = path[-2] if len(path) >= 2 else None
        packages.append(
            InventoryPackage(
                name=p.normalized,
                version=p.version,
                source_kind=p.source.kind,
                source_url=p.source.url,
                direct=p.direct,
                parent=parents[p.normalized],
                groups=tuple(p.groups),
            )
        )
    return InventoryRecord(
        project=project,
        lockfile=lockfile_name,
        format=inventory.format,
        root=inventory.root,
        fingerprint=hashlib.sha256(lock_bytes).hexdigest(),
        registered_at=now_ms,
        removed=False,
        packages=tuple(packages),
    )


def removal(project: str, now_ms: int) -> InventoryRecord:
    """The soft tombstone that unregisters a project."""
    return InventoryRecord(project, "", "", None, "", now_ms, True, ())


def pypi_names(record: InventoryRecord) -> list[str]:
    """Distinct PyPI-sourced package names, sorted: only these can match PyPI and OpenSSF facts."""
    return sorted({p.name for p in record.packages if p.source_kind == "pypi"})


def watch_requests(record: InventoryRecord, now_ms: int) -> list[events.WatchRequest]:
    """Ask the PyPI ingestors to watch every PyPI package of the inventory; ids do not depend on the clock."""
    return [
        events.WatchRequest(
            event_id=ids.event_id(SOURCE, PYPI, name, WATCH_REASON, record.project),
            source=SOURCE,
            ecosystem=PYPI,
            package=name,
            observed_at=now_ms,
            upstream_time=None,
            reason=WATCH_REASON,
            urgent=True,
        )
        for name in pypi_names(record)
    ]


def latest(records: Iterable[InventoryRecord]) -> dict[str, InventoryRecord]:
    """Newest record per project in topic order; a removal drops the project."""
    out: dict[str, InventoryRecord] = {}
    for record in records:
        if record.removed:
            out.pop(record.project, None)
        else:
            out[record.project] = record
    return out
