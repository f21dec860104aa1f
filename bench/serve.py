#!/usr/bin/env python3
"""``qwatch serve`` under load, on loopback, against a same-run baseline.

For --duration seconds (60 by default): 200 concurrent SSE clients on /v1/stream plus an open-loop 300 requests/s to
/v1/packages/PyPI/<one of N preloaded packages>, while transitions flow into the real Kafka topic (10/s by default,
each stamped detected_at = when it was produced). Reports:
- request latency p50/p99, measured from each request's scheduled start (open loop, so a stall is not hidden);
- SSE delivery delay p50/p99: receive time minus the transition's detected_at (produce → Kafka → feeder → view →
  hub → every client), and how many of the expected deliveries arrived.
Baseline, same run, same load generator: a minimal Starlette app on uvicorn (h11, as qwatch serve runs) that answers
/v1/packages/... with a constant JSON body of the same size and holds the 200 streams open with keep-alives only.

Targets (issue 19): request p99 < 50 ms; SSE delivery p99 < 1 s. Writes bench/out/serve.json.

    .venv/bin/python bench/serve.py                 # the full run (about 2.5 minutes)
    .venv/bin/python bench/serve.py --duration 10   # a smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# --- load generators (each in its own process, so the generator is not what we measure) ---------------------------


# The load generators speak HTTP/1.1 over asyncio streams directly: a client library costs about a millisecond of
# CPU per request, and on 2 shared cores the generator, not the server, would be what this measures.


async def _open(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    """One keep-alive GET; returns the status after reading the whole (Content-Length) body."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _sse_clients(url: str, n: int, stop: Any, ready: Any) -> dict[str, Any]:
    delays: list[float] = []
    per_client = [0] * n
    connected = 0
    base, path = url.split("/v1/", 1)

    async def one(i: int) -> None:
        nonlocal connected
        reader, writer = await _open(base)
        writer.write(f"GET /v1/{path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        connected += 1
        if connected == n:
            ready.set()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    now = time.time()
                    detected = json.loads(line[6:])["detected_at"]
                    at = dt.datetime.strptime(detected, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
                    delays.append(now - at.timestamp())
                    per_client[i] += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    deadline = time.monotonic() + 900  # bounded even if the parent never says stop
    while not stop.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"delays": delays, "per_client": per_client, "connected": connected}


def sse_process(url: str, n: int, stop: Any, ready: Any, out: Any) -> None:
    out.put(asyncio.run(_sse_clients(url, n, stop, ready)))


async def _requests(base: str, paths: list[str], rate: float, seconds: float, conns: int = 48) -> dict[str, Any]:
    """Open loop: request i is due at start + i/rate whatever happened before; latency counts from then."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    rng = random.Random(7)
    due: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()

    async def worker() -> None:
        nonlocal errors
        reader, writer = await _open(base)
        while (job := await due.get()) is not None:
            path, scheduled = job
            try:
                status = await _get(reader, writer, path)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                writer.close()
                reader, writer = await _open(base)
                continue
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(time.perf_counter() - scheduled)
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(conns)]
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait((rng.choice(paths), scheduled))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), 120)
    return {"latencies": latencies, "statuses": statuses, "errors": errors, "sent": total}


def request_process(base: str, paths: list[str], rate: float, seconds: float, out: Any) -> None:
    out.put(asyncio.run(_requests(base, paths, rate, seconds)))


def run_load(
    base: str, paths: list[str], clients: int, rate: float, seconds: float, during: Any = None
) -> dict[str, Any]:
    """200 streams connect first; then the request load (and ``during``, e.g. the transition flow) runs."""
    ctx = mp.get_context("spawn")
    ready, stop, sse_out, req_out = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue()
    sse = ctx.Process(target=sse_process, args=(base + "/v1/stream", clients, stop, ready, sse_out))
    sse.start()
    if not ready.wait(60):
        raise SystemExit(f"only some of {clients} SSE clients connected to {base}")
    req = ctx.Process(target=request_process, args=(base, paths, rate, seconds, req_out))
    req.start()
    flow = threading.Thread(target=during, daemon=True) if during else None
    if flow:
        flow.start()
    requests = req_out.get(timeout=seconds + 120)
    req.join(10)
    if flow:
        flow.join(seconds + 30)
    time.sleep(3)  # the last transitions' deliveries
    stop.set()
    streams = sse_out.get(timeout=120)
    sse.join(10)
    return {"requests": requests, "streams": streams}


# --- the baseline server ----------------------------------------------------------------------------------------


def baseline_server(port_file: str, body_bytes: int) -> None:
    """A minimal Starlette app on uvicorn: a constant JSON body, and streams that only send keep-alives."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    body = {"padding": "x" * max(0, body_bytes - 20)}

    async def package(request: Any) -> JSONResponse:
        return JSONResponse(body)

    async def stream(request: Any) -> StreamingResponse:
        async def gen() -> Any:
            yield "retry: 2000\n\n"
            while True:
                await asyncio.sleep(15)
                yield ": keepalive\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/packages/{eco}/{name}", package), Route("/v1/stream", stream)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as qwatch serve binds (NODELAY)
    sock.bind(("127.0.0.1", 0))
    Path(port_file).write_text(str(sock.getsockname()[1]))
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, http="h11")).run(sockets=[sock])


# --- orchestration -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--rate", type=float, default=300.0, help="requests per second to /v1/packages/...")
    p.add_argument("--flow", type=float, default=10.0, help="transitions per second produced during the run")
    p.add_argument("--packages", type=int, default=2000, help="packages preloaded into the view")
    p.add_argument("--out", type=Path, default=OUT / "serve.json")
    p.add_argument("--baseline-server", help=argparse.SUPPRESS)
    p.add_argument("--body-bytes", type=int, default=1500, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.baseline_server:
        baseline_server(args.baseline_server, args.body_bytes)
        return 0

    from processors.core import step
    from qwatch import events
    from qwatch.broker import LocalBroker
    from qwatch.config import KafkaConfig
    from qwatch.events.codec import Codec
    from qwatch.events.topics import STATE, TRANSITIONS
    from qwatch.kafka.io import KafkaSink, create_topics, make_admin, make_producer
    from testing import samples

    work = Path(tempfile.mkdtemp(prefix="qwatch-bench-serve-"))
    broker = LocalBroker(work / "kafka")
    t0 = time.monotonic()
    broker.start()
    print(f"broker ready in {time.monotonic() - t0:.1f}s", flush=True)
    procs: list[subprocess.Popen[str]] = []
    try:
        cfg = KafkaConfig(bootstrap=broker.bootstrap)
        admin = make_admin(cfg)
        create_topics(admin)
        admin.close()
        sink = KafkaSink(make_producer(cfg), Codec())
        names = [f"bench-pkg-{i}" for i in range(args.packages)]
        for i, name in enumerate(names):
            state = step(None, samples.page(name, "active", 10 * i + 1, samples.T0), samples.T0).state
            result = step(state, samples.journal(name, 10 * i + 2, "project quarantined"), samples.T0 + 1000)
            for t in result.transitions:
                sink.emit(t, TRANSITIONS)
            if result.state is not None:
                sink.emit(result.state, STATE)
        sink.flush(60)
        paths = [f"/v1/packages/PyPI/{n}" for n in names]

        env = {**os.environ, "QWATCH_SERVE_RATE_LIMIT": "0", "QWATCH_SERVE_MAX_STREAMS": "2000"}
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "serve",
                "--port",
                "0",
                "--bootstrap",
                broker.bootstrap,
                "--state-dir",
                str(work / "serve"),
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs.append(serve)
        assert serve.stdout is not None
        url = serve.stdout.readline().split()[2].rstrip("/")
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                h = httpx.get(url + "/healthz?ready=1", timeout=5)
                if h.status_code == 200 and h.json()["view"]["transitions"] >= args.packages:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("qwatch serve did not get ready")
            time.sleep(0.2)
        body_bytes = len(httpx.get(url + paths[0], timeout=5).content)

        port_file = work / "baseline.port"
        base = subprocess.Popen(
            [sys.executable, __file__, "--baseline-server", str(port_file), "--body-bytes", str(body_bytes)],
            cwd=ROOT,
            text=True,
        )
        procs.append(base)
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.1)
        base_url = f"http://127.0.0.1:{port_file.read_text()}"
        time.sleep(1)

        print(f"baseline: {args.clients} streams + {args.rate:.0f} req/s for {args.duration:.0f}s", flush=True)
        baseline = run_load(base_url, paths, args.clients, args.rate, args.duration)

        produced: list[str] = []

        def flow() -> None:
            live = KafkaSink(make_producer(cfg, linger_ms=0), Codec())
            total = int(args.flow * args.duration)
            start = time.perf_counter()
            for i in range(total):
                delay = start + i / args.flow - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                name = f"live-{i}"
                state = step(None, samples.page(name, "active", 10_000_000 + 2 * i, samples.T0), samples.T0).state
                result = step(state, samples.journal(name, 10_000_001 + 2 * i, "project quarantined"), samples.T0)
                for t in result.transitions:
                    now = int(time.time() * 1000)
                    fresh = events.Transition(**{**{f: getattr(t, f) for f in t.__slots__}, "detected_at": now})
                    live.emit(fresh, TRANSITIONS)
                    produced.append(fresh.event_id)
                live.flush(30)
            live.close()

        print(
            f"qwatch serve: {args.clients} streams + {args.rate:.0f} req/s + {args.flow:.0f} transitions/s "
            f"for {args.duration:.0f}s",
            flush=True,
        )
        measured = run_load(url, paths, args.clients, args.rate, args.duration, during=flow)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        broker.stop()

    def summary(run: dict[str, Any]) -> dict[str, Any]:
        req = run["requests"]
        lat = req["latencies"]
        return {
            "sent": req["sent"],
            "ok": req["statuses"].get(200, 0),
            "statuses": {str(k): v for k, v in req["statuses"].items()},
            "errors": req["errors"],
            "p50_ms": round(1000 * (pct(lat, 0.50) or 0), 2),
            "p99_ms": round(1000 * (pct(lat, 0.99) or 0), 2),
            "max_ms": round(1000 * max(lat, default=0), 2),
            "achieved_rps": round(len(lat) / args.duration, 1),
        }

    streams = measured["streams"]
    expected = len(produced) * args.clients
    result = {
        "duration_s": args.duration,
        "clients": args.clients,
        "rate_rps": args.rate,
        "flow_per_s": args.flow,
        "packages": args.packages,
        "requests": summary(measured),
        "baseline_requests": summary(baseline),
        "sse": {
            "connected": streams["connected"],
            "transitions_produced": len(produced),
            "deliveries_expected": expected,
            "deliveries": len(streams["delays"]),
            "clients_complete": sum(1 for c in streams["per_client"] if c == len(produced)),
            "p50_s": round(pct(streams["delays"], 0.50) or 0, 3),
            "p99_s": round(pct(streams["delays"], 0.99) or 0, 3),
            "max_s": round(max(streams["delays"], default=0), 3),
        },
        "targets": {"request_p99_ms": 50, "sse_p99_s": 1.0},
    }
    result["met"] = {
        "request_p99": result["requests"]["p99_ms"] < 50,
        "sse_p99": result["sse"]["p99_s"] < 1.0 and result["sse"]["deliveries"] == expected,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    r, b, s = result["requests"], result["baseline_requests"], result["sse"]
    print(
        f"requests  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  ({r['ok']}/{r['sent']} ok)   "
        f"baseline p50 {b['p50_ms']} ms  p99 {b['p99_ms']} ms  ({b['ok']}/{b['sent']} ok)"
    )
    print(
        f"sse       p50 {s['p50_s']} s  p99 {s['p99_s']} s  deliveries {s['deliveries']}/{expected} "
        f"({s['clients_complete']}/{args.clients} clients got every transition)"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
