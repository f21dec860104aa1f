"""Feed the watch set from Kafka: WatchRequests (``qwatch.watch.v1``) and PyPI OpenSSF reports (observations).

Why no consumer group: every ingestor instance needs the *whole* watch set, not a share of it, so the feed
assigns every partition and reads from the beginning at start (the watch topic keeps a week, observations four
weeks; longer-lived interest belongs in ``--watch``). Requests marked ``urgent`` are queued for a look before
the next sweep.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import TopicPartition

from ingestors.pypi.emit import ECOSYSTEM
from ingestors.pypi.watchset import WatchSet
from qwatch.events import ReportObserved, WatchRequest
from qwatch.events.codec import Codec
from qwatch.events.topics import OBSERVATIONS, WATCH
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import KafkaSource
from qwatch.sinks import Delivery

logger = logging.getLogger(__name__)


def apply(delivery: Delivery, watch: WatchSet) -> bool:
    """Add the package a delivery names, if it is a PyPI watch request or report; True if it was new."""
    event = delivery.event
    if isinstance(event, WatchRequest) and event.ecosystem == ECOSYSTEM and event.package:
        return watch.add(event.package, f"request:{event.reason}", urgent=event.urgent)
    if isinstance(event, ReportObserved) and event.ecosystem == ECOSYSTEM and event.package:
        return watch.add(event.package, f"openssf:{event.report_id}")
    return False


class KafkaWatchFeed:
    """Assigns every partition of the watch and observation topics and applies what it reads."""

    def __init__(
        self, clients: KafkaClients, codec: Codec, watch: WatchSet, topics: tuple[str, ...] = (WATCH, OBSERVATIONS)
    ):
        self._watch = watch
        self._consumer: Any = clients.consumer(None, enable_auto_commit=False)
        parts = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        self._parts = parts
        self._source = KafkaSource(self._consumer, codec)
        if parts:
            self._consumer.assign(parts)
            self._consumer.seek_to_beginning(*parts)

    def poll(self, timeout: float = 0.0) -> int:
        """Apply one poll's records; returns how many packages were new."""
        if not self._parts:
            return 0
        return sum(apply(d, self._watch) for d in self._source.poll(timeout) if d.event is not None)

    def catch_up(self, timeout: float = 60.0) -> int:
        """Read to the current end of every partition (for ``--once``); returns how many packages were new."""
        if not self._parts:
            return 0
        end = self._consumer.end_offsets(self._parts)
        added = 0
        deadline = time.monotonic() + timeout
        while any(self._consumer.position(tp) < end[tp] for tp in self._parts):
            if time.monotonic() > deadline:
                logger.warning("watch feed: not caught up within %.0f s; continuing with what was read", timeout)
                break
            added += self.poll(0.5)
        return added

    def close(self) -> None:
        """Leave quietly (no group to leave)."""
        self._consumer.close()
