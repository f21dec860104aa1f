"""Fuzzing the parsers: whatever the input, the result is an Inventory or a LockfileError, never a crash.

Inputs are arbitrary text plus well-formed TOML/JSON documents whose fields have arbitrary values, so the
field-checking code is reached and not only the decoders. Example counts come from the hypothesis profile
(tests/conftest.py: ``ci`` bounded, ``nightly`` many more), so no test pins its own.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscribers.inventory.lockfiles import (
    Inventory,
    LockfileError,
    normalize,
    pipfile,
    poetry,
    pylock,
    requirements,
    uv,
)

Parser = Callable[[str, str], Inventory]

scalars = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["pypi", "https://pypi.org/simple", "git", "legacy", "==1.0", "*", ".", "a-b"]),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


names = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,8}", fullmatch=True) | st.text(min_size=1, max_size=4)
text = st.text(max_size=12) | st.sampled_from(["https://pypi.org/simple", "https://x.example/simple", "."])
hashes = st.lists(st.fixed_dictionaries({"hash": text}, optional={"url": text, "file": text}), max_size=2)
edges = st.lists(
    st.fixed_dictionaries({"name": names}, optional={"extra": st.lists(text, max_size=2), "marker": text}),
    max_size=3,
)


def record(
    required: dict[str, st.SearchStrategy[object]], optional: dict[str, st.SearchStrategy[object]]
) -> st.SearchStrategy[dict[str, object]]:
    """A package record with plausible fields, or one whose fields may each be a value of any shape instead.

    Half the records are clean so that whole documents often parse and the graph code runs too.
    """
    clean = st.fixed_dictionaries(required, optional=optional)
    noisy = st.fixed_dictionaries(
        {key: strategy | values for key, strategy in required.items()},
        optional={key: strategy | values for key, strategy in optional.items()},
    )
    return clean | noisy


POETRY_RECORD = record(
    {"name": names},
    {
        "version": text,
        "source": st.fixed_dictionaries(
            {"type": st.sampled_from(["git", "legacy", "directory", "file", "url", "odd"]), "url": text},
            optional={"resolved_reference": text, "reference": text},
        ),
        "files": hashes,
        "markers": text | st.dictionaries(text, text, max_size=2),
        "groups": st.lists(text, max_size=2),
        "category": text,
        "dependencies": st.dictionaries(names, text | st.dictionaries(text, text) | st.lists(values, max_size=2)),
        "develop": st.booleans(),
    },
)
UV_RECORD = record(
    {
        "name": names,
        "source": st.dictionaries(
            st.sampled_from(["registry", "git", "url", "path", "directory", "editable", "virtual", "odd"]),
            text,
            min_size=1,
            max_size=1,
        ),
    },
    {
        "version": text,
        "dependencies": edges,
        "optional-dependencies": st.dictionaries(text, edges, max_size=2),
        "dev-dependencies": st.dictionaries(text, edges, max_size=2),
        "sdist": st.fixed_dictionaries({}, optional={"hash": text, "url": text}),
        "wheels": hashes,
        "resolution-markers": st.lists(text, max_size=2),
    },
)
PYLOCK_RECORD = record(
    {"name": names},
    {
        "version": text,
        "index": text,
        "marker": text,
        "vcs": st.fixed_dictionaries(
            {},
            optional={"url": text, "path": text, "type": st.sampled_from(["git", "hg"]), "commit-id": text},
        ),
        "directory": st.fixed_dictionaries({"path": text}, optional={"editable": st.booleans()}),
        "archive": st.fixed_dictionaries({}, optional={"url": text, "path": text}),
        "wheels": st.lists(
            st.fixed_dictionaries({}, optional={"url": text, "hashes": st.dictionaries(text, text, max_size=2)}),
            max_size=2,
        ),
        "dependencies": edges,
    },
)
PIPFILE_RECORD = record(
    {},
    {
        "version": st.sampled_from(["==1.0", "===2", "*", ">=1", ""]) | text,
        "hashes": st.lists(text, max_size=2),
        "markers": text,
        "index": st.sampled_from(["pypi", "corp", "missing"]),
        "git": text,
        "ref": text,
        "path": text,
        "editable": st.booleans(),
        "file": text,
        "extras": st.lists(text, max_size=2),
    },
)
PIPFILE_SOURCES = st.lists(
    st.fixed_dictionaries({}, optional={"name": st.sampled_from(["pypi", "corp"]), "url": text}), max_size=2
)


def toml_string(text: str) -> str:
    escaped = "".join(
        "\\" + ch if ch in '"\\' else f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in text
    )
    return f'"{escaped}"'


def toml_value(value: object) -> str:
    """Inline TOML for the generated values (a tiny writer, so the tests need no TOML-writing package)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(top: dict[str, object]) -> str:
    return "".join(f"{toml_string(key)} = {toml_value(value)}\n" for key, value in top.items())


def check(parser: Parser, text: str) -> None:
    try:
        inventory = parser(text, "fuzz")
    except LockfileError as exc:
        assert exc.path == "fuzz" and exc.reason
        return
    assert isinstance(inventory, Inventory)
    for package in inventory.packages:  # the graph helpers must cope with whatever was parsed
        inventory.path_to(package.normalized)
    inventory.by_name()


PARSERS: list[Parser] = [poetry.parse, uv.parse, pylock.parse, pipfile.parse, requirements.parse]


@given(st.sampled_from(PARSERS), st.text())
def test_any_text(parser: Parser, text: str) -> None:
    check(parser, text)


@given(st.lists(POETRY_RECORD, max_size=4), st.dictionaries(st.sampled_from(["files", "x"]), values))
def test_poetry_shaped(packages: list[dict[str, object]], metadata: dict[str, object]) -> None:
    check(poetry.parse, toml_document({"package": packages, "metadata": metadata}))


@given(st.lists(UV_RECORD, max_size=4))
def test_uv_shaped(packages: list[dict[str, object]]) -> None:
    check(uv.parse, toml_document({"version": 1, "package": packages}))


@given(st.lists(PYLOCK_RECORD, max_size=4), st.sampled_from(["1.0", "1", "2.0", ""]))
def test_pylock_shaped(packages: list[dict[str, object]], version: str) -> None:
    check(pylock.parse, toml_document({"lock-version": version, "packages": packages}))


@given(
    st.dictionaries(st.sampled_from(["default", "develop"]), st.dictionaries(names, PIPFILE_RECORD, max_size=3)),
    PIPFILE_SOURCES | values,
)
def test_pipfile_shaped(sections: dict[str, object], sources: object) -> None:
    check(pipfile.parse, json.dumps({**sections, "_meta": {"sources": sources}}))


REQUIREMENT_PIECES = [
    "a==1",
    "b[x]==2 ; python_version < '3.12'",
    "-e .",
    "-e git+https://h/r.git#egg=r",
    "c @ https://h/c.whl",
    "-i https://pypi.org/simple",
    "--extra-index-url",
    "--hash=sha256:00",
    "    # via",
    "    #   a",
    "    # via -r r.in",
    "# via b, c",
    "\\",
    "#",
    "",
    "--no-index",
    "./x/y",
    "d>=1,<2",
]


@given(
    st.lists(st.sampled_from(REQUIREMENT_PIECES) | st.text(max_size=10), max_size=12),
    st.sampled_from(["\n", "\r\n", " ", " \\\n"]),
)
def test_requirements_shaped(pieces: list[str], separator: str) -> None:
    check(requirements.parse, separator.join(pieces))


# --- requirements trees: every package line is a package or a problem, never dropped -----------------------

TREE_FILES = ["main.txt", "a.txt", "sub/b.txt", "sub/deep/c.txt"]
MISSING_FILES = ["missing.txt", "sub/nowhere.txt"]
INCLUDE_SPELLINGS = {
    "-r {}": False,
    "-r{}": False,
    "--requirement {}": False,
    "--requirement={}": False,
    "--req {}": None,  # ambiguous prefix (--requirement, --require-hashes): pip refuses it, so a problem
    "-c {}": True,
    "--constraint {}": True,
    "--constraint={}": True,
}
PACKAGE_SPELLINGS = [
    "{}==1.0",
    "{}[extra]>=1,<2",
    "{} ; python_version >= '3'",
    "{}==1.0 --hash=sha256:00 --hash sha256:11",
    "{}==1.0 \\\n    --hash=sha256:00",  # a continued line: its problems and packages belong to its first line
    "{} @ https://dl.example.org/{}-1.0.tar.gz",
]
UNPARSEABLE = [
    "--frobnicate",
    "!!!",
    "pkg==${VERSION}",
    "-r",
    "-e",
    "x>>1",
    "--index-url 'unterminated",
    "y @ https://[::1/z",
    "--re base.txt",
]
REMOTE = ["-r https://example.com/r.txt", "--constraint=HTTP://example.com/c.txt", "-r file://host/share/r.txt"]
PYPI_SPELLINGS = [
    "https://PyPI.org/simple/",
    "https://pypi.org:443/simple",
    "https://pypi.org/simple",
    "https://pypi.python.org/simple/",
]
INDEX_OPTIONS = ["-i {}", "--index-url={}", "--extra-index-url {}", "--pypi-url {}", "--index {}", "-f {}"]
PRIVATE = "https://corp.example.com/simple"

entries = st.one_of(
    st.tuples(st.just("package"), st.sampled_from(PACKAGE_SPELLINGS)),
    st.tuples(st.just("bad"), st.sampled_from(UNPARSEABLE)),
    st.tuples(
        st.just("include"), st.sampled_from(list(INCLUDE_SPELLINGS)), st.sampled_from(TREE_FILES + MISSING_FILES)
    ),
    st.tuples(st.just("remote"), st.sampled_from(REMOTE)),
    st.tuples(st.just("index"), st.sampled_from(INDEX_OPTIONS), st.sampled_from([*PYPI_SPELLINGS, PRIVATE])),
    st.tuples(st.just("noise"), st.sampled_from(["", "# a comment", "    # via -r r.in", "--pre", "--require-hashes"])),
)


class MemoryFiles:
    """An in-memory file system for the include walker."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def identity(self, path: str) -> str:
        return os.path.normpath(path)

    def read(self, path: str) -> str:
        if path not in self.files:
            raise LockfileError(path, "cannot read the file (No such file or directory)")
        return self.files[path]


def render(
    tree: dict[str, list[tuple[str, ...]]],
) -> tuple[dict[str, str], dict[str, list[tuple[int, tuple[str, ...]]]]]:
    """File texts, and per file each entry with its (first) line number and, for a package, its unique name."""
    texts: dict[str, str] = {}
    placed: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for index, (path, items) in enumerate(tree.items()):
        lines: list[str] = []
        placed[path] = []
        for entry in items:
            number = len(lines) + 1
            kind = entry[0]
            if kind == "package":
                name = f"Pkg_{index}.{number}"
                text = entry[1].format(name, name)
                entry = ("package", (name, entry[1]))
            elif kind == "include":
                target = os.path.relpath(entry[2], os.path.dirname(path) or ".")
                text = entry[1].format(target)
            elif kind == "index":
                text = entry[1].format(entry[2])
            else:
                text = entry[1]
            lines.extend(text.split("\n"))
            placed[path].append((number, entry))
        texts[path] = "\n".join(lines) + "\n"
    return texts, placed


@given(st.fixed_dictionaries({path: st.lists(entries, max_size=8) for path in TREE_FILES}))
def test_requirements_tree_drops_nothing(tree: dict[str, list[tuple[str, ...]]]) -> None:
    """Nested, cyclic and missing includes, odd index spellings, unparseable lines: each package line of a file
    pip would read as requirements is a LockedPackage, each line that cannot be followed or read is a problem
    at its file and line, and nothing else is a problem."""
    texts, placed = render(tree)
    inventory = requirements.parse(texts["main.txt"], "main.txt", MemoryFiles(texts))

    # what pip reads: files reached from main.txt, each in the role (-r or -c) it was reached in
    queue, seen = deque([("main.txt", False)]), {("main.txt", False)}
    packages: set[str] = set()
    subjects: set[str] = set()
    private = False
    while queue:
        path, constraint = queue.popleft()
        for number, entry in placed[path]:
            kind, where = entry[0], f"{path}:{number}"
            if kind == "package" and not constraint:
                packages.add(normalize(entry[1][0]))
            elif kind == "package" and "[" in entry[1][1]:
                subjects.add(where)  # pip refuses a constraint with extras
            elif kind in ("bad", "remote"):
                subjects.add(where)
            elif kind == "index":
                private = private or entry[2] == PRIVATE
            elif kind == "include":
                role = INCLUDE_SPELLINGS[entry[1]]
                if role is None or entry[2] in MISSING_FILES:
                    subjects.add(where)
                elif (entry[2], role) not in seen:
                    seen.add((entry[2], role))
                    queue.append((entry[2], role))

    assert {p.normalized for p in inventory.packages} == packages
    assert {re.sub(r" #\d+$", "", u.subject) for u in inventory.unverified} == subjects
    located = {p.source.kind for p in inventory.packages if p.source.url and "dl.example.org/" in p.source.url}
    assert located <= {"url"}
    from_index = {p.source.kind for p in inventory.packages if p.source.kind != "url"}
    assert from_index <= ({"index"} if private else {"pypi"})


@given(st.text(max_size=30))
def test_normalize_is_pep503(name: str) -> None:
    """``packaging``'s canonicalize_name gives exactly the PEP 503 regex's answer."""
    assert normalize(name) == re.sub(r"[-_.]+", "-", name).lower()


# --- regressions: inputs that once broke a parser, kept as explicit cases --------------------------------


def test_regression_long_blank_run_is_linear() -> None:
    """``(^|\\s+)#`` made comment stripping quadratic: 200k blanks took minutes. A hostile requirements file
    must not stall the gate."""
    started = time.perf_counter()
    inventory = requirements.parse("a==1" + " " * 200_000 + "\n" + "b==2" + " " * 200_000 + "# c\n")
    assert [p.normalized for p in inventory.packages] == ["a", "b"]
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (pipfile.parse, "[" * 100_000),
        (poetry.parse, "a = " + "[" * 100_000),
        (uv.parse, "a = " + "{b = " * 50_000),
        (pylock.parse, "a = " + "1" * 5_000),  # int-string conversion limit is a ValueError
        (pipfile.parse, "1" * 5_000),
    ],
    ids=["json-depth", "toml-depth", "toml-table-depth", "toml-huge-int", "json-huge-int"],
)
def test_regression_decoder_limits_are_lockfile_errors(parser: Parser, text: str) -> None:
    with pytest.raises(LockfileError, match="not valid"):
        parser(text, "fuzz")
