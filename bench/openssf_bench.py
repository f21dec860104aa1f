"""OpenSSF snapshot throughput vs the fastest simple equivalent, measured in the same run, on two repositories.

Builds a real bare git repository of N OSV files: blobs through ``git fast-import``, trees as one pack indexed
(and verified) by ``git index-pack``. fast-import's own tree handling scans a directory linearly per file, which
made one 250k-entry directory take ~7 minutes; upstream's ``osv/malicious/npm`` is that wide too. Every file is
one of the real records from the fixture bundle and the edge cases, with its id and package name varied so that
every path and id is unique. Then it times, in a fresh child process:
  (a) the snapshot through the real ingestor (GitSource + ReportIndex + OpenSSFService) into a counting sink
      (twice, each in a fresh state, the faster counted, as the baseline's best of two; peak RSS the higher),
  (b) an incremental poll over a commit that adds and modifies 10 reports each,
  (c) a poll with no change.
Peak RSS comes from ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` of that child (it includes its git helpers).
The baseline is the fastest simple way to do the same reading with the same tools: ``git ls-tree -r -z`` of the
scope, one ``git cat-file --batch`` process streaming every blob (fed by a thread), ``json.loads`` of each; run in
full (best of 2) on the same commit. (An earlier version compared with ``git show`` per file: a straw man.)

The same two contenders then run on the real history of ``shared/fixtures/ossf-history`` at its head (best of
``--rounds`` each, the ingestor in fresh children).

Usage: python bench/openssf_bench.py [--files N] [--rounds N] [--keep DIR]
Writes bench/out/openssf.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("QWATCH_SHARED_FIXTURES") or ROOT.parent / "shared" / "fixtures") / "ossf-sample"
OUT = ROOT / "bench" / "out" / "openssf.json"
PENDING_EVERY = 200
"""One file in 200 is a pending ``MAL-0000`` file (id ""), as between an ingest and its "Assign IDs"."""


# -- building the synthetic repository ------------------------------------------------------------------------
def _templates() -> list[tuple[str, dict[str, Any]]]:
    """(path, record) for every parseable real report: the bundle's head tree plus the edge cases."""
    out: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "a.git"
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(FIXTURES / "ossf-pypi-sample.bundle"), str(repo)], check=True
        )
        listing = subprocess.run(
            ["git", "-C", str(repo), "ls-tree", "-r", "-z", "HEAD", "--", "osv"], check=True, capture_output=True
        ).stdout
        entries = [rec.split(b"\t", 1) for rec in listing.split(b"\0") if rec]
        shas = b"".join(meta.split()[2] + b"\n" for meta, _ in entries)
        cat = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "--batch"], input=shas, check=True, capture_output=True
        ).stdout
        pos = 0
        for _, raw_path in entries:
            header_end = cat.index(b"\n", pos)
            size = int(cat[pos:header_end].split()[2])
            data = cat[header_end + 1 : header_end + 1 + size]
            pos = header_end + 2 + size
            _keep(out, raw_path.decode(), data)
    for file in sorted((FIXTURES / "edge-cases" / "osv").rglob("*.json")):
        _keep(out, file.relative_to(FIXTURES / "edge-cases").as_posix(), file.read_bytes())
    return out


def _keep(out: list[tuple[str, dict[str, Any]]], path: str, data: bytes) -> None:
    try:
        doc = json.loads(data)
    except ValueError:
        return
    if isinstance(doc, dict) and doc.get("id") and not Path(path).name.startswith("MAL-0000"):
        out.append((path, doc))


def _synthetic(path: str, doc: dict[str, Any], i: int) -> tuple[str, bytes]:
    """Vary id and name; keep state dir and ecosystem dir of the template. The doc is reused, so set every field."""
    parts = path.split("/")
    state, eco_dir = parts[1], parts[2]
    pkg = doc["affected"][0]["package"]
    base_name = pkg.setdefault("_orig", pkg["name"])
    name = f"{base_name}-s{i}"
    pending = i % PENDING_EVERY == 0
    record_id = "" if pending else f"MAL-2030-{i + 1}"
    doc["id"] = record_id
    pkg_out = dict(pkg, name=name)
    pkg_out.pop("_orig")
    record = dict(doc, affected=[dict(doc["affected"][0], package=pkg_out)] + doc["affected"][1:])
    file_name = f"MAL-0000-synthetic-{i:016x}.json" if pending else f"{record_id}.json"
    pkg_dir = name.lower() if eco_dir in ("pypi", "nuget", "rubygems", "vscode") else name
    return f"osv/{state}/{eco_dir}/{pkg_dir}/{file_name}", json.dumps(record, indent=2).encode()


def _write_blobs(repo: Path, datas: list[bytes]) -> list[str]:
    """Store blobs with ``git fast-import`` (blob commands only: no tree bookkeeping) and return their shas."""
    marks = repo / "bench-marks"
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "fast-import", "--quiet", f"--export-marks={marks}"], stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    for i, data in enumerate(datas, start=1):
        proc.stdin.write(f"blob\nmark :{i}\ndata {len(data)}\n".encode() + data + b"\n")
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    by_mark = dict(line.split() for line in marks.read_text().splitlines())
    marks.unlink()
    return [by_mark[f":{i}"] for i in range(1, len(datas) + 1)]


def _tree_objects(files: dict[str, str], written: set[bytes]) -> tuple[str, list[bytes]]:
    """Raw git tree objects for ``files`` (path → blob sha), bottom-up; returns (root sha, trees not yet written)."""
    children: dict[str, dict[bytes, tuple[bytes, bytes]]] = {"": {}}
    for path, blob_hex in files.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            children.setdefault("/".join(parts[:depth]), {})
        children["/".join(parts[:-1])][parts[-1].encode()] = (b"100644", bytes.fromhex(blob_hex))
    fresh: list[bytes] = []
    root = b""
    for d in sorted(children, key=lambda x: -x.count("/") if x else 1):
        # git orders entries by name, comparing a directory as if its name ended in "/"
        entries = sorted(children[d].items(), key=lambda kv: kv[0] + (b"/" if kv[1][0] == b"40000" else b""))
        data = b"".join(mode + b" " + entry + b"\0" + oid for entry, (mode, oid) in entries)
        tree_sha = hashlib.sha1(b"tree %d\0" % len(data) + data, usedforsecurity=False).digest()
        if tree_sha not in written:
            written.add(tree_sha)
            fresh.append(data)
        if d:
            parent, _, base = d.rpartition("/")
            children[parent][base.encode()] = (b"40000", tree_sha)
        else:
            root = tree_sha
    return root.hex(), fresh


def _write_pack(repo: Path, trees: list[bytes]) -> None:
    """Store tree objects as one pack (type 2 = tree) and let ``git index-pack`` verify and index it."""
    pack_dir = repo / "objects" / "pack"
    tmp = pack_dir / "tmp-bench.pack"
    with open(tmp, "wb") as fh:
        fh.write(b"PACK" + struct.pack(">II", 2, len(trees)))
        for data in trees:
            size = len(data)
            header = bytearray()
            byte = (2 << 4) | (size & 0x0F)
            size >>= 4
            while size:
                header.append(byte | 0x80)
                byte = size & 0x7F
                size >>= 7
            header.append(byte)
            fh.write(bytes(header) + zlib.compress(data, 1))
    digest = hashlib.sha1(tmp.read_bytes(), usedforsecurity=False).digest()
    with open(tmp, "ab") as fh:
        fh.write(digest)
    subprocess.run(["git", "-C", str(repo), "index-pack", str(tmp)], check=True, capture_output=True)
    for ext in ("pack", "idx"):
        tmp.with_suffix(f".{ext}").rename(pack_dir / f"pack-{digest.hex()}.{ext}")


def _commit(repo: Path, ref: str, tree: str, when: int, message: str, parent: str | None) -> str:
    env = {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_AUTHOR_DATE": f"{when} +0000",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_DATE": f"{when} +0000",
        "PATH": os.environ.get("PATH", ""),
    }
    cmd = ["git", "-C", str(repo), "commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
    sha = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip()
    subprocess.run(["git", "-C", str(repo), "update-ref", ref, sha], check=True)
    return sha


def build_repo(repo: Path, files: int) -> dict[str, Any]:
    """A bare repo: ``base`` holds ``files`` files; ``main`` adds 10 and modifies 10 on top of it."""
    templates = _templates()
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True)
    kinds: Counter[str] = Counter()
    paths: list[str] = []
    datas: list[bytes] = []
    for i in range(files):
        path, data = _synthetic(*templates[i % len(templates)], i)
        kinds[path.split("/")[1] + ("-pending" if "MAL-0000" in path else "")] += 1
        paths.append(path)
        datas.append(data)
    tree = dict(zip(paths, _write_blobs(repo, datas), strict=True))
    del datas
    written: set[bytes] = set()
    root, trees = _tree_objects(tree, written)
    _write_pack(repo, trees)
    base = _commit(repo, "refs/heads/base", root, 1_767_225_600, "Synthetic snapshot", None)
    changed = [_synthetic(*templates[j % len(templates)], files + j) for j in range(10)]
    for j in range(1, 11):
        path, data = _synthetic(*templates[(j * 7) % len(templates)], j * 7)
        changed.append((path, data.replace(b'"summary": "', b'"summary": "(updated) ')))
    tree.update(zip([p for p, _ in changed], _write_blobs(repo, [d for _, d in changed]), strict=True))
    root, trees = _tree_objects(tree, written)
    _write_pack(repo, trees)
    _commit(repo, "refs/heads/main", root, 1_767_225_900, "Assign IDs", base)
    return {"templates": len(templates), "kinds": dict(kinds)}


def _cpu() -> float:
    """User + system CPU seconds of this process and of its waited-for children (the git helpers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> float:
    return round(os.getloadavg()[0], 1)


# -- the measured child ---------------------------------------------------------------------------------------
class CountingSink:
    """Counts events by type; flush has nothing to wait for, so the figure is the ingestor's own cost."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def emit(self, event: object, topic: str | None = None) -> None:
        self.counts[type(event).__name__] += 1

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def worker(repo: Path, state: Path, snapshot_only: str | None = None) -> dict[str, Any]:
    """Snapshot ``base``, then poll ``main`` (10 added + 10 modified), then poll again (no change); or, with
    ``snapshot_only``, just the snapshot of that branch."""
    from prometheus_client import CollectorRegistry

    from ingestors.openssf.config import OpenSSFConfig
    from ingestors.openssf.index import ReportIndex
    from ingestors.openssf.service import OpenSSFService
    from qwatch.cursors import FileCursorStore
    from qwatch.metrics import Metrics
    from qwatch.openssf.gitsource import GitSource

    metrics = Metrics(CollectorRegistry())
    cursors = FileCursorStore(state)
    results: dict[str, Any] = {}
    plan = (
        (("snapshot", snapshot_only),)
        if snapshot_only
        else (("snapshot", "base"), ("incremental", "main"), ("nochange", "main"))
    )
    for label, branch in plan:
        sink = CountingSink()
        cfg = OpenSSFConfig(repo=str(repo), branch=branch)
        source = GitSource.open(str(repo), branch, state / "work", metrics)
        index = ReportIndex(state / "index.sqlite")
        service = OpenSSFService(cfg, source, index, sink, cursors, metrics, "bench")
        c0 = _cpu()
        t0 = time.perf_counter()
        result = service.poll()
        elapsed = time.perf_counter() - t0
        source.close()  # waits for git cat-file, so its CPU time is counted
        cpu = _cpu() - c0
        index.close()
        results[label] = {
            "seconds": round(elapsed, 4),
            "cpu_seconds": round(cpu, 4),
            "events": dict(sink.counts),
            "files": sum(s.files for s in result.steps),
            "pending": sum(s.pending for s in result.steps),
        }
    return results


def meter(repo: Path, state: Path, snapshot_only: str | None = None) -> dict[str, Any]:
    """Run the worker as this process's only child, so RUSAGE_CHILDREN is its peak (git helpers included)."""
    cmd = [sys.executable, __file__, "--worker", str(repo), str(state), *([snapshot_only] if snapshot_only else [])]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    results: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return results


def measure(repo: Path, state: Path, snapshot_only: str | None = None) -> dict[str, Any]:
    """The meter runs in a fresh process: this one already waited for fast-import and index-pack."""
    cmd = [sys.executable, __file__, "--meter", str(repo), str(state), *([snapshot_only] if snapshot_only else [])]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# -- the baseline ---------------------------------------------------------------------------------------------
def baseline(repo: Path, rev: str, decoder: str = "json") -> dict[str, Any]:
    """The fastest simple way to do the snapshot's work with the same tools: ``git ls-tree -r -z`` of the scope,
    one ``git cat-file --batch`` process streaming every blob (a thread feeds it the shas, so git and Python work
    at once), and ``json.loads`` of each. Run in full, never extrapolated; no index, no events, no validation.

    ``decoder="orjson"``: the same with ``orjson.loads``, the reader the ingestor itself uses since it became a
    dependency, so the report also shows the ratio against the baseline with the same libraries as the ingestor."""
    from qwatch.openssf.gitsource import SCOPE_PATHSPECS

    loads: Any = json.loads
    if decoder == "orjson":
        import orjson

        loads = orjson.loads

    c0 = _cpu()
    t0 = time.perf_counter()
    listing = subprocess.run(
        ["git", "--git-dir", str(repo), "ls-tree", "-r", "-z", "--full-tree", rev, "--", *SCOPE_PATHSPECS],
        check=True,
        capture_output=True,
    ).stdout
    shas = []
    for rec in listing.split(b"\0"):
        meta, _, path = rec.partition(b"\t")
        fields = meta.split()
        if len(fields) == 3 and fields[1] == b"blob" and path.endswith(b".json"):
            shas.append(fields[2])
    cat = subprocess.Popen(
        ["git", "--git-dir", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert cat.stdin is not None and cat.stdout is not None
    stdin = cat.stdin

    def feed() -> None:
        stdin.write(b"".join(sha + b"\n" for sha in shas))
        stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    parsed = 0
    for _ in shas:
        size = int(cat.stdout.readline().split()[2])
        try:
            loads(cat.stdout.read(size))
            parsed += 1
        except ValueError:
            pass
        cat.stdout.read(1)
    cat.wait()
    feeder.join()
    elapsed = time.perf_counter() - t0
    cpu = _cpu() - c0
    return {
        "cpu_seconds": round(cpu, 3),
        "records_per_cpu_s": round(parsed / cpu, 1),
        "load_average": _load(),
        "method": f"git ls-tree -r -z + one git cat-file --batch streaming every blob + {decoder}.loads (full run)",
        "files": len(shas),
        "parsed": parsed,
        "seconds": round(elapsed, 3),
        "records_per_s": round(parsed / elapsed, 1),
    }


def best_baseline(repo: Path, rev: str, rounds: int, decoder: str = "json") -> dict[str, Any]:
    """The fastest of ``rounds`` baseline runs (the host is shared: the best run is the fair comparison)."""
    runs = [baseline(repo, rev, decoder) for _ in range(rounds)]
    best = max(runs, key=lambda r: r["records_per_s"])
    return {
        **best,
        "rounds": rounds,
        "all_records_per_s": [r["records_per_s"] for r in runs],
        "best_records_per_cpu_s": max(r["records_per_cpu_s"] for r in runs),
    }


def real_history(rounds: int) -> dict[str, Any]:
    """The shared real history (``shared/fixtures/ossf-history``) at its head: the ingestor's snapshot (best of
    ``rounds`` fresh children) against the baseline (best of ``rounds``) on the same repository and commit."""
    sys.path.insert(0, str(ROOT))
    from tests.ingestors.openssf.test_history import BUNDLE_HEAD, clone_history

    with tempfile.TemporaryDirectory(prefix="qwatch-ossf-real-") as tmp:
        repo = clone_history(Path(tmp) / "R")
        runs, bases, fast_bases = [], [], []
        for i in range(rounds):  # interleaved, so a busy spell on the shared host hits every contender
            bases.append(baseline(repo, "main"))
            fast_bases.append(baseline(repo, "main", "orjson"))
            state = Path(tmp) / f"state{i}"
            state.mkdir()
            runs.append(measure(repo, state, snapshot_only="main"))
        best = min(runs, key=lambda r: r["snapshot"]["seconds"])
        snap = best["snapshot"]
        records = snap["events"].get("ReportObserved", 0)
        base = {**max(bases, key=lambda r: r["records_per_s"]), "rounds": rounds}
        base["all_records_per_s"] = [r["records_per_s"] for r in bases]
        base["best_records_per_cpu_s"] = max(r["records_per_cpu_s"] for r in bases)
        cpu = min(r["snapshot"]["cpu_seconds"] for r in runs)
        fast = {**max(fast_bases, key=lambda r: r["records_per_s"]), "rounds": rounds}
        fast["all_records_per_s"] = [r["records_per_s"] for r in fast_bases]
    rate = records / snap["seconds"]
    return {
        "repository": f"shared/fixtures/ossf-history at {BUNDLE_HEAD[:12]}",
        "snapshot": {
            **snap,
            "records": records,
            "records_per_s": round(rate, 1),
            "records_per_cpu_s": round(records / cpu, 1),
        },
        "ratio_per_cpu_s": round(records / cpu / base["best_records_per_cpu_s"], 3),
        "load_average": _load(),
        "snapshot_rounds_seconds": [r["snapshot"]["seconds"] for r in runs],
        "peak_rss_mib": best["peak_rss_mib"],
        "baseline": base,
        "ratio_vs_baseline": round(rate / base["records_per_s"], 3),
        "orjson_baseline": fast,
        "ratio_vs_orjson_baseline": round(rate / fast["records_per_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=250_000, help="OSV files in the synthetic tree")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each contender on the real history")
    parser.add_argument("--sample", type=int, default=None, help=argparse.SUPPRESS)  # the old sampled baseline
    parser.add_argument("--keep", type=Path, default=None, help="build the repo here and keep it")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--meter", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker or args.meter:
        repo, state, *only = args.worker or args.meter
        child = worker if args.worker else meter
        print(json.dumps(child(Path(repo), Path(state), only[0] if only else None)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="qwatch-openssf-bench-"))
    try:
        base = args.keep or tmp
        repo = base / "synthetic.git"
        if repo.exists():
            shutil.rmtree(repo)
        t0 = time.perf_counter()
        built = build_repo(repo, args.files)
        build_seconds = time.perf_counter() - t0
        print(f"built {args.files:,} files in {build_seconds:.1f}s", file=sys.stderr)
        state = tmp / "state"
        state.mkdir()
        # Each contender twice, interleaved, the faster run of each compared: one busy spell on the shared host
        # cannot decide the ratio alone (the real history below does the same with --rounds).
        before = best_baseline(repo, "base", 1)
        run = measure(repo, state)
        again_state = tmp / "state-again"
        again_state.mkdir()
        again = measure(repo, again_state, snapshot_only="base")
        snapshot_rounds = [run["snapshot"]["seconds"], again["snapshot"]["seconds"]]
        faster = again if again["snapshot"]["seconds"] < run["snapshot"]["seconds"] else run
        run = {**run, "snapshot": faster["snapshot"], "peak_rss_mib": max(run["peak_rss_mib"], again["peak_rss_mib"])}
        snap = run["snapshot"]
        records = snap["events"].get("ReportObserved", 0)
        rate = records / snap["seconds"]
        after = best_baseline(repo, "base", 1)
        base_figs = max(before, after, key=lambda r: r["records_per_s"])
        base_figs["all_records_per_s"] = [before["records_per_s"], after["records_per_s"]]
        base_figs["best_records_per_cpu_s"] = max(before["records_per_cpu_s"], after["records_per_cpu_s"])
        fast_base = best_baseline(repo, "base", 1, "orjson")
        report = {
            "files": args.files,
            "build": {"seconds": round(build_seconds, 1), **built},
            "snapshot": {
                **snap,
                "records": records,
                "records_per_s": round(rate, 1),
                "files_per_s": round(snap["files"] / snap["seconds"], 1),
                "records_per_cpu_s": round(records / snap["cpu_seconds"], 1),
            },
            "ratio_per_cpu_s": round(records / snap["cpu_seconds"] / base_figs["best_records_per_cpu_s"], 3),
            "snapshot_rounds_seconds": snapshot_rounds,
            "load_average": _load(),
            "peak_rss_mib": run["peak_rss_mib"],
            "baseline": base_figs,
            "ratio_vs_baseline": round(rate / base_figs["records_per_s"], 3),
            "orjson_baseline": fast_base,
            "ratio_vs_orjson_baseline": round(rate / fast_base["records_per_s"], 3),
            "incremental_poll": run["incremental"],
            "nochange_poll": run["nochange"],
            "real_history": real_history(args.rounds),
            "targets": {
                "ratio>=0.5": rate / base_figs["records_per_s"] >= 0.5,
                "peak_rss<256MiB": run["peak_rss_mib"] < 256,
                "nochange_poll<1s": run["nochange"]["seconds"] < 1.0,
            },
            "platform": {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip(),
            },
        }
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
