"""Long simulation run: the processor core against the reference model over many seeds (tests/simulation/).

    .venv/bin/python bench/simulation.py                     # 100,000 seeds from 0
    .venv/bin/python bench/simulation.py --seeds 5000 --start 200000 --jobs 2

Progress goes to stderr; the last line of stdout is the summary: seeds run, interleavings checked, failures,
elapsed seconds, and the replay commands of up to 10 failing seeds. With ``--classes``, each failure class is
listed on stderr first with a count and one seed. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.simulation.harness import REPLAY_HINT, Budget, run_seed  # noqa: E402


def _one(seed: int) -> tuple[int, int, list[str]]:
    result = run_seed(seed, Budget())
    classes = sorted({c for f in result.failures for c in f.classes()})
    return seed, result.interleavings, classes


def main(argv: list[str] | None = None) -> int:
    """Run the seeds, print progress and the summary; 1 if any seed failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100_000, help="how many seeds (default 100,000)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)")
    parser.add_argument("--classes", action="store_true", help="list failure classes with a seed each (stderr)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    interleavings = 0
    failing: list[int] = []
    classes: Counter[str] = Counter()
    example: dict[str, int] = {}
    seeds = range(args.start, args.start + args.seeds)
    step = max(1, args.seeds // 100)
    done = 0

    def record(seed: int, n: int, found: list[str]) -> None:
        nonlocal interleavings, done
        interleavings += n
        done += 1
        if found:
            failing.append(seed)
        for c in found:
            classes[c] += 1
            example.setdefault(c, seed)
        if done % step == 0 or done == args.seeds:
            rate = done / max(time.monotonic() - started, 1e-9)
            print(
                f"\r{done}/{args.seeds} seeds, {interleavings} interleavings, {len(failing)} failing, {rate:.0f}/s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            for seed, n, found in pool.map(_one, seeds, chunksize=64):
                record(seed, n, found)
    else:
        for seed in seeds:
            record(*_one(seed))
    print(file=sys.stderr)
    elapsed = time.monotonic() - started
    if args.classes:
        for c, n in classes.most_common():
            print(f"{n:7d}  {c}  (e.g. seed {example[c]})", file=sys.stderr)
    failing.sort()
    replays = " | ".join(REPLAY_HINT.format(seed=s) for s in failing[:10])
    print(
        f"seeds={args.seeds} interleavings={interleavings} failures={len(failing)} elapsed_s={elapsed:.1f}"
        + (f" replay: {replays}" if failing else "")
    )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
