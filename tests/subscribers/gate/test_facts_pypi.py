"""``qwatch gate`` against the local fake PyPI over real HTTP: every exit code, every lockfile format, the real CLI.

Generated fixtures (tests/fixtures/lockfiles, written by uv, Poetry, pip-compile and pipenv) and the five real
lockfiles in shared/ are served from a FakePyPI seeded with exactly their names and versions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from subscribers.inventory.lockfiles import Inventory, load
from testing.fakepypi import FakePyPI, Fault
from tests.fixture_paths import LOCAL

GENERATED = LOCAL / "lockfiles"
FORMATS = {
    "uv": "uv/uv.lock",
    "poetry": "poetry/poetry.lock",
    "pylock": "pylock/pylock.toml",
    "pipenv": "pipenv/Pipfile.lock",
    "pip-compile": "pip-compile/requirements.txt",
}
SHARED_KEYS = [
    "poetry2-python-poetry/poetry.lock",
    "uvlock-pallets-flask/uv.lock",
    "pylock-comfy-cli/pylock.toml",
    "pipfile-pypa-pipenv/Pipfile.lock",
    "pipcompile-pypi-warehouse/requirements/main.txt",
]
OLD = time.time() - 400 * 86400
QWATCH = Path(sys.executable).with_name("qwatch")


def seed(pypi: FakePyPI, inventory: Inventory, fresh: dict[str, float] | None = None) -> None:
    """Publish every PyPI-sourced name at its locked versions (an unpinned one gets 1.0), a year ago unless fresh."""
    versions: dict[str, set[str]] = {}
    for p in inventory.packages:
        if p.source.kind == "pypi":
            versions.setdefault(p.normalized, set()).add(p.version or "1.0")
    for name, vs in versions.items():
        dist = name.replace("-", "_")
        when = (fresh or {}).get(name, OLD)
        pypi.add_project(name, {v: [f"{dist}-{v}-py3-none-any.whl"] for v in sorted(vs)}, upload_time=when)


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWATCH_HTTP_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("QWATCH_HTTP_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("QWATCH_HTTP_BACKOFF_MAX", "0.05")
    monkeypatch.setenv("QWATCH_HTTP_TIMEOUT", "5")


@pytest.fixture
def pypi() -> Iterator[FakePyPI]:
    fake = FakePyPI()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def gate(capsys: pytest.CaptureFixture[str], lock: Path, base: str, *extra: str) -> tuple[int, dict[str, Any]]:
    """The real CLI entry point in-process, JSON output parsed."""
    code = main(["gate", "--lock", str(lock), "--index-url", f"{base}/simple/", "--format", "json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def reasons(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["package"], f["reason"]) for f in doc["findings"]]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_generated_lockfile_clean_then_quarantined_transitive(
    fmt: str, pypi: FakePyPI, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = GENERATED / FORMATS[fmt]
    seed(pypi, load(lock))
    code, doc = gate(capsys, lock, pypi.base_url)
    assert (code, doc["findings"], doc["result"]) == (0, [], "clean")
    assert doc["counts"]["checked"] >= 6
    pypi.quarantine("delta")
    code, doc = gate(capsys, lock, pypi.base_url)
    assert code == 1
    assert reasons(doc) == [("delta", "quarantined")]
    finding = doc["findings"][0]
    assert finding["version"] == "3.0.0"
    assert finding["path"][-1] == "delta"
    if fmt == "uv":
        assert finding["path"] == ["acme-app", "alpha", "beta", "delta"]
    if fmt in ("poetry", "pip-compile"):
        assert finding["path"] == ["alpha", "beta", "delta"]


def test_removed_pin(pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    lock = GENERATED / FORMATS["uv"]
    seed(pypi, load(lock))
    pypi.remove_project("gamma")
    code, doc = gate(capsys, lock, pypi.base_url)
    assert code == 1
    assert reasons(doc) == [("gamma", "removed")]
    assert doc["findings"][0]["path"] == ["acme-app", "alpha", "gamma"]


def test_pinned_version_removed(pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    lock = GENERATED / FORMATS["poetry"]
    seed(pypi, load(lock))
    pypi.add_release("beta", "2.2.0", ["beta-2.2.0-py3-none-any.whl"], upload_time=OLD)
    pypi.remove_release("beta", "2.1.0")
    code, doc = gate(capsys, lock, pypi.base_url)
    assert code == 1
    assert reasons(doc) == [("beta", "version-missing")]
    assert "2.1.0" in doc["findings"][0]["message"]


def test_release_quarantined_is_a_missing_version(pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    lock = GENERATED / FORMATS["pip-compile"]
    seed(pypi, load(lock))
    pypi.quarantine_release("epsilon", "1.0.0")
    code, doc = gate(capsys, lock, pypi.base_url)
    assert (code, reasons(doc)) == (1, [("epsilon", "version-missing")])


def test_soak_window_holds_a_new_version_of_a_listed_package(
    pypi: FakePyPI, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = GENERATED / FORMATS["uv"]
    uploaded = time.time() - 3600
    seed(pypi, load(lock), {"urllib3": uploaded, "delta": uploaded})  # delta is not on the default list
    code, doc = gate(capsys, lock, pypi.base_url, "--soak", "72h")
    assert code == 1
    assert reasons(doc) == [("urllib3", "soak-hold")]
    finding = doc["findings"][0]
    held_until = finding["held_until_ms"]
    assert abs(held_until - int((uploaded + 72 * 3600) * 1000)) < 2000
    assert finding["held_until"] in finding["message"]
    assert finding["path"] == ["acme-app", "alpha", "beta", "urllib3"]
    code, doc = gate(capsys, lock, pypi.base_url, "--soak", "30m")
    assert code == 0


def test_soak_packages_file_and_soak_other(pypi: FakePyPI, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lock = GENERATED / FORMATS["pip-compile"]
    seed(pypi, load(lock), {"delta": time.time() - 7200})
    listed = tmp_path / "soak.txt"
    listed.write_text("# ours\nDelta\n")
    code, doc = gate(capsys, lock, pypi.base_url, "--soak-packages", str(listed), "--soak", "1d")
    assert (code, reasons(doc)) == (1, [("delta", "soak-hold")])
    code, doc = gate(capsys, lock, pypi.base_url, "--soak-packages", str(listed), "--soak", "1h", "--soak-other", "3h")
    assert (code, reasons(doc)) == (0, [])  # delta is listed (1h); the unlisted ones are a year old


def test_index_down_is_exit_2_with_advice(pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    lock = GENERATED / FORMATS["uv"]
    seed(pypi, load(lock))
    base = pypi.base_url
    pypi.stop()
    code, doc = gate(capsys, lock, base)
    assert code == 2
    assert doc["result"] == "unverified" and doc["findings"] == []
    assert "--index-url" in doc["message"] and "never passes" in doc["message"]
    assert {u["reason"] for u in doc["unverified"]} == {"transport"}


def test_503_after_retries_is_exit_2(pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    lock = GENERATED / FORMATS["pipenv"]
    seed(pypi, load(lock))
    pypi.inject(Fault("503", path_prefix="/simple/beta/", count=10))
    code, doc = gate(capsys, lock, pypi.base_url)
    assert code == 2
    assert [u["package"] for u in doc["unverified"]] == ["beta"]
    assert "503" in doc["unverified"][0]["message"]


def test_wrong_content_type_is_unusable(pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    lock = GENERATED / FORMATS["pipenv"]
    seed(pypi, load(lock))
    pypi.inject(Fault("content-type", path_prefix="/simple/alpha/", content_type="text/html"))
    code, doc = gate(capsys, lock, pypi.base_url)
    assert code == 2
    assert doc["unverified"][0]["reason"] == "unusable"


def test_bad_lockfile_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "uv.lock"
    bad.write_text("not [ toml")
    code = main(["gate", "--lock", str(bad), "--index-url", "http://127.0.0.1:9/simple/", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 2
    assert json.loads(captured.out)["exit_code"] == 2
    assert "cannot verify" in captured.err


def test_warm_cache_revalidates_with_etags(pypi: FakePyPI, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lock = GENERATED / FORMATS["uv"]
    seed(pypi, load(lock))
    cache = str(tmp_path / "cache")
    assert gate(capsys, lock, pypi.base_url, "--cache-dir", cache)[0] == 0
    pypi.reset_requests()
    assert gate(capsys, lock, pypi.base_url, "--cache-dir", cache)[0] == 0
    statuses = {status for _, _, status in pypi.requests}
    assert statuses == {304}
    pypi.quarantine("alpha")  # a change must not be hidden by the cache
    code, doc = gate(capsys, lock, pypi.base_url, "--cache-dir", cache)
    assert (code, reasons(doc)) == (1, [("alpha", "quarantined")])


@pytest.mark.parametrize("key", SHARED_KEYS)
def test_real_lockfiles(key: str, shared_fixtures: Path, pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    lock = shared_fixtures / "lockfiles" / key
    inventory = load(lock)
    expected = json.loads((shared_fixtures / "lockfiles" / "EXPECTED.json").read_text())[key]
    seed(pypi, inventory)
    code, doc = gate(capsys, lock, pypi.base_url, "--soak", "0")
    assert (code, doc["findings"], doc["unverified"]) == (0, [], [])
    assert {s["package"] for s in doc["skipped"]} >= {n["name"] for n in expected["non_pypi"]}
    paths = expected["transitive_paths"]
    pypi_names = sorted(p.normalized for p in inventory.packages if p.source.kind == "pypi")
    target = next(iter(paths)) if paths else pypi_names[len(pypi_names) // 2]  # formats without a graph
    pypi.quarantine(target)
    code, doc = gate(capsys, lock, pypi.base_url, "--soak", "0")
    assert code == 1
    assert {f["package"] for f in doc["findings"]} == {target}
    path = doc["findings"][0]["path"]
    assert path[-1] == target
    if paths:
        assert len(path) - (1 if inventory.root else 0) == len(paths[target])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QWATCH_HTTP_MAX_ATTEMPTS": "2", "QWATCH_HTTP_BACKOFF_BASE": "0.01"}
    return subprocess.run([str(QWATCH), "gate", *args], capture_output=True, text=True, timeout=60, env=env)


def test_cli_subprocess_json_contract(pypi: FakePyPI) -> None:
    lock = GENERATED / FORMATS["uv"]
    seed(pypi, load(lock))
    pypi.quarantine("delta")
    done = _cli("--lock", str(lock), "--index-url", f"{pypi.base_url}/simple/", "--soak", "72h", "--format", "json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert isinstance(doc["findings"], list) and len(doc["findings"]) == 1
    finding = doc["findings"][0]
    assert {"package", "version", "reason", "path"} <= set(finding)
    assert (finding["package"], finding["version"], finding["reason"]) == ("delta", "3.0.0", "quarantined")
    assert finding["path"] == ["acme-app", "alpha", "beta", "delta"]
    assert all(isinstance(step, str) for step in finding["path"])


def test_cli_subprocess_sarif(pypi: FakePyPI, tmp_path: Path) -> None:
    lock = GENERATED / FORMATS["poetry"]
    seed(pypi, load(lock))
    pypi.remove_project("urllib3")
    out = tmp_path / "gate.sarif"
    done = _cli(
        "--lock", str(lock), "--index-url", f"{pypi.base_url}/simple/", "--format", "sarif", "--output", str(out)
    )
    assert done.returncode == 1, done.stderr
    sarif = json.loads(out.read_text())
    assert sarif["version"] == "2.1.0" and "sarif" in sarif["$schema"]
    run = sarif["runs"][0]
    rules = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert {"quarantined", "removed", "malicious", "version-missing", "soak-hold"} <= rules
    (result,) = run["results"]
    assert result["ruleId"] == "removed" and result["level"] == "error"
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "removed"
    assert "alpha > beta > urllib3" in result["message"]["text"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("poetry.lock")
    line = lock.read_text().splitlines()[location["region"]["startLine"] - 1]
    assert line == 'name = "urllib3"'


def test_cli_subprocess_text_and_index_down() -> None:
    lock = GENERATED / FORMATS["pip-compile"]
    done = _cli("--lock", str(lock), "--index-url", "http://127.0.0.1:9/simple/")
    assert done.returncode == 2
    assert "retry, or point --index-url at a reachable mirror" in done.stdout
