"""The platform on the real Apache Kafka broker: round trips, topic configs, and a broker outage mid-batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.partitioner.default import murmur2

from qwatch import events
from qwatch.broker import LocalBroker
from qwatch.config import KafkaConfig
from qwatch.cursors import FileCursorStore, KafkaCursorStore
from qwatch.events import topics
from qwatch.events.codec import SCHEMA_HEADER, Codec
from qwatch.ids import event_id, now_ms
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import (
    KafkaSink,
    KafkaSource,
    TransactionalAppender,
    create_topics,
    make_admin,
    make_consumer,
    make_producer,
    read_topic,
)
from qwatch.sinks import PublishError

pytestmark = pytest.mark.kafka


def _journal_row(serial: int, package: str = "demo") -> events.JournalEntryObserved:
    ts = 1767323045000 + serial
    return events.JournalEntryObserved(
        event_id=event_id("pypi-journal", serial),
        source="pypi-journal",
        ecosystem="PyPI",
        package=package,
        observed_at=now_ms(),
        upstream_time=ts,
        action="project quarantined",
        version=None,
        serial=serial,
        timestamp=ts,
        name=package,
    )


def test_round_trip_with_the_projects_producer_consumer_and_codec(
    kafka_cfg: KafkaConfig, codec: Codec, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=3)
    sent = [_journal_row(i, f"pkg-{i % 7}") for i in range(200)]
    sink = KafkaSink(make_producer(kafka_cfg), codec)
    for e in sent:
        sink.emit(e, topic)
    sink.flush(30)
    sink.close()

    source = KafkaSource(make_consumer(kafka_cfg, "roundtrip", topic, consumer_timeout_ms=10_000), codec)
    got = []
    while len(got) < len(sent):
        batch = source.poll(1.0)
        assert batch or len(got) < len(sent)
        got.extend(batch)
    source.commit()
    source.close()
    assert sorted(d.event.serial for d in got) == sorted(e.serial for e in sent)
    assert {d.event for d in got} == set(sent)
    # Keyed by ecosystem:package, so one package's events share a partition and stay in order.
    by_key: dict[bytes | None, set[int]] = {}
    for d in got:
        by_key.setdefault(d.key, set()).add(d.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    assert b"PyPI:pkg-3" in by_key


def test_schema_name_travels_in_a_header(
    kafka_cfg: KafkaConfig, codec: Codec, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory()
    sink = KafkaSink(make_producer(kafka_cfg), codec)
    sink.emit(_journal_row(1), topic)
    sink.close()
    consumer = make_consumer(kafka_cfg, "headers", topic)
    records = []
    for _ in range(20):
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
        if records:
            break
    consumer.close()
    assert dict(records[0].headers)[SCHEMA_HEADER] == b"JournalEntryObserved"


def test_topics_are_created_idempotently_with_their_configs(kafka_cfg: KafkaConfig) -> None:
    admin = make_admin(kafka_cfg)
    try:
        assert create_topics(admin) == []  # the session fixture already created them
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.STATE)])
        text = repr(described)
        assert "compact" in text
        parts = admin.describe_topics([topics.OBSERVATIONS])[0]["partitions"]
        assert len(parts) == topics.PACKAGE_PARTITIONS
    finally:
        admin.close()


def test_kafka_cursor_store_keeps_the_newest_per_component(kafka_cfg: KafkaConfig, codec: Codec) -> None:
    store = KafkaCursorStore(KafkaClients(kafka_cfg), make_producer(kafka_cfg), codec)
    component = f"test-{now_ms()}"
    assert store.load(component) is None
    store.save(events.Cursor(component, "1", now_ms()))
    store.save(events.Cursor(component, "2", now_ms()))
    loaded = store.load(component)
    assert loaded is not None and loaded.value == "2"


def _publish_then_move_cursor(
    sink: KafkaSink,
    store: FileCursorStore,
    batch: list[events.JournalEntryObserved],
    on_half: Callable[[], None] | None = None,
) -> None:
    """What every ingestor does: emit, flush (acks=all), and only then save the cursor."""
    for i, e in enumerate(batch):
        sink.emit(e)
        if on_half is not None and i == len(batch) // 2:
            on_half()
    sink.flush(10)
    store.save(events.Cursor("journal-test", str(batch[-1].serial), now_ms()))


def test_broker_outage_mid_batch_loses_nothing_and_holds_the_cursor(
    fresh_broker: Callable[[], LocalBroker], codec: Codec, tmp_path: Path
) -> None:
    broker = fresh_broker()
    cfg = KafkaConfig(bootstrap=broker.bootstrap)
    store = FileCursorStore(tmp_path / "state")
    first = [_journal_row(i) for i in range(1, 501)]
    sink = KafkaSink(make_producer(cfg), codec)
    _publish_then_move_cursor(sink, store, first)
    sink.close()
    assert store.load("journal-test").value == "500"  # type: ignore[union-attr]

    second = [_journal_row(i) for i in range(501, 2001)]
    outage_sink = KafkaSink(make_producer(cfg, delivery_timeout_ms=8000, request_timeout_ms=3000), codec)
    with pytest.raises(PublishError):
        _publish_then_move_cursor(outage_sink, store, second, on_half=broker.kill)
    outage_sink.abandon()
    # The flush failed, so the cursor did not move past the unacknowledged events.
    assert store.load("journal-test").value == "500"  # type: ignore[union-attr]

    broker.start()
    # The ingestor retries the range from its cursor with a fresh producer, as a restarted process would.
    cursor = int(store.load("journal-test").value)  # type: ignore[union-attr]
    retry = [e for e in first + second if e.serial > cursor]
    retry_sink = KafkaSink(make_producer(cfg), codec)
    _publish_then_move_cursor(retry_sink, store, retry)
    retry_sink.close()
    assert store.load("journal-test").value == "2000"  # type: ignore[union-attr]

    delivered = read_topic(KafkaClients(cfg), codec, topics.OBSERVATIONS, timeout=30)
    ids = [d.event.event_id for d in delivered]
    # At-least-once: every event is there; replays are possible and carry the same deterministic id.
    assert {e.event_id for e in first + second} == set(ids)
    assert len(ids) >= 2000


def _read_committed(cfg: KafkaConfig, topic: str) -> list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]:
    consumer = make_consumer(cfg, None)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend((r.partition, r.key, r.value, list(r.headers)) for r in recs)
        return out
    finally:
        consumer.close()


def test_transactional_appender_places_records_as_send_does(
    kafka_cfg: KafkaConfig, topic_factory: Callable[..., str]
) -> None:
    """Through the appender's own path (not its fallback): the default partitioner's partition for every key, an
    explicit partition kept, the schema header kept, and aborted records invisible to read_committed readers."""
    topic = topic_factory(partitions=6)
    producer = make_producer(kafka_cfg, transactional_id=f"appender-{topic}")
    try:
        producer.init_transactions()
        producer.partitions_for(topic)
        appender = TransactionalAppender(producer)
        assert appender.fast, "kafka-python's internals changed: the appender only falls back to send()"
        keys = [f"PyPI:pkg-{i}".encode() for i in range(60)]
        header = [(SCHEMA_HEADER, b"Transition")]
        appender.begin_transaction()
        for key in keys:
            appender.send(topic, key, b"committed:" + key, header)
        appender.send(topic, b"PyPI:pinned", b"committed:pinned", header, partition=5)
        producer.commit_transaction()
        appender.begin_transaction()
        for key in keys[:10]:
            appender.send(topic, key, b"aborted:" + key, header)
        producer.flush()
        producer.abort_transaction()
        with pytest.raises(ValueError, match="unknown partition"):
            appender.send(topic, b"k", b"v", header, partition=6)
    finally:
        producer.close(timeout=5)
    got = _read_committed(kafka_cfg, topic)
    assert sorted(v for _, _, v, _ in got) == sorted([b"committed:" + k for k in keys] + [b"committed:pinned"])
    parts = sorted(range(6))
    for partition, key, _, headers in got:
        assert headers == header
        if key == b"PyPI:pinned":
            assert partition == 5
        else:  # what KafkaProducer.send's DefaultPartitioner (and the Java client) choose
            assert partition == parts[(murmur2(key) & 0x7FFFFFFF) % 6], (key, partition)


def test_transactional_appender_falls_back_to_send_without_a_transaction(kafka_cfg: KafkaConfig) -> None:
    producer = make_producer(kafka_cfg)
    try:
        assert not TransactionalAppender(producer).fast
    finally:
        producer.close(timeout=5)
