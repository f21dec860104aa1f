"""Logging setup and the sanitizer every upstream value passes through before it reaches a log line.

Only our own package loggers are configured (not the root), so kafka-python's chatter stays at WARNING.
"""

from __future__ import annotations

import json
import logging
import re
import sys

PACKAGES = ("qwatch", "ingestors", "processors", "subscribers")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe(value: object, limit: int = 200) -> str:
    """Make an upstream value harmless in a log line or terminal: escape control/bidi characters, cap length."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + f"…(+{len(text) - limit} chars)"
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", text
    )


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
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
