"""Fuzzing what the other parser suites leave out: parse *time* on hostile bodies, the root HTML scanner, pyproject.

Why time: a parser that never crashes can still be a denial of service. ``html.parser``'s end-of-body recovery, the
root index's anchor regex and the ``Links for`` title regex were all quadratic, so 100-200 KB from a hostile or
broken mirror stalled an ingestor pass (or the gate) for minutes. Those bodies are kept below as explicit examples;
the property around them says any body made of a repeated hostile fragment parses in bounded time. Each example
costs a few hundred kilobytes of parsing, so this suite runs a tenth of the profile's examples.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingestors.pypi.parse_jsonapi import parse_json_api
from ingestors.pypi.parse_root import _anchors, parse_root_html, parse_root_json
from ingestors.pypi.parse_xmlrpc import parse_changelog
from qwatch.pypi.errors import PyPIParseError
from qwatch.pypi.pages import parse_project_html, parse_project_json
from subscribers.inventory.lockfiles import LockfileError, requirements
from subscribers.inventory.lockfiles.poetry import direct_names_from_pyproject

BODY_BYTES = 120_000
TIME_LIMIT = 2.0
"""Seconds for one 120 KB body; linear parsers take ~0.05 s, the quadratic ones took 10 s to many minutes."""
FEW = settings(max_examples=max(10, settings().max_examples // 10), deadline=None)

PARSERS: dict[str, Callable[[bytes], object]] = {
    "simple-html": parse_project_html,
    "simple-json": parse_project_json,
    "root-html": parse_root_html,
    "root-json": parse_root_json,
    "json-api": parse_json_api,
    "changelog": parse_changelog,
    "requirements": lambda body: requirements.parse(body.decode("utf-8", "replace"), "fuzz"),
}
FRAGMENTS = st.sampled_from(
    [
        "<a ",
        "<a x=",
        "<a href='",
        "<!--",
        "<!",
        "<?",
        "</",
        "</a",
        "<![CDATA[",
        "<script>",
        "<title>",
        "Links for ",
        " ",
        "\t",
        ">",
        "<",
        "&#",
        "&",
        '"',
        "'",
        "[",
        "{",
        '{"a":',
        "<value>",
        "<array><data>",
        "-",
        "a-",
        "#",
        "\\\n",
        "==1",
        "x",
    ]
)


def _parse(parser: Callable[[bytes], object], body: bytes) -> None:
    try:
        parser(body)
    except (PyPIParseError, LockfileError):
        pass


@pytest.mark.parametrize("kind", sorted(PARSERS))
@FEW
@given(
    prefix=st.sampled_from(["", "<html><title>Links for x", "<a href='x-1.0.tar.gz'>"]),
    fragment=st.lists(FRAGMENTS, min_size=1, max_size=3).map("".join),
)
@example(prefix="", fragment="<a ")  # html.parser's close() re-scanned to the end from every '<': minutes
@example(prefix="", fragment="<a x=")
@example(prefix="", fragment="<!--")
@example(prefix="<html><title>Links for x", fragment=" ")  # the lazy ``(.*?)\s*$`` title regex
@example(prefix="", fragment="<a >")  # the root's ``<a\s([^>]*)>(.*?)</a\s*>`` with no ``</a>`` anywhere
@example(prefix="<a href='x-1.0.tar.gz'>", fragment="<")  # ``<[^>]*>`` over an anchor text of bare '<'
def test_hostile_bodies_parse_in_bounded_time(kind: str, prefix: str, fragment: str) -> None:
    body = (prefix + fragment * (BODY_BYTES // len(fragment))).encode()
    started = time.perf_counter()
    _parse(PARSERS[kind], body)
    elapsed = time.perf_counter() - started
    assert elapsed < TIME_LIMIT, f"{kind}: {len(body)} bytes of {fragment!r} took {elapsed:.1f}s"


ANCHOR_REGEX = re.compile(r"<a\s([^>]*)>(.*?)</a\s*>", re.I | re.S)
"""The root parser's former regex: still the specification of which anchors it finds, on small inputs."""


@given(st.lists(st.sampled_from(["<a ", "<A\n", "<a", ">", "</a>", "</A >", "</a", "x", "<", "href='y'", " ", "é"])))
@example(parts=["<a ", "<a ", "x>", "y", "</a>"])
@example(parts=["<a ", ">", "</a", "</a>"])
def test_root_anchor_scanner_finds_what_the_regex_found(parts: list[str]) -> None:
    text = "".join(parts)
    assert list(_anchors(text)) == ANCHOR_REGEX.findall(text)


def test_entity_expansion_bomb_is_a_parse_error() -> None:
    """Billion laughs in an XML-RPC answer: expat's amplification limit stops it, and that surfaces as our error."""
    entities = "".join(f'<!ENTITY l{i + 1} "{f"&l{i};" * 10}">' for i in range(9))
    body = (
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY l0 "lol">{entities}]><methodResponse><params><param><value>'
        "<array><data><value><string>&l9;</string></value></data></array></value></param></params></methodResponse>"
    ).encode()
    with pytest.raises(PyPIParseError) as caught:
        parse_changelog(body)
    assert caught.value.reason == "malformed-xml"


# -- pyproject.toml (read beside poetry.lock to name the direct dependencies) -------------------------------------
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=10)
    | st.sampled_from(["requests>=2", "python", "a ; x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return (
            '"'
            + "".join(f"\\u{ord(c):04x}" if c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F else c for c in value)
            + '"'
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items() if v is not None) + "}"
    return '""'


def _check_pyproject(text: str) -> None:
    try:
        names = direct_names_from_pyproject(text, "fuzz/pyproject.toml")
    except LockfileError as exc:
        assert exc.path == "fuzz/pyproject.toml" and exc.reason
        return
    assert isinstance(names, frozenset) and all(isinstance(n, str) for n in names)


@given(st.text())
@example(text="a = " + "[" * 50_000)
def test_pyproject_any_text(text: str) -> None:
    _check_pyproject(text)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "project": st.fixed_dictionaries(
                {},
                optional={
                    "dependencies": VALUES,
                    "optional-dependencies": st.dictionaries(st.text(max_size=5), VALUES),
                },
            )
            | VALUES,
            "dependency-groups": st.dictionaries(st.text(max_size=5), VALUES) | VALUES,
            "tool": st.fixed_dictionaries(
                {},
                optional={
                    "poetry": st.fixed_dictionaries(
                        {},
                        optional={"dependencies": VALUES, "dev-dependencies": VALUES, "group": VALUES},
                    )
                    | VALUES
                },
            )
            | VALUES,
        },
    )
)
def test_pyproject_shaped(doc: dict[str, object]) -> None:
    _check_pyproject("".join(f"{_toml(k)} = {_toml(v)}\n" for k, v in doc.items() if v is not None))
