"""``qwatch ingest pypi-journal``: PyPI's journal (XML-RPC ``changelog_since_serial``), one event per row."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ingestors.pypi import emit
from ingestors.pypi.cli_common import build_client, epilog, positive_float
from ingestors.pypi.config import JournalIngestConfig
from ingestors.pypi.journal_ingest import JournalIngestor
from qwatch import config as cfgmod
from qwatch.cursors import CursorStore, MemoryCursorStore
from qwatch.events import JournalEntryObserved
from qwatch.progress import ProgressBar, ProgressSink
from qwatch.retry import backoff_delay
from qwatch.runtime import Runtime, StopFlag, add_common, build_runtime

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Tail PyPI's journal through XML-RPC changelog_since_serial and emit one JournalEntryObserved per row
(action verbatim, version, serial, timestamp in ms, package normalized, name verbatim). The journal is the
only timestamped record of 'project quarantined', 'project quarantine cleared', 'release quarantined' and
'remove project'.

Cursor: the last serial read, saved only after the events were acknowledged (in --state-dir with a JSONL
sink, on the qwatch.cursors.v1 topic with the Kafka sink). With no saved cursor and no --since-serial the
ingestor starts at changelog_last_serial(): it does NOT replay history, it reads what happens from now on.
A saved cursor always wins over --since-serial (remove the cursor to rewind).

PyPI limits XML-RPC per IP: the default poll interval of 5 s is 720 calls/h, and fault -32500 ("Limit may
reset in N seconds") makes the ingestor wait N seconds. --once reads until caught up and exits 0, or 1 when
the cursor could not be advanced (HTTP error, fault, unreadable response: dead-lettered; or events not
acknowledged).
"""


def register(sub: Any) -> None:
    """Add ``pypi-journal`` under ``qwatch ingest``."""
    p = sub.add_parser(
        "pypi-journal",
        help="PyPI journal rows via XML-RPC (quarantine, clearance, removal)",
        description=DESCRIPTION,
        epilog=epilog((JournalIngestConfig, "PYPI_JOURNAL_")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--xmlrpc-url", default=None, help="XML-RPC endpoint (default https://pypi.org/pypi)")
    p.add_argument(
        "--since-serial",
        type=int,
        default=None,
        metavar="N",
        help="start after serial N when no cursor is saved (default: the current last serial)",
    )
    p.add_argument("--once", action="store_true", help="read until caught up and exit (see above for exit codes)")
    p.add_argument(
        "--interval", type=positive_float, default=None, metavar="S", help="seconds between polls (default 5)"
    )
    add_common(p, sink=True)
    p.set_defaults(func=run)


def cursor_store(runtime: Runtime) -> CursorStore:
    """Kafka or file cursors as the platform decides; in memory for a JSONL sink without --state-dir."""
    if runtime.common.state_dir is None and not runtime.sink_is_kafka():
        return MemoryCursorStore()
    return runtime.cursor_store()


def run(args: argparse.Namespace) -> int:
    """Build the ingestor and poll once (``--once``) or forever."""
    runtime = build_runtime(args)
    overrides = {"xmlrpc_url": args.xmlrpc_url, "since_serial": args.since_serial, "interval": args.interval}
    cfg = cfgmod.load(JournalIngestConfig, runtime.env, "PYPI_JOURNAL_", overrides)
    client = build_client(runtime, emit.JOURNAL)
    cursors = cursor_store(runtime)
    stop = StopFlag().install()
    sink = runtime.open_sink()
    bar = ProgressBar("pypi-journal backfill", unit="rows", delay=2.0)  # drawn only on a terminal, after 2 s
    if bar.enabled:
        sink = ProgressSink(sink, bar, (JournalEntryObserved,), lambda e: f"rows, at serial {e.serial:,}")
    try:
        heartbeat = runtime.heartbeat("pypi-journal poll loop")
        ingestor = JournalIngestor(cfg, client, sink, runtime.metrics, cursors, sleep=stop.wait, heartbeat=heartbeat)
        if args.once:
            report = ingestor.poll()
            logger.info(
                "pypi-journal: serial %s → %s, %d rows, %d dead letters%s",
                report.start,
                report.cursor,
                report.rows,
                report.dead_letters,
                f", failed: {report.failure}" if report.failure else "",
            )
            return 0 if report.ok else 1
        failures = 0
        while not stop.is_set:
            hint = 0.0
            try:
                report = ingestor.poll()
                bar.restart()
                ok, hint = report.ok, report.wait_hint or 0.0
                # Ready once Kafka took what it was given: an upstream failure is the source's (qwatch_source_up),
                # not a reason to take this pod out of service.
                heartbeat.ready(report.failure != "publish", "Kafka did not acknowledge the last poll's events")
            except Exception:  # noqa: BLE001 - a service outlives one bad poll; the cursor did not move
                logger.exception("pypi-journal: poll failed unexpectedly")
                runtime.metrics.source_failed(emit.JOURNAL)
                ok = False
            failures = 0 if ok else failures + 1
            wait = max(cfg.interval if ok else backoff_delay(failures + 1, cfg.interval, 300.0), hint)
            heartbeat.beat(idle=wait)
            stop.wait(wait)
        return 0
    finally:
        sink.close()
        client.close()
