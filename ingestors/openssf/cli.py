"""``qwatch ingest openssf``: wires config, git, the report index, the sink and the cursor store together."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sqlite3
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ingestors.openssf.config import DEFAULT_REPO, PREFIX, OpenSSFConfig
from ingestors.openssf.index import ReportIndex
from ingestors.openssf.service import OpenSSFService, Progress
from qwatch import config as cfgmod
from qwatch.broker import default_cache_dir
from qwatch.cursors import CursorStore, FileCursorStore, MemoryCursorStore
from qwatch.logs import safe
from qwatch.openssf.gitsource import GitSource, GitSourceError
from qwatch.runtime import Runtime, StopFlag, add_common, build_runtime
from qwatch.sinks import PublishError

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Follows the OpenSSF malicious-packages repository (OSV files in git) and emits one ReportObserved event per
report-id change and affected package: added, modified, withdrawn, reinstated, deleted or moved (the report now
names another package; told to the package it left). Reports are paired by id, not by path, so the "Assign IDs"
rename of a pending MAL-0000 file is one 'added'; an edit of a withdrawn report stays 'withdrawn'; pending files
are counted, never emitted; malformed files become DeadLetter events. Reads the object database only (no
checkout): a URL is mirrored bare into --workdir and fetched each poll, a local path is read in place.

First run without a cursor: a snapshot of every report at head ('existing', a baseline rather than news, or
'withdrawn' for withdrawn ones).
Then each poll diffs cursor..head; the cursor (the commit sha) moves only after the sink acknowledged
every event. If the cursor is no longer an ancestor of head (force-push), head is compared with the last
known report state, so downstream sees only the net difference.

examples:
  qwatch ingest openssf --repo ./malicious-packages --since 757d548 --once --sink jsonl:-
  qwatch ingest openssf --sink kafka --interval 300
"""


def _epilog() -> str:
    rows = cfgmod.describe(OpenSSFConfig, PREFIX)
    return "environment:\n" + "\n".join(
        f"  {var:<30} {help_} (default {default or '-'})" for var, default, help_ in rows
    )


def register(sub: Any) -> None:
    """Add ``openssf`` under ``qwatch ingest``."""
    p = sub.add_parser(
        "openssf",
        help="follow ossf/malicious-packages and emit report changes",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--repo",
        default=None,
        metavar="PATH_OR_URL",
        help=f"git URL to mirror or local repository to read (default {DEFAULT_REPO})",
    )
    p.add_argument("--branch", default=None, help="branch to follow (default main)")
    p.add_argument(
        "--since",
        default=None,
        metavar="SHA",
        help="start from this commit (its changes are not emitted), overriding a stored cursor",
    )
    p.add_argument("--once", action="store_true", help="poll once and exit; non-zero exit if the poll failed")
    p.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between polls in service mode (default 300)",
    )
    p.add_argument(
        "--per-commit",
        action="store_true",
        default=None,
        help="step commit by commit along first-parent history (default: one range diff)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the bare mirror lives (default <cache>/openssf; QWATCH_CACHE_DIR moves <cache>)",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="show snapshot progress on stderr even when it is not a terminal",
    )
    add_common(p, sink=True)
    p.set_defaults(func=run)


def component_name(repo: str, branch: str) -> str:
    """The cursor key: one cursor per repository and branch (local paths made absolute)."""
    path = Path(repo).expanduser()
    spec = str(path.resolve()) if path.is_dir() else repo
    return f"openssf:{spec}#{branch}"


def _stores(rt: Runtime, workdir: Path, component: str, stack: ExitStack) -> tuple[CursorStore, Path]:
    """Kafka sink: cursors on Kafka; JSONL: in --state-dir, or in memory (with a temporary index) without one."""
    state_dir = rt.common.state_dir
    index_name = f"openssf-index-{hashlib.sha256(component.encode()).hexdigest()[:16]}.sqlite"
    if rt.sink_is_kafka():
        return rt.cursor_store(), (state_dir or workdir) / index_name
    if state_dir is not None:
        return FileCursorStore(rt.require_state_dir()), state_dir / index_name
    logger.info("no --state-dir: the cursor lives only as long as this process (the next run starts over)")
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qwatch-openssf-")))
    return MemoryCursorStore(), tmp / index_name


def _open_source(cfg: OpenSSFConfig, workdir: Path, rt: Runtime, stop: StopFlag, once: bool) -> GitSource:
    """Open (or first clone) the repository; a service keeps trying, as it would for a failing fetch."""
    while True:
        try:
            return GitSource.open(
                cfg.repo, cfg.branch, workdir, rt.metrics, cfg.fetch_retries, cfg.fetch_backoff, stop.wait
            )
        except GitSourceError as exc:
            if once or stop.is_set:
                raise
            logger.error("cannot open %s yet, retrying in %.0fs: %s", safe(cfg.repo), min(cfg.interval, 60.0), exc)
            stop.wait(min(cfg.interval, 60.0))


def run(args: argparse.Namespace) -> int:
    """Build the service and poll (once, or until SIGTERM)."""
    rt = build_runtime(args)
    overrides = {
        "repo": args.repo,
        "branch": args.branch,
        "interval": args.interval,
        "per_commit": args.per_commit,
        "workdir": args.workdir,
        "progress": args.progress,
    }
    cfg = cfgmod.load(OpenSSFConfig, rt.env, PREFIX, overrides)
    workdir = cfg.workdir or default_cache_dir(dict(rt.env)) / "openssf"
    component = component_name(cfg.repo, cfg.branch)
    stop = StopFlag().install()
    try:
        with ExitStack() as stack:
            cursors, index_path = _stores(rt, workdir, component, stack)
            source = _open_source(cfg, workdir, rt, stop, args.once)
            stack.callback(source.close)
            index = ReportIndex(index_path)
            stack.callback(index.close)
            sink = rt.open_sink()
            stack.callback(sink.close)
            progress = Progress(cfg.progress or sys.stderr.isatty())
            service = OpenSSFService(
                cfg,
                source,
                index,
                sink,
                cursors,
                rt.metrics,
                component,
                since=args.since,
                progress=progress,
                stop=stop,
                heartbeat=rt.heartbeat("openssf poll loop"),
            )
            return service.run(once=args.once)
    except (PublishError, OSError, GitSourceError, sqlite3.Error) as exc:
        print(f"qwatch ingest openssf: error: {exc} (the cursor was not moved)", file=sys.stderr)
        return 1
