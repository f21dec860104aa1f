"""PyPI ingestor benchmarks: the 800k-project root diff vs a naive baseline, and the watch-set sweep rate.

(1) Root diff. The fake PyPI renders its root ``/simple/`` JSON for N generated projects (byte-identical to
    Warehouse's compact form), then 1,000 changes are made (800 new releases = serial changes, 100
    quarantines = removals, 100 new projects = additions) and the root is rendered again. Each contender runs
    in a fresh child process that reads both bodies first (not timed), then is timed on the whole job:
      - qwatch: ``parse_root_json`` of both bodies + ``diff_roots`` (also reported: the steady-state cost,
        parsing only the new body, since the ingestor keeps the previous snapshot in memory);
      - naive: ``json.loads`` of both bodies + ``{name: serial}`` dicts + a dict comparison.
    Peak RSS is the child's own ``ru_maxrss``; a third child that only reads the two bodies gives the floor.
    The state file round trip (save + load of the 800k snapshot, what a restart costs) is timed as well.
(2) Sweep rate. ``python -m testing.fakepypi --generate W`` runs in its own process (so server and client do
    not share a GIL), and one SimpleIngestor pass fetches every watched page through the PoliteClient, at
    concurrency 1 and 16: first pass 200s (pages parsed, statuses emitted), second pass 304s.

Usage: python bench/pypi_bench.py [--projects N] [--changes N] [--watch W]
Writes bench/out/pypi.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "pypi.json"
ACCEPT_JSON = "application/vnd.pypi.simple.v1+json"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _hwm_mb() -> float | None:
    """VmHWM: the peak RSS of this process image only (ru_maxrss also carries the parent's peak over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def build_bodies(projects: int, changes: int, directory: Path) -> dict[str, Any]:
    """Render the root before and after ``changes`` changes; write old.json/new.json; return the plan."""
    from testing.fakepypi import FakePyPI

    fake = FakePyPI(start_serial=30_000_000)
    names = fake.generate(projects)
    (directory / "old.json").write_bytes(fake.render("/simple/", ACCEPT_JSON).body)
    step = max(projects // changes, 1)
    picked = [names[i] for i in range(0, projects, step)][:changes]
    removed, added = changes // 10, changes // 10
    changed = changes - removed - added
    for name in picked[:changed]:
        fake.add_release(name, "9.9", [f"{name}-9.9.tar.gz"])
    for name in picked[changed : changed + removed]:
        fake.quarantine(name)
    for i in range(added):
        fake.add_project(f"new-project-{i}", {"1.0": [f"new_project_{i}-1.0.tar.gz"]})
    (directory / "new.json").write_bytes(fake.render("/simple/", ACCEPT_JSON).body)
    return {"changed": changed, "removed": removed, "added": added}


def child(mode: str, directory: Path) -> dict[str, Any]:
    """Run one contender in this (fresh) process and report time, counts and peak RSS."""
    if mode == "build":
        return build_bodies(*json.loads((directory / "plan.json").read_text()), directory)
    old_body = (directory / "old.json").read_bytes()
    new_body = (directory / "new.json").read_bytes()
    out: dict[str, Any] = {"mode": mode}
    if mode == "qwatch":
        from ingestors.pypi.parse_root import parse_root_json
        from ingestors.pypi.rootdiff import diff_roots

        t0 = time.perf_counter()
        old = parse_root_json(old_body)
        t1 = time.perf_counter()
        new = parse_root_json(new_body)
        t2 = time.perf_counter()
        diff = diff_roots(old, new)
        t3 = time.perf_counter()
        out.update(seconds=t3 - t0, parse_one_seconds=t2 - t1, diff_seconds=t3 - t2, steady_seconds=t3 - t1)
        out.update(added=len(diff.added), removed=len(diff.removed), changed=len(diff.changed), projects=len(new))
    elif mode == "naive":
        t0 = time.perf_counter()
        a = {p["name"]: p["_last-serial"] for p in json.loads(old_body)["projects"]}
        b = {p["name"]: p["_last-serial"] for p in json.loads(new_body)["projects"]}
        added = b.keys() - a.keys()
        removed = a.keys() - b.keys()
        changed = [k for k, v in b.items() if k in a and a[k] != v]
        out.update(seconds=time.perf_counter() - t0, added=len(added), removed=len(removed), changed=len(changed))
        out["projects"] = len(b)
    elif mode == "poll":
        # The ingestor between polls holds the previous snapshot only (the body it came from is gone); the peak of
        # one poll is then that snapshot + the new body + parsing + the diff. VmHWM is reset (clear_refs 5) after
        # the previous snapshot is built, so the figure is the poll's own peak, not the set-up's.
        import gc

        from ingestors.pypi.parse_root import parse_root_json
        from ingestors.pypi.rootdiff import diff_roots

        previous = parse_root_json(old_body)
        del old_body, new_body
        gc.collect()
        reset = _reset_hwm()
        out["resting_rss_mb"] = round(_rss_now_mb(), 1)
        t0 = time.perf_counter()
        body = (directory / "new.json").read_bytes()  # the download
        t1 = time.perf_counter()
        snapshot = parse_root_json(body)
        diff = diff_roots(previous, snapshot)
        t2 = time.perf_counter()
        out.update(read_seconds=t1 - t0, parse_diff_seconds=t2 - t1, hwm_reset=reset, changes=len(diff))
        poll_hwm = _hwm_mb()
        out["poll_peak_rss_mb"] = round(poll_hwm, 1) if reset and poll_hwm is not None else None
    elif mode == "nochange":
        # A poll without an ETag whose body is byte-identical to the last one: the ingestor hashes it and stops
        # (simple_ingest._poll_root). Baseline: what the same poll cost when it parsed and diffed the body.
        from ingestors.pypi.parse_root import body_digest, parse_root_json
        from ingestors.pypi.rootdiff import diff_roots

        previous = parse_root_json(new_body)
        body = bytes(new_body)  # a fresh copy, as a download would be
        t0 = time.perf_counter()
        same = body_digest(body) == previous.digest
        t1 = time.perf_counter()
        assert same
        diff = diff_roots(previous, parse_root_json(body))
        t2 = time.perf_counter()
        assert len(diff) == 0
        out.update(hash_seconds=t1 - t0, parse_diff_seconds=t2 - t1)
    elif mode == "state":
        from ingestors.pypi.parse_root import parse_root_json
        from ingestors.pypi.state import load_state, save_state

        snapshot = parse_root_json(new_body)
        path = directory / "state.gz"
        t0 = time.perf_counter()
        save_state(path, {"root": {"present": True}}, snapshot.entries)
        t1 = time.perf_counter()
        loaded = load_state(path)
        assert loaded is not None and len(frozenset(loaded[1])) == len(snapshot)
        t2 = time.perf_counter()
        out.update(save_seconds=t1 - t0, load_seconds=t2 - t1, file_mb=path.stat().st_size / 1e6)
    out["peak_rss_mb"] = round(_rss_mb(), 1)
    hwm = _hwm_mb()
    out["vm_hwm_mb"] = round(hwm, 1) if hwm is not None else None
    return out


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_hwm() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ``clear_refs`` 5); False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_child(mode: str, directory: Path) -> dict[str, Any]:
    """One contender in a fresh interpreter (so peak RSS is its own)."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--dir", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _pass_rates(base: str, names: list[str], concurrency: int) -> dict[str, Any]:
    """Two full passes of one SimpleIngestor over ``names``: 200s first, then conditional 304s."""
    from prometheus_client import CollectorRegistry

    from ingestors.pypi.config import SimpleIngestConfig
    from ingestors.pypi.simple_ingest import SimpleIngestor
    from ingestors.pypi.watchset import WatchSet
    from qwatch.http import HttpConfig, PoliteClient, make_http_client
    from qwatch.metrics import Metrics
    from qwatch.sinks import MemorySink

    metrics = Metrics(CollectorRegistry())
    cfg = HttpConfig(concurrency=concurrency)
    client = PoliteClient(make_http_client(cfg), cfg, metrics, "pypi-simple")
    watched = WatchSet(metrics)
    for name in names:
        watched.add(name, "bench")
    sink = MemorySink()
    ingest_cfg = SimpleIngestConfig(index_url=base + "/simple/", workers=concurrency)
    ingestor = SimpleIngestor(ingest_cfg, client, sink, metrics, watched)
    row: dict[str, Any] = {}
    for label in ("first_pass_200", "second_pass_304"):
        t0 = time.perf_counter()
        report = ingestor.run_pass(poll_root=False, recheck_all=True)
        elapsed = time.perf_counter() - t0
        assert report.fetched == len(names) and report.dead_letters == 0, report
        row[label] = {"seconds": round(elapsed, 3), "requests_per_s": round(len(names) / elapsed, 1)}
    row["emitted"] = len(sink.events)
    client.close()
    return row


def sweep_rate(watch: int, latency_watch: int, latency: float) -> dict[str, Any]:
    """Requests/s of full watch-set passes: against a fake PyPI in its own process (CPU-bound locally), and
    against an in-process fake that answers after ``latency`` seconds (what a real RTT does to a sweep)."""
    from testing.fakepypi import FakePyPI, Fault

    server = subprocess.Popen(
        [sys.executable, "-m", "testing.fakepypi", "--generate", str(watch)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    results: dict[str, Any] = {"watched": watch, "server": "python -m testing.fakepypi (separate process)"}
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        width = len(str(max(watch - 1, 0)))
        names = [f"pkg-{i:0{width}d}" for i in range(watch)]
        for concurrency in (1, 16):
            results[f"concurrency_{concurrency}"] = _pass_rates(base, names, concurrency)
    finally:
        server.terminate()
        server.wait(timeout=10)
    fake = FakePyPI()
    segment = fake.generate(latency_watch, prefix="lat")
    fake.inject(Fault(kind="slow", path_prefix="/simple/", count=10**9, delay=latency))
    latency_rows: dict[str, Any] = {"watched": latency_watch, "latency_s": latency}
    with fake.serve() as base:
        for concurrency in (1, 16):
            latency_rows[f"concurrency_{concurrency}"] = _pass_rates(base, list(segment), concurrency)
    results["with_latency"] = latency_rows
    return results


def main() -> int:
    """Run both benchmarks, print a summary and write bench/out/pypi.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=800_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--watch", type=int, default=2_000)
    parser.add_argument("--latency-watch", type=int, default=320)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to each page in scenario 2b")
    parser.add_argument("--root-only", action="store_true", help="only the root benchmarks, not the sweep")
    parser.add_argument(
        "--child", choices=["build", "qwatch", "naive", "state", "floor", "poll", "nochange"], help=argparse.SUPPRESS
    )
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dir)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        t0 = time.perf_counter()
        # Built in a child too: the parent must stay small, because a child's ru_maxrss starts from the
        # parent's peak at fork time.
        (directory / "plan.json").write_text(json.dumps([args.projects, args.changes]))
        plan = run_child("build", directory)
        build_s = time.perf_counter() - t0
        sizes = {n: (directory / n).stat().st_size for n in ("old.json", "new.json")}
        modes = ("floor", "naive", "qwatch", "state", "poll", "nochange")
        runs = {mode: run_child(mode, directory) for mode in modes}
    ours, naive = runs["qwatch"], runs["naive"]
    expected = {"added": plan["added"], "removed": plan["removed"], "changed": plan["changed"]}
    for name in ("qwatch", "naive"):
        got = {k: runs[name][k] for k in expected}
        assert got == expected, f"{name} found {got}, expected {expected}"
    sweep = None if args.root_only else sweep_rate(args.watch, args.latency_watch, args.latency)
    result = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "root_diff": {
            "projects": args.projects,
            "changes": plan,
            "body_mb": round(sizes["new.json"] / 1e6, 1),
            "build_seconds": round(build_s, 2),
            "qwatch": ours,
            "naive": naive,
            "bodies_only_floor": runs["floor"],
            "speedup_vs_naive": round(naive["seconds"] / ours["seconds"], 2),
            "rss_ratio_vs_naive": round(ours["peak_rss_mb"] / naive["peak_rss_mb"], 2),
            "targets": {"seconds": 3.0, "peak_rss_mb": 500},
            "meets_targets": ours["seconds"] < 3.0 and ours["peak_rss_mb"] < 500,
            "state_file": runs["state"],
        },
        "root_poll": {
            "poll": runs["poll"],
            "nochange": runs["nochange"],
            "targets": {"poll_peak_rss_mib": 250, "nochange_seconds_beyond_download": 0.2},
        },
        "sweep": sweep,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"root diff, {args.projects:,} projects, {args.changes:,} changes ({result['root_diff']['body_mb']} MB body):"
    )
    print(
        f"  qwatch: {ours['seconds']:.2f} s (steady state {ours['steady_seconds']:.2f} s), "
        f"peak RSS {ours['peak_rss_mb']:.0f} MB"
    )
    print(
        f"  naive:  {naive['seconds']:.2f} s, peak RSS {naive['peak_rss_mb']:.0f} MB "
        f"(reading the bodies alone: {runs['floor']['peak_rss_mb']:.0f} MB)"
    )
    print(
        f"  speedup x{result['root_diff']['speedup_vs_naive']}, RSS ratio {result['root_diff']['rss_ratio_vs_naive']}, "
        f"targets met: {result['root_diff']['meets_targets']}"
    )
    print(
        f"  state file: save {runs['state']['save_seconds']:.2f} s, load {runs['state']['load_seconds']:.2f} s, "
        f"{runs['state']['file_mb']:.1f} MB"
    )
    poll, same = runs["poll"], runs["nochange"]
    print(
        f"root poll: peak RSS {poll['poll_peak_rss_mb']} MB (previous snapshot held: {poll['resting_rss_mb']} MB), "
        f"parse + diff {poll['parse_diff_seconds']:.2f} s; unchanged body: hash {same['hash_seconds']:.3f} s "
        f"vs parse + diff {same['parse_diff_seconds']:.2f} s"
    )
    for c in (1, 16) if sweep else ():
        row, lat = sweep[f"concurrency_{c}"], sweep["with_latency"][f"concurrency_{c}"]
        print(
            f"sweep at concurrency {c:>2}: {row['first_pass_200']['requests_per_s']} req/s (200s), "
            f"{row['second_pass_304']['requests_per_s']} req/s (304s) over {args.watch:,} pages; "
            f"with {args.latency * 1000:.0f} ms latency: {lat['first_pass_200']['requests_per_s']} req/s"
        )
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
