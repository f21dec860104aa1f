"""``qwatch tail``: decode and print any qwatch topic, the SOC analyst's first tool."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from kafka import TopicPartition

from app.render import render
from qwatch.errors import UsageError
from qwatch.events.topics import SHORT_NAMES, TRANSITIONS, resolve
from qwatch.logs import safe
from qwatch.runtime import Runtime, add_common, build_runtime
from qwatch.sinks import Delivery, Source
from qwatch.upstate import fill_bootstrap


def register(sub: Any) -> None:
    """Add ``tail``."""
    p = sub.add_parser(
        "tail",
        help="print events from a qwatch topic (text or JSON), with filters",
        description=(
            "Reads a qwatch topic with read_committed isolation and prints one line per event. "
            f"Topics: {', '.join(SHORT_NAMES)} (short names) or full names. Example: "
            "qwatch tail --topic transitions --kind QUARANTINED --from-beginning"
        ),
    )
    p.add_argument("--topic", default=TRANSITIONS, help="topic to read (default: transitions)")
    p.add_argument("--kind", action="append", default=[], help="only these transition kinds (repeatable)")
    p.add_argument("--package", action="append", default=[], help="only these packages (normalized; repeatable)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest retained event")
    p.add_argument("--max", type=int, default=0, help="exit after printing this many events (0 = no limit)")
    p.add_argument(
        "--idle-exit",
        type=float,
        default=0.0,
        help="exit after this many seconds without a new event (0 = follow forever)",
    )
    add_common(p, sink=False, source=True)
    p.set_defaults(func=run)


def _open(rt: Runtime, topic: str, from_beginning: bool) -> Source:
    if rt.args.source != "kafka":
        return rt.open_source("")
    from qwatch.kafka.io import KafkaSource, make_consumer

    consumer = make_consumer(rt.kafka, None)
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        consumer.close()
        raise UsageError(f"topic {topic} does not exist; create topics with 'qwatch topics create'")
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    if from_beginning:
        consumer.seek_to_beginning(*tps)
    else:
        consumer.seek_to_end(*tps)
    return KafkaSource(consumer, rt.codec)


def _wanted(delivery: Delivery, kinds: set[str], packages: set[str]) -> bool:
    event = delivery.event
    if kinds and getattr(event, "kind", None) not in kinds:
        return False
    return not packages or getattr(event, "package", None) in packages


def run(args: argparse.Namespace) -> int:
    """Follow the topic until --max, --idle-exit or Ctrl-C."""
    fill_bootstrap(args, os.environ)  # a running `qwatch up` is found without flags
    rt = build_runtime(args)
    source = _open(rt, resolve(args.topic), args.from_beginning)
    kinds, packages = {k.upper() for k in args.kind}, set(args.package)
    printed, last = 0, time.monotonic()
    try:
        while True:
            batch = source.poll(0.5)
            if batch:
                last = time.monotonic()
            for d in batch:
                if d.tombstone:
                    continue
                if d.event is None:
                    print(f"# undecodable record at {safe(d.pointer)}: {safe(d.error, 300)}", file=sys.stderr)
                    continue
                if not _wanted(d, kinds, packages):
                    continue
                if args.format == "json":
                    print(json.dumps(rt.codec.to_json_dict(d.event), separators=(",", ":")), flush=True)
                else:
                    print(render(d.event), flush=True)
                printed += 1
                if args.max and printed >= args.max:
                    return 0
            if source.exhausted or (args.idle_exit and time.monotonic() - last > args.idle_exit):
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        source.close()
