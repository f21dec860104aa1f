"""Polite HTTP for everything that reads upstream (PyPI ingestors now, ``qwatch gate`` later).

PyPI has no edge rate limit for its JSON and Simple APIs but "reserves the right to prohibit a consumer based
on irresponsible activity" (``pypi-signals.md`` section c), and its XML-RPC is limited per IP. So every
request goes through one ``PoliteClient`` that:
- identifies us (User-Agent with a contact URL) and never turns TLS verification off;
- sends ``If-None-Match`` when the caller knows an ETag, and hands back 304s as such;
- retries only transient failures (429, 5xx, timeouts, cut connections) with exponential backoff and jitter,
  honouring ``Retry-After`` (seconds or an HTTP date) for the whole host, not just the one request;
- limits concurrent requests per host and caps response size while streaming (a runaway body aborts early);
- counts every response, fetch outcome, duration and retry in ``qwatch.metrics``.
The ``httpx.Client`` is injected (``make_http_client`` builds the production one), as are sleep, randomness
and clocks, so tests run the real code against a real local server without waiting.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from qwatch import __version__
from qwatch.config import require
from qwatch.errors import QwatchError
from qwatch.metrics import Metrics
from qwatch.retry import backoff_delay

DEFAULT_USER_AGENT = f"quarantine-watch/{__version__} (+https://github.com/quarantine-watch/quarantine-watch)"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Statuses worth another attempt: the server or the path to it is overloaded or briefly broken."""

_P = "HTTP_"


@dataclass(frozen=True)
class HttpConfig:
    """How we talk to upstream; loaded with prefix ``HTTP_`` (``QWATCH_HTTP_TIMEOUT``, ...)."""

    user_agent: str = field(default=DEFAULT_USER_AGENT, metadata={"help": "User-Agent; keep a contact URL in it"})
    timeout: float = field(default=30.0, metadata={"help": "seconds to wait for each read or write"})
    connect_timeout: float = field(default=10.0, metadata={"help": "seconds to wait for a connection"})
    max_attempts: int = field(default=4, metadata={"help": "attempts per request, counting the first"})
    backoff_base: float = field(default=1.0, metadata={"help": "first backoff in seconds; doubles per attempt"})
    backoff_max: float = field(default=60.0, metadata={"help": "longest backoff between attempts, seconds"})
    retry_after_max: float = field(
        default=300.0, metadata={"help": "longest Retry-After we wait for; a longer one fails the request"}
    )
    concurrency: int = field(default=16, metadata={"help": "concurrent requests per host"})
    max_bytes: int = field(default=256 * 1024 * 1024, metadata={"help": "largest response body accepted, bytes"})

    def __post_init__(self) -> None:
        require(bool(self.user_agent.strip()), _P, "user_agent", "must not be empty")
        require(0 < self.timeout <= 3600, _P, "timeout", "expected 0 < seconds <= 3600")
        require(0 < self.connect_timeout <= 600, _P, "connect_timeout", "expected 0 < seconds <= 600")
        require(1 <= self.max_attempts <= 20, _P, "max_attempts", "expected 1-20")
        require(
            0 <= self.backoff_base <= self.backoff_max,
            _P,
            "backoff_base",
            "expected 0 <= base <= backoff_max",
        )
        require(self.backoff_max <= 3600, _P, "backoff_max", "expected at most 3600 seconds")
        require(0 <= self.retry_after_max <= 24 * 3600, _P, "retry_after_max", "expected 0-86400 seconds")
        require(1 <= self.concurrency <= 256, _P, "concurrency", "expected 1-256")
        require(1024 <= self.max_bytes <= 4 * 1024**3, _P, "max_bytes", "expected 1 KiB - 4 GiB")


def make_http_client(cfg: HttpConfig) -> httpx.Client:
    """The production client: our User-Agent, our timeouts, redirects followed, TLS always verified."""
    return httpx.Client(
        headers={"User-Agent": cfg.user_agent},
        timeout=httpx.Timeout(cfg.timeout, connect=cfg.connect_timeout),
        verify=True,
        follow_redirects=True,
        limits=httpx.Limits(max_connections=cfg.concurrency * 4, max_keepalive_connections=cfg.concurrency),
    )


class HttpError(QwatchError):
    """A request that produced no usable response; ``reason`` is a bounded dead-letter category."""

    def __init__(self, reason: str, url: str, message: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.reason = reason
        self.url = url
        self.status = status
        self.attempts = attempts


class OversizedResponse(HttpError):
    """The body exceeded ``max_bytes``; reading stopped there (never retried: it would only be big again)."""


class RetriesExhausted(HttpError):
    """Every attempt failed transiently (5xx, 429, timeout, cut connection), or Retry-After was too long."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One final response: status, headers and the whole (size-capped, decoded) body."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes
    attempts: int = 1
    final_url: str = ""
    """Where the body came from after redirects (PyPI redirects ``/pypi/<name>/json`` to the display name)."""

    @property
    def not_modified(self) -> bool:
        """True for a 304: what we have is still current."""
        return self.status == 304

    @property
    def etag(self) -> str | None:
        """The response's ETag, verbatim (weak or strong), if any."""
        etag: str | None = self.headers.get("etag")
        return etag

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased (``""`` when absent)."""
        value: str = self.headers.get("content-type", "")
        return value.split(";")[0].strip().lower()

    def header_int(self, name: str) -> int | None:
        """An integer header such as ``X-PyPI-Last-Serial``, or None when absent or not a number."""
        value = self.headers.get(name, "").strip()
        return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds (fractions tolerated) or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None


class ETagCache:
    """URL → ETag of the last response we *believed*; staged so it moves with the state it describes.

    An ETag must only be remembered once the events derived from that response were flushed: otherwise a crash
    leaves us with a 304 for a change we never emitted. ``stage`` then ``commit`` (after the flush) or
    ``rollback`` (on a publish failure).
    """

    def __init__(self, initial: Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._committed: dict[str, str] = dict(initial or {})
        self._staged: dict[str, str | None] = {}

    def get(self, url: str) -> str | None:
        """The committed ETag for ``url``."""
        with self._lock:
            return self._committed.get(url)

    def stage(self, url: str, etag: str | None) -> None:
        """Remember ``etag`` (None forgets) once ``commit`` is called."""
        with self._lock:
            self._staged[url] = etag

    def commit(self) -> None:
        """Apply staged changes."""
        with self._lock:
            for url, etag in self._staged.items():
                if etag is None:
                    self._committed.pop(url, None)
                else:
                    self._committed[url] = etag
            self._staged.clear()

    def rollback(self) -> None:
        """Drop staged changes."""
        with self._lock:
            self._staged.clear()

    def dump(self) -> dict[str, str]:
        """The committed map, for persisting."""
        with self._lock:
            return dict(self._committed)


class PoliteClient:
    """Retrying, rate-respecting, size-capped GET/POST over an injected ``httpx.Client`` (thread-safe)."""

    def __init__(
        self,
        client: httpx.Client,
        cfg: HttpConfig,
        metrics: Metrics,
        source: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.cfg = cfg
        self._metrics = metrics
        self.source = source
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._not_before: dict[str, float] = {}

    def get(self, url: str, *, accept: str | None = None, etag: str | None = None) -> FetchResult:
        """GET ``url``; with ``etag`` a conditional request (a 304 comes back as a result, not an error)."""
        headers: dict[str, str] = {}
        if accept:
            headers["Accept"] = accept
        if etag:
            headers["If-None-Match"] = etag
        return self._request("GET", url, headers, None)

    def post(self, url: str, body: bytes, *, content_type: str) -> FetchResult:
        """POST for idempotent reads such as XML-RPC calls (retried like a GET)."""
        return self._request("POST", url, {"Content-Type": content_type}, body)

    def close(self) -> None:
        """Close the underlying client and its connections."""
        self._client.close()

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random, capped at ``backoff_max``."""
        return backoff_delay(attempt, self.cfg.backoff_base, self.cfg.backoff_max, jitter=self._rand)

    def _host(self, url: str) -> str:
        return urlsplit(url).netloc.lower()

    def _semaphore(self, host: str) -> threading.BoundedSemaphore:
        with self._lock:
            sem = self._hosts.get(host)
            if sem is None:
                sem = self._hosts[host] = threading.BoundedSemaphore(self.cfg.concurrency)
            return sem

    def _wait_for_host(self, host: str) -> None:
        with self._lock:
            until = self._not_before.get(host, 0.0)
        delay = until - self._clock()
        if delay > 0:
            self._sleep(delay)

    def _hold_host(self, host: str, seconds: float) -> None:
        with self._lock:
            self._not_before[host] = max(self._not_before.get(host, 0.0), self._clock() + seconds)

    def _request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> FetchResult:
        host = self._host(url)
        attempt = 0
        while True:
            attempt += 1
            self._wait_for_host(host)
            try:
                status, resp_headers, content, final = self._once(method, url, headers, body, host)
            except OversizedResponse as exc:
                exc.attempts = attempt
                self._metrics.fetches.labels(self.source, "oversized").inc()
                raise
            except _Transient as exc:
                if attempt >= self.cfg.max_attempts:
                    self._metrics.fetches.labels(self.source, exc.reason).inc()
                    raise RetriesExhausted(exc.reason, url, f"{method} {url}: {exc}", None, attempt) from None
                self._metrics.retries.labels(self.source, exc.reason).inc()
                self._sleep(self.backoff(attempt))
                continue
            if status in RETRY_STATUSES:
                wait = parse_retry_after(resp_headers.get("retry-after"), self._wall())
                too_long = wait is not None and wait > self.cfg.retry_after_max
                if attempt >= self.cfg.max_attempts or too_long:
                    self._metrics.fetches.labels(self.source, "server-error" if status >= 500 else "client-error").inc()
                    why = f"Retry-After {wait:.0f}s exceeds the cap" if too_long else f"{attempt} attempts"
                    raise RetriesExhausted(
                        "http-status", url, f"{method} {url}: HTTP {status} ({why})", status, attempt
                    )
                self._metrics.retries.labels(self.source, str(status)).inc()
                if wait is not None:
                    self._hold_host(host, wait)  # the whole host asked: every request waits (next loop)
                else:
                    self._sleep(self.backoff(attempt))
                continue
            self._metrics.fetches.labels(self.source, _outcome(status)).inc()
            return FetchResult(url, status, resp_headers, content, attempt, final)

    def _once(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, host: str
    ) -> tuple[int, httpx.Headers, bytes, str]:
        sem = self._semaphore(host)
        with sem:
            started = self._clock()
            got_headers = False
            try:
                with self._client.stream(method, url, headers=headers, content=body) as response:
                    got_headers = True
                    self._metrics.http_responses.labels(self.source, str(response.status_code)).inc()
                    content = self._read_capped(response, url)
                    return response.status_code, response.headers, content, str(response.url)
            except httpx.TimeoutException as exc:
                raise _Transient("timeout", str(exc) or type(exc).__name__) from None
            except (httpx.RemoteProtocolError, httpx.DecodingError, httpx.ReadError) as exc:
                # A body cut short (also while a redirect's body is drained, before we see headers).
                cut = got_headers or "message body" in str(exc)
                raise _Transient("truncated" if cut else "transport", str(exc) or type(exc).__name__) from None
            except httpx.HTTPError as exc:
                raise _Transient("transport", str(exc) or type(exc).__name__) from None
            finally:
                self._metrics.fetch_duration.labels(self.source).observe(max(self._clock() - started, 0.0))

    def _read_capped(self, response: httpx.Response, url: str) -> bytes:
        cap = self.cfg.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > cap:
            raise OversizedResponse("oversized", url, f"{url}: Content-Length {declared} exceeds {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise OversizedResponse("oversized", url, f"{url}: body exceeds {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


class _Transient(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _outcome(status: int) -> str:
    if status == 304:
        return "not-modified"
    if status == 404:
        return "not-found"
    if 200 <= status < 300:
        return "ok"
    return "server-error" if status >= 500 else "client-error"
