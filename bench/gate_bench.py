"""``qwatch gate`` on a 500-package lockfile against the local fake PyPI: cold (empty cache) and warm (ETag cache).

The lockfile is a pip-compile style requirements.txt with hashes and a ``# via`` chain, so parsing and path
finding are part of the measurement. Each run goes through the real CLI entry point (in-process, so interpreter
start-up is not counted) with the default concurrency. Cold = every page downloaded; warm = every page
revalidated (304) from ``--cache-dir``. Writes bench/out/gate.json.
Usage: python bench/gate_bench.py [--packages N] [--repeat R]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from app.cli import main
from testing.fakepypi import FakePyPI

OUT = Path(__file__).parent / "out" / "gate.json"


def build(pypi: FakePyPI, n: int, lock: Path) -> None:
    """n projects a year old, and a requirements.txt pinning each with a hash and a via-chain of depth ~5."""
    lines = []
    old = time.time() - 400 * 86400
    for i in range(n):
        name = f"bench-pkg-{i:04d}"
        wheel = f"bench_pkg_{i:04d}-1.{i % 7}.0-py3-none-any.whl"
        pypi.add_project(name, {f"1.{i % 7}.0": [wheel]}, upload_time=old)
        via = "-r requirements.in" if i % 5 == 0 else f"bench-pkg-{i - 1:04d}"
        digest = hashlib.sha256(wheel.encode()).hexdigest()
        lines.append(f"{name}==1.{i % 7}.0 \\\n    --hash=sha256:{digest}\n    # via {via}\n")
    lock.write_text("".join(lines))


def run_gate(lock: Path, base: str, cache: Path) -> tuple[float, int]:
    sink = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        code = main(
            [
                "gate",
                "--lock",
                str(lock),
                "--index-url",
                f"{base}/simple/",
                "--format",
                "json",
                "--cache-dir",
                str(cache),
                "--soak",
                "72h",
                "--log-level",
                "WARNING",
            ]
        )
    elapsed = time.perf_counter() - started
    doc = json.loads(sink.getvalue())
    assert code == 0 and doc["counts"]["checked"] > 0, doc["message"]
    return elapsed, doc["counts"]["checked"]


def main_bench() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pypi = FakePyPI()
    cold: list[float] = []
    warm: list[float] = []
    statuses: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp_name, pypi.serve() as base:
        tmp = Path(tmp_name)
        lock = tmp / "requirements.txt"
        build(pypi, args.packages, lock)
        checked = 0
        for r in range(args.repeat):
            cache = tmp / f"cache-{r}"
            seconds, checked = run_gate(lock, base, cache)
            cold.append(seconds)
            pypi.reset_requests()
            seconds, _ = run_gate(lock, base, cache)
            warm.append(seconds)
            for _, _, status in pypi.requests:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
    result = {
        "machine": f"{platform.machine()}  py{platform.python_version()}",
        "packages": checked,
        "repeat": args.repeat,
        "cold_seconds": statistics.median(cold),
        "warm_seconds": statistics.median(warm),
        "cold_runs": cold,
        "warm_runs": warm,
        "warm_response_statuses": statuses,
        "concurrency": 16,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main_bench(), indent=2))
