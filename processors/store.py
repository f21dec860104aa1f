"""Processor state on disk for runs without Kafka (``--state-dir``): a snapshot plus an append-only log.

Why not one document rewritten per batch: that costs every package's state per batch, so a long replay gets
slower the longer it runs (71 full rewrites for 35k real observations). Here a batch appends only the states it
changed, as **one line** of ``processor-state.log`` (a JSON array of records in the codec's JSON form), fsynced
before the source is committed. When the log outgrows the snapshot (``processor-state.json``, every state, written
atomically), the store compacts: it writes a new snapshot, then empties the log. The cost per batch is its own
changes plus, amortized, a constant share of the compactions, so throughput does not fall as the state grows.

Crash safety, by construction:
- a batch is one ``write`` of one line: a crash keeps it whole or leaves a torn last line (no newline, or trailing
  NUL bytes a file system can leave), which ``load`` drops and truncates away. A batch is never half applied.
- a bad line *before* the last one is not a torn write; it stops the run with the file and line named, rather than
  silently losing committed state.
- compaction replaces the snapshot atomically before it empties the log; a crash in between leaves a log whose
  every line is already in the snapshot, and replaying it over the snapshot (last writer wins per package, in log
  order) gives the snapshot again.

A crash after the sink's flush but before the append re-emits that batch's transitions on the next run (same
event ids, deduplicated downstream), as before.

What it costs (bench/jsonl_bench.py): each changed state is encoded once (``Codec.to_json_bytes``, orjson), and the
store keeps that line, next to the record it encodes, for the next compaction: a snapshot is then those lines
joined (records are immutable, so a kept line is reused only while the live state is that very record). A state
restored by ``load`` and never changed since is encoded at the first compaction. The price is one encoded copy of
the state in memory (about 14 MB for the 27k packages of the real OpenSSF history).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from qwatch.errors import UsageError
from qwatch.events.codec import Codec, SchemaError
from qwatch.events.state import PackageStateRecord, state_key
from qwatch.sinks import atomic_write

FORMAT = "qwatch-processor-state/1"
FILENAME = "processor-state.json"
LOGNAME = "processor-state.log"
COMPACT_MIN_BYTES = 4 << 20
"""The log is never compacted below this size: small runs keep one snapshot and a short log."""
COMPACT_RATIO = 2.0
"""Compact when the log is this many times the snapshot's size: each compaction then rewrites at most half as many
bytes as were appended since the last one, which keeps the total cost linear in the input, and a restart reads
at most three times the state's size."""


class StateFileError(UsageError):
    """The state file exists but cannot be used; the message says where and why."""


class FileStateStore:
    """All package states of a JSONL run in ``<dir>/processor-state.json`` plus ``<dir>/processor-state.log``."""

    def __init__(
        self,
        directory: Path,
        codec: Codec,
        compact_min_bytes: int = COMPACT_MIN_BYTES,
        compact_ratio: float = COMPACT_RATIO,
    ) -> None:
        self.path = directory / FILENAME
        self.log_path = directory / LOGNAME
        self._codec = codec
        self._compact_min = compact_min_bytes
        self._compact_ratio = compact_ratio
        self._snapshot_bytes = 0
        self._log_bytes = 0
        self._has_snapshot = False
        self._lines: dict[str, tuple[PackageStateRecord, bytes]] = {}
        """The JSON line last written for each package's state, with the record it encodes."""
        self.compactions = 0
        """Snapshots written by this store object (the tests and the bench read it)."""

    # -- reading ---------------------------------------------------------------------------------------------
    def load(self) -> dict[str, PackageStateRecord]:
        """Every saved state by ``ecosystem:package``: the snapshot, then the log's committed lines in order."""
        out: dict[str, PackageStateRecord] = {}
        if self.path.exists():
            try:
                raw = self.path.read_bytes()
                doc = orjson.loads(raw)
                if doc.get("format") != FORMAT:
                    raise StateFileError(f"{self.path}: unknown format {doc.get('format')!r}, expected {FORMAT}")
                self._apply(out, doc["packages"], self.path)
            except StateFileError:
                raise
            except (OSError, ValueError, KeyError, TypeError, AttributeError, SchemaError) as exc:
                raise StateFileError(f"{self.path}: cannot read processor state: {exc}") from exc
            self._snapshot_bytes = len(raw)
            self._has_snapshot = True
        self._log_bytes = self._load_log(out) if self.log_path.exists() else 0
        return out

    def _load_log(self, out: dict[str, PackageStateRecord]) -> int:
        """Apply every complete line; drop (and truncate away) a torn last line; refuse a bad earlier line."""
        try:
            data = self.log_path.read_bytes()
        except OSError as exc:
            raise StateFileError(f"{self.log_path}: cannot read processor state log: {exc}") from exc
        end = data.rfind(b"\n") + 1  # everything after the last newline is a torn append
        lines = data[:end].split(b"\n")[:-1]
        while lines and not lines[-1].strip(b"\0 \t\r"):
            end -= len(lines.pop()) + 1  # NULs (or nothing) where a crash left the file longer than its data
        for number, line in enumerate(lines, start=1):
            try:
                items = orjson.loads(line)
                if not isinstance(items, list):
                    raise TypeError(f"a {type(items).__name__}, not a list of states")
                self._apply(out, items, self.log_path)
            except (ValueError, KeyError, TypeError, AttributeError, SchemaError) as exc:
                if number == len(lines) and not _is_json_complete(line):
                    end -= len(line) + 1  # the last line, cut inside a write that still ended in a newline
                    break
                raise StateFileError(f"{self.log_path}: line {number} cannot be read: {exc}") from exc
        if end < len(data):
            with open(self.log_path, "r+b") as fh:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())
        return end

    def _apply(self, out: dict[str, PackageStateRecord], items: list[Any], where: Path) -> None:
        for item in items:
            s = self._codec.from_json_dict(item)
            if not isinstance(s, PackageStateRecord):
                raise StateFileError(f"{where}: holds a {type(s).__name__}, not a PackageStateRecord")
            out[state_key(s.ecosystem, s.package)] = s

    # -- writing ---------------------------------------------------------------------------------------------
    def append(self, changed: dict[str, PackageStateRecord], states: dict[str, PackageStateRecord]) -> None:
        """Make one batch's ``changed`` states durable; ``states`` (all of them, ``changed`` included) is only
        read when the log has grown enough to be compacted into a new snapshot."""
        if not changed:
            return
        if not self._has_snapshot:
            self.compact(states)  # the first save of a fresh directory: a snapshot, written atomically
            return
        encode, lines = self._codec.to_json_bytes, self._lines
        parts = []
        for key in sorted(changed):
            state = changed[key]
            encoded = encode(state)
            lines[key] = (state, encoded)
            parts.append(encoded)
        data = b"[" + b",".join(parts) + b"]\n"
        with open(self.log_path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._log_bytes += len(data)
        if self._log_bytes > max(self._compact_min, self._compact_ratio * self._snapshot_bytes):
            self.compact(states)

    def compact(self, states: dict[str, PackageStateRecord]) -> None:
        """Replace the snapshot with ``states`` (sorted, so equal states give equal files), then empty the log.

        A state whose line this store wrote last is not encoded again: the kept line is used while ``states`` still
        holds that very (immutable) record."""
        encode, lines = self._codec.to_json_bytes, self._lines
        parts = []
        for key in sorted(states):
            state = states[key]
            kept = lines.get(key)
            if kept is None or kept[0] is not state:
                kept = (state, encode(state))
                lines[key] = kept
            parts.append(kept[1])
        if len(lines) > len(states):  # packages the caller no longer holds: not in the snapshot, not kept
            for key in [k for k in lines if k not in states]:
                del lines[key]
        self._write_snapshot(parts)

    def _write_snapshot(self, packages: list[bytes]) -> None:
        data = b'{"format":' + orjson.dumps(FORMAT) + b',"packages":[' + b",".join(packages) + b"]}\n"
        atomic_write(self.path, data)
        self._snapshot_bytes = len(data)
        self._has_snapshot = True
        self.compactions += 1
        if self._log_bytes or self.log_path.exists():
            with open(self.log_path, "wb") as fh:
                fh.flush()
                os.fsync(fh.fileno())
        self._log_bytes = 0

    def save(self, states: dict[str, PackageStateRecord]) -> None:
        """Write every state as a new snapshot (the whole-store form; a run appends with ``append``)."""
        self.compact(states)


def _is_json_complete(line: bytes) -> bool:
    """True when ``line`` parses as JSON: a line that does is a bad record, not a cut-off write."""
    try:
        orjson.loads(line)
    except ValueError:
        return False
    return True
