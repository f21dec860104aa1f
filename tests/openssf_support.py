"""Helpers for the OpenSSF tests: real git work repos built in tmp dirs, the ingestor wired to them, OSV records.

The helpers' own tests (``tests/ingestors/openssf/test_support.py``) check them, so a broken helper fails loudly
instead of making other tests pass vacuously.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
from prometheus_client import CollectorRegistry

from ingestors.openssf.config import OpenSSFConfig
from ingestors.openssf.index import ReportIndex
from ingestors.openssf.service import OpenSSFService, Progress
from qwatch.cursors import CursorStore, FileCursorStore
from qwatch.events import DeadLetter, ReportObserved
from qwatch.metrics import Metrics
from qwatch.openssf.gitsource import GitSource
from qwatch.runtime import StopFlag
from qwatch.sinks import MemorySink, PublishError, Sink

COMPONENT = "openssf:test"


def osv(
    report_id: str,
    name: str,
    ecosystem: str = "PyPI",
    versions: tuple[str, ...] = ("1.0.0",),
    all_versions: bool = False,
    withdrawn: str | None = None,
    summary: str | None = None,
    modified: str = "2026-01-01T00:00:00Z",
) -> str:
    """An upstream-shaped OSV record (Go MarshalIndent style), as text."""
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if versions:
        affected["versions"] = list(versions)
    if all_versions:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
    doc: dict[str, Any] = {"modified": modified, "published": "2026-01-01T00:00:00Z"}
    if withdrawn:
        doc["withdrawn"] = withdrawn
    doc.update(
        {
            "schema_version": "1.7.4",
            "id": report_id,
            "summary": summary or f"Malicious code in {name} ({ecosystem})",
            "details": "\n---\n_-= Per source details. Do not edit below this line.=-_\n",
            "affected": [affected],
            "database_specific": {
                "malicious-packages-origins": [{"source": "kam193", "sha256": "0" * 64, "versions": list(versions)}]
            },
        }
    )
    return json.dumps(doc, indent=2) + "\n"


def live(name: str, report_id: str) -> str:
    """The path upstream uses for a live PyPI report."""
    return f"osv/malicious/pypi/{name}/{report_id}.json"


def gone(name: str, report_id: str) -> str:
    """The path upstream uses for a withdrawn PyPI report."""
    return f"osv/withdrawn/pypi/{name}/{report_id}.json"


class WorkRepo:
    """A non-bare git repository on branch ``main`` that tests commit into; the ingestor reads it by path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = git.Repo.init(path, initial_branch="main")
        with self.repo.config_writer() as cw:
            cw.set_value("user", "name", "fixture")
            cw.set_value("user", "email", "fixture@example.invalid")
            cw.set_value("commit", "gpgsign", "false")
        self._tick = 1_767_225_600

    def commit(self, files: dict[str, str | bytes | None], msg: str = "change") -> str:
        """Write (str/bytes), or delete (None), the given paths, commit everything, return the sha."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        self._tick += 60
        date = f"{self._tick} +0000"
        self.repo.git.add("-A")
        self.repo.git.commit(
            "-q", "--allow-empty", "-m", msg, env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        )
        return self.repo.head.commit.hexsha

    def move(self, src: str, dst: str, content: str | None = None, msg: str = "move") -> str:
        """Move a file (optionally rewriting it), as a withdrawal or reinstatement PR does."""
        data = (self.path / src).read_text(encoding="utf-8") if content is None else content
        return self.commit({src: None, dst: data}, msg)

    def reset_hard(self, rev: str) -> None:
        """Rewrite history, as a force-push does upstream."""
        self.repo.git.reset("-q", "--hard", rev)


@dataclass
class Harness:
    """The ingestor wired to a repo path, with a sink and metrics the test can inspect."""

    service: OpenSSFService
    sink: Any
    metrics: Metrics
    cursors: CursorStore
    index: ReportIndex
    source: GitSource
    closed: list[bool] = field(default_factory=list)

    def reports(self) -> list[ReportObserved]:
        """Emitted ReportObserved events, in order."""
        return [e for e in self.sink.events if isinstance(e, ReportObserved)]

    def dead(self) -> list[DeadLetter]:
        """Emitted DeadLetter events."""
        return [e for e in self.sink.events if isinstance(e, DeadLetter)]

    def changes(self) -> set[tuple[str, str]]:
        """(change, report id) pairs emitted so far."""
        return {(e.change, e.report_id) for e in self.reports()}

    def take(self) -> set[tuple[str, str]]:
        """(change, report id) pairs emitted since the last take, then forget them."""
        out = self.changes()
        self.sink.events.clear()
        return out

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A metric value from this harness's private registry (0 when never set)."""
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0.0


@contextmanager
def ingestor(
    repo: Path | str,
    state: Path,
    sink: Sink | None = None,
    per_commit: bool = False,
    since: str | None = None,
    cursors: CursorStore | None = None,
    component: str = COMPONENT,
    stop: StopFlag | None = None,
    progress: Progress | None = None,
) -> Iterator[Harness]:
    """Open the real GitSource/ReportIndex/service on ``repo``, with cursors and index under ``state``."""
    metrics = Metrics(CollectorRegistry())
    cfg = OpenSSFConfig(repo=str(repo), per_commit=per_commit, interval=0.05, fetch_backoff=0.0)
    source = GitSource.open(str(repo), "main", state / "work", metrics, retries=2, backoff=0.0)
    index = ReportIndex(state / "index.sqlite")
    store = cursors if cursors is not None else FileCursorStore(state)
    out_sink = sink if sink is not None else MemorySink()
    service = OpenSSFService(
        cfg, source, index, out_sink, store, metrics, component, since=since, stop=stop, progress=progress
    )
    try:
        yield Harness(service, out_sink, metrics, store, index, source)
    finally:
        source.close()
        index.close()


class FailingSink(MemorySink):
    """A Sink (our port) whose flush fails while ``failing`` is set: a broker that does not acknowledge."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def flush(self, timeout: float | None = None) -> None:
        """Raise PublishError like KafkaSink does when acks are missing."""
        if self.failing:
            raise PublishError("broker did not acknowledge", len(self.events))


# -- the helpers' own checks ------------------------------------------------------------------------------------
