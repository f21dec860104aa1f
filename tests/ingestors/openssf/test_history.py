"""The real-history invariant (``shared/fixtures/ossf-history/README.md``), through the real ingestor and processor.

Replaying the history commit by commit, from any starting commit, and then processing, must leave every package
with exactly the live reports a snapshot of the head shows (the ids under ``osv/malicious/`` whose
``affected[].package`` names it), must never report a withdrawn report, and must never report one report twice
for a package without a withdrawal between.

The expected side is computed here, independently of the ingestor: ``git ls-tree`` and ``git cat-file --batch``
on the bare clone, ``json.loads``, and the documented name rules (PEP 503 through ``packaging``). The ingestor runs
as ``qwatch ingest openssf --per-commit`` does (its service, in-process, into a memory sink); the processor is its
pure core, ``processors.core.step``, per observation and package.

Two more views keep a failure attributable: ``fold`` applies the ``change`` vocabulary as the ingestor documents it
(live: added, existing, modified, reinstated; gone: withdrawn, deleted, moved), so a mismatch there is in the
ingestor's output, and a mismatch only after ``step`` is in the processor's handling.

``bench/openssf_history.py`` runs the same checks on the whole bundle (every first-parent commit from the first).
"""

from __future__ import annotations

import datetime
import json
import os
import random
import subprocess
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name
from prometheus_client import CollectorRegistry

from ingestors.openssf.config import OpenSSFConfig
from ingestors.openssf.index import ReportIndex
from ingestors.openssf.service import OpenSSFService
from processors.core import step
from qwatch.cursors import FileCursorStore
from qwatch.events import ReportObserved, Transition
from qwatch.events.state import PackageStateRecord
from qwatch.metrics import Metrics
from qwatch.openssf.gitsource import GitSource
from qwatch.sinks import MemorySink
from tests.fixture_paths import REPO, SHARED

ROOT = REPO
BUNDLE_NAME = "ossf-history-2024.bundle"
BUNDLE_HEAD = "208695a4df6cc462e6c3cc51181c5d57dcc0981f"
COMPONENT = "openssf:history"
LIVE_DIR, WITHDRAWN_DIR = "osv/malicious/", "osv/withdrawn/"
LIVE_CHANGES = frozenset({"added", "existing", "modified", "reinstated"})
GONE_CHANGES = frozenset({"withdrawn", "deleted", "moved"})
REPORTED, REPORT_WITHDRAWN = "REPORTED", "REPORT_WITHDRAWN"

Key = tuple[str, str]
"""(ecosystem, normalized package)."""


# -- the fixture ------------------------------------------------------------------------------------------------
def history_bundle() -> Path:
    """The bundle: ``$QWATCH_OSSF_HISTORY``, else the shared fixtures'. Its absence is a failure, never a skip."""
    candidates = [
        Path(os.environ["QWATCH_OSSF_HISTORY"]) if os.environ.get("QWATCH_OSSF_HISTORY") else None,
        SHARED / "ossf-history" / BUNDLE_NAME,
    ]
    for path in candidates:
        if path is not None and path.is_file():
            return path
    raise FileNotFoundError(f"{BUNDLE_NAME} not found in {[str(c) for c in candidates if c]}")


def clone_history(dest: Path) -> Path:
    """``git clone --bare bundle R && git --git-dir R branch -f main dev-cut``, as the fixture's README says."""
    subprocess.run(["git", "clone", "-q", "--bare", str(history_bundle()), str(dest)], check=True)
    subprocess.run(["git", "--git-dir", str(dest), "branch", "-f", "main", "dev-cut"], check=True)
    return dest


def first_parents(git_dir: Path, rev: str = "main") -> list[str]:
    """First-parent commits, oldest first."""
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-list", "--first-parent", "--reverse", rev],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()


# -- the independent oracle ---------------------------------------------------------------------------------------
def canonical(ecosystem: str, name: str) -> str:
    """The package key as the ingestor's README documents it, written here from that text (not its code)."""
    base = ecosystem.split(":", 1)[0].lower()
    if base == "pypi":
        return str(canonicalize_name(name))
    if base in ("nuget", "rubygems", "vscode"):
        return name.lower()
    if base == "crates.io":
        return name.lower().replace("-", "_")
    return name


class Oracle:
    """What the repository says at a commit, read with git's CLI and ``json.loads`` only."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self._withdrawn: dict[str, frozenset[str]] = {}

    def _git(self, *args: str) -> bytes:
        return subprocess.run(["git", "--git-dir", str(self.git_dir), *args], check=True, capture_output=True).stdout

    def _blobs(self, shas: list[str]) -> list[bytes]:
        proc = subprocess.Popen(
            ["git", "--git-dir", str(self.git_dir), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        def feed() -> None:  # a writer thread: the answers would fill the pipe before all questions are asked
            stdin.write(b"".join(s.encode() + b"\n" for s in shas))
            stdin.close()

        writer = threading.Thread(target=feed)
        writer.start()
        out = []
        for _ in shas:
            size = int(stdout.readline().split()[2])
            out.append(stdout.read(size))
            stdout.read(1)
        writer.join()
        proc.wait()
        return out

    def files(self, commit: str, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """(path, record) of every parseable ``.json`` report file under ``prefix`` (pending files excluded)."""
        raw = self._git("ls-tree", "-r", "-z", "--full-tree", commit, "--", prefix.rstrip("/"))
        entries: list[tuple[str, str]] = []
        for rec in raw.split(b"\0"):
            meta, _, raw_path = rec.partition(b"\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == b"blob" and raw_path.endswith(b".json"):
                entries.append((raw_path.decode("utf-8", "replace"), parts[2].decode()))
        out: list[tuple[str, dict[str, Any]]] = []
        for (path, _), data in zip(entries, self._blobs([sha for _, sha in entries]), strict=True):
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            if not isinstance(doc, dict) or path.rsplit("/", 1)[-1].startswith("MAL-0000") or not doc.get("id"):
                continue
            out.append((path, doc))
        return out

    def live(self, commit: str) -> dict[Key, set[str]]:
        """Per package: the ids under ``osv/malicious/`` (not carrying ``withdrawn``) that name it."""
        out: dict[Key, set[str]] = defaultdict(set)
        for _, doc in self.files(commit, LIVE_DIR):
            if doc.get("withdrawn"):
                continue
            for entry in doc.get("affected") or []:
                pkg = entry["package"]
                out[(pkg["ecosystem"], canonical(pkg["ecosystem"], pkg["name"]))].add(doc["id"])
        return dict(out)

    def withdrawn_ids(self, commit: str) -> frozenset[str]:
        """Ids under ``osv/withdrawn/`` at ``commit`` (cached: the checks ask once per reporting commit)."""
        if commit not in self._withdrawn:
            self._withdrawn[commit] = frozenset(doc["id"] for _, doc in self.files(commit, WITHDRAWN_DIR))
        return self._withdrawn[commit]


# -- the real ingestor ---------------------------------------------------------------------------------------------
def ingest(git_dir: Path, state: Path, branch: str = "main", per_commit: bool = True) -> list[ReportObserved]:
    """One ``qwatch ingest openssf --once`` poll on ``branch``, with cursor and index kept in ``state``."""
    metrics = Metrics(CollectorRegistry())
    cfg = OpenSSFConfig(repo=str(git_dir), branch=branch, per_commit=per_commit)
    source = GitSource.open(str(git_dir), branch, state / "work", metrics)
    index = ReportIndex(state / "index.sqlite")
    sink = MemorySink()
    try:
        service = OpenSSFService(cfg, source, index, sink, FileCursorStore(state), metrics, COMPONENT)
        service.run(once=True)
    finally:
        source.close()
        index.close()
    return [e for e in sink.events if isinstance(e, ReportObserved)]


def snapshot_then_follow(git_dir: Path, state: Path, start: str, per_commit: bool = True) -> list[ReportObserved]:
    """First run at ``start`` (a snapshot: the cursor-less start), then one poll from there to ``main``."""
    branch = f"qwatch-start-{start[:12]}"
    subprocess.run(["git", "--git-dir", str(git_dir), "branch", "-f", branch, start], check=True)
    try:
        first = ingest(git_dir, state, branch=branch)
    finally:
        subprocess.run(["git", "--git-dir", str(git_dir), "branch", "-D", branch], check=True, capture_output=True)
    return first + ingest(git_dir, state, per_commit=per_commit)


# -- processing and checking ---------------------------------------------------------------------------------------
@dataclass
class Processed:
    """Package states after every observation, and each transition with the observation that produced it."""

    states: dict[Key, PackageStateRecord] = field(default_factory=dict)
    transitions: list[tuple[ReportObserved, Transition]] = field(default_factory=list)


def process(observations: Iterable[ReportObserved]) -> Processed:
    """Feed the observations, in order, to the processor's core, keyed by (ecosystem, package)."""
    out = Processed()
    for obs in observations:
        key = (obs.ecosystem, obs.package)
        result = step(out.states.get(key), obs, obs.observed_at)
        if result.state is not None:
            out.states[key] = result.state
        out.transitions.extend((obs, t) for t in result.transitions)
    return out


def live_in_states(states: dict[Key, PackageStateRecord]) -> dict[Key, set[str]]:
    """Per package, the ids whose last state is live."""
    return {key: {r.report_id for r in s.reports if r.status == "live"} for key, s in states.items()}


def fold(observations: Iterable[ReportObserved]) -> dict[Key, set[str]]:
    """The documented meaning of ``change``, applied without the processor: the last change per package wins."""
    last: dict[tuple[Key, str], str] = {}
    for obs in observations:
        last[((obs.ecosystem, obs.package), obs.report_id)] = obs.change
    out: dict[Key, set[str]] = defaultdict(set)
    for (key, report_id), change in last.items():
        assert change in LIVE_CHANGES | GONE_CHANGES, change
        if change in LIVE_CHANGES:
            out[key].add(report_id)
    return dict(out)


def mismatches(got: dict[Key, set[str]], want: dict[Key, set[str]]) -> dict[Key, tuple[set[str], set[str]]]:
    """Packages whose live ids differ: key → (extra, missing)."""
    out = {}
    for key in got.keys() | want.keys():
        have, should = got.get(key, set()), want.get(key, set())
        if have != should:
            out[key] = (have - should, should - have)
    return out


@dataclass
class Verdict:
    """The three parts of the invariant, each as the list of its violations."""

    live: dict[Key, tuple[set[str], set[str]]]
    reported_while_withdrawn: list[tuple[Key, str, str]]
    reported_twice: list[tuple[Key, str, str]]

    @property
    def ok(self) -> bool:
        """Nothing violated."""
        return not (self.live or self.reported_while_withdrawn or self.reported_twice)

    def describe(self, limit: int = 8) -> str:
        """A short account for an assertion message."""
        sample = dict(sorted(self.live.items())[:limit])
        withdrawn, twice = self.reported_while_withdrawn, self.reported_twice
        return (
            f"{len(self.live)} packages with other live reports than the head (key: (extra, missing)), e.g. {sample}; "
            f"{len(withdrawn)} REPORTED while withdrawn, e.g. {withdrawn[:limit]}; "
            f"{len(twice)} REPORTED twice without a withdrawal, e.g. {twice[:limit]}"
        )


def check(processed: Processed, oracle: Oracle, head: str) -> Verdict:
    """(a) live reports per package = the head; (b) no REPORTED for an id under osv/withdrawn/ at its commit;
    (c) no second REPORTED of a (package, report) without a REPORT_WITHDRAWN between."""
    live = mismatches(live_in_states(processed.states), oracle.live(head))
    while_withdrawn = []
    twice = []
    reported: set[tuple[Key, str]] = set()
    for obs, transition in processed.transitions:
        if transition.report_id is None:
            continue
        pair = ((transition.ecosystem, transition.package), transition.report_id)
        if transition.kind == REPORTED:
            if transition.report_id in oracle.withdrawn_ids(obs.commit):
                while_withdrawn.append((pair[0], pair[1], obs.commit))
            if pair in reported:
                twice.append((pair[0], pair[1], obs.commit))
            reported.add(pair)
        elif transition.kind == REPORT_WITHDRAWN:
            reported.discard(pair)
    return Verdict(live, while_withdrawn, twice)


def revived_while_withdrawn(observations: Iterable[ReportObserved], oracle: Oracle) -> list[tuple[str, str, str]]:
    """Ingestor-side (b): observations that call a report live while it sits under osv/withdrawn/ at their commit."""
    return [
        (o.change, o.report_id, o.commit)
        for o in observations
        if o.change in LIVE_CHANGES and o.report_id in oracle.withdrawn_ids(o.commit)
    ]


# -- a history never seen: a seeded random real repository -------------------------------------------------------------
ECOSYSTEMS = (("PyPI", "pypi"), ("npm", "npm"), ("NuGet", "nuget"), ("crates.io", "crates-io"))


@dataclass
class _Report:
    report_id: str
    packages: list[tuple[str, str]]  # (ecosystem, name as published)
    versions: list[str]
    path: str
    withdrawn: bool
    modified: int


class HistoryGenerator:
    """Upstream's patterns at random, as a real bare git repository: ingest of pending ``MAL-0000`` files and their
    "Assign IDs" (rename to a new id, or merge into an existing report), edits, withdrawals (move + field), edits
    of withdrawn files, reinstatements, deletions, moves of an id to another package's folder, reports naming two
    packages (gaining and losing one), broken files, files out of scope, and merges of side branches.

    The commits are written by one ``git fast-import`` stream (real commits, trees and blobs; seconds instead of
    a ``git commit`` per change); committer times rise monotonically, as upstream's do."""

    def __init__(self, git_dir: Path, seed: int) -> None:
        self.git_dir = git_dir
        self.rng = random.Random(seed)
        self.reports: dict[str, _Report] = {}
        self.pending: dict[str, tuple[str, str]] = {}  # path -> (ecosystem, name)
        self.tree: set[str] = set()
        self.next_id = 1
        self.clock = 1_700_000_000
        self.commit_time = 1_767_225_600
        self.names: list[tuple[str, str]] = []
        self.ops: Counter[str] = Counter()
        self._stream: list[bytes] = []
        self._mark = 0

    # names and records
    def _name(self) -> tuple[str, str]:
        if self.names and self.rng.random() < 0.3:
            return self.rng.choice(self.names)  # a package that has (had) a report gets another
        eco = self.rng.choice(ECOSYSTEMS)[0]
        stem = f"pkg{self.rng.randrange(10_000)}"
        name = {
            "PyPI": self.rng.choice([stem, f"{stem.title()}_Lib", f"{stem}.py", f"{stem}--x"]),
            "npm": self.rng.choice([stem, f"@scope{self.rng.randrange(9)}/{stem}"]),
            "NuGet": f"{stem.title()}.Tools",
            "crates.io": f"{stem}-rs",
        }[eco]
        self.names.append((eco, name))
        return eco, name

    @staticmethod
    def _dir(eco: str, name: str) -> str:
        return f"{dict(ECOSYSTEMS)[eco]}/{canonical(eco, name)}"

    def _path(self, rep: _Report) -> str:
        root = WITHDRAWN_DIR if rep.withdrawn else LIVE_DIR
        return f"{root}{self._dir(*rep.packages[0])}/{rep.report_id}.json"

    @staticmethod
    def _doc(rep: _Report) -> str:
        stamp = _iso(rep.modified)
        doc: dict[str, Any] = {"modified": stamp, "published": "2023-01-01T00:00:00Z"}
        if rep.withdrawn:
            doc["withdrawn"] = stamp
        doc.update(
            {
                "schema_version": "1.5.0",
                "id": rep.report_id,
                "summary": f"Malicious code in {rep.packages[0][1]} ({rep.packages[0][0]})",
                "affected": [
                    {"package": {"ecosystem": eco, "name": name}, "versions": list(rep.versions)}
                    for eco, name in rep.packages
                ],
            }
        )
        return json.dumps(doc, indent=2) + "\n"

    def _tick(self) -> int:
        self.clock += self.rng.randrange(60, 4000)
        return self.clock

    def _pick(self, withdrawn: bool | None = None) -> _Report | None:
        pool = [r for r in self.reports.values() if withdrawn is None or r.withdrawn == withdrawn]
        return self.rng.choice(sorted(pool, key=lambda r: r.report_id)) if pool else None

    def _new_id(self) -> str:
        rid = f"MAL-2030-{self.next_id}"
        self.next_id += 1
        return rid

    def _write(self, files: dict[str, str | None], rep: _Report, bump: bool = True) -> None:
        if bump:
            rep.modified = self._tick()
        new = self._path(rep)
        if rep.path and new != rep.path:
            files[rep.path] = None
        files[new] = self._doc(rep)
        rep.path = new

    # one upstream change into ``files``
    def _op(self, files: dict[str, str | None]) -> None:  # noqa: C901, PLR0912, PLR0915 - one branch per pattern
        r = self.rng.random()
        rep: _Report | None
        if r < 0.20:
            eco, name = self._name()
            pending = f"{LIVE_DIR}{self._dir(eco, name)}/MAL-0000-kam193-{self.rng.getrandbits(64):016x}.json"
            doc = {"id": "", "summary": "pending", "affected": [{"package": {"ecosystem": eco, "name": name}}]}
            files[pending] = json.dumps(doc, indent=2) + "\n"
            self.pending[pending] = (eco, name)
            self.ops["ingest-pending"] += 1
        elif r < 0.38:
            if not self.pending:
                return
            path = self.rng.choice(sorted(self.pending))
            eco, name = self.pending.pop(path)
            files[path] = None
            target = next((x for x in self.reports.values() if not x.withdrawn and x.packages[0] == (eco, name)), None)
            if target is not None and self.rng.random() < 0.5:
                target.versions.append(f"{len(target.versions)}.0")
                self._write(files, target)
                self.ops["assign-merge"] += 1
            else:
                rep = _Report(self._new_id(), [(eco, name)], ["1.0"], "", False, self._tick())
                self.reports[rep.report_id] = rep
                self._write(files, rep, bump=False)
                self.ops["assign-new"] += 1
        elif r < 0.48:
            rep = self._pick(withdrawn=False)
            if rep:
                rep.versions.append(f"{len(rep.versions)}.{self.rng.randrange(9)}")
                self._write(files, rep)
                self.ops["modify"] += 1
        elif r < 0.56:
            rep = self._pick(withdrawn=False)
            if rep:
                rep.withdrawn = True
                self._write(files, rep)
                self.ops["withdraw"] += 1
        elif r < 0.61:
            rep = self._pick(withdrawn=True)
            if rep:
                rep.versions.append("9.9")
                self._write(files, rep, bump=self.rng.random() < 0.5)
                self.ops["edit-withdrawn"] += 1
        elif r < 0.66:
            rep = self._pick(withdrawn=True)
            if rep:
                rep.withdrawn = False
                self._write(files, rep, bump=self.rng.random() < 0.5)  # an un-withdrawal may keep modified
                self.ops["reinstate"] += 1
        elif r < 0.71:
            rep = self._pick()
            if rep:
                files[rep.path] = None
                del self.reports[rep.report_id]
                self.ops["delete-withdrawn" if rep.withdrawn else "delete"] += 1
        elif r < 0.83:
            rep = self._pick()
            if rep:
                rep.packages = [self._name()]  # the same id, another package's folder
                self._write(files, rep, bump=self.rng.random() < 0.7)
                self.ops["move-withdrawn" if rep.withdrawn else "move"] += 1
        elif r < 0.89:
            rep = self._pick(withdrawn=False)
            if rep and len(rep.packages) == 1:
                rep.packages.append(self._name())
                self._write(files, rep)
                self.ops["gain-package"] += 1
            elif rep:
                rep.packages.pop(self.rng.randrange(len(rep.packages)))
                self._write(files, rep)
                self.ops["lose-package"] += 1
        elif r < 0.92:
            rep = _Report(self._new_id(), [self._name(), self._name()], ["1.0"], "", False, self._tick())
            self.reports[rep.report_id] = rep
            self._write(files, rep, bump=False)
            self.ops["add-multi"] += 1
        elif r < 0.96:
            files[f"{LIVE_DIR}npm/broken{self.rng.randrange(99)}/MAL-2031-{self.rng.randrange(99)}.json"] = '{"id": ,}'
            files[f"osv/unmergable/pypi/x{self.rng.randrange(9)}/MAL-0000-x.json"] = "{}"
            self.ops["noise"] += 1
        else:
            files[f"{LIVE_DIR}.id-allocator"] = f"{self.rng.getrandbits(64):x}\n"
            self.ops["allocator"] += 1

    # the fast-import stream
    def _data(self, text: str) -> None:
        raw = text.encode()
        self._stream.append(b"data %d\n%s\n" % (len(raw), raw))

    def _changes(self, ops: int) -> dict[str, str | None]:
        files: dict[str, str | None] = {}
        for _ in range(ops):
            self._op(files)
        for path, content in list(files.items()):
            if content is None and path not in self.tree:
                del files[path]  # written and moved on within this commit: never in a tree
            elif content is None:
                self.tree.discard(path)
            else:
                self.tree.add(path)
        return files

    def _commit(self, ref: str, message: str, files: dict[str, str | None], parents: list[int]) -> int:
        self._mark += 1
        self.commit_time += self.rng.randrange(30, 3600)
        self._stream.append(b"commit %s\nmark :%d\n" % (ref.encode(), self._mark))
        self._stream.append(b"committer fixture <fixture@example.invalid> %d +0000\n" % self.commit_time)
        self._data(message)
        if parents:
            self._stream.append(b"from :%d\n" % parents[0])
        for parent in parents[1:]:
            self._stream.append(b"merge :%d\n" % parent)
        for path, content in sorted(files.items()):
            if content is None:
                self._stream.append(b"D %s\n" % path.encode())
            else:
                self._stream.append(b"M 100644 inline %s\n" % path.encode())
                self._data(content)
        self._stream.append(b"\n")
        return self._mark

    def build(self, commits: int) -> str:
        """``commits`` first-parent commits (a few are merges of a two-commit side branch); the head sha."""
        head = self._commit("refs/heads/main", "first commit", {"README.md": "generated history\n"}, [])
        for _ in range(commits):
            if self.rng.random() < 0.04:
                side: dict[str, str | None] = {}
                tip = head
                for _ in range(2):
                    files = self._changes(self.rng.randrange(1, 4))
                    tip = self._commit("refs/heads/side", "side change", files, [tip])
                    side.update(files)
                head = self._commit("refs/heads/main", "Merge side", side, [head, tip])
                self.ops["merge"] += 1
            else:
                files = self._changes(self.rng.choice((1, 1, 1, 2, 3, 6)))
                head = self._commit("refs/heads/main", "change", files, [head])
        self._stream.append(b"done\n")
        subprocess.run(["git", "init", "-q", "--bare", str(self.git_dir)], check=True)
        subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "fast-import", "--quiet", "--done"],
            input=b"".join(self._stream),
            check=True,
        )
        subprocess.run(["git", "--git-dir", str(self.git_dir), "branch", "-q", "-D", "side"], check=False)
        return subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "rev-parse", "main"], check=True, capture_output=True, text=True
        ).stdout.strip()


def _iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    """``items`` in slices of ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- tests ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle cloned bare once for the module, ``main`` at ``dev-cut``."""
    git_dir = clone_history(tmp_path_factory.mktemp("ossf-history") / "R")
    head = subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", "main"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert head == BUNDLE_HEAD
    return git_dir


@pytest.fixture(scope="module")
def oracle(history: Path) -> Oracle:
    """The independent reader of the clone."""
    return Oracle(history)


BACK = (40,)
"""Snapshot this many first-parent commits before the head (2024-12-24), then follow commit by commit to it (160 back
was a second point here; it costs 15 s and the bench replays everything). The October 2024 mass move (57c1e1b5b, 1,177
commits back) has its own test below; the whole history is ``bench/openssf_history.py``."""


@pytest.mark.parametrize("back", BACK)
def test_real_history_replayed_from_a_snapshot_holds_the_invariant(
    history: Path, oracle: Oracle, tmp_path: Path, back: int
) -> None:
    commits = first_parents(history)
    observations = snapshot_then_follow(history, tmp_path / "state", commits[-1 - back])
    changes = Counter(o.change for o in observations)
    assert changes["existing"] > 20_000 and "added" in changes  # a baseline first, then news
    # The ingestor's output alone: its documented vocabulary folds to exactly the head, and never revives.
    assert mismatches(fold(observations), oracle.live(BUNDLE_HEAD)) == {}
    assert revived_while_withdrawn(observations, oracle) == []
    # Then through the processor.
    verdict = check(process(observations), oracle, BUNDLE_HEAD)
    assert verdict.ok, verdict.describe()


def test_real_history_across_the_mass_move_and_the_withdrawn_edits(
    history: Path, oracle: Oracle, tmp_path: Path
) -> None:
    """A first run at the commit before 57c1e1b5b, then per commit through it, c60d7ffca and 40 more: every one of
    the 2,209 moves tells both packages, and the edits under osv/withdrawn/ stay withdrawn."""
    commits = first_parents(history)
    start = next(i for i, c in enumerate(commits) if c.startswith("57c1e1b5b")) - 1
    stop = commits[start + 42]
    branch = f"qwatch-stop-{stop[:12]}"
    state = tmp_path / "state"
    subprocess.run(["git", "--git-dir", str(history), "branch", "-f", branch, commits[start]], check=True)
    try:
        baseline = ingest(history, state, branch=branch)
        subprocess.run(["git", "--git-dir", str(history), "branch", "-f", branch, stop], check=True)
        observations = ingest(history, state, branch=branch)
    finally:
        subprocess.run(["git", "--git-dir", str(history), "branch", "-D", branch], check=True, capture_output=True)
    by_commit = Counter((o.commit[:9], o.change) for o in observations)
    assert by_commit[("57c1e1b5b", "moved")] == 2209 and by_commit[("57c1e1b5b", "modified")] > 0
    assert by_commit[("c60d7ffca", "withdrawn")] == 2 and by_commit[("c60d7ffca", "modified")] > 1000
    lodestone = [o for o in observations if o.report_id == "MAL-2023-8651"]
    assert {o.change for o in lodestone} == {"withdrawn"}
    everything = baseline + observations
    assert mismatches(fold(everything), oracle.live(stop)) == {}
    assert revived_while_withdrawn(everything, oracle) == []
    verdict = check(process(everything), oracle, stop)
    assert verdict.ok, verdict.describe()


@pytest.mark.parametrize("seed", [7, 2024])
def test_generated_history_holds_the_invariant_from_any_start(tmp_path: Path, seed: int) -> None:
    git_dir = tmp_path / "gen.git"
    gen = HistoryGenerator(git_dir, seed)
    head = gen.build(300)
    patterns = ("assign-new", "assign-merge", "move", "move-withdrawn", "edit-withdrawn", "reinstate")
    assert min(gen.ops[k] for k in (*patterns, "delete", "delete-withdrawn", "lose-package", "merge")) > 0, gen.ops
    oracle = Oracle(git_dir)
    commits = first_parents(git_dir)
    want = oracle.live(head)
    assert sum(len(v) for v in want.values()) > 30
    runs = {
        "from the first commit": snapshot_then_follow(git_dir, tmp_path / "s0", commits[0]),
        "from the middle": snapshot_then_follow(git_dir, tmp_path / "s1", commits[len(commits) // 2]),
        "range from a third": snapshot_then_follow(git_dir, tmp_path / "s2", commits[len(commits) // 3], False),
        "snapshot of the head": ingest(git_dir, tmp_path / "s3"),
    }
    for label, observations in runs.items():
        assert mismatches(fold(observations), want) == {}, label
        assert revived_while_withdrawn(observations, oracle) == [], label
        verdict = check(process(observations), oracle, head)
        assert verdict.ok, f"{label}: {verdict.describe()}"
