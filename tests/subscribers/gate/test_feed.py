"""subscribers.gate.feed: the OpenSSF feed read directly by the gate, on real git (work trees, bare clones,
file:// URLs) and real zips built from the sample bundle's OSV records. Nothing about git is mocked.

Expectations for the sample bundle come from ``shared/fixtures/ossf-sample/MANIFEST.md`` and ``expected/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from qwatch.ids import parse_rfc3339_ms
from qwatch.osv_ranges import IN_RANGE, LISTED, MALFORMED, NOT_AFFECTED, UNPARSEABLE_EVENT, UNSUPPORTED_RANGE
from subscribers.gate.feed import FEEDS_DIR, Feed, FeedError, FeedReport, FeedStale, load_feed

SAMPLE_FIRST = "757d548dda90cb931d4e944c9e022aad40789c3e"
SAMPLE_HEAD = "629cb43c1061fe520ecffcadc7da4e3417cfa245"
SAMPLE_FIRST_TIME = parse_rfc3339_ms("2024-10-11T16:20:21Z")
SAMPLE_HEAD_TIME = parse_rfc3339_ms("2024-11-12T04:25:43Z")
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
T0 = parse_rfc3339_ms("2026-01-10T12:00:00Z")
"""Commit time of the synthetic repositories."""


# -- helpers -----------------------------------------------------------------------------------------------------


def _git(cwd: Path, *args: str, when_ms: int = T0) -> str:
    stamp = f"@{when_ms // 1000} +0000"
    env = {**os.environ, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    config = ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", *config, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _osv(
    report_id: str,
    name: str,
    versions: list[str] | None = None,
    ranges: list[dict[str, Any]] | None = None,
    ecosystem: str = "PyPI",
    modified: str = "2026-01-09T10:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if versions is not None:
        affected["versions"] = versions
    if ranges is not None:
        affected["ranges"] = ranges
    return {
        "modified": modified,
        "published": "2026-01-09T10:00:00Z",
        "schema_version": "1.7.4",
        "id": report_id,
        "summary": f"Malicious code in {name} ({ecosystem})",
        "affected": [affected],
        **extra,
    }


def _eco(*events: tuple[str, str], kind: str = "ECOSYSTEM") -> list[dict[str, Any]]:
    return [{"type": kind, "events": [{k: v} for k, v in events]}]


def _write(root: Path, files: dict[str, Any]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content, indent=2).encode())


def _repo(root: Path, files: dict[str, Any], when_ms: int = T0) -> Path:
    root.mkdir(parents=True)
    _git(root, "init", "-q", "-b", "main")
    _write(root, files)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "reports", when_ms=when_ms)
    return root


def _ids(feed: Feed) -> set[str]:
    return {r.report_id for name in feed.packages() for r in feed.reports_for(name)}


def _one(feed: Feed, name: str) -> FeedReport:
    reports = feed.reports_for(name)
    assert len(reports) == 1, reports
    return reports[0]


# -- the sample bundle (fixture A) -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_bare(ossf_sample_bare: Path) -> Path:
    return ossf_sample_bare


@pytest.fixture(scope="module")
def sample_feed(sample_bare: Path, tmp_path_factory: pytest.TempPathFactory) -> Feed:
    return load_feed(str(sample_bare), tmp_path_factory.mktemp("cache"), SAMPLE_HEAD_TIME + HOUR, DAY)


@pytest.fixture(scope="module")
def expected(shared_fixtures: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (shared_fixtures / "ossf-sample" / "expected" / "ossf-pypi-sample.expected.json").read_text()
    )
    assert data["last"] == SAMPLE_HEAD
    return data


def test_sample_bare_repo_at_head_holds_what_the_manifest_says(
    sample_feed: Feed, sample_bare: Path, expected: Any
) -> None:
    feed = sample_feed
    assert feed.commit == SAMPLE_HEAD
    assert feed.label == f"{sample_bare}@{SAMPLE_HEAD}"
    assert feed.age_ms == HOUR  # now - committer time of HEAD
    # MANIFEST: HEAD holds 8,167 files, 8,166 under osv/malicious/pypi and 1 under osv/withdrawn/pypi; no pending
    assert feed.count == 8166
    assert feed.skipped == {"withdrawn": 1}
    ids = _ids(feed)
    assert len(ids) == 8166
    assert set(expected["ids"]["new"]) <= ids and len(expected["ids"]["new"]) == 81
    assert set(expected["ids"]["modified"]) == {"MAL-2024-4732"} <= ids
    assert "MAL-2023-8651" not in ids and feed.reports_for("lodestone") == ()  # the one withdrawn report


def test_a_pinned_affected_version_is_found_with_id_summary_and_link(sample_feed: Feed) -> None:
    report = _one(sample_feed, "123bla")  # the fork's id for 123bla (MANIFEST: upstream MAL-2024-10238)
    assert report.report_id == "MAL-2024-9469"
    assert report.summary == "Malicious code in 123bla (PyPI)"
    assert report.link == "https://osv.dev/vulnerability/MAL-2024-9469"
    assert report.path == "osv/malicious/pypi/123bla/MAL-2024-9469.json"
    assert report.affects("0.0.1") and report.verdict("0.0.1").reason == LISTED
    assert report.affects("0.0.1.0")  # PEP 440: the same release
    assert not report.affects("0.0.2")
    assert report.affects(None)  # unpinned counts as affected


def test_sample_names_ranges_and_odd_versions(sample_feed: Feed) -> None:
    # the record keeps "Nasrtox" in directory nasrtox: any spelling finds it
    assert _one(sample_feed, "Nasrtox") == _one(sample_feed, "NASRTOX") == _one(sample_feed, "nasrtox")
    # ranges-only "all versions" (6,370 such records): introduced "0"
    aaiohttp = _one(sample_feed, "aaiohttp")
    assert aaiohttp.report_id == "MAL-2023-1574"
    assert aaiohttp.verdict("0.0.1").reason == IN_RANGE and aaiohttp.affects("99.0")
    # a real listed version that is not PEP 440 ("v_05") matches itself only
    news = _one(sample_feed, "news-ascii-artss")
    assert news.verdict("v_05").reason == LISTED and news.affects("0.1") and not news.affects("0.2")
    assert news.affects("v_06")  # not PEP 440 and not listed: fails closed
    # MAL-2024-4732: at HEAD the bogus "0.0.9 " was removed (the one modified report)
    admcheck = _one(sample_feed, "admcheck")
    assert admcheck.report_id == "MAL-2024-4732"
    assert admcheck.affects("1.0.0") and not admcheck.affects("0.0.9")


def test_sample_work_tree_at_its_first_commit(shared_fixtures: Path, tmp_path: Path) -> None:
    """A work tree is read at HEAD (here detached at the base commit) from the object database, never from its
    files: so the 8k files are not even checked out (writing and deleting them costs seconds), and a file added
    to the work tree but not committed is not part of the feed."""
    work = tmp_path / "work"
    bundle = shared_fixtures / "ossf-sample" / "ossf-pypi-sample.bundle"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(bundle), str(work)], check=True)
    _git(work, "update-ref", "--no-deref", "HEAD", SAMPLE_FIRST)
    assert (work / ".git").is_dir() and _git(work, "rev-parse", "--is-bare-repository") == "false"
    feed = load_feed(str(work), tmp_path / "cache", SAMPLE_FIRST_TIME + MINUTE, DAY)
    assert (feed.commit, feed.age_ms, feed.count, feed.skipped) == (SAMPLE_FIRST, MINUTE, 8085, {"withdrawn": 1})
    assert "MAL-2024-9469" not in _ids(feed)  # new after the base commit
    admcheck = _one(feed, "admcheck")
    assert admcheck.verdict("0.0.9") == admcheck.verdict("0.0.9.0")
    assert admcheck.verdict("0.0.9").reason == LISTED  # listed as "0.0.9 " (trailing space) at the base
    # uncommitted files in a work tree are not the feed
    _write(work, {"osv/malicious/pypi/zzz-new/MAL-2099-1.json": _osv("MAL-2099-1", "zzz-new", ["1.0"])})
    again = load_feed(str(work), tmp_path / "cache", SAMPLE_FIRST_TIME + MINUTE, DAY)
    assert again.reports_for("zzz-new") == () and again.count == 8085


# -- small real repositories -------------------------------------------------------------------------------------


def _synthetic_files() -> dict[str, Any]:
    return {
        # range only, no versions
        "osv/malicious/pypi/ranged/MAL-2026-1.json": _osv(
            "MAL-2026-1", "ranged", ranges=_eco(("introduced", "1.2"), ("fixed", "1.5"))
        ),
        # withdrawn: by location (upstream's way), and by field only
        "osv/withdrawn/pypi/gone/MAL-2026-2.json": _osv(
            "MAL-2026-2", "gone", ["1.0"], withdrawn="2026-01-09T11:00:00Z"
        ),
        "osv/malicious/pypi/gone-too/MAL-2026-3.json": _osv(
            "MAL-2026-3", "gone-too", ["1.0"], withdrawn="2026-01-09T11:00:00Z"
        ),
        # an unparseable range bound, and a SEMVER range on PyPI
        "osv/malicious/pypi/broken-range/MAL-2026-4.json": _osv(
            "MAL-2026-4", "broken-range", ranges=_eco(("introduced", "1.0"), ("fixed", "1.x-final!"))
        ),
        "osv/malicious/pypi/semver/MAL-2026-5.json": _osv(
            "MAL-2026-5", "semver", ranges=_eco(("introduced", "1.0"), ("fixed", "2.0"), kind="SEMVER")
        ),
        # pending: not a report yet (the ingestor agrees)
        "osv/malicious/pypi/pending/MAL-0000-kam193-0123456789abcdef.json": {**_osv("", "pending", ["1.0"])},
        # malformed JSON in a PyPI folder: every version of that folder's package fails closed
        "osv/malicious/pypi/mangled_Pkg/MAL-2026-6.json": b'{"id": "MAL-2026-6", "affected": [,]}',
        # malformed JSON elsewhere, a non-PyPI record, and files that are not the feed
        "osv/malicious/npm/mangled/MAL-2026-7.json": b"{PyPI",
        "osv/malicious/npm/left-pad/MAL-2026-8.json": _osv("MAL-2026-8", "left-pad", ["1.0"], ecosystem="npm"),
        "osv/unmergable/pypi/ranged/MAL-0000-x.json": _osv("MAL-2026-9", "ranged", ["0.1"]),
        "Downloads/osv/malicious/pypi/ranged/MAL-2026-10.json": _osv("MAL-2026-10", "ranged", ["0.1"]),
        "osv/malicious/.id-allocator": b"abc",
        # the ecosystem comes from the record, not the folder; the name is PEP 503-normalised
        "osv/malicious/odd-place/Some_Pkg/MAL-2026-11.json": _osv("MAL-2026-11", "Some_Pkg", ["2.0"]),
        # one id at two paths: the first in git's path order speaks (osv/malicious before osv/withdrawn)
        "osv/malicious/pypi/twice/MAL-2026-12.json": _osv("MAL-2026-12", "twice", ["3.0"]),
        "osv/withdrawn/pypi/twice/MAL-2026-12.json": _osv(
            "MAL-2026-12", "twice", ["3.0"], withdrawn="2026-01-09T11:00:00Z"
        ),
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _repo(tmp_path_factory.mktemp("synthetic") / "repo", _synthetic_files())


def test_range_only_report_affects_inside_the_range_only(synthetic: Path, tmp_path: Path) -> None:
    feed = load_feed(str(synthetic), tmp_path, T0 + MINUTE, DAY)
    ranged = _one(feed, "ranged")
    assert ranged.report_id == "MAL-2026-1" and ranged.affected[0].versions == ()
    assert ranged.affects("1.3") and ranged.verdict("1.3").reason == IN_RANGE
    assert ranged.affects("1.2") and ranged.affects("1.4.99")
    assert not ranged.affects("1.5") and ranged.verdict("1.5").reason == NOT_AFFECTED
    assert not ranged.affects("1.1") and not ranged.affects("0.1")  # 0.1 only in unmergable / stray copies


def test_withdrawn_pending_and_foreign_records_never_count(synthetic: Path, tmp_path: Path) -> None:
    feed = load_feed(str(synthetic), tmp_path, T0 + MINUTE, DAY)
    for name in ("gone", "gone-too", "pending", "left-pad", "mangled"):
        assert feed.reports_for(name) == (), name
    assert feed.skipped == {"withdrawn": 2, "pending": 1, "other-ecosystem": 1, "unreadable": 1}
    twice = _one(feed, "twice")
    assert twice.path == "osv/malicious/pypi/twice/MAL-2026-12.json" and twice.affects("3.0")
    assert _one(feed, "some-pkg").report_id == "MAL-2026-11"
    assert _ids(feed) == {"MAL-2026-1", "MAL-2026-4", "MAL-2026-5", "MAL-2026-6", "MAL-2026-11", "MAL-2026-12"}
    assert feed.count == 6


def test_unparseable_range_version_and_unreadable_files_fail_closed(synthetic: Path, tmp_path: Path) -> None:
    feed = load_feed(str(synthetic), tmp_path, T0 + MINUTE, DAY)
    broken = _one(feed, "broken-range")
    for version in ("0.1", "1.0", "9.0"):
        verdict = broken.verdict(version)
        assert verdict.affected and verdict.fail_closed and verdict.reason == UNPARSEABLE_EVENT
    semver = _one(feed, "semver")
    assert semver.affects("3.0") and semver.verdict("3.0").reason == UNSUPPORTED_RANGE
    mangled = _one(feed, "mangled-pkg")  # folder mangled_Pkg, PEP 503
    assert not mangled.known and mangled.report_id == "MAL-2026-6"
    assert mangled.affects("0.0.1") and mangled.verdict("0.0.1").reason == MALFORMED
    assert "unreadable" in mangled.summary


def test_a_stale_feed_raises_feed_stale_with_its_age(synthetic: Path, tmp_path: Path) -> None:
    with pytest.raises(FeedStale) as caught:
        load_feed(str(synthetic), tmp_path, T0 + 2 * DAY, DAY)
    assert caught.value.age_ms == 2 * DAY
    assert isinstance(caught.value, FeedError)
    assert "2d old, over the 1d limit" in caught.value.message and f"git -C {synthetic} pull" in caught.value.message
    load_feed(str(synthetic), tmp_path, T0 + DAY, DAY)  # exactly at the limit is still fresh


def test_missing_or_wrong_feeds_raise_feed_error(tmp_path: Path) -> None:
    cases: dict[str, str] = {}
    cases[str(tmp_path / "nowhere")] = "does not exist"
    (tmp_path / "plain").mkdir()
    cases[str(tmp_path / "plain")] = "not a git repository"
    (tmp_path / "notes.txt").write_text("hello")
    cases[str(tmp_path / "notes.txt")] = "neither a directory"
    no_osv = _repo(tmp_path / "no-osv", {"README.md": b"not the feed"})
    cases[str(no_osv)] = "no .json files under osv/malicious/ or osv/withdrawn/"
    npm_only = _repo(tmp_path / "npm-only", {"osv/malicious/npm/x/MAL-1.json": _osv("MAL-1", "x", ecosystem="npm")})
    cases[str(npm_only)] = "no PyPI reports"
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q", "-b", "main")
    cases[str(empty)] = "no commit at HEAD"
    cases["-rf"] = "not a path or URL"
    for source, words in cases.items():
        with pytest.raises(FeedError) as caught:
            load_feed(source, tmp_path / "cache", T0, DAY)
        assert not isinstance(caught.value, FeedStale)
        assert words in caught.value.message, (source, caught.value.message)


# -- git URLs ----------------------------------------------------------------------------------------------------


def test_file_url_is_mirrored_bare_then_fetched(tmp_path: Path) -> None:
    origin = _repo(tmp_path / "origin", {"osv/malicious/pypi/a/MAL-2026-1.json": _osv("MAL-2026-1", "a", ["1.0"])})
    url = origin.resolve().as_uri()
    cache = tmp_path / "cache"
    first = load_feed(url, cache, T0 + MINUTE, DAY)
    head1 = _git(origin, "rev-parse", "HEAD")
    assert first.label == f"{url}@{head1}" and first.count == 1
    mirrors = list((cache / FEEDS_DIR).iterdir())
    assert len(mirrors) == 1 and (mirrors[0] / "HEAD").is_file() and not (mirrors[0] / "osv").exists()  # bare
    # upstream moves on: the next load fetches into the same mirror
    _write(origin, {"osv/malicious/pypi/b/MAL-2026-2.json": _osv("MAL-2026-2", "b", ["2.0"])})
    _git(origin, "add", "-A")
    _git(origin, "commit", "-q", "-m", "more", when_ms=T0 + HOUR)
    second = load_feed(url, cache, T0 + HOUR + MINUTE, DAY)
    head2 = _git(origin, "rev-parse", "HEAD")
    assert second.commit == head2 != head1 and second.age_ms == MINUTE
    assert _one(second, "b").affects("2.0") and second.count == 2
    assert list((cache / FEEDS_DIR).iterdir()) == mirrors


def test_file_url_of_the_sample_bundle_clone(sample_bare: Path, tmp_path: Path) -> None:
    feed = load_feed(sample_bare.as_uri(), tmp_path, SAMPLE_HEAD_TIME, DAY)
    assert (feed.commit, feed.count) == (SAMPLE_HEAD, 8166)
    assert _one(feed, "123bla").affects("0.0.1")


def test_urls_that_cannot_be_cloned_raise_feed_error_quickly_and_leave_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env_before = {k: os.environ.get(k) for k in ("GIT_TERMINAL_PROMPT", "GIT_SSH_COMMAND")}
    started = time.monotonic()
    with pytest.raises(FeedError) as caught:
        load_feed((tmp_path / "missing.git").as_uri(), cache, T0, DAY)
    assert "cannot reach" in caught.value.message
    with pytest.raises(FeedError) as caught:
        load_feed("https://someone:s3cret-token@127.0.0.1:9/malicious-packages.git", cache, T0, DAY)
    assert "s3cret" not in caught.value.message and "***@127.0.0.1:9" in caught.value.message
    assert time.monotonic() - started < 10
    assert not (cache / FEEDS_DIR).exists() or not any((cache / FEEDS_DIR).iterdir())
    with pytest.raises(FeedError, match="download it first"):
        load_feed("https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip", cache, T0, DAY)
    # a reachable repository, but a cache directory that cannot hold the mirror
    origin = _repo(tmp_path / "origin", {"osv/malicious/pypi/a/MAL-2026-1.json": _osv("MAL-2026-1", "a", ["1.0"])})
    (tmp_path / "cache-file").write_text("not a directory")
    with pytest.raises(FeedError, match="cannot read feed"):
        load_feed(origin.as_uri(), tmp_path / "cache-file", T0, DAY)
    assert {k: os.environ.get(k) for k in env_before} == env_before  # git's no-prompt settings are undone


# -- OSV export zips ---------------------------------------------------------------------------------------------


def _blob(git_dir: Path, path: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{SAMPLE_HEAD}:{path}"], check=True, capture_output=True
    ).stdout


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def real_records(sample_bare: Path, shared_fixtures: Path) -> dict[str, bytes]:
    """``<ID>.json`` members as osv.dev exports them, from real upstream files (and one npm edge case)."""
    members = {
        "MAL-2024-9469.json": _blob(sample_bare, "osv/malicious/pypi/123bla/MAL-2024-9469.json"),
        "MAL-2023-1574.json": _blob(sample_bare, "osv/malicious/pypi/aaiohttp/MAL-2023-1574.json"),
        "MAL-2024-5408.json": _blob(sample_bare, "osv/malicious/pypi/news-ascii-artss/MAL-2024-5408.json"),
        "MAL-2023-8651.json": _blob(sample_bare, "osv/withdrawn/pypi/lodestone/MAL-2023-8651.json"),
    }
    edge = shared_fixtures / "ossf-sample" / "edge-cases" / "osv" / "malicious"
    members["MAL-2024-11183.json"] = (edge / "npm/@solana/web3.js/MAL-2024-11183.json").read_bytes()
    return members


def test_zip_of_real_records(real_records: dict[str, bytes], tmp_path: Path) -> None:
    ghsa = _osv(
        "GHSA-aaaa-bbbb-cccc",
        "Ranged_Thing",
        ranges=_eco(("introduced", "1.2"), ("fixed", "1.5")),
        modified="2024-11-20T00:00:00Z",
        aliases=["MAL-2024-99999"],
    )
    # An ordinary vulnerability: osv.dev's export carries them too; a gate about malicious packages skips them.
    pysec = _osv("PYSEC-2024-1", "Old_Cve", ranges=_eco(("introduced", "0")), modified="2024-11-19T00:00:00Z")
    members = {
        **real_records,
        "GHSA-aaaa-bbbb-cccc.json": json.dumps(ghsa).encode(),
        "PYSEC-2024-1.json": json.dumps(pysec).encode(),
    }
    path = _zip(tmp_path / "PyPI-all.zip", members)
    now = parse_rfc3339_ms("2024-11-20T06:00:00Z")
    feed = load_feed(str(path), tmp_path / "cache", now, DAY)
    assert feed.label == str(path) and feed.commit is None
    assert feed.age_ms == 6 * HOUR  # newest "modified" among the records is the GHSA one
    assert feed.count == 4 and feed.skipped == {"withdrawn": 1, "other-ecosystem": 1, "not-malicious": 1}
    assert feed.reports_for("old-cve") == ()
    bla = _one(feed, "123bla")
    assert (bla.report_id, bla.summary, bla.link, bla.path) == (
        "MAL-2024-9469",
        "Malicious code in 123bla (PyPI)",
        "https://osv.dev/vulnerability/MAL-2024-9469",
        "MAL-2024-9469.json",
    )
    assert bla.affects("0.0.1") and not bla.affects("0.0.2")
    ranged = _one(feed, "ranged-thing")
    assert ranged.link == "https://osv.dev/vulnerability/GHSA-aaaa-bbbb-cccc"
    assert ranged.affects("1.3") and not ranged.affects("1.5")
    assert _one(feed, "aaiohttp").affects("5.0")
    assert feed.reports_for("lodestone") == ()  # withdrawn
    assert feed.reports_for("@solana/web3.js") == ()  # npm


def test_zip_age_falls_back_to_the_file_mtime_and_can_be_stale(tmp_path: Path) -> None:
    record = _osv("MAL-2026-1", "nomod", ["1.0"])
    del record["modified"]
    path = _zip(tmp_path / "PyPI.zip", {"MAL-2026-1.json": json.dumps(record).encode()})
    os.utime(path, ns=(T0 * 1_000_000, T0 * 1_000_000))
    assert load_feed(str(path), tmp_path, T0 + HOUR, DAY).age_ms == HOUR
    with pytest.raises(FeedStale) as caught:
        load_feed(str(path), tmp_path, T0 + 3 * DAY, DAY)
    assert caught.value.age_ms == 3 * DAY


def test_damaged_or_wrong_zips_raise_feed_error(real_records: dict[str, bytes], tmp_path: Path) -> None:
    good = _zip(tmp_path / "good.zip", real_records).read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good[: len(good) // 2])
    corrupt = tmp_path / "corrupt.zip"  # a flipped byte inside the first member's compressed data: CRC fails
    damaged = bytearray(good)
    damaged[60] ^= 0xFF
    corrupt.write_bytes(bytes(damaged))
    not_json = _zip(tmp_path / "not-json.zip", {**real_records, "MAL-2026-1.json": b"PyPI, but not JSON"})
    npm_only = _zip(tmp_path / "npm.zip", {"MAL-2024-11183.json": real_records["MAL-2024-11183.json"]})
    empty = _zip(tmp_path / "empty.zip", {"README.txt": b"nothing"})
    for path in (truncated, corrupt, not_json, npm_only, empty):
        with pytest.raises(FeedError) as caught:
            load_feed(str(path), tmp_path / "cache", T0, 10_000 * DAY)
        assert not isinstance(caught.value, FeedStale), path
        assert str(path) in caught.value.message or path.name in caught.value.message or "zip" in caught.value.message
