"""The one typed inventory all lockfile formats are reduced to, so the gate and alerts never see their quirks.

Frozen and tuple-based so an inventory can be shared between threads and used as a cache key safely.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Literal

SourceKind = Literal["pypi", "index", "git", "url", "path", "editable", "project"]

_SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503 form, because lockfiles, advisories and PyPI spell the same project differently."""
    return _SEPARATORS.sub("-", name).lower()


class LockfileError(Exception):
    """The only error parsers raise for bad input, so callers need one ``except`` and get a usable message."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PackageSource:
    """Where a package is installed from; a PyPI quarantine only concerns packages that really come from PyPI.

    ``url`` has any credentials removed, so an inventory can be logged or sent in an alert.
    """

    kind: SourceKind
    url: str | None


@dataclass(frozen=True, slots=True)
class LockedPackage:
    """One locked record; a name locked at two versions (per-environment forks) gives two records.

    ``groups`` says which Pipfile section, Poetry group or requirement origin it came from, and ``extras``
    which extras were requested, both for the alert text; neither changes what is installed from where.
    """

    name: str
    normalized: str
    version: str | None
    source: PackageSource
    hashes: tuple[str, ...]
    markers: str | None
    direct: bool
    dependencies: tuple[str, ...]
    groups: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Inventory:
    """All packages of one lockfile with their graph, so an alert can say how a bad package got in."""

    format: str
    path: str
    root: str | None
    packages: tuple[LockedPackage, ...]

    def by_name(self) -> dict[str, list[LockedPackage]]:
        """Group by normalized name, since a name can be locked at several versions."""
        grouped: dict[str, list[LockedPackage]] = {}
        for package in self.packages:
            grouped.setdefault(package.normalized, []).append(package)
        return grouped

    def direct(self) -> list[LockedPackage]:
        """The packages the project asked for, which is what a developer can act on."""
        return [package for package in self.packages if package.direct]

    def edges(self) -> dict[str, tuple[str, ...]]:
        """Name-level graph (versions merged), because advisories and paths are about names."""
        graph: dict[str, set[str]] = {}
        for package in self.packages:
            graph.setdefault(package.normalized, set()).update(package.dependencies)
        return {name: tuple(sorted(deps)) for name, deps in graph.items()}

    def path_to(self, normalized_name: str) -> list[str]:
        """One shortest chain from the root (or a direct dependency) down to a package, for the alert text.

        Starts at ``root`` when the format names the project, else at a direct dependency (``[name]`` for a
        direct one). Empty when the name is not locked or nothing reaches it. Ties are broken
        alphabetically so the answer is stable between runs.
        """
        target = normalize(normalized_name)
        graph = self.edges()
        if target not in graph:
            return []
        starts = [self.root] if self.root is not None else sorted({p.normalized for p in self.direct()})
        parent: dict[str, str | None] = dict.fromkeys(starts)
        queue = deque(starts)
        while queue:
            node = queue.popleft()
            if node == target:
                chain: list[str] = []
                step: str | None = node
                while step is not None:
                    chain.append(step)
                    step = parent[step]
                return chain[::-1]
            for child in graph.get(node, ()):
                if child not in parent:
                    parent[child] = node
                    queue.append(child)
        return []
