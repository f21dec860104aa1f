"""Opaque positions in the transitions stream: one Kafka offset per partition, not a row number.

A row number would be local to one ``qwatch serve`` replica (each consumes the partitions in its own interleaving)
and would change when a view is rebuilt. Per-partition offsets are the broker's own facts: every replica, and every
rebuild, agrees on which transitions lie after a cursor, so a client can page or resume an SSE stream against any
replica with no gap and no duplicate. Within one partition the view applies records in offset order, which is what
makes "every offset at or above the cursor, partition by partition" a prefix-closed set.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping

PREFIX = "q1."
MAX_CHARS = 1024
"""A longer cursor is certainly not one this server made (6 partitions need about 60 characters)."""
MAX_PARTITIONS = 256


class CursorError(ValueError):
    """A cursor that does not decode: the client gets a 400, never a guess about where to resume."""


def encode(positions: Mapping[int, int]) -> str:
    """``{partition: next offset}`` → an opaque, URL-safe token (stable: sorted by partition)."""
    body = ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))
    return PREFIX + base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(token: str) -> dict[int, int]:
    """The inverse of :func:`encode`; anything else raises CursorError."""
    if len(token) > MAX_CHARS or not token.startswith(PREFIX):
        raise CursorError("not a cursor issued by this API (use the 'next' value of a previous response)")
    raw = token[len(PREFIX) :]
    try:
        # validate=True: the default decoder silently drops characters outside the alphabet.
        body = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CursorError("malformed cursor") from None
    out: dict[int, int] = {}
    if not body:
        return out
    for part in body.split(","):
        p, sep, o = part.partition(":")
        if not sep or not p.isdigit() or not o.isdigit() or len(p) > 6 or len(o) > 19:
            raise CursorError("malformed cursor")
        if int(p) in out:
            raise CursorError("malformed cursor (partition repeated)")
        out[int(p)] = int(o)
    if len(out) > MAX_PARTITIONS:
        raise CursorError("malformed cursor (too many partitions)")
    return out


def merge(*positions: Mapping[int, int]) -> dict[int, int]:
    """The furthest position per partition: cursors only move forward."""
    out: dict[int, int] = {}
    for pos in positions:
        for p, o in pos.items():
            if o > out.get(p, -1):
                out[p] = o
    return out


def advance(positions: dict[int, int], rows: Iterable[tuple[int, int]]) -> None:
    """Move ``positions`` past each (partition, offset) seen, in place."""
    for p, o in rows:
        if o + 1 > positions.get(p, 0):
            positions[p] = o + 1


def after(positions: Mapping[int, int], partition: int, offset: int) -> bool:
    """True if the record at (partition, offset) lies at or after the cursor."""
    return offset >= positions.get(partition, 0)
