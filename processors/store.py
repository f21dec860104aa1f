"""Processor state on disk for runs without Kafka (``--state-dir``): one JSON document, replaced atomically.

The document holds every package's PackageStateRecord in the codec's JSON form, so it is as readable as a JSONL
event and validated against the same schema on load. Atomic replace after each batch means a crash leaves the
state of the last completed batch: replaying the input from the start then emits nothing already emitted before
that batch (transitions of the interrupted batch may be written again, with the same event ids).
"""

from __future__ import annotations

import json
from pathlib import Path

from qwatch.errors import UsageError
from qwatch.events.codec import Codec, SchemaError
from qwatch.events.state import PackageStateRecord, state_key
from qwatch.sinks import atomic_write

FORMAT = "qwatch-processor-state/1"
FILENAME = "processor-state.json"


class StateFileError(UsageError):
    """The state file exists but cannot be used; the message says where and why."""


class FileStateStore:
    """All package states of a JSONL run in ``<dir>/processor-state.json``."""

    def __init__(self, directory: Path, codec: Codec) -> None:
        self.path = directory / FILENAME
        self._codec = codec

    def load(self) -> dict[str, PackageStateRecord]:
        """Every saved state by ``ecosystem:package``; empty when nothing was saved yet."""
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT:
                raise StateFileError(f"{self.path}: unknown format {doc.get('format')!r}, expected {FORMAT}")
            states = [self._codec.from_json_dict(item) for item in doc["packages"]]
        except (OSError, ValueError, KeyError, TypeError, SchemaError) as exc:
            raise StateFileError(f"{self.path}: cannot read processor state: {exc}") from exc
        out: dict[str, PackageStateRecord] = {}
        for s in states:
            if not isinstance(s, PackageStateRecord):
                raise StateFileError(f"{self.path}: holds a {type(s).__name__}, not a PackageStateRecord")
            out[state_key(s.ecosystem, s.package)] = s
        return out

    def save(self, states: dict[str, PackageStateRecord]) -> None:
        """Replace the file with these states (sorted, so equal states give equal files)."""
        packages = [self._codec.to_json_dict(states[k]) for k in sorted(states)]
        text = json.dumps({"format": FORMAT, "packages": packages}, separators=(",", ":"), ensure_ascii=False)
        atomic_write(self.path, text + "\n")
