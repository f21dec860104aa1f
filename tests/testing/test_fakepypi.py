"""Tests for the fake PyPI, through a real ``httpx.Client`` on a real socket (no mocks).

Each lifecycle state of ``/work/shared/docs/pypi-signals.md``'s matrix is checked on every endpoint, and
the bodies are compared with the real captures in ``../shared/fixtures/pypi-pages/``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testing.fakepypi import DEMO_TIMELINE, FakePyPI, Fault, fake_sha256, install_demo
from testing.fakepypi.__main__ import build_parser
from testing.fakepypi.render import dumps, etag, select_content_type
from testing.fakepypi.versions import version_key
from tests.fixture_paths import REPO, SHARED

FIXTURES = SHARED / "pypi-pages"
JSON_ACCEPT = {"Accept": "application/vnd.pypi.simple.v1+json"}
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
T0 = 1767323045.678901  # 2026-01-02T03:04:05.678901Z, as in the doc's B1 example
START = 31_000_000
DEMO = {"1.0": ["demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl"], "1.1": ["demo-1.1.tar.gz"]}


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class Clock:
    """A settable clock, so journal timestamps and rate-limit windows are deterministic."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pypi(clock: Clock) -> FakePyPI:
    fake = FakePyPI(start_serial=START, clock=clock)
    fake.add_project("Demo", DEMO, requires_python=">=3.9")
    return fake


@pytest.fixture
def client(pypi: FakePyPI) -> Iterator[httpx.Client]:
    with pypi.serve() as base_url, httpx.Client(base_url=base_url, timeout=20) as http:
        yield http


def simple_json(client: httpx.Client, name: str) -> httpx.Response:
    return client.get(f"/simple/{name}/", headers=JSON_ACCEPT)


def root_names(client: httpx.Client) -> dict[str, int]:
    body = client.get("/simple/", headers=JSON_ACCEPT).json()
    return {p["name"]: p["_last-serial"] for p in body["projects"]}


def root_html_names(client: httpx.Client) -> list[str]:
    return re.findall(r'<a href="/simple/[^/]+/">([^<]+)</a>', client.get("/simple/").text)


def rpc_proxy(base_url: object) -> Any:
    """An XML-RPC proxy typed as ``Any`` (the stdlib stub types every result as a marshallable union)."""
    return xmlrpc.client.ServerProxy(f"{base_url}/pypi", allow_none=True)


def rows_for(pypi: FakePyPI, action: str) -> list[tuple[str, str | None, int, str, int]]:
    return [row for row in pypi.journal if row[3] == action]


# --------------------------------------------------------------------------- active (baseline) + shapes
def test_active_simple_json_matches_b1(pypi: FakePyPI, client: httpx.Client) -> None:
    response = simple_json(client, "demo")
    assert response.status_code == 200
    assert response.headers["content-type"] == SIMPLE_JSON
    assert response.headers["vary"] == "Accept"
    assert response.headers["cache-control"] == "max-age=600, public"
    assert response.headers["x-pypi-last-serial"] == str(pypi.last_serial)
    assert response.headers["etag"] == etag(response.content)
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.content == dumps(response.json())  # compact, sorted keys, trailing newline
    body = response.json()
    assert set(body) == {"files", "meta", "name", "project-status", "versions"}  # no alternate-locations
    assert body["meta"] == {"_last-serial": pypi.last_serial, "api-version": "1.4"}
    assert body["name"] == "demo"
    assert body["project-status"] == {"status": "active"}
    assert body["versions"] == ["1.0", "1.1"]
    numpy = fixture_json("C-simple-json-numpy-trimmed-from-renovate.json")
    assert {tuple(sorted(f)) for f in body["files"]} == {tuple(sorted(numpy["files"][0]))}
    by_name = {f["filename"]: f for f in body["files"]}
    tar = by_name["demo-1.0.tar.gz"]
    assert tar["hashes"] == {"sha256": fake_sha256("demo-1.0.tar.gz")}
    assert tar["upload-time"] == "2026-01-02T03:04:05.678901Z"
    assert tar["requires-python"] == ">=3.9"
    assert tar["yanked"] is False and tar["provenance"] is None
    assert tar["core-metadata"] is False and tar["data-dist-info-metadata"] is False
    assert re.fullmatch(
        r"https://files\.pythonhosted\.org/packages/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/demo-1\.0\.tar\.gz",
        tar["url"],
    )
    wheel = by_name["demo-1.0-py3-none-any.whl"]
    assert wheel["core-metadata"] == wheel["data-dist-info-metadata"]
    assert isinstance(wheel["core-metadata"], dict)
    assert [f["filename"] for f in body["files"]] == [
        "demo-1.0-py3-none-any.whl",
        "demo-1.0.tar.gz",
        "demo-1.1.tar.gz",
    ]


def test_active_simple_html_is_byte_exact(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.add_project("Plain", {"2.0": ["plain-2.0.tar.gz"]})
    response = client.get("/simple/plain/")
    assert response.headers["content-type"] == "text/html"
    assert response.headers["vary"] == "Accept"
    url = simple_json(client, "plain").json()["files"][0]["url"]
    serial = pypi.project("plain").last_serial  # type: ignore[union-attr]
    expected = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n'
        "  <head>\n"
        '    <meta name="pypi:repository-version" content="1.4">\n'
        '<meta name="pypi:project-status" content="active">    <title>Links for plain</title>\n'
        "  </head>\n"
        "  <body>\n"
        "    <h1>Links for plain</h1>\n"
        f'<a href="{url}#sha256={fake_sha256("plain-2.0.tar.gz")}" >plain-2.0.tar.gz</a><br />\n'
        "</body>\n"
        "</html>\n"
        f"<!--SERIAL {serial}-->"
    )
    assert response.text == expected


def test_archived_html_matches_warehouse_frozen_snapshot(pypi: FakePyPI, client: httpx.Client) -> None:
    frozen = (FIXTURES / "D-simple-html-example2-pep792-archived-warehouse-frozen-snapshot.html").read_text()
    pypi.add_project("example2", {"1.0.0": ["example2-1.0.0.tar.gz"]}, requires_python=">=3.14")
    pypi.archive("example2")
    ours = client.get("/simple/example2/").text
    normalize_href = re.compile(r'href="[^"#]*#sha256=[0-9a-f]{64}"')
    normalize_serial = re.compile(r"<!--SERIAL \d+-->")
    assert normalize_serial.sub("<!--SERIAL n-->", normalize_href.sub('href="H"', ours)) == normalize_serial.sub(
        "<!--SERIAL n-->", normalize_href.sub('href="H"', frozen)
    )


def test_root_index_shapes_and_empty_html_snapshot(clock: Clock) -> None:
    empty = FakePyPI(clock=clock)
    with empty.serve() as url, httpx.Client(base_url=url) as http:
        frozen = (FIXTURES / "D-simple-html-root-index-empty-warehouse-frozen-snapshot.html").read_bytes()
        response = http.get("/simple/")
        assert response.content == frozen
        assert response.headers["x-pypi-last-serial"] == "1000"
        empty.add_project("Zed", {"1": ["zed-1.tar.gz"]})
        empty.add_project("0-._.-0", {"1": ["0_0-1.tar.gz"]})
        empty.add_project("alpha", {})
        body = http.get("/simple/", headers=JSON_ACCEPT)
        assert body.content == dumps(body.json())
        data = body.json()
        sample = fixture_json("C-simple-json-root-index-trimmed-from-pypiwrap.json")
        assert set(data) == set(sample)
        assert set(data["meta"]) == set(sample["meta"])
        assert {tuple(sorted(p)) for p in data["projects"]} == {tuple(sorted(sample["projects"][0]))}
        assert [p["name"] for p in data["projects"]] == ["0-._.-0", "alpha", "Zed"]  # normalized order
        assert data["meta"]["_last-serial"] == empty.last_serial == int(body.headers["x-pypi-last-serial"])
        html = http.get("/simple/").text
        assert '<a href="/simple/0-0/">0-._.-0</a>\n<a href="/simple/alpha/">alpha</a>\n' in html
        assert html.endswith('<a href="/simple/zed/">Zed</a>\n</body>\n</html>')


def test_json_api_shape_matches_real_captures(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.add_release("Demo", "2.0", ["demo-2.0-py3-none-any.whl"])
    pluggy = fixture_json("A-json-project-pluggy-compact-yanked-ownership-from-depinder.json")
    response = client.get("/pypi/Demo/json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "max-age=900, public"
    assert response.headers["x-pypi-last-serial"] == str(pypi.last_serial)
    assert response.content == dumps(response.json())
    body = response.json()
    assert set(body) == set(pluggy)
    assert set(body["info"]) == set(pluggy["info"])
    real_file_keys = {k for files in pluggy["releases"].values() for f in files for k in f}
    assert {k for files in body["releases"].values() for f in files for k in f} == real_file_keys
    assert body["info"]["version"] == "2.0" and body["info"]["name"] == "Demo"
    assert body["urls"] == body["releases"]["2.0"]
    assert body["vulnerabilities"] == []
    assert body["last_serial"] == pypi.last_serial
    wheel = body["urls"][0]
    assert wheel["packagetype"] == "bdist_wheel" and wheel["python_version"] == "py3"
    assert wheel["digests"]["sha256"] == fake_sha256("demo-2.0-py3-none-any.whl")
    assert wheel["upload_time"] == "2026-01-02T03:04:05"
    assert wheel["upload_time_iso_8601"] == "2026-01-02T03:04:05.678901Z"
    cage = fixture_json("B-json-version-CAGE-1.1.4-from-purldb.json")
    version = client.get("/pypi/Demo/1.0/json").json()
    assert set(version) == set(cage)  # no "releases" key on the version URL
    assert version["info"]["version"] == "1.0"
    assert "status" not in response.text and "lifecycle" not in response.text


def test_json_api_keeps_empty_releases(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.add_release("Demo", "0.9", [])
    body = client.get("/pypi/Demo/json").json()
    assert body["releases"]["0.9"] == []
    assert "0.9" not in simple_json(client, "demo").json()["versions"]  # versions come from files only


# --------------------------------------------------------------------------- quarantine
def test_quarantined_on_every_endpoint(pypi: FakePyPI, client: httpx.Client) -> None:
    before = pypi.last_serial
    etag_before = simple_json(client, "demo").headers["etag"]
    pypi.quarantine("demo")
    serial = pypi.last_serial
    assert serial == before + 1
    assert pypi.journal[-1] == ("Demo", None, int(T0), "project quarantined", serial)

    response = simple_json(client, "demo")
    assert response.status_code == 200
    b2 = '{"files":[],"meta":{"_last-serial":SERIAL,"api-version":"1.4"},"name":"demo",' + (
        '"project-status":{"status":"quarantined"},"versions":[]}\n'
    )
    assert response.content == b2.replace("SERIAL", str(serial)).encode()
    assert response.headers["x-pypi-last-serial"] == str(serial)
    assert response.headers["etag"] != etag_before

    html = client.get("/simple/demo/").text
    assert '<meta name="pypi:project-status" content="quarantined">' in html
    assert "<a " not in html
    assert "    <h1>Links for demo</h1>\n</body>\n" in html

    assert "Demo" not in root_names(client)
    assert "Demo" not in root_html_names(client)
    for path in ("/pypi/Demo/json", "/pypi/Demo/1.0/json", "/pypi/demo/json"):
        not_found = client.get(path)
        assert not_found.status_code == 404
        assert not_found.headers["content-type"] == "application/json"
        assert not_found.content == b'{"message": "Not Found"}'
        assert "etag" not in not_found.headers

    rpc = rpc_proxy(client.base_url)
    assert rpc.list_packages_with_serial()["Demo"] == serial
    assert rpc.changelog_since_serial(before) == [["Demo", None, int(T0), "project quarantined", serial]]


def test_quarantine_cleared_is_active_with_higher_serial(pypi: FakePyPI, client: httpx.Client, clock: Clock) -> None:
    active_body = simple_json(client, "demo").json()
    pypi.quarantine("demo")
    quarantined_serial = pypi.last_serial
    clock.now += 60
    pypi.clear_quarantine("demo")
    assert pypi.journal[-1] == (
        "Demo",
        None,
        int(T0) + 60,
        "project quarantine cleared",
        quarantined_serial + 1,
    )
    body = simple_json(client, "demo").json()
    assert body["project-status"] == {"status": "active"}
    assert body["files"] == active_body["files"]
    assert body["meta"]["_last-serial"] == quarantined_serial + 1
    assert root_names(client)["Demo"] == quarantined_serial + 1
    assert client.get("/pypi/Demo/json").status_code == 200
    with pytest.raises(ValueError, match="not quarantined"):
        pypi.clear_quarantine("demo")


# --------------------------------------------------------------------------- archive
def test_archive_and_unarchive_change_bodies_but_not_serials(pypi: FakePyPI, client: httpx.Client) -> None:
    active = simple_json(client, "demo")
    root_before = client.get("/simple/", headers=JSON_ACCEPT)
    api_before = client.get("/pypi/Demo/json")
    serial, rows = pypi.last_serial, len(pypi.journal)

    pypi.archive("demo")
    archived = simple_json(client, "demo")
    assert archived.json()["project-status"] == {"status": "archived"}
    assert archived.json()["files"] == active.json()["files"]
    assert archived.headers["x-pypi-last-serial"] == active.headers["x-pypi-last-serial"]
    assert archived.headers["etag"] != active.headers["etag"]
    assert (pypi.last_serial, len(pypi.journal)) == (serial, rows)
    assert '<meta name="pypi:project-status" content="archived">' in client.get("/simple/demo/").text
    assert "<a href=" in client.get("/simple/demo/").text
    root_after = client.get("/simple/", headers=JSON_ACCEPT)
    assert root_after.headers["etag"] == root_before.headers["etag"]  # the root cannot see an archive
    assert client.get("/pypi/Demo/json").content == api_before.content  # no archive indicator at all

    pypi.unarchive("demo")
    assert simple_json(client, "demo").content == active.content
    assert (pypi.last_serial, len(pypi.journal)) == (serial, rows)


def test_archive_transitions_follow_warehouse(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.archive("demo")
    with pytest.raises(ValueError, match="cannot archive"):
        pypi.archive("demo")
    pypi.quarantine("demo")  # unconditional: the archived state is lost
    assert simple_json(client, "demo").json()["project-status"]["status"] == "quarantined"
    with pytest.raises(ValueError, match="cannot archive"):
        pypi.archive("demo")
    pypi.clear_quarantine("demo")
    assert simple_json(client, "demo").json()["project-status"]["status"] == "active"  # not archived
    pypi.archive("demo")  # allowed from quarantine-exit
    assert simple_json(client, "demo").json()["project-status"]["status"] == "archived"
    pypi.unarchive("demo")
    with pytest.raises(ValueError, match="not archived"):
        pypi.unarchive("demo")


# --------------------------------------------------------------------------- removal and re-registration
def test_removed_project_on_every_endpoint(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.add_project("other", {"1": ["other-1.tar.gz"]})
    before = pypi.last_serial
    pypi.remove_project("demo")
    assert pypi.journal[-1] == ("Demo", None, int(T0), "remove project", before + 1)
    assert pypi.last_serial == before + 1
    for accept in (JSON_ACCEPT, {}):
        gone = client.get("/simple/demo/", headers=accept)
        assert gone.status_code == 404
        assert gone.headers["content-type"] == "text/plain"
        assert gone.content == b"404 Not Found"
    assert client.get("/simple/Demo/").status_code == 404  # no redirect for a name that no longer exists
    assert client.get("/pypi/Demo/json").content == b'{"message": "Not Found"}'
    assert client.get("/pypi/Demo/1.0/json").status_code == 404
    assert set(root_names(client)) == {"other"}
    assert root_html_names(client) == ["other"]
    rpc = rpc_proxy(client.base_url)
    assert "Demo" not in rpc.list_packages_with_serial()
    assert rpc.changelog_last_serial() == before + 1
    assert pypi.project("demo") is None
    with pytest.raises(KeyError):
        pypi.quarantine("demo")


def test_reregistered_project_is_new(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.remove_project("Demo")
    removed_serial = pypi.last_serial
    pypi.add_project("demo", {"6.6.6": ["demo-6.6.6.tar.gz"]})
    creates = rows_for(pypi, "create")
    assert [row[0] for row in creates] == ["Demo", "demo"]
    assert creates[-1][4] == removed_serial + 1
    body = simple_json(client, "demo").json()
    assert body["versions"] == ["6.6.6"]
    assert body["meta"]["_last-serial"] == pypi.last_serial > removed_serial
    assert root_names(client) == {"demo": pypi.last_serial}
    assert client.get("/pypi/demo/json").json()["info"]["version"] == "6.6.6"
    with pytest.raises(ValueError, match="already exists"):
        pypi.add_project("DEMO", {})


# --------------------------------------------------------------------------- release-level states
def test_release_removed(pypi: FakePyPI, client: httpx.Client) -> None:
    before = pypi.last_serial
    pypi.remove_release("demo", "1.0")
    assert pypi.journal[-1] == ("Demo", "1.0", int(T0), "remove release", before + 1)
    body = simple_json(client, "demo").json()
    assert body["versions"] == ["1.1"]
    assert [f["filename"] for f in body["files"]] == ["demo-1.1.tar.gz"]
    assert "demo-1.0.tar.gz" not in client.get("/simple/demo/").text
    api = client.get("/pypi/Demo/json").json()
    assert set(api["releases"]) == {"1.1"}
    assert client.get("/pypi/Demo/1.0/json").status_code == 404
    assert root_names(client)["Demo"] == before + 1


def test_file_removed(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.remove_file("demo", "1.1", "demo-1.1.tar.gz")
    assert pypi.journal[-1][1:4] == ("1.1", int(T0), "remove file demo-1.1.tar.gz")
    assert simple_json(client, "demo").json()["versions"] == ["1.0"]  # no files left -> not a version
    assert client.get("/pypi/Demo/json").json()["releases"]["1.1"] == []


@pytest.mark.parametrize(
    ("reason", "simple_value", "html_attr"),
    [("broken build", "broken build", 'data-yanked="broken build"'), (None, True, 'data-yanked=""')],
)
def test_yanked_release(
    pypi: FakePyPI, client: httpx.Client, reason: str | None, simple_value: object, html_attr: str
) -> None:
    before = pypi.last_serial
    pypi.yank("demo", "1.1", reason)
    assert pypi.journal[-1] == ("Demo", "1.1", int(T0), "yank release", before + 1)
    files = {f["filename"]: f for f in simple_json(client, "demo").json()["files"]}
    assert files["demo-1.1.tar.gz"]["yanked"] == simple_value
    assert files["demo-1.0.tar.gz"]["yanked"] is False
    html_line = next(line for line in client.get("/simple/demo/").text.splitlines() if ">demo-1.1.tar.gz<" in line)
    assert f'data-requires-python="&gt;=3.9" {html_attr} >demo-1.1.tar.gz</a><br />' in html_line
    api = client.get("/pypi/Demo/json").json()
    assert api["info"]["version"] == "1.0"  # the latest non-yanked release is shown
    assert api["info"]["yanked"] is False
    assert api["releases"]["1.1"][0]["yanked"] is True
    assert api["releases"]["1.1"][0]["yanked_reason"] == reason
    shown = client.get("/pypi/Demo/1.1/json").json()["info"]
    assert (shown["yanked"], shown["yanked_reason"]) == (True, reason)
    assert root_names(client)["Demo"] == before + 1
    pypi.unyank("demo", "1.1")
    assert rows_for(pypi, "unyank release")[-1][4] == pypi.last_serial
    assert client.get("/pypi/Demo/json").json()["info"]["version"] == "1.1"


def test_all_releases_yanked_still_shows_one(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.yank("demo", "1.0")
    pypi.yank("demo", "1.1")
    info = client.get("/pypi/Demo/json").json()["info"]
    assert (info["version"], info["yanked"]) == ("1.1", True)


def test_release_quarantined(pypi: FakePyPI, client: httpx.Client) -> None:
    before = pypi.last_serial
    pypi.quarantine_release("demo", "1.1")
    assert pypi.journal[-1] == ("Demo", "1.1", int(T0), "release quarantined", before + 1)
    body = simple_json(client, "demo").json()
    assert body["project-status"] == {"status": "active"}
    assert body["versions"] == ["1.0"]
    assert "demo-1.1.tar.gz" not in client.get("/simple/demo/").text
    api = client.get("/pypi/Demo/json").json()
    assert set(api["releases"]) == {"1.0"}
    assert api["info"]["version"] == "1.0"
    assert client.get("/pypi/Demo/1.1/json").status_code == 404
    assert root_names(client)["Demo"] == before + 1
    pypi.clear_release_quarantine("demo", "1.1")
    assert rows_for(pypi, "release quarantine cleared")[-1][4] == pypi.last_serial
    assert simple_json(client, "demo").json()["versions"] == ["1.0", "1.1"]


def test_all_releases_quarantined_and_no_releases(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.quarantine_release("demo", "1.0")
    pypi.quarantine_release("demo", "1.1")
    assert client.get("/pypi/Demo/json").content == b'{"message": "Not Found"}'
    body = simple_json(client, "demo").json()
    assert (body["project-status"], body["files"], body["versions"]) == ({"status": "active"}, [], [])
    assert "Demo" in root_names(client)
    pypi.add_project("empty", {})
    assert client.get("/pypi/empty/json").status_code == 404
    assert simple_json(client, "empty").json()["files"] == []


# --------------------------------------------------------------------------- serials and journal
def test_every_journaled_action_bumps_project_serial(pypi: FakePyPI) -> None:
    actions: list[tuple[str, tuple[Any, ...], int]] = [
        (
            "add_release",
            ("Demo", "2.0", ["demo-2.0.tar.gz", "demo-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"]),
            3,
        ),
        ("add_file", ("Demo", "2.0", "demo-2.0.zip"), 1),
        ("yank", ("Demo", "2.0", "bad"), 1),
        ("unyank", ("Demo", "2.0"), 1),
        ("quarantine_release", ("Demo", "2.0"), 1),
        ("clear_release_quarantine", ("Demo", "2.0"), 1),
        ("archive", ("Demo",), 0),
        ("unarchive", ("Demo",), 0),
        ("quarantine", ("Demo",), 1),
        ("clear_quarantine", ("Demo",), 1),
        ("remove_file", ("Demo", "2.0", "demo-2.0.zip"), 1),
        ("remove_release", ("Demo", "2.0"), 1),
    ]
    for method, args, rows in actions:
        serial_before, length_before = pypi.last_serial, len(pypi.journal)
        getattr(pypi, method)(*args)
        assert len(pypi.journal) == length_before + rows, method
        assert pypi.last_serial == serial_before + rows, method
        assert pypi.project("demo").last_serial == pypi.last_serial, method  # type: ignore[union-attr]
    assert [row[4] for row in pypi.journal] == list(range(START + 1, pypi.last_serial + 1))
    uploads = [row[3] for row in pypi.journal[:6]]
    assert uploads == [
        "create",
        "new release",
        "add source file demo-1.0.tar.gz",
        "add py3 file demo-1.0-py3-none-any.whl",
        "new release",
        "add source file demo-1.1.tar.gz",
    ]
    assert "add cp311 file demo-2.0-cp311-cp311-manylinux_2_17_x86_64.whl" in {row[3] for row in pypi.journal}


_ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["quarantine", "clear", "archive", "unarchive", "yank", "unyank", "rq", "crq", "remove", "add"]
        ),
        st.sampled_from(["alpha", "Beta", "gamma"]),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ACTIONS)
def test_journal_invariants_hold_for_any_action_sequence(actions: list[tuple[str, str]]) -> None:
    pypi = FakePyPI(start_serial=500, clock=Clock())
    calls: dict[str, Callable[[str], object]] = {
        "quarantine": lambda n: pypi.quarantine(n),
        "clear": lambda n: pypi.clear_quarantine(n),
        "archive": lambda n: pypi.archive(n),
        "unarchive": lambda n: pypi.unarchive(n),
        "yank": lambda n: pypi.yank(n, "1.0"),
        "unyank": lambda n: pypi.unyank(n, "1.0"),
        "rq": lambda n: pypi.quarantine_release(n, "1.0"),
        "crq": lambda n: pypi.clear_release_quarantine(n, "1.0"),
        "remove": lambda n: pypi.remove_project(n),
        "add": lambda n: pypi.add_project(n, {"1.0": [f"{n.lower()}-1.0.tar.gz"]}),
    }
    for name in ("alpha", "Beta", "gamma"):
        pypi.add_project(name, {"1.0": [f"{name.lower()}-1.0.tar.gz"]})
    for action, name in actions:
        before = (pypi.last_serial, len(pypi.journal))
        try:
            calls[action](name)
        except (KeyError, ValueError):
            assert (pypi.last_serial, len(pypi.journal)) == before  # refused actions leave no trace
    serials = [row[4] for row in pypi.journal]
    assert serials == list(range(501, pypi.last_serial + 1))
    root = json.loads(pypi.render("/simple/", SIMPLE_JSON).body)
    listed = {p["name"]: p["_last-serial"] for p in root["projects"]}
    for name in ("alpha", "Beta", "gamma"):
        project = pypi.project(name)
        if project is None:
            assert name not in listed
            assert pypi.render(f"/simple/{name.lower()}/").status == 404
            continue
        last_row = max(row[4] for row in pypi.journal if row[0] == name)
        assert project.last_serial == last_row
        assert (name in listed) == (project.status != "quarantined")
        detail = json.loads(pypi.render(f"/simple/{name.lower()}/", SIMPLE_JSON).body)
        assert detail["project-status"]["status"] == project.status
        assert detail["meta"]["_last-serial"] == last_row


# --------------------------------------------------------------------------- HTTP conventions
def test_etag_and_conditional_get(pypi: FakePyPI, client: httpx.Client) -> None:
    for path, headers in (
        ("/simple/demo/", JSON_ACCEPT),
        ("/simple/demo/", {}),
        ("/simple/", JSON_ACCEPT),
        ("/pypi/Demo/json", {}),
    ):
        first = client.get(path, headers=headers)
        tag = first.headers["etag"]
        assert re.fullmatch(r'"[A-Za-z0-9+/]{22}"', tag)
        again = client.get(path, headers={**headers, "If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == tag
        weak = client.get(path, headers={**headers, "If-None-Match": f'"other", W/{tag}'})
        assert weak.status_code == 304
        assert client.get(path, headers={**headers, "If-None-Match": '"nope"'}).status_code == 200
    tag = simple_json(client, "demo").headers["etag"]
    pypi.yank("demo", "1.0")
    changed = client.get("/simple/demo/", headers={**JSON_ACCEPT, "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag


def test_head_has_headers_but_no_body(client: httpx.Client) -> None:
    head = client.head("/simple/demo/", headers=JSON_ACCEPT)
    get = simple_json(client, "demo")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-length"] == str(len(get.content))


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("application/json", "text/html"),
        ("application/vnd.pypi.simple.v1+json", SIMPLE_JSON),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        (  # what pip sends
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01",
            SIMPLE_JSON,
        ),
        ("text/html, application/vnd.pypi.simple.v1+json", "text/html"),
        ("application/vnd.pypi.simple.v1+json;q=0.5, text/html;q=0.1", SIMPLE_JSON),
        ("application/vnd.pypi.simple.v1+json;q=0", "text/html"),
        ("application/vnd.pypi.simple.latest+json", "text/html"),
        ("*/*", "text/html"),
        ("application/*", "application/vnd.pypi.simple.v1+html"),
        ("not a media type", "text/html"),
    ],
)
def test_content_negotiation(client: httpx.Client, accept: str | None, expected: str) -> None:
    assert select_content_type(accept) == expected
    headers = {"Accept": accept} if accept is not None else {}
    for path in ("/simple/demo/", "/simple/"):
        response = client.get(path, headers=headers)
        assert response.headers["content-type"] == expected
        assert response.headers["vary"] == "Accept"
        if expected == SIMPLE_JSON:
            assert response.json()["meta"]["api-version"] == "1.4"
        else:
            assert response.text.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple/Demo/", "/simple/demo/"),
        ("/simple/DEMO/", "/simple/demo/"),
        ("/simple/demo", "/simple/demo/"),
        ("/simple", "/simple/"),
        ("/pypi/demo/json", "/pypi/Demo/json"),
        ("/pypi/DEMO/1.0/json", "/pypi/Demo/1.0/json"),
    ],
)
def test_non_canonical_urls_redirect(client: httpx.Client, path: str, location: str) -> None:
    response = client.get(path)
    assert response.status_code == 301
    assert response.headers["location"] == location


def test_redirects_lead_to_the_page(client: httpx.Client) -> None:
    response = client.get("/simple/Demo", headers=JSON_ACCEPT, follow_redirects=True)
    assert response.status_code == 200 and response.json()["name"] == "demo"
    assert [r.status_code for r in response.history] == [301, 301]
    assert client.get("/simple/Nope/").status_code == 404
    assert client.get("/elsewhere").status_code == 404


# --------------------------------------------------------------------------- faults
def test_fault_429_then_recovers(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.inject(Fault(kind="429", path_prefix="/simple/", count=2, retry_after=1.0))
    assert client.get("/pypi/Demo/json").status_code == 200  # other paths unaffected
    for _ in range(2):
        limited = client.get("/simple/demo/")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
    assert client.get("/simple/demo/").status_code == 200
    statuses = [status for _, path, status in pypi.requests if path == "/simple/demo/"]
    assert statuses == [429, 429, 200]
    assert pypi.pending_faults == []


@pytest.mark.parametrize(
    ("kind", "retry_after", "header"), [("500", None, None), ("503", 2.5, "2.5"), ("503", None, None)]
)
def test_fault_5xx(
    pypi: FakePyPI, client: httpx.Client, kind: str, retry_after: float | None, header: str | None
) -> None:
    pypi.inject(Fault(kind=kind, retry_after=retry_after))  # type: ignore[arg-type]
    failed = client.get("/simple/")
    assert failed.status_code == int(kind)
    assert failed.headers.get("retry-after") == header
    assert client.get("/simple/").status_code == 200


def test_fault_slow(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.inject(Fault(kind="slow", path_prefix="/pypi/", delay=0.4))
    started = time.perf_counter()
    assert client.get("/pypi/Demo/json").status_code == 200
    assert time.perf_counter() - started >= 0.4
    started = time.perf_counter()
    client.get("/pypi/Demo/json")
    assert time.perf_counter() - started < 0.4


def test_fault_slow_trips_client_timeout(pypi: FakePyPI) -> None:
    pypi.inject(Fault(kind="slow", delay=0.5))
    with (
        pypi.serve() as url,
        httpx.Client(base_url=url, timeout=0.1) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.get("/simple/")


def test_fault_truncate(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.inject(Fault(kind="truncate", path_prefix="/simple/demo/"))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        simple_json(client, "demo")
    assert simple_json(client, "demo").status_code == 200


def test_fault_content_type(pypi: FakePyPI, client: httpx.Client) -> None:
    real = simple_json(client, "demo")
    pypi.inject(Fault(kind="content-type", content_type="text/plain; charset=utf-8"))
    wrong = simple_json(client, "demo")
    assert wrong.headers["content-type"] == "text/plain; charset=utf-8"
    assert wrong.content == real.content


def test_fault_stale_serves_previous_page_and_serial(pypi: FakePyPI, client: httpx.Client) -> None:
    old_detail = simple_json(client, "demo")
    old_root = client.get("/simple/", headers=JSON_ACCEPT)
    pypi.quarantine("demo")
    pypi.inject(Fault(kind="stale", path_prefix="/simple/", count=2))
    stale_detail = simple_json(client, "demo")
    assert stale_detail.content == old_detail.content
    assert stale_detail.headers["x-pypi-last-serial"] == old_detail.headers["x-pypi-last-serial"]
    stale_root = client.get("/simple/", headers=JSON_ACCEPT)
    assert stale_root.content == old_root.content  # still lists the quarantined project
    assert int(stale_root.headers["x-pypi-last-serial"]) == pypi.last_serial - 1
    assert "Demo" not in root_names(client)


def test_fault_stale_without_having_fetched_before(pypi: FakePyPI, client: httpx.Client) -> None:
    serial = pypi.last_serial
    pypi.remove_project("demo")  # never fetched before: the previous version is still reconstructed
    pypi.inject(Fault(kind="stale", count=3))
    assert simple_json(client, "demo").json()["meta"]["_last-serial"] == serial
    assert client.get("/pypi/Demo/json").status_code == 200
    assert root_names(client) == {"Demo": serial}
    assert client.get("/pypi/Demo/json").status_code == 404


def test_fault_xmlrpc(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.inject(Fault(kind="xmlrpc-fault", retry_after=7))
    assert client.get("/simple/").status_code == 200  # HTTP requests do not consume it
    rpc = rpc_proxy(client.base_url)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        rpc.changelog_last_serial()
    assert caught.value.faultCode == -32500
    assert re.search(r"Limit may reset in (\d+) seconds\.", caught.value.faultString).group(1) == "7"  # type: ignore[union-attr]
    assert rpc.changelog_last_serial() == pypi.last_serial


def test_unknown_fault_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault(kind="teapot")  # type: ignore[arg-type]


def test_requests_log_and_reset(pypi: FakePyPI, client: httpx.Client) -> None:
    client.get("/simple/")
    client.get("/simple/nope/")
    client.post("/pypi", content=xmlrpc.client.dumps((), "changelog_last_serial"))
    assert pypi.requests == [("GET", "/simple/", 200), ("GET", "/simple/nope/", 404), ("POST", "/pypi", 200)]
    pypi.reset_requests()
    assert pypi.requests == []


def test_requests_log_keeps_only_the_most_recent(clock: Clock) -> None:
    # A long `qwatch up --demo --churn` serves ~2,000 requests a minute: the log must not grow with the run.
    pypi = FakePyPI(clock=clock, request_log_limit=3)
    with pypi.serve() as base_url, httpx.Client(base_url=base_url, timeout=20) as http:
        for i in range(10):
            http.get(f"/simple/p{i}/")
    assert pypi.requests == [("GET", f"/simple/p{i}/", 404) for i in (7, 8, 9)]
    with pytest.raises(ValueError, match="request_log_limit"):
        FakePyPI(request_log_limit=0)


# --------------------------------------------------------------------------- XML-RPC
def test_xmlrpc_changelog_and_nil(pypi: FakePyPI, client: httpx.Client) -> None:
    pypi.add_project("evil", {"0.1": ["evil-0.1.tar.gz"]})
    mark = pypi.last_serial
    pypi.quarantine_release("evil", "0.1")
    pypi.remove_project("evil")
    rpc = rpc_proxy(client.base_url)
    assert rpc.changelog_last_serial() == pypi.last_serial
    assert rpc.changelog_since_serial(mark) == [
        ["evil", "0.1", int(T0), "release quarantined", mark + 1],
        ["evil", None, int(T0), "remove project", mark + 2],
    ]
    assert rpc.changelog_since_serial(pypi.last_serial) == []
    raw = client.post("/pypi", content=xmlrpc.client.dumps((mark,), "changelog_since_serial"))
    assert raw.headers["content-type"] == "text/xml"
    assert "<nil/>" in raw.text
    whole = rpc.changelog_since_serial(0)
    assert [tuple(r) for r in whole] == list(pypi.journal)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        rpc.package_releases("demo")
    assert "RuntimeError" in caught.value.faultString
    with pytest.raises(xmlrpc.client.Fault) as unknown:
        rpc.no_such_method()
    assert unknown.value.faultCode == -32601


def test_xmlrpc_paging_with_small_page(clock: Clock) -> None:
    pypi = FakePyPI(start_serial=0, clock=clock, changelog_page_size=4)
    for i in range(5):
        pypi.add_project(f"p{i}", {})
    pypi.quarantine("p3")
    with pypi.serve() as url:
        rpc = rpc_proxy(url)
        seen: list[list[Any]] = []
        since = 0
        while page := rpc.changelog_since_serial(since):
            assert len(page) <= 4
            seen += page
            since = page[-1][4]
        assert [row[4] for row in seen] == list(range(1, 7))
        assert rpc.list_packages_with_serial() == {"p0": 1, "p1": 2, "p2": 3, "p3": 6, "p4": 5}


def test_xmlrpc_default_page_is_50000(clock: Clock) -> None:
    pypi = FakePyPI(clock=clock)
    pypi.generate(50_010)
    with pypi.serve() as url:
        rpc = rpc_proxy(url)
        first = rpc.changelog_since_serial(1000)
        assert len(first) == 50_000
        assert first[0] == ["pkg-00000", None, int(T0), "create", 1001]
        assert len(rpc.changelog_since_serial(first[-1][4])) == 10


def test_xmlrpc_rate_limit(clock: Clock) -> None:
    pypi = FakePyPI(clock=clock, xmlrpc_rate_limit=2)
    with pypi.serve() as url:
        rpc = rpc_proxy(url)
        assert rpc.changelog_last_serial() == 1000
        clock.now += 600
        assert rpc.changelog_last_serial() == 1000
        with pytest.raises(xmlrpc.client.Fault) as caught:
            rpc.changelog_last_serial()
        assert caught.value.faultCode == -32500
        assert caught.value.faultString == (
            "HTTPTooManyRequests: The action could not be performed because there were too many requests by "
            "the client. Limit may reset in 3000 seconds."
        )
        clock.now += 3001  # the first call left the one-hour window
        assert rpc.changelog_last_serial() == 1000


# --------------------------------------------------------------------------- timeline, CLI, server lifecycle
def test_timeline_plays_in_order(pypi: FakePyPI, client: httpx.Client) -> None:
    thread = pypi.run_timeline(
        [
            (0.10, "quarantine", "demo"),
            (0.00, "add_project", "evil", {"0.1": ["evil-0.1.tar.gz"]}),
            (0.15, "clear_quarantine", "demo"),
            (0.20, "yank", "demo", "1.1", "oops"),
            (0.25, "archive", "nope"),
        ],
        speed=2.0,
    )
    thread.join(timeout=5)
    assert not thread.is_alive()
    actions = [row[3] for row in pypi.journal][-6:]
    assert actions == [
        "create",
        "new release",
        "add source file evil-0.1.tar.gz",
        "project quarantined",
        "project quarantine cleared",
        "yank release",
    ]
    assert len(pypi.timeline_errors) == 1 and isinstance(pypi.timeline_errors[0], KeyError)
    assert simple_json(client, "evil").status_code == 200


def test_timeline_validation_and_stop(pypi: FakePyPI) -> None:
    with pytest.raises(ValueError, match="cannot be used"):
        pypi.run_timeline([(0, "stop")])
    with pytest.raises(ValueError, match="speed"):
        pypi.run_timeline([(0, "quarantine", "demo")], speed=0)
    pypi.start()
    thread = pypi.run_timeline([(30.0, "quarantine", "demo")])
    pypi.stop()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert pypi.project("demo").status == "active"  # type: ignore[union-attr]


def test_demo_timeline_is_valid(clock: Clock) -> None:
    pypi = FakePyPI(clock=clock)
    install_demo(pypi)
    thread = pypi.run_timeline(DEMO_TIMELINE, speed=1000.0)
    thread.join(timeout=5)
    assert pypi.timeline_errors == []
    assert {row[3] for row in pypi.journal} >= {"project quarantined", "remove project", "yank release"}


def test_stop_cuts_kept_alive_connections(pypi: FakePyPI) -> None:
    url = pypi.start()
    with httpx.Client(base_url=url) as http:
        assert http.get("/simple/").status_code == 200
        pypi.stop()
        with pytest.raises(httpx.TransportError):
            http.get("/simple/")


def test_concurrent_reads_during_mutations(pypi: FakePyPI, client: httpx.Client) -> None:
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(30):
                body = client.get("/simple/", headers=JSON_ACCEPT).json()
                assert body["meta"]["_last-serial"] >= START
                simple_json(client, "demo").json()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(40):
        pypi.add_project(f"c{i}", {"1": [f"c{i}-1.tar.gz"]})
        pypi.quarantine(f"c{i}")
    for thread in threads:
        thread.join()
    assert errors == []
    assert root_names(client).keys() == {"Demo"}


def test_cli_help_and_serving() -> None:
    help_text = build_parser().format_help()
    assert "--demo-timeline" in help_text and "--port" in help_text
    process = subprocess.Popen(
        [sys.executable, "-m", "testing.fakepypi", "--port", "0", "--demo-timeline", "--speed", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        names = {p["name"] for p in httpx.get(url + "/simple/", headers=JSON_ACCEPT).json()["projects"]}
        assert "Demo" in names
    finally:
        process.terminate()
        process.wait(timeout=10)


# --------------------------------------------------------------------------- scale
def test_generate_800k_serves_root_json_fast(clock: Clock) -> None:
    pypi = FakePyPI(clock=clock)
    pypi.add_project("Aardvark", {"1.0": ["aardvark-1.0.tar.gz"]})
    started = time.perf_counter()
    names = pypi.generate(800_000)
    generate_seconds = time.perf_counter() - started
    pypi.quarantine(names[5])
    pypi.add_project("zulu", {})
    assert generate_seconds < 1.0
    assert len(names) == 800_000 and names[5] == "pkg-000005"
    with pypi.serve() as url, httpx.Client(base_url=url, timeout=30) as http:
        started = time.perf_counter()
        response = http.get("/simple/", headers=JSON_ACCEPT)
        first_seconds = time.perf_counter() - started
        body = response.json()
        assert len(body["projects"]) == 800_000 - 1 + 2
        assert body["projects"][0]["name"] == "Aardvark"
        assert body["projects"][1] == {"_last-serial": names.first_serial, "name": "pkg-000000"}
        assert body["projects"][-1]["name"] == "zulu"
        assert "pkg-000005" not in {p["name"] for p in body["projects"][:10]}
        assert body["meta"]["_last-serial"] == pypi.last_serial == 1000 + 3 + 800_000 + 1 + 1
        started = time.perf_counter()
        again = http.get("/simple/", headers={**JSON_ACCEPT, "If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
        assert time.perf_counter() - started < 0.5  # cached, not re-rendered
        assert simple_json(http, "pkg-799999").json()["meta"]["_last-serial"] == names.first_serial + 799_999
        assert simple_json(http, "pkg-000005").json()["project-status"]["status"] == "quarantined"
        assert len(pypi.journal) == 800_005
    assert first_seconds < 5.0


# --------------------------------------------------------------------------- helpers
def test_version_ordering_matches_packaging() -> None:
    ordered = [
        "0.9",
        "1.0.dev1",
        "1.0a1",
        "1.0a2.dev1",
        "1.0b1",
        "1.0rc1",
        "1.0",
        "1.0.post1",
        "1.0.1",
        "1.10",
        "2!0.1",
    ]
    shuffled = ordered[5:] + ordered[:5]
    assert sorted(shuffled, key=version_key) == ordered
    assert version_key("1.0") == version_key("1.0.0")
    assert version_key("not-a-version") < version_key("0.0.1")  # legacy versions sort first
