"""Fault-injection harness: a scripted upstream, the real pipeline as supervised processes, a seeded killer, and the
reconciliation every chaos scenario ends with.

Why a reconciliation and not spot checks: the promise under test is "each upstream change yields exactly one
transition", and only a full comparison of what the timeline changed with what ``qwatch.transitions.v1`` holds can
show a lost change, a duplicated record or a false verdict. The harness therefore keeps its own model of every
project and report, so each scripted change carries the transition identity it must produce.

Shared by ``tests/test_chaos*.py`` (the CI profile) and ``bench/chaos_run.py`` (the long, by-hand profile).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from app.supervisor import Supervisor
from app.up import Plan, child_specs
from qwatch.config import KafkaConfig
from qwatch.events import Cursor, DeadLetter, Transition
from qwatch.events.codec import Codec
from qwatch.events.outputs import Alert, InventoryRecord
from qwatch.events.topics import ALERTS, CURSORS, DEADLETTER, INVENTORY, OBSERVATIONS, TRANSITIONS
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import make_admin, make_consumer, read_topic
from subscribers.alerts.matching import match
from testing.fakepypi import FakePyPI, Fault
from tests import slow_commit

Identity = tuple[str, str, str | None]
"""What a transition is about: (kind, package, version or report id). Counted as a multiset: a project can be
quarantined, cleared and quarantined again, and each episode is one transition."""

COMPONENTS = ("openssf", "pypi-journal", "pypi-simple", "pypi-json", "processor", "alerts")
PYTHON = sys.executable


# ---------------------------------------------------------------------------------------------------------------
# The scripted upstream: a seeded model of every project and report, so each change knows its transition.


@dataclass(frozen=True)
class Change:
    """One upstream change: ``op`` is a FakePyPI method or an OpenSSF edit (report/withdraw/reinstate)."""

    op: str
    args: tuple[Any, ...]
    expect: Identity


@dataclass
class _Project:
    name: str
    status: str = "active"  # active | quarantined | removed
    generation: int = 0
    releases: dict[str, dict[str, bool]] = field(default_factory=dict)
    reports: dict[str, bool] = field(default_factory=dict)  # report id -> live


OSSF_OPS = frozenset({"report", "withdraw", "reinstate"})


class Script:
    """An endless, seeded stream of changes that are valid for the current model state.

    Only journaled PyPI actions are used (archive/unarchive write no journal row, so a quick archive-unarchive pair
    is legitimately invisible to a poller and would make the expectation timing-dependent). Release-level changes
    are made on active projects only, and a project-level quarantine or removal waits until no single release is
    quarantined, so each change has one unambiguous meaning.
    """

    WEIGHTS: Mapping[str, float] = {
        "quarantine": 3.0,
        "clear_quarantine": 3.0,
        "remove_project": 1.5,
        "add_project": 3.0,
        "yank": 1.5,
        "quarantine_release": 1.2,
        "clear_release_quarantine": 2.0,
        "remove_release": 0.8,
        "report": 1.5,
        "withdraw": 1.5,
        "reinstate": 0.8,
    }

    def __init__(
        self, rng: random.Random, names: Iterable[str], report_prefix: str, ops: frozenset[str] | None = None
    ) -> None:
        self._rng = rng
        self.projects = {n: _Project(n, releases=_releases(0)) for n in names}
        self._report_prefix = report_prefix
        self._reports = 0
        self._ops = frozenset(self.WEIGHTS) if ops is None else ops

    def candidates(self, p: _Project) -> list[str]:
        """Ops that apply to this project now."""
        ops: list[str] = []
        hidden = sum(r["quarantined"] for r in p.releases.values())
        shown = len(p.releases) - hidden
        if p.status == "active":
            if not hidden:
                ops += ["quarantine", "remove_project"]
            if any(not r["yanked"] and not r["quarantined"] for r in p.releases.values()):
                ops.append("yank")
            if shown >= 2:  # a project always keeps one installable release
                ops += ["quarantine_release", "remove_release"]
            if hidden:
                ops.append("clear_release_quarantine")
        elif p.status == "quarantined":
            ops += ["clear_quarantine", "remove_project"]
        else:
            ops.append("add_project")
        if sum(p.reports.values()) < 2 and len(p.reports) < 4:
            ops.append("report")
        if any(p.reports.values()):
            ops.append("withdraw")
        if any(not live for live in p.reports.values()):
            ops.append("reinstate")
        return [op for op in ops if op in self._ops]

    def next(self) -> Change:
        """Pick a project and one valid op, update the model, and return the change."""
        projects = sorted(self.projects.values(), key=lambda x: x.name)
        while True:
            p = self._rng.choice(projects)
            ops = self.candidates(p)
            if ops:
                op = self._rng.choices(ops, weights=[self.WEIGHTS[o] for o in ops])[0]
                return getattr(self, f"_{op}")(p)

    # One method per op: each mutates the model and says which transition the change must produce.
    def _quarantine(self, p: _Project) -> Change:
        p.status = "quarantined"
        return Change("quarantine", (p.name,), ("QUARANTINED", p.name, None))

    def _clear_quarantine(self, p: _Project) -> Change:
        p.status = "active"
        return Change("clear_quarantine", (p.name,), ("CLEARED", p.name, None))

    def _remove_project(self, p: _Project) -> Change:
        p.status, p.releases = "removed", {}
        return Change("remove_project", (p.name,), ("REMOVED", p.name, None))

    def _add_project(self, p: _Project) -> Change:
        # A re-registration: new versions, so nothing is confused with the previous owner's releases.
        p.generation += 1
        p.status, p.releases = "active", _releases(p.generation)
        files = {v: [f"{p.name}-{v}.tar.gz"] for v in p.releases}
        return Change("add_project", (p.name, files), ("RESTORED", p.name, None))

    def _pick_release(self, p: _Project, ok: Callable[[dict[str, bool]], bool]) -> str:
        return self._rng.choice(sorted(v for v, r in p.releases.items() if ok(r)))

    def _yank(self, p: _Project) -> Change:
        v = self._pick_release(p, lambda r: not r["yanked"] and not r["quarantined"])
        p.releases[v]["yanked"] = True
        return Change("yank", (p.name, v, "chaos"), ("YANKED", p.name, v))

    def _quarantine_release(self, p: _Project) -> Change:
        v = self._pick_release(p, lambda r: not r["quarantined"])
        p.releases[v]["quarantined"] = True
        return Change("quarantine_release", (p.name, v), ("RELEASE_QUARANTINED", p.name, v))

    def _clear_release_quarantine(self, p: _Project) -> Change:
        v = self._pick_release(p, lambda r: r["quarantined"])
        p.releases[v]["quarantined"] = False
        return Change("clear_release_quarantine", (p.name, v), ("RELEASE_CLEARED", p.name, v))

    def _remove_release(self, p: _Project) -> Change:
        v = self._pick_release(p, lambda r: not r["quarantined"])
        del p.releases[v]
        return Change("remove_release", (p.name, v), ("RELEASE_REMOVED", p.name, v))

    def _report(self, p: _Project) -> Change:
        self._reports += 1
        rid = f"{self._report_prefix}-{self._reports:04d}"
        p.reports[rid] = True
        return Change("report", (p.name, rid), ("REPORTED", p.name, rid))

    def _withdraw(self, p: _Project) -> Change:
        rid = self._rng.choice(sorted(r for r, live in p.reports.items() if live))
        p.reports[rid] = False
        return Change("withdraw", (p.name, rid), ("REPORT_WITHDRAWN", p.name, rid))

    def _reinstate(self, p: _Project) -> Change:
        rid = self._rng.choice(sorted(r for r, live in p.reports.items() if not live))
        p.reports[rid] = True
        return Change("reinstate", (p.name, rid), ("REPORTED", p.name, rid))


PYPI_OPS = frozenset(Script.WEIGHTS) - OSSF_OPS


def _releases(generation: int) -> dict[str, dict[str, bool]]:
    return {f"{generation + 1}.{minor}": {"yanked": False, "quarantined": False} for minor in range(3)}


# ---------------------------------------------------------------------------------------------------------------
# OpenSSF upstream: a bare repository the ingestor mirrors over file://, so fetches (and their failures) are real.


class OssfUpstream:
    """A bare git repository fed through a separate work tree; it can be made unreachable and brought back."""

    def __init__(self, root: Path) -> None:
        self.path = root / "ossf-upstream.git"
        self._away = root / "ossf-upstream.away"
        self._work = root / "ossf-work"
        self._git_dir = self.path
        self._lock = threading.Lock()
        self._modified = 1_767_225_600  # 2026-01-01: each report edit bumps `modified`, as upstream merges do
        self._work.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.path)], check=True)
        (self._work / "README.md").write_text("chaos replay of ossf/malicious-packages\n")
        self.base = self._commit("base")

    @property
    def url(self) -> str:
        """What the ingestor is given: a URL, so it mirrors and fetches instead of reading in place."""
        return self.path.as_uri()

    def _git(self, *args: str) -> str:
        cmd = ["git", "-c", "user.name=chaos", "-c", "user.email=chaos@example.invalid", "-c", "commit.gpgsign=false"]
        cmd += [f"--git-dir={self._git_dir}", f"--work-tree={self._work}", *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    def _commit(self, message: str) -> str:
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)
        return self._git("rev-parse", "HEAD")

    def head(self) -> str:
        """The branch head, wherever the repository currently lives."""
        with self._lock:
            return self._git("rev-parse", "HEAD")

    def apply(self, change: Change) -> None:
        """One report edit = one commit (live file, withdrawal move, or reinstatement move)."""
        package, rid = change.args
        live = self._work / "osv" / "malicious" / "pypi" / package / f"{rid}.json"
        gone = self._work / "osv" / "withdrawn" / "pypi" / package / f"{rid}.json"
        with self._lock:
            self._modified += 60
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._modified))
            if change.op == "withdraw":
                live.unlink()
                target, withdrawn = gone, stamp
            else:
                if change.op == "reinstate":
                    gone.unlink()
                target, withdrawn = live, None
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(osv_record(rid, package, stamp, withdrawn))
            self._commit(f"{change.op} {rid}")

    def unreachable(self) -> None:
        """Move the repository away: fetches fail as with a remote that is down, while upstream keeps changing."""
        with self._lock:
            self.path.rename(self._away)
            self._git_dir = self._away

    def reachable(self) -> None:
        """Put it back."""
        with self._lock:
            self._away.rename(self.path)
            self._git_dir = self.path


def osv_record(report_id: str, package: str, modified: str, withdrawn: str | None) -> str:
    """A minimal upstream-shaped OSV record affecting every version (so every locked version is affected)."""
    doc: dict[str, Any] = {
        "modified": modified,
        "published": "2026-01-01T00:00:00Z",
        "schema_version": "1.7.0",
        "id": report_id,
        "summary": f"Malicious code in {package} (PyPI)",
        "details": "scripted by the chaos suite",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
        "database_specific": {"malicious-packages-origins": [{"source": "chaos", "sha256": "0" * 64}]},
    }
    if withdrawn is not None:
        doc["withdrawn"] = withdrawn
    return json.dumps(doc, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# The world: the local PyPI, the OpenSSF upstream and the player that applies the script over wall-clock time.


@dataclass(frozen=True)
class Pace:
    """How fast the timeline plays: a gap U(gap) between changes, and with probability ``burst_p`` a burst of
    U(burst) changes ``burst_gap`` apart (bursts keep the processor busy, so kills land inside transactions)."""

    gap: tuple[float, float] = (0.15, 0.6)
    burst_p: float = 0.08
    burst: tuple[int, int] = (6, 15)
    burst_gap: float = 0.02


class ChaosWorld:
    """Owns the upstreams and plays the seeded script until stopped; records every change it applied."""

    def __init__(
        self,
        root: Path,
        seed: int,
        prefix: str,
        projects: int = 40,
        pace: Pace | None = None,
        ops: frozenset[str] | None = None,
    ) -> None:
        self.root = root
        self.prefix = prefix
        self.names = [f"{prefix}-{i:03d}" for i in range(projects)]
        self.pace = pace or Pace()
        self._rng = random.Random(seed)
        self.script = Script(random.Random(seed + 1), self.names, f"MAL-2099-{prefix}", ops)
        self.pypi = FakePyPI()
        self.ossf: OssfUpstream | None = None
        self.applied: list[Change] = []
        self.errors: list[BaseException] = []
        self.bursts: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.start_serial = 0
        self.base_url = ""
        self.watch_file = root / "watch.txt"
        self.lockfile = root / "requirements.txt"

    def start(self) -> None:
        """Create the projects, serve PyPI, lay out the OpenSSF repository (nothing plays yet)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            self.pypi.add_project(name, {v: [f"{name}-{v}.tar.gz"] for v in _releases(0)})
        self.start_serial = self.pypi.last_serial
        self.base_url = self.pypi.start()
        self.watch_file.write_text("".join(f"{n}\n" for n in self.names))
        # The application the alerts service checks: a quarter of the projects, pinned to a first-generation version.
        lines = [f"{n}==1.0\n    # via -r requirements.in\n" for n in self.names[::4]]
        self.lockfile.write_text("# pip-compile output of the chaos application\n" + "".join(lines))
        self.ossf = OssfUpstream(self.root / "ossf")

    def play(self) -> None:
        """Start applying the script in a background thread."""
        self._thread = threading.Thread(target=self._play, name="chaos-timeline", daemon=True)
        self._thread.start()

    def _play(self) -> None:
        while not self._stop.is_set():
            if self._rng.random() < self.pace.burst_p:
                count, gap = self._rng.randint(*self.pace.burst), self.pace.burst_gap
                self.bursts.append(time.monotonic())
            else:
                count, gap = 1, self._rng.uniform(*self.pace.gap)
            for _ in range(count):
                if self._stop.wait(gap):
                    return
                self.apply(self.script.next())

    def apply(self, change: Change) -> None:
        """Make one change upstream and remember it (a failing change is a harness bug, kept for the assertion)."""
        try:
            if change.op in OSSF_OPS:
                assert self.ossf is not None
                self.ossf.apply(change)
            else:
                getattr(self.pypi, change.op)(*change.args)
        except Exception as exc:  # noqa: BLE001 - surfaced by the test, which fails on any harness error
            self.errors.append(exc)
            return
        self.applied.append(change)

    def inject(self, fault: Fault) -> None:
        """Arm an upstream fault on the local PyPI."""
        self.pypi.inject(fault)

    def stop_timeline(self) -> None:
        """Stop playing; every change recorded so far is what the pipeline must reproduce."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def close(self) -> None:
        """Stop the timeline and the server."""
        self.stop_timeline()
        self.pypi.stop()

    def expected(self) -> Counter[Identity]:
        """Every transition the applied changes must have produced, as a multiset."""
        return Counter(c.expect for c in self.applied)


# ---------------------------------------------------------------------------------------------------------------
# The pipeline: exactly the processes `qwatch up` runs, supervised, pointed at the world.


class Pipeline:
    """``qwatch up``'s children (``child_specs``) against a ChaosWorld, under a fast-restarting Supervisor.

    Two deliberate differences from ``qwatch up --demo``: the OpenSSF ingestor steps commit by commit
    (``QWATCH_OPENSSF_PER_COMMIT``), because in range mode a report added and withdrawn between two polls is by
    design a single "withdrawn" (no transition), which would make the expectation depend on kill timing; and the
    consumer groups are per run, so runs sharing a broker never share offsets.
    """

    def __init__(
        self,
        world: ChaosWorld,
        bootstrap: str,
        run_dir: Path,
        tag: str,
        *,
        components: tuple[str, ...] = COMPONENTS,
        env: Mapping[str, str] | None = None,
        processor_env: Mapping[str, str] | None = None,
        processor_commit_delay_ms: int = 0,
        base_backoff: float = 0.1,
        max_backoff: float = 0.5,
    ) -> None:
        assert world.ossf is not None, "start the world first"
        self.world = world
        self.run_dir = run_dir
        self.tag = tag
        self.kafka = KafkaConfig(bootstrap=bootstrap)
        self.group = f"chaos-processor-{tag}"
        self.alerts_group = f"chaos-alerts-{tag}"
        plan = Plan(
            index_url=world.base_url + "/simple/",
            xmlrpc_url=world.base_url + "/pypi",
            openssf_repo=world.ossf.url,
            openssf_since=world.ossf.base,
            watch_file=world.watch_file,
            fast=True,
            journal_since=world.start_serial,
        )
        self.plan = plan
        specs = {s.name: s for s in child_specs(plan, run_dir)}
        specs["openssf"] = replace(specs["openssf"], env={**specs["openssf"].env, "QWATCH_OPENSSF_PER_COMMIT": "1"})
        processor_argv = [*_without(specs["processor"].argv, "--group-id"), "--group-id", self.group]
        if processor_commit_delay_ms:
            # the same command through the slow-commit client factory (its first three words are python -m app)
            processor_argv = slow_commit.command(processor_commit_delay_ms, *processor_argv[3:])
        specs["processor"] = replace(
            specs["processor"],
            argv=processor_argv,
            env={**specs["processor"].env, **(processor_env or {})},
        )
        specs["alerts"] = replace(specs["alerts"], argv=[*specs["alerts"].argv, "--group", self.alerts_group])
        self.specs = [specs[name] for name in components]
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("QWATCH_") or k == "QWATCH_CACHE_DIR"}
        base_env |= {"QWATCH_KAFKA_BOOTSTRAP": bootstrap, "QWATCH_LOG_LEVEL": "INFO", **(env or {})}
        self.env = base_env
        self.supervisor = Supervisor(
            self.specs, run_dir / "logs", base_env, base_backoff=base_backoff, max_backoff=max_backoff
        )
        self.exits: Counter[str] = Counter()
        self.exit_codes: dict[str, int | None] = {}
        self._pids: dict[str, int] = {}
        self.inventory = f"chaos-app-{tag}"
        self.journal_component = f"pypi-journal {plan.xmlrpc_url}"
        self.openssf_component = f"openssf:{plan.openssf_repo}#main"

    def register_inventory(self) -> None:
        """Register the world's lockfile through the CLI, as a user would, before the alerts service starts."""
        result = subprocess.run(
            [PYTHON, "-m", "app", "inventory", "add", "--name", self.inventory, "--lock", str(self.world.lockfile)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"inventory add failed: {result.stderr[-2000:]}")

    def start(self, timeout: float = 90.0) -> None:
        """Start every component and wait until the ones with consumer groups own their partitions.

        The alerts service starts a brand-new group at the end of the transitions topic (history is covered by its
        retroactive check instead), so the timeline must not begin before it is ready.
        """
        if "alerts" in self.names:
            self.register_inventory()
        self.supervisor.start()
        deadline = time.monotonic() + timeout
        for name, needle in READY.items():
            while name in self.names and needle not in self.log(name):
                self.supervisor.check()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready within {timeout:.0f}s:\n{self.log(name)[-3000:]}")
                time.sleep(0.2)

    @property
    def names(self) -> list[str]:
        """The components this pipeline runs."""
        return [s.name for s in self.specs]

    def log(self, name: str) -> str:
        """A component's combined output so far (every incarnation appends)."""
        try:
            return self.supervisor.log_path(name).read_text(errors="replace")
        except OSError:
            return ""

    def metric(self, name: str, metric: str) -> float:
        """Sum of one metric's samples on a component's /metrics (0 when it is not running or not exported)."""
        port = next(s.metrics_port for s in self.specs if s.name == name)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # noqa: S310
                text = resp.read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for line in text.splitlines():
            if line.startswith(metric) and line[len(metric) : len(metric) + 1] in ("{", " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def watch_exits(self) -> None:
        """Restart exited children and count each one that had to be restarted."""
        self.supervisor.check()
        pids = self.supervisor.pids()
        for name, pid in pids.items():
            if self._pids.get(name, pid) != pid:
                self.exits[name] += 1
            self._pids[name] = pid

    def rebase_exits(self) -> None:
        """Take the current pids as the baseline (after the killer, whose restarts are not exits)."""
        self._pids = self.supervisor.pids()

    def stop(self) -> dict[str, int | None]:
        """SIGTERM everyone (each flushes and commits), as ``qwatch up`` does on Ctrl-C; returns the exit codes."""
        self.exit_codes = self.supervisor.stop()
        return self.exit_codes


def _without(argv: Iterable[str], flag: str) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        else:
            out.append(arg)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The killer: per component, a random delay U(a, b) after each (re)start, then SIGKILL.


@dataclass(frozen=True)
class KillPlan:
    """How many SIGKILLs each component gets and when.

    Every incarnation of a component is killed after a random delay. For the processor and the alerts service, a
    restart first waits out the dead member's group session (~10 s) before it owns partitions again, so a delay
    counted from the spawn would mostly hit them while they wait, never while they work. Each of their incarnations
    therefore draws a mode: with ``working_share`` the delay U(``working``) counts from the moment it owns its
    partitions, otherwise U(``delay``) counts from the spawn (hitting start-up, group join and state restore). With
    ``busy_share``, a working processor is instead killed U(``busy``) after the next burst of upstream changes
    begins (or after ``busy_wait`` if none comes), so some kills land while it is inside a transaction (the aborted
    records in the reconciliation prove that they did).
    """

    kills: int
    delay: tuple[float, float] = (2.0, 8.0)
    working: tuple[float, float] = (0.3, 2.5)
    working_share: float = 0.5
    busy_share: float = 0.5
    busy: tuple[float, float] = (0.2, 1.0)
    busy_wait: float = 8.0
    first: tuple[str, ...] = ()
    """Components killed at once, before any random delay: the alerts service right after it got ready (before
    its brand-new consumer group ever committed) is the moment its start-at-the-end policy is most fragile."""


READY = {"processor": "restored", "alerts": "alerts: ready"}
"""Log lines that say a component owns its partitions (written once per incarnation)."""


@dataclass
class ChaosStats:
    """What the killer did, and any exit nobody asked for (a component crashing on its own is a finding)."""

    kills: dict[str, int] = field(default_factory=dict)
    kills_while_working: dict[str, int] = field(default_factory=dict)
    busy_kills: int = 0
    self_exits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (a zombie cannot be killed, so it must not be counted)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@dataclass
class _Life:
    """One incarnation of a component, as the killer tracks it."""

    pid: int
    log_from: int
    working: bool
    ready: bool = False
    due: float = float("inf")
    busy: bool = False


def run_chaos(
    pipeline: Pipeline,
    plan: KillPlan,
    rng: random.Random,
    *,
    targets: tuple[str, ...] | None = None,
    timeout: float = 600.0,
) -> ChaosStats:
    """Kill until every target got ``plan.kills`` SIGKILLs (or ``timeout``), restarting through the supervisor.

    Everything runs in this one thread (supervisor checks, pid bookkeeping, kills), and a pid is only signalled
    while the supervisor still holds it unreaped (in this loop's ``pids``): no risk of hitting a recycled pid.
    """
    targets = targets or tuple(pipeline.names)
    stats = ChaosStats(
        kills=dict.fromkeys(targets, 0),
        kills_while_working=dict.fromkeys(t for t in targets if t in READY),
        self_exits=dict.fromkeys(pipeline.names, 0),
    )
    for name in stats.kills_while_working:
        stats.kills_while_working[name] = 0
    lives: dict[str, _Life] = {}
    killed: set[int] = set()
    bursts_seen = len(pipeline.world.bursts)
    started = time.monotonic()
    first = set(plan.first)
    while any(stats.kills[n] < plan.kills for n in targets) and time.monotonic() - started < timeout:
        pipeline.supervisor.check()
        now = time.monotonic()
        pids = pipeline.supervisor.pids()
        for name in pipeline.names:
            pid = pids.get(name)
            life = lives.get(name)
            if pid is None or (life is not None and life.pid == pid):
                continue
            if life is not None and life.pid not in killed:
                stats.self_exits[name] += 1
            # A first incarnation already owns its partitions: it is killed while working.
            working = name in READY and (life is None or rng.random() < plan.working_share)
            # The first incarnation may have logged that it is ready before the killer started watching.
            log_from = 0 if life is None else _size(pipeline.supervisor.log_path(name))
            life = lives[name] = _Life(pid, log_from, working)
            if name in first:
                first.discard(name)
                life.working, life.due = False, now
            elif not working:
                life.due = now + rng.uniform(*plan.delay)
        burst = len(pipeline.world.bursts) > bursts_seen
        bursts_seen = len(pipeline.world.bursts)
        for name, life in lives.items():
            if life.working and not life.ready and READY[name] in _read_from(pipeline, name, life.log_from):
                life.ready, life.due = True, now + rng.uniform(*plan.working)
                # Until one kill has landed in a burst, every working processor waits for the next one.
                if name == "processor" and (stats.busy_kills == 0 or rng.random() < plan.busy_share):
                    life.busy, life.due = True, now + plan.busy_wait
            if burst and life.busy and life.due > now + plan.busy[1]:
                life.due = now + rng.uniform(*plan.busy)
        for name in targets:
            life = lives.get(name)
            if life is None or stats.kills[name] >= plan.kills or now < life.due:
                continue
            # Only the incarnation the supervisor holds right now: one that exited on its own was reaped by
            # check(), and its number may already be a thread of another process (pid_max is often 32768).
            if pids.get(name) == life.pid and _alive(life.pid):
                os.kill(life.pid, signal.SIGKILL)
                killed.add(life.pid)
                stats.kills[name] += 1
                if life.ready:
                    stats.kills_while_working[name] += 1
                if life.busy:
                    stats.busy_kills += 1
            life.due = float("inf")  # the next incarnation draws its own delay
        time.sleep(0.05)
    stats.seconds = time.monotonic() - started
    pipeline.rebase_exits()
    return stats


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(pipeline: Pipeline, name: str, offset: int) -> str:
    try:
        with open(pipeline.supervisor.log_path(name), "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def supervise_for(pipeline: Pipeline, seconds: float, until: Callable[[], bool] | None = None) -> None:
    """Keep restarting exited children for ``seconds`` (or until ``until()``), killing nothing; every restart is
    counted in ``pipeline.exits`` (an outage a component does not ride out shows up there)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until is not None and until()):
        pipeline.watch_exits()
        time.sleep(0.1)


@contextmanager
def running(pipeline: Pipeline) -> Iterator[Pipeline]:
    """Start the pipeline; always stop it (SIGTERM, as Ctrl-C on ``qwatch up``) and the world afterwards."""
    try:
        pipeline.start()
        yield pipeline
    finally:
        pipeline.stop()
        pipeline.world.close()


# ---------------------------------------------------------------------------------------------------------------
# Reading Kafka: whole topics, end offsets, group lag, cursors.


def read_events(cfg: KafkaConfig, topic: str, isolation: str = "read_committed", timeout: float = 60.0) -> list[Any]:
    """Every decoded record of a topic, from the beginning to its end (read_committed by default)."""
    return [
        d.event
        for d in read_topic(KafkaClients(cfg), Codec(), topic, timeout, isolation_level=isolation)
        if d.event is not None
    ]


def end_offsets(cfg: KafkaConfig, topic: str) -> dict[int, int]:
    """Per-partition end offsets as a read_committed reader sees them (the last stable offset)."""
    consumer = make_consumer(cfg, None)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def group_lag(cfg: KafkaConfig, group: str, topic: str) -> int:
    """End offsets minus the group's committed offsets, summed (a partition never committed counts fully)."""
    ends = end_offsets(cfg, topic)
    admin = make_admin(cfg)
    try:
        committed = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    done = {tp.partition: om.offset for tp, om in committed.items() if tp.topic == topic}
    return sum(max(0, end - done.get(p, 0)) for p, end in ends.items())


def cursors(cfg: KafkaConfig) -> dict[str, str]:
    """The newest cursor value per component."""
    return {e.component: e.value for e in read_events(cfg, CURSORS) if isinstance(e, Cursor)}


@dataclass
class Settled:
    """How the pipeline drained after the chaos stopped."""

    seconds: float
    ok: bool
    detail: str


def settle(pipeline: Pipeline, timeout: float = 120.0, quiet: float = 6.0) -> Settled:
    """Wait until the pipeline has drained: ingestor cursors at upstream's head, processor lag 0, alerts lag 0,
    and the observation, transition and alert topics unchanged for ``quiet`` seconds.

    A drained pipeline is the precondition of the reconciliation, never its substitute: nothing here looks at
    which transitions exist, so waiting cannot hide a duplicate or paper over a loss.
    """
    world = pipeline.world
    assert world.ossf is not None
    started = time.monotonic()
    last: tuple[Any, ...] | None = None
    stable_since = started
    detail = ""
    while time.monotonic() - started < timeout:
        pipeline.watch_exits()
        try:
            marks = tuple(sum(end_offsets(pipeline.kafka, t).values()) for t in (OBSERVATIONS, TRANSITIONS, ALERTS))
            cur = cursors(pipeline.kafka)
            lags = {"processor": group_lag(pipeline.kafka, pipeline.group, OBSERVATIONS)}
            if "alerts" in pipeline.names:
                lags["alerts"] = group_lag(pipeline.kafka, pipeline.alerts_group, TRANSITIONS)
        except Exception as exc:  # noqa: BLE001 - the broker may still be coming back; keep waiting
            detail = f"kafka not answering: {exc}"
            time.sleep(1.0)
            continue
        behind = []
        if "pypi-journal" in pipeline.names and cur.get(pipeline.journal_component) != str(world.pypi.last_serial):
            behind.append(f"journal cursor {cur.get(pipeline.journal_component)} != {world.pypi.last_serial}")
        if "openssf" in pipeline.names and cur.get(pipeline.openssf_component) != world.ossf.head():
            behind.append("openssf cursor not at head")
        behind += [f"{name} lag {lag}" for name, lag in lags.items() if lag]
        now = time.monotonic()
        if marks != last:
            last, stable_since = marks, now
        detail = "; ".join(behind) or f"topics quiet for {now - stable_since:.1f}s"
        if not behind and now - stable_since >= quiet:
            return Settled(now - started, True, detail)
        time.sleep(1.0)
    return Settled(time.monotonic() - started, False, detail)


# ---------------------------------------------------------------------------------------------------------------
# Reconciliation.


def identity(t: Transition) -> Identity:
    """What a transition is about, in the script's terms."""
    return (t.kind, t.package, t.version if t.version is not None else t.report_id)


@dataclass
class Reconciliation:
    """Expected against observed, for transitions (read_committed) and alerts."""

    expected: int = 0
    observed: int = 0
    distinct_ids: int = 0
    duplicate_records: int = 0
    missing: list[Identity] = field(default_factory=list)
    unexpected: list[Identity] = field(default_factory=list)
    aborted_records: int = 0
    alerts_expected: int = 0
    alerts_observed: int = 0
    alerts_duplicate_records: int = 0
    alerts_missing: list[str] = field(default_factory=list)
    alerts_unexpected: list[str] = field(default_factory=list)
    deadletters: dict[str, int] = field(default_factory=dict)
    harness_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every violation of exactly-once, one line each (empty means the run reconciled)."""
        out = [f"harness error: {e}" for e in self.harness_errors]
        if self.duplicate_records:
            out.append(f"{self.duplicate_records} transition records repeat an event_id")
        if self.missing:
            out.append(f"{len(self.missing)} changes produced no transition: {self.missing[:20]}")
        if self.unexpected:
            out.append(f"{len(self.unexpected)} transitions match no change: {self.unexpected[:20]}")
        if self.alerts_missing:
            out.append(f"{len(self.alerts_missing)} alerts missing: {self.alerts_missing[:10]}")
        if self.alerts_unexpected:
            out.append(f"{len(self.alerts_unexpected)} alerts for no transition: {self.alerts_unexpected[:10]}")
        return out

    def summary(self) -> dict[str, Any]:
        """The figures a report shows."""
        return {
            "transitions_expected": self.expected,
            "transitions_observed": self.observed,
            "duplicates": self.duplicate_records,
            "lost": len(self.missing),
            "unexpected": len(self.unexpected),
            "aborted_transition_records": self.aborted_records,
            "alerts_expected": self.alerts_expected,
            "alerts_observed": self.alerts_observed,
            "alerts_duplicate_records": self.alerts_duplicate_records,
            "alerts_missing": len(self.alerts_missing),
            "deadletters": self.deadletters,
        }


def reconcile(pipeline: Pipeline) -> Reconciliation:
    """Compare the world's applied changes with ``qwatch.transitions.v1`` and ``qwatch.alerts.v1``.

    Alert duplicates by id are counted but not a failure: the alerts service writes with an idempotent, but not
    transactional, producer and de-duplicates against the ids it read at start, so a kill after a send the broker
    accepted but before the service saw the acknowledgement can repeat an alert record with the same id (consumers
    de-duplicate on ``event_id``). Any alert id missing, or raised for no transition, is a failure.
    """
    world = pipeline.world
    cfg = pipeline.kafka
    mine = set(world.names)
    result = Reconciliation(harness_errors=[repr(e) for e in world.errors])
    records = [t for t in read_events(cfg, TRANSITIONS) if isinstance(t, Transition) and t.package in mine]
    everything = [t for t in read_events(cfg, TRANSITIONS, "read_uncommitted") if isinstance(t, Transition)]
    result.aborted_records = sum(1 for t in everything if t.package in mine) - len(records)
    by_id: dict[str, Transition] = {}
    for t in records:
        by_id.setdefault(t.event_id, t)
    result.observed = len(records)
    result.distinct_ids = len(by_id)
    result.duplicate_records = len(records) - len(by_id)
    expected = world.expected()
    observed = Counter(identity(t) for t in by_id.values())
    result.expected = sum(expected.values())
    result.missing = sorted((expected - observed).elements(), key=str)
    result.unexpected = sorted((observed - expected).elements(), key=str)

    if "alerts" in pipeline.names:
        inventories = [r for r in read_events(cfg, INVENTORY) if isinstance(r, InventoryRecord)]
        record = [r for r in inventories if r.project == pipeline.inventory][-1]
        want = {a.event_id for t in by_id.values() if (a := match(t, record, 0)) is not None}
        alerts = [a for a in read_events(cfg, ALERTS) if isinstance(a, Alert) and a.project == pipeline.inventory]
        got = {a.event_id for a in alerts}
        result.alerts_expected = len(want)
        result.alerts_observed = len(alerts)
        result.alerts_duplicate_records = len(alerts) - len(got)
        result.alerts_missing = sorted(want - got)
        result.alerts_unexpected = sorted(got - want)
    letters = [d for d in read_events(cfg, DEADLETTER) if isinstance(d, DeadLetter)]
    result.deadletters = dict(Counter(f"{d.source}/{d.reason}" for d in letters))  # a private broker: all ours
    return result
