"""Wiring shared by the three ``qwatch ingest pypi-*`` commands: HTTP client, watch set, cursors, epilogs."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from ingestors.pypi.watchfeed import KafkaWatchFeed
from ingestors.pypi.watchset import WatchSet, read_watch_file
from qwatch import config as cfgmod
from qwatch.http import HttpConfig, PoliteClient, make_http_client
from qwatch.metrics import Heartbeat, Metrics
from qwatch.runtime import Runtime, StopFlag, UsageError

logger = logging.getLogger(__name__)


def epilog(*configs: tuple[type, str]) -> str:
    """The environment variables of the given config classes, for ``--help``."""
    lines = ["environment (flags win over variables):"]
    for cls, prefix in (*configs, (HttpConfig, "HTTP_")):
        for var, default, text in cfgmod.describe(cls, prefix):
            lines.append(f"  {var:<34} {text}" + (f" (default {default})" if default else ""))
    return "\n".join(lines)


def build_client(runtime: Runtime, source: str) -> PoliteClient:
    """A PoliteClient from ``QWATCH_HTTP_*`` settings, counting into this process's metrics."""
    http_cfg = cfgmod.load(HttpConfig, runtime.env, "HTTP_")
    return PoliteClient(make_http_client(http_cfg), http_cfg, runtime.metrics, source)


def load_watch(path: Path | None, metrics: Metrics) -> WatchSet:
    """The watch set, seeded from ``--watch FILE`` when given."""
    watch = WatchSet(metrics)
    if path is not None:
        try:
            names = read_watch_file(path)
        except OSError as exc:
            raise UsageError(f"--watch {path}: {exc.strerror or exc}") from None
        for name in names:
            watch.add(name, "watch-file")
    return watch


def open_feed(runtime: Runtime, watch: WatchSet) -> KafkaWatchFeed | None:
    """With the Kafka sink, watch requests and OpenSSF reports on Kafka also feed the watch set."""
    if not runtime.sink_is_kafka():
        return None
    return KafkaWatchFeed(runtime.clients, runtime.codec, watch)


def state_dir(runtime: Runtime) -> Path | None:
    """``--state-dir``/``QWATCH_STATE_DIR``, created if given."""
    path = runtime.common.state_dir
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
    return path


def add_index_and_watch(p: argparse.ArgumentParser) -> None:
    """The two flags every PyPI page ingestor shares, spelled and explained once."""
    p.add_argument("--index-url", default=None, help="index URL as pip takes it (default https://pypi.org/simple/)")
    p.add_argument(
        "--watch", type=Path, default=None, metavar="FILE", help="package names to watch, one per line, # comments"
    )


def positive_float(text: str) -> float:
    """argparse type for intervals."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("expected a positive number of seconds")
    return value


def should_stop(stop: StopFlag, heartbeat: Heartbeat) -> Callable[[], bool]:
    """The ``should_stop`` a pass checks between projects; each check is also progress for ``/healthz``, so a
    long sweep that keeps moving is live and one stuck on a single project is not."""

    def check() -> bool:
        heartbeat.beat()
        return stop.is_set

    return check


class _Published(Protocol):
    @property
    def published(self) -> bool: ...


def sweep_forever(
    name: str,
    run_pass: Callable[[Iterable[str] | None], _Published],
    interval: float,
    watch: WatchSet,
    feed: KafkaWatchFeed | None,
    stop: StopFlag,
    heartbeat: Heartbeat | None = None,
) -> int:
    """The service loop of the sweeping ingestors (``pypi-json``, ``pypi-provenance``): a whole sweep every
    ``interval`` (every 30 s at most while Kafka does not acknowledge), urgent names (a watch request) in between.
    An unexpected error in a pass is logged and retried in 30 s: the pass rolled its state back."""
    if feed is not None:
        feed.catch_up()
        watch.take_urgent()  # history: the first sweep covers it
    next_sweep = 0.0
    while not stop.is_set:
        if feed is not None:
            feed.poll(0.0)
        now = time.monotonic()
        urgent = watch.take_urgent()
        try:
            if now >= next_sweep:
                report = run_pass(None)
                next_sweep = now + (interval if report.published else min(interval, 30.0))
                if heartbeat is not None:
                    heartbeat.ready(report.published, "Kafka did not acknowledge the last pass's events")
            elif urgent:
                run_pass(urgent)
        except Exception:  # noqa: BLE001 - a service outlives one bad pass; the pass rolled back its state
            logger.exception("%s: sweep failed unexpectedly; retrying in 30 s", name)
            next_sweep = now + 30.0
        if heartbeat is not None:
            heartbeat.beat(idle=1.0)
        stop.wait(1.0)
    return 0
