"""``qwatch up``: the main job. Broker, topics, every ingestor and the processor, supervised, with live output.

Real mode watches pypi.org and the GitHub OpenSSF repository. ``--demo`` (or the automatic fallback when pypi.org
cannot be reached) runs the very same processes against the bundled local PyPI and a replay of real OpenSSF
history, so a newcomer sees real transitions within a minute on a machine with no internet.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kafka import TopicPartition
from prometheus_client import CollectorRegistry, start_http_server

from app.federation import ChildMetrics
from app.render import render
from app.supervisor import ChildSpec, Supervisor
from qwatch import __version__, logs
from qwatch.broker import LocalBroker, default_cache_dir
from qwatch.broker.local import free_port
from qwatch.config import KafkaConfig
from qwatch.events.codec import Codec, SchemaError
from qwatch.events.topics import TRANSITIONS
from qwatch.runtime import StopFlag, kafka_config

logger = logging.getLogger(__name__)

PYPI_INDEX = "https://pypi.org/simple/"
PYPI_XMLRPC = "https://pypi.org/pypi"
OPENSSF_REPO = "https://github.com/ossf/malicious-packages.git"


def register(sub: Any) -> None:
    """Add ``up``."""
    p = sub.add_parser(
        "up",
        help="run the whole pipeline: broker, topics, ingestors, processor, live transitions",
        description=(
            "Starts the embedded Apache Kafka broker (unless QWATCH_KAFKA_BOOTSTRAP names a cluster), creates the "
            "topics, runs every ingestor and the processor as supervised processes (a crash restarts with backoff), "
            "serves one Prometheus /metrics for all of them, and prints transitions as they happen. Ctrl-C stops "
            "everything cleanly. Upstream defaults are pypi.org and the GitHub OpenSSF repository; when pypi.org "
            "cannot be reached it switches to the bundled demo (use --demo to ask for it, --no-fallback to fail)."
        ),
    )
    p.add_argument("--demo", action="store_true", help="run against the bundled local PyPI and OpenSSF replay")
    p.add_argument("--churn", action="store_true", help="demo only: add a never-ending high-churn timeline (soak)")
    p.add_argument("--no-fallback", action="store_true", help="fail instead of switching to the demo when offline")
    p.add_argument(
        "--for",
        dest="duration",
        type=float,
        default=0.0,
        help="stop by itself after this many seconds (0 = run until Ctrl-C)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="port of the combined /metrics (env QWATCH_METRICS_PORT, default 9464; 0 = off)",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="where logs, state and the broker live (default: a temp dir for the demo, the cache otherwise)",
    )
    p.add_argument("--watch", type=Path, default=None, help="file of PyPI project names to watch closely")
    p.add_argument("--quiet", action="store_true", help="do not print transitions")
    p.set_defaults(func=run)


def _online(timeout: float = 5.0) -> bool:
    try:
        with httpx.Client(timeout=timeout, headers={"User-Agent": f"quarantine-watch/{__version__}"}) as client:
            return client.head(PYPI_INDEX).status_code < 500
    except httpx.HTTPError:
        return False


@dataclass
class Plan:
    """Which upstreams the children point at."""

    index_url: str
    xmlrpc_url: str
    openssf_repo: str
    openssf_since: str | None
    watch_file: Path | None
    fast: bool
    webhook_url: str | None = None
    webhook_secret: str | None = None
    journal_since: int | None = None


def child_specs(plan: Plan, run_dir: Path) -> list[ChildSpec]:
    """The component processes, each with its own metrics port and state."""
    q = [sys.executable, "-m", "app"]
    journal_interval, simple_interval, json_interval, ossf_interval, recheck = (
        ("1", "2", "3", "2", "4") if plan.fast else ("5", "300", "600", "300", "3600")
    )
    watch = ["--watch", str(plan.watch_file)] if plan.watch_file else []
    openssf = [
        *q,
        "ingest",
        "openssf",
        "--repo",
        plan.openssf_repo,
        "--interval",
        ossf_interval,
        "--workdir",
        str(run_dir / "openssf"),
    ]
    if plan.openssf_since:
        openssf += ["--since", plan.openssf_since]
    specs = [
        ChildSpec("openssf", openssf),
        ChildSpec(
            "pypi-journal",
            [
                *q,
                "ingest",
                "pypi-journal",
                "--xmlrpc-url",
                plan.xmlrpc_url,
                "--interval",
                journal_interval,
                *(["--since-serial", str(plan.journal_since)] if plan.journal_since else []),
            ],
        ),
        ChildSpec(
            "pypi-simple",
            [
                *q,
                "ingest",
                "pypi-simple",
                "--index-url",
                plan.index_url,
                *watch,
                "--interval",
                simple_interval,
                "--recheck",
                recheck,
                "--state-dir",
                str(run_dir / "state" / "simple"),
            ],
        ),
        ChildSpec(
            "pypi-json", [*q, "ingest", "pypi-json", "--index-url", plan.index_url, *watch, "--interval", json_interval]
        ),
        ChildSpec("processor", [*q, "process", "--group-id", "qwatch-processor"]),
        ChildSpec(
            "alerts",
            [*q, "alerts", *(["--webhook-url", plan.webhook_url] if plan.webhook_url else [])],
            {"QWATCH_WEBHOOK_SECRET": plan.webhook_secret} if plan.webhook_secret else {},
        ),
    ]
    return [ChildSpec(s.name, s.argv, s.env, free_port()) for s in specs]


class TransitionTally:
    """Decodes, prints and counts transition records, and keeps none of them: ``up --demo --churn`` prints about a
    hundred a minute for as long as it runs, and only their number is needed (for the summary line)."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self.seen = 0

    def show(self, value: bytes, offset: int, quiet: bool) -> None:
        """Count one record and print it (unless ``quiet``); an undecodable one is reported on stderr instead."""
        try:
            event = self._codec.decode(value)
        except (SchemaError, ValueError) as exc:  # SchemaError is what foreign or corrupt bytes raise
            print(f"# undecodable transition at offset {offset}: {exc}", file=sys.stderr)
            return
        self.seen += 1
        if not quiet:
            print(render(event), flush=True)


class TransitionPrinter:
    """Follows qwatch.transitions.v1 (read_committed) and prints each transition once, for the analyst."""

    def __init__(self, cfg: KafkaConfig, codec: Codec, from_beginning: bool) -> None:
        from qwatch.kafka.io import make_consumer

        self._tally = TransitionTally(codec)
        self._consumer = make_consumer(cfg, None)
        parts = self._consumer.partitions_for_topic(TRANSITIONS) or set()
        tps = [TopicPartition(TRANSITIONS, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        if from_beginning:
            self._consumer.seek_to_beginning(*tps)
        else:
            self._consumer.seek_to_end(*tps)

    @property
    def seen(self) -> int:
        """How many transitions were printed (or, with ``quiet``, would have been)."""
        return self._tally.seen

    def poll(self, quiet: bool) -> None:
        """Print whatever arrived."""
        for records in self._consumer.poll(timeout_ms=200).values():
            for record in records:
                self._tally.show(record.value, record.offset, quiet)

    def close(self) -> None:
        """Leave quietly."""
        self._consumer.close()


def _register_inventory(lockfile: Path, bootstrap: str) -> None:
    """Register the demo application's lockfile exactly as a user would, through the CLI."""
    import subprocess

    env = {**os.environ, "QWATCH_KAFKA_BOOTSTRAP": bootstrap}
    result = subprocess.run(
        [sys.executable, "-m", "app", "inventory", "add", "--name", "demo-app", "--lock", str(lockfile)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"registering the demo inventory failed: {result.stderr.strip()}")
    print(f"demo: registered inventory demo-app from {lockfile}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Bring everything up, follow it, and bring it down in order."""
    env = os.environ
    logs.configure(env.get("QWATCH_LOG_LEVEL", "INFO"), env.get("QWATCH_JSON_LOGS", "") in ("1", "true"))
    metrics_port = args.metrics_port if args.metrics_port is not None else int(env.get("QWATCH_METRICS_PORT", "9464"))
    demo = args.demo
    if not demo and not _online():
        if args.no_fallback:
            print("qwatch up: pypi.org is unreachable; check the network or proxy, or run with --demo", file=sys.stderr)
            return 2
        print(
            "qwatch up: pypi.org is unreachable from here, so this runs the bundled demo instead "
            "(local PyPI + a replay of real OpenSSF history). Use --no-fallback to fail instead.",
            flush=True,
        )
        demo = True
    run_dir = args.run_dir or (Path(tempfile.mkdtemp(prefix="qwatch-demo-")) if demo else default_cache_dir() / "up")
    run_dir.mkdir(parents=True, exist_ok=True)
    stop = StopFlag().install()

    broker: LocalBroker | None = None
    if env.get("QWATCH_KAFKA_BOOTSTRAP"):
        cfg = kafka_config(env)
    else:
        broker = LocalBroker(run_dir / "broker")
        t0 = time.monotonic()
        cfg = KafkaConfig(bootstrap=broker.start())
        print(f"Apache Kafka ready at {cfg.bootstrap} in {time.monotonic() - t0:.1f}s", flush=True)

    from app.demo import DemoWorld
    from qwatch.kafka.io import create_topics, make_admin

    admin = make_admin(cfg)
    try:
        create_topics(admin)
    finally:
        admin.close()

    world: DemoWorld | None = None
    if demo:
        world = DemoWorld(run_dir, churn=args.churn)
        world.start()
        plan = Plan(
            world.base_url + "/simple/",
            world.base_url + "/pypi",
            str(world.repo_path),
            world.base_commit,
            world.watch_file,
            fast=True,
            webhook_url=world.webhook_url,
            webhook_secret=world.webhook_secret,
            journal_since=world.start_serial,
        )
        print(
            f"demo: local PyPI at {world.base_url}, OpenSSF replay at {world.repo_path}, "
            f"webhook receiver at {world.webhook_url}",
            flush=True,
        )
        _register_inventory(world.lockfile, cfg.bootstrap)
    else:
        plan = Plan(PYPI_INDEX, PYPI_XMLRPC, env.get("QWATCH_OPENSSF_REPO", OPENSSF_REPO), None, args.watch, fast=False)

    specs = child_specs(plan, run_dir)
    child_env = {k: v for k, v in env.items() if not k.startswith("QWATCH_METRICS_PORT")}
    child_env["QWATCH_KAFKA_BOOTSTRAP"] = cfg.bootstrap
    # Each sweep's worker threads otherwise spread allocations over up to 8 glibc arenas per core, whose free
    # memory RSS keeps (bench/soak.py); the same setting is in the Dockerfile.
    child_env.setdefault("MALLOC_ARENA_MAX", "2")
    supervisor = Supervisor(specs, run_dir / "logs", child_env)
    registry = CollectorRegistry()
    registry.register(ChildMetrics({s.name: s.metrics_port for s in specs}))
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
        print(f"metrics: http://127.0.0.1:{metrics_port}/metrics  logs: {run_dir / 'logs'}", flush=True)
    supervisor.start()
    printer = TransitionPrinter(cfg, Codec(), from_beginning=demo)
    print("watching; transitions appear below (Ctrl-C to stop)", flush=True)
    started = time.monotonic()
    try:
        while not stop.is_set:
            supervisor.check()
            printer.poll(args.quiet)
            if args.duration and time.monotonic() - started > args.duration:
                break
    finally:
        print("stopping: asking every component to finish its batch and flush...", flush=True)
        codes = supervisor.stop()
        printer.poll(args.quiet)
        printer.close()
        if world is not None:
            world.stop()
        if broker is not None:
            broker.stop()
        restarts = {k: v for k, v in supervisor.restarts.items() if v}
        print(
            f"stopped. exit codes: {codes}; restarts: {restarts or 'none'}; transitions seen: {printer.seen}",
            flush=True,
        )
    return 0
