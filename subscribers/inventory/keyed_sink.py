"""A Kafka sink that keys inventory records by project; everything else goes through ``KafkaSink`` unchanged.

The compacted inventory topic must be keyed by project so the newest registration replaces the old one, but the
shared key rule (``qwatch.events.topics.key_of``) keys by package or source. Flush, close and abandon are inherited,
so the delivery contract is exactly ``KafkaSink``'s.
"""

from __future__ import annotations

from kafka.errors import KafkaError

from qwatch.events.codec import SCHEMA_HEADER
from qwatch.events.outputs import InventoryRecord
from qwatch.events.topics import route
from qwatch.kafka.io import KafkaSink
from qwatch.sinks import PublishError


class KeyedKafkaSink(KafkaSink):
    """``KafkaSink`` with the project as the key of inventory records."""

    def emit(self, event: object, topic: str | None = None) -> None:
        """Queue one event; inventory records are keyed by project."""
        if not isinstance(event, InventoryRecord):
            super().emit(event, topic)
            return
        value = self._codec.encode(event)
        headers = [(SCHEMA_HEADER, self._codec.schema_name(event).encode())]
        try:
            future = self._producer.send(
                topic or route(event), key=event.project.encode(), value=value, headers=headers
            )
        except KafkaError as exc:
            raise PublishError(f"send failed: {exc}", 1) from exc
        self._pending.append(future)
