"""Liveness and readiness on the metrics port, and the journal ingestor failing loudly (real HTTP servers on 127.0.0.1).

- ``/healthz`` is 200 while every registered loop beat within its bound (plus the sleep it announced), 503 naming
  the silent loop otherwise; ``/readyz`` is 200 only once every loop said it is ready; ``/metrics`` still serves.
- The journal ingestor behind a proxy that answers 405 sets ``qwatch_source_up`` to 0, logs the consequence once per
  episode (not once per poll), and says when polls work again; the other sources' metrics follow the same rule.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ingestors.pypi.config import JournalIngestConfig
from ingestors.pypi.journal_ingest import JournalIngestor
from qwatch.cursors import FileCursorStore
from qwatch.metrics import Health, Metrics
from qwatch.sinks import MemorySink
from testing.fakepypi import FakePyPI
from tests.pypi_support import BlockingJournalProxy, Sleeps, polite


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own 127.0.0.1 server
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_heartbeat_bounds_follow_progress_and_announced_sleeps() -> None:
    clock = Clock()
    health = Health(max_silence=30, clock=clock)
    assert health.live()[0] and health.ready()[0], "no loop registered: a one-shot process is healthy"
    hb = health.heartbeat("poll loop")
    assert health.live()[0] and not health.ready()[0]
    hb.ready()
    clock.now += 30
    assert health.live()[0] and health.ready()[0]
    clock.now += 0.5
    live, text = health.live()
    assert not live and "poll loop: no progress for 30s (bound 30s)" in text
    assert not health.ready()[0], "a loop that is not live is not ready either"
    hb.beat(idle=300)  # about to sleep 5 minutes on purpose (a poll interval, a backoff)
    clock.now += 320
    assert health.live()[0]
    clock.now += 11
    assert not health.live()[0]
    hb.beat()
    hb.ready(False, "Kafka did not acknowledge")
    ok, text = health.ready()
    assert not ok and "Kafka did not acknowledge" in text and health.live()[0]


def test_endpoints_on_the_metrics_port() -> None:
    clock = Clock()
    metrics = Metrics(CollectorRegistry())
    metrics.declare("processor")
    health = Health(max_silence=10, clock=clock)
    server = metrics.serve(port=_free_port(), addr="127.0.0.1", health=health)
    assert server is not None
    base = f"http://127.0.0.1:{server.port}"
    try:
        hb = health.heartbeat("processor loop")
        assert _get(base + "/healthz")[0] == 200
        status, text = _get(base + "/readyz")
        assert status == 503 and "processor loop: not ready (starting)" in text
        hb.ready()
        assert _get(base + "/readyz")[0] == 200
        clock.now += 11
        status, text = _get(base + "/healthz")
        assert status == 503 and "processor loop: no progress" in text
        assert _get(base + "/readyz")[0] == 503
        status, text = _get(base + "/metrics")
        assert status == 200 and 'qwatch_transitions_total{kind="QUARANTINED"} 0.0' in text
        assert _get(base + "/nothing")[0] == 404
    finally:
        server.close()


def _free_port() -> int:
    from qwatch.broker.local import free_port

    return free_port()


@pytest.fixture
def proxy() -> Iterator[tuple[FakePyPI, BlockingJournalProxy]]:
    fake = FakePyPI(start_serial=1000)
    with fake.serve() as base:
        p = BlockingJournalProxy(base + "/pypi")
        try:
            yield fake, p
        finally:
            p.server.shutdown()


def test_journal_blocked_by_a_proxy_is_loud_once_per_episode(
    proxy: tuple[FakePyPI, BlockingJournalProxy], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, blocker = proxy
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.declare("pypi-journal")
    cfg = JournalIngestConfig(xmlrpc_url=blocker.url, since_serial=fake.last_serial)
    sink = MemorySink()
    ingestor = JournalIngestor(
        cfg, polite(metrics, "pypi-journal"), sink, metrics, FileCursorStore(tmp_path), sleep=Sleeps()
    )

    def up() -> float | None:
        return registry.get_sample_value("qwatch_source_up", {"source": "pypi-journal"})

    def last_success() -> float | None:
        return registry.get_sample_value("qwatch_ingest_last_success_timestamp_seconds", {"source": "pypi-journal"})

    assert up() is None, "never polled is not 'down'"
    assert ingestor.poll().ok and up() == 1.0
    first_success = last_success()
    assert first_success is not None
    caplog.set_level(logging.INFO, logger="ingestors.pypi.journal_ingest")
    blocker.blocked.set()
    for _ in range(3):
        report = ingestor.poll()
        assert not report.ok and report.failure == "http-status"
    assert up() == 0.0 and last_success() == first_success
    warning = (
        f"pypi-journal: HTTP 405 from {blocker.url} (XML-RPC blocked?); quarantines will only be inferred from "
        "page polls, without upstream time"
    )
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count(warning) == 1, messages
    assert len([m for m in messages if m.startswith("pypi-journal:")]) == 1, "one line per episode, not per poll"
    assert (
        registry.get_sample_value("qwatch_ingest_fetches_total", {"source": "pypi-journal", "outcome": "client-error"})
        == 3
    )
    assert (
        registry.get_sample_value("qwatch_deadletters_total", {"source": "pypi-journal", "reason": "http-status"}) == 3
    )

    blocker.blocked.clear()
    fake.quarantine(_add(fake, "evil"))
    assert ingestor.poll().ok and up() == 1.0
    assert [m for m in (r.getMessage() for r in caplog.records) if "polls work again" in m]
    caplog.clear()
    blocker.blocked.set()
    ingestor.poll()
    assert [r.getMessage() for r in caplog.records].count(warning) == 1, "a new episode warns again"


def _add(fake: FakePyPI, name: str) -> str:
    fake.add_project(name, {"1.0": [f"{name}-1.0.tar.gz"]})
    return name
