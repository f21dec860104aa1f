"""The pure cores: the OSV parser (on every real edge case) and the by-id change classification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwatch.openssf.classify import Location, classify, classify_one, effective
from qwatch.openssf.osv import (
    ParsedReport,
    Pending,
    ReportParseError,
    in_scope,
    is_withdrawn,
    normalize_package,
    parse_report,
    ranges_mean_all_versions,
)


def _edge(shared_fixtures: Path, rel: str) -> tuple[bytes, str]:
    path = shared_fixtures / "ossf-sample" / "edge-cases" / rel
    return path.read_bytes(), rel


def _report(shared_fixtures: Path, rel: str) -> ParsedReport:
    outcome = parse_report(*_edge(shared_fixtures, rel))
    assert isinstance(outcome, ParsedReport), outcome
    return outcome


def test_every_edge_case_is_a_report_a_pending_file_or_a_typed_error(shared_fixtures: Path) -> None:
    root = shared_fixtures / "ossf-sample" / "edge-cases"
    files = sorted(root.rglob("*.json"))
    assert len(files) == 20
    kinds: dict[str, str] = {}
    for file in files:
        rel = file.relative_to(root).as_posix()
        try:
            outcome = parse_report(file.read_bytes(), rel)
        except ReportParseError as exc:
            kinds[rel] = exc.reason
            continue
        kinds[rel] = "pending" if isinstance(outcome, Pending) else "report"
    assert kinds.pop("osv/malicious/vscode/EffetMer.darkgpt/MAL-0000.json") == "malformed-json"
    assert kinds.pop("osv/malicious/pypi/databasenaps/MAL-0000-kam193-dcdb5ffaca610378.json") == "pending"
    assert set(kinds.values()) == {"report"}


def test_baseline_and_all_versions_records(shared_fixtures: Path) -> None:
    bla = _report(shared_fixtures, "osv/malicious/pypi/123bla/MAL-2024-10238.json")
    assert (bla.report_id, bla.ecosystem, bla.package, bla.affected_versions) == (
        "MAL-2024-10238",
        "PyPI",
        "123bla",
        ("0.0.1",),
    )
    assert not bla.all_versions and bla.origins == ("ossf-package-analysis",) and bla.withdrawn is None
    pymocks = _report(shared_fixtures, "osv/malicious/pypi/pymocks/MAL-2022-7426.json")
    assert pymocks.all_versions and pymocks.affected_versions == () and pymocks.aliases == ("GHSA-8rgr-xgx4-q7jq",)
    assert pymocks.summary == "Malicious code in pymocks (PyPI)" and pymocks.published == "2022-08-30T19:37:30Z"


def test_bounded_ranges_are_not_all_versions(shared_fixtures: Path) -> None:
    solana = _report(shared_fixtures, "osv/malicious/npm/@solana/web3.js/MAL-2024-11183.json")
    assert not solana.all_versions and solana.package == "@solana/web3.js"
    vsx = _report(shared_fixtures, "osv/malicious/vscode:open-vsx.org/checkmarx.ast-results/MAL-2026-2231.json")
    assert not vsx.all_versions and len(vsx.affected_versions) == 21
    assert vsx.ecosystem == "VSCode:https://open-vsx.org"
    blocks = _report(shared_fixtures, "osv/malicious/npm/blocks-nextjs/MAL-2025-4425.json")
    assert blocks.all_versions and len(blocks.affected_versions) == 23  # one open range, one absurd one


def test_names_are_normalized_per_ecosystem(shared_fixtures: Path) -> None:
    nasrtox = _report(shared_fixtures, "osv/malicious/pypi/nasrtox/MAL-2024-1546.json")
    assert (nasrtox.package_name, nasrtox.package, nasrtox.origins) == ("Nasrtox", "nasrtox", ())  # origins: null
    nuget = _report(shared_fixtures, "osv/malicious/nuget/2captcһaapі/MAL-2024-3991.json")
    assert nuget.package == "2captcһaapі" and nuget.package_name == "2CaptcһaAPІ"
    popups = _report(shared_fixtures, "osv/malicious/nuget/rg.plugins.popups.net/MAL-2024-4628.json")
    assert popups.package == "rg.plugins.popups.net" and len(popups.affected_versions) == 386
    gem = _report(shared_fixtures, "osv/malicious/rubygems/activeadmin_globalize3-inputs/MAL-2024-6453.json")
    assert gem.package == "activeadmin_globalize3-inputs"
    crate = _report(shared_fixtures, "osv/malicious/crates.io/proc_macro1/MAL-2026-14338.json")
    assert (crate.package_name, crate.package, crate.origins) == ("proc-macro1", "proc_macro1", ())
    maven = _report(shared_fixtures, "osv/malicious/maven/io.github.leetcrunch:scribejava-core/MAL-2025-2552.json")
    assert maven.package == "io.github.leetcrunch:scribejava-core"
    go = _report(shared_fixtures, "osv/malicious/go/github.com/boltdb-go/bolt/MAL-2025-2545.json")
    assert go.package == "github.com/boltdb-go/bolt"
    assert normalize_package("PyPI", "Foo__Bar.baz-") == "foo-bar-baz-"
    assert normalize_package("npm", "@Scope/Name") == "@Scope/Name"


def test_withdrawn_by_directory_or_by_field(shared_fixtures: Path) -> None:
    path7 = "osv/withdrawn/pypi/fastapi/MAL-2026-4750.json"
    after = _report(shared_fixtures, path7)
    before = _report(shared_fixtures, "osv/malicious/pypi/fastapi/MAL-2026-4750.json")
    assert after.withdrawn == "2026-05-26T13:04:03Z" and before.withdrawn is None
    assert is_withdrawn(path7, after) and not is_withdrawn("osv/malicious/pypi/fastapi/MAL-2026-4750.json", before)
    assert is_withdrawn("osv/malicious/pypi/fastapi/MAL-2026-4750.json", after)  # field without the move
    react = _report(shared_fixtures, "osv/withdrawn/npm/react/MAL-2024-2929.json")
    assert react.origins == () and react.package == "react"  # no database_specific at all


@pytest.mark.parametrize(
    ("name", "doc", "why"),
    [
        ("MAL-0000-kam193-0123456789abcdef.json", {"id": "MAL-2026-1"}, "pending file name"),
        ("MAL-2026-9.json", {"id": ""}, "empty id"),
        ("MAL-2026-9.json", {"summary": "hand-made"}, "missing id"),
    ],
)
def test_pending_files(name: str, doc: dict[str, object], why: str) -> None:
    assert parse_report(json.dumps(doc).encode(), f"osv/malicious/pypi/x/{name}") == Pending(why)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"id": "MAL-1",}', "malformed-json"),
        (b"\xff\xfe\x00", "malformed-json"),
        (b"[" * 100_000, "malformed-json"),
        (b"[]", "schema"),
        (b'{"id": 5}', "schema"),
        (b'{"id": "MAL 1"}', "schema"),
        (b'{"id": "MAL-1"}', "schema"),
        (b'{"id": "MAL-1", "affected": [{"package": {"ecosystem": "PyPI", "name": ""}}]}', "schema"),
        (b'{"id": "MAL-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"}, "versions": [1]}]}', "schema"),
        (
            b'{"id": "MAL-1", "summary": "\\ud800", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"}}]}',
            "schema",
        ),
        (b"{" + b" " * 200_000 + b"}", "oversized"),
    ],
)
def test_bad_input_is_a_typed_error(data: bytes, reason: str) -> None:
    with pytest.raises(ReportParseError) as err:
        parse_report(data, "osv/malicious/pypi/a/MAL-1.json", max_bytes=150_000)
    assert err.value.reason == reason


def test_unknown_fields_are_ignored_and_entries_of_one_package_merge() -> None:
    doc = {
        "id": "MAL-2026-5",
        "future_field": {"x": [1, 2]},
        "affected": [
            {"package": {"ecosystem": "PyPI", "name": "Evil_Pkg"}, "versions": ["1.0", "1.1"], "new": True},
            {
                "package": {"ecosystem": "PyPI", "name": "Evil_Pkg"},
                "versions": ["1.1", "2.0"],
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"limit": "*"}]}],
            },
        ],
        "database_specific": {"malicious-packages-origins": [{"source": "a"}, {"source": "b"}, {"source": "a"}, {}]},
    }
    report = parse_report(json.dumps(doc).encode(), "osv/malicious/pypi/evil-pkg/MAL-2026-5.json")
    assert isinstance(report, ParsedReport)
    assert report.affected_versions == ("1.0", "1.1", "2.0") and report.all_versions
    assert report.package == "evil-pkg" and report.origins == ("a", "b")


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        (None, False),
        ([], False),
        ([{"type": "SEMVER", "events": [{"introduced": "0"}]}], True),
        ([{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2"}]}], False),
        ([{"type": "SEMVER", "events": [{"introduced": "0"}, {"last_affected": "1.2"}]}], False),
        ([{"type": "SEMVER", "events": [{"introduced": "0"}, {"limit": "3.0"}]}], False),
        ([{"type": "SEMVER", "events": [{"introduced": "1.0"}]}], False),
        ([{"events": [{"introduced": "1.0"}, {"fixed": "2"}]}, {"events": [{"introduced": "0"}]}], True),
    ],
)
def test_all_versions_means_an_open_range_from_zero(ranges: object, expected: bool) -> None:
    assert ranges_mean_all_versions(ranges) is expected


def test_scope() -> None:
    assert in_scope("osv/malicious/pypi/a/MAL-2024-1.json")
    assert in_scope("osv/withdrawn/npm/@s/n/MAL-2024-1.json")
    for path in (
        "osv/unmergable/pypi/a/MAL-0000-x.json",
        "osv/malicious/.id-allocator",
        "osv/malicious/README.md",
        "Downloads/osv/malicious/npm/a/MAL-2024-1.json",
        "osv/malicious/pypi/a/MAL-2024-1.json.bak",
    ):
        assert not in_scope(path), path


# -- classification ---------------------------------------------------------------------------------------------
A = (("PyPI", "a"),)
L1 = Location("osv/malicious/pypi/a/MAL-1.json", "b1", False, A)
L1_EDIT = Location("osv/malicious/pypi/a/MAL-1.json", "b2", False, A)
W1 = Location("osv/withdrawn/pypi/a/MAL-1.json", "b3", True, A)
MOVED = Location("osv/malicious/pypi/a_b/MAL-1.json", "b1", False, A)


@pytest.mark.parametrize(
    ("old", "new", "change"),
    [
        (None, L1, "added"),
        (None, W1, "withdrawn"),
        (L1, L1_EDIT, "modified"),
        (L1, W1, "withdrawn"),
        (W1, L1, "reinstated"),
        (L1, None, "deleted"),
        (W1, None, "deleted"),
        (L1, MOVED, None),
        (L1, L1, None),
        (None, None, None),
    ],
)
def test_classify_one(old: Location | None, new: Location | None, change: str | None) -> None:
    result = classify_one("MAL-1", old, new)
    assert [(c.change, c.package) for c in result] == ([] if change is None else [(change, ("PyPI", "a"))])


def test_rename_of_a_pending_file_is_one_added_and_duplicates_resolve_by_path_order() -> None:
    # The pending file has no id, so it is not in either view: the rename is just a new id.
    assert [(c.report_id, c.change) for c in classify({}, {"MAL-2": [L1]})] == [("MAL-2", "added")]
    # A live copy and a withdrawn copy: the live one (first in git order) speaks for the id.
    assert effective([W1, L1]) == L1
    # Dropping the live copy of a duplicated id is a withdrawal, not a deletion.
    assert [c.change for c in classify({"MAL-1": [L1, W1]}, {"MAL-1": [W1]})] == ["withdrawn"]
    # Adding a second copy with the same content changes nothing.
    assert classify({"MAL-1": [L1]}, {"MAL-1": [L1, MOVED]}) == []
