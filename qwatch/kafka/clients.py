"""The one place Kafka clients are built, and the factory object every adapter is handed.

Adapters (the processor's transaction loop, the watch feed, topic readers) take a :class:`KafkaClients` instead of
building clients from a config deep inside, so the composition root (the CLI, a test, a benchmark) decides what
a client is: the production settings below, or a test double that, say, holds every transaction open a while
(``tests/slow_commit.py``) without a test-only knob in the production config.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from qwatch.config import KafkaConfig


def producer_kwargs(cfg: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """An idempotent, acks=all producer: retries cannot duplicate or reorder within a partition."""
    kwargs: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "client_id": f"{cfg.client_id}-producer",
        "delivery_timeout_ms": 120_000,
    }
    kwargs.update(cfg.client_kwargs())
    kwargs.update(overrides)
    return kwargs


def consumer_kwargs(cfg: KafkaConfig, group_id: str | None, **overrides: Any) -> dict[str, Any]:
    """A manual-commit, read_committed consumer: offsets move only after processing, aborted data is invisible."""
    kwargs: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "client_id": f"{cfg.client_id}-consumer",
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 1_000,
    }
    kwargs.update(cfg.client_kwargs())
    kwargs.update(overrides)
    return kwargs


class KafkaClients:
    """Builds producers, consumers and admin clients for one cluster; subclass it to change what a client is."""

    def __init__(self, cfg: KafkaConfig) -> None:
        self.cfg = cfg

    def producer(self, **overrides: Any) -> KafkaProducer:
        """See :func:`producer_kwargs`; ``overrides`` win."""
        return KafkaProducer(**producer_kwargs(self.cfg, **overrides))

    def consumer(self, group_id: str | None, *topics: str, **overrides: Any) -> KafkaConsumer:
        """See :func:`consumer_kwargs`; ``overrides`` win."""
        return KafkaConsumer(*topics, **consumer_kwargs(self.cfg, group_id, **overrides))

    def admin(self, **overrides: Any) -> KafkaAdminClient:
        """An admin client for topic creation and lag checks."""
        return KafkaAdminClient(**{"client_id": f"{self.cfg.client_id}-admin", **self.cfg.client_kwargs(), **overrides})


def make_producer(cfg: KafkaConfig, **overrides: Any) -> KafkaProducer:
    """``KafkaClients(cfg).producer(...)``, for one-off clients in composition roots and tests."""
    return KafkaClients(cfg).producer(**overrides)


def make_consumer(cfg: KafkaConfig, group_id: str | None, *topics: str, **overrides: Any) -> KafkaConsumer:
    """``KafkaClients(cfg).consumer(...)``, for one-off clients in composition roots and tests."""
    return KafkaClients(cfg).consumer(group_id, *topics, **overrides)


def make_admin(cfg: KafkaConfig, **overrides: Any) -> KafkaAdminClient:
    """``KafkaClients(cfg).admin(...)``, for one-off clients in composition roots and tests."""
    return KafkaClients(cfg).admin(**overrides)
