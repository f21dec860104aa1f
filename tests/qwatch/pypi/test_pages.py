"""The pure PyPI parsers against every real payload in ../shared/fixtures/pypi-pages, checked against FACTS.json.

FACTS.json was computed by an independent tool (the fixtures' ``tools/facts.py``), so these tests compare our
parsers with a second implementation on bodies neither was written for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingestors.pypi.parse_jsonapi import parse_json_api
from ingestors.pypi.parse_root import parse_root_html, parse_root_json, render_entry
from ingestors.pypi.parse_xmlrpc import limit_reset_seconds, parse_changelog, parse_last_serial
from qwatch.pypi.errors import PyPIParseError
from qwatch.pypi.model import ChangelogPage, RpcFault
from qwatch.pypi.names import normalize
from qwatch.pypi.pages import parse_project_html, parse_project_json
from qwatch.pypi.versions import canonical_version, sort_versions, version_from_filename


@pytest.fixture(scope="module")
def pages(shared_fixtures: Path) -> Path:
    return shared_fixtures / "pypi-pages"


@pytest.fixture(scope="module")
def facts(pages: Path) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((pages / "FACTS.json").read_text())
    return data


def _files(pages: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in pages.glob(f"{prefix}*") if p.suffix in (".json", ".html", ".xml"))


def _absent(value: Any) -> Any:
    return None if value == "ABSENT" else value


def test_every_fixture_is_covered(pages: Path, facts: dict[str, dict[str, Any]]) -> None:
    payloads = {p.name for p in pages.iterdir() if p.is_file() and p.name not in ("FACTS.json", "INDEX.md")}
    assert payloads == set(facts), "a payload without facts (or facts without a payload)"
    assert len(payloads) == 19


@pytest.mark.parametrize("prefix", ["A-", "B-"])
def test_json_api_fixtures(pages: Path, facts: dict[str, dict[str, Any]], prefix: str) -> None:
    for name in _files(pages, prefix):
        f = facts[name]
        project = parse_json_api((pages / name).read_bytes())
        assert project.name == f["name"], name
        assert normalize(project.name) == f.get("normalized_name", normalize(f["name"]))
        assert project.version == f["info_version"], name
        assert project.last_serial == _absent(f["last_serial"]), name
        assert len(project.urls) == f["urls_count"], name
        assert [u.filename for u in project.urls] == f["urls_filenames"], name
        assert [u.filename for u in project.urls if u.yanked] == f["urls_yanked"], name
        assert project.vulnerability_count == f.get("vulnerability_count"), name
        if f["releases_type"] != "dict":
            assert project.releases is None, f"{name}: an unknown release set must not look empty"
            continue
        assert project.releases is not None
        assert [r.version for r in project.releases] == f["release_versions_in_document_order"], name
        assert len(project.releases) == f["release_count"]
        assert sum(len(r.files) for r in project.releases) == f["file_count_in_releases"]
        assert [r.version for r in project.releases if not r.files] == f["releases_with_no_files"]
        assert all(r.first_upload is None for r in project.releases if not r.files)
        assert all(r.first_upload is not None for r in project.releases if r.files), name
        assert sorted(r.version for r in project.releases if r.yanked) == f["fully_yanked_versions"], name
        yanked_files = {
            fl.filename: {"reason": fl.yanked_reason, "version": r.version}
            for r in project.releases
            for fl in r.files
            if fl.yanked
        }
        assert yanked_files == f["yanked_files"], name
        for release in project.releases:
            if release.yanked:
                assert release.yanked_reason == f["yanked_files"][release.files[0].filename]["reason"]


def test_json_api_first_upload_is_the_earliest_file(pages: Path) -> None:
    project = parse_json_api((pages / "A-json-project-asgiref-large-yanked-from-fetchcode.json").read_bytes())
    assert project.releases is not None
    for release in project.releases:
        assert release.first_upload == min(fl.upload_time for fl in release.files if fl.upload_time is not None)
    legacy = parse_json_api((pages / "A-json-project-luigi-2017-legacy-fields-from-dependabot.json").read_bytes())
    assert legacy.releases is not None
    assert any(r.first_upload for r in legacy.releases), "naive upload_time must be read as UTC"


def test_simple_json_fixtures(pages: Path, facts: dict[str, dict[str, Any]]) -> None:
    names = [n for n in _files(pages, "C-") if facts[n]["kind"] == "project_detail"]
    assert len(names) == 4
    for name in names:
        f = facts[name]
        page = parse_project_json((pages / name).read_bytes())
        assert page.name == f["name"], name
        assert page.status == f["project_status_effective"], name
        assert page.status_reason == f["project_status_reason"], name
        assert page.api_version == f["api_version"], name
        assert page.last_serial == _absent(f["meta_last_serial"]), name
        assert len(page.files) == f["file_count"], name
        expected_versions = f["versions"] if f["versions_key_present"] else f["versions_derived_sorted"]
        assert list(page.versions) == expected_versions, name
        by_file = {fl.filename: fl for fl in page.files}
        assert {n: fl.requires_python for n, fl in by_file.items()} == f["requires_python_by_file"], name
        assert sorted(n for n, fl in by_file.items() if fl.core_metadata) == sorted(f["files_with_core_metadata"])
        assert sorted(n for n, fl in by_file.items() if fl.provenance) == sorted(f["files_with_provenance"])
        assert sorted(n for n, fl in by_file.items() if fl.version is None) == sorted(
            f["files_without_derivable_version"]
        )
        yanked = {n: (fl.yanked_reason if fl.yanked_reason else True) for n, fl in by_file.items() if fl.yanked}
        assert yanked == f["yanked_files"], name
        assert sum(1 for fl in page.files if fl.upload_time is not None) == f["files_with_upload_time"], name
        fully = sorted(
            {fl.version for fl in page.files if fl.yanked} - {fl.version for fl in page.files if not fl.yanked}
        )
        assert list(page.yanked_versions) == fully, name


def test_simple_html_fixtures(pages: Path, facts: dict[str, dict[str, Any]]) -> None:
    names = [n for n in _files(pages, "D-") if facts[n]["kind"] == "project_detail"]
    assert len(names) == 5
    for name in names:
        f = facts[name]
        page = parse_project_html((pages / name).read_bytes())
        assert page.name == f["project_from_title"], name
        assert page.status == f["project_status_effective"], name
        assert page.status_reason == f["project_status_reason"], name
        assert page.api_version == f["repository_version"], name
        assert page.last_serial == f["serial_comment"], name
        assert [fl.filename for fl in page.files] == f["filenames"], name
        assert len(page.files) == f["anchor_count"]
        assert list(page.versions) == f["versions_derived_sorted"], name
        assert list(page.yanked_versions) == f["fully_yanked_versions_derived"], name
        by_file = {fl.filename: fl for fl in page.files}
        assert {n: fl.yanked_reason or "" for n, fl in by_file.items() if fl.yanked} == f["yanked_files"], name
        requires = {n: fl.requires_python for n, fl in by_file.items() if fl.requires_python is not None}
        assert requires == f["requires_python_by_file"], name
        assert sorted(n for n, fl in by_file.items() if fl.core_metadata) == sorted(f["files_with_core_metadata"])
        assert sorted(n for n, fl in by_file.items() if fl.provenance) == sorted(f["files_with_provenance"])
        assert sorted(n for n, fl in by_file.items() if fl.version is None) == sorted(
            f["files_without_derivable_version"]
        )


def test_root_json_fixture(pages: Path, facts: dict[str, dict[str, Any]]) -> None:
    name = "C-simple-json-root-index-trimmed-from-pypiwrap.json"
    f = facts[name]
    root = parse_root_json((pages / name).read_bytes())
    assert root.serial == f["meta_last_serial"]
    assert root.api_version == f["api_version"]
    assert len(root) == f["project_count"]
    mapping = root.to_mapping()
    assert mapping == f["per_project_last_serial"]
    assert sorted(normalize(n) for n in mapping) == sorted(f["normalized_names"])
    assert max(v for v in mapping.values() if v is not None) == f["max_project_serial"]


def test_root_json_fast_path_matches_slow_path() -> None:
    projects = [("Demo", 31000002), ("other_pkg", 29999999), ("ünïcode", 5)]
    compact = (
        json.dumps(
            {
                "meta": {"_last-serial": 31000010, "api-version": "1.4"},
                "projects": [{"_last-serial": s, "name": n} for n, s in projects],
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        + b"\n"
    )
    pretty = json.dumps(
        {"projects": [{"name": n, "_last-serial": s} for n, s in projects], "meta": {"_last-serial": 31000010}},
        indent=2,
    ).encode()
    fast, slow = parse_root_json(compact), parse_root_json(pretty)
    assert fast.entries == slow.entries == frozenset(render_entry(n, s) for n, s in projects)
    assert fast.serial == slow.serial == 31000010
    empty = parse_root_json(b'{"meta":{"_last-serial":7,"api-version":"1.4"},"projects":[]}\n')
    assert len(empty) == 0 and empty.serial == 7


def test_root_json_truncated_is_an_error() -> None:
    body = b'{"meta":{"_last-serial":7,"api-version":"1.4"},"projects":[{"_last-serial":1,"name":"a"},{"_last-ser'
    with pytest.raises(PyPIParseError) as err:
        parse_root_json(body)
    assert err.value.reason == "truncated"


def test_root_html_fixtures(pages: Path, facts: dict[str, dict[str, Any]]) -> None:
    name = "D-simple-html-root-index-empty-warehouse-frozen-snapshot.html"
    root = parse_root_html((pages / name).read_bytes())
    assert len(root) == facts[name]["anchor_count"] == 0
    assert root.api_version == facts[name]["repository_version"]
    html = (
        b'<html><body>\n<a href="/simple/demo/">Demo</a>\n<a href="/simple/a-b/">A&amp;B_c</a>\n'
        b'<a href="/simple/x/"></a>'
    )
    assert parse_root_html(html).to_mapping() == {"Demo": None, "A&B_c": None, "x": None}


def test_xmlrpc_changelog_fixture(pages: Path, facts: dict[str, dict[str, Any]]) -> None:
    name = "E-xmlrpc-changelog_since_serial-from-depinder.xml"
    f = facts[name]
    page = parse_changelog((pages / name).read_bytes())
    assert isinstance(page, ChangelogPage)
    assert page.bad_rows == ()
    rows = [[r.name, r.version, r.timestamp // 1000, r.action, r.serial] for r in page.rows]
    assert rows == f["rows_name_version_timestamp_action_serial"]
    assert all(r.timestamp % 1000 == 0 for r in page.rows), "timestamps are converted to milliseconds"
    assert [r.serial for r in page.rows] == f["serials"]
    assert max(r.serial for r in page.rows) == f["max_serial"]
    assert sorted({normalize(r.name) for r in page.rows}) == f["normalized_names_touched"]
    assert [r.name for r in page.rows if r.version is None] == f["rows_with_nil_version"]


def test_xmlrpc_faults_and_bad_rows() -> None:
    fault = (
        b"<?xml version='1.0'?><methodResponse><fault><value><struct>"
        b"<member><name>faultCode</name><value><int>-32500</int></value></member>"
        b"<member><name>faultString</name><value><string>HTTPTooManyRequests: The action could not be "
        b"performed because there were too many requests by the client. Limit may reset in 42 seconds."
        b"</string></value></member></struct></value></fault></methodResponse>"
    )
    result = parse_changelog(fault)
    assert isinstance(result, RpcFault) and result.rate_limited
    assert limit_reset_seconds(result.message) == 42
    assert isinstance(parse_last_serial(fault), RpcFault)
    mixed = (
        b"<?xml version='1.0'?><methodResponse><params><param><value><array><data>"
        b"<value><array><data><value><string>Demo</string></value><value><nil/></value>"
        b"<value><int>1767323045</int></value><value><string>project quarantined</string></value>"
        b"<value><int>31000003</int></value></data></array></value>"
        b"<value><array><data><value><string>odd</string></value></data></array></value>"
        b"</data></array></value></param></params></methodResponse>"
    )
    page = parse_changelog(mixed)
    assert isinstance(page, ChangelogPage)
    assert [(r.name, r.version, r.action, r.serial, r.timestamp) for r in page.rows] == [
        ("Demo", None, "project quarantined", 31000003, 1767323045000)
    ]
    assert len(page.bad_rows) == 1
    last = b"<?xml version='1.0'?><methodResponse><params><param><value><int>99</int></value></param></params>"
    last += b"</methodResponse>"
    assert parse_last_serial(last) == 99
    for bad in (b"", b"<methodResponse>", b"not xml at all", b"<?xml version='1.0'?><x/>"):
        with pytest.raises(PyPIParseError):
            parse_changelog(bad)


@pytest.mark.parametrize(
    ("status_json", "expected"),
    [
        ('"project-status":{"status":"quarantined"}', "quarantined"),
        ('"project-status":{"state":"archived"}', "archived"),  # PEP 792 prose says "state"
        ('"project-status":"Archived"', "archived"),
        ('"project-status":{}', "active"),
        ('"project-status":null', "active"),
        ('"meta":{"api-version":"1.4","project-status":{"status":"quarantined"}}', "quarantined"),  # spec wart
        ('"meta":{"api-version":"1.1"}', "active"),
    ],
)
def test_simple_json_status_leniency(status_json: str, expected: str) -> None:
    body = '{"name":"demo","files":[],"versions":["1.0"],' + status_json + "}"
    page = parse_project_json(body.encode())
    assert page.status == expected
    assert page.versions == (), "a listed version without any file is not installable"


def test_simple_json_unknown_status_and_shape_errors() -> None:
    with pytest.raises(PyPIParseError) as err:
        parse_project_json(b'{"name":"demo","files":[],"project-status":{"status":"frozen"}}')
    assert err.value.reason == "schema"
    for body, reason in [
        (b"[]", "schema"),
        (b'{"files":[]}', "schema"),
        (b'{"name":"demo","files":[{"filename":"demo-1.0.tar.gz"', "truncated"),
        (b'{"name":"demo" "files":[]}', "malformed-json"),
        (b"", "truncated"),
        (b"\xff\xfe{}", "malformed-json"),
    ]:
        with pytest.raises(PyPIParseError) as err:
            parse_project_json(body)
        assert err.value.reason == reason, body


def test_simple_html_needs_markup() -> None:
    with pytest.raises(PyPIParseError):
        parse_project_html(b"404 Not Found")
    quarantined = (
        b'<!DOCTYPE html>\n<html lang="en">\n  <head>\n    <meta name="pypi:repository-version" content="1.4">\n'
        b'<meta name="pypi:project-status" content="quarantined">    <title>Links for demo</title>\n  </head>\n'
        b"  <body>\n    <h1>Links for demo</h1>\n</body>\n</html>\n<!--SERIAL 31000003-->"
    )
    page = parse_project_html(quarantined)
    assert (page.name, page.status, page.last_serial, page.versions) == ("demo", "quarantined", 31000003, ())


def test_versions_from_filenames() -> None:
    assert version_from_filename("demo-1.0.tar.gz") == "1.0"
    assert version_from_filename("demo_pkg-2.0rc1-py3-none-any.whl") == "2.0rc1"
    assert version_from_filename("demo-1.0-1-py3-none-any.whl") == "1.0"  # build tag
    assert version_from_filename("numpy-1.5.0.win32-py2.6.exe") is None
    assert version_from_filename("luigi-1.0.9.macosx-10.7-intel.tar.gz") is None
    assert canonical_version("1.0-RC1") == "1.0rc1"
    assert canonical_version("1!2.0.post3.dev4+Ubuntu-1") == "1!2.0.post3.dev4+ubuntu.1"
    assert sort_versions(["1.0", "1.0.dev0", "1.0a1", "1.0.post1", "0.9", "weird"]) == (
        "weird",
        "0.9",
        "1.0.dev0",
        "1.0a1",
        "1.0",
        "1.0.post1",
    )
