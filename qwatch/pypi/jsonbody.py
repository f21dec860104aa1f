"""Decode a JSON body and tell a cut-off body (``truncated``) from a broken one (``malformed-json``).

The distinction matters to an operator: truncation is a network or CDN problem worth retrying, malformed JSON
is an upstream bug worth reporting. Both are dead-lettered; neither moves a cursor.
"""

from __future__ import annotations

import json

from qwatch.pypi.errors import PyPIParseError


def load_json(body: bytes) -> object:
    """``json.loads`` for an untrusted UTF-8 body; raises only PyPIParseError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = exc.reason == "unexpected end of data" and exc.end >= len(body)
        raise PyPIParseError("truncated" if cut else "malformed-json", f"not UTF-8: {exc}") from None
    text = text.removeprefix("\ufeff")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at_end = exc.pos >= len(text.rstrip())
        truncated = at_end or exc.msg.startswith("Unterminated string")
        raise PyPIParseError("truncated" if truncated else "malformed-json", f"invalid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
        raise PyPIParseError("malformed-json", f"invalid JSON: {type(exc).__name__}") from None


def as_int(value: object) -> int | None:
    """An integer field, leniently: ints and digit strings count, booleans and anything else do not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) < 20:
            return int(text)
    return None


def as_str(value: object) -> str | None:
    """A string field, or None for any other type."""
    return value if isinstance(value, str) else None
