"""The fixture bundles and edge cases, through the real ingestor on real git clones (no mocks of git).

Expected results come from ``shared/fixtures/ossf-sample/expected``, computed independently of this code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import git
import pytest

from ingestors.openssf.index import INVALID, PENDING, REPORT
from qwatch.cursors import FileCursorStore
from tests.openssf_support import COMPONENT, WorkRepo, ingestor

SAMPLE_FIRST = "757d548dda90cb931d4e944c9e022aad40789c3e"
SAMPLE_LAST = "629cb43c1061fe520ecffcadc7da4e3417cfa245"
LIFECYCLE_FIRST = "0fa02c43518112bd19614b40f46af752c26af403"


@pytest.fixture(scope="module")
def ossf(shared_fixtures: Path) -> Path:
    """``shared/fixtures/ossf-sample``."""
    return shared_fixtures / "ossf-sample"


@pytest.fixture(scope="module")
def sample_repo(ossf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fixture A cloned from its bundle (the ingestor only reads it)."""
    dest = tmp_path_factory.mktemp("ossf-sample") / "repo"
    git.Repo.clone_from(str(ossf / "ossf-pypi-sample.bundle"), dest)
    return dest


@pytest.fixture(scope="module")
def lifecycle_repo(ossf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fixture L (ingest → assign → withdraw of MAL-2026-4750) cloned from its bundle."""
    dest = tmp_path_factory.mktemp("ossf-lifecycle") / "repo"
    git.Repo.clone_from(str(ossf / "ossf-upstream-fastapi-lifecycle.bundle"), dest)
    return dest


@pytest.fixture(scope="module")
def expected(ossf: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ossf / "expected" / "ossf-pypi-sample.expected.json").read_text())
    assert (data["first"], data["last"]) == (SAMPLE_FIRST, SAMPLE_LAST)
    return data


def _by_change(pairs: set[tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for change, report_id in pairs:
        out.setdefault(change, set()).add(report_id)
    return out


def test_sample_range_first_to_last_is_exactly_the_manifest(
    sample_repo: Path, tmp_path: Path, expected: dict[str, Any]
) -> None:
    with ingestor(sample_repo, tmp_path, since=SAMPLE_FIRST) as h:
        result = h.service.poll()
        events = h.reports()
        assert result.head == SAMPLE_LAST and [s.mode for s in result.steps] == ["range"]
        assert _by_change(h.changes()) == {"added": set(expected["ids"]["new"]), "modified": {"MAL-2024-4732"}}
        assert len(events) == 82 and len({e.event_id for e in events}) == 82
        assert {(e.source, e.ecosystem, e.commit) for e in events} == {("openssf", "PyPI", SAMPLE_LAST)}
        assert h.dead() == [] and h.sample("qwatch_openssf_pending_files_skipped_total") == 0
        modified = next(e for e in events if e.change == "modified")
        assert modified.package == "admcheck" and modified.path == "osv/malicious/pypi/admcheck/MAL-2024-4732.json"
        assert "0.0.9 " not in modified.affected_versions  # the hand edit removed the trailing-space version
        cursor = FileCursorStore(tmp_path).load(COMPONENT)
        assert cursor is not None and cursor.value == SAMPLE_LAST
        assert cursor.upstream_time == git.Repo(sample_repo).commit(SAMPLE_LAST).committed_date * 1000
        assert h.sample("qwatch_openssf_reports_total", {"change": "added"}) == 81


def test_sample_per_commit_matches_every_commit_and_the_same_sets(
    sample_repo: Path, tmp_path: Path, ossf: Path, expected: dict[str, Any]
) -> None:
    per_commit = [
        json.loads(line) for line in (ossf / "expected" / "ossf-pypi-sample.per-commit.jsonl").read_text().splitlines()
    ]
    with ingestor(sample_repo, tmp_path, per_commit=True, since=SAMPLE_FIRST) as h:
        result = h.service.poll()
        assert [s.commit for s in result.steps] == [row["commit"] for row in per_commit]
        for step, row in zip(result.steps, per_commit, strict=True):
            totals = row["totals"]
            assert step.changes.get("added", 0) == totals.get("new", 0), row["index"]
            assert step.changes.get("modified", 0) == totals.get("modified", 0), row["index"]
            assert step.pending == totals.get("pending_added", 0), row["index"]
            assert set(step.changes) <= {"added", "modified"}, row["index"]
        assert _by_change(h.changes()) == {"added": set(expected["ids"]["new"]), "modified": {"MAL-2024-4732"}}
        assert len(h.reports()) == 82
        assert h.sample("qwatch_openssf_pending_files_skipped_total") == 84
        assert h.sample("qwatch_ingest_polls_total", {"source": "openssf", "outcome": "ok"}) == 1


def test_sample_snapshot_then_nothing(sample_repo: Path, tmp_path: Path) -> None:
    """No cursor: every report at head once (the one under osv/withdrawn as withdrawn); a second poll is silent."""
    with ingestor(sample_repo, tmp_path) as h:
        result = h.service.poll()
        events = h.reports()
        assert result.steps[0].mode == "snapshot" and result.steps[0].files == 8167
        withdrawn = [e for e in events if e.change == "withdrawn"]
        assert len(withdrawn) == 1 and withdrawn[0].path.startswith("osv/withdrawn/pypi/")
        assert len(events) == len({e.report_id for e in events}) == 8167
        assert {e.change for e in events} == {"existing", "withdrawn"}
        h.sink.events.clear()
        assert h.service.poll().steps == [] and h.sink.events == []


def test_lifecycle_yields_exactly_one_withdrawn(lifecycle_repo: Path, tmp_path: Path) -> None:
    with ingestor(lifecycle_repo, tmp_path / "range", since=LIFECYCLE_FIRST) as h:
        h.service.poll()
        assert h.changes() == {("withdrawn", "MAL-2026-4750")} and len(h.reports()) == 1
        event = h.reports()[0]
        assert event.path == "osv/withdrawn/pypi/fastapi/MAL-2026-4750.json"
        assert event.withdrawn == "2026-05-26T13:04:03Z" and event.package == "fastapi"
    with ingestor(lifecycle_repo, tmp_path / "commits", per_commit=True, since=LIFECYCLE_FIRST) as h:
        steps = h.service.poll().steps
        assert [s.pending for s in steps] == [1, 0, 0]
        assert [dict(s.changes) for s in steps] == [{}, {"added": 1}, {"withdrawn": 1}]
        assert [e.change for e in h.reports() if e.report_id == "MAL-2026-4750"].count("withdrawn") == 1


def test_every_edge_case_file_is_parsed_or_dead_lettered(ossf: Path, tmp_path: Path) -> None:
    root = ossf / "edge-cases"
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.json")}
    repo = WorkRepo(tmp_path / "repo")
    first = repo.commit({"osv/malicious/README.md": "reports\n"}, "base")
    head = repo.commit(dict(files), "edge cases")  # one commit: the range path
    with ingestor(repo.path, tmp_path / "state", since=first) as h:
        h.service.poll()
        malformed = "osv/malicious/vscode/EffetMer.darkgpt/MAL-0000.json"
        assert [(d.reason, d.pointer) for d in h.dead()] == [("malformed-json", f"{malformed}@{head}")]
        payload = h.dead()[0].payload
        assert payload is not None and "EffetMer" in payload
        kinds = {path: getattr(h.index.entry(path), "kind", None) for path in files}
        assert kinds.pop(malformed) == INVALID
        assert kinds.pop("osv/malicious/pypi/databasenaps/MAL-0000-kam193-dcdb5ffaca610378.json") == PENDING
        assert set(kinds.values()) == {REPORT}
        # 18 report files, 17 ids: MAL-2026-4750 is both live (#6) and withdrawn (#7); the live copy speaks.
        by_id = {e.report_id: e for e in h.reports()}
        assert len(by_id) == len(h.reports()) == 17
        assert by_id["MAL-2026-4750"].change == "added"
        assert {rid for rid, e in by_id.items() if e.change == "withdrawn"} == {"MAL-2023-8651", "MAL-2024-2929"}
        assert by_id["MAL-2024-3991"].path == "osv/malicious/nuget/2captcһaapі/MAL-2024-3991.json"
        # Upstream withdraws #6 properly (delete the live copy): now it is a withdrawal, not a deletion.
        h.sink.events.clear()
        repo.commit({"osv/malicious/pypi/fastapi/MAL-2026-4750.json": None}, "withdraw")
        h.service.poll()
        assert h.take() == {("withdrawn", "MAL-2026-4750")}


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWATCH_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "ingest", "openssf", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_contract_prints_one_json_object_per_event(
    sample_repo: Path, tmp_path: Path, expected: dict[str, Any]
) -> None:
    env = {"QWATCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = _cli("--repo", str(sample_repo), "--since", SAMPLE_FIRST, "--once", "--sink", "jsonl:-", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 82
    for event in lines:
        assert {"type", "event_id", "source", "ecosystem", "package", "report_id", "change", "commit"} <= event.keys()
        assert (event["type"], event["source"], event["commit"]) == ("ReportObserved", "openssf", SAMPLE_LAST)
    assert _by_change({(e["change"], e["report_id"]) for e in lines}) == {
        "added": set(expected["ids"]["new"]),
        "modified": {"MAL-2024-4732"},
    }


def test_cli_keeps_its_cursor_in_state_dir_and_fails_loudly(sample_repo: Path, tmp_path: Path) -> None:
    env = {"QWATCH_CACHE_DIR": str(tmp_path / "cache")}
    state = tmp_path / "state"
    common = ["--repo", str(sample_repo), "--once", "--state-dir", str(state)]
    # The sink cannot take the events (a full disk): exit 1, one clear line, no cursor written.
    full = _cli(*common, "--since", SAMPLE_FIRST, "--sink", "jsonl:/dev/full", env_extra=env)
    assert full.returncode == 1 and "cursor was not moved" in full.stderr and "Traceback" not in full.stderr
    assert not list(state.glob("cursor-*.json"))
    out = f"jsonl:{tmp_path / 'out.jsonl'}"
    first = _cli(*common, "--per-commit", "--since", SAMPLE_FIRST, "--sink", out, env_extra=env)
    assert first.returncode == 0, first.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 82
    again = _cli(*common, "--sink", "jsonl:-", env_extra=env)
    assert again.returncode == 0 and again.stdout == ""
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
