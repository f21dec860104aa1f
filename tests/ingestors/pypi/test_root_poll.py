"""The root poll's cheap paths: an unchanged body (no ETag from upstream) is recognised by its hash and never
parsed, across a restart too; and the copy-free split of the fast root parser gives exactly the entries of the
plain ``slice.split`` it replaced and of the ``json.loads`` path, on generated roots."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestors.pypi import simple_ingest
from ingestors.pypi.parse_root import (
    _PROJECTS,
    _SEPARATOR,
    _fast_root,
    canonical_entries,
    canonical_entry,
    decode_entry,
    parse_root_json,
    snapshot_from,
)
from ingestors.pypi.rootdiff import diff_roots
from qwatch.events import IndexMembershipObserved
from testing.fakepypi import FakePyPI
from tests.pypi_support import SimpleHarness, of_type

ACCEPT_JSON = "application/vnd.pypi.simple.v1+json"


class _Root:
    """A real HTTP server on 127.0.0.1 that serves the fake PyPI's root body as PyPI's CDN can: without an ETag."""

    def __init__(self) -> None:
        self.fake = FakePyPI(start_serial=1000)
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests += 1
                body = outer.fake.render("/simple/", ACCEPT_JSON).body
                self.send_response(200)
                self.send_header("Content-Type", ACCEPT_JSON)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def root() -> Iterator[_Root]:
    served = _Root()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


def test_an_unchanged_root_body_is_not_parsed_even_after_a_restart(
    root: _Root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, base = root.fake, root.base
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    fake.add_project("Other", {"2.0": ["other-2.0.tar.gz"]})
    parsed: list[int] = []
    real = parse_root_json

    def counting(body: bytes) -> Any:
        parsed.append(len(body))
        return real(body)

    monkeypatch.setattr(simple_ingest, "parse_root_json", counting)
    state = tmp_path / "state.gz"
    h = SimpleHarness(base, [], state_file=state)
    assert h.run()[0].root == "baseline" and len(parsed) == 1
    assert h.ingestor.root_etag is None, "this test is about a root served without an ETag"

    report, events = h.run()
    assert report.root == "unchanged" and report.ok and len(parsed) == 1 and events == []
    assert root.requests == 2, "the body was downloaded each time; only the parse is skipped"

    restarted = SimpleHarness(base, [], state_file=state)
    assert restarted.ingestor.root == h.ingestor.root
    assert restarted.ingestor.root is not None and restarted.ingestor.root.digest == h.ingestor.root.digest  # type: ignore[union-attr]
    assert restarted.run()[0].root == "unchanged" and len(parsed) == 1

    fake.quarantine("Demo")
    report, events = restarted.run()
    assert report.root == "changed" and len(parsed) == 2
    assert [(e.package, e.present) for e in of_type(events, IndexMembershipObserved)] == [("demo", False)]
    assert restarted.run()[0].root == "unchanged" and len(parsed) == 2


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.ABCé", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    projects=st.lists(
        st.tuples(names, st.one_of(st.none(), st.integers(0, 10**12))), max_size=30, unique_by=lambda p: p[0]
    ),
    serial=st.one_of(st.none(), st.integers(0, 10**9)),
)
def test_the_fast_split_gives_the_entries_of_the_plain_split_and_of_json_loads(
    projects: list[tuple[str, int | None]], serial: int | None
) -> None:
    body = json.dumps(
        {
            "meta": {"_last-serial": serial, "api-version": "1.1"},
            "projects": [{"_last-serial": s, "name": n} for n, s in projects],
        },
        separators=(",", ":"),
        ensure_ascii=False,
        sort_keys=True,
    ).encode()
    fast = _fast_root(body)
    assert fast is not None, body
    start, end = body.find(_PROJECTS) + len(_PROJECTS), body.rfind(b"]")
    plain = frozenset(body[start + 1 : end - 1].split(_SEPARATOR)) if end > start else frozenset()
    assert fast.entries == frozenset(canonical_entry(entry) for entry in plain)
    assert all(not entry.startswith(b'"') for entry in fast.entries)  # the constant text is gone
    assert fast == snapshot_from(serial, "1.1", projects) == parse_root_json(body)
    assert fast.to_mapping() == dict(projects)


@pytest.mark.parametrize(
    "projects",
    [
        '{"_last-serial":1,"name":"a"},{"_last-serial":2,"extra":"x","name":"b"}',  # another key in one entry
        '{"_last-serial":1,"name":"a\\"q"},{"_last-serial":2,"name":"b"}',  # an escaped quote in a name
        '{"_last-serial":1.0,"name":"a"},{"_last-serial":2,"name":"b"}',  # a float serial
        '{"_last-serial":[1,2],"name":"a"},{"_last-serial":-3,"name":"b,c"}',  # a list serial, a comma in a name
        '{"_last-serial":1,"name":"a"}',  # one entry: first and last piece are the same
    ],
)
def test_entries_of_another_shape_read_as_json_loads_reads_them(projects: str) -> None:
    body = ('{"meta":{"_last-serial":9,"api-version":"1.1"},"projects":[' + projects + "]}").encode()
    doc = json.loads(body)
    want = {p["name"]: (p["_last-serial"] if isinstance(p["_last-serial"], int) else None) for p in doc["projects"]}
    assert parse_root_json(body).to_mapping() == want


def test_a_state_written_in_the_older_entry_form_diffs_as_unchanged() -> None:
    body = json.dumps(
        {"meta": {"_last-serial": 5}, "projects": [{"_last-serial": i, "name": f"p{i}é"} for i in range(50)]},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    start, end = body.find(_PROJECTS) + len(_PROJECTS), body.rfind(b"]")
    legacy = body[start + 1 : end - 1].split(_SEPARATOR)  # the lines such a state file holds
    assert legacy[0].startswith(b'"_last-serial":')
    new = parse_root_json(body)
    loaded = frozenset(canonical_entries(legacy))
    assert loaded == new.entries and len(diff_roots(snapshot_from(5, None, []), new).added) == 50
    assert len(diff_roots(type(new)(5, None, loaded), new)) == 0
    assert canonical_entries(sorted(new.entries)) == sorted(new.entries)  # the current form passes as it is
    assert decode_entry(canonical_entry(b'"_last-serial":null,"name":"x\\u00e9"')) == ("x\u00e9", None)
