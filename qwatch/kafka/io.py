"""Thin Kafka adapters: producer/consumer factories, the Kafka Sink and Source, and idempotent topic creation.

Delivery guarantees live here: the producer is idempotent with acks=all, a sink flush fails loudly if any send
failed (so callers never move a cursor past an unacknowledged event), and sources commit only when told to.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.partitioner.default import DefaultPartitioner, murmur2

from qwatch.events.codec import Codec, SchemaError
from qwatch.events.topics import ALL_TOPICS, TopicSpec, key_of, route
from qwatch.kafka.clients import KafkaClients as KafkaClients
from qwatch.kafka.clients import make_admin as make_admin
from qwatch.kafka.clients import make_consumer as make_consumer
from qwatch.kafka.clients import make_producer as make_producer
from qwatch.sinks import Delivery, PublishError

logger = logging.getLogger(__name__)


class _MaskSaslPassword(logging.Filter):
    """kafka-python's ``KafkaAdminClient`` logs its whole configuration at DEBUG, SASL password included.

    Attached to that one logger (filters do not inherit), it masks the value in the record's arguments, so the
    password stays out of the log whoever turns kafka-python's logging up.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            record.args = _masked(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(_masked(arg) for arg in record.args)
        return True


def _masked(value: Any) -> Any:
    if isinstance(value, dict) and value.get("sasl_plain_password"):
        return {**value, "sasl_plain_password": "***"}
    return value


logging.getLogger("kafka.admin.client").addFilter(_MaskSaslPassword())


def create_topics(admin: KafkaAdminClient, specs: tuple[TopicSpec, ...] = ALL_TOPICS) -> list[str]:
    """Create missing topics with their configs; existing ones are left alone. Returns the names created."""
    existing = set(admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    created: list[str] = []
    for spec in missing:
        try:
            admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        spec.partitions,
                        1 if _single_node(admin) else 3,
                        topic_configs=spec.configs,
                    )
                ]
            )
            created.append(spec.name)
        except TopicAlreadyExistsError:
            pass
    return created


def _single_node(admin: KafkaAdminClient) -> bool:
    try:
        return len(admin.describe_cluster().get("brokers", [])) < 3
    except KafkaError:
        return True


class TransactionalAppender:
    """``producer.send`` for a transactional producer's hot path: the same records in the same batches, a third
    less of the client's per-record Python.

    ``KafkaProducer.send`` re-validates every record (headers, types, size estimate, partition set), formats the
    producer's ``repr`` for a debug line even when debug is off, and its default partitioner sorts the partition set
    and murmur2-hashes the key in pure Python for every record. The processor sends one record per transition,
    watch request and checkpointed state, built by its own codec with one shared header list per type, to topics
    whose metadata it fetched at start; for it that overhead was most of ``send`` (bench/processor_bench.py). Here
    the partition is the default partitioner's choice (murmur2 of the key over the sorted partitions, with the hash
    remembered per key), and the record goes through the producer's own transaction bookkeeping and accumulator.

    Transactions must be begun through :meth:`begin_transaction`, which resets the partitions known to be added.

    It reaches into kafka-python's producer internals (accumulator, transaction manager, sender), so it checks at
    construction that they are there and that the producer is transactional with the default partitioner, and
    otherwise every call is a plain ``send``; so is a call for a topic without metadata yet, or an oversized record
    (``send`` then waits or raises as usual). tests/processors/test_service.py checks on the real broker that committed
    and aborted transactions behave the same through it.
    """

    MAX_KEYS = 65_536
    """Key hashes remembered (package keys recur: one package's transitions and states share one key)."""

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer
        accumulator: Any = getattr(producer, "_accumulator", None)
        transactions: Any = getattr(producer, "_transaction_manager", None)
        sender: Any = getattr(producer, "_sender", None)
        metadata: Any = getattr(producer, "_metadata", None)
        self.fast = (
            callable(getattr(accumulator, "append", None))
            and callable(getattr(transactions, "maybe_add_partition_to_transaction", None))
            and callable(getattr(sender, "wakeup", None))
            and callable(getattr(metadata, "partitions_for_topic", None))
            and bool(producer.config.get("transactional_id"))
            and type(producer.config.get("partitioner")) is DefaultPartitioner
            and producer.config.get("key_serializer") is None
            and producer.config.get("value_serializer") is None
        )
        self._accumulator, self._transactions, self._sender, self._metadata = (
            accumulator,
            transactions,
            sender,
            metadata,
        )
        self._max_size = int(producer.config.get("max_request_size", 1_048_576)) - 1024  # headroom for framing
        self._hashes: dict[bytes, int] = {}
        self._partitions: dict[str, tuple[frozenset[int], list[int]]] = {}
        self._tps: dict[tuple[str, int], TopicPartition] = {}
        self._added: set[TopicPartition] = set()

    def begin_transaction(self) -> None:
        """``producer.begin_transaction()``. Through here, each partition is added to a transaction once, not
        checked again for every record (the producer's own check takes its lock twice per record); a producer
        error between two records then fails the transaction's flush and commit instead of the next ``send``."""
        self._added.clear()
        self._producer.begin_transaction()

    def send(
        self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]], partition: int | None = None
    ) -> Any:
        """Like ``producer.send(topic, key=key, value=value, headers=headers, partition=partition)``."""
        known = self._metadata.partitions_for_topic(topic) if self.fast else None
        if not known or len(key) + len(value) > self._max_size:
            return self._producer.send(topic, key=key, value=value, headers=headers, partition=partition)
        cached = self._partitions.get(topic)
        if cached is None or cached[0] != known:
            cached = self._partitions[topic] = (frozenset(known), sorted(known))
        if partition is None:
            h = self._hashes.get(key)
            if h is None:
                if len(self._hashes) >= self.MAX_KEYS:
                    self._hashes.clear()
                h = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
            ordered = cached[1]
            partition = ordered[h % len(ordered)]
        elif partition not in cached[0]:
            raise ValueError(f"unknown partition {partition} of {topic}")
        tp = self._tps.get((topic, partition))
        if tp is None:
            tp = self._tps[(topic, partition)] = TopicPartition(topic, partition)
        if tp not in self._added:
            self._transactions.maybe_add_partition_to_transaction(tp)
            self._added.add(tp)
        future, full, created, _ = self._accumulator.append(tp, None, key, value, headers)
        if full or created:
            self._sender.wakeup()
        return future


class KafkaSink:
    """Sends encoded events with the schema-name header; ``flush`` raises unless every send was acknowledged."""

    def __init__(self, producer: KafkaProducer, codec: Codec) -> None:
        self._producer = producer
        self._codec = codec
        self._pending: list[Any] = []

    def emit(self, event: object, topic: str | None = None) -> None:
        """Encode and send; schema violations raise SchemaError here, before anything is sent."""
        value = self._codec.encode(event)
        headers = self._codec.kafka_headers(event)
        try:
            future = self._producer.send(topic or route(event), key=key_of(event), value=value, headers=headers)
        except KafkaError as exc:
            raise PublishError(f"send failed: {exc}", 1) from exc
        self._pending.append(future)

    def flush(self, timeout: float | None = None) -> None:
        """Wait for acknowledgements; any failure (or timeout) raises PublishError with the failed count."""
        pending, self._pending = self._pending, []
        try:
            self._producer.flush(timeout)
        except KafkaTimeoutError as exc:
            raise PublishError(f"not acknowledged within {timeout}s: {exc}", len(pending)) from exc
        failed = [f for f in pending if not f.is_done or f.failed()]
        if failed:
            first = next((f.exception for f in failed if f.is_done), None)
            raise PublishError(f"{len(failed)} of {len(pending)} events not acknowledged: {first}", len(failed))

    def close(self) -> None:
        """Flush what is pending, then close the producer."""
        try:
            self.flush(30)
        finally:
            self._producer.close(timeout=5)

    def abandon(self) -> None:
        """Close without waiting, after a failed flush: the unacknowledged events will be re-sent from the cursor."""
        self._pending.clear()
        # kafka-python's close() insists on flushing first; forcing the sender closed aborts the stuck batches so
        # close() can finish instead of blocking (or raising again from __del__ later).
        sender = getattr(self._producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(5)
        try:
            self._producer.close(timeout=0)
        except KafkaError:
            logger.debug("producer closed with undelivered records; they are replayed from the cursor")


class KafkaSource:
    """Polls a consumer and decodes; bad bytes become Deliveries with an error instead of exceptions."""

    def __init__(self, consumer: KafkaConsumer, codec: Codec) -> None:
        self._consumer = consumer
        self._codec = codec

    @property
    def exhausted(self) -> bool:
        """A topic never ends."""
        return False

    @property
    def consumer(self) -> KafkaConsumer:
        """The underlying consumer, for transactional offset commits and lag metrics."""
        return self._consumer

    def poll(self, timeout: float) -> list[Delivery]:
        """One poll; records are returned in partition order."""
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000))
        out: list[Delivery] = []
        for records in batches.values():
            out.extend(self._decode(r) for r in records)
        return out

    def _decode(self, record: Any) -> Delivery:
        if record.value is None:
            # A tombstone on a compacted topic: a deletion, not bad data.
            return Delivery(None, record.topic, record.partition, record.offset, record.key)
        try:
            event = self._codec.decode(record.value)
        except SchemaError as exc:
            return Delivery(None, record.topic, record.partition, record.offset, record.key, record.value, str(exc))
        return Delivery(event, record.topic, record.partition, record.offset, record.key, record.value)

    def commit(self) -> None:
        """Commit the positions of everything polled so far."""
        self._consumer.commit()

    def close(self) -> None:
        """Leave the group cleanly so a rebalance is quick."""
        self._consumer.close()


def read_topic(
    clients: KafkaClients, codec: Codec, topic: str, timeout: float = 10.0, **consumer_overrides: Any
) -> list[Delivery]:
    """Read a whole topic from the beginning to its current end, without a group (for compacted state and tests)."""
    return read_topic_to_end(clients, codec, topic, timeout, **consumer_overrides)[0]


def read_topic_to_end(
    clients: KafkaClients, codec: Codec, topic: str, timeout: float = 10.0, **consumer_overrides: Any
) -> tuple[list[Delivery], dict[TopicPartition, int]]:
    """``read_topic``, plus the end offsets it read up to: where a reader that continues must start, so that no
    record falls between the read and what follows it."""
    consumer = clients.consumer(None, **consumer_overrides)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return [], {}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        source = KafkaSource(consumer, codec)
        out: list[Delivery] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout}s")
            out.extend(source.poll(0.5))
        return out, dict(end)
    finally:
        consumer.close()
