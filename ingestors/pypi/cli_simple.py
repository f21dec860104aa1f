"""``qwatch ingest pypi-simple``: root-index membership and per-project Simple pages."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from ingestors.pypi import emit
from ingestors.pypi.cli_common import (
    add_index_and_watch,
    build_client,
    epilog,
    load_watch,
    open_feed,
    positive_float,
    should_stop,
    state_dir,
)
from ingestors.pypi.config import SimpleIngestConfig
from ingestors.pypi.simple_ingest import SimpleIngestor
from ingestors.pypi.state import state_path
from ingestors.pypi.watchfeed import KafkaWatchFeed
from ingestors.pypi.watchset import WatchSet
from qwatch import config as cfgmod
from qwatch.events import ProjectStatusObserved
from qwatch.metrics import Heartbeat
from qwatch.progress import ProgressBar, ProgressSink
from qwatch.runtime import StopFlag, add_common, build_runtime

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Poll PyPI's root /simple/ index (PEP 691 JSON, with ETag) and the /simple/<name>/ pages that need a look.

Emits IndexMembershipObserved (present true/false) for projects that appear in or drop out of the root
index, and ProjectStatusObserved (status active|archived|quarantined|deprecated, or absent on a 404, with
last_serial and versions) whenever a fetched page differs from what was last emitted. Pages are fetched for
projects that disappeared, watched projects whose serial changed, and every watched project on a full
pass (--recheck), because archiving changes no serial. A page whose X-PyPI-Last-Serial is older than one
already seen is stale: it is not believed and is fetched again later.

First run (no saved snapshot): the root index is only the baseline, so no membership events are emitted;
watched projects are still fetched and their status emitted. With --state-dir, consecutive runs (and
--once runs) continue from the saved snapshot, ETags and last emitted statuses.

--once does one full pass (root diff + a conditional fetch of every watched project) and exits 0 when the
pass completed, or 1 when the root snapshot could not be advanced (root unreadable after retries, or the
sink did not acknowledge). Dead-lettered project pages do not change the exit code; they are retried on
the next pass.
"""


def register(sub: Any) -> None:
    """Add ``pypi-simple`` under ``qwatch ingest``."""
    p = sub.add_parser(
        "pypi-simple",
        help="root /simple/ index diff + project status pages",
        description=DESCRIPTION,
        epilog=epilog((SimpleIngestConfig, "PYPI_")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_index_and_watch(p)
    p.add_argument("--once", action="store_true", help="run one full pass and exit (see above for exit codes)")
    p.add_argument(
        "--interval",
        type=positive_float,
        default=None,
        metavar="S",
        help="seconds between root-index polls (default 300)",
    )
    p.add_argument(
        "--recheck",
        type=positive_float,
        default=None,
        metavar="S",
        help="seconds between full rechecks of every watched page (default 3600)",
    )
    add_common(p, sink=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the ingestor and run one pass (``--once``) or the service loop."""
    runtime = build_runtime(args)
    overrides = {
        "index_url": args.index_url,
        "watch_file": args.watch,
        "interval": args.interval,
        "recheck": args.recheck,
    }
    cfg = cfgmod.load(SimpleIngestConfig, runtime.env, "PYPI_", overrides)
    watch = load_watch(cfg.watch_file, runtime.metrics)
    client = build_client(runtime, emit.SIMPLE)
    directory = state_dir(runtime)
    state_file = state_path(directory, "pypi-simple", cfg.index_url) if directory else None
    stop = StopFlag().install()
    sink = runtime.open_sink()
    bar = ProgressBar("pypi-simple sweep", total=len(watch) or None, unit="pages", delay=2.0)  # terminal only
    if bar.enabled:
        sink = ProgressSink(sink, bar, (ProjectStatusObserved,))
    feed: KafkaWatchFeed | None = None
    try:
        feed = open_feed(runtime, watch)
        heartbeat = runtime.heartbeat("pypi-simple loop")
        ingestor = SimpleIngestor(
            cfg,
            client,
            sink,
            runtime.metrics,
            watch,
            state_file,
            sleep=stop.wait,
            should_stop=should_stop(stop, heartbeat),
        )
        if args.once:
            if feed is not None:
                feed.catch_up()
            report = ingestor.run_pass(poll_root=True, recheck_all=True)
            logger.info(
                "pypi-simple: root %s, %d pages fetched, %d observations, %d dead letters, %d stale, %d pending",
                report.root,
                report.fetched,
                report.emitted,
                report.dead_letters,
                report.stale,
                len(report.pending),
            )
            return 0 if report.ok else 1
        if state_file is None:
            logger.warning("pypi-simple: no --state-dir; the root snapshot lives in memory and a restart re-baselines")
        return serve(ingestor, cfg, watch, feed, stop, heartbeat)
    finally:
        if feed is not None:
            feed.close()
        sink.close()
        client.close()


def serve(
    ingestor: SimpleIngestor,
    cfg: SimpleIngestConfig,
    watch: WatchSet,
    feed: KafkaWatchFeed | None,
    stop: StopFlag,
    heartbeat: Heartbeat | None = None,
) -> int:
    """Poll the root every ``interval``, recheck every watched page every ``recheck``, urgent names at once."""
    if feed is not None:
        feed.catch_up()
        watch.take_urgent()  # history: the first pass is a full one anyway
    next_root = next_full = 0.0
    while not stop.is_set:
        if feed is not None:
            feed.poll(0.0)
        now = time.monotonic()
        urgent = watch.take_urgent()
        try:
            if now >= next_root:
                full = now >= next_full
                report = ingestor.run_pass(poll_root=True, recheck_all=full, extra=[*urgent, *watch.take_new()])
                next_root = now + (cfg.interval if report.published else min(cfg.interval, 30.0))
                if heartbeat is not None:
                    heartbeat.ready(report.published, "Kafka did not acknowledge the last pass's events")
                if full and report.published:
                    next_full = now + cfg.recheck
            elif urgent:
                ingestor.run_pass(poll_root=False, recheck_all=False, extra=urgent)
        except Exception:  # noqa: BLE001 - a service outlives one bad pass; the pass rolled back its state
            logger.exception("pypi-simple: pass failed unexpectedly; retrying in 30 s")
            next_root = now + 30.0
        if heartbeat is not None:
            heartbeat.beat(idle=1.0)
        stop.wait(1.0)
    return 0
