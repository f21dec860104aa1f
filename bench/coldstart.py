"""Cold start: from an empty deployment to caught up, as one figure with its stages.

Upstream, all local: the shared real OpenSSF history at its head (``shared/fixtures/ossf-history``, about 27k
reports) and a local PyPI (``python -m testing.fakepypi --generate 800000``, its own process) whose root lists
800,000 projects; the deployment watches 10,000 of them. Empty state directories, nothing cached. The stages run as
a deployment runs them, the two ingestors at the same time, then the processor over everything they emitted:

  * ``qwatch ingest openssf --repo R --once``                       (snapshot: one ``existing`` per report)
  * ``qwatch ingest pypi-simple --index-url URL --watch W --once``  (root baseline + 10,000 pages)
  * ``qwatch process --source jsonl: --state-dir D --once``          (first sight of everything: state, no news)

"Caught up" is the processor's exit: every observation of the first look is in the state. JSONL is the transport
(the same code as with Kafka, without a broker's start-up in the figure). The baseline, same run: the slowest
ingestor alone (the floor for running them side by side), and each stage's own time is reported.

Usage: python bench/coldstart.py [--projects 800000] [--watch 10000]
Writes bench/out/coldstart.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "coldstart.json"


def _lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=800_000)
    parser.add_argument("--watch", type=int, default=10_000)
    args = parser.parse_args()
    from tests.ingestors.openssf.test_history import BUNDLE_HEAD, clone_history

    py = [sys.executable, "-m", "app"]
    env = {**os.environ, "QWATCH_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="qwatch-coldstart-") as tmp:
        work = Path(tmp)
        repo = clone_history(work / "R")
        t0 = time.monotonic()
        server = subprocess.Popen(
            [sys.executable, "-m", "testing.fakepypi", "--generate", str(args.projects)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        try:
            assert server.stdout is not None
            base = server.stdout.readline().strip()
            fake_seconds = time.monotonic() - t0
            width = len(str(max(args.projects - 1, 0)))
            step = max(args.projects // args.watch, 1)
            watch = work / "watch.txt"
            watch.write_text("".join(f"pkg-{i:0{width}d}\n" for i in range(0, args.projects, step)[: args.watch]))
            ossf_out, simple_out = work / "ossf.jsonl", work / "simple.jsonl"
            commands = {
                "openssf": [*py, "ingest", "openssf", "--repo", str(repo), "--once", "--sink", f"jsonl:{ossf_out}",
                            "--state-dir", str(work / "st-ossf"), "--workdir", str(work / "mirror")],
                "pypi-simple": [*py, "ingest", "pypi-simple", "--index-url", base + "/simple/", "--watch", str(watch),
                                "--once", "--state-dir", str(work / "st-simple"), "--sink", f"jsonl:{simple_out}"],
            }  # fmt: skip
            started = time.monotonic()
            procs = {
                name: subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE) for name, cmd in commands.items()
            }
            stages: dict[str, Any] = {}
            pending = dict(procs)
            while pending:
                for name, proc in list(pending.items()):
                    if proc.poll() is not None:
                        stderr = proc.stderr.read().decode() if proc.stderr else ""
                        if proc.returncode:
                            raise SystemExit(f"{name} failed ({proc.returncode}): {stderr[-2000:]}")
                        stages[name] = {"seconds": round(time.monotonic() - started, 2)}
                        del pending[name]
                time.sleep(0.05)
            stages["openssf"]["observations"] = _lines(ossf_out)
            stages["pypi-simple"]["observations"] = _lines(simple_out)
            both = work / "observations.jsonl"
            both.write_bytes(ossf_out.read_bytes() + simple_out.read_bytes())
            p0 = time.monotonic()
            subprocess.run(
                [*py, "process", "--source", f"jsonl:{both}", "--sink", f"jsonl:{work / 'transitions.jsonl'}",
                 "--state-dir", str(work / "st-process"), "--once"],
                env=env, cwd=ROOT, check=True, capture_output=True,
            )  # fmt: skip
            stages["process"] = {
                "seconds": round(time.monotonic() - p0, 2),
                "observations": _lines(both),
                "transitions": _lines(work / "transitions.jsonl"),
            }
            total = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
    slowest = max(stages["openssf"]["seconds"], stages["pypi-simple"]["seconds"])
    result = {
        "upstream": {
            "openssf": f"shared/fixtures/ossf-history at {BUNDLE_HEAD[:12]}",
            "root_projects": args.projects,
            "watched": args.watch,
            "fake_pypi_start_seconds": round(fake_seconds, 1),
        },
        "stages": stages,
        "total_seconds": round(total, 2),
        "baseline": {"seconds": slowest, "method": "the slower ingestor alone (both ran side by side)"},
        "python": platform.python_version(),
        "load_average": round(os.getloadavg()[0], 1),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
