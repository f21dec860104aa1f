"""The watch set, its bounded-concurrency sweep, the ``--watch`` file and the Kafka watch feed."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from ingestors.pypi.watchfeed import KafkaWatchFeed, apply
from ingestors.pypi.watchset import WatchSet, read_watch_file, sweep
from qwatch.config import KafkaConfig
from qwatch.events import ReportObserved, WatchRequest
from qwatch.events.codec import Codec
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import KafkaSink, make_producer
from qwatch.sinks import Delivery
from tests.pypi_support import fresh_metrics, sample


def _request(package: str, urgent: bool = False, ecosystem: str = "PyPI") -> WatchRequest:
    return WatchRequest(f"id-{package}", "processor", ecosystem, package, 1, None, "dropped-from-root-index", urgent)


def _report(package: str, ecosystem: str = "PyPI") -> ReportObserved:
    return ReportObserved(
        f"r-{package}",
        "openssf",
        ecosystem,
        package,
        1,
        None,
        "MAL-2026-1",
        "added",
        package,
        (),
        True,
        "malicious",
        None,
        None,
        None,
        (),
        (),
        "abc",
        "osv/malicious/pypi/x/MAL-2026-1.json",
    )


def test_watch_set_normalizes_and_queues() -> None:
    metrics = fresh_metrics()
    watch = WatchSet(metrics)
    assert watch.add("Foo_Bar", "watch-file") is True
    assert watch.add("foo.bar", "openssf:MAL-1") is False
    assert watch.add("  ", "x") is False
    assert "FOO-BAR" in watch and len(watch) == 1
    assert watch.reasons("foo-bar") == ("watch-file", "openssf:MAL-1")
    assert watch.take_new() == ["foo-bar"] and watch.take_new() == []
    watch.add("urgent_one", "request:new-report", urgent=True)
    watch.add("foo-bar", "request:inventory", urgent=True)
    assert watch.take_urgent() == ["urgent-one", "foo-bar"] and watch.take_urgent() == []
    assert watch.names() == ["foo-bar", "urgent-one"]
    assert sample(metrics, "qwatch_watchset_packages") == 2


def test_watch_file(tmp_path: Path) -> None:
    path = tmp_path / "watch"
    path.write_text("# team A\nrequests\n\n  Django   # web\nnumpy#no space\n")
    assert read_watch_file(path) == ["requests", "Django", "numpy"]


def test_sweep_is_bounded_and_scales() -> None:
    lock = threading.Lock()
    state = {"active": 0, "peak": 0}

    def work(name: str) -> str:
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        if name.endswith("7"):
            time.sleep(0.0005)  # some slow fetches, so the pool fills up
        with lock:
            state["active"] -= 1
        return name

    names = (f"pkg-{i}" for i in range(100_000))  # a generator: never materialized as futures
    started = time.monotonic()
    done = sum(1 for _ in sweep(names, work, 16))
    assert done == 100_000 and 1 < state["peak"] <= 16
    assert time.monotonic() - started < 60


def test_sweep_stops_early() -> None:
    seen: list[str] = []
    stop = threading.Event()

    def work(name: str) -> str:
        if name == "n-5":
            stop.set()
        return name

    seen.extend(sweep((f"n-{i}" for i in range(1000)), work, 2, stop.is_set))
    assert 5 < len(seen) < 50


def test_feed_applies_pypi_requests_and_reports_only() -> None:
    watch = WatchSet()
    deliveries = [
        Delivery(_request("Urgent_Pkg", urgent=True), "qwatch.watch.v1", 0, 0),
        Delivery(_request("left-pad", ecosystem="npm"), "qwatch.watch.v1", 0, 1),
        Delivery(_report("Evil"), "qwatch.observations.v1", 0, 0),
        Delivery(_report("evil-npm", ecosystem="npm"), "qwatch.observations.v1", 0, 1),
        Delivery(None, "qwatch.watch.v1", 0, 2, error="undecodable"),
    ]
    assert [apply(d, watch) for d in deliveries] == [True, False, True, False, False]
    assert watch.names() == ["evil", "urgent-pkg"]
    assert watch.take_urgent() == ["urgent-pkg"]
    assert watch.reasons("evil") == ("openssf:MAL-2026-1",)


@pytest.mark.kafka
def test_kafka_feed_reads_watch_requests_and_reports(kafka_cfg: KafkaConfig, codec: Codec) -> None:
    tag = uuid.uuid4().hex[:8]
    producer = make_producer(kafka_cfg)
    sink = KafkaSink(producer, codec)
    sink.emit(_request(f"wq-{tag}-urgent", urgent=True))
    sink.emit(_report(f"wq-{tag}-reported"))
    sink.flush(30)
    watch = WatchSet()
    feed = KafkaWatchFeed(KafkaClients(kafka_cfg), codec, watch)
    try:
        feed.catch_up(30)
        mine = [n for n in watch.names() if tag in n]
        assert mine == [f"wq-{tag}-reported", f"wq-{tag}-urgent"]
        assert f"wq-{tag}-urgent" in watch.take_urgent()
        sink.emit(_request(f"wq-{tag}-later"))
        sink.flush(30)
        deadline = time.monotonic() + 20
        while f"wq-{tag}-later" not in watch and time.monotonic() < deadline:
            feed.poll(0.5)
        assert f"wq-{tag}-later" in watch
    finally:
        feed.close()
        producer.close(timeout=5)
