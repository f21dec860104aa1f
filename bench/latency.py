"""Detection latency, end to end, under steady load and under a quarantine burst.

The real pipeline, each component its own ``qwatch`` process as ``qwatch up`` runs them, on a real local broker:

    local PyPI journal (testing.fakepypi, real HTTP)  --XML-RPC, polled every 5 s-->  qwatch ingest pypi-journal
      --> qwatch.observations.v1 --> qwatch process --> qwatch.transitions.v1 --> qwatch alerts --> webhook receiver

plus ``qwatch inventory add`` for a registered lockfile. Two phases:
  * **steady**: 20,000 journal serials per day (PyPI's order of magnitude), accelerated ``--accel`` times (100 by
    default: about 23 rows a second). Most rows are routine (``add file``, ``new release``); one in
    ``QUARANTINE_EVERY`` is a ``project quarantined`` of a fresh project, every fourth of those in the inventory.
  * **burst**: 500 ``project quarantined`` rows written at once (inside the fake's lock, so they land in one
    changelog page), ``--burst-inventory`` of them in the registered inventory, as when PyPI quarantines an account;
    ``--bursts`` of them (5), pooled. One burst is one phase of the poll cycle only, and a few random phases can
    all fall just after a poll (an earlier run's three did: p50 4.8 s), so burst ``i`` of ``n`` is written at
    ``(i + 0.5) / n`` of the interval after the poll before it: the phases cover the cycle evenly, and the phase
    each burst really got is reported (``phases_s``).

For each quarantine it records when the row was written (exact), the row's journal ``upstream_time`` (whole seconds,
as PyPI's journal has them), when a ``read_committed`` consumer of the transitions topic saw the QUARANTINED
transition, and when the webhook receiver got the alert. Latencies are reported from ``upstream_time`` (the
issue's definition; it is floored to the second, so it can read up to 1 s high) and from the exact write time.

It also records when the local PyPI answered the changelog call that first returned each row (``fetched``): the
poll that fetched it. ``fetch_to_transition`` and ``fetch_to_webhook`` are then the pipeline's own latency beyond
the poll (ingest, Kafka, processor, alerts), the part our code controls; ``write_to_fetch`` is the wait for the
poll.

The baseline, in the same run: the journal ingestor's own poll interval (5 s). A row written at a uniformly random
moment waits interval/2 = 2.5 s on average for the next poll, and its ``upstream_time`` is floored to the second,
so journal -> transition p50 <= 2 s cannot be met at a 5 s interval however fast the rest is; the figures beyond
the poll say how much the rest adds. The targets are the issue's absolute ones.

Usage: python bench/latency.py [--steady-seconds 60] [--accel 100] [--burst 500] [--burst-inventory 25]
Writes bench/out/latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qwatch import events  # noqa: E402
from qwatch.broker import LocalBroker  # noqa: E402
from qwatch.config import KafkaConfig  # noqa: E402
from qwatch.events.codec import Codec  # noqa: E402
from qwatch.events.topics import TRANSITIONS  # noqa: E402
from qwatch.kafka.io import create_topics, make_admin, make_consumer  # noqa: E402
from testing.fakepypi import FakePyPI  # noqa: E402

OUT = ROOT / "bench" / "out" / "latency.json"
SERIALS_PER_DAY = 20_000
QUARANTINE_EVERY = 40
POLL_INTERVAL = 5.0
TARGETS = {"burst_p99_transition_s": 10.0, "burst_p99_webhook_s": 15.0, "p50_s": 2.0}


@dataclass
class Quarantine:
    """One ``project quarantined`` row and when each stage saw it (epoch seconds)."""

    package: str
    written: float
    upstream: float | None = None
    fetched: float | None = None
    """When the local PyPI answered the changelog call that first returned the row (the poll that fetched it)."""
    transition: float | None = None
    detected: float | None = None
    webhook: float | None = None
    inventory: bool = False


@dataclass
class Tracker:
    """Every quarantine of the run by normalized name; the consumer and the receiver fill in their times."""

    rows: dict[str, Quarantine] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    unexpected_webhooks: int = 0
    last_poll: float | None = None
    """When the local PyPI last answered a changelog call (the ingestor's latest poll)."""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None when there is nothing to rank."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summarize(rows: list[Quarantine]) -> dict[str, Any]:
    """p50/p99/max of each latency over ``rows`` (those that arrived), and how many never did."""
    out: dict[str, Any] = {"rows": len(rows)}
    for name, start, end, only_inventory in (
        ("journal_to_transition", "upstream", "transition", False),
        ("write_to_transition", "written", "transition", False),
        ("journal_to_detected_at", "upstream", "detected", False),
        ("journal_to_webhook", "upstream", "webhook", True),
        ("write_to_webhook", "written", "webhook", True),
        ("write_to_fetch", "written", "fetched", False),
        ("fetch_to_transition", "fetched", "transition", False),
        ("fetch_to_webhook", "fetched", "webhook", True),
    ):
        chosen = [r for r in rows if r.inventory or not only_inventory]
        values = [
            getattr(r, end) - getattr(r, start)
            for r in chosen
            if getattr(r, end) is not None and getattr(r, start) is not None
        ]
        out[name] = {
            "count": len(values),
            "missing": len(chosen) - len(values),
            "p50_s": _round(percentile(values, 50)),
            "p99_s": _round(percentile(values, 99)),
            "max_s": _round(max(values) if values else None),
            "mean_s": _round(statistics.fmean(values) if values else None),
        }
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- the observers ----------------------------------------------------------------------------------------------
def follow_transitions(cfg: KafkaConfig, tracker: Tracker, stop: threading.Event) -> None:
    """Record when each QUARANTINED transition becomes visible to a read_committed consumer."""
    codec = Codec()
    consumer = make_consumer(cfg, None, TRANSITIONS)
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                now = time.time()
                for rec in records:
                    t = codec.decode(rec.value)
                    if not isinstance(t, events.Transition) or t.kind != "QUARANTINED":
                        continue
                    with tracker.lock:
                        row = tracker.rows.get(t.package)
                        if row is not None and row.transition is None:
                            row.transition = now
                            row.detected = t.detected_at / 1000
                            row.upstream = None if t.upstream_time is None else t.upstream_time / 1000
    finally:
        consumer.close()


def webhook_receiver(tracker: Tracker) -> ThreadingHTTPServer:
    """A local receiver that answers 204 and records when each alert arrived."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            now = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()
            try:
                alert = json.loads(body)["data"]
            except (ValueError, KeyError, TypeError):
                return
            with tracker.lock:
                row = tracker.rows.get(str(alert.get("package")))
                if row is not None and alert.get("kind") == "QUARANTINED" and row.webhook is None:
                    row.webhook = now
                else:
                    tracker.unexpected_webhooks += 1

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# -- the pipeline -----------------------------------------------------------------------------------------------
def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One ``qwatch`` component, its output in ``log``."""
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "app", *argv], env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT
        )


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"latency bench: timed out after {timeout:.0f}s waiting for {what}")


def quarantine(fake: FakePyPI, tracker: Tracker, names: list[str], inventory: set[str]) -> None:
    """Quarantine ``names`` in one go (one lock hold: one changelog page) and record the write time. The rows are
    tracked before they are written, so the poll that fetches them always finds them."""
    with fake._lock:  # noqa: SLF001 - the burst must be atomic for the journal reader, as one PyPI action is
        written = time.time()
        with tracker.lock:
            for name in names:
                tracker.rows[name] = Quarantine(name, written, inventory=name in inventory)
        for name in names:
            fake.quarantine(name)


def trace_polls(fake: FakePyPI, tracker: Tracker) -> None:
    """Record when the local PyPI answers the changelog call that first returns each tracked quarantine row: the
    moment the ingestor's poll has the row (less the answer's few milliseconds on the wire). What follows it is
    the pipeline's own latency, the part the poll interval does not explain. The XML-RPC handler calls its
    backend's ``changelog_since_serial``; the bench wraps that one method on this instance."""
    app = fake._app  # noqa: SLF001 - the bench observes the fake's journal answers, it does not change them
    inner = app.changelog_since_serial

    def traced(serial: int, limit: int) -> Any:
        rows = inner(serial, limit)
        now = time.time()
        with tracker.lock:
            tracker.last_poll = now
            for row in rows:
                tracked = tracker.rows.get(str(row[0]))
                if tracked is not None and tracked.fetched is None and "quarantin" in str(row[3]):
                    tracked.fetched = now
        return rows

    app.changelog_since_serial = traced  # type: ignore[method-assign]


def wait_for_phase(tracker: Tracker, phase: float) -> float:
    """Sleep until ``phase`` seconds after a poll of the journal; return the phase reached (seconds since the poll
    before the write, as the write happens right after). Polls come every ``POLL_INTERVAL`` (plus the poll's own
    few milliseconds), so the target is the latest poll plus the phase, a cycle later if that is already past."""
    while True:
        with tracker.lock:
            last = tracker.last_poll
        if last is None:
            time.sleep(0.05)
            continue
        target = last + phase
        while target < time.time() + 0.05:
            target += POLL_INTERVAL
        time.sleep(max(0.0, target - time.time()))
        with tracker.lock:
            last = tracker.last_poll
        assert last is not None
        return round(time.time() - last, 3)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rnd = random.Random(7)
    fake = FakePyPI(start_serial=5_000_000)
    background = [f"bg-{i:05d}" for i in range(args.background)]
    steady_rate = SERIALS_PER_DAY * args.accel / 86_400
    steady_quarantines = int(args.steady_seconds * steady_rate / QUARANTINE_EVERY) + 5
    steady_names = [f"steady-{i:04d}" for i in range(steady_quarantines)]
    rounds = [[f"burst{r}-{i:04d}" for i in range(args.burst)] for r in range(args.bursts)]
    burst_names = [name for names in rounds for name in names]
    for name in background + steady_names + burst_names:
        fake.add_project(name, {"1.0": [f"{name.replace('-', '_')}-1.0.tar.gz"]})
    inventory = set(steady_names[::4])
    for names in rounds:
        inventory |= set(rnd.sample(names, min(args.burst_inventory, args.burst)))
    lock = work / "requirements.txt"
    lock.write_text("".join(f"{n}==1.0\n" for n in sorted(inventory)))

    tracker = Tracker()
    trace_polls(fake, tracker)
    receiver = webhook_receiver(tracker)
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    base = fake.start()
    broker = LocalBroker(work / "kafka")
    broker.start()
    procs: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    try:
        cfg = KafkaConfig(bootstrap=broker.bootstrap)
        admin = make_admin(cfg)
        try:
            create_topics(admin)
        finally:
            admin.close()
        env = {
            **os.environ,
            "QWATCH_KAFKA_BOOTSTRAP": broker.bootstrap,
            "QWATCH_LOG_LEVEL": "INFO",
            "QWATCH_WEBHOOK_SECRET": "latency-bench",
            "PYTHONPATH": str(ROOT),
        }
        logs = work / "logs"
        logs.mkdir()
        added = subprocess.run(
            [sys.executable, "-m", "app", "inventory", "add", "--name", "bench-app", "--lock", str(lock)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if added.returncode:
            raise SystemExit(f"inventory add failed: {added.stderr[-2000:]}")
        since = fake.last_serial
        follower = threading.Thread(target=follow_transitions, args=(cfg, tracker, stop), daemon=True)
        follower.start()
        procs.append(start(["process"], env, logs / "process.log"))
        procs.append(start(["alerts", "--webhook-url", hook], env, logs / "alerts.log"))
        procs.append(
            start(
                ["ingest", "pypi-journal", "--xmlrpc-url", base + "/pypi", "--since-serial", str(since),
                 "--interval", str(POLL_INTERVAL)],
                env,
                logs / "journal.log",
            )
        )  # fmt: skip
        time.sleep(args.settle)  # components up, consumers assigned, first (empty) poll done

        # steady: routine rows at the accelerated rate, every QUARANTINE_EVERY-th a quarantine
        print(f"steady: {steady_rate:.1f} rows/s for {args.steady_seconds:.0f}s", file=sys.stderr, flush=True)
        started = time.monotonic()
        rows = 0
        pending = list(steady_names)
        steady_rows: list[str] = []
        while time.monotonic() - started < args.steady_seconds:
            due = int((time.monotonic() - started) * steady_rate)
            while rows < due:
                rows += 1
                if rows % QUARANTINE_EVERY == 0 and pending:
                    name = pending.pop(0)
                    quarantine(fake, tracker, [name], inventory)
                    steady_rows.append(name)
                else:
                    name = rnd.choice(background)
                    fake.add_file(name, "1.0", f"{name.replace('-', '_')}-1.0-{rows}-py3-none-any.whl")
            time.sleep(0.02)
        steady_webhooks = sum(1 for n in steady_rows if n in inventory)

        def arrived(names: list[str], webhooks: int) -> bool:
            with tracker.lock:
                seen = sum(tracker.rows[n].transition is not None for n in names)
                hooks = sum(tracker.rows[n].webhook is not None for n in names)
            return seen == len(names) and hooks >= webhooks

        wait_for(lambda: arrived(steady_rows, steady_webhooks), args.timeout, "the steady phase's transitions")

        burst_webhooks = 0
        phases: list[float] = []
        for r, names in enumerate(rounds):
            print(f"burst {r + 1}/{len(rounds)}: {args.burst} quarantines in one journal page", file=sys.stderr)
            phases.append(wait_for_phase(tracker, (r + 0.5) / len(rounds) * POLL_INTERVAL))
            quarantine(fake, tracker, names, inventory)
            hooks = sum(1 for n in names if n in inventory)
            burst_webhooks += hooks
            wait_for(lambda names=names, hooks=hooks: arrived(names, hooks), args.timeout, "a burst's transitions")
        time.sleep(1.0)
    finally:
        stop.set()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        receiver.shutdown()
        fake.stop()
        broker.stop()

    with tracker.lock:
        steady = summarize([tracker.rows[n] for n in steady_rows])
        burst = summarize([tracker.rows[n] for n in burst_names])
        unexpected = tracker.unexpected_webhooks
    steady.update(rows=rows, rows_per_s=round(steady_rate, 2), seconds=args.steady_seconds, accel=args.accel)
    burst.update(inventory=burst_webhooks, bursts=len(rounds), per_burst=args.burst, phases_s=phases)
    per_burst = [summarize([tracker.rows[n] for n in names]) for names in rounds]
    burst["per_burst_p50_journal_to_transition_s"] = [b["journal_to_transition"]["p50_s"] for b in per_burst]
    burst["per_burst_p99_journal_to_transition_s"] = [b["journal_to_transition"]["p99_s"] for b in per_burst]
    burst["per_burst_p50_fetch_to_transition_s"] = [b["fetch_to_transition"]["p50_s"] for b in per_burst]
    return {"steady": steady, "burst": burst, "unexpected_webhooks": unexpected}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--accel", type=float, default=100.0, help="speed-up of 20,000 serials/day")
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--burst-inventory", type=int, default=25, help="of each burst, in the inventory")
    parser.add_argument("--bursts", type=int, default=5, help="bursts, at evenly spread phases of the poll cycle")
    parser.add_argument("--background", type=int, default=2000, help="projects the routine rows touch")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds for the components to start")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qwatch-latency-") as tmp:
        result = run(args, Path(tmp))
    burst, steady = result["burst"], result["steady"]
    result["baseline"] = {
        "poll_interval_s": POLL_INTERVAL,
        "expected_wait_for_the_poll_s": POLL_INTERVAL / 2,
        "method": "the journal ingestor's poll interval",
    }
    result["targets"] = TARGETS
    result["meets_targets"] = {
        "burst_p99_transition": (burst["journal_to_transition"]["p99_s"] or 1e9) <= TARGETS["burst_p99_transition_s"],
        "burst_p99_webhook": (burst["journal_to_webhook"]["p99_s"] or 1e9) <= TARGETS["burst_p99_webhook_s"],
        "p50_transition": max(
            steady["journal_to_transition"]["p50_s"] or 1e9, burst["journal_to_transition"]["p50_s"] or 1e9
        )
        <= TARGETS["p50_s"],
    }
    result["platform"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
