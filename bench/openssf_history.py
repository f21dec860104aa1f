"""The whole real OpenSSF history, replayed commit by commit through the real ingestor and processor, and checked.

``shared/fixtures/ossf-history`` holds 1,634 commits (1,582 first-parent, July 2023 to December 2024) of a real
malicious-packages pipeline. This runs, on a bare clone of it:

  1. **replay**: the first run at the first commit (a snapshot: nothing there yet), then ``--per-commit`` to the
     head: one step per first-parent commit, each merge's step carrying its second parent's changes;
  2. **snapshot**: a fresh first run at the head (every report ``existing`` or ``withdrawn``);

feeds each run's observations to ``processors.core.step`` per (ecosystem, package), and checks the invariant of the
fixture's README with the independent reader of ``tests/ingestors/openssf/test_history.py`` (git CLI + ``json.loads``):
(a) every package's live reports equal the ids under ``osv/malicious/`` at the head that name it, (b) no REPORTED for an
id under ``osv/withdrawn/`` at the commit that produced it, (c) no REPORTED twice for a (package, report) without a
REPORT_WITHDRAWN between. It also folds the observations by their documented meaning without the processor, so a
mismatch can be told apart: ingestor output, or processor handling.

    .venv/bin/python bench/openssf_history.py [--keep DIR]

Prints the counts and elapsed seconds and writes bench/out/openssf_history.json. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qwatch.events import ReportObserved  # noqa: E402
from tests.ingestors.openssf.test_history import (  # noqa: E402 - the shared checks live with the test
    BUNDLE_HEAD,
    Oracle,
    Verdict,
    check,
    clone_history,
    first_parents,
    fold,
    history_bundle,
    ingest,
    mismatches,
    process,
    revived_while_withdrawn,
    snapshot_then_follow,
)

OUT = ROOT / "bench" / "out" / "openssf_history.json"


def _count_commits(git_dir: Path) -> tuple[int, int, int]:
    def count(*args: str) -> int:
        out = subprocess.run(
            ["git", "--git-dir", str(git_dir), "rev-list", "--count", *args, "main"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return int(out)

    return count(), count("--first-parent"), count("--merges")


def _evaluate(
    label: str, observations: list[ReportObserved], oracle: Oracle, ingest_seconds: float
) -> tuple[dict[str, Any], Verdict]:
    started = time.monotonic()
    processed = process(observations)
    process_seconds = time.monotonic() - started
    started = time.monotonic()
    verdict = check(processed, oracle, BUNDLE_HEAD)
    folded = mismatches(fold(observations), oracle.live(BUNDLE_HEAD))
    revived = revived_while_withdrawn(observations, oracle)
    check_seconds = time.monotonic() - started
    kinds = Counter(t.kind for _, t in processed.transitions)
    examples: dict[str, list[Any]] = {
        "a": [[list(k), sorted(extra), sorted(missing)] for k, (extra, missing) in sorted(verdict.live.items())[:5]],
        "b": [list(x) for x in verdict.reported_while_withdrawn[:5]],
        "c": [list(x) for x in verdict.reported_twice[:5]],
        "fold": [[list(k), sorted(e), sorted(m)] for k, (e, m) in sorted(folded.items())[:5]],
        "revived": [list(x) for x in revived[:5]],
    }
    result: dict[str, Any] = {
        "observations": len(observations),
        "observations_by_change": dict(sorted(Counter(o.change for o in observations).items())),
        "commits_with_observations": len({o.commit for o in observations}),
        "transitions": len(processed.transitions),
        "transitions_by_kind": dict(sorted(kinds.items())),
        "packages_with_state": len(processed.states),
        "packages_with_live_reports": sum(
            1 for s in processed.states.values() if any(r.status == "live" for r in s.reports)
        ),
        "mismatches": {
            "a_live_reports_per_package": len(verdict.live),
            "b_reported_while_withdrawn": len(verdict.reported_while_withdrawn),
            "c_reported_twice": len(verdict.reported_twice),
            "ingestor_fold_vs_head": len(folded),
            "ingestor_live_change_while_withdrawn": len(revived),
        },
        "examples": examples,
        "seconds": {
            "ingest": round(ingest_seconds, 1),
            "process": round(process_seconds, 1),
            "check": round(check_seconds, 1),
        },
    }
    print(f"\n== {label}")
    print(
        f"observations {result['observations']:,} over {result['commits_with_observations']:,} commits: "
        f"{result['observations_by_change']}"
    )
    print(f"transitions {result['transitions']:,}: {result['transitions_by_kind']}")
    print(
        f"packages: {result['packages_with_state']:,} with state, "
        f"{result['packages_with_live_reports']:,} with live reports"
    )
    print(f"mismatches: {result['mismatches']}")
    for part, rows in examples.items():
        if rows:
            print(f"  e.g. ({part}) {rows[:3]}")
    print(f"seconds: {result['seconds']}")
    return result, verdict


def main(argv: list[str] | None = None) -> int:
    """Clone, replay, snapshot, process, check, print; non-zero when the invariant does not hold."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, default=None, help="work in this directory and keep it")
    args = parser.parse_args(argv)
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qwatch-ossf-history-") as tmp:
        work = args.keep if args.keep is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        git_dir = clone_history(work / "R")
        clone_seconds = time.monotonic() - started
        total, first_parent, merges = _count_commits(git_dir)
        commits = first_parents(git_dir)
        oracle = Oracle(git_dir)
        started = time.monotonic()
        head_live = oracle.live(BUNDLE_HEAD)
        head_withdrawn = oracle.withdrawn_ids(BUNDLE_HEAD)
        oracle_seconds = time.monotonic() - started
        print(f"bundle {history_bundle()} (cloned in {clone_seconds:.1f}s)")
        print(f"commits: {total:,} ({first_parent:,} first-parent, {merges} merges); head {commits[-1][:12]}")
        print(
            f"head, read independently in {oracle_seconds:.1f}s: {sum(len(v) for v in head_live.values()):,} "
            f"(package, live report) pairs over {len(head_live):,} packages, {len(head_withdrawn)} withdrawn ids"
        )

        started = time.monotonic()
        replayed = snapshot_then_follow(git_dir, work / "replay", commits[0])
        replay, replay_verdict = _evaluate(
            f"replay: first run at {commits[0][:12]}, then per commit ({len(commits) - 1:,} steps) to the head",
            replayed,
            oracle,
            time.monotonic() - started,
        )
        del replayed
        started = time.monotonic()
        snapped = ingest(git_dir, work / "snapshot")
        snapshot, snapshot_verdict = _evaluate(
            "snapshot of the head (a fresh first run)", snapped, oracle, time.monotonic() - started
        )
        del snapped
    elapsed = time.monotonic() - wall
    ok = replay_verdict.ok and snapshot_verdict.ok
    ok = ok and not any(replay["mismatches"].values()) and not any(snapshot["mismatches"].values())
    print(f"\ninvariant {'holds' if ok else 'DOES NOT HOLD'}; elapsed {elapsed:.1f}s")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "commits": {"total": total, "first_parent": first_parent, "merges": merges, "steps": len(commits) - 1},
                "head": {
                    "live_pairs": sum(len(v) for v in head_live.values()),
                    "packages": len(head_live),
                    "withdrawn_ids": len(head_withdrawn),
                },
                "replay": replay,
                "snapshot": snapshot,
                "ok": ok,
                "elapsed_seconds": round(elapsed, 1),
                "python": platform.python_version(),
            },
            indent=2,
        )
        + "\n"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
