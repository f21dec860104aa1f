"""The processor as a Kafka consumer group with exactly-once output: consume → core → produce + offsets, in one
transaction per batch.

Per batch: ``begin_transaction``; send the transitions (``qwatch.transitions.v1``), watch requests
(``qwatch.watch.v1``) and dead letters; when a state checkpoint is due, the changed package states (compacted
``qwatch.state.v1``, written to the same partition number as the observation, so state is partitioned exactly like
its input); ``send_offsets_to_transaction`` with the consumer's group metadata (KIP-447 fencing of zombie
consumers), each offset carrying its partition's state checkpoint (``processors.partitions``); then
``commit_transaction``. Outputs, state, checkpoint and input position become visible together or not at all, and
downstream ``read_committed`` consumers never see an aborted batch.

On any error: abort (or, if the producer is unusable, replace it: ``init_transactions`` with the same
transactional id aborts whatever the old one left open), seek every assigned partition back to its committed
offset, drop the in-memory state and rebuild it (state topic + replay from the checkpoint), back off, retry. The
in-memory state only ever holds committed batches, so a retry starts from exactly what the offsets say was done.

Rebalance: the listener only notes revoked partitions (callbacks run on the client's IO loop and must not block);
the loop drops their state and, before processing any record of a newly assigned partition, rebuilds that
partition's state. A revoked partition's un-checkpointed changes are not lost: the next owner replays them.

Scale out: run replicas with the same ``group_id`` and distinct, stable ``instance_id`` (the StatefulSet ordinal):
the transactional id is ``qwatch-processor-<group>-<instance>``, so a restarted replica fences its predecessor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from processors import restore
from processors.batch import Batch
from processors.config import ProcessorConfig
from processors.inflight import BackgroundCommit
from processors.partitions import Partition, checkpoint_metadata, parse_checkpoint
from processors.prefilter import JournalPrefilter
from processors.tuning import IdleCollector, settle_after_restore
from qwatch import ids
from qwatch.events.codec import Codec, SchemaError
from qwatch.events.state import PackageStateRecord
from qwatch.events.topics import DEADLETTER, OBSERVATIONS, STATE, TRANSITIONS, WATCH, key_of
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import TransactionalAppender
from qwatch.metrics import Heartbeat, Metrics
from qwatch.runtime import StopFlag
from qwatch.sinks import Delivery

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Notes partitions taken away; the main loop drops their state before it polls again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revoked: set[int] = set()

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        with self._lock:
            self._revoked.update(tp.partition for tp in revoked)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """State for new partitions is restored lazily by the loop, off the IO thread."""

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self.on_partitions_revoked(lost)

    def take(self) -> set[int]:
        with self._lock:
            out, self._revoked = self._revoked, set()
        return out


def _delivery(rec: Any, event: Any, error: str | None = None) -> Delivery:
    return Delivery(event, rec.topic, rec.partition, rec.offset, rec.key, rec.value, error)


@dataclass(frozen=True)
class _InFlight:
    """A published batch whose transaction is committing in the background."""

    commit: BackgroundCommit
    batch: Batch
    count: int


class ProcessorService:
    """Runs the core over ``qwatch.observations.v1`` with transactional, exactly-once output."""

    def __init__(
        self,
        cfg: ProcessorConfig,
        clients: KafkaClients,
        codec: Codec,
        metrics: Metrics,
        clock: Callable[[], int] = ids.now_ms,
        stop: StopFlag | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._cfg = cfg
        self._clients = clients
        self._kafka = clients.cfg
        self._codec = codec
        self._metrics = metrics
        self._clock = clock
        self._stop = stop or StopFlag()
        self._heartbeat = heartbeat if heartbeat is not None else Heartbeat("processor loop", float("inf"))
        self._listener = _Revocations()
        self._parts: dict[int, Partition] = {}
        self._last_flush = time.monotonic()
        self._producer: KafkaProducer | None = None
        self._appender: TransactionalAppender | None = None
        self._consumer: KafkaConsumer | None = None
        self._last_lag = 0.0
        self._idle_gc = IdleCollector()
        self._inflight: _InFlight | None = None
        self._prefilter = JournalPrefilter(codec)
        self.processed = 0
        self.transitions = 0

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def _new_producer(self) -> KafkaProducer:
        producer = self._clients.producer(
            transactional_id=self._cfg.transactional_id,
            transaction_timeout_ms=self._cfg.transaction_timeout_ms,
            client_id=f"{self._kafka.client_id}-processor-{self._cfg.instance_id}",
            linger_ms=500,
            batch_size=1024 * 1024,
            max_block_ms=int(self._cfg.call_timeout_s * 1000),
            **({} if self._cfg.compression == "none" else {"compression_type": self._cfg.compression}),
        )
        producer.init_transactions()
        self._appender = TransactionalAppender(producer)
        for topic in (TRANSITIONS, WATCH, DEADLETTER, STATE):
            producer.partitions_for(topic)  # metadata now, so the first transition never waits for it
        # And the group coordinator, with an empty transaction: kafka-python looks it up at the first
        # send_offsets_to_transaction and sleeps retry_backoff_ms twice on the way (~0.2 s in the first commit).
        self._appender.begin_transaction()
        group = self._cfg.group_id
        self._bounded("send_offsets_to_transaction", lambda: producer.send_offsets_to_transaction({}, group))
        self._bounded("commit_transaction", producer.commit_transaction)
        logger.info("transactional producer %s ready", self._cfg.transactional_id)
        return producer

    def _open(self) -> None:
        self._producer = self._new_producer()
        consumer = self._clients.consumer(
            self._cfg.group_id,
            max_poll_records=self._cfg.batch_size,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_poll_interval_ms=300_000,
            client_id=f"{self._kafka.client_id}-processor-{self._cfg.instance_id}",
        )
        consumer.subscribe(topics=[OBSERVATIONS], listener=self._listener)
        self._consumer = consumer

    def close(self) -> None:
        """Leave the group and release the clients."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None

    def run(self, once: bool = False, idle_exit: float = 0.0) -> int:
        """Process until stopped; ``once``: until caught up with the input; ``idle_exit``: after that long idle."""
        self._open()
        try:
            processed = self._loop(once, idle_exit)
            self._final_flush()
            return processed
        finally:
            self.close()

    def _loop(self, once: bool, idle_exit: float) -> int:
        consumer = self._consumer
        assert consumer is not None
        backoff = self._cfg.retry_backoff_s
        last_input = time.monotonic()
        rewind = False
        while not self._stop.is_set:
            try:
                if rewind:
                    self._recover()
                    rewind = False
                self._heartbeat.beat(idle=self._cfg.poll_timeout_s)
                polled = consumer.poll(timeout_ms=int(self._cfg.poll_timeout_s * 1000))
                self._sync_assignment()
                self._heartbeat.ready()  # in the group, state restored: consuming
                records = {tp: recs for tp, recs in polled.items() if tp.partition in self._parts}
                if records:
                    caught_up = once and self._caught_up()  # ask now rather than wait out an empty poll at the end
                    self._process(records, checkpoint=caught_up)
                    last_input = time.monotonic()
                    backoff = self._cfg.retry_backoff_s
                    if caught_up:
                        self._settle()
                        self._measure_lag(force=True)
                        break
                else:
                    self._settle()  # nothing new: let the batch in flight land (or fail) now
                    if self._idle_done(once, idle_exit, last_input):
                        self._measure_lag(force=True)
                        break
                    self._idle_gc.idle()
                self._measure_lag()
            except Exception as exc:  # noqa: BLE001 - any failure rolls the batch back and retries it
                logger.warning("batch failed, rolling back and retrying in %.1fs: %s", backoff, exc, exc_info=True)
                rewind = True
                # The in-memory state may run ahead of what committed (processors.inflight): drop it now, so that
                # not even a stop during the back-off can checkpoint it (_final_flush); _recover rebuilds it.
                self._parts.clear()
                self._heartbeat.ready(False, f"batch failed, retrying: {type(exc).__name__}")
                self._heartbeat.beat(idle=backoff)
                if self._stop.wait(backoff):
                    break
                backoff = min(MAX_BACKOFF_S, backoff * 2)
        return self.processed

    def _idle_done(self, once: bool, idle_exit: float, last_input: float) -> bool:
        if idle_exit and time.monotonic() - last_input >= idle_exit:
            return True
        return once and self._caught_up()

    def _caught_up(self) -> bool:
        """Every assigned partition has been consumed to its end: ``--once`` is done."""
        return self._lag() == 0

    def _lag(self) -> int | None:
        """Records between each assigned partition's position and its end; None with nothing assigned.

        Like the Java client's records-lag: the ends are the high-water marks of the latest fetches (every record
        that existed when this run began lies below them), without a round trip; ListOffsets only for partitions
        not fetched yet."""
        consumer = self._consumer
        assert consumer is not None
        assigned = list(consumer.assignment())
        if not assigned:
            return None
        ends = {tp: consumer.highwater(tp) for tp in assigned}
        unknown = [tp for tp, end in ends.items() if end is None]
        if unknown:
            ends.update(consumer.end_offsets(unknown))
        lag: int = sum(max(0, ends[tp] - consumer.position(tp)) for tp in assigned)
        return lag

    # --- state -------------------------------------------------------------------------------------------------
    def _sync_assignment(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        revoked = self._listener.take()
        assigned = {tp.partition for tp in consumer.assignment() if tp.topic == OBSERVATIONS}
        if revoked or assigned != set(self._parts):
            self._settle()  # restores read committed offsets and state: let the batch in flight land first
        for p in revoked:
            self._parts.pop(p, None)
        for p in set(self._parts) - assigned:
            del self._parts[p]
        missing = assigned - set(self._parts)
        if missing:
            self._parts.update(self._restore(missing))
            self._count_packages()
            self._last_flush = time.monotonic()  # restored state is as fresh as a checkpoint: the interval restarts

    def _restore(self, partitions: set[int]) -> dict[int, Partition]:
        """State topic, then a replay of the input from each partition's checkpoint to its committed offset."""
        consumer = self._consumer
        assert consumer is not None
        started = time.monotonic()
        deadline = started + self._cfg.restore_timeout_s
        timeout_ms = int(self._cfg.call_timeout_s * 1000)
        committed = {p: consumer.committed(TopicPartition(OBSERVATIONS, p), True, timeout_ms) for p in partitions}
        states = restore.read_states(self._clients, self._codec, partitions, deadline)
        parts: dict[int, Partition] = {}
        replayed = 0
        for p in sorted(partitions):
            c = committed[p]
            nxt = None if c is None else c.offset
            checkpoint = None if c is None else parse_checkpoint(c.metadata)
            part = Partition(p, states[p], nxt, nxt if checkpoint is None else checkpoint)
            if nxt is not None and part.checkpoint is not None and part.checkpoint < nxt:
                part.dirty = restore.replay(
                    self._clients,
                    self._codec,
                    p,
                    part.checkpoint,
                    nxt,
                    part.states,
                    self._clock,
                    deadline,
                    self._cfg.authority,
                )
                replayed += nxt - part.checkpoint
            parts[p] = part
        settle_after_restore()
        logger.info(
            "restored %d package states for partitions %s (replayed %d records) in %.1fs",
            sum(len(x.states) for x in parts.values()),
            sorted(partitions),
            replayed,
            time.monotonic() - started,
        )
        return parts

    def _count_packages(self) -> None:
        self._metrics.state_packages.set(sum(len(x.states) for x in self._parts.values()))

    def _flush_due(self) -> bool:
        if time.monotonic() - self._last_flush >= self._cfg.state_flush_interval_s:
            return True
        return any(x.unflushed >= self._cfg.state_max_replay for x in self._parts.values())

    # --- one transaction ---------------------------------------------------------------------------------------
    def _process(self, records: dict[TopicPartition, list[Any]], checkpoint: bool = False) -> None:
        """One batch: through the core, then published in one transaction (with every changed state when a
        checkpoint is due, or when ``checkpoint``: the last batch of ``--once``, which then needs no final one)."""
        batch = Batch(self._clock, self._cfg.authority)
        ends: dict[int, int] = {}
        count = skipped = 0
        ignorable = self._prefilter.ignorable
        for tp, recs in records.items():
            p = tp.partition
            part = self._parts[p]
            if part.checkpoint is None:
                part.checkpoint = recs[0].offset  # nothing committed yet: the state read reflects where we start
            states = part.states
            for rec in recs:
                if ignorable(rec.value):
                    skipped += 1
                    continue
                event, error = self._decode(rec.value)
                if error is None:
                    batch.apply_event(event, states, p, partial(_delivery, rec, event))
                else:
                    batch.apply(_delivery(rec, None, error), states, p)
            count += len(recs)
            ends[p] = recs[-1].offset + 1
        batch.ignored(skipped)
        self._commit(batch, ends, flush=checkpoint or self._flush_due(), count=count)

    def _commit(self, batch: Batch, ends: dict[int, int], flush: bool, count: int = 0) -> None:
        """Publish a batch (and, if ``flush``, every dirty state) with the offsets in one transaction, which commits
        in the background (``processors.inflight``) while the next batch is consumed."""
        self._settle()  # one transaction at a time
        producer, consumer = self._producer, self._consumer
        assert producer is not None and consumer is not None
        changed: dict[int, dict[str, PackageStateRecord]] = {}
        for (p, key), state in batch.changed.items():
            changed.setdefault(p, {})[key] = state
        flushing = {p for p, x in self._parts.items() if x.dirty or p in changed} if flush else set()
        appender = self._appender
        assert appender is not None
        appender.begin_transaction()
        futures = [self._send(TRANSITIONS, t) for t in batch.transitions]
        futures += [self._send(WATCH, w) for w in batch.watch]
        futures += [self._send(DEADLETTER, d) for d in batch.deadletters]
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        checkpoints: dict[int, int] = {}
        for p in set(ends) | flushing:
            part = self._parts[p]
            position = ends.get(p, part.next_offset)
            if position is None:
                continue
            if p in flushing:
                fresh = changed.get(p, {})
                for key in part.dirty | set(fresh):
                    futures.append(self._send(STATE, fresh.get(key) or part.states[key], partition=p))
                checkpoints[p] = position
            else:
                checkpoints[p] = part.checkpoint if part.checkpoint is not None else position
            offsets[TopicPartition(OBSERVATIONS, p)] = OffsetAndMetadata(
                position, checkpoint_metadata(checkpoints[p]), -1
            )
        self._inflight = _InFlight(
            BackgroundCommit(
                producer,
                futures,
                offsets,
                consumer.group_metadata() if offsets else None,
                self._cfg.call_timeout_s,
            ),
            batch,
            count,
        )
        # The next batch builds on this one before its commit is known. If the commit fails, _recover drops all of
        # this and rebuilds it from Kafka before anything else is published.
        for p, fresh in changed.items():
            self._parts[p].states.update(fresh)
            self._parts[p].dirty.update(fresh)
        for tp, om in offsets.items():
            part = self._parts[tp.partition]
            part.next_offset, part.checkpoint = om.offset, checkpoints[tp.partition]
            if tp.partition in flushing:
                part.dirty.clear()
        if flush:
            self._last_flush = time.monotonic()

    def _settle(self) -> None:
        """Wait for the transaction in flight; only once it is committed does its batch count (metrics, logs)."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return
        inflight.commit.wait()
        batch = inflight.batch
        self.processed += inflight.count
        self.transitions += len(batch.transitions)
        batch.record(self._metrics)
        self._count_packages()
        if batch.transitions:
            logger.info("committed %d observations, %d transitions", inflight.count, len(batch.transitions))

    def _final_flush(self) -> None:
        """Checkpoint everything at a clean exit, so the next start replays nothing. Failing here loses nothing:
        the next start replays from the last committed offset and checkpoint."""
        try:
            self._settle()
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.warning("the last batch did not commit (the next start processes it again): %s", exc)
            return
        if not any(x.dirty for x in self._parts.values()):
            return
        try:
            self._commit(Batch(self._clock, self._cfg.authority), {}, flush=True)
            self._settle()
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.warning("final state checkpoint failed (the next start replays instead): %s", exc)

    def _decode(self, value: bytes | None) -> tuple[Any, str | None]:
        """(event, None), or (None, why it cannot be used)."""
        if value is None:
            return None, "empty record"
        try:
            return self._codec.decode(value), None
        except SchemaError as exc:
            return None, str(exc)

    def _send(self, topic: str, event: object, partition: int | None = None) -> Any:
        appender = self._appender
        assert appender is not None
        return appender.send(
            topic, key_of(event), self._codec.encode(event), self._codec.kafka_headers(event), partition
        )

    # --- recovery and lag --------------------------------------------------------------------------------------
    def _recover(self) -> None:
        """Abort, rewind to the committed offsets, forget uncommitted state; replace the producer if needed.

        Runs before the next poll; if it fails (the broker is still away) the loop backs off and runs it again,
        so no record is consumed from a position that was not committed.
        """
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            try:
                inflight.commit.wait()  # whatever it did, the rebuild below reads it from Kafka
            except Exception as exc:  # noqa: BLE001 - the batch is redone either way
                logger.info("the transaction in flight did not commit: %s", exc)
        try:
            producer = self._producer
            assert producer is not None
            self._bounded("abort_transaction", producer.abort_transaction)
        except Exception as exc:  # noqa: BLE001 - no transaction open, or the producer is fenced/broken
            logger.info("replacing the transactional producer (%s)", exc)
            self._replace_producer()
        self._parts.clear()  # rebuilt (state topic + replay) before the next batch
        consumer = self._consumer
        if consumer is None:
            return
        try:
            for tp in consumer.assignment():
                committed = consumer.committed(tp, timeout_ms=int(self._cfg.call_timeout_s * 1000))
                if committed is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
        except Exception as exc:
            logger.warning("could not rewind to committed offsets yet: %s", exc)
            raise

    def _bounded(self, what: str, call: Callable[[], object]) -> None:
        """Run a blocking transactional call with a deadline.

        kafka-python waits without a timeout in send_offsets_to_transaction, commit_transaction and
        abort_transaction; across a broker restart such a wait was seen never to return. Past the deadline the
        batch fails like any other error and the producer is replaced (``init_transactions`` then settles the
        transaction it left: committed, or aborted, together with its offsets).
        """
        errors: list[BaseException] = []

        def target() -> None:
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

        worker = threading.Thread(target=target, name=f"qwatch-{what}", daemon=True)
        worker.start()
        worker.join(self._cfg.call_timeout_s)
        if worker.is_alive():
            raise TimeoutError(f"{what} did not complete within {self._cfg.call_timeout_s:.0f}s")
        if errors:
            raise errors[0]

    def _replace_producer(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            # Like KafkaSink.abandon: close() would first wait for batches that may never be acknowledged.
            sender = getattr(old, "_sender", None)
            if sender is not None:
                sender.force_close()
                sender.join(5)
            try:
                old.close(timeout=0)
            except Exception:  # noqa: BLE001 - the old producer is being discarded either way
                logger.debug("old producer closed with errors")
        self._producer = self._new_producer()

    def _measure_lag(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_lag < self._cfg.lag_interval_s:
            return
        self._last_lag = now
        lag = self._lag()
        if lag is not None:
            self._metrics.consumer_lag.labels(self._cfg.group_id, OBSERVATIONS).set(lag)
