"""qwatch.osv_ranges: OSV ``affected[]`` evaluation for PyPI, against a brute-force model and schema edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from qwatch.osv_ranges import (
    ALL_VERSIONS,
    FAIL_CLOSED,
    IN_RANGE,
    LISTED,
    MALFORMED,
    NOT_AFFECTED,
    UNPARSEABLE_EVENT,
    UNPARSEABLE_VERSION,
    UNSUPPORTED_RANGE,
    Affected,
    Verdict,
    check_all,
    check_entry,
)

POOL = ["0.dev0", "0", "0.1", "1.0a1", "1.0", "1.0.0", "1.0.post1", "1.1", "1.2", "1.3", "1.5", "2.0", "1!0.1"]
"""Small, with the PEP 440 corners: dev/pre/post releases, equal spellings (1.0 = 1.0.0), an epoch."""
BOUNDS = ["0.dev0", "0", "1.0", "1.0.0", "1.0.post1", "1.2", "2.0"]
"""Event values: fewer than the pool, so that events often tie (the same version, or 1.0 and 1.0.0)."""


def _entry(*ranges: list[tuple[str, str]], versions: list[str] | None = None, kind: str = "ECOSYSTEM") -> Any:
    entry: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": "x"}}
    if ranges:
        entry["ranges"] = [{"type": kind, "events": [{k: v} for k, v in events]} for events in ranges]
    if versions is not None:
        entry["versions"] = versions
    return entry


# -- the brute-force model ---------------------------------------------------------------------------------------


def _model_range(events: list[tuple[str, str]], v: Version) -> bool:
    """Declarative reading: below a limit, and some introduced I <= v with no fixed in (I, v], no last_affected in
    [I, v). ``None`` stands for introduced "0" (before everything)."""
    limits = [value for kind, value in events if kind == "limit"]
    if limits and not any("*" in lim or v < Version(lim) for lim in limits):
        return False
    fixed = [Version(value) for kind, value in events if kind == "fixed"]
    last = [Version(value) for kind, value in events if kind == "last_affected"]
    for kind, value in events:
        if kind != "introduced":
            continue
        start = None if value == "0" else Version(value)
        if start is not None and v < start:
            continue
        if any((start is None or start < f) and f <= v for f in fixed):
            continue
        if any((start is None or start <= la) and la < v for la in last):
            continue
        return True
    return False


def _model(ranges: list[list[tuple[str, str]]], versions: list[str], version: str) -> bool:
    v = Version(version)
    if not ranges and not versions:
        return True
    return any(Version(x) == v for x in versions) or any(_model_range(r, v) for r in ranges)


_kinds = st.sampled_from(["introduced", "fixed", "last_affected", "limit"])
_event = st.tuples(_kinds, st.sampled_from(BOUNDS))
_events = st.builds(
    lambda first, rest, at: [*rest[:at], first, *rest[at:]],
    st.tuples(st.just("introduced"), st.sampled_from(["0", *BOUNDS])),
    st.lists(st.one_of(_event, st.just(("introduced", "0")), st.just(("limit", "*"))), max_size=5),
    st.integers(0, 5),
)
"""Valid ranges (at least one introduced), in any order: unsorted, duplicated, fixed and last_affected mixed."""


@given(st.lists(_events, min_size=1, max_size=3), st.lists(st.sampled_from(POOL), max_size=3))
def test_matches_the_brute_force_model_on_every_pool_version(
    ranges: list[list[tuple[str, str]]], versions: list[str]
) -> None:
    affected = Affected.from_osv(_entry(*ranges, versions=versions))
    for version in POOL:
        verdict = affected.check(version)
        assert verdict.affected == _model(ranges, versions, version), (ranges, versions, version, verdict)
        assert not verdict.fail_closed
        assert verdict.reason in ((LISTED, IN_RANGE) if verdict.affected else (NOT_AFFECTED,))


@given(_events, st.data())
def test_event_order_in_the_record_does_not_matter(events: list[tuple[str, str]], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(events))
    for version in POOL:
        assert check_entry(_entry(events), version) == check_entry(_entry(shuffled), version)


@given(_events, st.sampled_from(["not a version", "1.0-foo!", "", "v_05", "1..2"]), st.integers(0, 6))
def test_an_unparseable_event_anywhere_fails_closed(events: list[tuple[str, str]], bad: str, at: int) -> None:
    kind = "fixed" if at % 2 else "last_affected"
    broken = [*events[:at], (kind, bad), *events[at:]]
    for version in POOL:
        verdict = check_entry(_entry(broken), version)
        assert verdict.affected
        if not _model_range(events, Version(version)):
            assert verdict.reason == UNPARSEABLE_EVENT and verdict.fail_closed


# -- schema edge cases -------------------------------------------------------------------------------------------


def _affected_set(entry: Any, versions: list[str] = POOL) -> set[str]:
    return {v for v in versions if check_entry(entry, v).affected}


def test_bounded_range_introduced_fixed() -> None:
    entry = _entry([("introduced", "1.2"), ("fixed", "1.5")])
    assert _affected_set(entry) == {"1.2", "1.3"}
    assert check_entry(entry, "1.3") == Verdict(True, IN_RANGE)
    assert check_entry(entry, "1.5") == Verdict(False, NOT_AFFECTED)
    assert check_entry(entry, "1.5.0").affected is False
    assert check_entry(entry, "1.5rc1").affected is True  # a pre-release of the fix is before the fix
    assert check_entry(entry, "1.2.dev0").affected is False


def test_last_affected_is_inclusive_fixed_is_exclusive() -> None:
    last = _entry([("introduced", "0"), ("last_affected", "1.2")])
    fixed = _entry([("introduced", "0"), ("fixed", "1.2")])
    assert _affected_set(last) == {"0.dev0", "0", "0.1", "1.0a1", "1.0", "1.0.0", "1.0.post1", "1.1", "1.2"}
    assert _affected_set(fixed) == _affected_set(last) - {"1.2"}
    assert check_entry(last, "1.2.post1").affected is False
    assert check_entry(last, "1.2.0").affected is True


def test_introduced_zero_is_before_every_version_and_alone_means_all() -> None:
    entry = _entry([("introduced", "0")])
    assert _affected_set(entry) == set(POOL)
    assert check_entry(entry, "0.dev0").affected  # Version("0.dev0") < Version("0"): "0" is special
    assert check_entry(_entry([("introduced", "0.0")]), "0.dev0").affected is False  # "0.0" is not


def test_multiple_ranges_and_multiple_intervals_in_one_range() -> None:
    two_ranges = _entry([("introduced", "0.1"), ("fixed", "1.0")], [("introduced", "1.3"), ("fixed", "2.0")])
    one_range = _entry([("introduced", "1.3"), ("fixed", "2.0"), ("fixed", "1.0"), ("introduced", "0.1")])
    expected = {"0.1", "1.0a1", "1.3", "1.5"}
    assert _affected_set(two_ranges) == expected
    assert _affected_set(one_range) == expected  # unsorted events are sorted first


def test_limit() -> None:
    assert _affected_set(_entry([("introduced", "0"), ("limit", "1.1")])) == {
        "0.dev0",
        "0",
        "0.1",
        "1.0a1",
        "1.0",
        "1.0.0",
        "1.0.post1",
    }
    assert _affected_set(_entry([("introduced", "1.1"), ("limit", "*")])) == {
        "1.1",
        "1.2",
        "1.3",
        "1.5",
        "2.0",
        "1!0.1",
    }
    # several limits: below any one of them
    assert _affected_set(_entry([("introduced", "1.2"), ("limit", "1.3"), ("limit", "2.0")])) == {"1.2", "1.3", "1.5"}
    assert check_entry(_entry([("introduced", "0"), ("limit", "nope")]), "1.0") == Verdict(
        True, UNPARSEABLE_EVENT, "limit 'nope'"
    )


def test_ties_at_one_version() -> None:
    # introduced X + last_affected X: exactly X
    assert _affected_set(_entry([("last_affected", "1.2"), ("introduced", "1.2")])) == {"1.2"}
    # re-introduced at the fixed version: the interval goes on (fail-closed reading of the tie)
    assert _affected_set(
        _entry([("introduced", "1.0"), ("fixed", "1.2"), ("introduced", "1.2"), ("fixed", "2.0")])
    ) == {
        "1.0",
        "1.0.0",
        "1.0.post1",
        "1.1",
        "1.2",
        "1.3",
        "1.5",
    }
    # introduced X + fixed X (an empty interval, contradictory) reads as "from X on", never as "nothing";
    # "1.0.0" and "1.0" are one version
    assert _affected_set(_entry([("introduced", "1.0.0"), ("fixed", "1.0")])) == {
        "1.0",
        "1.0.0",
        "1.0.post1",
        "1.1",
        "1.2",
        "1.3",
        "1.5",
        "2.0",
        "1!0.1",
    }


def test_versions_list_with_pep440_equality_and_verbatim_strings() -> None:
    entry = _entry(versions=["1.0", "v_05", "0.0.9 "])
    assert check_entry(entry, "1.0.0") == Verdict(True, LISTED, "1.0")
    assert check_entry(entry, "v_05") == Verdict(True, LISTED, "v_05")  # real record MAL-2024-5408 lists "v_05"
    assert check_entry(entry, "0.0.9") == Verdict(True, LISTED, "0.0.9 ")  # real MAL-2024-4732 had "0.0.9 "
    assert check_entry(entry, "1.0.post1") == Verdict(False, NOT_AFFECTED)
    assert check_entry(entry, "0.5") == Verdict(False, NOT_AFFECTED)


def test_versions_or_ranges() -> None:
    entry = _entry([("introduced", "1.2"), ("fixed", "1.5")], versions=["0.1"])
    assert _affected_set(entry) == {"0.1", "1.2", "1.3"}


@pytest.mark.parametrize(
    "entry",
    [
        {"package": {"ecosystem": "PyPI", "name": "x"}},
        {"package": {"ecosystem": "PyPI", "name": "x"}, "versions": [], "ranges": []},
        {"package": {"ecosystem": "PyPI", "name": "x"}, "versions": None, "ranges": None},
    ],
)
def test_neither_versions_nor_ranges_means_every_version(entry: Any) -> None:
    for version in [*POOL, "not-pep-440"]:
        assert check_entry(entry, version) == Verdict(True, ALL_VERSIONS)


@pytest.mark.parametrize("kind", ["SEMVER", "GIT", "ecosystem", ""])
def test_a_range_type_other_than_ecosystem_fails_closed(kind: str) -> None:
    entry = _entry([("introduced", "1.2"), ("fixed", "1.5")], kind=kind)
    verdict = check_entry(entry, "2.0")
    assert verdict == Verdict(True, UNSUPPORTED_RANGE, kind) and verdict.fail_closed
    # an ECOSYSTEM range that does cover the version is the reason given, whatever else the entry has
    both = _entry([("introduced", "1.2")], versions=["0.1"])
    both["ranges"].append({"type": kind, "events": [{"introduced": "0"}]})
    assert check_entry(both, "1.3") == Verdict(True, IN_RANGE)
    assert check_entry(both, "0.1") == Verdict(True, LISTED, "0.1")
    # ... and beside a versions list, the other range is what those versions spell out (OSV): not a reason to
    # call every other version affected
    assert check_entry(both, "1.0") == Verdict(False, NOT_AFFECTED)


def test_an_unparseable_version_being_checked_fails_closed() -> None:
    entry = _entry([("introduced", "1.2"), ("fixed", "1.5")], versions=["weird-1"])
    assert check_entry(entry, "weird-1") == Verdict(True, LISTED, "weird-1")
    assert check_entry(entry, "weird-2") == Verdict(True, UNPARSEABLE_VERSION, "weird-2")
    assert check_entry(_entry(versions=["1.0"]), "") == Verdict(True, UNPARSEABLE_VERSION, "")


@pytest.mark.parametrize(
    "entry",
    [
        "not an object",
        {"versions": "1.0"},
        {"versions": [1.0]},
        {"ranges": {"type": "ECOSYSTEM"}},
        {"ranges": ["ECOSYSTEM"]},
        {"ranges": [{"type": "ECOSYSTEM"}]},
        {"ranges": [{"type": "ECOSYSTEM", "events": []}]},
        {"ranges": [{"type": 1, "events": [{"introduced": "0"}]}]},
        {"ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "1.0"}]}]},  # no introduced
        {"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0", "fixed": "1.2"}]}]},  # two keys
        {"ranges": [{"type": "ECOSYSTEM", "events": [{}]}]},
        {"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": 0}]}]},
        {"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"removed": "1.0"}]}]},
    ],
)
def test_malformed_entries_fail_closed(entry: Any) -> None:
    affected = Affected.from_osv(entry)
    assert affected.malformed
    for version in ("1.0", "9.9", "junk"):
        verdict = affected.check(version)
        assert verdict.affected and verdict.reason == MALFORMED and verdict.fail_closed


def test_check_all_prefers_a_definite_reason_and_fails_closed_on_nothing() -> None:
    listed = Affected.from_osv(_entry(versions=["1.0"]))
    semver = Affected.from_osv(_entry([("introduced", "0")], kind="SEMVER"))
    nothing = Affected.from_osv(_entry(versions=["9.0"]))
    assert check_all([semver, listed], "1.0") == Verdict(True, LISTED, "1.0")
    assert check_all([semver, nothing], "2.0").reason == UNSUPPORTED_RANGE
    assert check_all([nothing, nothing], "2.0") == Verdict(False, NOT_AFFECTED)
    assert check_all([], "2.0").reason == MALFORMED
    assert FAIL_CLOSED == {UNPARSEABLE_VERSION, UNPARSEABLE_EVENT, UNSUPPORTED_RANGE, MALFORMED}


def test_real_upstream_entries(shared_fixtures: Path) -> None:
    """Real records from the edge cases: a PEP 440-compatible bounded ECOSYSTEM range, and a SEMVER one."""
    root = shared_fixtures / "ossf-sample" / "edge-cases" / "osv" / "malicious"
    vsx = json.loads((root / "vscode:open-vsx.org/checkmarx.ast-results/MAL-2026-2231.json").read_bytes())
    entry = vsx["affected"][0]  # introduced 0, fixed 2.58.0, plus 21 listed versions
    assert check_entry(entry, "2.57.9") == Verdict(True, IN_RANGE)
    assert check_entry(entry, "2.58.0") == Verdict(False, NOT_AFFECTED)
    listed_after_fix = [v for v in entry["versions"] if Version(v) >= Version("2.58.0")]
    for version in listed_after_fix:
        assert check_entry(entry, version).reason == LISTED
    solana = json.loads((root / "npm/@solana/web3.js/MAL-2024-11183.json").read_bytes())
    verdict = check_entry(solana["affected"][0], "1.0.0")  # SEMVER 1.95.6..1.95.8: not PyPI ordering
    assert verdict.affected and verdict.reason == UNSUPPORTED_RANGE
    pymocks = json.loads((root / "pypi/pymocks/MAL-2022-7426.json").read_bytes())
    assert check_entry(pymocks["affected"][0], "0.0.1") == Verdict(True, IN_RANGE)
