"""requirements.txt includes (``-r``/``-c``): followed as pip follows them, or recorded as unverified, never dropped.

Every test here reads real files through :func:`subscribers.inventory.lockfiles.load`, which is what ``qwatch gate
--lock`` does. Before includes were followed, ``-r base.txt`` made everything in base.txt vanish from the inventory and
the gate passed a lockfile it had not checked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from subscribers.inventory.lockfiles import Inventory, LockfileError, PackageSource, load, parse_text, requirements
from subscribers.inventory.lockfiles.requirements import MAX_INCLUDED_FILES


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def versions(inventory: Inventory) -> dict[str, str | None]:
    return {p.normalized: p.version for p in inventory.packages}


def problems(inventory: Inventory) -> dict[str, str]:
    return {u.subject: u.reason for u in inventory.unverified}


@pytest.mark.parametrize(
    "spelling",
    ["-r base.txt", "-rbase.txt", "--requirement base.txt", "--requirement=base.txt", "--requirem base.txt"],
)
def test_requirement_include_spellings(tmp_path: Path, spelling: str) -> None:
    write(tmp_path, {"reqs/main.txt": f"top==1.0\n{spelling}\n", "reqs/base.txt": "Base_Pkg==2.0\n"})
    inventory = load(tmp_path / "reqs" / "main.txt")
    assert versions(inventory) == {"top": "1.0", "base-pkg": "2.0"}
    assert inventory.unverified == ()
    assert {p.source.kind for p in inventory.packages} == {"pypi"}


def test_includes_resolve_against_the_including_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each relative path is read from the directory of the file that names it, not the working directory."""
    write(
        tmp_path,
        {
            "proj/requirements.txt": "-r reqs/prod.txt\n",
            "proj/reqs/prod.txt": "prod==1\n-r ../common/shared.txt\n",
            "proj/common/shared.txt": "shared==2\n-r deeper/leaf.txt\n",
            "proj/common/deeper/leaf.txt": "leaf==3\n",
            "proj/reqs/leaf.txt": "wrong==9\n",  # the same name, next to the wrong file
        },
    )
    monkeypatch.chdir(tmp_path)
    inventory = load(Path("proj/requirements.txt"))
    assert versions(inventory) == {"prod": "1", "shared": "2", "leaf": "3"}
    assert inventory.unverified == ()


def test_absolute_include_outside_the_project_is_read(tmp_path: Path) -> None:
    write(tmp_path, {"elsewhere/base.txt": "far==1\n"})
    write(tmp_path, {"proj/requirements.txt": f"-r {tmp_path / 'elsewhere' / 'base.txt'}\n"})
    inventory = load(tmp_path / "proj" / "requirements.txt")
    assert versions(inventory) == {"far": "1"}
    assert inventory.unverified == ()


def test_file_url_include_is_read_and_a_quoted_path_works(tmp_path: Path) -> None:
    write(tmp_path, {"my reqs/base.txt": "spaced==1\n", "url.txt": "byurl==2\n"})
    write(tmp_path, {"requirements.txt": f"-r 'my reqs/base.txt'\n-r {(tmp_path / 'url.txt').as_uri()}\n"})
    inventory = load(tmp_path / "requirements.txt")
    assert versions(inventory) == {"spaced": "1", "byurl": "2"}
    assert inventory.unverified == ()


def test_cycles_and_repeats_are_read_once_without_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "main==1\n-r a.txt\n-r ./b.txt\n-r requirements.txt\n",
            "a.txt": "a==1\n-r common.txt\n-r requirements.txt\n",
            "b.txt": "b==1\n-r sub/../common.txt\n-r a.txt\n",
            "common.txt": "common==1\n-r b.txt\n",
        },
    )
    inventory = load(tmp_path / "requirements.txt")
    assert sorted(p.normalized for p in inventory.packages) == ["a", "b", "common", "main"]
    assert inventory.unverified == ()


def test_symlink_cycle_ends(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "x==1\n-r link.txt\n"})
    os.symlink(tmp_path / "requirements.txt", tmp_path / "link.txt")
    inventory = load(tmp_path / "requirements.txt")
    assert versions(inventory) == {"x": "1"}
    assert inventory.unverified == ()


def test_index_options_in_an_include_apply_to_every_file(tmp_path: Path) -> None:
    """pip's index options are install-wide: a private index named in base.txt makes top.txt's packages
    ambiguous too (dependency confusion), so none of them may be treated as PyPI."""
    write(
        tmp_path,
        {
            "requirements.txt": "top==1\n-r base.txt\n",
            "base.txt": "--extra-index-url https://corp.example.com/simple\ninner==2\n",
        },
    )
    inventory = load(tmp_path / "requirements.txt")
    assert {p.source for p in inventory.packages} == {PackageSource("index", "https://corp.example.com/simple")}


@pytest.mark.parametrize("spelling", ["-c constraints.txt", "--constraint constraints.txt", "--constraint=c.txt"])
def test_constraints_pin_but_add_no_package(tmp_path: Path, spelling: str) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": f"{spelling}\nunpinned\nranged>=1,<3\npinned==1.0\n",
            "constraints.txt": "unpinned==2.5\nranged==2.0\npinned==1.0\nonly-constrained==9.9\n",
        },
    )
    write(tmp_path, {"c.txt": (tmp_path / "constraints.txt").read_text(encoding="utf-8")})
    inventory = load(tmp_path / "requirements.txt")
    assert versions(inventory) == {"unpinned": "2.5", "ranged": "2.0", "pinned": "1.0"}
    assert inventory.unverified == ()


def test_constraint_url_and_markers(tmp_path: Path) -> None:
    """A ``name @ url`` constraint makes pip take the package from there; a constraint with a marker applies in
    some environments only, so the unconstrained record stays beside it."""
    write(
        tmp_path,
        {
            "requirements.txt": "-c constraints.txt\nfromurl\nsplit\nown @ https://example.com/own-1.0.tar.gz\n",
            "constraints.txt": (
                "fromurl @ https://evil.example.com/fromurl-1.0-py3-none-any.whl\n"
                "split==1.0 ; python_version < '3.12'\n"
                "own==5.0\n"
            ),
        },
    )
    inventory = load(tmp_path / "requirements.txt")
    by_name = inventory.by_name()
    (fromurl,) = by_name["fromurl"]
    assert fromurl.source == PackageSource("url", "https://evil.example.com/fromurl-1.0-py3-none-any.whl")
    assert sorted((p.version or "", p.markers or "") for p in by_name["split"]) == [
        ("", ""),
        ("1.0", "python_version < '3.12'"),
    ]
    (own,) = by_name["own"]
    assert own.source.kind == "url"  # the requirement's own URL wins over a constraint's pin
    assert inventory.unverified == ()


def test_constraints_pip_refuses_are_unverified(tmp_path: Path) -> None:
    """pip refuses editable, unnamed and extras constraints (the install fails): reported, never applied."""
    write(
        tmp_path,
        {
            "requirements.txt": "-c constraints.txt\nrequests\nlocal\nwithextra\n",
            "constraints.txt": ("-e ./local\nhttps://evil.example.com/requests-1.0.tar.gz\nwithextra[x]==1\nfine==1\n"),
        },
    )
    inventory = load(tmp_path / "requirements.txt")
    assert {p.normalized: (p.version, p.source.kind) for p in inventory.packages} == {
        "requests": (None, "pypi"),
        "local": (None, "pypi"),
        "withextra": (None, "pypi"),
    }
    constraints = str(tmp_path / "constraints.txt")
    assert problems(inventory) == {f"{constraints}:{n}": "unparsed-line" for n in (1, 2, 3)}


def test_requirement_include_inside_a_constraints_file_adds_packages(tmp_path: Path) -> None:
    """pip reads a ``-r`` in a constraints file as requirements: those packages are installed."""
    write(
        tmp_path,
        {
            "requirements.txt": "-c constraints.txt\n",
            "constraints.txt": "-r more.txt\nconstrained-only==1\n",
            "more.txt": "installed==1\n",
        },
    )
    inventory = load(tmp_path / "requirements.txt")
    assert versions(inventory) == {"installed": "1"}


def test_same_file_as_requirements_and_constraints(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "-c both.txt\n-r both.txt\nloose\n", "both.txt": "loose==3\ntight==4\n"})
    inventory = load(tmp_path / "requirements.txt")
    assert versions(inventory) == {"loose": "3", "tight": "4"}


def test_missing_include_is_unverified(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "ok==1\n\n-r missing.txt\n-c gone/constraints.txt\n"})
    inventory = load(tmp_path / "requirements.txt")
    assert versions(inventory) == {"ok": "1"}
    main = str(tmp_path / "requirements.txt")
    assert problems(inventory) == {f"{main}:3": "include-unreadable", f"{main}:4": "include-unreadable"}
    message = inventory.unverified[0].message
    assert "-r missing.txt" in message and "No such file" in message and "cannot be checked" in message


def test_nested_missing_include_names_the_nested_file(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "-r sub/base.txt\n", "sub/base.txt": "fine==1\n\n-r nope.txt\n"})
    inventory = load(tmp_path / "requirements.txt")
    assert versions(inventory) == {"fine": "1"}
    assert problems(inventory) == {str(tmp_path / "sub" / "base.txt") + ":3": "include-unreadable"}
    assert str(tmp_path / "sub" / "nope.txt") in inventory.unverified[0].message


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"caf\xe9==1\n", "not UTF-8"),
        (None, "not a regular file"),  # a directory
    ],
    ids=["undecodable", "directory"],
)
def test_unreadable_include_is_unverified(tmp_path: Path, content: bytes | None, why: str) -> None:
    if content is None:
        (tmp_path / "base.txt").mkdir()
    else:
        (tmp_path / "base.txt").write_bytes(content)
    write(tmp_path, {"requirements.txt": "-r base.txt\n"})
    inventory = load(tmp_path / "requirements.txt")
    assert inventory.packages == ()
    (problem,) = inventory.unverified
    assert (problem.reason, why in problem.message) == ("include-unreadable", True)


def test_permission_denied_include_is_unverified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the gate may not read (simulated: the tests may run as root, which reads any file)."""
    write(tmp_path, {"requirements.txt": "-r secret.txt\n", "secret.txt": "hidden==1\n"})
    real_open = Path.open

    def guarded_open(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "secret.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", guarded_open)
    inventory = load(tmp_path / "requirements.txt")
    assert inventory.packages == ()
    (problem,) = inventory.unverified
    assert problem.reason == "include-unreadable" and "Permission denied" in problem.message


def test_fifo_include_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    write(tmp_path, {"requirements.txt": "-r pipe.txt\n"})
    (problem,) = load(tmp_path / "requirements.txt").unverified
    assert problem.reason == "include-unreadable" and "not a regular file" in problem.message


@pytest.mark.parametrize(
    "line",
    [
        "-r https://example.com/base.txt",
        "--requirement=HTTP://example.com/base.txt",
        "-c https://example.com/constraints.txt",
        "-r file://fileserver/share/base.txt",
    ],
)
def test_remote_include_is_unverified(tmp_path: Path, line: str) -> None:
    write(tmp_path, {"requirements.txt": f"a==1\n{line}\n"})
    inventory = load(tmp_path / "requirements.txt")
    assert versions(inventory) == {"a": "1"}
    assert [(u.subject, u.reason) for u in inventory.unverified] == [
        (f"{tmp_path / 'requirements.txt'}:2", "include-remote")
    ]
    assert "offline" in inventory.unverified[0].message or "another host" in inventory.unverified[0].message


def test_text_without_a_file_system_records_includes_as_not_followed() -> None:
    for inventory in (
        requirements.parse("a==1\n-r base.txt\n", "in-memory.txt"),
        parse_text("a==1\n-c c.txt\n", "requirements.txt", "in-memory.txt"),
    ):
        assert versions(inventory) == {"a": "1"}
        assert [(u.subject, u.reason) for u in inventory.unverified] == [("in-memory.txt:2", "include-not-followed")]


def test_include_count_is_bounded(tmp_path: Path) -> None:
    chain = MAX_INCLUDED_FILES + 5
    write(tmp_path, {f"f{i}.txt": f"p{i}==1\n-r f{i + 1}.txt\n" for i in range(chain)})
    write(tmp_path, {f"f{chain}.txt": "last==1\n"})
    inventory = load(tmp_path / "f0.txt")
    assert len(inventory.packages) == MAX_INCLUDED_FILES + 1  # f0 and MAX_INCLUDED_FILES includes
    (problem,) = inventory.unverified
    assert problem.reason == "include-unreadable" and "included files" in problem.message


def test_main_file_errors_are_still_errors(tmp_path: Path) -> None:
    """Only includes become problems; an unreadable lockfile itself is still a LockfileError."""
    with pytest.raises(LockfileError, match="cannot read"):
        load(tmp_path / "requirements.txt")
