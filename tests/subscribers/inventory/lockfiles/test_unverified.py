"""What a parser does not understand is recorded in ``Inventory.unverified``, never skipped; and "from PyPI" is
decided on a canonical index URL in every format.

Each case here was a way to make ``qwatch gate --lock`` exit 0 without checking a package: a line or option the
requirements parser skipped, a pip spelling of an index option it did not know (so a private index went
unnoticed), a source kind it guessed at, an odd spelling of PyPI's URL that sent PyPI packages down the
"other index" path.
"""

from __future__ import annotations

import json

import pytest

from subscribers.inventory.lockfiles import Inventory, PackageSource, pipfile, poetry, pylock, requirements, uv
from subscribers.inventory.lockfiles.model import MAX_PROBLEMS


def kinds(inventory: Inventory) -> dict[str, str]:
    return {p.normalized: p.source.kind for p in inventory.packages}


def problems(inventory: Inventory) -> list[tuple[str, str]]:
    return [(u.subject, u.reason) for u in inventory.unverified]


# --- requirements.txt: nothing vanishes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("--frobnicate", "unknown option '--frobnicate'"),
        ("--install-option=--prefix=/x", "unknown option '--install-option'"),
        ("-Z", "unknown option '-Z'"),
        ("--re base.txt", "unknown option '--re'"),  # ambiguous: --requirement or --require-hashes
        ("--no-index=yes", "takes no value"),
        ("-r", "needs a value"),
        ("-e", "needs a value"),
        ("--index-url 'https://pypi.org/simple", "cannot split"),
        ("this is not a requirement", "not a requirement"),
        ("pkg==${VERSION}", "cannot read version specifier"),
        ("pkg>>1", "cannot read version specifier"),
        ("pkg @ https://[::1/x.whl", "malformed URL"),
        ("-e https://[::1/x", "malformed URL"),
        ("pkg @", "no URL or path"),
    ],
)
def test_unparsed_lines_are_unverified_with_line_number(line: str, why: str) -> None:
    inventory = requirements.parse(f"ok==1\n# comment\n{line}\nafter==2\n", "reqs.txt")
    assert [p.normalized for p in inventory.packages] == ["ok", "after"]
    assert problems(inventory) == [("reqs.txt:3", "unparsed-line")]
    message = inventory.unverified[0].message
    assert message.startswith("line 3: ") and why in message and "regenerate" in message


def test_continued_line_problem_names_its_first_line() -> None:
    inventory = requirements.parse("a==1\nbad \\\n  line \\\n  here\n")
    assert problems(inventory) == [("requirements.txt:2", "unparsed-line")]


def test_unknown_option_on_a_requirement_keeps_the_requirement() -> None:
    inventory = requirements.parse("pkg==1.0 --install-option=x --hash=sha256:aa\n")
    (package,) = inventory.packages
    assert (package.normalized, package.version, package.hashes) == ("pkg", "1.0", ("sha256:aa",))
    assert problems(inventory) == [("requirements.txt:1", "unparsed-line")]


def test_stray_words_after_options_are_reported_and_the_options_applied() -> None:
    inventory = requirements.parse("--extra-index-url https://corp.example.com/simple junk\npkg==1\n")
    assert kinds(inventory) == {"pkg": "index"}
    assert problems(inventory) == [("requirements.txt:1", "unparsed-line")]
    assert "stray word 'junk'" in inventory.unverified[0].message


def test_known_options_are_not_problems() -> None:
    text = (
        "--require-hashes\n--no-require-hashes\n--pre\n--prefer-binary\n--only-binary :all:\n--no-binary=:none:\n"
        "--trusted-host corp.example.com\n--use-feature truststore\n--all-releases :all:\n--only-final x\n"
        "-C key=value\n--config-settings=k=v\n--hash sha256:00\n--prefer-bin\n"
        "pkg==1.0 --hash sha256:aa --hash=sha256:bb -C k=v --config-settings=x=y\n"
    )
    inventory = requirements.parse(text)
    assert inventory.unverified == ()
    assert inventory.packages[0].hashes == ("sha256:aa", "sha256:bb")


@pytest.mark.parametrize(
    "line",
    [
        "--pypi-url https://corp.example.com/simple",  # pip's alias of --index-url
        "--index https://corp.example.com/simple",  # optparse accepts unambiguous prefixes
        "--extra-index=https://corp.example.com/simple",
        "--extra https://corp.example.com/simple",
        "-ihttps://corp.example.com/simple",
        "--find https://corp.example.com/wheels/",
        "-i https://pypi.org/simple --extra-index-url https://corp.example.com/simple",  # two options, one line
    ],
)
def test_every_pip_spelling_of_an_index_option_is_seen(line: str) -> None:
    """pip would take ``pkg`` from the private index: it must not be checked (or passed) as a PyPI package."""
    inventory = requirements.parse(f"{line}\npkg==1.0\n")
    assert inventory.packages[0].source.kind == "index"
    assert inventory.packages[0].source.url is not None
    assert inventory.packages[0].source.url.startswith("https://corp.example.com/")
    assert inventory.unverified == ()


def test_index_option_in_a_continued_line_is_seen() -> None:
    inventory = requirements.parse("--extra-index-url \\\n  https://corp.example.com/simple\npkg==1\n")
    assert kinds(inventory) == {"pkg": "index"}


def test_later_pypi_index_does_not_hide_an_earlier_private_one() -> None:
    inventory = requirements.parse("-i https://corp.example.com/simple\npkg==1\n-i https://pypi.org/simple\n")
    assert kinds(inventory) == {"pkg": "index"}


@pytest.mark.parametrize(
    ("line", "name", "source"),
    [
        ("pkg-1.0.tar.gz", "pkg", PackageSource("path", "pkg-1.0.tar.gz")),
        ("dist/pkg-1.0-py3-none-any.whl", "pkg", PackageSource("path", "dist/pkg-1.0-py3-none-any.whl")),
        ("libs/local_project", "local_project", PackageSource("path", "libs/local_project")),
    ],
)
def test_bare_paths_are_paths_not_project_names(line: str, name: str, source: PackageSource) -> None:
    """pip installs these from the local file system; as names they would be looked up on PyPI."""
    (package,) = requirements.parse(line + "\n").packages
    assert (package.name, package.source) == (name, source)


def test_problem_count_is_bounded() -> None:
    inventory = requirements.parse("???\n" * (MAX_PROBLEMS + 50))
    assert len(inventory.unverified) == MAX_PROBLEMS + 1
    last = inventory.unverified[-1]
    assert last.reason == "too-many-problems" and "50 more" in last.message
    assert len({u.subject for u in inventory.unverified}) == len(inventory.unverified)


def test_problem_subjects_are_unique() -> None:
    inventory = requirements.parse("-e --frobnicate\n")  # the value of -e is the unknown option; one line, one report
    assert len({u.subject for u in inventory.unverified}) == len(inventory.unverified)
    inventory = requirements.parse("-r https://a.example/x.txt -r https://b.example/y.txt\n")
    assert [u.subject for u in inventory.unverified] == ["requirements.txt:1", "requirements.txt:1 #2"]


# --- other formats: an entry that cannot be classified ------------------------------------------------------


def test_poetry_unknown_source_type_is_unverified_not_a_url() -> None:
    text = """\
[[package]]
name = "Strange_Pkg"
version = "1.0"
files = []

[package.source]
type = "hg"
url = "https://hg.example.com/strange"

[package.dependencies]
child = "*"

[[package]]
name = "child"
version = "2.0"
files = []
"""
    inventory = poetry.parse(text)
    assert kinds(inventory) == {"child": "pypi"}
    assert problems(inventory) == [("strange-pkg", "unknown-source")]
    assert "'hg'" in inventory.unverified[0].message
    assert inventory.direct() == []  # child is still a dependency of something, not a root


def test_uv_unknown_source_kind_is_unverified_and_the_rest_still_parsed() -> None:
    text = """\
version = 1
[[package]]
name = "odd"
version = "1.0"
source = { torrent = "magnet:?xt=x" }
[[package]]
name = "fine"
version = "2.0"
source = { registry = "https://pypi.org/simple" }
"""
    inventory = uv.parse(text)
    assert kinds(inventory) == {"fine": "pypi"}
    assert problems(inventory) == [("odd", "unknown-source")]


def test_pipfile_undeclared_index_is_unverified() -> None:
    lock = {
        "_meta": {"sources": [{"name": "pypi", "url": "https://pypi.org/simple"}, {"name": "nourl"}]},
        "default": {
            "ghost": {"version": "==1.0", "index": "undeclared"},
            "blank": {"version": "==1.0", "index": "nourl"},
            "fine": {"version": "==1.0", "index": "pypi"},
        },
    }
    inventory = pipfile.parse(json.dumps(lock))
    assert kinds(inventory) == {"ghost": "index", "blank": "index", "fine": "pypi"}
    assert problems(inventory) == [("ghost", "unknown-index"), ("blank", "unknown-index")]


# --- "from PyPI" on canonical index URLs, in every format ---------------------------------------------------

PYPI_SPELLINGS = [
    "https://PyPI.org/simple/",
    "https://pypi.org:443/simple",
    "https://pypi.org/simple",
    "https://pypi.python.org/simple/",
    "https://token@pypi.org/simple/",
]
NOT_PYPI = ["http://pypi.org/simple/", "https://test.pypi.org/simple/", "https://pypi.org@corp.example.com/simple"]


@pytest.mark.parametrize("url", PYPI_SPELLINGS)
@pytest.mark.parametrize("option", ["--index-url {}", "-i {}", "--extra-index-url={}", "--pypi-url {}"])
def test_requirements_pypi_spellings(url: str, option: str) -> None:
    assert kinds(requirements.parse(option.format(url) + "\npkg==1\n")) == {"pkg": "pypi"}


@pytest.mark.parametrize("url", PYPI_SPELLINGS)
def test_uv_pypi_spellings(url: str) -> None:
    text = f'version = 1\n[[package]]\nname = "pkg"\nversion = "1"\nsource = {{ registry = "{url}" }}\n'
    text += 'wheels = [{ url = "https://files.pythonhosted.org/p.whl", hash = "sha256:00" }]\n'
    assert kinds(uv.parse(text)) == {"pkg": "pypi"}


@pytest.mark.parametrize("url", PYPI_SPELLINGS)
def test_poetry_pypi_spellings(url: str) -> None:
    text = f'[[package]]\nname = "pkg"\nversion = "1"\nfiles = []\n[package.source]\ntype = "legacy"\nurl = "{url}"\n'
    assert kinds(poetry.parse(text)) == {"pkg": "pypi"}


@pytest.mark.parametrize("url", PYPI_SPELLINGS)
def test_pylock_pypi_spellings(url: str) -> None:
    text = f'lock-version = "1.0"\n[[packages]]\nname = "pkg"\nversion = "1"\nindex = "{url}"\n'
    assert kinds(pylock.parse(text)) == {"pkg": "pypi"}


@pytest.mark.parametrize("url", PYPI_SPELLINGS)
def test_pipfile_pypi_spellings(url: str) -> None:
    lock = {"_meta": {"sources": [{"name": "main", "url": url}]}, "default": {"pkg": {"version": "==1"}}}
    assert kinds(pipfile.parse(json.dumps(lock))) == {"pkg": "pypi"}


@pytest.mark.parametrize("url", NOT_PYPI)
def test_not_pypi_in_every_format(url: str) -> None:
    assert kinds(requirements.parse(f"-i {url}\npkg==1\n")) == {"pkg": "index"}
    uv_text = f'version = 1\n[[package]]\nname = "pkg"\nversion = "1"\nsource = {{ registry = "{url}" }}\n'
    assert kinds(uv.parse(uv_text)) == {"pkg": "index"}
    poetry_text = f'[[package]]\nname = "pkg"\nversion = "1"\n[package.source]\ntype = "legacy"\nurl = "{url}"\n'
    assert kinds(poetry.parse(poetry_text)) == {"pkg": "index"}
    assert kinds(pylock.parse(f'lock-version = "1.0"\n[[packages]]\nname = "pkg"\nindex = "{url}"\n')) == {
        "pkg": "index"
    }
    lock = {"_meta": {"sources": [{"name": "main", "url": url}]}, "default": {"pkg": {"version": "==1"}}}
    assert kinds(pipfile.parse(json.dumps(lock))) == {"pkg": "index"}


def test_uv_file_url_with_a_backslash_is_not_pypi() -> None:
    """``https://evil.example\\@files.pythonhosted.org/`` is evil.example to uv's (WHATWG) URL parser."""
    text = (
        'version = 1\n[[package]]\nname = "pkg"\nversion = "1"\nsource = { registry = "https://pypi.org/simple" }\n'
        'wheels = [{ url = "https://evil.example\\\\@files.pythonhosted.org/p.whl", hash = "sha256:00" }]\n'
    )
    assert kinds(uv.parse(text)) == {"pkg": "url"}
