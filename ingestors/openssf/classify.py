"""Classifies report changes by report id, never by path, from where each id lives before and after.

Pure: the inputs are the locations (path, blob, withdrawn) of one id in the old and the new tree, the output is
at most one change. Pairing by id is what makes an "Assign IDs" rename (pending file → ``MAL-…``, only 51–68 %
similar, so git's rename detection is a coin toss) one ``added`` instead of a delete plus an add.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

ADDED = "added"
MODIFIED = "modified"
WITHDRAWN = "withdrawn"
REINSTATED = "reinstated"
DELETED = "deleted"
CHANGES = (ADDED, MODIFIED, WITHDRAWN, REINSTATED, DELETED)


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """One copy of a report in one tree; ``blob`` identifies its exact content."""

    path: str
    blob: str
    withdrawn: bool


@dataclass(frozen=True, slots=True)
class Change:
    """One report-id change; ``old``/``new`` are the effective copies before and after (None when absent)."""

    report_id: str
    change: str
    old: Location | None
    new: Location | None

    @property
    def location(self) -> Location:
        """The copy the event describes: the new one, or the old one for a deletion."""
        loc = self.new if self.new is not None else self.old
        if loc is None:  # pragma: no cover - classify never builds such a Change
            raise ValueError("a change needs at least one location")
        return loc


def effective(locations: Iterable[Location]) -> Location | None:
    """The copy that speaks for an id held by several paths: the first in git's path order.

    Upstream keeps one file per id, but a move can briefly leave two copies (``crates-io``/``crates.io``). A
    fixed, content-independent rule keeps snapshot, range and per-commit runs in agreement; git order puts
    ``osv/malicious/`` before ``osv/withdrawn/``, so a live copy wins over a withdrawn one.
    """
    return min(locations, default=None)


def classify_one(report_id: str, old: Location | None, new: Location | None) -> Change | None:
    """Compare the effective copies; a pure move with identical content is not a change of the report."""
    if old is None and new is None:
        return None
    if old is None:
        assert new is not None
        return Change(report_id, WITHDRAWN if new.withdrawn else ADDED, None, new)
    if new is None:
        return Change(report_id, DELETED, old, None)
    if old.withdrawn != new.withdrawn:
        return Change(report_id, WITHDRAWN if new.withdrawn else REINSTATED, old, new)
    if old.blob != new.blob:
        return Change(report_id, MODIFIED, old, new)
    return None


def classify(old_view: Mapping[str, Sequence[Location]], new_view: Mapping[str, Sequence[Location]]) -> list[Change]:
    """Classify every id present in either view; the result is sorted by report id for a stable order."""
    changes = []
    for report_id in sorted(old_view.keys() | new_view.keys()):
        change = classify_one(report_id, effective(old_view.get(report_id, ())), effective(new_view.get(report_id, ())))
        if change is not None:
            changes.append(change)
    return changes
