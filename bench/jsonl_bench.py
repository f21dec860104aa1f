"""``qwatch process`` in JSONL mode (``--state-dir``) on the real OpenSSF history, against the pure core.

The stream: the real history of ``shared/fixtures/ossf-history`` replayed through the real ingestor (a first run at
the first commit, then ``--per-commit`` to the head: about 35k ReportObserved), written as JSONL.

Contenders, same stream, same machine, same run:
  * **baseline, the pure core**: ``processors.core.step`` over a dict of states, observations already decoded
    (best of 3). This is the ceiling: no decoding, no output, no state on disk.
  * **JSONL processor**: the code ``qwatch process --source jsonl: --sink jsonl: --state-dir`` runs (BatchRunner,
    JsonlSource, JsonlSink, FileStateStore), timed per batch, so the throughput of the first and the last 10% of
    the stream can be compared: a store that rewrites every state per batch slows down as the state grows.
  * **the same with the previous store** (every state rewritten after every batch), to show what changed, and
    **without ``--state-dir``** (no state on disk at all): the most any store could give back.
  * the ``qwatch process`` command itself (a subprocess, interpreter start included), wall time.

The in-process contenders run with the collector tuned as ``qwatch process`` tunes it (``processors.tuning``).

Usage: python bench/jsonl_bench.py [--keep DIR]
Writes bench/out/jsonl.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from processors.core import step  # noqa: E402
from processors.runner import BatchRunner  # noqa: E402
from processors.store import FileStateStore  # noqa: E402
from processors.tuning import tune_gc  # noqa: E402
from qwatch import ids  # noqa: E402
from qwatch.events.codec import Codec  # noqa: E402
from qwatch.events.state import PackageStateRecord, state_key  # noqa: E402
from qwatch.metrics import Metrics  # noqa: E402
from qwatch.sinks import Delivery, JsonlSink, JsonlSource  # noqa: E402

OUT = ROOT / "bench" / "out" / "jsonl.json"
RATIO_TARGET = 0.3
FLAT_TARGET = 0.8
"""The last 10% of the stream must run at least this fraction of the first 10%'s rate ("the same throughput")."""


def build_stream(work: Path) -> Path:
    """The replayed history as JSONL (cached in ``work`` between runs with ``--keep``)."""
    path = work / "observations.jsonl"
    if path.exists():
        return path
    from tests.ingestors.openssf.test_history import clone_history, first_parents, snapshot_then_follow

    git_dir = clone_history(work / "R") if not (work / "R").exists() else work / "R"
    commits = first_parents(git_dir)
    t0 = time.monotonic()
    observed = snapshot_then_follow(git_dir, work / "ingest", commits[0])
    print(f"ingested {len(observed):,} observations in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    codec = Codec()
    with open(path, "w", encoding="utf-8") as fh:
        for o in observed:
            fh.write(json.dumps(codec.to_json_dict(o), separators=(",", ":"), ensure_ascii=False) + "\n")
    return path


def bench_core(path: Path, rounds: int = 3) -> dict[str, Any]:
    codec = Codec()
    observations = [codec.from_json_dict(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
    best = float("inf")
    for _ in range(rounds):
        states: dict[str, PackageStateRecord] = {}
        gc.collect()
        t0 = time.perf_counter()
        for o in observations:
            key = state_key(o.ecosystem, o.package)
            result = step(states.get(key), o, o.observed_at)
            if result.state is not None:
                states[key] = result.state
        best = min(best, time.perf_counter() - t0)
    return {
        "observations": len(observations),
        "seconds": round(best, 3),
        "observations_per_s": round(len(observations) / best, 1),
    }


class TimedSource:
    """A JsonlSource that remembers when each batch was handed out (the runner processes it before asking again)."""

    def __init__(self, inner: JsonlSource) -> None:
        self.inner = inner
        self.marks: list[tuple[float, int]] = [(time.perf_counter(), 0)]
        self.count = 0

    @property
    def exhausted(self) -> bool:
        return self.inner.exhausted

    def poll(self, timeout: float) -> list[Delivery]:
        self.marks.append((time.perf_counter(), self.count))  # the previous batch is done by now
        batch = self.inner.poll(timeout)
        self.count += len(batch)
        return batch

    def commit(self) -> None:
        self.inner.commit()

    def close(self) -> None:
        self.inner.close()


class RewriteEveryBatch(FileStateStore):
    """The previous store: every state written after every batch (for the before/after figure only)."""

    def append(self, changed: dict[str, PackageStateRecord], states: dict[str, PackageStateRecord]) -> None:
        if changed:
            self.compact(states)


def _rate_between(marks: list[tuple[float, int]], lo: int, hi: int) -> float:
    """Observations per second over the batches that cover observations ``lo``..``hi``."""
    start = max((m for m in marks if m[1] <= lo), key=lambda m: m[1])
    end = min((m for m in marks if m[1] >= hi), key=lambda m: m[1])
    return (end[1] - start[1]) / max(end[0] - start[0], 1e-9)


def bench_runner(path: Path, work: Path, store_cls: type[FileStateStore] | None) -> dict[str, Any]:
    """The runner over the stream with ``store_cls`` as its ``--state-dir`` store (None: no state on disk)."""
    codec = Codec()
    name = store_cls.__name__ if store_cls is not None else "none"
    state_dir = work / f"state-{name}"
    out = work / f"out-{name}.jsonl"
    for p in (*state_dir.glob("*"), out):
        p.unlink(missing_ok=True)
    store = store_cls(state_dir, codec) if store_cls is not None else None
    source = TimedSource(JsonlSource(str(path), codec))
    sink = JsonlSink(str(out), codec)
    runner = BatchRunner(source, sink, None, store, Metrics(CollectorRegistry()), ids.now_ms)
    gc.collect()
    t0 = time.perf_counter()
    stats = runner.run()
    elapsed = time.perf_counter() - t0
    sink.close()
    source.close()
    total = stats.observations
    tenth = total // 10
    first = _rate_between(source.marks, 0, tenth)
    last = _rate_between(source.marks, total - tenth, total)
    files = {p.name: p.stat().st_size for p in state_dir.iterdir()} if state_dir.exists() else {}
    return {
        "store": name,
        "observations": total,
        "transitions": stats.transitions,
        "seconds": round(elapsed, 3),
        "observations_per_s": round(total / elapsed, 1),
        "first_10pct_per_s": round(first, 1),
        "last_10pct_per_s": round(last, 1),
        "last_over_first": round(last / first, 3),
        "compactions": store.compactions if store is not None else 0,
        "state_files_bytes": files,
    }


def bench_cli(path: Path, work: Path) -> dict[str, Any]:
    state_dir, out = work / "state-cli", work / "out-cli.jsonl"
    for p in (*(state_dir.glob("*") if state_dir.exists() else []), out):
        p.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "app", "process", "--source", f"jsonl:{path}", "--sink", f"jsonl:{out}",
           "--state-dir", str(state_dir), "--once"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    elapsed = time.perf_counter() - t0
    lines = sum(1 for _ in open(path, encoding="utf-8"))
    return {
        "command": " ".join(["qwatch", *cmd[3:]]),
        "seconds": round(elapsed, 3),
        "observations_per_s": round(lines / elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the stream for the next run")
    parser.add_argument("--skip-previous", action="store_true", help="leave out the previous store's run")
    args = parser.parse_args()
    # ``qwatch process`` tunes the collector at start (processors.tuning); the in-process contenders run the same
    # way, the pure core included, so the comparison is the command's own code on both sides.
    tune_gc()
    with tempfile.TemporaryDirectory(prefix="qwatch-jsonl-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        path = build_stream(work)
        core = bench_core(path)
        ours = bench_runner(path, work, FileStateStore)
        floor = bench_runner(path, work, None)
        previous = None if args.skip_previous else bench_runner(path, work, RewriteEveryBatch)
        cli = bench_cli(path, work)
    ratio = ours["observations_per_s"] / core["observations_per_s"]
    result = {
        "stream": "shared/fixtures/ossf-history replayed per commit from its first commit (real ReportObserved)",
        "core": core,
        "jsonl": ours,
        "previous_store": previous,
        "no_state_dir": floor,
        "cli": cli,
        "ratio_vs_core": round(ratio, 3),
        "targets": {"ratio_vs_core": RATIO_TARGET, "last_over_first": FLAT_TARGET},
        "meets_targets": ratio >= RATIO_TARGET and ours["last_over_first"] >= FLAT_TARGET,
        "python": platform.python_version(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
