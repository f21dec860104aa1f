"""Fuzzing the OSV parser: whatever the input, the result is a ParsedReport, a Pending or a ReportParseError.

Three layers: arbitrary bytes (the decoder), arbitrary JSON values (the top-level checks), and OSV-shaped
documents whose fields hold arbitrary values (so the field checks, ranges and origins code is reached too).
Whatever parses must also encode with the production codec: "parsed" has to mean "schema-valid".
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from qwatch.events import ReportObserved
from qwatch.events.codec import Codec
from qwatch.openssf.osv import ParsedReport, Pending, ReportParseError, parse_report

CODEC = Codec()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["0", "", "PyPI", "npm", "MAL-2026-1", "\ud800", "*", "1.0"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
events = st.lists(
    st.dictionaries(st.sampled_from(["introduced", "fixed", "last_affected", "limit"]), values, max_size=2),
    max_size=3,
)
affected_entry = st.fixed_dictionaries(
    {"package": st.fixed_dictionaries({}, optional={"ecosystem": values, "name": values}) | values},
    optional={
        "versions": st.lists(values, max_size=3) | values,
        "ranges": st.lists(st.fixed_dictionaries({}, optional={"type": values, "events": events | values}), max_size=2)
        | values,
    },
)
osv_docs = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["MAL-2026-1", "", "MAL 2", "GHSA-xxxx-yyyy-zzzz"]) | values,
        "summary": values,
        "published": values,
        "modified": values,
        "withdrawn": values,
        "aliases": st.lists(values, max_size=3) | values,
        "affected": st.lists(affected_entry, max_size=2) | values,
        "database_specific": st.fixed_dictionaries(
            {}, optional={"malicious-packages-origins": st.lists(st.dictionaries(st.just("source"), values)) | values}
        )
        | values,
    },
)
paths = st.sampled_from(
    [
        "osv/malicious/pypi/a/MAL-2026-1.json",
        "osv/withdrawn/pypi/a/MAL-2026-1.json",
        "osv/malicious/pypi/a/MAL-0000-src-0123456789abcdef.json",
        "osv/malicious/vscode/EffetMer.darkgpt/MAL-0000.json",
    ]
)


def _check(data: bytes, path: str) -> None:
    try:
        outcome = parse_report(data, path, max_bytes=4096)
    except ReportParseError as exc:
        assert exc.reason in ("oversized", "malformed-json", "schema")
        return
    assert isinstance(outcome, ParsedReport | Pending)
    if isinstance(outcome, ParsedReport):
        event = ReportObserved(
            "e",
            "openssf",
            outcome.ecosystem,
            outcome.package,
            0,
            None,
            outcome.report_id,
            "added",
            outcome.package_name,
            outcome.affected_versions,
            outcome.all_versions,
            outcome.summary,
            outcome.published,
            outcome.modified,
            outcome.withdrawn,
            outcome.aliases,
            outcome.origins,
            "c" * 40,
            path,
        )
        assert CODEC.decode(CODEC.encode(event)) == event


@given(st.binary(max_size=512), paths)
def test_arbitrary_bytes(data: bytes, path: str) -> None:
    _check(data, path)


@given(values, paths)
def test_arbitrary_json_values(value: Any, path: str) -> None:
    _check(json.dumps(value).encode(), path)


@given(osv_docs, paths)
def test_osv_shaped_documents_with_arbitrary_fields(doc: dict[str, Any], path: str) -> None:
    _check(json.dumps(doc).encode(), path)
