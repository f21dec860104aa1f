"""Lazily generated projects, so a benchmark can stand up an 800 000-project index in O(1).

Why lazy: 800 000 ``ProjectState`` objects plus their journal rows would cost seconds and hundreds of MB.
A segment stores five numbers; every name, serial, journal row and page is computed when asked for.
Project ``i`` of a segment is called ``<prefix>-<i zero-padded>``, got serial ``first_serial + i`` from a
single ``create`` journal row, and has one release ``1.0`` with one sdist (no journal rows for those,
which is the one liberty taken with Warehouse's bookkeeping).  Names are already PEP 503-normalized and
zero-padded, so index order is name order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, overload

from .model import FileState, ProjectState, ReleaseState

_PREFIX_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-))*$")

JournalRow = tuple[str, str | None, int, str, int]


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticSegment(Sequence[str]):
    """``size`` synthetic projects sharing a prefix; also a ``Sequence`` of their names."""

    prefix: str
    size: int
    first_serial: int
    timestamp: float
    width: int = field(init=False)

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix) or self.prefix.endswith("-"):
            raise ValueError(f"prefix must be a normalized project name, got {self.prefix!r}")
        if self.size < 0:
            raise ValueError("size must be >= 0")
        object.__setattr__(self, "width", len(str(max(self.size - 1, 0))))

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self.name(i) for i in range(*index.indices(self.size))]
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.name(index)

    def name(self, index: int) -> str:
        """The (display == normalized) name of project ``index``."""
        return f"{self.prefix}-{index:0{self.width}d}"

    def index_of(self, key: str) -> int | None:
        """Map a normalized name back to its index, or ``None`` if it is not in this segment."""
        head = self.prefix + "-"
        if not key.startswith(head):
            return None
        digits = key[len(head) :]
        if len(digits) != self.width or not (digits.isascii() and digits.isdigit()):
            return None
        index = int(digits)
        return index if index < self.size else None

    def serial(self, index: int) -> int:
        """Project ``index``'s last serial: the id of its ``create`` journal row."""
        return self.first_serial + index

    def state(self, index: int) -> ProjectState:
        """Build the project's state on demand (nothing is stored per project)."""
        name = self.name(index)
        release = ReleaseState("1.0", (FileState(f"{name}-1.0.tar.gz", self.timestamp),))
        return ProjectState(name, name, self.serial(index), (release,))

    def row(self, index: int) -> JournalRow:
        """The journal row that created project ``index``."""
        return (self.name(index), None, int(self.timestamp), "create", self.serial(index))

    def json_fragments(self, start: int, stop: int, skip: frozenset[int]) -> list[str]:
        """Root-index JSON objects for ``[start, stop)``, built with %-formatting because it is fast."""
        template = '{"_last-serial":%d,"name":"' + self.prefix + "-%0" + str(self.width) + 'd"}'
        base = self.first_serial
        if not skip:
            return [template % (base + i, i) for i in range(start, stop)]
        return [template % (base + i, i) for i in range(start, stop) if i not in skip]

    def html_fragments(self, start: int, stop: int, skip: frozenset[int]) -> list[str]:
        """Root-index HTML anchors for ``[start, stop)``."""
        name = self.prefix + "-%0" + str(self.width) + "d"
        template = '<a href="/simple/' + name + '/">' + name + "</a>\n"
        if not skip:
            return [template % (i, i) for i in range(start, stop)]
        return [template % (i, i) for i in range(start, stop) if i not in skip]
