"""``qwatch serve``: the composition root of the status API, the feeds, the stream and the analysts' page.

Wires the view (SQLite under ``--state-dir``), the feeder thread (Kafka topics or a JSONL replay) and the Starlette
app on uvicorn. The listening socket is bound here, before uvicorn starts, so the URL printed (also with
``--port 0``) is the one that answers.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from qwatch import config as cfgmod
from qwatch.runtime import StopFlag, add_common, build_runtime
from qwatch.sinks import parse_endpoint
from subscribers.serve.app import Service, build_app
from subscribers.serve.config import P, ServeConfig
from subscribers.serve.feeder import Feeder, JsonlFeed, KafkaFeed
from subscribers.serve.metrics import ServeMetrics
from subscribers.serve.view import View

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add ``serve``."""
    p = sub.add_parser(
        "serve",
        help="serve the status API, takedown feeds, an SSE stream and a web page for analysts",
        description="Keeps a local view (SQLite under --state-dir; rebuilt from the topics when missing) of "
        "qwatch.transitions.v1, qwatch.state.v1 and qwatch.inventory.v1 (or a JSONL replay with --source jsonl:PATH) "
        "and serves it read-only over HTTP: GET /v1/packages/{ecosystem}/{name}, /v1/transitions, /v1/stream "
        "(Server-Sent Events, resumable with Last-Event-ID), /feed.atom, /feed.json, / (HTML), /openapi.json, "
        "/healthz. QWATCH_SERVE_TOKEN turns on bearer-token auth for all but /healthz. Prints the URL when ready.",
        epilog="Settings: " + "; ".join(f"{var} ({help_})" for var, _d, help_ in cfgmod.describe(ServeConfig, P)),
    )
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; env QWATCH_SERVE_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (default 8080, 0 = any free; env QWATCH_SERVE_PORT)")
    add_common(p, sink=False, source=True)
    p.set_defaults(func=run)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio turns on TCP_NODELAY only for sockets whose proto says TCP, and accepted
    # sockets inherit it. With proto 0, Nagle holds the body behind the headers until the client's delayed ACK:
    # 40 ms on every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    """Build the view, start feeding it, serve until SIGINT/SIGTERM."""
    import uvicorn

    env = os.environ
    rt = build_runtime(args, env)
    cfg = cfgmod.load(ServeConfig, env, P, {"host": args.host, "port": args.port})
    metrics = ServeMetrics(rt.metrics.registry)
    scratch = None
    state_dir = rt.common.state_dir
    if state_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="qwatch-serve-")
        state_dir = Path(scratch.name)
        logger.info("serve: no --state-dir; the view lives in %s for this run only", state_dir)
    kind, path = parse_endpoint(args.source, "--source")
    feed: KafkaFeed | JsonlFeed
    if kind == "jsonl":
        where = path if path == "-" else str(Path(path).resolve())
        view = View(state_dir / "serve", f"jsonl {where}", f"jsonl:{path}", rt.codec)
        feed = JsonlFeed(path, rt.codec)
    else:
        topics = " ".join((cfg.transitions_topic, cfg.state_topic, cfg.inventory_topic))
        view = View(state_dir / "serve", f"kafka {rt.kafka.bootstrap} {topics}", cfg.transitions_topic, rt.codec)
        feed = KafkaFeed(rt.clients, cfg, rt.codec, view)
    if view.rebuilt_because:
        logger.info("serve: building the view from the start (%s)", view.rebuilt_because)
    feeder: Feeder | None = None

    def health() -> dict[str, Any]:
        assert feeder is not None
        return {"caught_up": feeder.ready.is_set(), "error": feeder.error, "rebuilt_because": view.rebuilt_because}

    service = Service(cfg, view.reader(), metrics, health)
    feeder = Feeder(view, feed, metrics, cfg.poll_timeout, notify=service.hub.wake_threadsafe)
    sock = _bind(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    feeder.start()
    config = uvicorn.Config(
        build_app(service),
        log_config=None,
        access_log=False,
        lifespan="on",
        http="h11",
        h11_max_incomplete_event_size=16 * 1024,
        limit_concurrency=cfg.max_streams + 200,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, into the handlers it found at start: with these
    # in place a stop is a clean exit 0 (what the supervisor of 'qwatch up' and Kubernetes expect), not a kill.
    StopFlag().install()
    # Everything built so far (modules, the app, Kafka metadata) lives as long as the process: kept out of the
    # cyclic collector's full passes, which otherwise stall every request for their duration (bench/serve.py p99).
    gc.collect()
    gc.freeze()
    print(f"qwatch serve: http://{shown}:{port}/ (view {view.path})", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        feeder.join(10)
        service.reader.close()
        view.close()
        sock.close()
        if scratch is not None:
            scratch.cleanup()
    return 0
