"""Replay one seed exactly: ``.venv/bin/python -m tests.simulation.replay SEED`` from the repository root.

Prints every failure of the seed with its shrunk observation sequence and the diff against the reference model;
``--verbose`` adds the upstream history and every package's streams. Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import sys

from . import streams, upstream
from .harness import Budget, dump, run_seed


def main(argv: list[str] | None = None) -> int:
    """Run one seed with the CI budget and print what failed."""
    parser = argparse.ArgumentParser(prog="python -m tests.simulation.replay", description=__doc__)
    parser.add_argument("seed", type=int)
    parser.add_argument("--verbose", action="store_true", help="print the upstream history and all streams too")
    parser.add_argument("--authority", choices=("journal", "pages"), help="only this authority")
    args = parser.parse_args(argv)
    if args.verbose:
        tl = upstream.generate(args.seed)
        print(f"== seed {args.seed}: upstream history")
        print("\n".join(tl.log))
        for package, ps in streams.build(tl).items():
            print(f"== {package}: streams in fetch-time order")
            print("\n".join(dump(sorted(ps.all(), key=lambda o: o.observed_at))))
    authorities = (args.authority,) if args.authority else ("journal", "pages")
    result = run_seed(args.seed, Budget(shrink=True), authorities)
    for f in result.failures:
        print(f.render())
        print()
    print(f"seed {args.seed}: {result.interleavings} interleavings, {len(result.failures)} failures")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
