"""``qwatch gate --feed``, the real CLI in a subprocess, no broker: the check users ask for first ("clone the
malicious-packages repository and fail the build if any pinned version in the lockfile is listed").

The feed is the real OpenSSF sample (a bare clone of ``ossf-pypi-sample.bundle``, and an OSV zip of its real
records); the index is the local fake PyPI over real HTTP; the lockfile is a poetry.lock. ``--now`` puts the run an
hour after the sample's head commit, so the feed is fresh; a later ``--now`` makes the same feed stale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.fakepypi import FakePyPI

QWATCH = [sys.executable, "-m", "app"]
HEAD_TIME = "2024-11-12T04:25:43Z"
FRESH = "2024-11-12T05:25:43Z"
LATER = "2024-11-20T05:25:43Z"
REPORTED = ("123bla", "0.0.1", "MAL-2024-9469")
"""A report in the sample: 123bla 0.0.1 is listed, 0.0.2 is not."""


def poetry_lock(path: Path, pins: dict[str, str]) -> Path:
    blocks = [
        f'[[package]]\nname = "{name}"\nversion = "{version}"\ndescription = ""\noptional = false\n'
        f'python-versions = "*"\ngroups = ["main"]\n'
        f'files = [\n    {{file = "{name}-{version}-py3-none-any.whl", hash = "sha256:{"0" * 64}"}},\n]\n'
        for name, version in pins.items()
    ]
    meta = '\n[metadata]\nlock-version = "2.1"\npython-versions = ">=3.9"\ncontent-hash = "x"\n'
    path.write_text("\n".join(blocks) + meta)
    return path


@pytest.fixture(scope="module")
def feed_repo(ossf_sample_bare: Path) -> Path:
    return ossf_sample_bare


@pytest.fixture(scope="module")
def feed_zip(feed_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OSV export zip (one <ID>.json per record, as osv.dev publishes per ecosystem) of real sample records."""
    ls = subprocess.run(
        ["git", "--git-dir", str(feed_repo), "ls-tree", "-r", "--name-only", "HEAD", "osv/malicious/pypi/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    wanted = [p for p in ls if "/123bla/" in p or "/aaiohttp/" in p]
    assert wanted, "the sample should hold 123bla's report"
    path = tmp_path_factory.mktemp("zip") / "PyPI-all.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for p in wanted:
            body = subprocess.run(
                ["git", "--git-dir", str(feed_repo), "show", f"HEAD:{p}"], capture_output=True, check=True
            ).stdout
            zf.writestr(Path(p).name, body)
    return path


@pytest.fixture(scope="module")
def index() -> Iterator[str]:
    fake = FakePyPI()
    fake.start()
    for name in ("123bla", "requests"):
        dist = name.replace("-", "_")
        fake.add_project(name, {v: [f"{dist}-{v}-py3-none-any.whl"] for v in ("0.0.1", "0.0.2", "2.0")}, 1.7e9)
    try:
        yield f"{fake.base_url}/simple/"
    finally:
        fake.stop()


def gate(lock: Path, index: str, feed: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWATCH_KAFKA")}
    env.update(QWATCH_HTTP_MAX_ATTEMPTS="2", QWATCH_HTTP_BACKOFF_BASE="0.01", QWATCH_CACHE_DIR=str(lock.parent / "c"))
    cmd = [*QWATCH, "gate", "--lock", str(lock), "--index-url", index, "--feed", feed, "--soak", "0"]
    proc = subprocess.run([*cmd, "--format", "json", *extra], capture_output=True, text=True, env=env, timeout=120)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


@pytest.mark.parametrize("kind", ["checkout", "zip"])
def test_reported_pin_fails_clean_passes_missing_or_stale_feed_cannot_verify(
    kind: str, feed_repo: Path, feed_zip: Path, index: str, tmp_path: Path
) -> None:
    feed = str(feed_repo if kind == "checkout" else feed_zip)
    # A zip's age is its newest record's ``modified`` (these two are about two weeks older than the sample's head).
    fresh = ("--now", FRESH) if kind == "checkout" else ("--now", FRESH, "--feed-max-age", "30d")
    name, version, report = REPORTED
    bad = poetry_lock(tmp_path / "poetry.lock", {name: version, "requests": "2.0"})
    code, doc, err = gate(bad, index, feed, *fresh)
    assert code == 1, (doc, err)
    (finding,) = doc["findings"]
    assert (finding["package"], finding["version"], finding["reason"]) == (name, version, "malicious")
    assert finding["report_ids"] == [report]
    assert finding["links"] == [f"https://osv.dev/vulnerability/{report}"]
    assert "openssf-feed" in doc["facts"]

    (tmp_path / "clean").mkdir()
    good = poetry_lock(tmp_path / "clean" / "poetry.lock", {name: "0.0.2", "requests": "2.0"})
    code, doc, err = gate(good, index, feed, *fresh)
    assert code == 0, (doc, err)
    assert doc["counts"]["checked"] == 2

    code, doc, err = gate(good, index, str(tmp_path / "no-such-feed"), *fresh)
    assert code == 2 and "feed" in (doc.get("message", "") + err)

    if kind == "checkout":
        code, doc, err = gate(good, index, feed, "--now", LATER)  # the same feed, eight days on: stale
    else:
        code, doc, err = gate(good, index, feed, "--now", LATER, "--feed-max-age", "1d")
    assert code == 2, (doc, err)
    assert "old" in err or "stale" in err or "age" in err, err


def test_a_suppression_with_a_reason_and_expiry_accepts_a_known_false_positive(
    feed_repo: Path, index: str, tmp_path: Path
) -> None:
    name, version, report = REPORTED
    lock = poetry_lock(tmp_path / "poetry.lock", {name: version})
    (tmp_path / "pyproject.toml").write_text(
        "[[tool.qwatch.gate.ignore]]\n"
        f'package = "{name}"\nid = "{report}"\n'
        'reason = "reviewed: our own fork, not the package the report names"\nuntil = 2024-12-31\n'
    )
    code, doc, err = gate(lock, index, str(feed_repo), "--now", FRESH)
    assert code == 0, (doc, err)
    (suppressed,) = doc["suppressed"]
    assert suppressed["report_ids"] == [report] and suppressed["suppression"]["until"].startswith("2024-12-31")
    sarif_code = subprocess.run(
        [*QWATCH, "gate", "--lock", str(lock), "--index-url", index, "--feed", str(feed_repo), "--soak", "0"]
        + ["--now", FRESH, "--format", "sarif", "--output", str(tmp_path / "out.sarif")],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("QWATCH_KAFKA")},
        timeout=120,
    ).returncode
    assert sarif_code == 0
    (result,) = json.loads((tmp_path / "out.sarif").read_text())["runs"][0]["results"]
    assert result["suppressions"][0]["kind"] == "external"
    # Past its date it no longer suppresses, and the report says so.
    code, doc, err = gate(lock, index, str(feed_repo), "--now", "2025-01-02T00:00:00Z", "--feed-max-age", "1000d")
    assert code == 1, (doc, err)
    assert doc["expired_suppressions"][0]["entry"] == f"{name} {report}"
