"""``qwatch.http``: the polite client against real local servers (the fake PyPI and a tiny scripted one)."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qwatch import config as cfgmod
from qwatch.config import ConfigError
from qwatch.http import (
    DEFAULT_USER_AGENT,
    ETagCache,
    HttpConfig,
    OversizedResponse,
    PoliteClient,
    RetriesExhausted,
    make_http_client,
    parse_retry_after,
)
from testing.fakepypi import Fault
from tests.pypi_support import Served, Sleeps, fresh_metrics, polite, sample, serve_fake


@pytest.fixture
def pypi() -> Iterator[Served]:
    yield from serve_fake()


class _Scripted(BaseHTTPRequestHandler):
    """Routes: /ua echoes the User-Agent; /stream sends 5000 bytes with no Content-Length; /busy tracks
    concurrency; /later answers 429 with an HTTP-date Retry-After once, then 200."""

    protocol_version = "HTTP/1.0"
    lock = threading.Lock()
    active = 0
    peak = 0
    later_calls = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        cls = type(self)
        if self.path == "/ua":
            body = (self.headers.get("User-Agent") or "").encode()
            self._send(200, body, length=True)
        elif self.path == "/stream":
            self._send(200, b"x" * 5000, length=False)
        elif self.path == "/busy":
            with cls.lock:
                cls.active += 1
                cls.peak = max(cls.peak, cls.active)
            time.sleep(0.15)
            with cls.lock:
                cls.active -= 1
            self._send(200, b"ok", length=True)
        elif self.path == "/later":
            with cls.lock:
                cls.later_calls += 1
                first = cls.later_calls == 1
            if first:
                when = email.utils.formatdate(time.time() + 3, usegmt=True)
                self._send(429, b"slow down", length=True, extra={"Retry-After": when})
            else:
                self._send(200, b"ok", length=True)
        else:
            self._send(404, b"no", length=True)

    def _send(self, status: int, body: bytes, *, length: bool, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        if length:
            self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base-class signature
        """Quiet."""


@pytest.fixture
def scripted() -> Iterator[str]:
    _Scripted.active = _Scripted.peak = _Scripted.later_calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_user_agent_and_config_from_environment(scripted: str) -> None:
    cfg = cfgmod.load(HttpConfig, {"QWATCH_HTTP_MAX_ATTEMPTS": "2", "QWATCH_HTTP_TIMEOUT": "5"}, "HTTP_")
    assert (cfg.max_attempts, cfg.timeout, cfg.user_agent) == (2, 5.0, DEFAULT_USER_AGENT)
    assert DEFAULT_USER_AGENT.startswith("quarantine-watch/") and "(+https://" in DEFAULT_USER_AGENT
    client = PoliteClient(make_http_client(cfg), cfg, fresh_metrics(), "test")
    assert client.get(scripted + "/ua").body.decode() == DEFAULT_USER_AGENT
    custom = HttpConfig(user_agent="acme-mirror/1 (+mailto:sec@acme.example)")
    other = PoliteClient(make_http_client(custom), custom, fresh_metrics(), "test")
    assert other.get(scripted + "/ua").body == b"acme-mirror/1 (+mailto:sec@acme.example)"
    for env in ({"QWATCH_HTTP_MAX_ATTEMPTS": "0"}, {"QWATCH_HTTP_USER_AGENT": " "}, {"QWATCH_HTTP_TIMEOUT": "x"}):
        with pytest.raises(ConfigError):
            cfgmod.load(HttpConfig, env, "HTTP_")


def test_conditional_get_and_etag_cache(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    metrics = fresh_metrics()
    client = polite(metrics, "test")
    url = base + "/simple/demo/"
    first = client.get(url, accept="application/vnd.pypi.simple.v1+json")
    assert first.status == 200 and first.etag and first.header_int("X-PyPI-Last-Serial") == fake.last_serial
    cache = ETagCache()
    cache.stage(url, first.etag)
    assert cache.get(url) is None, "staged, not yet committed"
    cache.commit()
    second = client.get(url, accept="application/vnd.pypi.simple.v1+json", etag=cache.get(url))
    assert second.not_modified and second.body == b""
    cache.stage(url, None)
    cache.rollback()
    assert cache.dump() == {url: first.etag}
    assert sample(metrics, "qwatch_ingest_fetches_total", source="test", outcome="not-modified") == 1
    assert sample(metrics, "qwatch_http_responses_total", source="test", code="304") == 1


def test_retries_exhausted_after_max_attempts(pypi: Served) -> None:
    fake, base = pypi
    fake.inject(Fault(kind="503", path_prefix="/simple/", count=5))
    metrics = fresh_metrics()
    sleeps = Sleeps()
    client = polite(metrics, "test", sleeps)
    with pytest.raises(RetriesExhausted) as err:
        client.get(base + "/simple/")
    assert (err.value.reason, err.value.status, err.value.attempts) == ("http-status", 503, 3)
    assert sample(metrics, "qwatch_http_responses_total", source="test", code="503") == 3
    assert sample(metrics, "qwatch_ingest_retries_total", source="test", reason="503") == 2
    assert len(sleeps.calls) == 2 and all(0 < s <= 0.05 for s in sleeps.calls)
    assert client.get(base + "/simple/").status == 200, "two faults left: still within 3 attempts"


def test_retry_after_holds_the_whole_host(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    fake.inject(Fault(kind="429", path_prefix="/simple/demo/", retry_after=5))
    sleeps = Sleeps()
    client = polite(fresh_metrics(), "test", sleeps)
    assert client.get(base + "/simple/demo/").status == 200
    assert len(sleeps.calls) == 1 and 4.9 < sleeps.calls[0] <= 5.0
    client.get(base + "/simple/")  # another path on the same host waits out the rest of the window
    assert len(sleeps.calls) == 2 and 4.0 < sleeps.calls[1] <= 5.0


def test_retry_after_beyond_the_cap_fails_fast(pypi: Served) -> None:
    fake, base = pypi
    fake.inject(Fault(kind="429", path_prefix="/simple/", retry_after=3600))
    sleeps = Sleeps()
    client = polite(fresh_metrics(), "test", sleeps, retry_after_max=60)
    with pytest.raises(RetriesExhausted) as err:
        client.get(base + "/simple/")
    assert err.value.attempts == 1 and sleeps.calls == []


def test_retry_after_as_http_date(scripted: str) -> None:
    sleeps = Sleeps()
    client = polite(fresh_metrics(), "test", sleeps)
    assert client.get(scripted + "/later").status == 200
    assert len(sleeps.calls) == 1 and 1.0 < sleeps.calls[0] <= 3.0


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("0.25", now) == 0.25
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0
    for bad in (None, "", "soon", "-5", "nan", "inf"):
        assert parse_retry_after(bad, now) is None


def test_backoff_has_bounded_jitter() -> None:
    cfg = HttpConfig(backoff_base=1.0, backoff_max=8.0)
    low = PoliteClient(make_http_client(cfg), cfg, fresh_metrics(), "t", rand=lambda: 0.0)
    high = PoliteClient(make_http_client(cfg), cfg, fresh_metrics(), "t", rand=lambda: 1.0)
    assert [low.backoff(a) for a in (1, 2, 3, 4, 5, 9)] == [0.5, 1, 2, 4, 4, 4]
    assert [high.backoff(a) for a in (1, 2, 3, 4, 5, 9)] == [1, 2, 4, 8, 8, 8]


def test_timeouts_and_truncation_are_retried(pypi: Served) -> None:
    fake, base = pypi
    fake.inject(Fault(kind="slow", path_prefix="/simple/", delay=0.6))
    fake.inject(Fault(kind="truncate", path_prefix="/simple/"))
    metrics = fresh_metrics()
    client = polite(metrics, "test", timeout=0.3)
    assert client.get(base + "/simple/").status == 200
    assert sample(metrics, "qwatch_ingest_retries_total", source="test", reason="timeout") == 1
    assert sample(metrics, "qwatch_ingest_retries_total", source="test", reason="truncated") == 1


def test_size_cap_by_header_and_while_streaming(pypi: Served, scripted: str) -> None:
    fake, base = pypi
    fake.add_project("Big", {f"1.{i}": [f"big-1.{i}.tar.gz"] for i in range(30)})
    metrics = fresh_metrics()
    client = polite(metrics, "test", max_bytes=2048)
    with pytest.raises(OversizedResponse) as err:
        client.get(base + "/simple/big/")
    assert "Content-Length" in str(err.value) and err.value.reason == "oversized"
    with pytest.raises(OversizedResponse) as err:
        client.get(scripted + "/stream")  # no Content-Length: aborted while reading
    assert "body exceeds" in str(err.value)
    assert sample(metrics, "qwatch_ingest_fetches_total", source="test", outcome="oversized") == 2


def test_per_host_concurrency_limit(scripted: str) -> None:
    client = polite(fresh_metrics(), "test", concurrency=2, timeout=5.0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: client.get(scripted + "/busy").status, range(8)))
    assert statuses == [200] * 8
    assert _Scripted.peak == 2
