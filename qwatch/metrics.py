"""Every Prometheus metric of quarantine-watch, defined once on an injected registry.

Names follow Prometheus conventions: ``qwatch_`` prefix, base units, ``_total`` on counters, ``_seconds`` on
durations, ``_timestamp_seconds`` on last-success gauges, and labels with bounded values only (source, outcome,
kind: never a package name, URL or sha). The dashboard and alert rules query exactly these names, and a test
scrapes a live component to prove it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 900, 1800, 3600, 6 * 3600, 24 * 3600)
"""Detection-latency buckets: the 10 s p99 objective sits on a boundary so the alert can use it exactly."""

DEADLETTER_REASONS = ("malformed-json", "schema", "oversized", "http-status", "truncated", "content-type", "delivery")
"""The bounded set of dead-letter reasons every component pre-declares, so a zero is visible before the first one."""

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
        """Create a component's known series at zero: a dashboard or rate() should see 0, not 'no data'."""
        for reason in DEADLETTER_REASONS:
            self.deadletters.labels(source, reason)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - metrics must be scrapable in-cluster
        """Expose ``/metrics`` on ``port`` (0 disables), in a daemon thread."""
        if port:
            start_http_server(port, addr=addr, registry=self.registry)
