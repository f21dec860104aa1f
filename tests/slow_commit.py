"""``python tests/slow_commit.py MS ARGS...``: the ``qwatch`` CLI whose Kafka producers hold every transaction open
``MS`` milliseconds before committing it.

Crash tests need a wide window in which a transaction's records are written but not committed, to kill the
processor inside it. The window comes from a Kafka client factory injected at the composition root
(``app.cli.main(kafka_clients=...)``), so the production config and the Helm values carry no test-only setting.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, sys.path[0] is tests/, whose tests/qwatch and tests/app packages would shadow the project's.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import time  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

from kafka import KafkaProducer  # noqa: E402

from app.cli import main  # noqa: E402
from qwatch.config import KafkaConfig  # noqa: E402
from qwatch.kafka.clients import KafkaClients, producer_kwargs  # noqa: E402


class SlowCommitProducer(KafkaProducer):  # type: ignore[misc]
    """A real producer that waits before each commit (after the batch was flushed and the offsets sent)."""

    def __init__(self, delay_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._delay_s = delay_s

    def commit_transaction(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self._delay_s)
        return super().commit_transaction(*args, **kwargs)


class SlowCommitClients(KafkaClients):
    """Production clients, except that transactional producers commit late."""

    def __init__(self, cfg: KafkaConfig, delay_s: float) -> None:
        super().__init__(cfg)
        self._delay_s = delay_s

    def producer(self, **overrides: Any) -> KafkaProducer:
        kwargs = producer_kwargs(self.cfg, **overrides)
        if "transactional_id" not in kwargs:
            return KafkaProducer(**kwargs)
        return SlowCommitProducer(self._delay_s, **kwargs)


def command(delay_ms: int, *args: str) -> list[str]:
    """The argv that runs ``qwatch ARGS`` with commits held ``delay_ms``."""
    return [sys.executable, __file__, str(delay_ms), *args]


if __name__ == "__main__":
    delay = int(sys.argv[1]) / 1000
    sys.exit(main(sys.argv[2:], kafka_clients=partial(SlowCommitClients, delay_s=delay)))
