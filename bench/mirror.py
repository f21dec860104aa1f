"""Mirror enforcement: transition -> mirror no longer serving (p50/p99 over 200 takedowns), and a no-op replay of
10,000 transitions, each next to a baseline measured in the same run.

Set-up: the local PyPI (real files) with N projects, mirrored by the real bandersnatch 8 into a temp dir served by
``python -m http.server``; optionally a real devpi-server (with quarantine-watch's plugin) mirroring it.

1. Takedown latency, bandersnatch: each of N projects is taken down, cleared, and taken down again by the baseline.
   The clock starts when the QUARANTINED transition is handed to the enforcer (``Enforcer.handle``, the code the
   Kafka loop calls per batch) and stops at the first 404 of the project's ``/simple/<name>/`` page from the
   http.server. Baseline: the same HTTP poll after a bare ``os.rename``
   of the project's page directory, the least any takedown must do (no root index, no JSON, no files, no state, no
   audit).
   devpi (``--devpi``): same clock to the first 404 from devpi. Baseline: a PATCH of an unrelated index setting
   (``title``) and a GET of the page: one devpi write + one read.
2. No-op replay: 10,000 transitions (every kind, over the N projects) applied once, then replayed from a JSONL file
   through the CLI's batch handler (decode, skip applied ids, save nothing). Baseline: decoding the same file with
   the same JsonlSource and doing nothing with it.
Writes bench/out/mirror.json. Usage: python bench/mirror.py [--projects 200] [--replay 10000] [--devpi]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from qwatch import events, ids
from qwatch.events.codec import Codec
from qwatch.sinks import JsonlSink, JsonlSource
from subscribers.mirror import tools
from subscribers.mirror.bandersnatch import BandersnatchMirror
from subscribers.mirror.cli import handle_batch
from subscribers.mirror.devpi import DevpiIndex
from subscribers.mirror.plan import Policy
from subscribers.mirror.service import AuditLog, Enforcer
from testing.fakepypi import FakePyPI

OUT = Path(__file__).parent / "out" / "mirror.json"
KINDS = ["QUARANTINED", "CLEARED", "RELEASE_QUARANTINED", "RELEASE_CLEARED", "YANKED", "REMOVED", "RESTORED"]


def transition(kind: str, package: str, serial: int, version: str | None = None) -> events.Transition:
    now = ids.now_ms()
    return events.Transition(
        event_id=ids.event_id("processor", "PyPI", package, kind, version, serial),
        kind=kind,
        ecosystem="PyPI",
        package=package,
        severity="high",
        version=version,
        report_id=None,
        before=None,
        after=events.PackageState("active", serial),
        evidence=(events.Evidence(f"obs-{serial}", "pypi-journal", now),),
        upstream_time=now,
        detected_at=now,
        summary=kind,
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "p99_ms": round(pct(values, 0.99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


def until_404(client: httpx.Client, url: str, limit: float = 30) -> None:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if client.get(url).status_code == 404:
            return
    raise TimeoutError(url)


def bench_bandersnatch(root: Path, served: str, names: list[str]) -> dict[str, Any]:
    """Every project is taken down by the enforcer (measured), cleared (not measured), then taken down by the
    baseline's bare rename (measured) and renamed back: N takedowns of each kind, interleaved under the same load."""
    enforcer = Enforcer(
        BandersnatchMirror(root), Policy(), root / "state.json", AuditLog(root / "audit.jsonl"), mirror="bench"
    )
    latencies: list[float] = []
    baseline: list[float] = []
    with httpx.Client(timeout=10) as client:
        for i, name in enumerate(names):
            url = f"{served}/simple/{name}/"
            assert client.get(url).status_code == 200, url
            t0 = time.perf_counter()
            enforcer.handle([transition("QUARANTINED", name, 10_000 + 2 * i)])
            until_404(client, url)
            latencies.append(time.perf_counter() - t0)
            enforcer.handle([transition("CLEARED", name, 10_001 + 2 * i)])
            assert client.get(url).status_code == 200, f"{url} must be back after CLEARED"
            t0 = time.perf_counter()
            os.rename(root / "web" / "simple" / name, root / f"baseline-{name}")
            until_404(client, url)
            baseline.append(time.perf_counter() - t0)
            os.rename(root / f"baseline-{name}", root / "web" / "simple" / name)
    return {"enforcer": summary(latencies), "baseline_bare_rename": summary(baseline)}


def bench_devpi(devpi: tools.DevpiServer, names: list[str]) -> dict[str, Any]:
    """As for bandersnatch: enforcer takedown (measured), clearance, then the baseline (one PATCH of an unrelated
    index setting and one GET of the page: the least a devpi-side takedown costs)."""
    client = httpx.Client(timeout=30)
    index = DevpiIndex(client, devpi.url, "root/local", "root", "")
    enforcer = Enforcer(index, Policy(), None, AuditLog(None), mirror="bench-devpi")
    headers = {**devpi.token_headers(), "Content-Type": "application/json"}
    latencies, baseline = [], []
    for i, name in enumerate(names):
        url = f"{devpi.url}/root/local/+simple/{name}/"
        assert client.get(url).status_code == 200, url  # cached by devpi first, as a used mirror would have it
        t0 = time.perf_counter()
        enforcer.handle([transition("QUARANTINED", name, 20_000 + 2 * i)])
        until_404(client, url)
        latencies.append(time.perf_counter() - t0)
        enforcer.handle([transition("CLEARED", name, 20_001 + 2 * i)])
        t0 = time.perf_counter()
        client.patch(f"{devpi.url}/root/local", json=[f"title=bench {i}"], headers=headers).raise_for_status()
        client.get(url)
        baseline.append(time.perf_counter() - t0)
    client.close()
    return {"enforcer": summary(latencies), "baseline_patch_and_get": summary(baseline)}


def bench_replay(root: Path, names: list[str], n: int, tmp: Path) -> dict[str, Any]:
    rng = random.Random(7)
    items = []
    for i in range(n):
        kind = rng.choice(KINDS)
        version = "1.0" if kind.startswith("RELEASE_") or kind == "YANKED" else None
        items.append(transition(kind, rng.choice(names), 100_000 + i, version))
    path = tmp / "replay.jsonl"
    sink = JsonlSink(str(path), Codec())
    for t in items:
        sink.emit(t)
    sink.flush(30)
    sink.close()
    enforcer = Enforcer(
        BandersnatchMirror(root),
        Policy(),
        root / "replay-state.json",
        AuditLog(root / "replay-audit.jsonl"),
        mirror="replay",
    )
    letters = JsonlSink(str(tmp / "dl.jsonl"), Codec())

    def drain(handle: bool) -> float:
        source = JsonlSource(str(path), Codec())
        t0 = time.perf_counter()
        while batch := source.poll(0):
            if handle:
                handle_batch(batch, enforcer, letters)
        took = time.perf_counter() - t0
        source.close()
        return took

    first = drain(True)
    replays = [drain(True) for _ in range(3)]
    decode_only = [drain(False) for _ in range(3)]
    assert enforcer.replayed == 3 * n, enforcer.replayed
    return {
        "transitions": n,
        "first_apply_s": round(first, 3),
        "noop_replay_s": round(statistics.median(replays), 3),
        "baseline_decode_only_s": round(statistics.median(decode_only), 3),
        "noop_replay_per_transition_us": round(statistics.median(replays) / n * 1e6, 1),
    }


def main_bench() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--replay", type=int, default=10_000)
    parser.add_argument("--devpi", action="store_true", help="also measure a devpi-server mirror index")
    args = parser.parse_args()
    result: dict[str, Any] = {"python": platform.python_version(), "projects": args.projects}
    names = [f"bench-mirror-{i:04d}" for i in range(args.projects)]
    pypi = FakePyPI(serve_files=True)
    for i, name in enumerate(names):
        pypi.add_project(name, {"1.0": [f"bench_mirror_{i:04d}-1.0-py3-none-any.whl"]})
    with tempfile.TemporaryDirectory() as d, pypi.serve() as base:
        tmp = Path(d)
        devpi = tools.DevpiServer(tmp / "devpi") if args.devpi else None
        if devpi is not None:
            devpi.launch()
        conf, root = tmp / "bandersnatch.conf", tmp / "mirror"
        conf.write_text(tools.bandersnatch_config(root, base, workers=4))
        t0 = time.perf_counter()
        tools.run_bandersnatch(conf, timeout=600)
        result["bandersnatch_sync_s"] = round(time.perf_counter() - t0, 2)
        with tools.http_server(root / "web") as served:
            result["bandersnatch"] = bench_bandersnatch(root, served, names)
        result["noop_replay"] = bench_replay(root, names, args.replay, tmp)
        if devpi is not None:
            try:
                devpi.wait()
                devpi.create_mirror("root/local", f"{base}/simple/", cache_expiry=3600)
                result["devpi"] = bench_devpi(devpi, names)
            finally:
                devpi.stop()
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main_bench(), indent=2))
