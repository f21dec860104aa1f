"""The composition root's toolbox: turns CLI flags and ``QWATCH_*`` variables into wired components.

Every long-running or event-moving command shares these flags (``--sink``, ``--source``, ``--state-dir``,
``--metrics-port``, logging), so they are declared once here. Only this module and the CLI read the environment.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwatch import config as cfgmod
from qwatch import logs
from qwatch.broker import LocalBroker, default_cache_dir
from qwatch.config import ConfigError, KafkaConfig
from qwatch.cursors import CursorStore, FileCursorStore, KafkaCursorStore
from qwatch.errors import UsageError as UsageError
from qwatch.events.codec import Codec
from qwatch.metrics import Health, Heartbeat, Metrics
from qwatch.sinks import JsonlSink, JsonlSource, Sink, Source, parse_endpoint

if TYPE_CHECKING:
    from qwatch.kafka.clients import KafkaClients


def default_broker_dir(env: Mapping[str, str]) -> Path:
    """Where ``qwatch broker start`` keeps the embedded broker (``QWATCH_BROKER_DIR``)."""
    if env.get("QWATCH_BROKER_DIR"):
        return Path(env["QWATCH_BROKER_DIR"]).expanduser()
    return default_cache_dir(dict(env)) / "broker"


def kafka_config(env: Mapping[str, str] | None = None, bootstrap: str | None = None) -> KafkaConfig:
    """Kafka settings from ``QWATCH_KAFKA_*``; with no bootstrap set, the running embedded broker's address."""
    env = os.environ if env is None else env
    cfg = cfgmod.load(KafkaConfig, env, "KAFKA_", {"bootstrap": bootstrap})
    if not cfg.bootstrap:
        state = LocalBroker.attach(default_broker_dir(env)).status()
        if state is None:
            raise UsageError(
                "no Kafka to talk to: set QWATCH_KAFKA_BOOTSTRAP=host:port, or start the embedded broker with "
                "'qwatch broker start' (or use --sink/--source jsonl:PATH)"
            )
        cfg = replace(cfg, bootstrap=str(state["bootstrap"]))
    return cfg


def add_common(parser: argparse.ArgumentParser, sink: bool = True, source: bool = False) -> None:
    """The flags every event-moving command takes."""
    if source:
        parser.add_argument(
            "--source",
            default="kafka",
            metavar="kafka|jsonl:PATH",
            help="where events come from (default: kafka; jsonl:- reads stdin)",
        )
    if sink:
        parser.add_argument(
            "--sink",
            default="kafka",
            metavar="kafka|jsonl:PATH",
            help="where events go (default: kafka; jsonl:- writes stdout)",
        )
        parser.add_argument(
            "--append",
            action="store_true",
            help="add to a --sink jsonl:PATH file that already holds events (otherwise refused: a rerun would "
            "double them)",
        )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="directory for cursors/state when not using Kafka (env QWATCH_STATE_DIR)",
    )
    parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (env QWATCH_KAFKA_BOOTSTRAP)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics on this port; 0 = off (env QWATCH_METRICS_PORT)",
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (env QWATCH_LOG_LEVEL)")
    parser.add_argument("--json-logs", action="store_true", default=None, help="log JSON lines (env QWATCH_JSON_LOGS)")


@cfgmod.component("")
@dataclass(frozen=True)
class CommonConfig:
    """Settings shared by every component: where state lives, metrics, logging."""

    state_dir: Path | None = field(default=None, metadata={"help": "cursors and state on disk (JSONL mode)"})
    metrics_port: int = field(default=0, metadata={"help": "port for Prometheus /metrics; 0 = off"})
    log_level: str = field(default="INFO", metadata={"help": "DEBUG, INFO, WARNING or ERROR"})
    json_logs: bool = field(default=False, metadata={"help": "log one JSON object per line"})
    health_max_silence: float = field(
        default=600.0,
        metadata={
            "help": "seconds a service loop may go without progress (beyond a sleep it announced) before "
            "/healthz fails and the liveness probe restarts it"
        },
    )

    def __post_init__(self) -> None:
        cfgmod.require(0 <= self.metrics_port < 65536, "", "metrics_port", "expected a port number 0-65535")
        cfgmod.require(1 <= self.health_max_silence <= 86400, "", "health_max_silence", "expected 1-86400 seconds")
        cfgmod.require(
            self.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"),
            "",
            "log_level",
            "expected DEBUG, INFO, WARNING or ERROR",
        )


@dataclass
class Runtime:
    """What a command needs, built once: codec, metrics, and lazily the Kafka config."""

    args: argparse.Namespace
    env: Mapping[str, str]
    common: CommonConfig
    codec: Codec
    metrics: Metrics
    health: Health = field(default_factory=Health)
    _kafka: KafkaConfig | None = None
    kafka_clients: Callable[[KafkaConfig], KafkaClients] | None = None
    """What builds Kafka clients (``KafkaClients`` unless the composition root injected another factory)."""

    def heartbeat(self, name: str) -> Heartbeat:
        """A heartbeat for one service loop, checked by ``/healthz`` and ``/readyz`` on the metrics port."""
        return self.health.heartbeat(name)

    @property
    def kafka(self) -> KafkaConfig:
        """Kafka settings, resolved on first use so JSONL-only runs never need a broker."""
        if self._kafka is None:
            self._kafka = kafka_config(self.env, getattr(self.args, "bootstrap", None))
        return self._kafka

    @property
    def clients(self) -> KafkaClients:
        """The Kafka client factory for this command, handed to every adapter that talks to Kafka."""
        if self.kafka_clients is None:
            from qwatch.kafka.clients import KafkaClients

            self.kafka_clients = KafkaClients
        return self.kafka_clients(self.kafka)

    def open_sink(self, spec: str | None = None, **producer_overrides: Any) -> Sink:
        """``--sink`` as a Sink."""
        kind, path = parse_endpoint(spec or self.args.sink, "--sink")
        if kind == "jsonl":
            return JsonlSink(path, self.codec, append=bool(getattr(self.args, "append", False)))
        from qwatch.kafka.io import KafkaSink

        return KafkaSink(self.clients.producer(**producer_overrides), self.codec)

    def sink_is_kafka(self) -> bool:
        """True when events go to Kafka (cursors then live there too)."""
        return parse_endpoint(self.args.sink, "--sink")[0] == "kafka"

    def open_source(self, group_id: str, *topics: str, **consumer_overrides: Any) -> Source:
        """``--source`` as a Source."""
        kind, path = parse_endpoint(self.args.source, "--source")
        if kind == "jsonl":
            return JsonlSource(path, self.codec)
        from qwatch.kafka.io import KafkaSource

        return KafkaSource(self.clients.consumer(group_id, *topics, **consumer_overrides), self.codec)

    def cursor_store(self) -> CursorStore:
        """Kafka cursors with a Kafka sink, files in ``--state-dir`` otherwise (which is then required)."""
        if self.sink_is_kafka() and self.common.state_dir is None:
            return KafkaCursorStore(self.clients, self.clients.producer(), self.codec)
        return FileCursorStore(self.require_state_dir())

    def require_state_dir(self) -> Path:
        """The state dir, or a usage error that says how to give one."""
        if self.common.state_dir is None:
            raise UsageError("this mode keeps state on disk: pass --state-dir DIR (or set QWATCH_STATE_DIR)")
        self.common.state_dir.mkdir(parents=True, exist_ok=True)
        return self.common.state_dir


def build_runtime(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Runtime:
    """Validate common settings, configure logging and metrics; raise ConfigError with a one-line message."""
    env = os.environ if env is None else env
    overrides = {
        "state_dir": getattr(args, "state_dir", None),
        "metrics_port": getattr(args, "metrics_port", None),
        "log_level": getattr(args, "log_level", None),
        "json_logs": getattr(args, "json_logs", None),
    }
    common = cfgmod.load(CommonConfig, env, "", overrides)
    logs.configure(common.log_level, common.json_logs)
    metrics = Metrics()
    # ``qwatch ingest <source>`` names its source; other commands are their own source (processor, alerts, ...).
    command = str(getattr(args, "command", "qwatch"))
    metrics.declare(getattr(args, "ingestor", None) or {"process": "processor"}.get(command, command))
    health = Health(common.health_max_silence)
    metrics.serve(common.metrics_port, health=health)
    return Runtime(args, env, common, Codec(), metrics, health, kafka_clients=getattr(args, "kafka_clients", None))


class StopFlag:
    """Set by SIGINT/SIGTERM so service loops finish the batch in hand, flush, and exit cleanly."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> StopFlag:
        """Route SIGTERM and SIGINT here (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self._event.set())
            signal.signal(signal.SIGINT, lambda *_: self._event.set())
        return self

    def set(self) -> None:
        """Ask the loop to stop."""
        self._event.set()

    @property
    def is_set(self) -> bool:
        """True once a stop was asked for."""
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True early if asked to stop."""
        return self._event.wait(seconds)


__all__ = ["ConfigError", "Runtime", "StopFlag", "UsageError", "add_common", "build_runtime", "kafka_config"]
