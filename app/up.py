"""``qwatch up``: the main job. Broker, topics, every ingestor and the processor, supervised, with live output.

Real mode watches pypi.org and the GitHub OpenSSF repository. ``--demo`` (or the automatic fallback when pypi.org
cannot be reached) runs the very same processes against the bundled local PyPI and a replay of real OpenSSF
history, so a newcomer sees real transitions within a minute on a machine with no internet.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kafka import TopicPartition
from prometheus_client import CollectorRegistry, start_http_server

from app import render as render_mod
from app import status
from app.federation import ChildMetrics
from app.render import RESET, WARNING_COLOUR, human_duration, paint, render
from app.supervisor import ChildSpec, Supervisor
from qwatch import __version__, logs, upstate
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
    p.add_argument(
        "--serve-port",
        type=int,
        default=None,
        metavar="PORT",
        help=f"port of 'qwatch serve' on 127.0.0.1 (default {SERVE_PORT}, or a free one if that is taken; 0: no serve)",
    )
    p.add_argument("--quiet", action="store_true", help="do not print transitions")
    p.add_argument(
        "--status-every",
        type=float,
        default=30.0,
        help="seconds between the per-source status lines (0 = none; failures are reported at once either way)",
    )
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
    serve_port: int = 0
    """Where ``qwatch serve`` listens on 127.0.0.1 (0: no serve child)."""
    provenance_signatures: str = "sigstore"
    """``off`` for the demo world, whose attestations are synthetic (they name the files but no Sigstore key)."""


SERVE_PORT = 8800
"""``up``'s default port for ``qwatch serve``: fixed, so the URL a user bookmarks stays the same across runs."""


def _serve_port(asked: int | None) -> int:
    """The asked port (0 turns serve off), else SERVE_PORT when free, else any free port."""
    if asked is not None:
        return asked
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", SERVE_PORT))
        except OSError:
            return free_port()
    return SERVE_PORT


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
        ChildSpec(
            "pypi-provenance",
            [
                *q,
                "ingest",
                "pypi-provenance",
                "--index-url",
                plan.index_url,
                *watch,
                "--interval",
                json_interval if plan.fast else "900",
                "--signatures",
                plan.provenance_signatures,
                "--state-dir",
                str(run_dir / "state" / "provenance"),
            ],
        ),
        ChildSpec("processor", [*q, "process", "--group-id", "qwatch-processor"]),
        ChildSpec(
            "alerts",
            [*q, "alerts", *(["--webhook-url", plan.webhook_url] if plan.webhook_url else [])],
            {"QWATCH_WEBHOOK_SECRET": plan.webhook_secret} if plan.webhook_secret else {},
        ),
    ]
    if plan.serve_port:
        serve = [
            *q,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(plan.serve_port),
            "--state-dir",
            str(run_dir / "serve"),
        ]
        specs.append(ChildSpec("serve", serve))
    return [ChildSpec(s.name, s.argv, s.env, free_port()) for s in specs]


class TransitionTally:
    """Decodes, prints and counts transition records, and keeps none of them: ``up --demo --churn`` prints about a
    hundred a minute for as long as it runs, and only their number is needed (for the summary line). Of the demo's
    scripted changes (``expected``, a fixed handful) it remembers which arrived and their latencies, for the
    closing summary."""

    def __init__(self, codec: Codec, expected: frozenset[tuple[str, str]] = frozenset(), colour: bool = False) -> None:
        self._codec = codec
        self.seen = 0
        self.expected = expected
        self.arrived: dict[tuple[str, str], float | None] = {}
        self._colour = colour

    def show(self, value: bytes, offset: int, quiet: bool) -> None:
        """Count one record and print it (unless ``quiet``); an undecodable one is reported on stderr instead."""
        try:
            event = self._codec.decode(value)
        except (SchemaError, ValueError) as exc:  # SchemaError is what foreign or corrupt bytes raise
            print(f"# undecodable transition at offset {offset}: {exc}", file=sys.stderr)
            return
        self.seen += 1
        key = (getattr(event, "kind", ""), getattr(event, "package", ""))
        if key in self.expected and key not in self.arrived:
            upstream, detected = getattr(event, "upstream_time", None), getattr(event, "detected_at", 0)
            self.arrived[key] = None if upstream is None else (detected - upstream) / 1000
        if not quiet:
            logs.show(paint(render(event), str(getattr(event, "severity", "")), self._colour))

    @property
    def scripted_done(self) -> bool:
        """Every expected change arrived."""
        return bool(self.expected) and len(self.arrived) == len(self.expected)


class TransitionPrinter:
    """Follows qwatch.transitions.v1 (read_committed) and prints each transition once, for the analyst."""

    def __init__(self, cfg: KafkaConfig, codec: Codec, from_beginning: bool, tally: TransitionTally) -> None:
        from qwatch.kafka.io import make_consumer

        self._tally = tally
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
    say("DEMO", f"registered inventory demo-app from {lockfile}")


SUMMARY_GRACE = 60.0
PLAY_TIMEOUT = 90.0
"""The demo's script starts once every ingestor polls, or after this many seconds whatever they do."""
"""Seconds after the demo's script ends before the summary is printed with whatever did not arrive."""


def say(tag: str, text: str) -> None:
    """One line on ``up``'s screen, in the screen's one time format."""
    logs.show(logs.screen_line(tag, text))


class StatusBoard:
    """Scrapes each child's /metrics: a warning the moment a source starts failing (and a note when it recovers),
    and one status line per source every ``every`` seconds."""

    def __init__(self, specs: list[ChildSpec], urls: dict[str, str], log_dir: Path, every: float, colour: bool) -> None:
        self._ports = {s.name: s.metrics_port for s in specs}
        self._urls = urls
        self._log_dir = log_dir
        self._every = every
        self._colour = colour
        self._prev: dict[str, status.SourceStatus] = {}
        self._failing: set[str] = set()
        self._next_check = 0.0
        self._next_status = time.monotonic() + every if every else float("inf")

    def tick(self, force_status: bool = False) -> None:
        """Check for failures every few seconds; print the status lines when due."""
        now = time.monotonic()
        if not force_status and now < self._next_check:
            return
        self._next_check = now + 5.0
        scraped = {name: status.scrape(port) for name, port in self._ports.items()}
        wall = time.time()
        current = {name: status.source_status(name, scraped.get(name)) for name in status.SOURCES if name in scraped}
        for name, cur in current.items():
            prev = self._prev.get(name)
            if status.failing(prev, cur):
                if name not in self._failing:
                    self._failing.add(name)
                    last = status.last_log_problem(self._log_dir / f"{name}.log")
                    self._warn(status.warning_text(prev, cur, self._urls.get(name, ""), last))
            elif (
                name in self._failing
                and cur.reachable
                and cur.last_success
                and (prev is None or cur.last_success != prev.last_success)
            ):
                self._failing.discard(name)
                say("RECOVERED", f"{name}: polls succeed again")
            if cur.reachable:
                self._prev[name] = cur
        if force_status or now >= self._next_status:
            self._next_status = now + self._every if self._every else float("inf")
            for name in status.SOURCES:
                if name in current:
                    say("STATUS", status.status_line(current[name], wall))
            say("STATUS", status.pipeline_line(scraped.get("processor"), scraped.get("alerts")))

    def all_polling(self) -> bool:
        """Every ingestor answered and has had a successful poll (what the demo waits for before playing)."""
        for name in status.SOURCES:
            port = self._ports.get(name)
            if port is None:
                continue
            cur = status.source_status(name, status.scrape(port))
            if not cur.last_success:
                return False
        return True

    def _warn(self, text: str) -> None:
        line = logs.screen_line("WARNING", text)
        if self._colour:
            line = f"{WARNING_COLOUR}{line}{RESET}"
        logs.show(line)


def demo_summary(tally: TransitionTally, webhooks: int, elapsed: float) -> str:
    """The closing words of the scripted demo: what arrived, how fast, what was survived, what to try next."""
    from app.demo import FAULT_NOTES
    from subscribers.alerts.matching import REPORT_KINDS

    if not tally.scripted_done:
        missing = ", ".join(f"{k} {p}" for k, p in sorted(tally.expected - set(tally.arrived)))
        return (
            f"{len(tally.arrived)} of {len(tally.expected)} scripted changes arrived in {human_duration(elapsed)}; "
            f"still missing: {missing}. The status lines above say which source is behind; its log is in the "
            "logs directory."
        )
    latencies = sorted(v for (kind, _), v in tally.arrived.items() if v is not None and kind not in REPORT_KINDS)
    median = f"median detection latency {human_duration(latencies[len(latencies) // 2])}" if latencies else ""
    return (
        f"all {len(tally.expected)} scripted changes arrived within {human_duration(elapsed)}, each once; "
        f"{median} (journal events; the replayed OpenSSF reports keep their real commit times); "
        f"{webhooks} signed alerts reached the webhook receiver; upstream faults survived: {FAULT_NOTES}. "
        "In another terminal: 'qwatch tail --topic alerts --from-beginning' or 'qwatch broker status' find this "
        "broker without flags. Ctrl-C stops everything."
    )


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
        say("KAFKA", f"Apache Kafka ready at {cfg.bootstrap} in {human_duration(time.monotonic() - t0)}")
    record = upstate.write(
        env,
        bootstrap=cfg.bootstrap,
        run_dir=str(run_dir),
        logs=str(run_dir / "logs"),
        metrics_port=metrics_port,
        demo=demo,
    )
    logs.configure_up(run_dir / "logs" / "up.log")

    from app.demo import DEMO_SECONDS, EXPECTED_TRANSITIONS, DemoWorld
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
            provenance_signatures="off",
        )
        say(
            "DEMO",
            f"local PyPI at {world.base_url}, OpenSSF replay at {world.repo_path}, "
            f"webhook receiver at {world.webhook_url}",
        )
        _register_inventory(world.lockfile, cfg.bootstrap)
    else:
        plan = Plan(PYPI_INDEX, PYPI_XMLRPC, env.get("QWATCH_OPENSSF_REPO", OPENSSF_REPO), None, args.watch, fast=False)

    plan = dataclasses.replace(plan, serve_port=_serve_port(args.serve_port))
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
        say("METRICS", f"http://127.0.0.1:{metrics_port}/metrics")
    say("LOGS", f"{run_dir / 'logs'} (one file per component; this screen shows transitions and status)")
    say("BROKER", f"recorded in {record}: 'qwatch broker status', 'qwatch tail' and 'qwatch alerts' find it")
    supervisor.start()
    if plan.serve_port:
        say(
            "SERVE", f"http://127.0.0.1:{plan.serve_port}/  (package status API, takedown feeds, live stream, web page)"
        )
    colour = render_mod.colour_enabled(sys.stdout)
    tally = TransitionTally(
        Codec(), frozenset(EXPECTED_TRANSITIONS) if demo and not args.churn else frozenset(), colour
    )
    printer = TransitionPrinter(cfg, Codec(), from_beginning=demo, tally=tally)
    urls = {
        "pypi-journal": plan.xmlrpc_url,
        "pypi-simple": plan.index_url,
        "pypi-json": plan.index_url,
        "openssf": plan.openssf_repo,
    }
    board = StatusBoard(specs, urls, run_dir / "logs", args.status_every, colour)
    say(
        "WATCHING",
        "transitions appear below, with a status line per source every "
        f"{human_duration(args.status_every)} (Ctrl-C to stop)"
        if args.status_every
        else "transitions appear below",
    )
    started = time.monotonic()
    played: float | None = None
    next_ready_check = 0.0
    summarized = False
    try:
        while not stop.is_set:
            supervisor.check()
            printer.poll(args.quiet)
            board.tick()
            if world is not None and played is None and time.monotonic() >= next_ready_check:
                next_ready_check = time.monotonic() + 1.0
                waited = time.monotonic() - started
                if board.all_polling() or waited > PLAY_TIMEOUT:
                    world.play()
                    played = time.monotonic()
                    say(
                        "DEMO",
                        f"every ingestor is polling (after {human_duration(waited)}): the scripted upstream changes "
                        f"start now and take {human_duration(DEMO_SECONDS)}",
                    )
            late = played is not None and time.monotonic() - played > DEMO_SECONDS + SUMMARY_GRACE
            if not summarized and world is not None and tally.expected and (tally.scripted_done or late):
                summarized = True
                time.sleep(1.0)  # let the last webhook land before counting them
                printer.poll(args.quiet)
                since = played if played is not None else started
                say("SUMMARY", demo_summary(tally, len(world.webhook_received), time.monotonic() - since))
                board.tick(force_status=True)
            if args.duration and time.monotonic() - started > args.duration:
                break
    finally:
        say("STOPPING", "asking every component to finish its batch and flush...")
        codes = supervisor.stop()
        printer.poll(args.quiet)
        printer.close()
        if world is not None:
            world.stop()
        if broker is not None:
            broker.stop()
        upstate.clear(env)
        restarts = {k: v for k, v in supervisor.restarts.items() if v}
        say(
            "STOPPED",
            f"exit codes: {codes}; restarts: {restarts or 'none'}; transitions seen: {printer.seen}",
        )
    return 0
