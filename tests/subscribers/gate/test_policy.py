"""The gate's pure policy core, table-driven: inventory + facts + now → findings and the exit code."""

from __future__ import annotations

import pytest

from subscribers.gate.facts import PackageFacts, ReportFact, Unverified, vkey, vkeys
from subscribers.gate.policy import Sources, evaluate
from subscribers.gate.soak import SoakPolicy, format_duration, parse_duration
from subscribers.inventory.lockfiles import Inventory, LockedPackage, PackageSource

HOUR = 3600 * 1000
NOW = 1_800_000_000_000
SOAK = SoakPolicy(frozenset({"urllib3"}), 72 * HOUR, 0)


def pkg(
    name: str,
    version: str | None = "1.0",
    kind: str = "pypi",
    deps: tuple[str, ...] = (),
    direct: bool = False,
    url: str | None = None,
) -> LockedPackage:
    return LockedPackage(name, name, version, PackageSource(kind, url), (), None, direct, deps)  # type: ignore[arg-type]


INV = Inventory(
    "uv.lock",
    "uv.lock",
    "app",
    (
        pkg("app", "0.1", "project", ("web",), True),
        pkg("web", "2.0", deps=("urllib3", "leaf"), direct=True),
        pkg("urllib3", "2.2.3"),
        pkg("leaf", "1.0"),
        pkg("private", "1.0", "index", url="https://corp.example/simple"),
        pkg("from-git", None, "git", url="https://github.com/x/y"),
    ),
)


def facts(
    name: str, status: str = "active", versions: tuple[str, ...] = ("1.0", "2.0", "2.2.3"), **kw: object
) -> PackageFacts:
    uploads = {vkey(v): NOW - 1000 * HOUR for v in versions}
    uploads.update(kw.pop("uploads", {}))  # type: ignore[call-overload]
    return PackageFacts(name, status, vkeys(versions), "pypi", first_upload=uploads, **kw)  # type: ignore[arg-type]


CORP = Sources(allowed_indexes=("https://corp.example/simple/",))
"""The user declared the private index (--allow-index): its package is set aside, not unverified."""


def clean() -> dict[str, PackageFacts | Unverified]:
    return {n: facts(n) for n in ("web", "urllib3", "leaf")}


CASES = [
    ("clean", {}, 0, []),
    ("quarantined transitive", {"leaf": facts("leaf", "quarantined", ())}, 1, [("leaf", "quarantined")]),
    ("removed", {"leaf": facts("leaf", "removed", ())}, 1, [("leaf", "removed")]),
    ("version gone", {"leaf": facts("leaf", versions=("0.9",))}, 1, [("leaf", "version-missing")]),
    (
        "release quarantined",
        {"leaf": facts("leaf", quarantined_versions=vkeys(["1.0"]))},
        1,
        [("leaf", "version-missing")],
    ),
    ("1.0.0 equals 1.0", {"leaf": facts("leaf", versions=("1.0.0",))}, 0, []),
    (
        "malicious affected",
        {"leaf": facts("leaf", reports=(ReportFact("MAL-1", ("1.0",)),))},
        1,
        [("leaf", "malicious")],
    ),
    ("malicious other version", {"leaf": facts("leaf", reports=(ReportFact("MAL-1", ("0.5",)),))}, 0, []),
    (
        "malicious all versions",
        {"leaf": facts("leaf", reports=(ReportFact("MAL-1", (), True),))},
        1,
        [("leaf", "malicious")],
    ),
    (
        "report scope unknown fails closed",
        {"leaf": facts("leaf", reports=(ReportFact("MAL-1", known=False),))},
        1,
        [("leaf", "malicious")],
    ),
    (
        "soak: listed and new",
        {"urllib3": facts("urllib3", uploads={vkey("2.2.3"): NOW - 2 * HOUR})},
        1,
        [("urllib3", "soak-hold")],
    ),
    ("soak: listed and old enough", {"urllib3": facts("urllib3", uploads={vkey("2.2.3"): NOW - 73 * HOUR})}, 0, []),
    ("soak: unlisted and new", {"leaf": facts("leaf", uploads={vkey("1.0"): NOW - HOUR})}, 0, []),
    ("soak: no upload time", {"urllib3": PackageFacts("urllib3", "active", vkeys(["2.2.3"]), "pypi")}, 2, []),
    ("unverified", {"leaf": Unverified("leaf", "transport", "refused")}, 2, []),
    (
        "violation outranks unverified",
        {"leaf": Unverified("leaf", "transport", "x"), "web": facts("web", "quarantined", ())},
        1,
        [("web", "quarantined")],
    ),
    ("archived is a notice", {"leaf": facts("leaf", "archived")}, 0, []),
    ("yanked is a notice", {"leaf": facts("leaf", yanked=vkeys(["1.0"]))}, 0, []),
]


@pytest.mark.parametrize(("name", "override", "code", "expected"), CASES, ids=[c[0] for c in CASES])
def test_policy_table(
    name: str, override: dict[str, PackageFacts | Unverified], code: int, expected: list[tuple[str, str]]
) -> None:
    answers = {**clean(), **override}
    result = evaluate(INV, answers, NOW, SOAK, sources=CORP)
    assert result.exit_code == code
    assert [(f.package, f.reason) for f in result.findings] == expected
    assert result.checked == 3


def test_paths_start_at_the_root_and_non_pypi_is_skipped() -> None:
    result = evaluate(INV, {**clean(), "leaf": facts("leaf", "quarantined", ())}, NOW, SOAK, sources=CORP)
    assert result.findings[0].path == ("app", "web", "leaf")
    assert {(s.package, s.source_kind) for s in result.skipped} == {("private", "index"), ("from-git", "git")}


def test_an_undeclared_other_index_is_unverified_and_the_gate_index_is_checked() -> None:
    """A package from an index the gate was not told about may be a PyPI package behind a proxy: not a pass."""
    result = evaluate(INV, clean(), NOW, SOAK)
    assert [(u.package, u.reason) for u in result.unverified] == [("private", "other-index")]
    assert "--allow-index" in result.unverified[0].message and result.exit_code == 2
    proxied = evaluate(INV, clean(), NOW, SOAK, sources=Sources("https://CORP.example:443/simple"))
    assert proxied.unverified == (Unverified("private", "no-answer", "no facts were fetched for this package"),)


def test_unknown_status_is_unverified_whichever_source_said_it() -> None:
    for status in ("suspended", "quarantined ", "", "unknown"):
        result = evaluate(INV, {**clean(), "leaf": facts("leaf", status)}, NOW, SOAK, sources=CORP)
        assert [(u.package, u.reason) for u in result.unverified] == [("leaf", "unknown-status")], status
        assert result.exit_code == 2


def test_a_report_without_a_versions_list_affects_every_version() -> None:
    """A range-only report (introduced 1.2, no versions list) used to affect no version at all."""
    ranged = facts("leaf", reports=(ReportFact("MAL-2026-9", (), False),))
    result = evaluate(INV, {**clean(), "leaf": ranged}, NOW, SOAK, sources=CORP)
    assert [(f.package, f.reason, f.report_ids) for f in result.findings] == [("leaf", "malicious", ("MAL-2026-9",))]


def test_soak_finding_says_until_when() -> None:
    uploaded = NOW - 2 * HOUR
    result = evaluate(INV, {**clean(), "urllib3": facts("urllib3", uploads={vkey("2.2.3"): uploaded})}, NOW, SOAK)
    finding = result.findings[0]
    assert finding.held_until == uploaded + 72 * HOUR
    assert "until" in finding.message and "2d22h" in finding.message


def test_notices() -> None:
    result = evaluate(INV, {**clean(), "leaf": facts("leaf", "archived", yanked=vkeys(["1.0"]))}, NOW, SOAK)
    assert {n.kind for n in result.notices} == {"archived", "yanked"}


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("72h", 72 * HOUR),
        ("3d", 72 * HOUR),
        ("1d12h", 36 * HOUR),
        ("P3D", 72 * HOUR),
        ("PT36H", 36 * HOUR),
        ("90m", 90 * 60_000),
        ("0", 0),
        ("3600", HOUR),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["", "3 days", "h", "P", "-1h", "72x"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_duration() -> None:
    assert format_duration(36 * HOUR) == "1d12h"
    assert format_duration(0) == "0s"
