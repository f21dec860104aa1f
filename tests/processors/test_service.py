"""The processor on a real broker, as a separate process: exact transitions, SIGKILL mid-transaction, a broker
restart mid-stream, and full replays. Each test owns a private broker (``fresh_broker``), so its transactional
producer and consumer group see only its own records."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from processors.config import ProcessorConfig
from processors.core import step
from processors.service import ProcessorService
from qwatch import events
from qwatch.broker import LocalBroker
from qwatch.config import KafkaConfig
from qwatch.events.codec import Codec
from qwatch.events.state import PackageStateRecord
from qwatch.events.topics import OBSERVATIONS, STATE, TRANSITIONS, WATCH
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import KafkaSink, make_consumer, make_producer, read_topic
from qwatch.metrics import Metrics
from testing.samples import T0, index, journal, page, report
from tests import slow_commit

pytestmark = pytest.mark.kafka

QWATCH = str(Path(sys.executable).with_name("qwatch"))
MIN = 60_000


def history(package: str, base: int) -> list[events.Observation]:
    """One package's scripted timeline: a report, quarantine/clear, a yank, removal and re-registration."""
    at = T0 + base * MIN
    return [
        page(package, "active", base + 1, at),
        report(package, f"MAL-2026-{base}", "added", "2026-01-02T00:00:00Z", f"c{base}", at, ("1.0",)),
        index(package, False, at + 1000),
        page(package, "quarantined", base + 2, at + 30_000),
        journal(package, base + 2, "project quarantined", ts=at + 20_000),
        journal(package, base + 3, "project quarantine cleared", ts=at + 40_000),
        journal(package, base + 4, "yank release", "1.0", ts=at + 50_000),
        journal(package, base + 5, "remove project", ts=at + 60_000),
        journal(package, base + 6, "create", ts=at + 70_000),
        page(package, "active", base + 6, at + 80_000),
    ]


def scripted(packages: int) -> list[events.Observation]:
    """Histories of several packages, interleaved round-robin (each package's own order is kept)."""
    per = [history(f"pkg-{i:03d}", 1000 * (i + 1)) for i in range(packages)]
    return [obs for group in zip(*per, strict=True) for obs in group]


def expected(observations: Sequence[events.Observation]) -> dict[str, list[tuple[str, str]]]:
    """(event_id, kind) per package, from the pure core run in input order."""
    states: dict[str, PackageStateRecord | None] = defaultdict(lambda: None)
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for obs in observations:
        result = step(states[obs.package], obs, T0)
        states[obs.package] = result.state
        out[obs.package].extend((t.event_id, t.kind) for t in result.transitions)
    return dict(out)


def produce(cfg: KafkaConfig, codec: Codec, observations: Sequence[events.Observation]) -> None:
    sink = KafkaSink(make_producer(cfg), codec)
    for obs in observations:
        sink.emit(obs)
    sink.close()


def transitions(cfg: KafkaConfig, codec: Codec, isolation: str = "read_committed") -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for d in read_topic(KafkaClients(cfg), codec, TRANSITIONS, timeout=30, isolation_level=isolation):
        out[d.event.package].append((d.event.event_id, d.event.kind))
    return dict(out)


def count(cfg: KafkaConfig, codec: Codec, isolation: str) -> int:
    return sum(len(v) for v in transitions(cfg, codec, isolation).values())


def processor(broker: LocalBroker, *args: str, commit_delay_ms: int = 0, **env: str) -> subprocess.Popen[str]:
    full_env = {**os.environ, "QWATCH_KAFKA_BOOTSTRAP": broker.bootstrap, **env}
    argv = slow_commit.command(commit_delay_ms, "process", *args) if commit_delay_ms else [QWATCH, "process", *args]
    return subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 90) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_exact_transitions_then_full_replays_emit_nothing(
    fresh_broker: Callable[[], LocalBroker], codec: Codec
) -> None:
    broker = fresh_broker()
    cfg = KafkaConfig(bootstrap=broker.bootstrap)
    observations = scripted(4)
    produce(cfg, codec, observations)
    finish(processor(broker, "--once"))

    got = transitions(cfg, codec)
    want = expected(observations)
    assert got == want
    kinds = ["REPORTED", "QUARANTINED", "CLEARED", "YANKED", "REMOVED", "RESTORED"]
    assert all([k for _, k in v] == kinds for v in got.values())
    watch = read_topic(KafkaClients(cfg), codec, WATCH, isolation_level="read_committed")
    assert sorted({d.event.reason for d in watch}) == ["dropped-from-root-index", "new-report"]
    states = {
        d.event.package: d.event for d in read_topic(KafkaClients(cfg), codec, STATE, isolation_level="read_committed")
    }
    assert set(states) == set(want) and all(s.status == "active" for s in states.values())

    # Replay 1: a new consumer group over the whole topic, with the state restored from qwatch.state.v1; run
    # in-process to read its metrics.
    metrics = Metrics(CollectorRegistry())
    service = ProcessorService(ProcessorConfig(group_id="replay", instance_id="r"), KafkaClients(cfg), codec, metrics)
    assert service.run(once=True) == len(observations) and service.transitions == 0
    sample = metrics.registry.get_sample_value
    assert sample("qwatch_processor_observations_total", {"outcome": "duplicate"}) == len(observations)
    assert sample("qwatch_processor_state_packages") == 4
    assert sample("qwatch_consumer_lag_records", {"group": "replay", "topic": OBSERVATIONS}) == 0
    # Replay 2: the original group's offsets reset to the beginning.
    consumer = make_consumer(cfg, "qwatch-processor")
    try:
        tps = [TopicPartition(OBSERVATIONS, p) for p in sorted(consumer.partitions_for_topic(OBSERVATIONS) or [])]
        consumer.assign(tps)
        consumer.commit({tp: OffsetAndMetadata(0, "", -1) for tp in tps})
    finally:
        consumer.close()
    finish(processor(broker, "--once"))
    assert transitions(cfg, codec) == want


def test_sigkill_mid_transaction_loses_and_duplicates_nothing(
    fresh_broker: Callable[[], LocalBroker], codec: Codec
) -> None:
    broker = fresh_broker()
    cfg = KafkaConfig(bootstrap=broker.bootstrap)
    observations = scripted(24)
    produce(cfg, codec, observations)
    slow = {
        "QWATCH_PROCESSOR_BATCH_SIZE": "25",
        "QWATCH_PROCESSOR_STATE_FLUSH_INTERVAL_S": "600",
    }
    proc = processor(broker, "--once", commit_delay_ms=1500, **slow)
    try:
        # Kill while a transaction is open: its records are visible to read_uncommitted only.
        wait_for(
            lambda: (
                count(cfg, codec, "read_committed") > 0
                and count(cfg, codec, "read_uncommitted") > count(cfg, codec, "read_committed")
            ),
            60,
            "an open transaction after a committed one",
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 0 < count(cfg, codec, "read_committed") < sum(len(v) for v in expected(observations).values())
    out = finish(processor(broker, "--once"))
    # The killed run committed batches but no state checkpoint yet: the restart rebuilt that state by replay.
    assert re.search(r"replayed [1-9]\d* records", out), out
    assert transitions(cfg, codec) == expected(observations)
    assert count(cfg, codec, "read_uncommitted") > count(cfg, codec, "read_committed")  # the aborted batch


def test_broker_restart_mid_stream(fresh_broker: Callable[[], LocalBroker], codec: Codec) -> None:
    broker = fresh_broker()
    cfg = KafkaConfig(bootstrap=broker.bootstrap)
    observations = scripted(16)
    produce(cfg, codec, observations)
    total = sum(len(v) for v in expected(observations).values())
    slow = {
        "QWATCH_PROCESSOR_BATCH_SIZE": "20",
        # kafka-python can wait forever on a transactional call across a restart; the deadline turns that into
        # an ordinary failed batch (abort or replace the producer, rewind, retry).
        "QWATCH_PROCESSOR_CALL_TIMEOUT_S": "8",
        "QWATCH_PROCESSOR_STATE_FLUSH_INTERVAL_S": "0",  # state in every transaction: the other restore path
    }
    proc = processor(broker, "--once", commit_delay_ms=400, **slow)
    try:
        wait_for(lambda: count(cfg, codec, "read_committed") > 0, 60, "first committed transitions")
        assert count(cfg, codec, "read_committed") < total, "the processor finished before the outage"
        broker.stop()
        time.sleep(1)
        broker.start()
        finish(proc, timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert transitions(cfg, codec) == expected(observations)


def test_scale_out_rebalance_hands_over_unflushed_state(fresh_broker: Callable[[], LocalBroker], codec: Codec) -> None:
    """A second replica joins mid-stream: partitions move to it with state that was never checkpointed (the
    flush interval is long), so it must rebuild that state by replay; the output stays exact."""
    broker = fresh_broker()
    cfg = KafkaConfig(bootstrap=broker.bootstrap)
    observations = scripted(16)
    produce(cfg, codec, observations)
    slow = {
        "QWATCH_PROCESSOR_BATCH_SIZE": "20",
        "QWATCH_PROCESSOR_STATE_FLUSH_INTERVAL_S": "600",
    }
    first = processor(broker, "--idle-exit", "6", "--instance-id", "a", commit_delay_ms=300, **slow)
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: count(cfg, codec, "read_committed") > 0, 60, "first committed transitions")
        second = processor(broker, "--idle-exit", "6", "--instance-id", "b", commit_delay_ms=300, **slow)
        outputs = finish(first, timeout=120) + finish(second, timeout=120)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert transitions(cfg, codec) == expected(observations)
    assert re.search(r"replayed [1-9]\d* records", outputs), outputs
