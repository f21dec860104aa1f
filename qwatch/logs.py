"""Logging setup and the sanitizer every upstream value passes through before it reaches a log line.

Only our own package loggers are configured (not the root), so kafka-python's chatter stays at WARNING.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

PACKAGES = ("qwatch", "ingestors", "processors", "subscribers")
QUIET = ("httpx", "httpcore")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """Escape control and bidi characters without shortening: for whole lines already built from safe parts."""
    return _CONTROL.sub(_escape_one, text)


def safe(value: object, limit: int = 200) -> str:
    """Make an upstream value harmless in a log line or terminal: escape control/bidi characters, cap length."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + f"…(+{len(text) - limit} chars)"
    return escape(text)


class SafeFormatter(logging.Formatter):
    """The text format, with the message escaped like ``safe`` and tracebacks keeping only their own newlines.

    Call sites pass upstream values through ``safe`` already; this is the backstop for the ones that pass an
    exception or a third-party message, so no log line can repaint a terminal or forge the next line.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's naming
        return escape(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802
        return "\n".join(escape(line) for line in super().formatException(ei).split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers; messages are sanitized like text logs."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=True)


def configure(level: str = "INFO", json_logs: bool = False) -> None:
    """Configure the package loggers once, writing to stderr so stdout stays free for JSONL sinks."""
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    # httpx logs every request URL at INFO, and a webhook URL is often the credential itself: keep it at WARNING
    # even if the root logger is turned up around us.
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
