"""The one exception every PyPI parser raises, carrying a bounded dead-letter reason."""

from __future__ import annotations

from qwatch.errors import QwatchError

PARSE_REASONS = (
    "malformed-json",
    "truncated",
    "malformed-xml",
    "malformed-html",
    "schema",
    "api-version",
    "name-mismatch",
)
"""Dead-letter reasons a parse failure can carry (bounded, used as a metric label)."""


class PyPIParseError(QwatchError):
    """An upstream body we cannot turn into values; ``reason`` is one of ``PARSE_REASONS``.

    Parsers raise nothing else for bad input, so an adapter can dead-letter every failure with one ``except``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason if reason in PARSE_REASONS else "schema"
