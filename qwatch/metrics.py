"""Every Prometheus metric of quarantine-watch, defined once on an injected registry.

Names follow Prometheus conventions: ``qwatch_`` prefix, base units, ``_total`` on counters, ``_seconds`` on
durations, ``_timestamp_seconds`` on last-success gauges, and labels with bounded values only (source, outcome,
kind: never a package name, URL or sha). The dashboard and alert rules query exactly these names, and a test
scrapes a live component to prove it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from qwatch.events.kinds import ALL_KINDS

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 900, 1800, 3600, 6 * 3600, 24 * 3600)
"""Detection-latency buckets: the 10 s p99 objective sits on a boundary so the alert can use it exactly."""

DEADLETTER_REASONS = ("malformed-json", "schema", "oversized", "http-status", "truncated", "content-type", "delivery")
"""The bounded set of dead-letter reasons every component pre-declares, so a zero is visible before the first one."""

FETCH_OUTCOMES = (
    "ok",
    "not-modified",
    "not-found",
    "client-error",
    "server-error",
    "timeout",
    "transport",
    "truncated",
    "oversized",
)
"""Every ``outcome`` of ``qwatch_ingest_fetches_total`` (``qwatch.http``), one spelling in code, rules and dashboard."""

FETCH_SUCCESS_OUTCOMES = ("ok", "not-modified", "not-found")
"""Outcomes that are answers, not failures: a 304 says our copy is current, a 404 says the project is gone (the
ingestors turn it into an observation). QwatchHighErrorRate and the dashboard's error ratio exclude exactly these."""

RETRY_REASONS = ("408", "425", "429", "500", "502", "503", "504", "timeout", "transport", "truncated", "stale")
"""``qwatch_ingest_retries_total`` reasons of the HTTP sources: ``qwatch.http.RETRY_STATUSES``, transport trouble, and
stale pages re-fetched (the journal adds ``rate-limited``)."""

HTTP_SOURCES = ("pypi-simple", "pypi-json", "pypi-journal", "pypi-provenance")
"""Sources that fetch over ``qwatch.http`` and so export fetch outcomes (openssf uses git)."""

TRANSITION_KINDS = ALL_KINDS
"""Every transition kind, so each ``qwatch_transitions_total{kind}`` series exists at 0 from the start."""

OBSERVATION_OUTCOMES = ("ignored", "duplicate", "stale", "evidence", "applied", "watch", "transition", "deadletter")
"""Outcomes of ``qwatch_processor_observations_total`` (``processors.draft.OUTCOME_RANK`` plus dead letters)."""

ALERT_SEVERITIES = ("low", "medium", "high", "critical")
WEBHOOK_OUTCOMES = ("delivered", "retried", "dead-letter", "skipped")

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """One bag of metrics per process; tests pass a fresh CollectorRegistry instead of the global one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Ingestors
        self.polls = Counter(
            "qwatch_ingest_polls_total", "Polls of an upstream feed.", ["source", "outcome"], registry=r
        )
        self.poll_duration = Histogram(
            "qwatch_ingest_poll_duration_seconds",
            "Time per poll.",
            ["source"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.fetches = Counter(
            "qwatch_ingest_fetches_total", "Upstream requests by outcome.", ["source", "outcome"], registry=r
        )
        self.fetch_duration = Histogram(
            "qwatch_ingest_fetch_duration_seconds",
            "Upstream request time.",
            ["source"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.http_responses = Counter(
            "qwatch_http_responses_total", "HTTP responses by status code.", ["source", "code"], registry=r
        )
        self.retries = Counter(
            "qwatch_ingest_retries_total", "Retried upstream calls.", ["source", "reason"], registry=r
        )
        self.events_emitted = Counter(
            "qwatch_events_emitted_total",
            "Events handed to the sink and acknowledged.",
            ["source", "event_type"],
            registry=r,
        )
        self.deadletters = Counter(
            "qwatch_deadletters_total",
            "Inputs parked on the dead-letter topic.",
            ["source", "reason"],
            registry=r,
        )
        self.cursor_age = Gauge(
            "qwatch_ingest_cursor_age_seconds",
            "Age of the upstream position the cursor points at.",
            ["source"],
            registry=r,
        )
        self.last_success = Gauge(
            "qwatch_ingest_last_success_timestamp_seconds",
            "When a poll last succeeded.",
            ["source"],
            registry=r,
        )
        self.openssf_reports = Counter(
            "qwatch_openssf_reports_total", "OpenSSF report changes emitted.", ["change"], registry=r
        )
        self.openssf_pending = Counter(
            "qwatch_openssf_pending_files_skipped_total",
            "Pending MAL-0000 files seen and not emitted.",
            registry=r,
        )
        self.git_fetch_failures = Counter(
            "qwatch_git_fetch_failures_total", "Failed git fetches of the OpenSSF repository.", registry=r
        )
        self.source_up = Gauge(
            "qwatch_source_up",
            "1 while the source's last poll succeeded, 0 while it fails (set after every poll).",
            ["source"],
            registry=r,
        )
        self.watchset_size = Gauge("qwatch_watchset_packages", "Packages in the PyPI watch set.", registry=r)
        # Processor
        self.observations = Counter(
            "qwatch_processor_observations_total", "Observations processed.", ["outcome"], registry=r
        )
        self.transitions = Counter("qwatch_transitions_total", "Transitions emitted.", ["kind"], registry=r)
        self.detection_latency = Histogram(
            "qwatch_detection_latency_seconds",
            "detected_at - upstream_time of each transition.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.state_packages = Gauge("qwatch_processor_state_packages", "Packages held in processor state.", registry=r)
        self.consumer_lag = Gauge(
            "qwatch_consumer_lag_records",
            "Records behind the end of the input topic.",
            ["group", "topic"],
            registry=r,
        )
        # Subscribers
        self.alerts = Counter(
            "qwatch_alerts_total", "Alerts raised for registered inventories.", ["severity"], registry=r
        )
        self.webhook_deliveries = Counter(
            "qwatch_webhook_deliveries_total", "Webhook POSTs by outcome.", ["outcome"], registry=r
        )

    def declare(self, source: str) -> None:
        """Create a component's known series at zero, so a dashboard or ``increase()`` sees 0, not 'no data',
        and the first event after a restart is an increase from 0 rather than a new series.

        Gauges whose zero would mean something (last success, source up) are not declared: they are set by the
        first poll, and a missing series is what 'never polled' looks like."""
        for reason in DEADLETTER_REASONS:
            self.deadletters.labels(source, reason)
        if source in HTTP_SOURCES:
            for outcome in FETCH_OUTCOMES:
                self.fetches.labels(source, outcome)
            for reason in (*RETRY_REASONS, *(("rate-limited",) if source == "pypi-journal" else ())):
                self.retries.labels(source, reason)
        if source in (*HTTP_SOURCES, "openssf"):
            self.polls.labels(source, "ok")
        if source == "processor":
            for kind in TRANSITION_KINDS:
                self.transitions.labels(kind)
                self.detection_latency.labels(kind)
            for outcome in OBSERVATION_OUTCOMES:
                self.observations.labels(outcome)
        if source == "alerts":
            for severity in ALERT_SEVERITIES:
                self.alerts.labels(severity)
            for outcome in WEBHOOK_OUTCOMES:
                self.webhook_deliveries.labels(outcome)

    def source_succeeded(self, source: str, when: float | None = None) -> None:
        """A poll of ``source`` worked: it is up, and this is its last success."""
        self.source_up.labels(source).set(1)
        self.last_success.labels(source).set(time.time() if when is None else when)

    def source_failed(self, source: str) -> None:
        """A poll of ``source`` failed: it is down until a poll works again (last success stays where it was)."""
        self.source_up.labels(source).set(0)

    def serve(self, port: int, addr: str = "0.0.0.0", health: Health | None = None) -> MetricsServer | None:  # noqa: S104
        """Expose ``/metrics``, ``/healthz`` and ``/readyz`` on ``port`` (0 disables), in a daemon thread.

        Binds every interface on purpose: in-cluster Prometheus and the kubelet's probes must reach it."""
        if not port:
            return None
        return MetricsServer(self.registry, health if health is not None else Health(), port, addr)


class Heartbeat:
    """One loop's proof of life, passed into the loop: it calls ``beat`` whenever it makes progress (a poll, a
    batch, a page, an idle wait ending) and ``ready`` once it can do its job (connected, state restored).

    ``beat(idle=S)`` announces that the loop is about to sleep up to S seconds on purpose, so a long poll interval
    or backoff does not look like a hang. The loop is live while ``now - last beat <= idle + max_silence``."""

    def __init__(self, name: str, max_silence: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.max_silence = max_silence
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()
        self._idle = 0.0
        self._ready = False
        self._why = "starting"

    def beat(self, idle: float = 0.0) -> None:
        """Progress now; the loop may then be idle for up to ``idle`` seconds before its next beat."""
        with self._lock:
            self._last = self._clock()
            self._idle = max(0.0, idle)

    def ready(self, ready: bool = True, why: str = "") -> None:
        """Mark the loop ready (or not, with the reason ``/readyz`` shows)."""
        with self._lock:
            self._ready = ready
            self._why = why
        self.beat()

    def live(self) -> tuple[bool, str]:
        """(live, explanation) for ``/healthz``."""
        with self._lock:
            silent = self._clock() - self._last
            bound = self._idle + self.max_silence
        if silent <= bound:
            return True, f"{self.name}: progress {silent:.0f}s ago"
        return False, f"{self.name}: no progress for {silent:.0f}s (bound {bound:.0f}s)"

    def is_ready(self) -> tuple[bool, str]:
        """(ready, explanation) for ``/readyz``."""
        with self._lock:
            if self._ready:
                return True, f"{self.name}: ready"
            return False, f"{self.name}: not ready ({self._why or 'starting'})"


class Health:
    """The heartbeats of one process. ``/healthz`` is 200 while every loop is live; ``/readyz`` while every loop
    is also ready. With no loop registered (a one-shot command) both are 200: the process answering is all."""

    def __init__(self, max_silence: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_silence = max_silence
        self._clock = clock
        self._beats: list[Heartbeat] = []
        self._lock = threading.Lock()

    def heartbeat(self, name: str, max_silence: float | None = None) -> Heartbeat:
        """A new heartbeat for the loop ``name``, counted by both endpoints from now on."""
        hb = Heartbeat(name, self.max_silence if max_silence is None else max_silence, self._clock)
        with self._lock:
            self._beats.append(hb)
        return hb

    def _check(self, probe: Callable[[Heartbeat], tuple[bool, str]]) -> tuple[bool, str]:
        with self._lock:
            beats = list(self._beats)
        if not beats:
            return True, "ok: no loop registered"
        results = [probe(hb) for hb in beats]
        ok = all(good for good, _ in results)
        return ok, ("ok" if ok else "failing") + "\n" + "\n".join(text for _, text in results)

    def live(self) -> tuple[bool, str]:
        """Every loop made progress within its bound."""
        return self._check(Heartbeat.live)

    def ready(self) -> tuple[bool, str]:
        """Every loop is live and ready."""
        return self._check(lambda hb: hb.is_ready() if hb.live()[0] else hb.live())


class MetricsServer:
    """``/metrics`` (Prometheus text), ``/healthz`` and ``/readyz`` on one port, served from a daemon thread."""

    def __init__(self, registry: CollectorRegistry, health: Health, port: int, addr: str) -> None:
        self.health = health
        handler = _handler(registry, health)
        self._server = ThreadingHTTPServer((addr, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving (tests; processes just exit)."""
        self._server.shutdown()
        self._server.server_close()


def _handler(registry: CollectorRegistry, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?")[0]
            if path in ("/metrics", "/"):
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, text = health.live()
                self._send(200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8")
            elif path == "/readyz":
                ok, text = health.ready()
                self._send(200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by http.server
            return

    return Handler
