"""A webhook receiver that is down receives every alert once it is back: real broker, real ``qwatch alerts``
processes, a real HTTP receiver on 127.0.0.1 that goes away (connection refused) and comes back on the same port.

The alerts service is also restarted in the middle of the outage: the undelivered alerts' transitions stay
uncommitted, so the new process delivers them. A receiver that *refuses* one alert (403) gets it parked, and
``qwatch alerts redeliver`` replays it once the receiver accepts it. ``QWATCH_TEST_OUTAGE_SECONDS`` (default 5)
sets the outage; the note's run used 60.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from qwatch.broker import LocalBroker
from qwatch.broker.local import free_port
from qwatch.config import KafkaConfig
from qwatch.events.codec import Codec
from qwatch.events.outputs import Alert
from qwatch.events.topics import ALERTS, DEADLETTER, TRANSITIONS
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import KafkaSink, make_admin, make_consumer, make_producer, read_topic
from subscribers.alerts.webhook import verify_signature
from tests.fixture_paths import LOCAL
from tests.subscribers.alerts.test_core import transition  # noqa: E402

pytestmark = pytest.mark.kafka

QWATCH = str(Path(sys.executable).with_name("qwatch"))
LOCK = LOCAL / "lockfiles" / "uv" / "uv.lock"
SECRET = "outage-secret"
GROUP = "outage-alerts"
OUTAGE = float(os.environ.get("QWATCH_TEST_OUTAGE_SECONDS", "5"))


@dataclass
class Receiver:
    """A receiver that can be taken down and brought back on the same port; refuses ``refuse`` packages (403)."""

    port: int = field(default_factory=free_port)
    """From the test port allocator, not port 0: while the receiver is down no other process of the run may take the
    number (an OS-chosen port is up for grabs by any outgoing connection), or it could not come back on it."""
    got: dict[str, dict[str, Any]] = field(default_factory=dict)
    posts: int = 0
    refuse: set[str] = field(default_factory=set)
    server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                state.posts += 1
                event = json.loads(body)
                if not verify_signature(SECRET, body, dict(self.headers.items())):
                    self.send_response(401)
                elif event["data"]["package"] in state.refuse:
                    self.send_response(403)
                else:
                    state.got[event["id"]] = event["data"]
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.up()
    yield r
    if r.server is not None:
        r.down()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class AlertsProcess:
    """``qwatch alerts`` as a real process, its stderr collected."""

    def __init__(self, bootstrap: str, url: str) -> None:
        self.lines: list[str] = []
        env = {
            **os.environ,
            "QWATCH_WEBHOOK_SECRET": SECRET,
            "QWATCH_ALERTS_POLL_TIMEOUT": "0.3",
            "QWATCH_WEBHOOK_BACKOFF_BASE": "0.2",
            "QWATCH_WEBHOOK_BACKOFF_MAX": "1",
            "QWATCH_WEBHOOK_MAX_ATTEMPTS": "3",
        }
        self.proc = subprocess.Popen(
            [QWATCH, "alerts", "--bootstrap", bootstrap, "--group", GROUP, "--webhook-url", url],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        stream = self.proc.stderr
        assert stream is not None
        threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True).start()
        wait_for(lambda: any("alerts: ready" in line for line in self.lines), 60, "qwatch alerts to be ready")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def test_a_receiver_down_for_a_while_receives_every_alert_once_back(
    fresh_broker: Callable[[], LocalBroker], receiver: Receiver, codec: Codec
) -> None:
    boot = fresh_broker().bootstrap
    cfg = KafkaConfig(bootstrap=boot)
    added = subprocess.run(
        [QWATCH, "inventory", "add", "--name", "acme", "--lock", str(LOCK), "--bootstrap", boot],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr

    def publish(*names: str) -> None:
        sink = KafkaSink(make_producer(cfg), codec)
        for name in names:
            sink.emit(transition("QUARANTINED", name, "quarantined"))
        sink.close()

    alerts = AlertsProcess(boot, receiver.url)
    processes = [alerts]
    try:
        publish("colorama")
        wait_for(lambda: len(receiver.got) == 1, 30, "the first alert while the receiver is up")

        receiver.down()
        down_at = time.monotonic()
        publish("alpha", "beta")
        wait_for(lambda: any("still failing" in line for line in alerts.lines), 30, "the held-delivery warning")
        # Restarted during the outage: the held batch was never committed, so the new process delivers it.
        assert alerts.stop() == 0, "".join(alerts.lines[-20:])
        alerts = AlertsProcess(boot, receiver.url)
        processes.append(alerts)
        publish("delta", "epsilon")
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
        assert len(receiver.got) == 1, "nothing can arrive while the receiver is down"

        receiver.refuse = {"gamma"}
        receiver.up()
        back_at = time.monotonic()
        publish("gamma", "urllib3")
        want = {"colorama", "alpha", "beta", "delta", "epsilon", "urllib3"}
        wait_for(lambda: {d["package"] for d in receiver.got.values()} == want, 60, f"every alert, {want}")
        caught_up = time.monotonic() - back_at
        wait_for(
            lambda: any(
                isinstance(d.event, events_deadletter()) and d.event.source == "webhook"
                for d in read_topic(KafkaClients(cfg), codec, DEADLETTER)
            ),
            30,
            "the refused alert to be parked",
        )
        assert alerts.stop() == 0, "".join(alerts.lines[-20:])
    finally:
        for p in processes:
            if p.proc.poll() is None:
                p.proc.kill()

    on_topic = {
        d.event.event_id: d.event for d in read_topic(KafkaClients(cfg), codec, ALERTS) if isinstance(d.event, Alert)
    }
    assert {a.package for a in on_topic.values()} == want | {"gamma"}
    assert set(receiver.got) == {i for i, a in on_topic.items() if a.package != "gamma"}  # same ids, none missing
    for data in receiver.got.values():
        assert data["remediation"] and data["links"]["project"].startswith("https://pypi.org/project/")
    print(f"outage {OUTAGE:.0f}s: all {len(receiver.got)} alerts received {caught_up:.1f}s after the receiver returned")

    # The consumer committed to the end of the transitions topic only after delivering.
    admin = make_admin(cfg)
    try:
        offsets = admin.list_group_offsets(GROUP)[GROUP]
    finally:
        admin.close()
    consumer = make_consumer(cfg, None)
    try:
        from kafka import TopicPartition

        ends = consumer.end_offsets(
            [TopicPartition(TRANSITIONS, p) for p in consumer.partitions_for_topic(TRANSITIONS)]
        )
    finally:
        consumer.close()
    assert sum(m.offset for tp, m in offsets.items() if tp.topic == TRANSITIONS) == sum(ends.values()) == 7

    # The refused alert was parked; once the receiver accepts it, `qwatch alerts redeliver` replays it.
    receiver.refuse = set()
    replay = subprocess.run(
        [QWATCH, "alerts", "redeliver", "--webhook-url", receiver.url, "--bootstrap", boot],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "QWATCH_WEBHOOK_SECRET": SECRET},
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "1 parked webhook alert(s)" in replay.stdout and "delivered after 1 attempt(s)" in replay.stdout
    assert {d["package"] for d in receiver.got.values()} == want | {"gamma"}
    assert set(receiver.got) == set(on_topic)


def events_deadletter() -> type:
    from qwatch import events

    return events.DeadLetter
