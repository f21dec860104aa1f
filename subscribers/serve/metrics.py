"""Prometheus metrics of ``qwatch serve``, on the process's registry (``qwatch_serve_`` prefix, base units).

Kept beside the component while qwatch/metrics.py is being reworked by another change; route labels are the
bounded route names below, never raw paths.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ROUTES = (
    "/v1/packages",
    "/v1/transitions",
    "/v1/stream",
    "/feed.atom",
    "/feed.json",
    "/openapi.json",
    "/healthz",
    "/static",
    "/packages",
    "/search",
    "/",
    "other",
)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def route_of(path: str) -> str:
    """The bounded route label of a request path."""
    if path == "/":
        return "/"
    for r in ROUTES[:-2]:
        if path == r or path.startswith(r + "/"):
            return r
    return "other"


class ServeMetrics:
    """Requests, their duration, open streams and what the feeder applied."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "qwatch_serve_requests_total",
            "HTTP requests by route and status code.",
            ["route", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "qwatch_serve_request_duration_seconds",
            "Time to the response headers.",
            ["route"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.streams = Gauge("qwatch_serve_streams", "Open /v1/stream connections.", registry=registry)
        self.applied = Counter(
            "qwatch_serve_records_applied_total",
            "Records applied to the view, by topic kind.",
            ["kind"],
            registry=registry,
        )
        self.undecodable = Counter(
            "qwatch_serve_undecodable_total",
            "Records that did not decode (kept in the view's skipped table).",
            registry=registry,
        )
        self.rate_limited = Counter(
            "qwatch_serve_rate_limited_total", "Requests refused by the per-client rate limit.", registry=registry
        )
