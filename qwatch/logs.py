"""Logging setup and the sanitizer every upstream value passes through before it reaches a log line.

Only our own package loggers are configured (not the root), so kafka-python's chatter stays at WARNING.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from pathlib import Path
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


def stamp(epoch: float | None = None) -> str:
    """The one time format of ``qwatch up``'s screen: RFC 3339 UTC to the second (``2026-11-25T05:14:48Z``), the
    same spelling as the transition lines, so every line on screen sorts and reads alike."""
    import time
    from datetime import UTC, datetime

    when = time.time() if epoch is None else epoch
    return datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_SCREEN = threading.Lock()


def show(line: str) -> None:
    """Write one whole line to stdout: threads (the demo's webhook receiver, the main loop) never splice lines."""
    with _SCREEN:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def screen_line(tag: str, text: str) -> str:
    """``<stamp> <TAG> <text>``, escaped: one line of ``qwatch up``'s screen."""
    return escape(f"{stamp()} {tag:<19} {text}")


class ScreenFormatter(logging.Formatter):
    """Log records on ``qwatch up``'s screen, in the screen's format (``<stamp> WARNING <message>``)."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(f"{stamp(record.created)} {record.levelname:<19} {record.getMessage()}")


def configure_up(log_file: Path, screen: Any = None, screen_level: str = "WARNING") -> None:
    """``qwatch up``: every log record goes to ``log_file`` in full; warnings and errors also reach the screen, in
    the screen's time format. Kafka's client chatter goes to the file only."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_screen = logging.StreamHandler(screen if screen is not None else sys.stdout)
    to_screen.setFormatter(ScreenFormatter())
    to_screen.setLevel(screen_level)
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.handlers[:] = [to_file, to_screen]
        logger.propagate = False
    kafka = logging.getLogger("kafka")
    kafka.handlers[:] = [to_file]
    kafka.propagate = False


def human_duration(seconds: float) -> str:
    """A duration the way a person says it: ``0.8 s``, ``42 s``, ``3 min``, ``4 h 41 min``, ``183 d 4 h``.

    Two units at most (the second only when it is not zero); a negative duration (clock skew between upstream
    and us) keeps its sign, so it stays visible instead of looking like a fast detection."""
    sign, s = ("-", -seconds) if seconds < 0 else ("", seconds)
    if s < 10:
        return f"{sign}{s:.1f} s"
    if s < 60:
        return f"{sign}{s:.0f} s"
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    whole = int(s)
    for i, (name, size) in enumerate(units):
        if whole >= size:
            first, rest = divmod(whole, size)
            minor_name, minor_size = units[i + 1]
            minor = rest // minor_size
            return f"{sign}{first} {name}" + (f" {minor} {minor_name}" if minor and name != "min" else "")
    return f"{sign}{whole} s"  # pragma: no cover - s >= 60 always matches a unit
