"""The gate's fact adapters: the JSON API fallback for upload times over real HTTP, and facts from processor state."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from qwatch import events
from qwatch.http import HttpConfig, PoliteClient
from qwatch.metrics import Metrics
from subscribers.gate.facts import PackageFacts, vkey
from subscribers.gate.facts_kafka import from_state, from_transitions
from subscribers.gate.facts_pypi import PyPIFacts, json_api_base

PAGE = {  # an api-version 1.0 page: no upload-time, no versions list
    "meta": {"api-version": "1.0"},
    "name": "oldidx",
    "files": [
        {"filename": "oldidx-1.0.tar.gz", "url": "x", "hashes": {}},
        {"filename": "oldidx-2.0.tar.gz", "url": "y", "hashes": {}, "yanked": "broken"},
    ],
}
RELEASE = {
    "urls": [
        {"upload_time_iso_8601": "2026-01-02T03:04:05.000000Z"},
        {"upload_time_iso_8601": "2026-01-01T00:00:00.123456Z"},
    ]
}


@pytest.fixture
def mirror() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            if self.path == "/mirror/simple/oldidx/":
                body, ctype = json.dumps(PAGE).encode(), "application/vnd.pypi.simple.v1+json"
            elif self.path == "/mirror/pypi/oldidx/1.0/json":
                body, ctype = json.dumps(RELEASE).encode(), "application/json"
            else:
                body, ctype = b"nope", "text/plain"
                self.send_response(404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mirror/simple/", seen
    finally:
        server.shutdown()
        server.server_close()


def test_json_api_fills_missing_upload_times(mirror: tuple[str, list[str]]) -> None:
    index, seen = mirror
    cfg = HttpConfig(max_attempts=1)
    with httpx.Client() as client:
        facts = PyPIFacts(PoliteClient(client, cfg, Metrics(CollectorRegistry()), "gate"), index)
        answers = facts.lookup({"oldidx": ["1.0"], "gone": ["1.0"]}, soak_for={"oldidx"})
    got = answers["oldidx"]
    assert isinstance(got, PackageFacts)
    assert got.versions == {vkey("1.0"), vkey("2.0")} and got.yanked == {vkey("2.0")}
    assert got.first_upload[vkey("1.0")] == 1767225600123  # the earliest file of the release
    assert "/mirror/pypi/oldidx/1.0/json" in seen
    gone = answers["gone"]
    assert isinstance(gone, PackageFacts) and gone.status == "removed"


def test_json_api_base() -> None:
    assert json_api_base("https://pypi.org/simple") == "https://pypi.org/pypi/"
    assert json_api_base("https://mirror.example/root/simple/") == "https://mirror.example/root/pypi/"


def test_facts_from_processor_state_and_transitions() -> None:
    state = events.PackageStateRecord(
        "PyPI",
        "gamma",
        "active",
        10,
        None,
        (),
        (events.ReleaseRecord("0.9.0", removed=True), events.ReleaseRecord("0.9.1", yanked=True)),
        ("0.9.1",),
        10,
        (
            events.ReportRecord("MAL-1", "live", ("0.9.1",), False, None, 0, None, 0),
            events.ReportRecord("MAL-0", "withdrawn", (), True, None, 0, None, 0),
        ),
        (),
        (),
        0,
    )
    unknown = events.PackageStateRecord("PyPI", "nobody", "unknown", None, None, (), (), (), None, (), (), (), 0)
    facts = from_state([state, unknown])
    assert set(facts) == {"gamma"}  # "nobody": unknown status and no live report, nothing to keep
    gamma = facts["gamma"]
    assert gamma.removed_versions == {vkey("0.9.0")} and gamma.yanked == {vkey("0.9.1")}
    assert [r.report_id for r in gamma.reports] == ["MAL-1"] and gamma.reports[0].affects("0.9.1")
    assert not gamma.reports[0].affects("0.9.0")
    t = events.Transition(
        "t1",
        "REPORTED",
        "PyPI",
        "delta",
        "critical",
        None,
        "MAL-7",
        None,
        events.PackageState("active", live_reports=("MAL-7",)),
        (),
        None,
        0,
        "s",
    )
    delta = from_transitions([t])["delta"]
    assert delta.versions is None and delta.reports[0].affects("1.0")  # scope unknown: fail closed


def test_broker_mode_keeps_a_reported_package_no_pypi_source_has_seen(mirror: tuple[str, list[str]]) -> None:
    """A package the processor knows only from an OpenSSF report (status unknown) used to be dropped from the facts;
    the gate then asked the index, which said "active", and passed it. Now the index is asked and the report kept."""
    from subscribers.gate.compose import run_gate
    from subscribers.gate.soak import SoakPolicy
    from subscribers.inventory.lockfiles import Inventory, LockedPackage, PackageSource

    reported = events.PackageStateRecord(
        "PyPI",
        "oldidx",
        "unknown",
        None,
        None,
        (),
        (),
        (),
        None,
        (events.ReportRecord("MAL-2026-5", "live", ("1.0",), False, None, 0, None, 0),),
        (),
        (),
        0,
    )
    known = from_state([reported])
    assert known["oldidx"].status == "unknown" and [r.report_id for r in known["oldidx"].reports] == ["MAL-2026-5"]
    index, _ = mirror
    inventory = Inventory(
        "requirements.txt",
        "requirements.txt",
        None,
        (LockedPackage("oldidx", "oldidx", "1.0", PackageSource("pypi", None), (), None, True, ()),),
    )
    with httpx.Client() as client:
        pypi = PyPIFacts(PoliteClient(client, HttpConfig(max_attempts=1), Metrics(CollectorRegistry()), "gate"), index)
        run = run_gate(inventory, pypi, SoakPolicy(frozenset(), 0), 0, kafka=lambda: known)
    assert run.result.exit_code == 1
    assert [(f.package, f.reason, f.report_ids) for f in run.result.findings] == [
        ("oldidx", "malicious", ("MAL-2026-5",))
    ]
