"""``qwatch ingest pypi-json``: releases of watched projects from the JSON API, 404s settled by the Simple page."""

from __future__ import annotations

import argparse
import logging
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
    sweep_forever,
)
from ingestors.pypi.config import JsonIngestConfig
from ingestors.pypi.json_ingest import JsonIngestor
from ingestors.pypi.state import state_path
from ingestors.pypi.watchfeed import KafkaWatchFeed
from qwatch import config as cfgmod
from qwatch.runtime import StopFlag, add_common, build_runtime

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Read /pypi/<name>/json (on the host of --index-url) for every watched project and emit ReleasesObserved
(releases with their earliest upload time and yank state, http_status, last_serial) whenever they differ
from what was last emitted. A JSON-API 404 is ambiguous (quarantined, removed, or every release
quarantined): the ingestor then emits ReleasesObserved with http_status 404 AND fetches /simple/<name>/ to
emit the ProjectStatusObserved (source pypi-json) that tells which. Responses older than a serial already
seen are stale and re-fetched later; unreadable ones are dead-lettered.

With --state-dir, consecutive runs remember ETags and what was emitted (an unchanged project costs a 304
and emits nothing). --once does one sweep and exits 0 when it completed, 1 when the sink did not
acknowledge the events.
"""


def register(sub: Any) -> None:
    """Add ``pypi-json`` under ``qwatch ingest``."""
    p = sub.add_parser(
        "pypi-json",
        help="JSON API releases of watched projects",
        description=DESCRIPTION,
        epilog=epilog((JsonIngestConfig, "PYPI_JSON_")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_index_and_watch(p)
    p.add_argument("--once", action="store_true", help="run one sweep and exit")
    p.add_argument(
        "--interval",
        type=positive_float,
        default=None,
        metavar="S",
        help="seconds between sweeps (default 900, the JSON API's cache lifetime)",
    )
    add_common(p, sink=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the ingestor and run one sweep (``--once``) or the service loop."""
    runtime = build_runtime(args)
    overrides = {"index_url": args.index_url, "watch_file": args.watch, "interval": args.interval}
    cfg = cfgmod.load(JsonIngestConfig, runtime.env, "PYPI_JSON_", overrides)
    watch = load_watch(cfg.watch_file, runtime.metrics)
    client = build_client(runtime, emit.JSON)
    directory = state_dir(runtime)
    state_file = state_path(directory, "pypi-json", cfg.index_url) if directory else None
    stop = StopFlag().install()
    sink = runtime.open_sink()
    feed: KafkaWatchFeed | None = None
    try:
        feed = open_feed(runtime, watch)
        heartbeat = runtime.heartbeat("pypi-json loop")
        ingestor = JsonIngestor(
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
            report = ingestor.run_pass()
            logger.info(
                "pypi-json: %d projects fetched, %d observations, %d dead letters, %d stale, %d pending",
                report.fetched,
                report.emitted,
                report.dead_letters,
                report.stale,
                len(report.pending),
            )
            return 0 if report.ok else 1
        return sweep_forever("pypi-json", ingestor.run_pass, cfg.interval, watch, feed, stop, heartbeat)
    finally:
        if feed is not None:
            feed.close()
        sink.close()
        client.close()
