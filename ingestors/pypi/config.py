"""Frozen configs of the PyPI ingestors: ``QWATCH_PYPI_*``, ``QWATCH_PYPI_JSON_*``, ``QWATCH_PYPI_JOURNAL_*``.

Each ingestor has its own prefix because they run as separate processes with different cadences: the root
index is cached for 10-30 minutes upstream, the JSON API for 15, while the journal is the low-latency signal
and is polled every 5 s (720 calls/h, well under the XML-RPC limit of 3600/h per IP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from qwatch import config as cfgmod
from qwatch.config import require

DEFAULT_INDEX_URL = "https://pypi.org/simple/"
DEFAULT_XMLRPC_URL = "https://pypi.org/pypi"


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@cfgmod.component("PYPI_")
@dataclass(frozen=True)
class SimpleIngestConfig:
    """``qwatch ingest pypi-simple``: root-index diff plus per-project Simple pages."""

    index_url: str = field(default=DEFAULT_INDEX_URL, metadata={"help": "the index URL pip uses"})
    watch_file: Path | None = field(default=None, metadata={"help": "file of package names to watch"})
    interval: float = field(default=300.0, metadata={"help": "seconds between root-index polls"})
    recheck: float = field(
        default=3600.0,
        metadata={"help": "seconds between full rechecks of every watched page (archive has no serial)"},
    )
    workers: int = field(default=16, metadata={"help": "concurrent page fetches during a sweep"})
    stale_retries: int = field(default=3, metadata={"help": "re-fetches of a stale page within one pass"})
    stale_delay: float = field(default=1.0, metadata={"help": "first wait before re-fetching a stale page, seconds"})

    def __post_init__(self) -> None:
        check_common(self.index_url, self.interval, self.workers, self.stale_retries, self.stale_delay, "PYPI_")
        require(self.recheck >= self.interval, "PYPI_", "recheck", "expected >= QWATCH_PYPI_INTERVAL")


@cfgmod.component("PYPI_JSON_")
@dataclass(frozen=True)
class JsonIngestConfig:
    """``qwatch ingest pypi-json``: JSON API of watched projects; a 404 is settled by the Simple page."""

    index_url: str = field(default=DEFAULT_INDEX_URL, metadata={"help": "the index URL; /pypi/<n>/json is on its host"})
    watch_file: Path | None = field(default=None, metadata={"help": "file of package names to watch"})
    interval: float = field(default=900.0, metadata={"help": "seconds between sweeps of the watch set"})
    workers: int = field(default=16, metadata={"help": "concurrent fetches during a sweep"})
    stale_retries: int = field(default=3, metadata={"help": "re-fetches of a stale response within one pass"})
    stale_delay: float = field(default=1.0, metadata={"help": "first wait before re-fetching a stale response"})

    def __post_init__(self) -> None:
        check_common(self.index_url, self.interval, self.workers, self.stale_retries, self.stale_delay, "PYPI_JSON_")


@cfgmod.component("PYPI_PROVENANCE_")
@dataclass(frozen=True)
class ProvenanceIngestConfig:
    """``qwatch ingest pypi-provenance``: PEP 740 provenance of the recent releases of watched projects."""

    index_url: str = field(default=DEFAULT_INDEX_URL, metadata={"help": "the index URL; /integrity/ is on its host"})
    watch_file: Path | None = field(default=None, metadata={"help": "file of package names to watch"})
    interval: float = field(default=900.0, metadata={"help": "seconds between sweeps of the watch set"})
    workers: int = field(default=8, metadata={"help": "concurrent fetches during a sweep"})
    releases: int = field(default=5, metadata={"help": "most recent releases per project whose files are checked"})
    signatures: str = field(
        default="sigstore",
        metadata={"help": "sigstore: verify signatures offline (Sigstore's shipped trust root); off: digests only"},
    )

    def __post_init__(self) -> None:
        p = "PYPI_PROVENANCE_"
        check_common(self.index_url, self.interval, self.workers, 0, 0, p)
        require(1 <= self.releases <= 16, p, "releases", "expected 1-16 (the processor keeps 16 per project)")
        require(self.signatures in ("sigstore", "off"), p, "signatures", "expected sigstore or off")


@cfgmod.component("PYPI_JOURNAL_")
@dataclass(frozen=True)
class JournalIngestConfig:
    """``qwatch ingest pypi-journal``: XML-RPC ``changelog_since_serial``, cursor = serial."""

    xmlrpc_url: str = field(default=DEFAULT_XMLRPC_URL, metadata={"help": "PyPI's XML-RPC endpoint"})
    since_serial: int | None = field(default=None, metadata={"help": "start after this serial when no cursor exists"})
    interval: float = field(default=5.0, metadata={"help": "seconds between polls (5 s = 720 calls/h)"})
    page_size: int = field(
        default=50_000,
        metadata={"help": "rows PyPI returns per call at most; a shorter page means caught up"},
    )
    max_fault_retries: int = field(default=5, metadata={"help": "rate-limit faults tolerated in one poll"})

    def __post_init__(self) -> None:
        p = "PYPI_JOURNAL_"
        require(_is_http_url(self.xmlrpc_url), p, "xmlrpc_url", "expected an http(s) URL")
        require(self.since_serial is None or self.since_serial >= 0, p, "since_serial", "expected >= 0")
        require(0.1 <= self.interval <= 86400, p, "interval", "expected 0.1-86400 seconds")
        require(1 <= self.page_size <= 1_000_000, p, "page_size", "expected 1-1000000")
        require(0 <= self.max_fault_retries <= 100, p, "max_fault_retries", "expected 0-100")


def check_common(url: str, interval: float, workers: int, retries: int, delay: float, prefix: str) -> None:
    """Validation shared by the two page-fetching ingestors."""
    require(_is_http_url(url), prefix, "index_url", "expected an http(s) URL such as https://pypi.org/simple/")
    require(0.1 <= interval <= 7 * 86400, prefix, "interval", "expected 0.1 s - 7 days")
    require(1 <= workers <= 256, prefix, "workers", "expected 1-256")
    require(0 <= retries <= 10, prefix, "stale_retries", "expected 0-10")
    require(0 <= delay <= 300, prefix, "stale_delay", "expected 0-300 seconds")
