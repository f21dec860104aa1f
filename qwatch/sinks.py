"""Where events go and come from: the Sink and Source ports, and their JSONL adapters.

The JSONL forms run the very same code paths as Kafka (the ingestor or processor cannot tell), which makes the
pipeline pipe-friendly and replayable: ``qwatch ingest ... --sink jsonl:- | qwatch process --source jsonl:-``.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from qwatch.errors import QwatchError, UsageError
from qwatch.events.codec import Codec, SchemaError
from qwatch.frozen import fast_init


class PublishError(QwatchError):
    """Events were not acknowledged; the caller must not move its cursor or commit its input offsets."""

    def __init__(self, message: str, failed: int = 0) -> None:
        super().__init__(message)
        self.failed = failed


class Sink(Protocol):
    """Accepts events; ``flush`` returns only when every emitted event is durably acknowledged, or raises."""

    def emit(self, event: object, topic: str | None = None) -> None:
        """Queue one event (routed by type unless ``topic`` is given)."""

    def flush(self, timeout: float | None = None) -> None:
        """Block until all queued events are acknowledged; raise PublishError otherwise."""

    def close(self) -> None:
        """Release resources after a final flush."""


@fast_init  # one per input line of a JSONL source (qwatch.frozen says why)
@dataclass(frozen=True, slots=True)
class Delivery:
    """One input record: the decoded event, or the error that kept it from decoding, with its coordinates."""

    event: Any
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    raw: bytes | None = None
    error: str | None = None

    @property
    def tombstone(self) -> bool:
        """A null value on a compacted topic: the key was deleted."""
        return self.event is None and self.raw is None and self.error is None

    @property
    def pointer(self) -> str:
        """``topic[partition]@offset``, the coordinates logged and dead-lettered on failure."""
        return f"{self.topic}[{self.partition}]@{self.offset}"


class Source(Protocol):
    """Yields input records; ``commit`` marks everything returned so far as processed."""

    def poll(self, timeout: float) -> list[Delivery]:
        """Return the next batch (possibly empty); never raises for one bad record."""

    def commit(self) -> None:
        """Persist the position after the caller processed and flushed the batch."""

    def close(self) -> None:
        """Release resources."""

    @property
    def exhausted(self) -> bool:
        """True when a finite source (a JSONL file) has nothing more to give."""


def parse_endpoint(spec: str, flag: str) -> tuple[str, str]:
    """Split ``kafka`` or ``jsonl:PATH`` into (kind, path); anything else is a clear usage error."""
    if spec == "kafka":
        return "kafka", ""
    if spec.startswith("jsonl:") and len(spec) > len("jsonl:"):
        return "jsonl", spec[len("jsonl:") :]
    raise UsageError(f"{flag} {spec!r}: use 'kafka' or 'jsonl:PATH' ('jsonl:-' for stdout/stdin)")


_LINE_BREAKS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))
"""Characters ``json.dumps(ensure_ascii=False)`` leaves raw but ``str.splitlines`` (and some editors) break lines at,
as UTF-8: escaped, an upstream name holding one cannot split an event in two for a reader that splits that way.
UTF-8 is self-synchronizing, so these byte sequences occur in encoded text only as those characters."""

SINK_BUFFER_BYTES = 1 << 20
"""Encoded lines a sink keeps before writing them out (``flush`` writes the rest): a write per batch, not per event."""


def escape_line_breaks(data: bytes) -> bytes:
    """Escape U+0085, U+2028 and U+2029 in encoded JSON (they only occur inside strings)."""
    if data.isascii():  # most batches: one fast scan instead of three searches
        return data
    for raw, escaped in _LINE_BREAKS:
        data = data.replace(raw, escaped)  # the very object back when there is nothing to replace
    return data


class SinkExistsError(UsageError):
    """A JSONL sink file already holds events and ``--append`` was not given."""


class JsonlSink:
    """Writes one JSON object per line; a file sink fsyncs on flush so a cursor never outruns the data.

    Lines are encoded on ``emit`` (``Codec.to_json_bytes``) and written in one piece per batch (or per
    ``SINK_BUFFER_BYTES``); ``flush`` writes what is left, then fsyncs, so what a caller may rely on is unchanged:
    everything emitted before a successful ``flush`` is on disk."""

    def __init__(self, path: str, codec: Codec, append: bool = False) -> None:
        """Open ``path`` (``-`` is stdout). A regular file that already holds data is refused unless ``append``:
        a rerun that silently appended would double every event in it."""
        self._codec = codec
        self._stdout = path == "-"
        if not self._stdout and not append:
            try:
                info = os.stat(path)
            except FileNotFoundError:
                info = None
            if info is not None and stat.S_ISREG(info.st_mode) and info.st_size > 0:
                raise SinkExistsError(
                    f"{path} already holds {info.st_size} bytes of events; writing again would double them: pass "
                    "--append to add to it, or choose a new file"
                )
        self._fh: IO[bytes] | None = None if self._stdout else open(path, "ab")  # noqa: SIM115
        # Only a regular file can be fsynced: a FIFO or device (/dev/stdout, /dev/full) answers EINVAL, which
        # would fail every flush (and, from close(), mask the real error, such as ENOSPC).
        self._sync = self._fh is not None and stat.S_ISREG(os.fstat(self._fh.fileno()).st_mode)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.path = path

    def emit(self, event: object, topic: str | None = None) -> None:
        """Encode the event as one line (the topic is implied by ``type``); written by ``flush`` at the latest."""
        line = self._codec.to_json_bytes(event)
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= SINK_BUFFER_BYTES:
            self._write()

    def _write(self) -> None:
        """Hand the pending lines to the file (or stdout) in one write; a failure is a PublishError for all of them."""
        if not self._pending:
            return
        lines, count = self._pending, len(self._pending)
        self._pending, self._pending_bytes = [], 0
        lines.append(b"")
        data = escape_line_breaks(b"\n".join(lines))
        try:
            if self._fh is None:
                sys.stdout.write(data.decode("utf-8"))
            else:
                self._fh.write(data)
        except (OSError, ValueError) as exc:
            raise PublishError(f"cannot write to {self.path}: {exc}", count) from exc

    def flush(self, timeout: float | None = None) -> None:
        """Write, flush and fsync; a full disk or closed pipe becomes a PublishError, not a moved cursor."""
        self._write()
        try:
            if self._fh is None:
                sys.stdout.flush()
            else:
                self._fh.flush()
                if self._sync:
                    os.fsync(self._fh.fileno())
        except (OSError, ValueError) as exc:
            raise PublishError(f"cannot flush {self.path}: {exc}") from exc

    def close(self) -> None:
        """Flush, then close unless it is stdout."""
        self.flush()
        if self._fh is not None:
            self._fh.close()


class JsonlSource:
    """Reads JSONL events; undecodable lines come back as Deliveries with an error, to be dead-lettered."""

    def __init__(self, path: str, codec: Codec, batch_size: int = 500) -> None:
        self._codec = codec
        # Bytes, decoded line by line: a line that is not UTF-8 is that line's error, not the end of the replay.
        self._fh: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
        self._lines: Iterator[bytes] = iter(self._fh)
        self._batch = batch_size
        self._offset = 0
        self._done = False
        self.path = path
        self._topic = f"jsonl:{path}"

    @property
    def exhausted(self) -> bool:
        """True once the file ended."""
        return self._done

    def poll(self, timeout: float) -> list[Delivery]:
        """Read up to a batch of lines."""
        out: list[Delivery] = []
        for line in self._lines:
            self._offset += 1
            try:
                text = line.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                out.append(Delivery(None, self._topic, 0, self._offset, raw=line.strip(), error=f"not UTF-8: {exc}"))
            else:
                if not text:
                    continue
                out.append(self._decode(text))
            if len(out) >= self._batch:
                return out
        self._done = True
        return out

    def _decode(self, text: str) -> Delivery:
        raw = text.encode()
        try:
            event = self._codec.from_json_dict(orjson.loads(raw))
        except (ValueError, SchemaError) as exc:  # orjson.JSONDecodeError is a ValueError
            return Delivery(None, self._topic, 0, self._offset, raw=raw, error=str(exc))
        return Delivery(event, self._topic, 0, self._offset, raw=raw)

    def commit(self) -> None:
        """Nothing to persist: a JSONL replay is idempotent through the processor's state-dir."""

    def close(self) -> None:
        """Close the file unless it is stdin."""
        if self._fh is not sys.stdin:
            self._fh.close()


class MemorySink:
    """Collects events in a list: for the pure core's tests and for benchmarks, never for production."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def emit(self, event: object, topic: str | None = None) -> None:
        """Keep the event."""
        self.events.append(event)

    def flush(self, timeout: float | None = None) -> None:
        """Nothing is pending."""

    def close(self) -> None:
        """Nothing to release."""


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write via a temp file in the same directory, fsync, then rename: a crash leaves old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
