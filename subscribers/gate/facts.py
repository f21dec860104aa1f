"""What the gate knows about one package, whichever adapter found it out (PyPI directly, or processor state).

Plain frozen values, so the policy core is a pure function of an inventory, these facts and a clock. Versions
are compared by their PEP 440 key from ``packaging`` (``1.0`` and ``1.0.0`` are one release on PyPI); a string that
is not PEP 440 keeps its own (stripped, lower-cased) spelling as its key, so it only ever equals itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from packaging.version import InvalidVersion, Version

from qwatch.provenance.drift import Drift

ACTIVE = "active"
ARCHIVED = "archived"
DEPRECATED = "deprecated"
QUARANTINED = "quarantined"
REMOVED = "removed"
INSTALLABLE = frozenset({ACTIVE, ARCHIVED, DEPRECATED})
"""PEP 792 statuses under which the index still serves files (archived/deprecated only warn)."""
KNOWN_STATUSES = INSTALLABLE | {QUARANTINED, REMOVED}
"""Every status the policy can judge; anything else makes the package unverified (the gate fails closed)."""

VersionKey = Version | str


def vkey(version: str) -> VersionKey:
    """The equality key of a version string."""
    try:
        return Version(version)
    except InvalidVersion:
        return version.strip().lower()


def vkeys(versions: Iterable[str]) -> frozenset[VersionKey]:
    """Equality keys of many versions."""
    return frozenset(vkey(v) for v in versions)


class Report(Protocol):
    """A live malicious-package report, from the processor's state or read from the feed directly."""

    @property
    def report_id(self) -> str: ...

    def affects(self, version: str | None) -> bool:
        """Fail closed: an unpinned version, or a scope that cannot be evaluated, counts as affected."""
        ...


@dataclass(frozen=True, slots=True)
class ReportFact:
    """A live malicious-package report; ``known=False`` when only its id is known (affects every version)."""

    report_id: str
    affected_versions: tuple[str, ...] = ()
    all_versions: bool = False
    known: bool = True

    def affects(self, version: str | None) -> bool:
        """Fail closed: an unpinned version or a report whose scope we do not know counts as affected."""
        if not self.known or self.all_versions or version is None or not self.affected_versions:
            return True  # no versions list: the scope is a range the state does not carry, so every version
        key = vkey(version)
        return any(vkey(v) == key for v in self.affected_versions)


@dataclass(frozen=True, slots=True)
class PackageFacts:
    """The current state of one package as one source saw it.

    ``versions`` is what the index lists as installable (None when the source does not know, e.g. state
    derived from transitions only); ``quarantined_versions``/``removed_versions`` are releases known to have
    gone. ``first_upload`` maps a version key to the earliest file upload, epoch milliseconds.
    """

    package: str
    status: str
    versions: frozenset[VersionKey] | None
    origin: str
    yanked: frozenset[VersionKey] = frozenset()
    quarantined_versions: frozenset[VersionKey] = frozenset()
    removed_versions: frozenset[VersionKey] = frozenset()
    first_upload: Mapping[VersionKey, int] = field(default_factory=dict)
    reports: tuple[Report, ...] = ()


@dataclass(frozen=True, slots=True)
class Unverified:
    """A package the gate could not check; ``reason`` is a short bounded category for JSON and SARIF."""

    package: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ProvenanceVerdict:
    """``--require-provenance``: the drift of one pin (empty: none) and what was verified, for the report."""

    drifts: tuple[Drift, ...]
    signatures: str


ProvenanceAnswer = ProvenanceVerdict | Unverified
"""What the provenance lookup returns per pin."""

Answer = PackageFacts | Unverified
"""What an adapter returns per package: facts, or why there are none."""
