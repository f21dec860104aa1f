"""Shared helpers for the PyPI tests (no tests here): the local fake PyPI, real HTTP clients, harnesses.

Everything is real: the fake PyPI is an HTTP server on 127.0.0.1, clients are real ``httpx.Client``s built by
``make_http_client``; only sleeping is replaced (recorded, not slept) so backoff paths run in milliseconds.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from ingestors.pypi.config import JsonIngestConfig, SimpleIngestConfig
from ingestors.pypi.json_ingest import JsonIngestor, JsonPassReport
from ingestors.pypi.simple_ingest import PassReport, SimpleIngestor
from ingestors.pypi.watchset import WatchSet
from qwatch.http import HttpConfig, PoliteClient, make_http_client
from qwatch.metrics import Metrics
from qwatch.sinks import MemorySink
from testing.fakepypi import FakePyPI

T = TypeVar("T")
FAST_HTTP = {"timeout": 1.0, "connect_timeout": 1.0, "max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05}


Served = tuple[FakePyPI, str]


def serve_fake() -> Iterator[Served]:
    """A fresh fake PyPI serving on 127.0.0.1; yields (fake, base URL). Wrap it in a fixture."""
    fake = FakePyPI(start_serial=1000)
    with fake.serve() as base:
        yield fake, base


class Sleeps:
    """An injectable sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def polite(metrics: Metrics, source: str, sleeps: Sleeps | None = None, **overrides: Any) -> PoliteClient:
    """A real client with test-speed timeouts and backoff."""
    cfg = HttpConfig(**{**FAST_HTTP, **overrides})
    return PoliteClient(make_http_client(cfg), cfg, metrics, source, sleep=sleeps or Sleeps())


def fresh_metrics() -> Metrics:
    """Metrics on a private registry."""
    return Metrics(CollectorRegistry())


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The current value of one metric sample (0 when absent)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def of_type(events: Iterable[object], cls: type[T]) -> list[T]:
    """The events of one type, in order."""
    return [e for e in events if isinstance(e, cls)]


class SimpleHarness:
    """A SimpleIngestor wired to the fake PyPI and a MemorySink; ``run`` returns one pass's events."""

    def __init__(self, base: str, watched: Iterable[str], state_file: Path | None = None, **http: Any) -> None:
        self.metrics = fresh_metrics()
        self.sink = MemorySink()
        self.sleeps = Sleeps()
        self.client = polite(self.metrics, "pypi-simple", self.sleeps, **http)
        self.watch = WatchSet(self.metrics)
        for name in watched:
            self.watch.add(name, "test")
        cfg = SimpleIngestConfig(index_url=base + "/simple/", stale_retries=2, stale_delay=0.01, workers=4)
        self.ingestor = SimpleIngestor(
            cfg, self.client, self.sink, self.metrics, self.watch, state_file, sleep=self.sleeps
        )

    def run(self, **kwargs: Any) -> tuple[PassReport, list[object]]:
        """One pass; returns its report and the events it emitted."""
        before = len(self.sink.events)
        report = self.ingestor.run_pass(**kwargs)
        return report, self.sink.events[before:]


class JsonHarness:
    """A JsonIngestor wired to the fake PyPI and a MemorySink."""

    def __init__(self, base: str, watched: Iterable[str], state_file: Path | None = None, **http: Any) -> None:
        self.metrics = fresh_metrics()
        self.sink = MemorySink()
        self.sleeps = Sleeps()
        self.client = polite(self.metrics, "pypi-json", self.sleeps, **http)
        self.watch = WatchSet(self.metrics)
        for name in watched:
            self.watch.add(name, "test")
        cfg = JsonIngestConfig(index_url=base + "/simple/", stale_retries=2, stale_delay=0.01, workers=4)
        self.ingestor = JsonIngestor(
            cfg, self.client, self.sink, self.metrics, self.watch, state_file, sleep=self.sleeps
        )

    def run(self) -> tuple[JsonPassReport, list[object]]:
        """One sweep; returns its report and the events it emitted."""
        before = len(self.sink.events)
        report = self.ingestor.run_pass()
        return report, self.sink.events[before:]


class BlockingJournalProxy:
    """What sits between an ingestor and pypi.org in many companies: forwards XML-RPC POSTs to ``upstream``, or,
    while ``blocked`` is set, answers 405 the way a proxy that refuses POSTs does. ``url`` is the XML-RPC endpoint."""

    def __init__(self, upstream: str) -> None:
        self.blocked = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if proxy.blocked.is_set():
                    status, payload, ctype = 405, b"<html>405 Method Not Allowed</html>", "text/html"
                else:
                    req = urllib.request.Request(upstream, body, {"Content-Type": "text/xml"}, method="POST")
                    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - the local PyPI
                        status, payload = resp.status, resp.read()
                        ctype = resp.headers.get("Content-Type", "text/xml")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - fixed by http.server
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pypi"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
