"""``qwatch inventory add|list|remove``: register lockfiles so ``qwatch alerts`` re-checks them on every transition."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from qwatch.errors import UsageError
from qwatch.events.outputs import InventoryRecord
from qwatch.events.topics import INVENTORY
from qwatch.ids import iso_ms, now_ms
from qwatch.logs import safe
from qwatch.runtime import Runtime, add_common, build_runtime
from qwatch.sinks import Sink
from subscribers.inventory.core import build_record, latest, pypi_names, removal, watch_requests
from subscribers.inventory.lockfiles import SUPPORTED, LockfileError, load


def register(sub: Any) -> None:
    """Add ``inventory`` with its three actions."""
    p = sub.add_parser(
        "inventory",
        help="register, list or remove project lockfiles that alerts are matched against",
        description="Registered lockfiles live on the compacted topic qwatch.inventory.v1, keyed by project. "
        "'qwatch alerts' checks a new registration against current state at once and every later transition "
        "against every registration.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="register (or replace) a project's lockfile",
        description=f"Parses the lockfile ({SUPPORTED}), publishes it keyed by project and asks "
        "the PyPI ingestors to watch each PyPI package (WatchRequest, reason 'inventory').",
    )
    add.add_argument("--name", required=True, help="project name (the key; registering again replaces it)")
    add.add_argument("--lock", required=True, type=Path, help="the lockfile")
    add_common(add, sink=True)
    add.set_defaults(func=run_add)
    lst = actions.add_parser(
        "list",
        help="show registered projects",
        description="Reads the compacted qwatch.inventory.v1 to its end and prints every registered project "
        "with its lockfile, format and package counts.",
    )
    lst.add_argument("--format", choices=("text", "json"), default="text", help="output (default text)")
    add_common(lst, sink=False)
    lst.set_defaults(func=run_list)
    rm = actions.add_parser(
        "remove",
        help="unregister a project",
        description="Publishes a removal record for the project on qwatch.inventory.v1; "
        "qwatch alerts stops matching transitions against it.",
    )
    rm.add_argument("--name", required=True, help="project name")
    add_common(rm, sink=True)
    rm.set_defaults(func=run_remove)


def open_sink(rt: Runtime) -> Sink:
    """Kafka with project keys for inventory records, or the ``--sink jsonl:PATH`` file."""
    if not rt.sink_is_kafka():
        return rt.open_sink()
    from qwatch.kafka.io import make_producer
    from subscribers.inventory.keyed_sink import KeyedKafkaSink

    return KeyedKafkaSink(make_producer(rt.kafka), rt.codec)


def run_add(args: argparse.Namespace) -> int:
    """Parse, publish the record and the watch requests, flush."""
    rt = build_runtime(args)
    try:
        inventory = load(args.lock)
        data = args.lock.read_bytes()
    except (LockfileError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    now = now_ms()
    record = build_record(args.name, args.lock.name, inventory, data, now)
    requests = watch_requests(record, now)
    sink = open_sink(rt)
    try:
        sink.emit(record)
        for request in requests:
            sink.emit(request)
        sink.flush(30)
    finally:
        sink.close()
    skipped = len({p.name for p in record.packages if p.source_kind not in ("pypi", "project")})
    print(
        f"registered {safe(args.name)}: {len(record.packages)} packages from {safe(args.lock.name)} "
        f"({record.format}); {len(pypi_names(record))} from PyPI now watched, {skipped} not from PyPI (never "
        "matched against PyPI facts)"
    )
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Publish the removal record."""
    rt = build_runtime(args)
    sink = open_sink(rt)
    try:
        sink.emit(removal(args.name, now_ms()))
        sink.flush(30)
    finally:
        sink.close()
    print(f"removed {safe(args.name)}")
    return 0


def read_all(rt: Runtime, timeout: float = 30.0) -> dict[str, InventoryRecord]:
    """Every registered project, newest record each."""
    from qwatch.kafka.io import read_topic

    return latest(
        d.event for d in read_topic(rt.clients, rt.codec, INVENTORY, timeout) if isinstance(d.event, InventoryRecord)
    )


def run_list(args: argparse.Namespace) -> int:
    """Print registered projects."""
    rt = build_runtime(args)
    records = read_all(rt)
    if args.format == "json":
        doc = [
            {
                "project": r.project,
                "lockfile": r.lockfile,
                "format": r.format,
                "registered_at": iso_ms(r.registered_at),
                "packages": len(r.packages),
                "pypi_packages": len(pypi_names(r)),
                "fingerprint": r.fingerprint,
            }
            for r in sorted(records.values(), key=lambda r: r.project)
        ]
        print(json.dumps(doc, indent=2))
        return 0
    for r in sorted(records.values(), key=lambda r: r.project):
        print(
            f"{safe(r.project):<30} {safe(r.lockfile):<20} {r.format:<16} packages={len(r.packages):<5} "
            f"pypi={len(pypi_names(r)):<5} registered {iso_ms(r.registered_at)}"
        )
    if not records:
        print("no projects registered; add one with: qwatch inventory add --name PROJECT --lock FILE")
    return 0
