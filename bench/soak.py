"""Soak: ``qwatch up --demo --churn`` for ten minutes, sampling every process's memory, to show it stays flat.

The pipeline runs exactly as a user starts it (one ``qwatch up`` process that owns the broker, the demo upstream
and the supervised components). Every ``--every`` seconds this script walks that process tree in /proc and records
each process's resident set (VmRSS) by component: the ``up`` parent (which also hosts the fake PyPI and the webhook
receiver), the broker JVM, and each ``qwatch`` child named by its subcommand. A child that restarts keeps its
component name, and a restart is reported.

For each component it reports the peak RSS in the *start* window (the first ``--window`` seconds after the
``--warmup``) and in the *end* window (the last ``--window`` seconds), and their ratio. A Python component is
called flat when the end peak is within ``FLAT_RATIO`` of the start peak plus ``FLAT_SLACK_MIB`` (allocator and GC
jitter). The broker JVM grows its heap towards ``-Xmx`` before G1 reclaims much, by design, so it is judged
against that ceiling instead: end peak below ``-Xmx`` plus ``JVM_NON_HEAP_MIB``. The transitions printed and the
alerts delivered are counted too, so the churn is visible in the numbers.

Usage: python bench/soak.py [--seconds 600] [--every 5] [--warmup 60] [--window 60]
Writes bench/out/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "soak.json"
FLAT_RATIO = 1.10
FLAT_SLACK_MIB = 8.0
JVM = "broker (JVM)"
JVM_NON_HEAP_MIB = 256.0
XMX = re.compile(r"^-Xmx(\d+)([mMgG])$")
TRANSITION_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+Z (\S+)\s")


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of one process in KiB; empty if it has gone."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return out


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree[ppid].append(int(entry.name))
    return tree


def _argv(pid: int) -> list[str]:
    """A process's command line; empty if it has gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _component(pid: int) -> str | None:
    """A stable name for a process of the tree, from its command line."""
    argv = _argv(pid)
    if argv and argv[0].endswith("java"):
        return JVM
    if "qwatch" not in " ".join(argv):
        return None
    words = argv[argv.index("qwatch") + 1 :] if "qwatch" in argv else argv[1:]
    if not words:
        return None
    if words[0] == "up":
        return "up (+ demo upstream)"
    if words[0] == "ingest" and len(words) > 1:
        return words[1]
    if words[0] == "process":
        return "processor"
    return words[0]


def heap_ceiling_mib(pid: int) -> float | None:
    """The JVM's -Xmx in MiB, from its command line."""
    for arg in _argv(pid):
        m = XMX.match(arg)
        if m:
            return float(m.group(1)) * (1024 if m.group(2) in "gG" else 1)
    return None


def sample(root: int) -> dict[str, tuple[int, int, int]]:
    """component → (pid, VmRSS KiB, VmHWM KiB) over the whole tree under ``root``."""
    tree = _children()
    found: dict[str, tuple[int, int, int]] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        stack.extend(tree.get(pid, []))
        name = _component(pid)
        st = _status(pid)
        if name and st:
            found[name] = (pid, st.get("VmRSS", 0), st.get("VmHWM", 0))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the pipeline runs (default 600)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between memory samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the start window opens")
    parser.add_argument("--window", type=float, default=60.0, help="length of the start and end windows (s)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    run_dir = Path(tempfile.mkdtemp(prefix="qwatch-soak-"))
    log = run_dir / "up.out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("QWATCH_KAFKA_BOOTSTRAP", None)
    command = [
        sys.executable,
        "-m",
        "app",
        "up",
        "--demo",
        "--churn",
        "--for",
        str(args.seconds),
        "--metrics-port",
        "0",
        "--run-dir",
        str(run_dir / "run"),
    ]
    print(f"soak: {' '.join(command[2:])} (output in {log})", flush=True)
    started = time.monotonic()
    samples: list[tuple[float, dict[str, tuple[int, int, int]]]] = []
    heap_mib: float | None = None
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        next_print = 60.0
        while proc.poll() is None:
            t = time.monotonic() - started
            samples.append((t, sample(proc.pid)))
            if heap_mib is None and JVM in samples[-1][1]:
                heap_mib = heap_ceiling_mib(samples[-1][1][JVM][0])
            if t >= next_print:
                rss = ", ".join(f"{k} {v[1] / 1024:.0f}" for k, v in sorted(samples[-1][1].items()))
                print(f"soak: {t:5.0f} s  RSS MiB: {rss}", flush=True)
                next_print += 60.0
            time.sleep(args.every)
        code = proc.wait()
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")

    kinds: dict[str, int] = defaultdict(int)
    for line in text.splitlines():
        m = TRANSITION_LINE.match(line)
        if m:
            kinds[m.group(1)] += 1
    webhooks = text.count("webhook: signed alert")
    summary_line = next((line for line in text.splitlines() if line.startswith("stopped.")), "")

    # Windows by time since start; the end window is the last samples before ``up`` began to stop.
    running = [(t, s) for t, s in samples if s]
    last = running[-1][0] if running else 0.0
    start_lo, start_hi = args.warmup, args.warmup + args.window
    components: dict[str, Any] = {}
    names = sorted({name for _, s in running for name in s})
    flat = True
    for name in names:
        start = [s[name] for t, s in running if start_lo <= t < start_hi and name in s]
        end = [s[name] for t, s in running if last - args.window <= t <= last and name in s]
        pids = sorted({s[name][0] for _, s in running if name in s})
        if not start or not end:
            components[name] = {"note": "not seen in both windows", "pids": len(pids)}
            continue
        start_peak = max(v[1] for v in start) / 1024
        end_peak = max(v[1] for v in end) / 1024
        if name == JVM:
            ok = heap_mib is not None and end_peak < heap_mib + JVM_NON_HEAP_MIB
        else:
            ok = end_peak <= start_peak * FLAT_RATIO + FLAT_SLACK_MIB
        flat = flat and ok
        components[name] = {
            "start_peak_rss_mib": round(start_peak, 1),
            "end_peak_rss_mib": round(end_peak, 1),
            "ratio": round(end_peak / start_peak, 3),
            "vmhwm_end_mib": round(end[-1][2] / 1024, 1),
            "processes": len(pids),
            "flat": ok,
            "rule": (
                f"end peak < -Xmx {heap_mib} MiB + {JVM_NON_HEAP_MIB} MiB"
                if name == JVM
                else f"end peak <= start peak x {FLAT_RATIO} + {FLAT_SLACK_MIB} MiB"
            ),
        }
    result = {
        "seconds": round(elapsed, 1),
        "exit_code": code,
        "samples": len(samples),
        "windows": {"start": [start_lo, start_hi], "end": [round(last - args.window, 1), round(last, 1)]},
        "flat_rule": f"Python: end peak <= start peak x {FLAT_RATIO} + {FLAT_SLACK_MIB} MiB; JVM: below its heap cap",
        "flat": flat,
        "components": components,
        "transitions": sum(kinds.values()),
        "transitions_by_kind": dict(sorted(kinds.items())),
        "webhook_alerts": webhooks,
        "summary_line": summary_line,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "log": str(log),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nsoak: {elapsed:.0f} s, exit {code}, {result['transitions']} transitions, {webhooks} webhook alerts")
    print(f"{'component':24} {'start MiB':>10} {'end MiB':>10} {'ratio':>7} {'procs':>6}  flat")
    for name, c in components.items():
        if "ratio" in c:
            print(
                f"{name:24} {c['start_peak_rss_mib']:>10} {c['end_peak_rss_mib']:>10} {c['ratio']:>7} "
                f"{c['processes']:>6}  {'yes' if c['flat'] else 'NO'}"
            )
        else:
            print(f"{name:24} {c['note']}")
    print(summary_line)
    return 0 if code == 0 and flat else 1


if __name__ == "__main__":
    raise SystemExit(main())
