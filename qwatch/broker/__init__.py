"""The embedded local Apache Kafka broker (KRaft, single node) that tests, CI and ``qwatch up`` all use."""

from qwatch.broker.local import KAFKA_VERSION, BrokerError, LocalBroker, default_cache_dir

__all__ = ["KAFKA_VERSION", "BrokerError", "LocalBroker", "default_cache_dir"]
