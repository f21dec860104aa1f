"""``processors.inflight.BackgroundCommit`` on the real broker: a commit that lands is visible to read_committed
consumers; a send the broker refuses fails ``wait`` (never a silent commit) and leaves nothing visible."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaError

from processors.inflight import BackgroundCommit
from qwatch.config import KafkaConfig
from qwatch.kafka.io import make_consumer, make_producer

pytestmark = pytest.mark.kafka


def committed_values(cfg: KafkaConfig, topic: str) -> list[bytes]:
    consumer = make_consumer(cfg, None)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        out: list[bytes] = []
        for _ in range(5):
            for recs in consumer.poll(timeout_ms=1000).values():
                out.extend(r.value for r in recs)
        return out
    finally:
        consumer.close()


def test_a_commit_in_the_background_lands(kafka_cfg: KafkaConfig, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory()
    producer = make_producer(kafka_cfg, transactional_id=f"test-inflight-{uuid.uuid4().hex[:8]}")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        futures = [producer.send(topic, value=f"v{i}".encode(), partition=0) for i in range(3)]
        BackgroundCommit(producer, futures, {}, None, call_timeout_s=30).wait()
    finally:
        producer.close(timeout=5)
    assert committed_values(kafka_cfg, topic) == [b"v0", b"v1", b"v2"]


def test_a_refused_send_fails_the_wait_and_nothing_is_committed(
    kafka_cfg: KafkaConfig, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(configs={"max.message.bytes": "1024"})
    producer = make_producer(kafka_cfg, transactional_id=f"test-inflight-{uuid.uuid4().hex[:8]}")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        futures = [producer.send(topic, value=b"x" * 8192, partition=0)]  # over the topic's limit
        commit = BackgroundCommit(producer, futures, {}, None, call_timeout_s=30)
        with pytest.raises(KafkaError, match="sends failed"):
            commit.wait()
        producer.abort_transaction()
    finally:
        producer.close(timeout=5)
    assert committed_values(kafka_cfg, topic) == []
