"""How the processor's cost grows with the watch set: observations/s and peak RSS at 1k, 10k and 100k packages.

Each size gets the same workload shape as bench/processor_bench.py (its ``Workload``, the realistic mix), with
``--per-package`` observations per package on average, so the stream grows with the watch set and every package
builds real state. Two contenders run the same stream, each in a fresh child process so peak memory is its own
(``VmHWM`` from /proc/self/status; ``ru_maxrss`` where /proc is missing):

  - core: ``processors.core.step`` over the stream with a dict of package states, as ``qwatch process`` runs it
    (GC tuned as the CLI tunes it), best of ``--rounds`` passes from empty state;
  - baseline: a plain ``dict`` update over the same observations, keyed the same way (what any per-package
    consumer costs at least: the stream itself and one dict entry per package).

The child first builds the stream and records its RSS, so "state memory" is the core's peak minus the baseline's
peak over the same stream: what the processor's states themselves cost. With ``--e2e`` each size also runs the
end-to-end processor on a real broker (bench/processor_bench.py's ``bench_e2e``) over ``--e2e-observations``
observations spread over that many packages.

Usage: python bench/scaling_bench.py [--sizes 1000,10000,100000] [--per-package 5] [--rounds 2] [--e2e]
Writes bench/out/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "bench" / "out" / "scaling.json"
SEED = 11
MIX = "realistic"
THROUGHPUT_KEEP_TARGET = 0.5
"""Observations/s at the largest size must stay at least this share of the smallest size's."""
STATE_KIB_TARGET = 8.0
"""Processor state memory per package (KiB) at the largest size."""


def _peak_mb() -> float:
    """This process's own peak RSS in MiB (VmHWM; ru_maxrss also carries a parent's peak across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _peak_mb()


def child(mode: str, packages: int, per_package: int, rounds: int) -> dict[str, Any]:
    """Run one contender over a freshly generated stream; the parent reads the JSON it prints."""
    from processor_bench import MIXES, Workload

    from processors.core import step
    from processors.tuning import tune_gc
    from qwatch.events.state import PackageStateRecord, state_key
    from testing.samples import T0

    observations = Workload(SEED, packages, MIXES[MIX]).take(packages * per_package)
    tune_gc()  # as `qwatch process` runs; the baseline gets the same collector settings
    stream_mb = _rss_mb()
    best = float("inf")
    kept = transitions = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        if mode == "core":
            states: dict[str, PackageStateRecord] = {}
            transitions = 0
            for obs in observations:
                key = state_key(obs.ecosystem, obs.package)
                result = step(states.get(key), obs, T0)
                if result.state is not None:
                    states[key] = result.state
                transitions += len(result.transitions)
            kept = len(states)
        else:
            latest: dict[str, object] = {}
            for obs in observations:
                latest[state_key(obs.ecosystem, obs.package)] = obs
            kept = len(latest)
        best = min(best, time.perf_counter() - t0)
    return {
        "mode": mode,
        "observations": len(observations),
        "packages_with_state": kept,
        "transitions": transitions,
        "seconds": round(best, 4),
        "observations_per_s": round(len(observations) / best),
        "stream_rss_mb": round(stream_mb, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
    }


def _run_child(mode: str, packages: int, per_package: int, rounds: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--packages", str(packages), "--per-package", str(per_package)]
    done = subprocess.run([*cmd, "--rounds", str(rounds)], check=True, capture_output=True, text=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _e2e(packages: int, observations: int) -> dict[str, Any]:
    from processor_bench import MIXES, Workload, bench_e2e

    stream = Workload(SEED, packages, MIXES[MIX]).take(observations)
    warm_up = Workload(SEED + 1, packages, MIXES[MIX]).take(min(observations, 20_000))
    result: dict[str, Any] = bench_e2e(stream, warm_up)
    result["packages"] = packages
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated package counts")
    parser.add_argument("--per-package", type=int, default=5, help="observations per package, on average")
    parser.add_argument("--rounds", type=int, default=2, help="passes per contender; the best is kept")
    parser.add_argument("--e2e", action="store_true", help="also run the end-to-end processor on a real broker")
    parser.add_argument("--e2e-observations", type=int, default=40_000)
    parser.add_argument("--child", choices=["core", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--packages", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.packages, args.per_package, args.rounds)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = []
    for n in sizes:
        core = _run_child("core", n, args.per_package, args.rounds)
        base = _run_child("baseline", n, args.per_package, args.rounds)
        state_mb = max(core["peak_rss_mb"] - base["peak_rss_mb"], 0.0)
        row: dict[str, Any] = {
            "packages": n,
            "core": core,
            "baseline": base,
            "throughput_ratio": round(core["observations_per_s"] / base["observations_per_s"], 4),
            "rss_ratio": round(core["peak_rss_mb"] / base["peak_rss_mb"], 3),
            "state_mb": round(state_mb, 1),
            "state_kib_per_package": round(state_mb * 1024 / max(core["packages_with_state"], 1), 2),
        }
        if args.e2e:
            row["e2e"] = _e2e(n, args.e2e_observations)
        rows.append(row)
        e2e = f", e2e {row['e2e']['ratio']}x raw consume" if args.e2e else ""
        print(
            f"{n:>7,} packages: core {core['observations_per_s']:>9,} obs/s (dict {base['observations_per_s']:,}), "
            f"peak RSS {core['peak_rss_mb']:.0f} MiB (dict {base['peak_rss_mb']:.0f}), "
            f"state {row['state_kib_per_package']} KiB/package{e2e}"
        )
    first, last = rows[0], rows[-1]
    keep = last["core"]["observations_per_s"] / first["core"]["observations_per_s"]
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "mix": MIX,
        "per_package": args.per_package,
        "notes": [
            "each contender in a fresh child process; peak RSS is the child's VmHWM; state memory = core peak - "
            "baseline peak over the same stream",
            "baseline: a plain dict update keyed ecosystem:package over the same observations",
        ],
        "sizes": rows,
        "growth": {
            "from_packages": first["packages"],
            "to_packages": last["packages"],
            "throughput_kept": round(keep, 3),
            "throughput_kept_target": THROUGHPUT_KEEP_TARGET,
            "state_kib_per_package": last["state_kib_per_package"],
            "state_kib_per_package_target": STATE_KIB_TARGET,
            "meets_targets": keep >= THROUGHPUT_KEEP_TARGET and last["state_kib_per_package"] <= STATE_KIB_TARGET,
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
