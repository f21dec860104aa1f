"""The one way to build a :class:`~qwatch.events.DeadLetter`: bad input parked with its reason, never lost.

Every stage parks what it cannot use (an upstream body that does not parse, a record that does not decode, an alert
the webhook refused). Built here so every dead letter gets the same deterministic id (a replay parks the same
letter, not a second one), the same escaping and length cap on the error text, and the same cap on the payload
kept for replay.
"""

from __future__ import annotations

from qwatch import events
from qwatch.ids import event_id
from qwatch.logs import safe

PAYLOAD_CAP = 4096
"""Bytes of the offending payload kept in the letter: enough to see what was wrong, bounded for the topic."""
ERROR_CAP = 500
"""Characters of the error text kept (escaped for terminals and logs)."""


def dead_letter(
    *,
    source: str,
    reason: str,
    error: str,
    pointer: str,
    observed_at: int,
    payload: bytes | str | None = None,
    payload_cap: int = PAYLOAD_CAP,
    ecosystem: str = "",
    package: str = "",
    upstream_time: int | None = None,
    key: str | None = None,
    extra_key: tuple[object, ...] = (),
) -> events.DeadLetter:
    """A dead letter whose id is ``event_id(source, key or pointer, reason, *extra_key)``.

    ``pointer`` says where the input is (a URL, a topic/partition/offset, a file path); ``key`` names the input when
    the pointer is not stable (a webhook URL that may change); ``extra_key`` tells apart two different bodies found
    at one pointer. Bytes are decoded leniently: a letter must never fail to be written because its payload is bad.
    """
    if isinstance(payload, bytes):
        text: str | None = payload[:payload_cap].decode("utf-8", errors="replace") if payload else None
    else:
        text = payload[:payload_cap] if payload is not None else None
    return events.DeadLetter(
        event_id=event_id(source, key if key is not None else pointer, reason, *extra_key),
        source=source,
        ecosystem=ecosystem,
        package=package,
        observed_at=observed_at,
        upstream_time=upstream_time,
        reason=reason,
        error=safe(error, ERROR_CAP),
        pointer=safe(pointer, ERROR_CAP),
        payload=text,
    )
