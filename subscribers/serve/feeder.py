"""Feeding the view: read the transitions, state and inventory topics (or a JSONL replay) and apply them.

Kept apart from the web adapter: a thread that owns the view's writer connection and calls ``notify`` after each
applied batch, so the stream hub wakes at once instead of polling.

Why not a consumer group for reading: every replica of ``qwatch serve`` must see every partition (it answers for
every package), and a group would split the partitions between replicas. Each replica assigns itself all of them
and keeps its positions in the view, in the same SQLite transaction as the rows, which is what makes a restart
exact. A group can still be named (``QWATCH_SERVE_GROUP``) to commit those positions for lag monitoring.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from qwatch.events.codec import Codec
from qwatch.kafka.clients import KafkaClients
from qwatch.sinks import Delivery, JsonlSource
from subscribers.serve.config import ServeConfig
from subscribers.serve.metrics import ServeMetrics
from subscribers.serve.view import View

logger = logging.getLogger(__name__)


class KafkaFeed:
    """All partitions of the configured topics, positioned where the view ends (rebuilding a stale view first)."""

    def __init__(self, clients: KafkaClients, cfg: ServeConfig, codec: Codec, view: View) -> None:
        from kafka import TopicPartition

        from qwatch.kafka.io import KafkaSource

        self._consumer = clients.consumer(
            cfg.group or None, fetch_max_wait_ms=100, client_id=f"{clients.cfg.client_id}-serve"
        )
        self._commit = bool(cfg.group)
        tps: list[Any] = []
        for topic in (cfg.transitions_topic, cfg.state_topic, cfg.inventory_topic):
            if not topic:
                continue
            parts = self._consumer.partitions_for_topic(topic)
            if not parts:
                if topic == cfg.transitions_topic:
                    self._consumer.close()
                    raise ValueError(f"topic {topic} does not exist; create topics with 'qwatch topics create'")
                logger.warning("serve: topic %s does not exist; going on without it", topic)
                continue
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        self._end = self._consumer.end_offsets(tps)
        positions = view.positions()
        stale = [tp for tp in tps if positions.get((tp.topic, tp.partition), 0) > self._end[tp]]
        if stale:
            view.rebuild(f"{stale[0].topic}[{stale[0].partition}] ends before the view's position (recreated?)")
            positions = {}
        for tp in tps:
            nxt = positions.get((tp.topic, tp.partition))
            if nxt is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, nxt)
        self._tps = tps
        self._source = KafkaSource(self._consumer, codec)
        self._caught_up = False

    exhausted = False

    def poll(self, timeout: float) -> list[Delivery]:
        """One poll of every assigned partition."""
        return self._source.poll(timeout)

    def caught_up(self) -> bool:
        """True once every partition was read up to where it ended at start-up."""
        if not self._caught_up:
            self._caught_up = all(self._consumer.position(tp) >= self._end[tp] for tp in self._tps)
        return self._caught_up

    def commit(self) -> None:
        """Record the applied positions in the consumer group, when one is configured (monitoring only)."""
        if self._commit:
            self._consumer.commit()

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()


class JsonlFeed:
    """A JSONL replay (``qwatch process --sink jsonl:…`` output): every line applied once, in file order."""

    def __init__(self, path: str, codec: Codec) -> None:
        self._source = JsonlSource(path, codec)

    @property
    def exhausted(self) -> bool:
        """True at the end of the file."""
        return self._source.exhausted

    def poll(self, timeout: float) -> list[Delivery]:
        """The next lines."""
        return self._source.poll(timeout)

    def caught_up(self) -> bool:
        """A replay is caught up when the file is read."""
        return self._source.exhausted

    def commit(self) -> None:
        """Positions live in the view."""

    def close(self) -> None:
        """Close the file."""
        self._source.close()


Feed = KafkaFeed | JsonlFeed


class Feeder:
    """The loop: poll, apply in one transaction, notify; stops when asked (or when a replay ends)."""

    def __init__(
        self,
        view: View,
        feed: Feed,
        metrics: ServeMetrics,
        poll_timeout: float,
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        self.view = view
        self.feed = feed
        self.metrics = metrics
        self.poll_timeout = poll_timeout
        self.notify = notify
        self.stop = threading.Event()
        self.error: str | None = None
        self.ready = threading.Event()
        self.last_applied = 0.0
        self._thread = threading.Thread(target=self._run, name="serve-feeder", daemon=True)

    def start(self) -> None:
        """Run in a background thread."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the thread to finish its batch."""
        self.stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                batch = self.feed.poll(self.poll_timeout)
                if batch:
                    self.apply(batch)
                    self.feed.commit()
                if not self.ready.is_set() and self.feed.caught_up():
                    self.ready.set()
                    logger.info("serve: view caught up (%s)", self.view.path)
                if self.feed.exhausted:
                    return
        except Exception as exc:  # the server keeps answering from the view; /healthz reports the failure
            logger.exception("serve: feeding the view failed")
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.feed.close()

    def apply(self, batch: list[Delivery]) -> int:
        """Apply one batch; a failed SQLite write raises before anything is committed (retried from Kafka on
        restart, since the positions did not move either)."""
        added = self.view.apply(batch)
        for d in batch:
            kind = type(d.event).__name__ if d.event is not None else ("tombstone" if d.tombstone else "undecodable")
            self.metrics.applied.labels(kind).inc()
            if d.error is not None:
                self.metrics.undecodable.inc()
        self.last_applied = time.time()
        if added:
            self.notify()
        return added
