"""``python -m testing.fakepypi``: run the fake index from a shell (demos, manual poking, benchmarks).

The first line printed is the base URL, so a wrapper script can read it and point a poller at it.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

from .fake import FakePyPI
from .timeline import DEMO_TIMELINE, install_demo


def build_parser() -> argparse.ArgumentParser:
    """The CLI's options (kept separate so ``--help`` can be tested)."""
    parser = argparse.ArgumentParser(
        prog="python -m testing.fakepypi",
        description=(
            "Serve a fake PyPI (Simple HTML/JSON, JSON API, XML-RPC) on localhost. Prints the base URL "
            "(index: <url>/simple/, XML-RPC: <url>/pypi) and serves until Ctrl-C."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default: 0)")
    parser.add_argument("--start-serial", type=int, default=1000, help="serial before the first journal row")
    parser.add_argument("--demo", action="store_true", help="create the demo projects (Demo, evil-pkg, ...)")
    parser.add_argument(
        "--demo-timeline",
        action="store_true",
        help="create the demo projects and play the demo timeline (yank, quarantine, archive, removal, ...)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="timeline speed factor (2 = twice as fast)")
    parser.add_argument("--generate", type=int, default=0, metavar="N", help="add N synthetic projects pkg-<i>")
    parser.add_argument(
        "--xmlrpc-rate-limit", type=int, default=None, metavar="N", help="XML-RPC calls per hour per client"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, build the index, serve until interrupted."""
    args = build_parser().parse_args(argv)
    pypi = FakePyPI(args.start_serial, xmlrpc_rate_limit=args.xmlrpc_rate_limit, host=args.host)
    if args.demo or args.demo_timeline:
        install_demo(pypi)
    if args.generate:
        pypi.generate(args.generate)
    url = pypi.start(args.port)
    print(url, flush=True)
    if args.demo_timeline:
        pypi.run_timeline(DEMO_TIMELINE, speed=args.speed)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        pypi.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
