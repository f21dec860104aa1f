"""``qwatch broker start|stop|status``: the embedded local Apache Kafka broker."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from qwatch import upstate
from qwatch.broker import KAFKA_VERSION, LocalBroker, default_cache_dir
from qwatch.runtime import default_broker_dir


def register(sub: Any) -> None:
    """Add ``broker`` with its three actions."""
    p = sub.add_parser(
        "broker",
        help="start, stop or inspect the embedded local Apache Kafka broker",
        description=(
            f"Runs a real single-node Apache Kafka {KAFKA_VERSION} broker (KRaft) on 127.0.0.1. The jars are resolved "
            "once from Maven Central into the cache (QWATCH_CACHE_DIR, default ~/.cache/quarantine-watch); "
            "Java 17+ and Maven must be installed. Other qwatch commands find the running broker automatically."
        ),
    )
    p.add_argument(
        "action", choices=("start", "stop", "status", "fetch"), help="what to do (fetch = only resolve the jars)"
    )
    p.add_argument("--dir", type=Path, default=None, help="broker directory (env QWATCH_BROKER_DIR)")
    p.add_argument("--port", type=int, default=0, help="client port for start (default: a free port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Do the action; print version and bootstrap so scripts can capture them."""
    workdir = args.dir or default_broker_dir(os.environ)
    broker = LocalBroker.attach(workdir, default_cache_dir())
    if args.action == "fetch":
        lib = broker.ensure_jars()
        print(f"Apache Kafka {KAFKA_VERSION} jars ready in {lib}")
        return 0
    state = broker.status()
    if args.action == "status":
        if state is None:
            up = upstate.current(os.environ) if args.dir is None else None
            if up is not None:
                print(
                    f"Apache Kafka {KAFKA_VERSION} running at {up['bootstrap']} (started by qwatch up, pid "
                    f"{up['pid']}; run dir {up.get('run_dir')}, logs {up.get('logs')})"
                )
                return 0
            print(f"no broker running in {workdir}")
            return 1
        print(f"Apache Kafka {state['version']} running at {state['bootstrap']} (pid {state['pid']})")
        return 0
    if args.action == "stop":
        if state is None:
            print(f"no broker running in {workdir}")
            return 0
        broker.stop()
        print(f"stopped Apache Kafka at {state['bootstrap']}")
        return 0
    if state is not None:
        print(f"Apache Kafka {state['version']} already running at {state['bootstrap']}")
        return 0
    broker.port = args.port
    t0 = time.monotonic()
    bootstrap = broker.start()
    print(
        f"Apache Kafka {KAFKA_VERSION} ready at {bootstrap} in {time.monotonic() - t0:.1f}s "
        f"(dir {workdir}; stop with 'qwatch broker stop')"
    )
    return 0
