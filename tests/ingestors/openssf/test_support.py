"""The OpenSSF test helpers themselves (tests/openssf_support.py): a broken helper must fail here, loudly."""

from __future__ import annotations

import json
from pathlib import Path

from tests.openssf_support import WorkRepo, gone, live, osv


def test_work_repo_commits_moves_and_deletes(tmp_path: Path) -> None:
    repo = WorkRepo(tmp_path / "r")
    first = repo.commit({live("a", "MAL-2026-1"): osv("MAL-2026-1", "a")})
    second = repo.move(live("a", "MAL-2026-1"), gone("a", "MAL-2026-1"))
    assert repo.repo.git.ls_tree("-r", "--name-only", second).split() == [gone("a", "MAL-2026-1")]
    assert repo.repo.commit(second).parents[0].hexsha == first


def test_osv_helper_matches_the_upstream_shape() -> None:
    doc = json.loads(osv("MAL-2026-7", "x", all_versions=True, withdrawn="2026-02-01T00:00:00Z"))
    assert doc["affected"][0]["ranges"][0]["events"] == [{"introduced": "0"}]
    assert doc["withdrawn"] == "2026-02-01T00:00:00Z"
    assert doc["database_specific"]["malicious-packages-origins"][0]["source"] == "kam193"
