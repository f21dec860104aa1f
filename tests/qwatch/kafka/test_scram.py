"""SASL/SCRAM-SHA-512 on a real Apache Kafka broker: the pipeline works with credentials, and only with them.

This is what proves the Helm chart's SASL settings (QWATCH_KAFKA_SECURITY_PROTOCOL / _SASL_*) are real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from kafka.errors import KafkaError

from qwatch import config, events
from qwatch.broker import LocalBroker
from qwatch.config import KafkaConfig
from qwatch.events import topics
from qwatch.events.codec import Codec
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import KafkaSink, create_topics, make_admin, make_producer, read_topic

pytestmark = pytest.mark.kafka

USER, PASSWORD = "qwatch", "s3cret-scram-pw"
ENV = {
    "QWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "QWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "QWATCH_KAFKA_SASL_USERNAME": USER,
    "QWATCH_KAFKA_SASL_PASSWORD": PASSWORD,
}


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path_factory.mktemp("scram"), scram_users={USER: PASSWORD})
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _cfg(broker: LocalBroker, **env: str) -> KafkaConfig:
    return config.load(KafkaConfig, {**ENV, "QWATCH_KAFKA_BOOTSTRAP": broker.bootstrap, **env}, "KAFKA_")


def test_authenticated_clients_produce_and_consume(scram_broker: LocalBroker, codec: Codec) -> None:
    cfg = _cfg(scram_broker)
    admin = make_admin(cfg)
    try:
        create_topics(admin)
    finally:
        admin.close()
    sink = KafkaSink(make_producer(cfg), codec)
    row = events.JournalEntryObserved("scram-1", "pypi-journal", "PyPI", "demo", 1, 2, "create", None, 1, 2, "demo")
    sink.emit(row)
    sink.close()
    assert [d.event for d in read_topic(KafkaClients(cfg), codec, topics.OBSERVATIONS)] == [row]


def test_the_cli_works_with_credentials_from_the_environment(scram_broker: LocalBroker) -> None:
    env = {**os.environ, **ENV, "QWATCH_KAFKA_BOOTSTRAP": scram_broker.bootstrap}
    result = subprocess.run(
        [sys.executable, "-m", "app", "topics", "create"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "qwatch.transitions.v1" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def _rejected(broker: LocalBroker, cfg: KafkaConfig) -> str:
    """Try an admin call; return what the broker logged about the attempt (it must have failed)."""
    before = broker.log_path.stat().st_size
    with pytest.raises(KafkaError):
        admin = make_admin(cfg, request_timeout_ms=3000, bootstrap_timeout_ms=4000)
        try:
            admin.list_topics()
        finally:
            admin.close()
    with open(broker.log_path, "rb") as fh:
        fh.seek(before)
        return fh.read().decode(errors="replace")


def test_clients_without_credentials_are_rejected(scram_broker: LocalBroker) -> None:
    logged = _rejected(scram_broker, KafkaConfig(bootstrap=scram_broker.bootstrap))
    assert "Failed authentication" in logged or "SASL" in logged, logged[-2000:]


def test_a_wrong_password_is_rejected(scram_broker: LocalBroker) -> None:
    logged = _rejected(scram_broker, _cfg(scram_broker, QWATCH_KAFKA_SASL_PASSWORD="not-the-password"))
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in logged
