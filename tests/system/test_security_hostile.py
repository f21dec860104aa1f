"""Hostile upstream values through the real ingestors, ``qwatch tail`` and the logs.

Names, paths, versions and URLs holding ``../``, NUL, newlines, ANSI escapes, bidi overrides and 10 KB are served by
a crafted index and a real git repository. What must hold: the values travel verbatim as data (the event carries
what upstream said), but they never build a filesystem path, never change a request's path on the upstream, and
never reach a terminal or a log line raw.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import xmlrpc.client
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.render import render
from qwatch.events import (
    Cursor,
    DeadLetter,
    InventoryRecord,
    JournalEntryObserved,
    ProjectStatusObserved,
    ReportObserved,
)
from qwatch.pypi.names import normalize
from tests.hostile_support import (
    HOSTILE_NAMES,
    XML_SAFE_NAMES,
    CraftedServer,
    Reply,
    crafted_server,
    run_cli,
    unsafe_chars,
)
from tests.openssf_support import WorkRepo, ingestor, osv
from tests.pypi_support import SimpleHarness
from tests.qwatch.events.test_codec_fuzz import ANY_RECORD

SERIAL = 900
FAR_FUTURE_TS = 2**40 - 1
"""The largest journal timestamp the XML-RPC parser accepts (seconds): the year 36812, no calendar date."""
STATE_FILES = re.compile(r"(pypi-(simple|json|journal)-[0-9a-f]{12}\.state\.gz|cursor-[A-Za-z0-9_.-]{1,120}\.json)")
OPENSSF_STATE = re.compile(r"(openssf-index-[0-9a-f]{16}\.sqlite(-wal|-shm)?|cursor-[A-Za-z0-9_.-]{1,120}\.json)")
FORGED = "2026-01-01 00:00:00,000 INFO qwatch: forged log line"


def _root(names: list[str]) -> bytes:
    projects = [{"name": n, "_last-serial": SERIAL - i} for i, n in enumerate(names)]
    return json.dumps({"meta": {"_last-serial": SERIAL, "api-version": "1.1"}, "projects": projects}).encode()


def _page(name: str, status: str) -> bytes:
    files = (
        []
        if status == "quarantined"
        else [
            {"filename": f"{name}-1.0.tar.gz", "yanked": "\x1b[2J gone"},
            {"filename": "../../../evil-2.0\x1b]0;title\x07.tar.gz"},
        ]
    )
    page = {
        "meta": {"api-version": "1.4", "_last-serial": SERIAL + 100},  # newer than any root entry
        "name": name,
        "files": files,
        "versions": ["1.0", "2.0\x1b[2J", "../../3.0"],
        "project-status": {"status": status, "reason": "\u202egnirts\x1b[0m"},
    }
    return json.dumps(page).encode()


def _json_api(name: str) -> bytes:
    release = [
        {
            "filename": f"{name}-1.0\n.tar.gz",
            "upload_time_iso_8601": "2026-01-01T00:00:00Z",
            "yanked": True,
            "yanked_reason": "\x1b]0;pwned\x07",
            "packagetype": "sdist\x00",
        }
    ]
    doc = {
        "info": {"name": name, "version": "1.0\x1b[2J"},
        "releases": {"1.0": release, "\u202e9.9": []},
        "urls": release,
        "last_serial": SERIAL,
    }
    return json.dumps(doc).encode()


def _changelog() -> bytes:
    rows: list[list[object]] = [
        [name, "1.0\n\u2029", 1_767_323_045 + i, "project quarantined", i + 1] for i, name in enumerate(XML_SAFE_NAMES)
    ]
    rows.append(["far-future", None, 2**31 - 2, "remove project\u202e", len(rows) + 1])
    body = xmlrpc.client.dumps((rows,), methodresponse=True, allow_none=True)
    # <int> is 32-bit; an <i8> (which xmlrpc.client reads as well) carries the far-future timestamp.
    return body.replace(f"<int>{2**31 - 2}</int>", f"<i8>{FAR_FUTURE_TS}</i8>").encode()


def _routes(server: CraftedServer, root: list[list[str]], quarantined: set[str]) -> None:
    """The index: ``root[0]`` is the current root listing; pages echo back whatever name was asked for."""

    def route(path: str, body: bytes) -> Reply | None:
        if path == "/simple/":
            return Reply(body=_root(root[0]), content_type="application/vnd.pypi.simple.v1+json")
        if m := re.fullmatch(r"/simple/([^/]+)/", path):
            name = unquote(m.group(1))
            status = "quarantined" if name in quarantined else "active"
            return Reply(body=_page(name, status), content_type="application/vnd.pypi.simple.v1+json")
        if m := re.fullmatch(r"/pypi/([^/]+)/json", path):
            return Reply(body=_json_api(unquote(m.group(1))))
        if path == "/pypi" and b"changelog_since_serial" in body:
            return Reply(body=_changelog(), content_type="text/xml")
        return None

    server.routes.append(route)


def _clean(output: str, what: str) -> None:
    assert unsafe_chars(output) == [], f"{what} carries raw control characters"
    assert not any(line.startswith(FORGED[:24]) and "forged" in line for line in output.splitlines()), what


def _events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_pypi_ingestors_and_tail_with_hostile_names(tmp_path: Path) -> None:
    """The three PyPI ingestors, run as CLIs against the crafted index, then ``qwatch tail`` over everything."""
    work, state, out = tmp_path / "cwd", tmp_path / "state", tmp_path / "out"
    for d in (work, out):
        d.mkdir()
    watch = tmp_path / "watch.txt"
    watch.write_text("".join(f"{n}\n" for n in HOSTILE_NAMES if "\n" not in n and "\u2029" not in n), "utf-8")
    root = [list(HOSTILE_NAMES)]
    quarantined: set[str] = set()
    with crafted_server() as server:
        _routes(server, root, quarantined)
        index = f"{server.url}/simple/"

        def ingest(kind: str, sink: str, *args: str) -> None:
            sink_arg = f"jsonl:{out / sink}"
            cli = [
                "ingest",
                kind,
                *args,
                "--once",
                "--sink",
                sink_arg,
                "--state-dir",
                str(state),
                "--log-level",
                "DEBUG",
            ]
            done.append(run_cli(cli, cwd=work))

        done: list[subprocess.CompletedProcess[str]] = []
        ingest("pypi-simple", "simple-1.jsonl", "--index-url", index, "--watch", str(watch))
        # The second pass: every hostile name drops out of the root (so its page is fetched whether watched or not,
        # and shows it quarantined), and a new set of hostile names appears.
        quarantined.update(normalize(n) for n in HOSTILE_NAMES)
        root[0] = [f"new{n}" for n in HOSTILE_NAMES]
        ingest("pypi-simple", "simple-2.jsonl", "--index-url", index, "--watch", str(watch))
        ingest("pypi-json", "json.jsonl", "--index-url", index, "--watch", str(watch))
        ingest("pypi-journal", "journal.jsonl", "--xmlrpc-url", f"{server.url}/pypi", "--since-serial", "0")
        requested = [path for _, path in server.requests]
    for result in done:
        assert result.returncode == 0, result.stderr[-2000:]
        _clean(result.stderr + result.stdout, f"qwatch {' '.join(result.args[3:5])} output")

    # Upstream saw one path segment per name: no '../', '/' or control character rewrote the request path.
    for path in requested:
        assert re.fullmatch(r"/simple/([^/]+/)?|/pypi/[^/]+/json|/pypi", path), path
        assert unsafe_chars(path) == []

    # The values arrived verbatim, as data: the hostile names really went all the way through.
    events = [e for f in sorted(out.glob("*.jsonl")) for e in _events(f)]
    statuses = {e["package"]: e["status"] for e in events if e["type"] == "ProjectStatusObserved"}
    for name in ("nul\x00byte", "\x1b[2J\x1b[31mscreen-wipe", "\u202etxt.exe", "long-" + "x" * 10_240):
        assert statuses[normalize(name)] == "quarantined"
    assert {normalize(f"new{n}") for n in HOSTILE_NAMES} <= {
        e["package"] for e in events if e["type"] == "IndexMembershipObserved"
    }
    journal = [e for e in events if e["type"] == "JournalEntryObserved"]
    assert {e["name"] for e in journal} >= set(XML_SAFE_NAMES)
    assert any(e["type"] == "ReleasesObserved" and e["package"] == normalize("nul\x00byte") for e in events)

    # No file was named after an upstream value: the state dir holds only fixed, hashed names; nothing else moved.
    assert sorted(p.name for p in state.iterdir() if not STATE_FILES.fullmatch(p.name)) == []
    assert list(work.iterdir()) == []
    assert sorted(
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and state not in p.parents
    ) == sorted(["watch.txt", *(f"out/{f.name}" for f in out.glob("*.jsonl"))])
    assert not Path("/tmp/qwatch-pwned").exists()

    # qwatch tail prints one clean line per event, the 10 KB name cut short.
    combined = "".join(f.read_text("utf-8") for f in sorted(out.glob("*.jsonl")))
    everything = out / "all.jsonl"
    everything.write_text(combined, "utf-8")
    count = len(_events(everything))
    shown = run_cli(["tail", "--source", f"jsonl:{everything}"], cwd=work)
    assert shown.returncode == 0, shown.stderr[-2000:]
    _clean(shown.stdout + shown.stderr, "qwatch tail")
    lines = shown.stdout.splitlines()
    assert len(lines) == count
    assert max(len(line) for line in lines) < 1200
    assert any(str(FAR_FUTURE_TS * 1000) in line for line in lines)  # no calendar date fits, and tail did not die


@given(ANY_RECORD)
@example(InventoryRecord("", "", "\x1f", None, "", 0, False, ()))  # a record's own render_line left format raw
@example(JournalEntryObserved("e", "pypi-journal", "PyPI", "p", 0, None, "a", None, 1, FAR_FUTURE_TS * 1000, "p"))
@example(Cursor("c", "v", -(2**63)))  # iso_ms raised "year 0 is out of range"
def test_render_of_any_record_is_one_clean_line(event: object) -> None:
    """Whatever a topic holds (a replayed JSONL file is input too), a rendered event is one harmless line."""
    line = render(event)
    assert "\n" not in line and unsafe_chars(line) == []


def _assert_clean_records(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "the scenario was meant to log something"
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert unsafe_chars(text) == [], f"{record.name}: {text[:300]!r}"


def test_openssf_hostile_paths_and_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A real repository whose directories and package names are hostile, plus a broken file at a hostile path."""
    repo = WorkRepo(tmp_path / "repo")
    files: dict[str, str | bytes | None] = {}
    for i, name in enumerate(n for n in HOSTILE_NAMES if n not in ("..",) and "\x00" not in n):
        directory = name.replace("/", "_")[:200]  # a file name cannot hold '/' or NUL; the rest it can
        files[f"osv/malicious/pypi/{directory}/MAL-2026-{i + 1}.json"] = osv(f"MAL-2026-{i + 1}", name)
    files["osv/malicious/pypi/nul/MAL-2026-90.json"] = osv("MAL-2026-90", "nul\x00byte")
    files["osv/malicious/pypi/\x1b[2Jbroken\n/MAL-2026-99.json"] = b'{"id": "MAL-2026-99", "affected": [\x1b[2J'
    repo.commit(files)
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    with ingestor(repo.path, state) as h:
        h.service.poll()
        reports = h.reports()
        dead = h.dead()
    assert {r.package_name for r in reports} >= {"nul\x00byte", "\x1b[2J\x1b[31mscreen-wipe", "\u202etxt.exe"}
    assert any("\n" in r.path and r.package_name.startswith("evil\n") for r in reports)
    assert [d.reason for d in dead] == ["malformed-json"]
    _assert_clean_records(caplog)
    assert any("dead-lettering" in r.getMessage() for r in caplog.records)
    # The index and cursor files have fixed names; nothing was checked out or written next to the repository.
    assert {re.sub(r"-(wal|shm)$", "", p.name) for p in state.iterdir()} == {"cursor-openssf_test.json", "index.sqlite"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "state"]

    # And the CLI, with its own state dir and logging set-up: stderr stays clean, files keep fixed names.
    cli_state, work = tmp_path / "cli-state", tmp_path / "cwd"
    work.mkdir()
    result = run_cli(
        [
            "ingest",
            "openssf",
            "--repo",
            str(repo.path),
            "--once",
            "--sink",
            f"jsonl:{tmp_path / 'openssf.jsonl'}",
            "--state-dir",
            str(cli_state),
            "--log-level",
            "DEBUG",
        ],
        cwd=work,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _clean(result.stderr + result.stdout, "qwatch ingest openssf")
    assert "dead-lettering" in result.stderr
    assert sorted(p.name for p in cli_state.iterdir() if not OPENSSF_STATE.fullmatch(p.name)) == []
    assert list(work.iterdir()) == []
    emitted = _events(tmp_path / "openssf.jsonl")
    assert {e["type"] for e in emitted} == {"ReportObserved", "DeadLetter"}


def test_a_hostile_content_type_is_logged_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """A root answered with a C1 CSI (``\\x9b``, legal in an HTTP header as obs-text) in its Content-Type."""
    caplog.set_level(logging.DEBUG)
    with crafted_server() as server:
        server.routes.append(lambda path, body: Reply(body=b"<a>x</a>", content_type="text/x\x9b2J\x9b31m"))
        harness = SimpleHarness(server.url, [])
        report, events = harness.run()
    assert report.root == "failed"
    assert [e.reason for e in events if isinstance(e, DeadLetter)] == ["content-type"]
    _assert_clean_records(caplog)
    assert any("root index not believed" in r.getMessage() and "\\x9b" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:12]))
def test_events_built_from_hostile_names_encode_and_render(name: str) -> None:
    """Each observation type built with the hostile name is schema-valid and renders as one clean line."""
    from qwatch.events.codec import Codec

    codec = Codec()
    built: list[object] = [
        ProjectStatusObserved("e", "pypi-simple", "PyPI", normalize(name), 1, None, "active", 1, (name,), (), 200),
        JournalEntryObserved("e", "pypi-journal", "PyPI", normalize(name), 1, 1, name, name, 1, 1, name),
        ReportObserved(
            "e",
            "openssf",
            "PyPI",
            normalize(name),
            1,
            1,
            "MAL-2026-1",
            "added",
            name,
            (name,),
            False,
            name,
            None,
            None,
            None,
            (),
            (),
            "c" * 40,
            f"osv/malicious/pypi/{name}/MAL-2026-1.json",
        ),
        DeadLetter("e", "pypi-simple", "PyPI", normalize(name), 1, None, "schema", name, name, name),
    ]
    for event in built:
        assert codec.decode(codec.encode(event)) == event
        line = render(event)
        assert "\n" not in line and unsafe_chars(line) == [] and len(line) < 1200


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("paths")


@given(value=st.text(max_size=300) | st.sampled_from(HOSTILE_NAMES))
def test_paths_built_from_upstream_values_stay_inside_their_directory(base_dir: Path, value: str) -> None:
    """Every helper that turns a name or URL into a file name gives one fixed-shape child of the given directory."""
    from ingestors.pypi.state import state_path
    from qwatch.cursors import _file_name
    from qwatch.openssf.gitsource import mirror_dir
    from subscribers.gate.http_cache import DiskCache

    paths = [
        base_dir / _file_name(value),
        state_path(base_dir, "pypi-simple", value),
        mirror_dir(base_dir, value),
        DiskCache(base_dir)._path(value),
    ]
    for path in paths:
        assert path.parent == base_dir, path
        assert path.name not in ("", ".", "..") and "/" not in path.name and "\x00" not in path.name
        assert unsafe_chars(path.name) == []


def test_cursor_files_of_colliding_components_are_never_mixed_up(tmp_path: Path) -> None:
    """Component names are sanitized and cut into file names, so two can share a file; loading must notice."""
    from qwatch.cursors import FileCursorStore, _file_name

    long_path = "/srv/mirrors/" + "m" * 120
    first, second = f"openssf:{long_path}/a#main", f"openssf:{long_path}/b#main"
    assert _file_name(first) == _file_name(second)
    store = FileCursorStore(tmp_path)
    store.save(Cursor(first, "a" * 40, 1))
    assert store.load(first) == Cursor(first, "a" * 40, 1)
    with pytest.raises(ValueError, match="collide"):
        store.load(second)
