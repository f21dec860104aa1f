"""Lockfile inventory: exact agreement with the independently computed EXPECTED.json of five real lockfiles,
plus small inline lockfiles for the shapes those five do not contain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from subscribers.inventory.lockfiles import (
    MAX_BYTES,
    Inventory,
    LockfileError,
    PackageSource,
    detect_format,
    load,
    normalize,
    pipfile,
    poetry,
    pylock,
    requirements,
    uv,
)
from tests.fixture_paths import SHARED

FIXTURES = SHARED / "lockfiles"
KEYS = [
    "poetry2-python-poetry/poetry.lock",
    "uvlock-pallets-flask/uv.lock",
    "pylock-comfy-cli/pylock.toml",
    "pipfile-pypa-pipenv/Pipfile.lock",
    "pipcompile-pypi-warehouse/requirements/main.txt",
]
# EXPECTED.json names the kind of a non-PyPI entry by what the file says; the model has fewer kinds.
KIND_MAP = {"git": {"git"}, "editable": {"editable"}, "directory": {"path", "editable"}, "path": {"path"}}


def _fixtures() -> Path:
    if not (FIXTURES / "EXPECTED.json").is_file():
        pytest.fail(f"lockfile fixtures not found at {FIXTURES}; they are part of the repository")
    return FIXTURES


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_fixtures() / "EXPECTED.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def inventories() -> dict[str, Inventory]:
    return {key: load(_fixtures() / key) for key in KEYS}


def _version(expected_version: str | None) -> str | None:
    """EXPECTED.json copies Pipfile.lock's ``"*"`` (unpinned) verbatim; the model says None for unpinned."""
    return None if expected_version == "*" else expected_version


def _assert_valid_path(inventory: Inventory, path: list[str], target: str) -> None:
    """A path must start at a direct dependency, end at the target and follow only real edges."""
    edges = inventory.edges()
    direct = {p.normalized for p in inventory.direct()}
    assert path, f"no path to {target}"
    assert path[0] in direct, f"{path} does not start at a direct dependency"
    assert path[-1] == target
    for parent, child in zip(path, path[1:], strict=False):
        assert child in edges[parent], f"{parent} -> {child} is not an edge of the lockfile"


@pytest.mark.parametrize("key", KEYS)
def test_packages_match_expected(key: str, expected: dict[str, Any], inventories: dict[str, Inventory]):
    got = sorted([p.normalized, p.version] for p in inventories[key].packages)
    want = sorted([name, _version(version)] for name, version in expected[key]["packages"])
    assert got == want
    assert len(inventories[key].packages) == expected[key]["record_count"]


@pytest.mark.parametrize("key", KEYS)
def test_transitive_paths_are_shortest(key: str, expected: dict[str, Any], inventories: dict[str, Inventory]):
    inventory = inventories[key]
    for target, want in expected[key]["transitive_paths"].items():
        got = inventory.path_to(target)
        if inventory.root is not None:  # rooted formats start at the project; EXPECTED starts below it
            assert got[0] == inventory.root
            got = got[1:]
        _assert_valid_path(inventory, want, target)  # our graph has EXPECTED's edges
        _assert_valid_path(inventory, got, target)
        assert len(got) == len(want), f"{got} is not a shortest path (expected length of {want})"


@pytest.mark.parametrize("key", KEYS)
def test_non_pypi_entries(key: str, expected: dict[str, Any], inventories: dict[str, Inventory]):
    got = {p.normalized: p for p in inventories[key].packages if p.source.kind != "pypi"}
    want = expected[key]["non_pypi"]
    assert sorted(got) == sorted(entry["name"] for entry in want)
    for entry in want:
        package = got[entry["name"]]
        assert package.version == entry["version"]
        assert package.source.kind in KIND_MAP[entry["kind"]]
        assert package.source.url == entry["detail"]


@pytest.mark.parametrize("key", [k for k in KEYS if "pylock" not in k and "Pipfile" not in k])
def test_direct_dependencies(key: str, expected: dict[str, Any], inventories: dict[str, Inventory]):
    got = sorted({p.normalized for p in inventories[key].direct()})
    assert got == sorted(expected[key]["direct_dependencies"])


@pytest.mark.parametrize("key", ["pylock-comfy-cli/pylock.toml", "pipfile-pypa-pipenv/Pipfile.lock"])
def test_formats_without_graph_make_everything_direct(key: str, inventories: dict[str, Inventory]):
    inventory = inventories[key]
    assert all(p.direct and not p.dependencies for p in inventory.packages)
    assert inventory.path_to("idna") == ["idna"]


def test_pipfile_sections_are_kept(expected: dict[str, Any], inventories: dict[str, Inventory]):
    key = "pipfile-pypa-pipenv/Pipfile.lock"
    for section, packages in expected[key]["packages_by_section"].items():
        got = sorted([p.normalized, p.version] for p in inventories[key].packages if section in p.groups)
        assert got == sorted([name, _version(version)] for name, version in packages)


def test_fixture_formats_and_roots(inventories: dict[str, Inventory]):
    assert [inventories[k].format for k in KEYS] == [
        "poetry.lock",
        "uv.lock",
        "pylock.toml",
        "Pipfile.lock",
        "requirements.txt",
    ]
    assert [inventories[k].root for k in KEYS] == [None, "flask", None, None, None]
    uv_inventory = inventories["uvlock-pallets-flask/uv.lock"]
    assert uv_inventory.path_to("flask") == ["flask"]
    assert uv_inventory.path_to("click") == ["flask", "click"]
    assert len(uv_inventory.by_name()["sphinx"]) == 2


def test_fixture_hashes_and_markers(inventories: dict[str, Inventory]):
    warehouse = inventories["pipcompile-pypi-warehouse/requirements/main.txt"].by_name()
    assert warehouse["alembic"][0].hashes == (
        "sha256:06d8ba9d04558022f5395e9317de03d270f3dced49cee01f89fe7a13c26f14bc",
        "sha256:1554982221dd17e9a749b53902407578eb305e453f71999e8c7f0a48389fff8e",
    )
    assert warehouse["celery"][0].extras == ("redis",)
    assert warehouse["setuptools"][0].direct is False
    poetry_lock = inventories["poetry2-python-poetry/poetry.lock"].by_name()
    assert poetry_lock["backports-tarfile"][0].markers == 'python_version < "3.12"'
    assert len(poetry_lock["anyio"][0].hashes) == 2
    uv_packages = inventories["uvlock-pallets-flask/uv.lock"].packages
    assert all(p.hashes for p in uv_packages if p.source.kind == "pypi")


def test_poetry_without_pyproject_uses_graph_roots(expected: dict[str, Any]):
    key = "poetry2-python-poetry/poetry.lock"
    inventory = poetry.parse((_fixtures() / key).read_text(encoding="utf-8"), key)
    direct = {p.normalized for p in inventory.direct()}
    depended = {dep for p in inventory.packages for dep in p.dependencies}
    assert direct == {p.normalized for p in inventory.packages} - depended
    for target in expected[key]["transitive_paths"]:
        _assert_valid_path(inventory, inventory.path_to(target), target)


# --- inline lockfiles -------------------------------------------------------------------------------------

POETRY_LOCK = """\
[[package]]
name = "Private_Pkg"
version = "1.0"
optional = false
python-versions = "*"
groups = ["main"]
markers = {main = "sys_platform == 'linux'", dev = "python_version < '3.12'"}
files = [{file = "p-1.0.whl", hash = "sha256:aa"}, {file = "p-1.0.tar.gz", hash = "sha256:bb"}]

[package.dependencies]
requests = {version = ">=2", optional = true, markers = "extra == 'http'"}

[package.source]
type = "legacy"
url = "https://user:s3cret@pkgs.example.com/simple"
reference = "corp"

[[package]]
name = "requests"
version = "2.32.0"
optional = false
python-versions = "*"
groups = ["main"]
files = []

[package.dependencies]
idna = [{version = ">=2", markers = "python_version < '3'"}, {version = ">=3"}]

[[package]]
name = "idna"
version = "3.7"
optional = false
python-versions = "*"
files = []

[[package]]
name = "mylib"
version = "0.1"
optional = false
python-versions = "*"
develop = true
files = []

[package.source]
type = "directory"
url = "libs/mylib"

[[package]]
name = "fromgit"
version = "2.0"
optional = false
python-versions = "*"
files = []

[package.source]
type = "git"
url = "https://github.com/o/fromgit.git"
reference = "main"
resolved_reference = "abc123"

[[package]]
name = "pypi-mirror"
version = "1.0"
optional = false
python-versions = "*"
files = []

[package.source]
type = "legacy"
url = "https://pypi.org/simple/"
reference = "pypi-explicit"

[metadata]
lock-version = "2.1"
python-versions = "^3.11"
content-hash = "x"
"""


def test_poetry_inline_sources_hashes_markers():
    inventory = poetry.parse(POETRY_LOCK)
    by_name = {p.normalized: p for p in inventory.packages}
    private = by_name["private-pkg"]
    assert private.name == "Private_Pkg"
    assert private.source.kind == "index"
    assert private.source.url == "https://pkgs.example.com/simple"  # credentials never kept
    assert private.hashes == ("sha256:aa", "sha256:bb")
    assert private.markers == "(sys_platform == 'linux') or (python_version < '3.12')"
    assert private.dependencies == ("requests",)
    assert by_name["mylib"].source.kind == "editable"
    assert by_name["fromgit"].source == PackageSource("git", "https://github.com/o/fromgit.git@abc123")
    assert by_name["pypi-mirror"].source.kind == "pypi"
    assert inventory.path_to("idna") == ["private-pkg", "requests", "idna"]
    direct = sorted(p.normalized for p in inventory.direct())
    assert direct == ["fromgit", "mylib", "private-pkg", "pypi-mirror"]


def test_poetry_direct_names_override_graph():
    inventory = poetry.parse(POETRY_LOCK, direct_names=frozenset({"Requests"}))
    assert [p.normalized for p in inventory.direct()] == ["requests"]
    assert inventory.path_to("idna") == ["requests", "idna"]
    assert inventory.path_to("private-pkg") == []  # nothing reaches it
    assert inventory.path_to("not-locked") == []


def test_poetry_1x_metadata_files_and_category():
    text = """\
[[package]]
name = "six"
version = "1.16.0"
description = ""
category = "dev"
optional = false
python-versions = "*"

[metadata]
lock-version = "1.1"
python-versions = "^3.8"
content-hash = "x"

[metadata.files]
six = [
    {file = "six-1.16.0.tar.gz", hash = "sha256:1e61"},
]
"""
    (package,) = poetry.parse(text).packages
    assert package.groups == ("dev",)
    assert package.hashes == ("sha256:1e61",)
    assert package.direct


def test_pyproject_direct_names():
    text = """\
[project]
dependencies = ["Foo.Bar[x] >=1 ; python_version<'3.12'", "baz @ git+https://x/baz"]
optional-dependencies = {extra = ["qux"]}
[dependency-groups]
dev = ["pytest>=8", {include-group = "lint"}]
[tool.poetry.dependencies]
python = "^3.11"
Zed = "*"
[tool.poetry.group.docs.dependencies]
sphinx = "*"
"""
    names = poetry.direct_names_from_pyproject(text)
    assert names == {"foo-bar", "baz", "qux", "pytest", "zed", "sphinx"}


def test_load_reads_neighbouring_pyproject_for_poetry(tmp_path: Path):
    (tmp_path / "poetry.lock").write_text(POETRY_LOCK, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[tool.poetry.dependencies]\nrequests = "*"\n', encoding="utf-8")
    assert [p.normalized for p in load(tmp_path / "poetry.lock").direct()] == ["requests"]


UV_LOCK = """\
version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "corp-lib" }, { name = "httpx", extra = ["http2"] }, { name = "tool" }]

[package.dev-dependencies]
dev = [{ name = "local-plugin" }]

[[package]]
name = "corp-lib"
version = "3.0"
source = { registry = "https://token@corp.example.com/simple/" }
sdist = { url = "https://corp.example.com/corp-lib-3.0.tar.gz", hash = "sha256:cc" }

[[package]]
name = "httpx"
version = "0.28.1"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "h11", marker = "python_version >= '3.11'" }]
wheels = [{ url = "https://files.pythonhosted.org/h.whl", hash = "sha256:dd" }]

[[package]]
name = "h11"
version = "0.16.0"
source = { registry = "https://pypi.org/simple" }
resolution-markers = ["python_version >= '3.11'"]

[[package]]
name = "tool"
version = "1.0"
source = { git = "https://github.com/o/tool?rev=v1#0123abcd" }

[[package]]
name = "local-plugin"
version = "0.2"
source = { editable = "plugins/local" }
dependencies = [{ name = "mirrored" }]

[[package]]
name = "mirrored"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://evil.example.com/mirrored-1.0-py3-none-any.whl", hash = "sha256:ee" }]
"""


def test_uv_inline_root_sources_extras():
    inventory = uv.parse(UV_LOCK)
    by_name = {p.normalized: p for p in inventory.packages}
    assert inventory.root == "app"
    assert by_name["app"].source.kind == "project"
    assert by_name["corp-lib"].source == PackageSource("index", "https://corp.example.com/simple/")
    assert by_name["corp-lib"].hashes == ("sha256:cc",)
    assert by_name["tool"].source == PackageSource("git", "https://github.com/o/tool@0123abcd")
    assert by_name["local-plugin"].source.kind == "editable"
    assert by_name["httpx"].extras == ("http2",)
    assert by_name["h11"].markers == "(python_version >= '3.11')"
    # an editable record is a workspace member: what it asks for is direct too
    direct = sorted(p.normalized for p in inventory.direct())
    assert direct == ["corp-lib", "httpx", "local-plugin", "mirrored", "tool"]
    assert inventory.path_to("h11") == ["app", "httpx", "h11"]
    assert inventory.path_to("H11") == ["app", "httpx", "h11"]
    assert inventory.path_to("mirrored") == ["app", "local-plugin", "mirrored"]
    # says PyPI, but the recorded file (what uv downloads) is elsewhere: never treated as PyPI
    assert by_name["mirrored"].source == PackageSource("url", "https://evil.example.com/mirrored-1.0-py3-none-any.whl")


PYLOCK = """\
lock-version = "1.0"
created-by = "hand"

[[packages]]
name = "internal"
version = "1.0"
index = "https://nexus.example.com/repository/pypi/simple"
wheels = [{ url = "https://nexus.example.com/i.whl", hashes = { sha256 = "ee" } }]

[[packages]]
name = "vcs-dep"
vcs = { type = "git", url = "https://github.com/o/v.git", commit-id = "feed" }

[[packages]]
name = "archived"
archive = { url = "https://example.com/a-1.0.tar.gz", hashes = { sha256 = "ff" } }

[[packages]]
name = "unnamed-index"
version = "2.0"
marker = "os_name == 'nt'"
wheels = [{ url = "https://files.pythonhosted.org/u.whl", hashes = { sha256 = "11" } }]

[[packages]]
name = "sneaky"
version = "2.0"
wheels = [{ url = "https://evil.example.com/s.whl", hashes = { sha256 = "22" } }]

[[packages]]
name = "claims-pypi"
version = "2.0"
index = "https://pypi.org/simple"
wheels = [{ url = "https://user:pw@evil.example.com/c.whl", hashes = { sha256 = "33" } }]
"""


def test_pylock_inline_sources():
    inventory = pylock.parse(PYLOCK)
    by_name = {p.normalized: p for p in inventory.packages}
    assert by_name["internal"].source == PackageSource("index", "https://nexus.example.com/repository/pypi/simple")
    assert by_name["internal"].hashes == ("sha256:ee",)
    assert by_name["vcs-dep"].source == PackageSource("git", "https://github.com/o/v.git@feed")
    assert by_name["archived"].source.kind == "url"
    assert by_name["unnamed-index"].source.kind == "pypi"
    assert by_name["unnamed-index"].markers == "os_name == 'nt'"
    assert by_name["sneaky"].source.kind == "url"  # no index named, but not served by PyPI either
    assert by_name["claims-pypi"].source == PackageSource("url", "https://evil.example.com/c.whl")
    assert all(p.direct for p in inventory.packages)


def test_pylock_with_edges_and_bad_version():
    text = PYLOCK + '\n[[packages.dependencies]]\nname = "internal"\n'
    inventory = pylock.parse(text)
    direct = {p.normalized for p in inventory.direct()}
    assert direct == {"sneaky", "vcs-dep", "archived", "unnamed-index", "claims-pypi"}
    assert inventory.path_to("internal") == ["claims-pypi", "internal"]
    with pytest.raises(LockfileError, match="lock-version '2.0' is not supported"):
        pylock.parse('lock-version = "2.0"\n')


PIPFILE_LOCK = {
    "_meta": {
        "sources": [
            {"name": "pypi", "url": "https://pypi.org/simple", "verify_ssl": True},
            {"name": "corp", "url": "https://corp.example.com/simple", "verify_ssl": True},
        ]
    },
    "default": {
        "Requests": {"version": "==2.32.0", "hashes": ["sha256:01"], "markers": "python_version >= '3.8'"},
        "corp-lib": {"version": "==1.0", "index": "corp"},
        "ghost": {"version": "==1.0", "index": "undeclared"},
        "vcs": {"git": "https://github.com/o/vcs.git", "ref": "cafe"},
    },
    "develop": {
        "requests": {"version": "==2.32.0", "hashes": ["sha256:01"]},
        "me": {"path": ".", "editable": True, "version": "*"},
        "myst-parser": {"version": "==5.0.0", "extras": ["linkify"]},
    },
}


def test_pipfile_inline_sections_and_sources():
    inventory = pipfile.parse(json.dumps(PIPFILE_LOCK))
    by_name = {p.normalized: p for p in inventory.packages}
    assert len(inventory.packages) == 6  # requests, locked identically in both sections, is one record
    assert by_name["requests"].groups == ("default", "develop")
    assert by_name["requests"].markers == "python_version >= '3.8'"
    assert by_name["requests"].source.kind == "pypi"
    assert by_name["corp-lib"].source == PackageSource("index", "https://corp.example.com/simple")
    assert by_name["ghost"].source.kind == "index"  # an index we cannot resolve is still not PyPI
    assert by_name["vcs"].source == PackageSource("git", "https://github.com/o/vcs.git@cafe")
    assert by_name["me"].source.kind == "editable"
    assert by_name["me"].version is None
    assert by_name["myst-parser"].extras == ("linkify",)


def test_pipfile_private_default_source_is_not_pypi():
    lock = {"_meta": {"sources": [{"name": "corp", "url": "https://corp.example.com/simple"}]}, "default": {}}
    lock["default"] = {"x": {"version": "==1"}}
    (package,) = pipfile.parse(json.dumps(lock)).packages
    assert package.source.kind == "index"


REQUIREMENTS = (
    "#\n"
    "#    pip-compile --generate-hashes requirements.in\n"
    "#\n"
    "--index-url https://pypi.org/simple\n"
    'celery[redis,sqs]==5.6.3 ; python_version < "3.12" \\\n'
    "    --hash=sha256:aa \\\n"
    "    --hash=sha256:bb\n"
    "    # via -r requirements.in\n"
    "kombu==5.6.2 \\\n"
    "    --hash=sha256:cc\n"
    "    # via\n"
    "    #   -r requirements.in\n"
    "    #   celery\n"
    "vine==5.1.0\n"
    "    # via\n"
    "    #   celery\n"
    "    #   kombu\n"
    "amqp==5.3.1  # via kombu\n"
    "tzdata==2024.1\n"
    "    # via celery, kombu\n"
    "-e git+https://github.com/o/proj.git@v1#egg=proj\n"
    "-e ./libs/local_pkg\n"
    "wheelpkg @ https://example.com/wheelpkg-1.0-py3-none-any.whl\n"
    "django>=4,<5\n"
    "plugin==1.0\n"
    "    # via myproject (pyproject.toml)\n"
    "\n"
    "# The following packages are considered to be unsafe in a requirements file:\n"
    "setuptools==81.0.0\n"
    "    # via celery\n"
)


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_requirements_inline(newline: str):
    inventory = requirements.parse(REQUIREMENTS.replace("\n", newline))
    by_name = {p.normalized: p for p in inventory.packages}
    celery = by_name["celery"]
    assert (celery.version, celery.extras) == ("5.6.3", ("redis", "sqs"))
    assert celery.hashes == ("sha256:aa", "sha256:bb")
    assert celery.markers == 'python_version < "3.12"'
    assert celery.direct and celery.groups == ("-r requirements.in",)
    assert by_name["kombu"].direct
    assert not by_name["vine"].direct
    assert not by_name["amqp"].direct  # inline `# via` (annotation-style=line)
    assert by_name["celery"].dependencies == ("kombu", "setuptools", "tzdata", "vine")
    assert by_name["kombu"].dependencies == ("amqp", "tzdata", "vine")
    assert inventory.path_to("amqp") == ["kombu", "amqp"]
    assert inventory.path_to("setuptools") == ["celery", "setuptools"]
    assert by_name["proj"].source == PackageSource("git", "https://github.com/o/proj.git@v1")
    assert by_name["proj"].version is None
    assert by_name["local-pkg"].source == PackageSource("editable", "./libs/local_pkg")
    assert by_name["wheelpkg"].source.kind == "url"
    assert by_name["django"].version is None and by_name["django"].direct
    assert by_name["plugin"].direct
    assert {p.source.kind for p in inventory.packages if p.version} == {"pypi"}


def test_requirements_private_and_extra_indexes_are_not_pypi():
    private = requirements.parse("-i https://me:pw@corp.example.com/simple\nfoo==1.0\n")
    assert private.packages[0].source == PackageSource("index", "https://corp.example.com/simple")
    extra = requirements.parse("--extra-index-url=https://corp.example.com/simple\nfoo==1.0\n")
    assert extra.packages[0].source.kind == "index"  # pip may take foo from either index
    pypi = requirements.parse("--index-url https://pypi.python.org/simple\nfoo==1.0\n")
    assert pypi.packages[0].source.kind == "pypi"


def test_requirements_without_annotations_are_all_direct():
    inventory = requirements.parse("a==1\nb==2 # pinned by hand\n\n  \nc===3\n")
    assert [(p.normalized, p.version, p.direct) for p in inventory.packages] == [
        ("a", "1", True),
        ("b", "2", True),
        ("c", "3", True),
    ]
    assert inventory.path_to("b") == ["b"]


def test_requirements_errors_name_the_line():
    """A line that is not a requirement no longer fails the whole file: it is unverified, by file and line, and
    the rest is still read (tests/subscribers/inventory/lockfiles/test_unverified.py has the cases)."""
    inventory = requirements.parse("a==1\nthis is not a requirement\n")
    assert [p.normalized for p in inventory.packages] == ["a"]
    (problem,) = inventory.unverified
    assert (problem.subject, problem.reason) == ("requirements.txt:2", "unparsed-line")
    assert problem.message.startswith("line 2: ") and "regenerate" in problem.message


@pytest.mark.parametrize("key", KEYS)
def test_real_lockfiles_have_nothing_unverified(key: str, inventories: dict[str, Inventory]):
    assert inventories[key].unverified == ()


def test_detect_format():
    assert detect_format("x/poetry.lock") == "poetry.lock"
    assert detect_format(Path("uv.lock")) == "uv.lock"
    assert detect_format("pylock.toml") == "pylock.toml"
    assert detect_format("pylock.dev.toml") == "pylock.toml"
    assert detect_format("Pipfile.lock") == "Pipfile.lock"
    assert detect_format("requirements/main.txt") == "requirements.txt"
    for name in ("package-lock.json", "pylock.a.b.toml", "Pipfile"):
        with pytest.raises(LockfileError, match="supported names: poetry.lock"):
            detect_format(name)


def test_load_rejects_oversized_non_utf8_and_missing(tmp_path: Path):
    big = tmp_path / "uv.lock"
    with big.open("wb") as handle:  # sparse: no real disk use
        handle.truncate(MAX_BYTES + 1)
    with pytest.raises(LockfileError, match="larger than 50 MiB"):
        load(big)
    latin = tmp_path / "requirements.txt"
    latin.write_bytes(b"caf\xe9==1\n")
    with pytest.raises(LockfileError, match="not UTF-8"):
        load(latin)
    with pytest.raises(LockfileError, match="cannot read"):
        load(tmp_path / "poetry.lock")


def test_load_strips_bom(tmp_path: Path):
    lock = tmp_path / "requirements.txt"
    lock.write_bytes(b"\xef\xbb\xbfa==1\r\n")
    assert [p.version for p in load(lock).packages] == ["1"]


def test_normalize():
    assert normalize("Foo.Bar__baz--Qux") == "foo-bar-baz-qux"
    assert normalize("a._-_.B") == "a-b"


@pytest.mark.parametrize(
    ("parser", "text", "reason"),
    [
        (poetry.parse, "[[package]]\nname = 1\n", "must be a string"),
        (poetry.parse, "[[package]\n", "not valid TOML"),
        (uv.parse, '[[package]]\nname = "a"\nsource = { registry = "x", git = "y" }\n', "exactly one key"),
        (uv.parse, '[[package]]\nname = "a"\n', "source must be a table"),
        (pipfile.parse, "[]", "must be a table/object"),
        (pipfile.parse, '{"default": {"a": {"hashes": "sha256:x"}}}', "must be an array"),
        (pylock.parse, "packages = []\n", "lock-version is missing"),
    ],
)
def test_bad_input_is_a_lockfile_error(parser: Any, text: str, reason: str):
    with pytest.raises(LockfileError, match=reason):
        parser(text, "some/file")
