"""The one typed inventory all lockfile formats are reduced to, so the gate and alerts never see their quirks.

Frozen and tuple-based so an inventory can be shared between threads and used as a cache key safely.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from qwatch.errors import UsageError
from qwatch.pypi.names import normalize as normalize

SourceKind = Literal["pypi", "index", "git", "url", "path", "editable", "project"]


class LockfileError(UsageError):
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


ProblemReason = Literal[
    "include-unreadable",
    "include-remote",
    "include-not-followed",
    "unparsed-line",
    "unknown-source",
    "unknown-index",
    "too-many-problems",
]
"""Why part of a lockfile could not be turned into packages:

- ``include-unreadable``: a ``-r``/``-c`` file that is missing, unreadable, not UTF-8, too big, or past the
  include limits;
- ``include-remote``: a ``-r``/``-c`` URL (``https://...``), never fetched: the gate works offline;
- ``include-not-followed``: a ``-r``/``-c`` in text parsed without a file system (:func:`parse_text`);
- ``unparsed-line``: a requirements line (or an option on it) the parser does not understand;
- ``unknown-source``: a locked package whose source kind the parser does not know (poetry.lock, uv.lock);
- ``unknown-index``: a package locked from an index the lockfile names but does not declare (Pipfile.lock);
- ``too-many-problems``: the problems past :data:`MAX_PROBLEMS`, counted in one entry.
"""

MAX_PROBLEMS = 200
"""A garbage file would otherwise make one problem per line; past this many, one entry counts the rest."""


@dataclass(frozen=True, slots=True)
class InventoryProblem:
    """Something in a lockfile the parser could not turn into packages, so the gate cannot say it is clean.

    Nothing a parser does not understand is dropped: it becomes one of these, and the gate reports it as
    unverified (never a pass). ``subject`` is the package (normalized name) when one is known, else the place
    (``file:line``); subjects are unique within one inventory. ``reason`` is a short category
    (:data:`ProblemReason`); ``message`` says what happened and what to do.
    """

    subject: str
    reason: ProblemReason
    message: str


class ProblemLog:
    """Collects problems while parsing: unique subjects, and at most :data:`MAX_PROBLEMS` kept one by one."""

    def __init__(self) -> None:
        self._problems: list[InventoryProblem] = []
        self._subjects: set[str] = set()
        self._dropped = 0
        self._where = ""

    def add(self, subject: str, reason: ProblemReason, message: str) -> None:
        """Record one problem; a repeated subject gets a ``#2``, ``#3``... suffix so none is merged away."""
        if len(self._problems) >= MAX_PROBLEMS:
            self._dropped += 1
            self._where = self._where or subject
            return
        unique, count = subject, 1
        while unique in self._subjects:
            count += 1
            unique = f"{subject} #{count}"
        self._subjects.add(unique)
        self._problems.append(InventoryProblem(unique, reason, message))

    def freeze(self) -> tuple[InventoryProblem, ...]:
        """The problems, plus one entry counting those past the limit."""
        if not self._dropped:
            return tuple(self._problems)
        summary = InventoryProblem(
            f"{self._where} and later",
            "too-many-problems",
            f"{self._dropped} more problems after the first {MAX_PROBLEMS} (from {self._where} on); the file is "
            "probably not a lockfile of this format: check the path and format",
        )
        return (*self._problems, summary)


@dataclass(frozen=True, slots=True)
class Inventory:
    """All packages of one lockfile with their graph, so an alert can say how a bad package got in.

    ``unverified`` lists what could not be read into packages (an include that could not be followed, a line or
    entry that could not be classified). A gate must not pass an inventory with any: what those parts install
    is unknown.
    """

    format: str
    path: str
    root: str | None
    packages: tuple[LockedPackage, ...]
    unverified: tuple[InventoryProblem, ...] = ()

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
