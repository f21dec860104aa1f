"""Shared fixtures: the real local Kafka broker, Kafka configs, topic factories and the shared fixtures folder.

The broker is real Apache Kafka started by the project's own code. If it cannot start, the fixture raises and
the tests error: they are never skipped.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from kafka.admin import NewTopic

from qwatch.broker import LocalBroker
from qwatch.config import KafkaConfig
from qwatch.events.codec import Codec
from qwatch.kafka.io import create_topics, make_admin
from tests.fixture_paths import SHARED

settings.register_profile("ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("QWATCH_HYPOTHESIS_PROFILE", "ci"))

SHARED_FIXTURES = SHARED
"""A copy of the project's shared/fixtures (real lockfiles, PyPI bodies, OpenSSF history), kept in the repository so
a clone anywhere runs the whole suite."""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not pick up a developer's QWATCH_* settings or proxies."""
    for name in list(os.environ):
        if name.startswith("QWATCH_") and name not in ("QWATCH_CACHE_DIR", "QWATCH_HYPOTHESIS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """``../shared/fixtures`` (see fixture_paths); its absence is a failure, not a skip."""
    assert SHARED_FIXTURES.is_dir(), f"shared fixtures not found at {SHARED_FIXTURES}"
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def ossf_sample_bare(shared_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare clone of the real OpenSSF sample (``ossf-sample/ossf-pypi-sample.bundle``), shared read-only."""
    dest = tmp_path_factory.mktemp("ossf-sample") / "sample.git"
    bundle = shared_fixtures / "ossf-sample" / "ossf-pypi-sample.bundle"
    subprocess.run(["git", "clone", "-q", "--bare", str(bundle), str(dest)], check=True)
    return dest


@pytest.fixture(scope="session")
def codec() -> Codec:
    """The production codec."""
    return Codec()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """One real Apache Kafka broker for the session, with the qwatch topics created."""
    b = LocalBroker(tmp_path_factory.mktemp("kafka"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def kafka_cfg(broker: LocalBroker) -> KafkaConfig:
    """Settings pointing at the session broker, with the qwatch topics in place."""
    cfg = KafkaConfig(bootstrap=broker.bootstrap)
    admin = make_admin(cfg)
    try:
        create_topics(admin)
    finally:
        admin.close()
    return cfg


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Callable[[], LocalBroker]]:
    """Factory for a private broker (for tests that stop/kill it or need empty qwatch topics)."""
    started: list[LocalBroker] = []

    def make() -> LocalBroker:
        b = LocalBroker(tmp_path / f"kafka-{len(started)}")
        b.start()
        started.append(b)
        admin = make_admin(KafkaConfig(bootstrap=b.bootstrap))
        try:
            create_topics(admin)
        finally:
            admin.close()
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def topic_factory(kafka_cfg: KafkaConfig) -> Callable[..., str]:
    """Create a uniquely named topic (quix-streams style) so tests never see each other's records."""

    def make(partitions: int = 1, configs: dict[str, str] | None = None) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        admin = make_admin(kafka_cfg)
        try:
            admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
        finally:
            admin.close()
        return name

    return make
