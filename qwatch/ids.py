"""Deterministic event ids and clock helpers.

Delivery is at-least-once, so consumers deduplicate on ``event_id``: the id must depend only on the upstream fact
(source, natural key, upstream version), never on when or how often we saw it.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime


def event_id(source: str, *key: object) -> str:
    """Hash the source and the natural key into a 32-hex-digit id; None and ints are spelled unambiguously.

    The parts are joined with the unit separator and hashed once; the same bytes as hashing them one by one, so
    the ids never change (they are on the wire and in the state topic)."""
    parts = [source, *(part if isinstance(part, str) else repr(part) for part in key)]
    return _sha256("\x1f".join(parts).encode()).hexdigest()[:32]


_sha256 = hashlib.sha256


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit of every timestamp on the wire."""
    return time.time_ns() // 1_000_000


def iso_ms(ms: int | None) -> str:
    """Render epoch milliseconds for people; '-' when unknown, the raw number when no calendar date fits."""
    if ms is None:
        return "-"
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        # Upstream times are data: a journal row may say the year 30000, and ``qwatch tail`` must not die on it.
        return f"{ms}ms"


def parse_rfc3339_ms(value: str) -> int:
    """Parse an RFC 3339 timestamp (with Z or offset, any fraction) to epoch milliseconds."""
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def rfc3339_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds (``2026-11-25T05:14:48.123Z``), for machines (webhooks,
    the serve API); None when unknown or outside the calendar (upstream times are data and may be absurd: then the
    field is null, never a bad string or an error)."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return None
