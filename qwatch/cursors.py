"""Cursor stores: where an ingestor remembers how far it read upstream.

The rule that keeps delivery at-least-once: ``save`` is called only after the sink's ``flush`` succeeded for every
event the new position covers. A crash between flush and save replays a little (deduplicated by event id); it
never skips.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Protocol

from kafka import KafkaProducer

from qwatch.errors import UsageError
from qwatch.events import Cursor
from qwatch.events.codec import Codec
from qwatch.events.topics import CURSORS
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import KafkaSink, read_topic
from qwatch.sinks import atomic_write


class CursorStore(Protocol):
    """Loads and saves one cursor per component name."""

    def load(self, component: str) -> Cursor | None:
        """The last saved cursor, or None on a first run."""

    def save(self, cursor: Cursor) -> None:
        """Persist durably, or raise."""


def _file_name(component: str) -> str:
    # Component names may carry URLs; keep the file name inside the state dir whatever they contain.
    return "cursor-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", component)[:120] + ".json"


class MemoryCursorStore:
    """Cursors that live as long as the process: a JSONL run without ``--state-dir`` stays stateless and repeatable."""

    def __init__(self) -> None:
        self._cursors: dict[str, Cursor] = {}

    def load(self, component: str) -> Cursor | None:
        """The cursor saved earlier in this process."""
        return self._cursors.get(component)

    def save(self, cursor: Cursor) -> None:
        """Keep it until exit."""
        self._cursors[cursor.component] = cursor


class FileCursorStore:
    """Cursors as JSON files in ``--state-dir``, written atomically (for the JSONL sink)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def load(self, component: str) -> Cursor | None:
        """Read the cursor file; a corrupt file is an error, never silently a fresh start."""
        path = self.state_dir / _file_name(component)
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["component"] != component:
            # The file name is the component sanitized and cut to 120 characters, so two long repository paths or
            # URLs can share one; another component's position must never be taken for ours.
            raise UsageError(
                f"{path} holds the cursor of {data['component']!r}, not {component!r}: the names collide once "
                "sanitized; give one of them its own --state-dir"
            )
        return Cursor(data["component"], data["value"], int(data["updated_at"]), data.get("upstream_time"))

    def save(self, cursor: Cursor) -> None:
        """Atomic replace; OSError (disk full, permissions) propagates so the caller keeps the old cursor."""
        data = {
            "component": cursor.component,
            "value": cursor.value,
            "updated_at": cursor.updated_at,
            "upstream_time": cursor.upstream_time,
        }
        atomic_write(self.state_dir / _file_name(cursor.component), json.dumps(data))


class KafkaCursorStore:
    """Cursors on the compacted ``qwatch.cursors.v1`` topic, keyed by component."""

    def __init__(self, clients: KafkaClients, producer: KafkaProducer, codec: Codec, topic: str = CURSORS) -> None:
        self._clients = clients
        self._sink = KafkaSink(producer, codec)
        self._codec = codec
        self._topic = topic

    def load(self, component: str) -> Cursor | None:
        """Read the compacted topic to its end and keep the newest cursor of this component."""
        latest: Cursor | None = None
        for delivery in read_topic(self._clients, self._codec, self._topic):
            event = delivery.event
            if isinstance(event, Cursor) and event.component == component:
                latest = event
        return latest

    def save(self, cursor: Cursor) -> None:
        """Send and wait for acks=all; PublishError propagates."""
        self._sink.emit(cursor, self._topic)
        self._sink.flush(60)
