"""The processor over any Source and Sink (JSONL files, stdin/stdout, or a Kafka source without transactions).

Order per batch: decide, publish, flush, append the batch's changed states (processors/store.py), then commit the
source, so nothing is lost if any step fails; a crash between the flush and the state append re-emits that batch's
transitions on the next run (same event ids, deduplicated downstream). ``qwatch process`` uses the transactional
service instead when both ends are Kafka.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from processors.batch import Batch
from processors.draft import JOURNAL
from processors.store import FileStateStore
from processors.tuning import settle_after_restore
from qwatch.events.state import PackageStateRecord
from qwatch.metrics import Metrics
from qwatch.runtime import StopFlag
from qwatch.sinks import Delivery, Sink, Source

logger = logging.getLogger(__name__)


@dataclass
class RunStats:
    """Totals of one run, for the exit log line and tests."""

    observations: int = 0
    transitions: int = 0
    watch_requests: int = 0
    deadletters: int = 0


class BatchRunner:
    """Feeds a Source through the core into Sinks; ``side`` receives watch requests and dead letters."""

    def __init__(
        self,
        source: Source,
        sink: Sink,
        side: Sink | None,
        store: FileStateStore | None,
        metrics: Metrics,
        clock: Callable[[], int],
        stop: StopFlag | None = None,
        authority: str = JOURNAL,
    ) -> None:
        self._authority = authority
        self._source = source
        self._sink = sink
        self._side = side
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._stop = stop or StopFlag()
        self.states: dict[str, PackageStateRecord] = store.load() if store is not None else {}
        settle_after_restore()
        self.stats = RunStats()
        metrics.state_packages.set(len(self.states))

    def run(self, idle_exit: float = 0.0, stop_when_idle: bool = False, poll_timeout: float = 1.0) -> RunStats:
        """Until the source is exhausted, a stop is asked for, ``idle_exit`` seconds pass without input, or (with
        ``stop_when_idle``) the first empty poll after input: a Kafka source has no end to reach."""
        last_input = time.monotonic()
        seen_input = False
        while not self._stop.is_set:
            deliveries = self._source.poll(poll_timeout)
            if deliveries:
                last_input, seen_input = time.monotonic(), True
                self._process(deliveries)
            elif (
                self._source.exhausted
                or (idle_exit and time.monotonic() - last_input >= idle_exit)
                or (stop_when_idle and seen_input)
            ):
                break
        return self.stats

    def _process(self, deliveries: list[Delivery]) -> None:
        batch = Batch(self._clock, self._authority)
        for delivery in deliveries:
            batch.apply(delivery, self.states)
        for t in batch.transitions:
            self._sink.emit(t)
        if self._side is not None:
            for w in batch.watch:
                self._side.emit(w)
            for d in batch.deadletters:
                self._side.emit(d)
        elif batch.watch or batch.deadletters:
            logger.info(
                "%d watch requests and %d dead letters not published (no --side-sink)",
                len(batch.watch),
                len(batch.deadletters),
            )
        self._sink.flush()
        if self._side is not None:
            self._side.flush()
        changed = {key: state for (_, key), state in batch.changed.items()}
        self.states.update(changed)
        if self._store is not None and changed:
            self._store.append(changed, self.states)  # this batch's states only; compaction is the store's
        self._source.commit()
        batch.record(self._metrics)
        self._metrics.state_packages.set(len(self.states))
        self.stats.observations += len(deliveries)
        self.stats.transitions += len(batch.transitions)
        self.stats.watch_requests += len(batch.watch)
        self.stats.deadletters += len(batch.deadletters)
