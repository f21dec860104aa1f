"""End to end on a real broker with the real pipeline: register an inventory, quarantine one of its transitive
dependencies in the local PyPI, let the journal ingestor and the processor turn that into a transition, and see
the alert with its dependency path on qwatch.alerts.v1 and, signed, at a real webhook receiver. A lockfile
registered afterwards is alerted retroactively; the gate in broker mode fails on the processor's state; tail
renders alerts; the consumer group committed only what it processed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import TopicPartition

from qwatch.broker import LocalBroker
from qwatch.config import KafkaConfig
from qwatch.events.codec import Codec
from qwatch.events.outputs import Alert
from qwatch.events.topics import ALERTS, TRANSITIONS
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import make_admin, make_consumer, read_topic
from subscribers.alerts.webhook import verify_signature
from subscribers.inventory.lockfiles import load
from testing.fakepypi import FakePyPI
from tests.cli_support import Received, wait_for, webhook_receiver
from tests.fixture_paths import LOCAL

FIXTURES = LOCAL / "lockfiles"
QWATCH = str(Path(sys.executable).with_name("qwatch"))
SECRET = "e2e-secret"
GROUP = "e2e-alerts"


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    with webhook_receiver() as served:
        yield served


def cli(bootstrap: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [QWATCH, *args, "--bootstrap", bootstrap],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def pypi() -> Iterator[FakePyPI]:
    """The local PyPI, serving every package of the generated uv.lock at its locked version, a year old."""
    fake = FakePyPI()
    for p in load(FIXTURES / "uv" / "uv.lock").packages:
        if p.source.kind == "pypi" and p.version:
            fake.add_project(
                p.normalized,
                {p.version: [f"{p.normalized}-{p.version}-py3-none-any.whl"]},
                upload_time=time.time() - 400 * 86400,
            )
    with fake.serve():
        yield fake


@pytest.mark.kafka
def test_alert_reaches_topic_and_webhook_with_the_dependency_path(
    fresh_broker: Callable[[], LocalBroker],
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
    codec: Codec,
    pypi: FakePyPI,
    tmp_path: Path,
) -> None:
    url, got = receiver
    broker = fresh_broker()
    boot = broker.bootstrap
    cfg = KafkaConfig(bootstrap=boot)

    added = cli(boot, "inventory", "add", "--name", "acme", "--lock", str(FIXTURES / "uv" / "uv.lock"))
    assert added.returncode == 0, added.stderr
    assert "7 from PyPI now watched" in added.stdout

    lines: list[str] = []
    proc = subprocess.Popen(
        [QWATCH, "alerts", "--bootstrap", boot, "--group", GROUP, "--webhook-url", url],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "QWATCH_WEBHOOK_SECRET": SECRET, "QWATCH_ALERTS_POLL_TIMEOUT": "0.5"},
    )
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(lambda: any("alerts: ready" in line for line in lines), 60, "qwatch alerts to be ready")
        # delta: acme-app > alpha > beta > delta, two levels below a direct dependency. Quarantined in the local
        # PyPI, seen by the real journal ingestor, turned into a transition by the real processor.
        since = pypi.last_serial
        pypi.quarantine("delta")
        ingest = cli(
            boot,
            "ingest",
            "pypi-journal",
            "--xmlrpc-url",
            f"{pypi.base_url}/pypi",
            "--since-serial",
            str(since),
            "--once",
            "--state-dir",
            str(tmp_path / "cursors"),
        )
        assert ingest.returncode == 0, ingest.stderr
        process = cli(boot, "process", "--once", "--idle-exit", "3")
        assert process.returncode == 0, process.stderr

        wait_for(lambda: len(got) >= 1, 30, "the webhook POST")
        headers, body = got[0]
        assert verify_signature(SECRET, body, headers)
        event = json.loads(body)
        assert event["specversion"] == "1.0" and event["type"] == "dev.qwatch.alert.v1"
        assert event["data"]["path"] == ["acme-app", "alpha", "beta", "delta"]
        assert (event["data"]["project"], event["data"]["version"]) == ("acme", "3.0.0")

        alerts = [d.event for d in read_topic(KafkaClients(cfg), codec, ALERTS) if isinstance(d.event, Alert)]
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert.path == ("acme-app", "alpha", "beta", "delta")
        assert (alert.kind, alert.severity, alert.package, alert.retroactive) == ("QUARANTINED", "high", "delta", False)
        assert event["id"] == alert.event_id

        # Registered after the fact: checked against current state at once.
        late = cli(boot, "inventory", "add", "--name", "late", "--lock", str(FIXTURES / "poetry" / "poetry.lock"))
        assert late.returncode == 0, late.stderr
        wait_for(lambda: len(got) >= 2, 30, "the retroactive webhook POST")
        retro = json.loads(got[1][1])["data"]
        assert (retro["project"], retro["retroactive"], retro["path"]) == ("late", True, ["alpha", "beta", "delta"])

        listed = cli(boot, "inventory", "list", "--format", "json")
        assert [p["project"] for p in json.loads(listed.stdout)] == ["acme", "late"]

        tail = cli(boot, "tail", "--topic", "alerts", "--from-beginning", "--max", "2", "--idle-exit", "10")
        assert tail.returncode == 0, tail.stderr
        assert "QUARANTINED" in tail.stdout and "acme-app > alpha > beta > delta" in tail.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, "".join(lines[-20:])

    admin = make_admin(cfg)
    try:
        offsets = admin.list_group_offsets(GROUP)[GROUP]
    finally:
        admin.close()
    transitions = [d.event for d in read_topic(KafkaClients(cfg), codec, TRANSITIONS)]
    assert any(t.kind == "QUARANTINED" and t.package == "delta" for t in transitions)
    consumer = make_consumer(cfg, None)
    try:
        ends = consumer.end_offsets(
            [TopicPartition(TRANSITIONS, p) for p in consumer.partitions_for_topic(TRANSITIONS)]
        )
    finally:
        consumer.close()
    committed = {tp: m.offset for tp, m in offsets.items() if tp.topic == TRANSITIONS}
    assert committed and all(committed[tp] == ends[tp] for tp in committed)  # committed to the end, after processing
    _gate_uses_processor_state(boot, pypi)


def _gate_uses_processor_state(bootstrap: str, pypi: FakePyPI) -> None:
    """Broker mode: the processor's state says delta is quarantined; clear it in PyPI and the state still wins."""
    pypi.clear_quarantine("delta")
    lock = FIXTURES / "uv" / "uv.lock"
    done = cli(bootstrap, "gate", "--lock", str(lock), "--index-url", f"{pypi.base_url}/simple/", "--format", "json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["facts"] == "processor+pypi"
    assert [(f["package"], f["reason"], f["source"]) for f in doc["findings"]] == [
        ("delta", "quarantined", "processor")
    ]


@pytest.mark.kafka
def test_a_new_group_starts_where_the_start_read_ended_and_skips_nothing(
    fresh_broker: Callable[[], LocalBroker], codec: Codec
) -> None:
    """Transitions published between the start-up read and the group's first assignment are consumed, not skipped
    (a "latest" start lost the demo's first quarantine alert on a loaded machine); a group that has committed
    resumes from its commit."""
    from qwatch.kafka.io import KafkaSink, make_producer, read_topic_to_end
    from subscribers.alerts.cli import _start_new_partitions
    from tests.subscribers.alerts.test_core import transition

    cfg = KafkaConfig(bootstrap=fresh_broker().bootstrap)

    def publish(*names: str) -> None:
        sink = KafkaSink(make_producer(cfg), codec)
        for name in names:
            sink.emit(transition("QUARANTINED", name, "quarantined"))
        sink.close()

    def consume(group: str) -> tuple[bool, list[str]]:
        consumer = make_consumer(cfg, group, TRANSITIONS, auto_offset_reset="latest")
        try:
            deadline = time.monotonic() + 30
            early: list[str] = []  # what the poll that joined returned, as qwatch alerts keeps it unless it seeks
            while not consumer.assignment() and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    early += [codec.decode(r.value).package for r in records]
            moved = _start_new_partitions(consumer, history_end)
            got = [] if moved else early
            quiet_until = time.monotonic() + 3
            while time.monotonic() < quiet_until:
                for records in consumer.poll(timeout_ms=300).values():
                    got += [codec.decode(r.value).package for r in records]
            consumer.commit()
            return moved, got
        finally:
            consumer.close()

    publish("history-a", "history-b")
    history, history_end = read_topic_to_end(KafkaClients(cfg), codec, TRANSITIONS)
    assert sorted(d.event.package for d in history) == ["history-a", "history-b"]
    assert sum(history_end.values()) == 2
    publish("while-joining")  # after the start read, before the group exists

    moved, got = consume("alerts-new")
    assert moved and got == ["while-joining"]
    publish("later")
    moved, got = consume("alerts-new")
    assert not moved and got == ["later"]
