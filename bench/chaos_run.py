"""The SIGKILL chaos run, full size: every component of ``qwatch up`` killed ``--kills`` times at random points while a
seeded upstream timeline plays, then a drain and a reconciliation of every change against the transitions topic.

The CI suite (``tests/system/test_chaos.py``) runs the same harness with ~8 kills per component; this is the long
version the resilience issue asks for (at least 50 kills per component), run by hand:

    python bench/chaos_run.py --kills 50 --seed 7

It starts its own Apache Kafka broker in a temporary directory, prints the figures and writes
``bench/out/chaos.json``: kills per component (and how many processor kills followed a burst of upstream changes),
wall time, transitions expected/observed/duplicated/lost, transition records of aborted transactions (proof that
kills landed inside processor transactions), alerts, and how long the drain took. Exit status 1 when anything did
not reconcile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qwatch.broker import LocalBroker  # noqa: E402
from qwatch.config import KafkaConfig  # noqa: E402
from qwatch.kafka.io import create_topics, make_admin  # noqa: E402
from tests.chaos_support import ChaosWorld, KillPlan, Pipeline, reconcile, run_chaos, running, settle  # noqa: E402

OUT = ROOT / "bench" / "out" / "chaos.json"


def chaos(kills: int, seed: int, projects: int, commit_delay_ms: int, workdir: Path) -> dict[str, Any]:
    """One full run on a private broker; returns the report."""
    t0 = time.monotonic()
    broker = LocalBroker(workdir / "kafka")
    bootstrap = broker.start()
    admin = make_admin(KafkaConfig(bootstrap=bootstrap))
    try:
        create_topics(admin)
    finally:
        admin.close()
    world = ChaosWorld(workdir / "world", seed, f"chaos{seed}", projects)
    world.start()
    pipeline = Pipeline(
        world,
        bootstrap,
        workdir / "run",
        f"bench{seed}",
        processor_commit_delay_ms=commit_delay_ms,
    )
    try:
        with running(pipeline):
            started = time.monotonic()
            world.play()
            plan = KillPlan(kills, first=("alerts",))
            stats = run_chaos(pipeline, plan, random.Random(seed), timeout=max(600.0, kills * 40.0))
            world.stop_timeline()
            chaos_s = time.monotonic() - started
            drained = settle(pipeline, timeout=300.0)
            result = reconcile(pipeline)
    finally:
        broker.stop()
    return {
        "seed": seed,
        "kills_requested": kills,
        "kills": stats.kills,
        "kills_while_working": stats.kills_while_working,
        "processor_kills_in_a_burst": stats.busy_kills,
        "self_exits": stats.self_exits,
        "upstream_changes": len(world.applied),
        "chaos_seconds": round(chaos_s, 1),
        "drain_seconds": round(drained.seconds, 1),
        "drained": drained.ok,
        "drain_detail": drained.detail,
        "wall_seconds": round(time.monotonic() - t0, 1),
        "exit_codes_at_stop": pipeline.exit_codes,
        **result.summary(),
        "problems": result.problems(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def main() -> int:
    """Parse, run, print, write."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs per component (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the timeline and the killer (default 1)")
    parser.add_argument("--projects", type=int, default=40, help="generated PyPI projects (default 40)")
    parser.add_argument(
        "--commit-delay-ms",
        type=int,
        default=150,
        help="processor test delay inside each transaction, widening the window kills can hit (default 150)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) for inspection")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write the report (default {OUT})")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qwatch-chaos-"))
    report = chaos(args.kills, args.seed, args.projects, args.commit_delay_ms, workdir)
    report["workdir"] = str(workdir) if args.keep else None
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if not report["problems"] and report["drained"] else 1


if __name__ == "__main__":
    sys.exit(main())
