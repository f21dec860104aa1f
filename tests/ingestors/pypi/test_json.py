"""``pypi-json`` against the local fake PyPI: releases, yanks, the ambiguous 404 and its disambiguation, faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwatch.events import DeadLetter, ProjectStatusObserved, ReleasesObserved
from testing.fakepypi import Fault
from tests.pypi_support import JsonHarness, Served, of_type, serve_fake

T0 = 1767323045.5  # 2026-01-02T03:04:05.5Z


@pytest.fixture
def pypi() -> Iterator[Served]:
    yield from serve_fake()


def _releases(events: list[object]) -> dict[str, ReleasesObserved]:
    return {e.package: e for e in of_type(events, ReleasesObserved)}


def _status(events: list[object]) -> dict[str, ProjectStatusObserved]:
    return {e.package: e for e in of_type(events, ProjectStatusObserved)}


def test_every_state_of_the_signals_matrix(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"], "1.1": ["demo-1.1.tar.gz"]}, upload_time=T0)
    fake.add_file("Demo", "1.0", "demo-1.0-py3-none-any.whl", upload_time=T0 + 3600)
    fake.add_project("Evil", {"0.1": ["evil-0.1.tar.gz"], "0.2": ["evil-0.2.tar.gz"]}, upload_time=T0)
    fake.add_project("Arch", {"1.0": ["arch-1.0.tar.gz"]}, upload_time=T0)
    fake.add_project("Unwatched", {"1.0": ["unwatched-1.0.tar.gz"]})
    h = JsonHarness(base, ["demo", "evil", "arch"])

    # active: releases with the earliest upload per version, nothing yanked
    report, events = h.run()
    assert report.ok and _status(events) == {}
    demo = _releases(events)["demo"]
    assert (demo.http_status, demo.source, demo.ecosystem) == (200, "pypi-json", "PyPI")
    assert demo.last_serial == fake.project("demo").last_serial  # type: ignore[union-attr]
    assert [(r.version, r.first_upload, r.yanked) for r in demo.releases] == [
        ("1.0", int(T0 * 1000), False),
        ("1.1", int(T0 * 1000), False),
    ]
    assert demo.upstream_time == int((T0 + 3600) * 1000), "the newest upload"
    assert set(_releases(events)) == {"demo", "evil", "arch"}
    assert not any("unwatched" in path for _, path, _ in fake.requests)

    # yanked, then release removed, then release quarantined
    fake.yank("Demo", "1.1", "broken build")
    _, events = h.run()
    assert [(r.version, r.yanked, r.yanked_reason) for r in _releases(events)["demo"].releases] == [
        ("1.0", False, None),
        ("1.1", True, "broken build"),
    ]
    assert set(_releases(events)) == {"demo"}
    fake.remove_release("Demo", "1.0")
    _, events = h.run()
    assert [r.version for r in _releases(events)["demo"].releases] == ["1.1"]
    fake.quarantine_release("Evil", "0.2")
    _, events = h.run()
    assert [r.version for r in _releases(events)["evil"].releases] == ["0.1"]

    # every release quarantined: the JSON API 404s, the Simple page says active with no versions
    fake.quarantine_release("Evil", "0.1")
    _, events = h.run()
    assert (_releases(events)["evil"].http_status, _releases(events)["evil"].releases) == (404, ())
    status = _status(events)["evil"]
    assert (status.status, status.versions, status.source, status.http_status) == ("active", (), "pypi-json", 200)

    # quarantined: 404 again (no new ReleasesObserved), the Simple page now says quarantined
    fake.clear_release_quarantine("Evil", "0.1")
    fake.quarantine("Evil")
    _, events = h.run()
    assert _releases(events) == {} or _releases(events)["evil"].http_status == 404
    assert _status(events)["evil"].status == "quarantined"

    # cleared: 200 again
    fake.clear_quarantine("Evil")
    _, events = h.run()
    assert _releases(events)["evil"].http_status == 200 and _status(events) == {}

    # archived / unarchived: the JSON API shows no trace (nothing to emit)
    fake.archive("Arch")
    _, events = h.run()
    assert events == []
    fake.unarchive("Arch")
    _, events = h.run()
    assert events == []

    # removed: 404 and the Simple page 404s too → absent
    fake.remove_project("Evil")
    _, events = h.run()
    assert _releases(events)["evil"].http_status == 404
    assert (_status(events)["evil"].status, _status(events)["evil"].http_status) == ("absent", 404)

    # re-registered
    fake.add_project("Evil", {"5.0": ["evil-5.0.tar.gz"]}, upload_time=T0 + 86400)
    _, events = h.run()
    assert [r.version for r in _releases(events)["evil"].releases] == ["5.0"]

    # nothing changed: 304s and nothing emitted
    fake.reset_requests()
    report, events = h.run()
    assert events == [] and report.ok
    # canonical URLs were remembered: no redirect round trips, every request conditional
    assert {status for _, _, status in fake.requests} == {304}
    assert {path for _, path, _ in fake.requests} == {"/pypi/Demo/json", "/pypi/Evil/json", "/pypi/Arch/json"}


def test_stale_json_is_not_believed(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]}, upload_time=T0)
    h = JsonHarness(base, ["demo"])
    h.run()
    fake.add_release("Demo", "2.0", ["demo-2.0.tar.gz"], upload_time=T0 + 60)
    _, events = h.run()
    assert [r.version for r in _releases(events)["demo"].releases] == ["1.0", "2.0"]
    # A CDN copy from before 2.0, once (re-fetched and found current) and then persistently (left pending).
    fake.inject(Fault(kind="stale", path_prefix="/pypi/Demo/", count=1))  # past the redirect
    report, events = h.run()
    assert (report.stale, events, report.pending) == (1, [], [])
    fake.inject(Fault(kind="stale", path_prefix="/pypi/Demo/", count=20))
    report, events = h.run()
    assert events == [] and report.pending == ["demo"] and report.ok


def test_faults_are_dead_lettered_and_retried_next_pass(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    fake.add_project("Other", {"1.0": ["other-1.0.tar.gz"]})
    fake.add_project("Third", {"1.0": ["third-1.0.tar.gz"]})
    h = JsonHarness(base, ["demo", "other", "third"])
    fake.inject(Fault(kind="500", path_prefix="/pypi/demo/", count=3))
    fake.inject(Fault(kind="truncate", path_prefix="/pypi/other/", count=6))
    fake.inject(Fault(kind="content-type", path_prefix="/pypi/Third/", content_type="text/html"))
    report, events = h.run()
    assert {d.package: d.reason for d in of_type(events, DeadLetter)} == {
        "demo": "http-status",
        "other": "truncated",
        "third": "content-type",
    }
    assert _releases(events) == {} and report.pending == ["demo", "other", "third"]
    fake.clear_faults()
    _, events = h.run()
    assert set(_releases(events)) == {"demo", "other", "third"}


def test_state_dir_continuity_across_cli_runs(pypi: Served, tmp_path: Path) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    watch = tmp_path / "watch"
    watch.write_text("demo\n")
    cmd = [
        sys.executable,
        "-m",
        "app",
        "ingest",
        "pypi-json",
        "--index-url",
        base + "/simple/",
        "--watch",
        str(watch),
        "--state-dir",
        str(tmp_path / "state"),
        "--once",
        "--sink",
        "jsonl:-",
    ]

    def run() -> list[dict[str, object]]:
        done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=60, check=True)
        return [json.loads(line) for line in done.stdout.splitlines()]

    assert [(x["type"], x["http_status"]) for x in run()] == [("ReleasesObserved", 200)]
    assert run() == []
    fake.quarantine("Demo")
    got = sorted((x["type"], x.get("status"), x["http_status"]) for x in run())
    assert got == [("ProjectStatusObserved", "quarantined", 200), ("ReleasesObserved", None, 404)]
