"""``qwatch serve`` settings: one frozen dataclass, every field a ``QWATCH_SERVE_*`` variable and a Helm value."""

from __future__ import annotations

from dataclasses import dataclass, field

from qwatch import config as cfgmod
from qwatch.config import Secret
from qwatch.events.topics import INVENTORY, STATE, TRANSITIONS

P = "SERVE_"


@cfgmod.component(P)
@dataclass(frozen=True)
class ServeConfig:
    """Where to listen, what to read, and the limits that keep a public read-only API boring."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on (0.0.0.0 in a container)"})
    port: int = field(default=8080, metadata={"help": "HTTP port; 0 picks a free one (printed at start)"})
    token: Secret = field(
        default_factory=Secret, metadata={"help": "bearer token required on every path but /healthz (secret)"}
    )
    group: str = field(
        default="", metadata={"help": "consumer group to commit positions to for lag monitoring; empty = none"}
    )
    transitions_topic: str = field(default=TRANSITIONS, metadata={"help": "topic of Transition records"})
    state_topic: str = field(default=STATE, metadata={"help": "compacted topic of PackageStateRecord; empty = off"})
    inventory_topic: str = field(default=INVENTORY, metadata={"help": "compacted inventory topic; empty = off"})
    pypi_url: str = field(default="https://pypi.org", metadata={"help": "base of PyPI project-page links"})
    osv_url: str = field(default="https://osv.dev", metadata={"help": "base of report links"})
    public_url: str = field(
        default="", metadata={"help": "absolute base URL for feed links; empty = from the request's Host"}
    )
    cors_origins: tuple[str, ...] = field(
        default=(), metadata={"help": "origins allowed to call the API from a browser (CORS); empty = CORS off"}
    )
    rate_limit: float = field(default=20.0, metadata={"help": "requests per second per client address; 0 = off"})
    rate_burst: int = field(default=100, metadata={"help": "requests a client may make at once before the limit"})
    max_query_bytes: int = field(default=2048, metadata={"help": "longest query string accepted (414 above)"})
    max_streams: int = field(default=1000, metadata={"help": "concurrent /v1/stream clients (503 above)"})
    stream_queue: int = field(
        default=256, metadata={"help": "batches buffered per stream client; a slower client is disconnected"}
    )
    keepalive: float = field(default=15.0, metadata={"help": "seconds between SSE keep-alive comments"})
    page_limit: int = field(default=50, metadata={"help": "default page size"})
    max_limit: int = field(default=500, metadata={"help": "largest page size a client may ask for"})
    poll_timeout: float = field(default=0.2, metadata={"help": "seconds per poll of the topics"})

    def __post_init__(self) -> None:
        req = cfgmod.require
        req(bool(self.host), P, "host", "must not be empty")
        req(0 <= self.port < 65536, P, "port", "expected a port number 0-65535")
        req(bool(self.transitions_topic), P, "transitions_topic", "must not be empty")
        for name in ("pypi_url", "osv_url"):
            req(getattr(self, name).startswith(("http://", "https://")), P, name, "expected an http(s) URL")
        req(
            not self.public_url or self.public_url.startswith(("http://", "https://")),
            P,
            "public_url",
            "expected an http(s) URL",
        )
        req(
            all(o == "*" or o.startswith(("http://", "https://")) for o in self.cors_origins),
            P,
            "cors_origins",
            "expected http(s) origins or *",
        )
        req(0 <= self.rate_limit <= 100_000, P, "rate_limit", "expected 0-100000 per second")
        req(1 <= self.rate_burst <= 1_000_000, P, "rate_burst", "expected 1-1000000")
        req(256 <= self.max_query_bytes <= 65536, P, "max_query_bytes", "expected 256-65536")
        req(1 <= self.max_streams <= 100_000, P, "max_streams", "expected 1-100000")
        req(1 <= self.stream_queue <= 100_000, P, "stream_queue", "expected 1-100000")
        req(0 < self.keepalive <= 300, P, "keepalive", "expected 0 < seconds <= 300")
        req(1 <= self.max_limit <= 10_000, P, "max_limit", "expected 1-10000")
        req(1 <= self.page_limit <= self.max_limit, P, "page_limit", "expected 1 to max_limit")
        req(0 < self.poll_timeout <= 10, P, "poll_timeout", "expected 0 < seconds <= 10")
