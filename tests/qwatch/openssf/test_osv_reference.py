"""The OSV parser against a reference model: the straightforward parser it replaced, kept here verbatim in spirit.

``parse_report`` skips the per-string UTF-8 check when the bytes cannot hold a lone surrogate (strict UTF-8, no
``\\ud``/``\\uD`` escape) and merges a one-entry ``affected`` without dictionaries. Both are shortcuts a bug could hide
in, so every real edge case and a stream of generated records (wrong types, surrogates escaped or raw, other
encodings, duplicate entries) must give the reference's exact outcome: the same report, pending reason, or error
reason *and* message.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwatch.openssf import osv
from qwatch.openssf.osv import (
    _ID,
    _ORIGINS_KEY,
    MAX_FILE_BYTES,
    PENDING_PREFIX,
    AffectedPackage,
    ParsedReport,
    Pending,
    ReportParseError,
    normalize_package,
    parse_report,
)


# -- the reference: one check per value, every string encoded, as the parser was written first ------------------
def ref_parse(data: bytes, path: str, max_bytes: int = MAX_FILE_BYTES) -> ParsedReport | Pending:
    if len(data) > max_bytes:
        raise ReportParseError("oversized", f"{len(data)} bytes is over the {max_bytes}-byte cap")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ReportParseError("malformed-json", f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ReportParseError("schema", f"top level is {type(doc).__name__}, expected an object")
    if path.split("/")[-1].startswith(PENDING_PREFIX):
        return Pending("pending file name")
    raw_id = doc.get("id")
    if raw_id is None or raw_id == "":
        return Pending("empty id" if raw_id == "" else "missing id")
    report_id = _t(raw_id, "id")
    if not _ID.match(report_id):
        raise ReportParseError("schema", f"id {report_id[:80]!r} is not a report id")
    entries = _l(doc.get("affected"), "affected")
    if not entries:
        raise ReportParseError("schema", "affected is missing or empty")
    names: dict[tuple[str, str], str] = {}
    versions: dict[tuple[str, str], dict[str, None]] = {}
    every: dict[tuple[str, str], bool] = {}
    for item in entries:
        entry = _d(item, "affected[]")
        pkg = _d(entry.get("package"), "affected[].package")
        eco = _t(pkg.get("ecosystem"), "affected[].package.ecosystem")
        name = _t(pkg.get("name"), "affected[].package.name")
        if not eco or not name:
            raise ReportParseError("schema", "affected[].package needs a non-empty ecosystem and name")
        key = (eco, normalize_package(eco, name))
        names.setdefault(key, name)
        listed = tuple(_t(v, "affected[].versions[]") for v in _l(entry.get("versions"), "affected[].versions"))
        versions.setdefault(key, {}).update(dict.fromkeys(listed))
        every[key] = every.get(key, False) or _ref_all(entry.get("ranges"))
    packages = tuple(AffectedPackage(k[0], names[k], k[1], tuple(versions[k]), every[k]) for k in names)
    first = packages[0]
    summary = doc.get("summary")
    published = doc.get("published")
    modified = doc.get("modified")
    withdrawn = doc.get("withdrawn")
    return ParsedReport(
        report_id,
        first.ecosystem,
        first.package_name,
        first.package,
        first.affected_versions,
        first.all_versions,
        (None if summary is None else _t(summary, "summary")) or "",
        None if published is None else _t(published, "published"),
        None if modified is None else _t(modified, "modified"),
        (None if withdrawn is None else _t(withdrawn, "withdrawn")) or None,
        tuple(_t(a, "aliases[]") for a in _l(doc.get("aliases"), "aliases")),
        _ref_origins(doc.get("database_specific")),
        packages,
    )


def _ref_all(ranges: Any) -> bool:
    for rng in _l(ranges, "affected[].ranges") if ranges is not None else []:
        events = _l(_d(rng, "affected[].ranges[]").get("events"), "affected[].ranges[].events")
        zero = bounded = False
        for ev in events:
            event = _d(ev, "affected[].ranges[].events[]")
            zero = zero or event.get("introduced") == "0"
            bounded = bounded or "fixed" in event or "last_affected" in event or event.get("limit", "*") != "*"
        if zero and not bounded:
            return True
    return False


def _ref_origins(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    raw = _d(value, "database_specific").get(_ORIGINS_KEY)
    if raw is None:
        return ()
    out: dict[str, None] = {}
    for item in _l(raw, _ORIGINS_KEY):
        source = _d(item, f"{_ORIGINS_KEY}[]").get("source")
        if source is not None:
            out[_t(source, f"{_ORIGINS_KEY}[].source")] = None
    return tuple(out)


def _d(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportParseError("schema", f"{field} is {type(value).__name__}, expected an object")
    return value


def _l(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReportParseError("schema", f"{field} is {type(value).__name__}, expected a list")
    return value


def _t(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ReportParseError("schema", f"{field} is {type(value).__name__}, expected a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ReportParseError("schema", f"{field} holds a lone surrogate") from None
    return value


def _outcome(fn: Any, data: bytes, path: str) -> object:
    try:
        return fn(data, path)
    except ReportParseError as exc:
        return ("error", exc.reason, str(exc))


def _same(data: bytes, path: str = "osv/malicious/pypi/x/MAL-2026-1.json") -> object:
    got, want = _outcome(parse_report, data, path), _outcome(ref_parse, data, path)
    assert got == want, (data[:300], got, want)
    return got


# -- real records ------------------------------------------------------------------------------------------------
def test_every_real_record_and_edge_case_matches_the_reference(shared_fixtures: Path) -> None:
    root = shared_fixtures / "ossf-sample" / "edge-cases"
    files = sorted(root.rglob("*.json"))
    assert files
    kinds = set()
    for file in files:
        outcome = _same(file.read_bytes(), file.relative_to(root).as_posix())
        kinds.add(type(outcome).__name__)
    assert kinds == {"ParsedReport", "Pending", "tuple"}  # reports, a pending file and a malformed one


def test_lone_surrogates_are_caught_however_they_are_spelled() -> None:
    base = {"id": "MAL-2026-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"}, "versions": ["1"]}]}
    spelled = [
        json.dumps({**base, "summary": "\ud800"}).encode(),  # escaped, lower case (json.dumps writes \\ud800)
        json.dumps({**base, "summary": "x"}).replace('"x"', '"\\uDFFF"').encode(),  # escaped, upper case
        json.dumps({**base, "summary": "x"}, ensure_ascii=False)
        .replace('"x"', '"\ud800"')
        .encode("utf-8", "surrogatepass"),
        json.dumps({**base, "aliases": ["ok", "\udc00"]}).encode(),
        json.dumps({**base, "affected": [{"package": {"ecosystem": "PyPI", "name": "a\ud83d"}}]}).encode(),
    ]
    for data in spelled:
        outcome = _same(data)
        assert isinstance(outcome, tuple) and outcome[1] == "schema" and "lone surrogate" in outcome[2], outcome
    # A paired escape is a real character, and a surrogate in a field nobody reads is no error.
    assert isinstance(_same(json.dumps({**base, "summary": "\U0001f600"}).encode()), ParsedReport)
    assert isinstance(_same(json.dumps({**base, "details": "\ud800"}).encode()), ParsedReport)
    # Other encodings still go through json's own detection.
    for enc in ("utf-16", "utf-16-le", "utf-32", "utf-8-sig"):
        assert isinstance(_same(json.dumps(base).encode(enc)), ParsedReport), enc


# -- generated records -------------------------------------------------------------------------------------------
_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=["Cs"]), max_size=6) | st.sampled_from(
    ["\ud800", "\udfff", "0", "", "PyPI", "npm", "Evil_Pkg", "evil-pkg"]
)
_ODD: st.SearchStrategy[Any] = (
    st.none()
    | st.integers(-2, 2)
    | st.booleans()
    | st.lists(st.integers(), max_size=2)
    | st.just({})
    # numbers the orjson path reads differently or refuses: beyond 64 bits (read as floats), NaN and infinities
    # (refused), negative zero
    | st.sampled_from([2**64, -(2**63) - 1, 10**30, 1.5, -0.0, 1e300, float("nan"), float("inf")])
)
_VALUE = _TEXT | _ODD


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, _ODD, _TEXT)


_EVENT = st.dictionaries(st.sampled_from(["introduced", "fixed", "last_affected", "limit"]), _maybe(_TEXT), max_size=2)
_RANGE = st.fixed_dictionaries({}, optional={"type": _TEXT, "events": _maybe(st.lists(_maybe(_EVENT), max_size=3))})
_PACKAGE = st.fixed_dictionaries(
    {},
    optional={
        "ecosystem": _maybe(st.sampled_from(["PyPI", "npm", "crates.io", "NuGet", "Go"])),
        "name": _maybe(st.sampled_from(["Evil_Pkg", "evil-pkg", "evil.pkg", "a", "Other"])),
    },
)
_ENTRY = st.fixed_dictionaries(
    {"package": _maybe(_PACKAGE)},
    optional={
        "versions": _maybe(st.lists(_maybe(st.sampled_from(["1.0", "1.1", "2.0"])), max_size=4)),
        "ranges": _maybe(st.lists(_maybe(_RANGE), max_size=2)),
    },
)
_DOC = st.fixed_dictionaries(
    {"affected": _maybe(st.lists(_maybe(_ENTRY), max_size=3))},
    optional={
        "id": st.sampled_from(["MAL-2026-1", "", "MAL 1", "GHSA-x"]) | _VALUE,
        "summary": _VALUE,
        "published": _VALUE,
        "modified": _VALUE,
        "withdrawn": _VALUE,
        "aliases": _maybe(st.lists(_VALUE, max_size=3)),
        "database_specific": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    _ORIGINS_KEY: _maybe(st.lists(_maybe(st.fixed_dictionaries({"source": _VALUE})), max_size=3))
                },
            )
        ),
    },
)


@settings(max_examples=400, deadline=None)
@given(doc=_DOC, spelling=st.sampled_from(["escaped", "raw", "utf-16"]))
def test_generated_records_match_the_reference(doc: dict[str, Any], spelling: str) -> None:
    """``escaped``: ASCII with ``\\u`` escapes; ``raw``: UTF-8 with any surrogate written raw (json's own decoding
    accepts those); ``utf-16``: another encoding json detects."""
    if spelling == "raw":
        data = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    else:
        data = json.dumps(doc).encode("utf-16" if spelling == "utf-16" else "ascii")
    _same(data)


# -- the orjson path: inputs it reads differently from json, and real reports damaged byte by byte ---------------
def _history_reports(tmp: Path, shared_fixtures: Path) -> list[tuple[str, bytes]]:
    """Every in-scope file at the head of the real OpenSSF history (27k reports), read with plain git."""
    git_dir = tmp / "R"
    bundle = shared_fixtures / "ossf-history" / "ossf-history-2024.bundle"
    subprocess.run(["git", "clone", "-q", "--bare", str(bundle), str(git_dir)], check=True)
    listing = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-z", "dev-cut", "--", "osv/malicious", "osv/withdrawn"],
        check=True,
        capture_output=True,
    ).stdout
    entries = [line.split(b"\t", 1) for line in listing.split(b"\0") if line]
    shas = b"".join(meta.split()[2] + b"\n" for meta, _ in entries)
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch"], input=shas, check=True, capture_output=True
    ).stdout
    reports, at = [], 0
    for _, path in entries:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        reports.append((path.decode(), out[header_end + 1 : header_end + 1 + size]))
        at = header_end + 1 + size + 1
    return reports


@pytest.fixture(scope="module")
def history_reports(tmp_path_factory: pytest.TempPathFactory, shared_fixtures: Path) -> list[tuple[str, bytes]]:
    return _history_reports(tmp_path_factory.mktemp("history"), shared_fixtures)


def test_every_report_of_the_real_history_matches_the_reference_and_takes_the_fast_path(
    history_reports: list[tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orjson path is what a snapshot runs: it must give the reference's outcome on every real report, and be
    taken for nearly all of them (a fast path that quietly fell back everywhere would only hide a slow one)."""
    assert len(history_reports) > 25_000
    fallbacks: list[str] = []
    reference_path = osv._parse_with_json

    def counting(data: bytes, path: str) -> ParsedReport | Pending:
        fallbacks.append(path)
        return reference_path(data, path)

    monkeypatch.setattr(osv, "_parse_with_json", counting)
    kinds: Counter[str] = Counter()
    for path, data in history_reports:
        kinds[type(_same(data, path)).__name__] += 1
    assert kinds["ParsedReport"] > 25_000
    assert len(fallbacks) < len(history_reports) // 100, fallbacks[:10]


@pytest.mark.parametrize(
    "spelled",
    [b'"\\ud800"', b'"\\uDBFF"', b'"\\udc00"', b'"\\uDFFFx"', b'"a\\ud83d"', b'"\\ude00\\ud83d"', b'"\xed\xa0\x80"'],
)
def test_orjson_refuses_every_lone_surrogate(spelled: bytes) -> None:
    """What the fast path relies on to skip the per-string check: if an orjson release ever read a lone surrogate,
    this fails (and so would the surrogate cases above), instead of a report carrying one into Avro."""
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(b'{"summary":' + spelled + b"}")
    assert orjson.loads(b'"\\ud83d\\ude00"') == "\U0001f600"  # a pair is a character


_TRICKS = [
    b"18446744073709551616",  # beyond 64 bits: orjson reads a float, json an int
    b"-9223372036854775809",
    b"1e400",  # infinite: orjson refuses, json reads inf
    b"NaN",
    b"-Infinity",
    b'"\\ud800"',  # a lone surrogate, escaped
    b'"\xed\xa0\x80"',  # a lone surrogate, raw (not strict UTF-8)
    b'"\xc0\x80"',  # overlong
    b"01",
    b'"\x1f"',  # a raw control character
    b"[" * 1100 + b"]" * 1100,  # deeper than orjson goes
    b'{"id":"MAL-2026-9"}',
    b"-0",
    b"1.0000000000000000000000001",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_real_reports_damaged_anywhere_match_the_reference(
    history_reports: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    """A real report with its bytes cut, flipped, or a value replaced by one the two JSON readers disagree on:
    same report, pending reason, or error reason and message, whichever path reads it."""
    path, raw = data.draw(st.sampled_from(history_reports[::50]))
    body = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        how = data.draw(st.sampled_from(["trick", "trick", "flip", "cut", "bom", "duplicate-id"]))
        if how == "trick":
            # the value after some colon (a member value) or some bracket (an array item) becomes a trick
            marks = [i for i, b in enumerate(body) if b in b":[,"] or [0]
            at = data.draw(st.sampled_from(marks)) + 1
            end = at
            while end < len(body) and body[end] not in b",]}":
                end += 1
            body[at:end] = data.draw(st.sampled_from(_TRICKS))
        elif how == "flip":
            at = data.draw(st.integers(0, len(body) - 1)) if body else 0
            body[at : at + 1] = bytes([data.draw(st.integers(0, 255))])
        elif how == "cut":
            del body[data.draw(st.integers(0, len(body))) :]
        elif how == "bom":
            body[:0] = b"\xef\xbb\xbf"
        elif body.startswith(b"{"):
            body[1:1] = b'"id":"MAL-2026-1",'  # a duplicate key: the last one wins in both readers
    _same(bytes(body), path)
