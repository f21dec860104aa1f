"""``pypi-simple`` against the local fake PyPI: every state of the signals matrix, faults, 304s, state-dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestors.pypi.cli_simple import serve
from ingestors.pypi.config import SimpleIngestConfig
from ingestors.pypi.state import state_path
from qwatch.events import DeadLetter, IndexMembershipObserved, ProjectStatusObserved
from qwatch.runtime import StopFlag
from testing.fakepypi import Fault
from tests.pypi_support import Served, SimpleHarness, of_type, sample, serve_fake


@pytest.fixture
def pypi() -> Iterator[Served]:
    yield from serve_fake()


def _status(events: list[object]) -> dict[str, ProjectStatusObserved]:
    return {e.package: e for e in of_type(events, ProjectStatusObserved)}


def _members(events: list[object]) -> dict[str, bool]:
    return {e.package: e.present for e in of_type(events, IndexMembershipObserved)}


def test_every_state_of_the_signals_matrix(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"], "1.1": ["demo-1.1.tar.gz", "demo-1.1-py3-none-any.whl"]})
    fake.add_project("Evil_Pkg", {"0.1": ["evil_pkg-0.1.tar.gz"], "0.2": ["evil_pkg-0.2.tar.gz"]})
    fake.add_project("Arch", {"1.0": ["arch-1.0.tar.gz"]})
    fake.add_project("Bystander", {"3.0": ["bystander-3.0.tar.gz"]})  # not watched
    h = SimpleHarness(base, ["demo", "evil-pkg", "arch"])

    # active (first run = baseline): statuses of watched projects, no membership events
    report, events = h.run()
    assert report.root == "baseline" and report.ok
    assert _members(events) == {}
    st = _status(events)
    assert set(st) == {"demo", "evil-pkg", "arch"}
    assert st["demo"].status == "active" and st["demo"].versions == ("1.0", "1.1")
    assert st["demo"].last_serial == fake.project("demo").last_serial  # type: ignore[union-attr]
    assert st["demo"].http_status == 200 and st["demo"].source == "pypi-simple" and st["demo"].ecosystem == "PyPI"
    first_arch_id = st["arch"].event_id

    # quarantined: drops out of the root, the page says quarantined with no versions
    fake.quarantine("Demo")
    _, events = h.run()
    assert _members(events) == {"demo": False}
    quarantined = _status(events)["demo"]
    assert (quarantined.status, quarantined.versions, quarantined.last_serial) == (
        "quarantined",
        (),
        fake.project("demo").last_serial,  # type: ignore[union-attr]
    )
    assert set(_status(events)) == {"demo"}

    # cleared: back in the root with a higher serial, active again
    fake.clear_quarantine("Demo")
    _, events = h.run()
    assert _members(events) == {"demo": True}
    cleared = _status(events)["demo"]
    assert cleared.status == "active" and cleared.versions == ("1.0", "1.1")
    assert cleared.last_serial is not None and quarantined.last_serial is not None
    assert cleared.last_serial > quarantined.last_serial

    # archived / unarchived: no serial change, no membership change; only the page shows it
    serial = fake.project("arch").last_serial  # type: ignore[union-attr]
    fake.archive("Arch")
    _, events = h.run()
    assert _members(events) == {}
    archived = _status(events)["arch"]
    assert (archived.status, archived.last_serial, archived.versions) == ("archived", serial, ("1.0",))
    fake.unarchive("Arch")
    _, events = h.run()
    unarchived = _status(events)["arch"]
    assert (unarchived.status, unarchived.last_serial) == ("active", serial)
    assert unarchived.event_id != first_arch_id, "a revisited state needs a fresh id or the processor drops it"

    # yanked, release removed, release quarantined
    fake.yank("Demo", "1.1", "broken")
    _, events = h.run()
    assert _status(events)["demo"].yanked_versions == ("1.1",)
    fake.remove_release("Demo", "1.0")
    _, events = h.run()
    assert _status(events)["demo"].versions == ("1.1",)
    fake.quarantine_release("Evil_Pkg", "0.2")
    _, events = h.run()
    evil = _status(events)["evil-pkg"]
    assert (evil.status, evil.versions) == ("active", ("0.1",))

    # removed: out of the root, the page 404s → absent
    fake.remove_project("Evil_Pkg")
    _, events = h.run()
    assert _members(events) == {"evil-pkg": False}
    gone = _status(events)["evil-pkg"]
    assert (gone.status, gone.http_status, gone.last_serial, gone.versions) == ("absent", 404, None, ())

    # re-registered under another spelling: back in the root, active, a new serial
    fake.add_project("evil.pkg", {"9.0": ["evil_pkg-9.0.tar.gz"]})
    _, events = h.run()
    assert _members(events) == {"evil-pkg": True}
    back = _status(events)["evil-pkg"]
    assert (back.status, back.versions) == ("active", ("9.0",))

    # an unwatched project that disappears is still looked at (the page tells quarantine from removal)
    fake.quarantine("Bystander")
    _, events = h.run()
    assert _members(events) == {"bystander": False}
    assert _status(events)["bystander"].status == "quarantined"

    # nothing changed: every request is conditional and answered 304, zero observations
    fake.reset_requests()
    report, events = h.run()
    assert events == [] and report.ok
    assert fake.requests and all(status == 304 for _, _, status in fake.requests), fake.requests
    assert {path for _, path, _ in fake.requests} == {"/simple/", "/simple/demo/", "/simple/evil-pkg/", "/simple/arch/"}


def test_stale_page_is_refetched_not_believed(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    h = SimpleHarness(base, ["demo"])
    h.run()
    fake.quarantine("Demo")
    fake.inject(Fault(kind="stale", path_prefix="/simple/demo/", count=1))
    report, events = h.run()
    assert report.stale == 1 and report.ok
    assert [e.status for e in of_type(events, ProjectStatusObserved)] == ["quarantined"]
    assert sample(h.metrics, "qwatch_ingest_retries_total", source="pypi-simple", reason="stale") >= 1

    # a CDN that keeps serving the old page: nothing is believed, the project stays pending
    fake.clear_quarantine("Demo")
    fake.inject(Fault(kind="stale", path_prefix="/simple/demo/", count=10))
    report, events = h.run()
    assert of_type(events, ProjectStatusObserved) == [] and report.pending == ["demo"]
    assert report.ok, "a stale page is not a failure of the pass"
    fake.clear_faults()
    _, events = h.run()
    assert [e.status for e in of_type(events, ProjectStatusObserved)] == ["active"]


def test_stale_root_is_ignored(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    h = SimpleHarness(base, [])
    h.run()
    fake.add_project("Newcomer", {"1.0": ["newcomer-1.0.tar.gz"]})
    _, events = h.run()
    assert _members(events) == {"newcomer": True}
    fake.quarantine("Newcomer")
    _, events = h.run()
    assert _members(events) == {"newcomer": False}
    # A CDN copy from before the quarantine: believing it would "re-add" the project.
    fake.inject(Fault(kind="stale", path_prefix="/simple/", count=1))  # the root is requested first
    report, events = h.run()
    assert report.root == "stale" and report.ok and events == []
    report, events = h.run()
    assert report.root == "unchanged" and events == []


def test_faults_are_retried_or_dead_lettered(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    fake.add_project("Other", {"1.0": ["other-1.0.tar.gz"]})
    h = SimpleHarness(base, ["demo", "other"])

    # 429 with Retry-After and a slow response (read timeout): retried, the pass succeeds
    fake.inject(Fault(kind="429", path_prefix="/simple/demo/", retry_after=0.25))
    fake.inject(Fault(kind="slow", path_prefix="/simple/other/", delay=1.5))
    report, events = h.run()
    assert report.ok and set(_status(events)) == {"demo", "other"}
    assert any(0.2 < s <= 0.25 for s in h.sleeps.calls), "Retry-After must be honoured"
    assert sample(h.metrics, "qwatch_ingest_retries_total", source="pypi-simple", reason="429") == 1
    assert sample(h.metrics, "qwatch_ingest_retries_total", source="pypi-simple", reason="timeout") == 1
    assert sample(h.metrics, "qwatch_http_responses_total", source="pypi-simple", code="429") == 1

    # 5xx on every attempt, truncated and wrong content type: dead-lettered, the loop carries on
    fake.archive("Demo")
    fake.archive("Other")
    fake.inject(Fault(kind="503", path_prefix="/simple/demo/", count=3))
    fake.inject(Fault(kind="content-type", path_prefix="/simple/other/", content_type="text/plain"))
    report, events = h.run()
    letters = {d.package: d.reason for d in of_type(events, DeadLetter)}
    assert letters == {"demo": "http-status", "other": "content-type"}
    assert of_type(events, ProjectStatusObserved) == []
    assert report.pending == ["demo", "other"] and report.ok
    assert sample(h.metrics, "qwatch_deadletters_total", source="pypi-simple", reason="http-status") == 1

    # the next pass looks again and now believes the pages
    _, events = h.run()
    assert {e.package: e.status for e in of_type(events, ProjectStatusObserved)} == {
        "demo": "archived",
        "other": "archived",
    }

    fake.inject(Fault(kind="truncate", path_prefix="/simple/demo/", count=3))
    fake.unarchive("Demo")
    _, events = h.run()
    assert [(d.package, d.reason) for d in of_type(events, DeadLetter)] == [("demo", "truncated")]


def test_root_failure_keeps_the_snapshot(pypi: Served, tmp_path: Path) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    state = tmp_path / "state.gz"
    h = SimpleHarness(base, [], state_file=state)
    h.run()
    before = state.read_bytes()
    fake.quarantine("Demo")
    fake.inject(Fault(kind="truncate", path_prefix="/simple/", count=3))
    report, events = h.run()
    assert report.root == "failed" and not report.ok
    assert [d.reason for d in of_type(events, DeadLetter)] == ["truncated"]
    assert _members(events) == {}
    assert state.read_bytes() == before, "the snapshot on disk must not move past an unreadable root"
    assert SimpleHarness(base, [], state_file=state).ingestor.root == h.ingestor.root
    _, events = h.run()
    assert _members(events) == {"demo": False}, "the change is caught from the kept snapshot"


def test_oversized_page_is_dead_lettered(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Big", {f"1.{i}": [f"big-1.{i}.tar.gz"] for i in range(40)})
    h = SimpleHarness(base, ["big"], max_bytes=2048)
    report, events = h.run()
    assert report.root == "baseline"
    assert [(d.package, d.reason) for d in of_type(events, DeadLetter)] == [("big", "oversized")]


def _cli(base: str, state: Path, watch: Path) -> tuple[int, list[dict[str, object]]]:
    env = {**os.environ, "QWATCH_HTTP_BACKOFF_BASE": "0.01"}
    cmd = [
        sys.executable,
        "-m",
        "app",
        "ingest",
        "pypi-simple",
        "--index-url",
        base + "/simple/",
        "--watch",
        str(watch),
        "--state-dir",
        str(state),
        "--once",
        "--sink",
        "jsonl:-",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_state_dir_continuity_across_cli_runs(pypi: Served, tmp_path: Path) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    fake.add_project("Arch", {"1.0": ["arch-1.0.tar.gz"]})
    watch = tmp_path / "watch.txt"
    watch.write_text("# watched\nDemo\narch  # trailing comment\n")
    state = tmp_path / "state"

    code, lines = _cli(base, state, watch)
    assert code == 0
    assert sorted((x["type"], x["package"], x["status"]) for x in lines) == [
        ("ProjectStatusObserved", "arch", "active"),
        ("ProjectStatusObserved", "demo", "active"),
    ]
    assert state_path(state, "pypi-simple", base + "/simple/").exists()

    fake.quarantine("Demo")
    fake.archive("Arch")
    code, lines = _cli(base, state, watch)
    assert code == 0
    got = sorted((x["type"], x["package"], x.get("status"), x.get("present")) for x in lines)
    assert got == [
        ("IndexMembershipObserved", "demo", None, False),
        ("ProjectStatusObserved", "arch", "archived", None),
        ("ProjectStatusObserved", "demo", "quarantined", None),
    ]
    for line in lines:
        assert {"type", "event_id", "source", "ecosystem", "package"} <= set(line)
        assert line["source"] == "pypi-simple" and line["ecosystem"] == "PyPI"

    fake.reset_requests()
    code, lines = _cli(base, state, watch)
    assert (code, lines) == (0, [])
    assert {s for _, _, s in fake.requests} == {304}


def test_service_loop_fetches_urgent_requests_before_the_next_sweep(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    fake.add_project("Asked_For", {"2.0": ["asked_for-2.0.tar.gz"]})
    h = SimpleHarness(base, ["demo"])
    cfg = SimpleIngestConfig(index_url=base + "/simple/", interval=3600, recheck=3600)
    stop = StopFlag()
    loop = threading.Thread(target=serve, args=(h.ingestor, cfg, h.watch, None, stop), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not of_type(h.sink.events, ProjectStatusObserved) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.package for e in of_type(h.sink.events, ProjectStatusObserved)] == ["demo"]
        fake.reset_requests()
        h.watch.add("asked.for", "request:new-report", urgent=True)  # as a WatchRequest from Kafka would
        while len(of_type(h.sink.events, ProjectStatusObserved)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.package for e in of_type(h.sink.events, ProjectStatusObserved)] == ["demo", "asked-for"]
        assert [path for _, path, _ in fake.requests] == ["/simple/asked-for/"], "no root poll, no full sweep"
    finally:
        stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive()
