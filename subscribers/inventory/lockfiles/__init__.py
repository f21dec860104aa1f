"""Lockfile inventory: every supported lockfile reduced to one typed list of packages with a dependency graph.

The parsers are pure (text in, :class:`Inventory` out) so they can be fuzzed and reused on text fetched from
anywhere; :func:`load` is the only place that touches the file system (for a requirements file, through the
reader it hands the parser to follow ``-r``/``-c`` includes).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from . import pipfile, poetry, pylock, requirements, uv
from .model import (
    Inventory,
    InventoryProblem,
    LockedPackage,
    LockfileError,
    PackageSource,
    ProblemReason,
    SourceKind,
    normalize,
)
from .requirements import IncludeReader

__all__ = [
    "MAX_BYTES",
    "IncludeReader",
    "Inventory",
    "InventoryProblem",
    "LockedPackage",
    "LockfileError",
    "PackageSource",
    "ProblemReason",
    "SourceKind",
    "detect_format",
    "load",
    "normalize",
    "parse_text",
]

MAX_BYTES = 50 * 1024 * 1024
"""Real lockfiles are a few MiB at most; the cap keeps a hostile or mistaken file from exhausting memory."""

SUPPORTED = "poetry.lock, uv.lock, pylock.toml, pylock.<name>.toml, Pipfile.lock, *.txt (requirements)"
_PYLOCK = re.compile(r"pylock\.([^.]+\.)?toml")


def detect_format(filename: str | Path) -> str:
    """The format from the file name alone, as the tools that write these files name them."""
    name = Path(filename).name
    if name in ("poetry.lock", "uv.lock", "Pipfile.lock"):
        return name
    if _PYLOCK.fullmatch(name):
        return "pylock.toml"
    if name.endswith(".txt"):
        return "requirements.txt"
    raise LockfileError(str(filename), f"unknown lockfile name {name!r}; supported names: {SUPPORTED}")


def parse_text(
    text: str,
    fmt: str,
    path: str,
    direct_names: frozenset[str] | None = None,
    read_include: IncludeReader | None = None,
) -> Inventory:
    """Dispatch text to a parser by format; ``direct_names`` is only used for poetry.lock, ``read_include`` only
    for requirements files (without it their includes are listed in ``Inventory.unverified``, not followed)."""
    if fmt == "poetry.lock":
        return poetry.parse(text, path, direct_names)
    if fmt == "requirements.txt":
        return requirements.parse(text, path, read_include)
    parsers = {
        "uv.lock": uv.parse,
        "pylock.toml": pylock.parse,
        "Pipfile.lock": pipfile.parse,
    }
    if fmt not in parsers:
        raise LockfileError(path, f"unknown format {fmt!r}; supported names: {SUPPORTED}")
    return parsers[fmt](text, path)


def load(path: Path) -> Inventory:
    """Read, size-check and parse one lockfile.

    poetry.lock has no project record, so a ``pyproject.toml`` beside it names the direct dependencies.
    """
    fmt = detect_format(path)
    text = _read(path)
    direct_names = None
    pyproject = path.with_name("pyproject.toml")
    if fmt == "poetry.lock" and pyproject.is_file():
        direct_names = poetry.direct_names_from_pyproject(_read(pyproject), str(pyproject))
    return parse_text(text, fmt, str(path), direct_names, FileIncludes())


class FileIncludes:
    """Includes read from the file system, with the limits and decoding of the lockfile itself."""

    def identity(self, path: str) -> str:
        """The real path: symlinks and ``a/../a.txt`` spellings are one file to the loop guard."""
        return os.path.realpath(path)

    def read(self, path: str) -> str:
        """Only regular files: ``-r /dev/stdin`` or a FIFO would block the gate forever."""
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise LockfileError(path, f"cannot read the file ({exc.strerror or exc})") from exc
        if not stat.S_ISREG(mode):
            raise LockfileError(path, "not a regular file")
        return _read(Path(path))


def _read(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise LockfileError(str(path), f"cannot read the file ({exc.strerror or exc}); check the path") from exc
    if len(data) > MAX_BYTES:
        raise LockfileError(str(path), f"larger than {MAX_BYTES // (1024 * 1024)} MiB; this is not a lockfile")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise LockfileError(str(path), f"not UTF-8 ({exc.reason} at byte {exc.start}); re-save it as UTF-8") from exc
