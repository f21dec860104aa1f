"""Immutable project state for the fake index (no I/O, no locking, no rendering).

Why immutable: a CDN can serve an *older* page than the origin (the "stale" fault), and HTTP threads render
while a timeline mutates.  Frozen dataclasses let the registry keep the previous version of every page for
free and hand renderers a state that cannot change under them.

The lifecycle values and their mapping to the public PEP 792 marker mirror Warehouse's
``Project.lifecycle_status`` / ``Project.project_status`` (see ``docs/pypi-signals.md`` section 0).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from typing import Final

from qwatch.pypi.names import normalize as normalize

_NAME_RE: Final = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


class Lifecycle(enum.StrEnum):
    """Warehouse's ``LifecycleStatus``; ``None`` on a project means "never set"."""

    QUARANTINE_ENTER = "quarantine-enter"
    QUARANTINE_EXIT = "quarantine-exit"
    ARCHIVED = "archived"
    ARCHIVED_NOINDEX = "archived-noindex"


def validate_name(name: str) -> None:
    """Reject names PyPI would refuse, so a test cannot build a state PyPI can never be in."""
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid project name {name!r}")


@dataclass(frozen=True, slots=True)
class FileState:
    """One uploaded distribution; hashes and size are derived from the filename when rendering."""

    filename: str
    upload_time: float


@dataclass(frozen=True, slots=True)
class ReleaseState:
    """One release.  ``quarantined`` is Warehouse's per-release lifecycle (since 2026-05)."""

    version: str
    files: tuple[FileState, ...] = ()
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str = ""
    quarantined: bool = False


@dataclass(frozen=True, slots=True)
class ProjectState:
    """One project row; ``last_serial`` is the max journal id for its name (the DB trigger's job)."""

    name: str
    normalized: str
    last_serial: int
    releases: tuple[ReleaseState, ...] = ()
    lifecycle: Lifecycle | None = None

    @property
    def status(self) -> str:
        """The PEP 792 marker exactly as ``Project.project_status`` maps it (never "deprecated")."""
        if self.lifecycle is Lifecycle.QUARANTINE_ENTER:
            return "quarantined"
        if self.lifecycle in (Lifecycle.ARCHIVED, Lifecycle.ARCHIVED_NOINDEX):
            return "archived"
        return "active"

    @property
    def quarantined(self) -> bool:
        """True while the project is hidden from the root index and the JSON API."""
        return self.lifecycle is Lifecycle.QUARANTINE_ENTER

    def release(self, version: str) -> ReleaseState | None:
        """Return the release with exactly this version string, if any."""
        for release in self.releases:
            if release.version == version:
                return release
        return None

    def with_release(self, release: ReleaseState) -> ProjectState:
        """Return a copy with ``release`` replacing the same version, or appended."""
        if self.release(release.version) is None:
            return replace(self, releases=(*self.releases, release))
        return replace(self, releases=tuple(release if r.version == release.version else r for r in self.releases))

    def without_release(self, version: str) -> ProjectState:
        """Return a copy with the release removed."""
        return replace(self, releases=tuple(r for r in self.releases if r.version != version))
