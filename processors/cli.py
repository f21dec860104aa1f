"""``qwatch process``: observations in, transitions out, exactly once with Kafka on both ends."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from processors.config import PREFIX, ProcessorConfig
from processors.runner import BatchRunner
from processors.service import ProcessorService
from processors.store import FileStateStore, StateFileError
from processors.tuning import tune_gc
from qwatch import config as cfgmod
from qwatch import ids
from qwatch.events.topics import OBSERVATIONS
from qwatch.runtime import Runtime, StopFlag, UsageError, add_common, build_runtime
from qwatch.sinks import Sink, parse_endpoint

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Keeps one state machine per package and turns observations (qwatch.observations.v1) into transitions
(qwatch.transitions.v1): QUARANTINED, CLEARED, REMOVED, RESTORED, ARCHIVED, UNARCHIVED, RELEASE_QUARANTINED,
RELEASE_CLEARED, RELEASE_REMOVED, YANKED, REPORTED, REPORT_UPDATED, REPORT_WITHDRAWN. The same real change
yields one transition whichever source reports it first; a replay emits nothing new.

With Kafka on both ends (the default) it runs as a consumer group: each batch's transitions, watch requests
(qwatch.watch.v1), dead letters, state (compacted qwatch.state.v1) and input offsets are committed in one Kafka
transaction. Scale out with more replicas sharing --group-id, each with its own stable --instance-id.

With JSONL it runs the same core without Kafka, for replays and audits; state then lives in --state-dir:
  qwatch ingest pypi-journal --sink jsonl:obs.jsonl ...
  qwatch process --source jsonl:obs.jsonl --sink jsonl:transitions.jsonl --state-dir ./state
"""


def _epilog() -> str:
    rows = cfgmod.describe(ProcessorConfig, PREFIX)
    width = max(len(r[0]) for r in rows)
    lines = [f"  {var.ljust(width)}  {help_} (default {default})" for var, default, help_ in rows]
    return "settings (environment):\n" + "\n".join(lines)


def register(sub: Any) -> None:
    """Add ``process``."""
    p = sub.add_parser(
        "process",
        help="turn observations into transitions, exactly once",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(p, sink=True, source=True)
    p.add_argument(
        "--side-sink",
        default=None,
        metavar="kafka|jsonl:PATH|none",
        help="where watch requests and dead letters go in non-transactional runs "
        "(default: kafka with a kafka --sink, none with a jsonl --sink)",
    )
    p.add_argument("--group-id", default=None, help="consumer group (env QWATCH_PROCESSOR_GROUP_ID)")
    p.add_argument(
        "--authority",
        choices=("journal", "pages"),
        default=None,
        help="who decides what PyPI journals: journal (default; run `ingest pypi-journal`) or pages (no journal "
        "ingestor: status changes are inferred from Simple pages) (env QWATCH_PROCESSOR_AUTHORITY)",
    )
    p.add_argument("--instance-id", default=None, help="stable replica id (env QWATCH_PROCESSOR_INSTANCE_ID)")
    p.add_argument("--once", action="store_true", help="exit once caught up with the input (JSONL: at its end)")
    p.add_argument(
        "--idle-exit", type=float, default=0.0, help="exit after this many seconds without input (0 = never)"
    )
    p.set_defaults(func=run)


def _side_sink(rt: Runtime, spec: str | None, sink_kind: str) -> Sink | None:
    spec = spec or ("kafka" if sink_kind == "kafka" else "none")
    if spec == "none":
        return None
    return rt.open_sink(spec)


def run(args: argparse.Namespace) -> int:
    """Run the transactional service (Kafka → Kafka) or the batch runner (anything with JSONL)."""
    rt = build_runtime(args)
    tune_gc()
    cfg = cfgmod.load(
        ProcessorConfig,
        rt.env,
        PREFIX,
        {"group_id": args.group_id, "instance_id": args.instance_id, "authority": args.authority},
    )
    stop = StopFlag().install()
    source_kind = parse_endpoint(args.source, "--source")[0]
    sink_kind = parse_endpoint(args.sink, "--sink")[0]
    if source_kind == "kafka" and sink_kind == "kafka":
        if rt.common.state_dir is not None:
            logger.info("--state-dir ignored: with Kafka on both ends state lives on qwatch.state.v1")
        service = ProcessorService(
            cfg, rt.clients, rt.codec, rt.metrics, stop=stop, heartbeat=rt.heartbeat("processor loop")
        )
        processed = service.run(once=args.once, idle_exit=args.idle_exit)
        logger.info("processed %d observations, emitted %d transitions", processed, service.transitions)
        return 0
    try:
        store = FileStateStore(rt.require_state_dir(), rt.codec) if rt.common.state_dir is not None else None
        source = rt.open_source(cfg.group_id, OBSERVATIONS)
        sink = rt.open_sink()
        side = _side_sink(rt, args.side_sink, sink_kind)
        runner = BatchRunner(source, sink, side, store, rt.metrics, ids.now_ms, stop, cfg.authority)
    except StateFileError as exc:
        raise UsageError(str(exc)) from exc
    try:
        stats = runner.run(idle_exit=args.idle_exit, stop_when_idle=args.once)
    finally:
        source.close()
        sink.close()
        if side is not None:
            side.close()
    logger.info(
        "processed %d observations: %d transitions, %d watch requests, %d dead letters",
        stats.observations,
        stats.transitions,
        stats.watch_requests,
        stats.deadletters,
    )
    return 0
