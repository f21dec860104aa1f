"""First sight is a baseline, not news (processors/README.md, S2), on the real bodies of 10 popular projects.

``shared/fixtures/pypi-popular`` holds the JSON API and Simple (PEP 691 JSON) bodies of 10 popular projects,
recorded from pypi.org; every one has old yanked releases. A small ``http.server`` on 127.0.0.1 serves the bodies
byte for byte with the content types PyPI uses (the fake PyPI renders its own bodies, it cannot replay recorded
ones); the real ``qwatch ingest pypi-simple`` and ``qwatch ingest pypi-json`` read them in subprocesses, and the
real ``qwatch process`` turns their observations into transitions.

Required: no transition at all on first sight, whichever ingestor's observations come first; the old yanks are
recorded in the processor's package state (``--state-dir``). Then a second look, one version newly yanked: the
journal's ``yank release`` row gives exactly one YANKED, and the pages showing that yank add no second one.
"""

from __future__ import annotations

import gzip
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from processors.store import FileStateStore
from qwatch import ids
from qwatch.events.codec import Codec
from qwatch.events.state import PackageStateRecord
from qwatch.sinks import JsonlSink
from testing.samples import journal
from tests.cli_support import qwatch, read_jsonl
from tests.fixture_paths import SHARED

POPULAR = SHARED / "pypi-popular"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
NEWLY_YANKED = "requests"
"""The project whose latest version gets yanked on the second look."""


def facts() -> dict[str, dict[str, Any]]:
    path = POPULAR / "FACTS.json"
    assert path.is_file(), f"the pypi-popular fixtures are missing: looked in {POPULAR}"
    loaded: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


FACTS = facts()
PROJECTS = sorted(FACTS)


# --------------------------------------------------------------------------- the recorded bodies, served as-is
class RecordedPyPI:
    """Serves ``/simple/<name>/`` and ``/pypi/<name>/json`` from the recorded bodies, unchanged.

    The recordings hold no root index, and ``pypi-simple`` reads ``/simple/`` first; the root served here lists
    the 10 projects with the ``_last-serial`` of their recorded bodies, in Warehouse's compact sorted-key form.
    """

    def __init__(self, directory: Path) -> None:
        self.bodies: dict[str, tuple[str, bytes]] = {}
        self.display: dict[str, str] = {}
        self.serials: dict[str, int] = {}
        for name in PROJECTS:
            simple = gzip.decompress((directory / f"{name}.simple.json.gz").read_bytes())
            api = gzip.decompress((directory / f"{name}.json.gz").read_bytes())
            self.bodies[f"/simple/{name}/"] = (SIMPLE_JSON, simple)
            self.bodies[f"/pypi/{name}/json"] = ("application/json", api)
            self.display[name] = json.loads(api)["info"]["name"]
            self.serials[name] = int(json.loads(simple)["meta"]["_last-serial"])
        self.requests: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def root(self) -> bytes:
        projects = [{"_last-serial": self.serials[n], "name": self.display[n]} for n in PROJECTS]
        doc = {"meta": {"_last-serial": max(self.serials.values()), "api-version": "1.1"}, "projects": projects}
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    def answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/simple/":
            return 200, SIMPLE_JSON, self.root()
        with self._lock:
            found = self.bodies.get(path)
        if found is None:
            return 404, "text/plain", b"404 Not Found"
        return 200, found[0], found[1]

    def yank(self, name: str, version: str, serial: int) -> None:
        """The bodies PyPI serves once every file of ``version`` is yanked (the yank bumped the serial)."""
        simple_type, simple_body = self.bodies[f"/simple/{name}/"]
        api_type, api_body = self.bodies[f"/pypi/{name}/json"]
        simple = json.loads(simple_body)
        api = json.loads(api_body)
        files = {f["filename"] for f in api["releases"][version]}
        assert files, f"{name} {version} has no files to yank"
        for f in simple["files"]:
            if f["filename"] in files:
                f["yanked"] = "second look"
        simple["meta"]["_last-serial"] = str(serial)  # a string, as recorded
        for f in api["releases"][version]:
            f["yanked"], f["yanked_reason"] = True, "second look"
        for f in api["urls"]:
            if f["filename"] in files:
                f["yanked"], f["yanked_reason"] = True, "second look"
        api["last_serial"] = serial
        with self._lock:
            self.bodies[f"/simple/{name}/"] = (simple_type, json.dumps(simple).encode())
            self.bodies[f"/pypi/{name}/json"] = (api_type, json.dumps(api).encode())
            self.serials[name] = serial

    def record(self, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((path, status))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path.startswith("/simple/") and not path.endswith("/"):
            self.send_response(301)
            self.send_header("Location", path + "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.server.pypi.record(path, 301)
            return
        status, content_type, body = self.server.pypi.answer(path)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.pypi.record(path, status)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        """Quiet: ``RecordedPyPI.requests`` is the log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, pypi: RecordedPyPI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pypi = pypi


# --------------------------------------------------------------------------- running the real CLI
def describe(rows: list[dict[str, Any]], limit: int = 40) -> str:
    """Transitions one per line (kind, package, version, id, evidence sources), for failure messages."""
    lines = [
        f"{r['kind']} {r['package']} {r.get('version')} id={r['event_id']} "
        f"evidence=[{','.join(e['source'] for e in r['evidence'])}]"
        for r in rows[:limit]
    ]
    if len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more")
    return "\n".join(lines) or "(none)"


def process(src: Path, state: Path, sink: Path) -> list[dict[str, Any]]:
    """``qwatch process`` over one JSONL file; returns the transitions this run wrote."""
    qwatch("process", "--source", f"jsonl:{src}", "--sink", f"jsonl:{sink}", "--state-dir", str(state))
    return read_jsonl(sink)


def concat(dest: Path, *parts: Path) -> Path:
    dest.write_text("".join(p.read_text(encoding="utf-8") for p in parts), encoding="utf-8")
    return dest


@dataclass
class Looks:
    """Observation files: the first look of each ingestor, and the second look after the yank."""

    first: dict[str, Path]
    second: dict[str, Path]
    yanked_version: str
    yank_serial: int


@pytest.fixture(scope="module")
def looks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Looks]:
    root = tmp_path_factory.mktemp("popular")
    watch = root / "watch.txt"
    watch.write_text("".join(f"{n}\n" for n in PROJECTS), encoding="utf-8")
    state = root / "ingest-state"
    pypi = RecordedPyPI(POPULAR)
    server = _Server(pypi)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    index = "http://{}:{}/simple/".format(*server.server_address[:2])

    def ingest(kind: str, out: Path) -> Path:
        qwatch(
            "ingest", kind, "--index-url", index, "--watch", str(watch), "--once",
            "--state-dir", str(state), "--sink", f"jsonl:{out}",
        )  # fmt: skip
        out.touch()
        return out

    version = FACTS[NEWLY_YANKED]["latest"]
    serial = FACTS[NEWLY_YANKED]["last_serial"] + 1
    try:
        first = {kind: ingest(f"pypi-{kind}", root / f"first-{kind}.jsonl") for kind in ("simple", "json")}
        assert {p for p, s in pypi.requests if s == 200} >= {f"/simple/{n}/" for n in PROJECTS} | {
            f"/pypi/{n}/json" for n in PROJECTS
        }, pypi.requests
        pypi.yank(NEWLY_YANKED, version, serial)
        second = {kind: ingest(f"pypi-{kind}", root / f"second-{kind}.jsonl") for kind in ("simple", "json")}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    yield Looks(first, second, version, serial)


ORDERS = {"simple-first": ("simple", "json"), "json-first": ("json", "simple")}


def test_the_ingestors_read_every_real_body(looks: Looks) -> None:
    """What the real ingestors made of the real bodies (the processor's input)."""
    pages = {o["package"]: o for o in read_jsonl(looks.first["simple"]) if o["type"] == "ProjectStatusObserved"}
    apis = {o["package"]: o for o in read_jsonl(looks.first["json"]) if o["type"] == "ReleasesObserved"}
    dead = [o for kind in ("simple", "json") for o in read_jsonl(looks.first[kind]) if o["type"] == "DeadLetter"]
    assert dead == []
    assert sorted(pages) == sorted(apis) == PROJECTS
    for name, fact in FACTS.items():
        assert pages[name]["http_status"] == apis[name]["http_status"] == 200
        assert pages[name]["last_serial"] == apis[name]["last_serial"] == fact["last_serial"], name
        assert fact["latest"] in pages[name]["versions"]
        assert sorted(r["version"] for r in apis[name]["releases"] if r["yanked"]) == sorted(fact["yanked_versions"])
        assert len(apis[name]["releases"]) == fact["releases"]
    # The second look: only the project whose version was yanked changed, and both ingestors show the yank.
    second = [o for kind in ("simple", "json") for o in read_jsonl(looks.second[kind])]
    assert {(o["type"], o["package"]) for o in second} == {
        ("ProjectStatusObserved", NEWLY_YANKED),
        ("ReleasesObserved", NEWLY_YANKED),
    }, second
    for o in second:
        assert o["last_serial"] == looks.yank_serial
        if o["type"] == "ProjectStatusObserved":
            assert looks.yanked_version in o["yanked_versions"]
        else:
            assert [r["yanked"] for r in o["releases"] if r["version"] == looks.yanked_version] == [True]


def _states(state_dir: Path) -> dict[str, PackageStateRecord]:
    return FileStateStore(state_dir, Codec()).load()


@dataclass
class FirstSight:
    """The processor's run over the first look: the transitions it wrote and its ``--state-dir``."""

    rows: list[dict[str, Any]]
    state_dir: Path


@pytest.fixture(scope="module")
def first_sight(looks: Looks, tmp_path_factory: pytest.TempPathFactory) -> dict[str, FirstSight]:
    out = {}
    for order, kinds in ORDERS.items():
        d = tmp_path_factory.mktemp(f"first-{order}")
        src = concat(d / "first.jsonl", *(looks.first[k] for k in kinds))
        out[order] = FirstSight(process(src, d / "state", d / "transitions.jsonl"), d / "state")
    return out


@pytest.mark.parametrize("order", list(ORDERS))
def test_first_sight_is_a_baseline(first_sight: dict[str, FirstSight], order: str) -> None:
    rows = first_sight[order].rows
    by_kind: dict[str, int] = {}
    for r in rows:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
    assert rows == [], f"{order}: first sight emitted {len(rows)} transitions {by_kind}:\n{describe(rows)}"


@pytest.mark.parametrize("order", list(ORDERS))
def test_first_sight_records_the_old_yanks(first_sight: dict[str, FirstSight], order: str) -> None:
    states = _states(first_sight[order].state_dir)
    assert sorted(states) == [f"PyPI:{n}" for n in PROJECTS]
    for name, fact in FACTS.items():
        s = states[f"PyPI:{name}"]
        yanked = {r.version for r in s.releases if r.yanked}
        missing = set(fact["yanked_versions"]) - yanked
        assert not missing, f"{order}: {name}'s state lacks the old yanks {sorted(missing)} (has {sorted(yanked)})"
        assert s.last_serial == fact["last_serial"], name
        assert fact["latest"] in s.visible_versions, name


@pytest.mark.parametrize("second", ["journal-then-pages", "pages-then-journal"])
@pytest.mark.parametrize("order", list(ORDERS))
def test_a_new_yank_is_one_yanked(
    looks: Looks, first_sight: dict[str, FirstSight], order: str, second: str, tmp_path: Path
) -> None:
    """After the baseline, ``requests``' latest version is yanked: one YANKED, with the journal row's id."""
    state_dir = tmp_path / "state"
    shutil.copytree(first_sight[order].state_dir, state_dir)  # the baseline, whatever it emitted
    row = tmp_path / "journal.jsonl"
    sink = JsonlSink(str(row), Codec())
    sink.emit(journal(NEWLY_YANKED, looks.yank_serial, "yank release", looks.yanked_version))
    sink.close()
    pages = concat(tmp_path / "second.jsonl", *(looks.second[k] for k in ORDERS[order]))
    steps = [("journal", row), ("pages", pages)]
    if second == "pages-then-journal":
        steps.reverse()
    emitted: dict[str, list[dict[str, Any]]] = {}
    for label, src in steps:
        emitted[label] = process(src, state_dir, tmp_path / f"transitions-{label}.jsonl")
    everything = [r for label, _ in steps for r in emitted[label]]
    report = "\n".join(f"after the {label}:\n{describe(emitted[label])}" for label, _ in steps)
    assert [(r["kind"], r["package"], r["version"]) for r in everything] == [
        ("YANKED", NEWLY_YANKED, looks.yanked_version)
    ], f"{order}, {second}:\n{report}"
    # The id of the journal row's (version, serial), whichever source showed the yank first.
    expected_id = ids.event_id("processor", "PyPI", NEWLY_YANKED, "YANKED", looks.yanked_version, looks.yank_serial)
    assert everything[0]["event_id"] == expected_id, report
    if second == "journal-then-pages":
        assert len(emitted["journal"]) == 1, f"the journal row itself must emit the YANKED:\n{report}"
    state = _states(state_dir)[f"PyPI:{NEWLY_YANKED}"]
    assert looks.yanked_version in {r.version for r in state.releases if r.yanked}
