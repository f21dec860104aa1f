"""``ProcessorConfig``: the processor's settings, from ``QWATCH_PROCESSOR_*`` (Helm: ``processor.*``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from processors.draft import AUTHORITIES
from qwatch.config import component, require

PREFIX = "PROCESSOR_"


@component(PREFIX)
@dataclass(frozen=True)
class ProcessorConfig:
    """How the processor consumes, batches and commits; one instance per replica."""

    group_id: str = field(default="qwatch-processor", metadata={"help": "consumer group of all replicas"})
    authority: str = field(
        default="journal",
        metadata={
            "help": "who decides the changes PyPI journals: journal (ingest pypi-journal runs; its rows alone decide) "
            "or pages (no journal ingestor; the Simple pages' timeline decides)"
        },
    )
    instance_id: str = field(
        default="0",
        metadata={"help": "stable, unique per replica (e.g. the StatefulSet ordinal); part of the transactional id"},
    )
    batch_size: int = field(
        default=20_000,
        metadata={"help": "max records per poll, i.e. per Kafka transaction (each costs ~30 ms of round trips)"},
    )
    poll_timeout_s: float = field(default=1.0, metadata={"help": "seconds one poll waits for records"})
    transaction_timeout_ms: int = field(default=60_000, metadata={"help": "broker aborts a transaction this old"})
    call_timeout_s: float = field(
        default=30.0, metadata={"help": "max seconds for one blocking Kafka call before the batch is retried"}
    )
    restore_timeout_s: float = field(default=120.0, metadata={"help": "max seconds to read state for new partitions"})
    state_flush_interval_s: float = field(
        default=5.0, metadata={"help": "how often changed package states are checkpointed to the state topic"}
    )
    state_max_replay: int = field(
        default=100_000, metadata={"help": "checkpoint early once a partition has this many unflushed records"}
    )
    compression: str = field(
        default="zstd",
        metadata={"help": "producer compression: zstd (a fifth of gzip's CPU, same size), gzip or none"},
    )
    lag_interval_s: float = field(default=5.0, metadata={"help": "how often consumer lag is measured"})
    retry_backoff_s: float = field(default=1.0, metadata={"help": "first back-off after a failed batch (doubles)"})

    def __post_init__(self) -> None:
        require(bool(self.group_id.strip()), PREFIX, "group_id", "must not be empty")
        require(bool(self.instance_id.strip()), PREFIX, "instance_id", "must not be empty")
        require(self.authority in AUTHORITIES, PREFIX, "authority", "journal or pages")
        require(0 < self.batch_size <= 100_000, PREFIX, "batch_size", "expected 1-100000")
        require(0 < self.poll_timeout_s <= 60, PREFIX, "poll_timeout_s", "expected 0-60 seconds")
        require(1000 <= self.transaction_timeout_ms <= 900_000, PREFIX, "transaction_timeout_ms", "1000-900000")
        require(1 <= self.call_timeout_s <= 600, PREFIX, "call_timeout_s", "expected 1-600 seconds")
        require(self.restore_timeout_s > 0, PREFIX, "restore_timeout_s", "expected seconds > 0")
        require(0 <= self.state_flush_interval_s <= 3600, PREFIX, "state_flush_interval_s", "0-3600 seconds")
        require(self.state_max_replay > 0, PREFIX, "state_max_replay", "expected records > 0")
        require(self.compression in ("zstd", "gzip", "none"), PREFIX, "compression", "zstd, gzip or none")
        require(self.lag_interval_s > 0, PREFIX, "lag_interval_s", "expected seconds > 0")
        require(0 < self.retry_backoff_s <= 60, PREFIX, "retry_backoff_s", "expected 0-60 seconds")

    @property
    def transactional_id(self) -> str:
        """``qwatch-processor-<group>-<instance>``: a restarted replica fences its old self and aborts its open
        transaction; two live replicas must never share it (scale out by giving each its own instance_id)."""
        return f"qwatch-processor-{self.group_id}-{self.instance_id}"
