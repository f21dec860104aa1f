"""The journal: Warehouse's ``journals`` table, whose ids are PyPI's serials.

Why a custom ``Sequence``: serials are contiguous (every row takes the next id), so a row is found by
arithmetic instead of a search, and a synthetic segment of 800 000 ``create`` rows is stored as one object
rather than 800 000 tuples.  ``changelog_since_serial`` is then a slice.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import overload

from .synthetic import JournalRow, SyntheticSegment

_Chunk = SyntheticSegment | list[JournalRow]


class Journal(Sequence[JournalRow]):
    """Append-only rows ``(name, version, timestamp, action, serial)`` ordered by serial."""

    def __init__(self, first_serial: int) -> None:
        self._first_serial = first_serial
        self._chunks: list[_Chunk] = []
        self._starts: list[int] = []
        self._length = 0

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> JournalRow: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[JournalRow]: ...
    def __getitem__(self, index: int | slice) -> JournalRow | Sequence[JournalRow]:
        if isinstance(index, slice):
            return [self._row(i) for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(index)
        return self._row(index)

    def _row(self, index: int) -> JournalRow:
        chunk_no = bisect.bisect_right(self._starts, index) - 1
        chunk = self._chunks[chunk_no]
        offset = index - self._starts[chunk_no]
        if isinstance(chunk, SyntheticSegment):
            return chunk.row(offset)
        return chunk[offset]

    @property
    def next_serial(self) -> int:
        """The id the next row will get."""
        return self._first_serial + self._length

    def append(self, name: str, version: str | None, timestamp: int, action: str) -> int:
        """Add one row and return its serial."""
        serial = self.next_serial
        if not self._chunks or isinstance(self._chunks[-1], SyntheticSegment):
            self._starts.append(self._length)
            self._chunks.append([])
        tail = self._chunks[-1]
        assert isinstance(tail, list)  # noqa: S101 - invariant of the branch above
        tail.append((name, version, timestamp, action, serial))
        self._length += 1
        return serial

    def append_segment(self, segment: SyntheticSegment) -> None:
        """Add a segment's ``create`` rows; its ``first_serial`` must be the next serial."""
        if segment.first_serial != self.next_serial:
            raise ValueError("segment serials must continue the journal")
        if segment.size:
            self._starts.append(self._length)
            self._chunks.append(segment)
            self._length += segment.size

    def since(self, serial: int, limit: int) -> list[JournalRow]:
        """Rows with a serial strictly greater than ``serial``, at most ``limit`` of them."""
        start = max(0, serial - self._first_serial + 1)
        stop = min(self._length, start + max(limit, 0))
        return [self._row(i) for i in range(start, stop)]
