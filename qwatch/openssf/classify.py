"""Classifies report changes by report id, never by path, from where each id lives before and after.

Pure: the inputs are the locations (path, blob, withdrawn, packages) of one id in the old and the new tree, the
output is one change per affected package. Pairing by id is what makes an "Assign IDs" rename (pending file →
``MAL-…``, only 51–68 % similar, so git's rename detection is a coin toss) one ``added`` instead of a delete plus
an add. Splitting by package is what makes a report that moves to another package's folder (same id, another
``affected[].package``) reach both packages: the old one hears ``moved``, the new one hears the report as new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

ADDED = "added"
EXISTING = "existing"
MODIFIED = "modified"
WITHDRAWN = "withdrawn"
REINSTATED = "reinstated"
DELETED = "deleted"
MOVED = "moved"
CHANGES = (ADDED, EXISTING, MODIFIED, WITHDRAWN, REINSTATED, DELETED, MOVED)
GONE_FROM_PACKAGE = (DELETED, MOVED)
"""Changes that describe the report as it was (old path, old content), for a package that no longer has it."""

PackageKey = tuple[str, str]
"""``(ecosystem, package)``, the normalized key downstream keeps per-package state under."""


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """One copy of a report in one tree; ``blob`` identifies its exact content, ``packages`` who it names."""

    path: str
    blob: str
    withdrawn: bool
    packages: tuple[PackageKey, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """One report-id change for one package; ``old``/``new`` are the effective copies before and after."""

    report_id: str
    change: str
    old: Location | None
    new: Location | None
    package: PackageKey

    @property
    def location(self) -> Location:
        """The copy the event describes: the new one, or the old one when the package lost the report."""
        loc = self.old if self.change in GONE_FROM_PACKAGE else self.new
        if loc is None:  # pragma: no cover - classify never builds such a Change
            raise ValueError(f"a {self.change} change needs its location")
        return loc


def effective(locations: Iterable[Location]) -> Location | None:
    """The copy that speaks for an id held by several paths: the first in git's path order.

    Upstream keeps one file per id, but a move can briefly leave two copies (``crates-io``/``crates.io``). A
    fixed, content-independent rule keeps snapshot, range and per-commit runs in agreement; git order puts
    ``osv/malicious/`` before ``osv/withdrawn/``, so a live copy wins over a withdrawn one.
    """
    return min(locations, default=None)


def classify_one(report_id: str, old: Location | None, new: Location | None) -> list[Change]:
    """Compare the effective copies, package by package.

    * a package named before and not after: ``moved`` (or ``deleted`` when the id is gone altogether);
    * a package named after and not before: the report is new there, ``added`` (``withdrawn`` if withdrawn);
    * a package named on both sides: ``withdrawn``/``reinstated`` when the state flips, else on other content
      ``modified`` for a live report and ``withdrawn`` for a withdrawn one (an edit never revives a report);
      the same content at another path is no change.

    Packages that lose the report come first, each in record order.
    """
    before = old.packages if old is not None else ()
    after = new.packages if new is not None else ()
    lost = DELETED if new is None else MOVED
    changes = [Change(report_id, lost, old, new, key) for key in before if key not in after]
    if new is None:
        return changes
    for key in after:
        if old is None or key not in before:
            changes.append(Change(report_id, WITHDRAWN if new.withdrawn else ADDED, old, new, key))
            continue
        if old.withdrawn != new.withdrawn:
            changes.append(Change(report_id, WITHDRAWN if new.withdrawn else REINSTATED, old, new, key))
        elif old.blob != new.blob:
            changes.append(Change(report_id, WITHDRAWN if new.withdrawn else MODIFIED, old, new, key))
    return changes


def classify(old_view: Mapping[str, Sequence[Location]], new_view: Mapping[str, Sequence[Location]]) -> list[Change]:
    """Classify every id present in either view; the result is sorted by report id for a stable order."""
    changes = []
    for report_id in sorted(old_view.keys() | new_view.keys()):
        old = effective(old_view.get(report_id, ()))
        new = effective(new_view.get(report_id, ()))
        changes.extend(classify_one(report_id, old, new))
    return changes
