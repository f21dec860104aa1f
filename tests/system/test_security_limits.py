"""Response size caps: an oversized answer is refused and dead-lettered, and it is never held in memory.

The HTTP cases serve bodies that never end: a client that read first and checked later would spin until the
server's own 256 MiB safety stop and hold all of it, so "the server could send only a little" and "the Python heap
stayed small" (tracemalloc, every thread) prove the body was streamed and cut at the cap. A declared
Content-Length over the cap is refused before the body is read. The OSV case is a 48 MB blob in a real git repo.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ingestors.pypi.config import JournalIngestConfig
from ingestors.pypi.journal_ingest import JournalIngestor
from qwatch.cursors import MemoryCursorStore
from qwatch.events import DeadLetter, ProjectStatusObserved, ReleasesObserved, ReportObserved
from qwatch.sinks import MemorySink
from tests.hostile_support import CraftedServer, Reply, crafted_server
from tests.openssf_support import WorkRepo, ingestor, live, osv
from tests.pypi_support import JsonHarness, SimpleHarness, fresh_metrics, polite

T = TypeVar("T")
CAP = 64 * 1024
CHUNK = b"x" * 65536
HEAP_LIMIT = 16 * 1024 * 1024
"""Peak traced Python memory allowed while one oversized answer is handled (the cap is 64 KiB)."""
SENT_LIMIT = 32 * 1024 * 1024
"""Bytes the server may push before the client hangs up: the cap plus what socket buffers swallow."""
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def _peak(action: Callable[[], T]) -> tuple[T, int]:
    tracemalloc.start()
    try:
        result = action()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _endless(content_type: str, declared: int | None = None) -> Reply:
    headers = (("Content-Length", str(declared)),) if declared is not None else ()
    return Reply(content_type=content_type, body=CHUNK, endless=True, headers=headers)


def _server_routes(server: CraftedServer) -> None:
    def route(path: str, body: bytes) -> Reply | None:
        if path == "/simple/":
            projects = [{"name": n, "_last-serial": 5} for n in ("endless", "declared", "small")]
            return Reply(body=json.dumps({"meta": {"_last-serial": 5}, "projects": projects}).encode())
        if path in ("/simple/endless/", "/pypi/endless/json"):
            return _endless(SIMPLE_JSON if path.startswith("/simple/") else "application/json")
        if path in ("/simple/declared/", "/pypi/declared/json"):
            return _endless(SIMPLE_JSON if path.startswith("/simple/") else "application/json", declared=10**9)
        if path == "/simple/small/":
            page = {"meta": {"api-version": "1.1", "_last-serial": 5}, "name": "small", "files": []}
            return Reply(body=json.dumps(page).encode(), content_type=SIMPLE_JSON)
        if path == "/pypi/small/json":
            return Reply(body=json.dumps({"info": {"name": "small"}, "releases": {}, "last_serial": 5}).encode())
        if path == "/pypi":
            return _endless("text/xml")
        return None

    server.routes.append(route)


def _served() -> Iterator[CraftedServer]:
    with crafted_server() as server:
        _server_routes(server)
        yield server


def _oversized(events: list[object]) -> dict[str, str]:
    return {e.package: e.reason for e in events if isinstance(e, DeadLetter)}


def test_simple_pages_over_the_cap_are_dead_lettered_without_being_held() -> None:
    for server in _served():
        harness = SimpleHarness(server.url, ["endless", "declared", "small"], max_bytes=CAP)
        (report, events), peak = _peak(harness.run)
        sent = server.settled()
    assert _oversized(events) == {"endless": "oversized", "declared": "oversized"}
    assert [e.package for e in events if isinstance(e, ProjectStatusObserved)] == ["small"]  # the rest still flows
    assert sorted(report.pending) == ["declared", "endless"]  # looked at again next pass, not believed
    assert max(sent) < SENT_LIMIT, sent
    assert peak < HEAP_LIMIT, f"{peak / 2**20:.1f} MiB traced while refusing an endless page"


def test_json_api_answers_over_the_cap_are_dead_lettered_without_being_held() -> None:
    for server in _served():
        harness = JsonHarness(server.url, ["endless", "declared", "small"], max_bytes=CAP)
        (_, events), peak = _peak(harness.run)
        sent = server.settled()
    assert _oversized(events) == {"endless": "oversized", "declared": "oversized"}
    assert [e.package for e in events if isinstance(e, ReleasesObserved)] == ["small"]
    assert max(sent) < SENT_LIMIT, sent
    assert peak < HEAP_LIMIT, f"{peak / 2**20:.1f} MiB traced while refusing an endless JSON API answer"


def test_xmlrpc_answers_over_the_cap_are_dead_lettered_and_the_cursor_stays() -> None:
    for server in _served():
        metrics, sink, cursors = fresh_metrics(), MemorySink(), MemoryCursorStore()
        cfg = JournalIngestConfig(xmlrpc_url=f"{server.url}/pypi", since_serial=7)
        journal = JournalIngestor(cfg, polite(metrics, "pypi-journal", max_bytes=CAP), sink, metrics, cursors)
        report, peak = _peak(journal.poll)
        sent = server.settled()
    assert report.failure == "oversized" and report.cursor == 7
    assert [(e.reason, e.payload) for e in sink.events if isinstance(e, DeadLetter)] == [("oversized", None)]
    assert cursors.load(journal.component) is None
    assert max(sent) < SENT_LIMIT, sent
    assert peak < HEAP_LIMIT, f"{peak / 2**20:.1f} MiB traced while refusing an endless XML-RPC answer"


def test_an_oversized_osv_blob_is_dead_lettered_without_being_read(tmp_path: Path) -> None:
    repo = WorkRepo(tmp_path / "repo")
    huge = b'{"id": "MAL-2026-2", "details": "' + b"a" * (48 * 1024 * 1024) + b'"}'
    repo.commit({live("big", "MAL-2026-2"): huge, live("fine", "MAL-2026-1"): osv("MAL-2026-1", "fine")})
    with ingestor(repo.path, tmp_path / "state") as h:
        _, peak = _peak(h.service.poll)
        reports, dead = h.reports(), h.dead()
    assert [r.report_id for r in reports if isinstance(r, ReportObserved)] == ["MAL-2026-1"]
    assert [d.reason for d in dead] == ["oversized"]
    assert dead[0].payload is not None and len(dead[0].payload) <= 4096
    assert peak < HEAP_LIMIT, f"{peak / 2**20:.1f} MiB traced while skipping a 48 MB blob"
