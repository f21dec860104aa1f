"""One logical requirements.txt line to its parts, kept apart from the file-level walk.

Only the shapes pip accepts are read: ``name[extras] specifiers ; marker``, ``name @ url``, bare VCS/URL/path
requirements (name from ``#egg=`` or the file name) and per-line options (``--hash``). Option lines are split
into options as pip's ``optparse`` does (:func:`parse_options`), abbreviations and ``--pypi-url`` included, so an
option spelt in a way pip accepts is never mistaken for an unknown one, and an unknown one is reported.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from qwatch.errors import QwatchError

from ._common import redact
from .model import PackageSource

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_NAMED = re.compile(rf"(?P<name>{_NAME})\s*(?:\[(?P<extras>[^\]]*)\])?\s*(?P<rest>.*)", re.DOTALL)
_SPEC = re.compile(r"\s*(?P<op>~=|===|==|!=|<=|>=|<|>)\s*(?P<version>[A-Za-z0-9.*+!_-]+)\s*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_EGG = re.compile(rf"(?:^|&)egg=(?P<name>{_NAME})")
_WHEEL = re.compile(rf"(?P<name>{_NAME})-(?P<version>[^-]+)(?:-[^-]+)?-[^-]+-[^-]+-[^-]+\.whl")
_ARCHIVE = re.compile(r"(?P<name>[A-Za-z0-9._-]+?)-(?P<version>\d[^-]*)\.(?:tar\.gz|tar\.bz2|tar\.xz|zip|tgz)")
_VCS = ("git+", "hg+", "svn+", "bzr+")
_ARCHIVE_SUFFIXES = (
    ".zip",
    ".whl",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tlz",
    ".tar.lz",
    ".tar.lzma",
    ".tar.gz",
    ".tgz",
    ".tar",
)  # pip's is_archive_file: a bare `foo-1.0.tar.gz` is a local file to pip, not a project name

LONG_OPTIONS: dict[str, bool] = {
    "--index-url": True,
    "--pypi-url": True,  # an alias of --index-url
    "--extra-index-url": True,
    "--no-index": False,
    "--constraint": True,
    "--requirement": True,
    "--editable": True,
    "--find-links": True,
    "--no-binary": True,
    "--only-binary": True,
    "--prefer-binary": False,
    "--require-hashes": False,
    "--no-require-hashes": False,
    "--pre": False,
    "--all-releases": True,
    "--only-final": True,
    "--trusted-host": True,
    "--use-feature": True,
    "--hash": True,
    "--config-settings": True,
}
"""Every option pip reads in a requirements file (pip 26 ``req_file.SUPPORTED_OPTIONS`` and ``_REQ``), with
whether it takes a value. Anything else makes pip refuse the file; older pips knew a few more
(``--install-option``...), which are reported rather than guessed at."""
SHORT_OPTIONS = {"-i": "--index-url", "-c": "--constraint", "-r": "--requirement", "-e": "--editable"}
SHORT_OPTIONS |= {"-f": "--find-links", "-C": "--config-settings"}
ALIASES = {"--pypi-url": "--index-url"}


class RequirementSyntaxError(QwatchError, ValueError):
    """Raised for a line pip would reject; the file walker adds the path and line number."""


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """The parts of one requirement; ``source`` None means "from whatever indexes the file names".

    ``unknown_options`` are options after the requirement that pip does not know (it refuses such a line), each
    with why: the requirement itself was read, so it is kept, and the walker reports them. ``named`` is false
    for a bare URL or path, whose name was guessed from the location.
    """

    name: str
    version: str | None
    source: PackageSource | None
    hashes: tuple[str, ...]
    markers: str | None
    extras: tuple[str, ...]
    unknown_options: tuple[str, ...] = ()
    named: bool = True


@dataclass(frozen=True, slots=True)
class Options:
    """The options of one line as pip's optparse reads them: ``(long name, value)`` in order, positional
    words pip would ignore, and what it would refuse."""

    options: tuple[tuple[str, str | None], ...]
    positional: tuple[str, ...]
    errors: tuple[str, ...]


def parse_options(text: str) -> Options:
    """Split like pip (``shlex``), then read the words as ``optparse`` does, with its unambiguous-prefix rule."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        return Options((), (), (f"cannot split the options ({exc})",))
    options: list[tuple[str, str | None]] = []
    positional: list[str] = []
    errors: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--":
            positional += words[index:]
            break
        if not word.startswith("-") or word == "-":
            positional.append(word)
            continue
        if word.startswith("--"):
            spelt, has_value, attached = word.partition("=")
            name = _long_option(spelt)
            if name is None:
                errors.append(f"unknown option {spelt[:60]!r}")
                continue
            takes_value = LONG_OPTIONS[name]
            if has_value and not takes_value:
                errors.append(f"option {name} takes no value")
                continue
            value: str | None = attached if has_value else None
        else:
            short = SHORT_OPTIONS.get(word[:2])
            if short is None:
                errors.append(f"unknown option {word[:2]!r}")
                continue
            name, takes_value, value = short, True, word[2:] or None
        if takes_value and value is None:
            if index >= len(words):
                errors.append(f"option {name} needs a value")
                continue
            value = words[index]
            index += 1
        options.append((ALIASES.get(name, name), value))
    return Options(tuple(options), tuple(positional), tuple(errors))


def _long_option(spelt: str) -> str | None:
    """optparse's ``_match_abbrev``: the exact name, else the only option the word is a prefix of."""
    if spelt in LONG_OPTIONS:
        return spelt
    matches = [name for name in LONG_OPTIONS if name.startswith(spelt)]
    return matches[0] if len(matches) == 1 else None


def parse_requirement(line: str, editable: bool = False) -> ParsedLine:
    """Split off the per-line options (as pip: at the first word starting with ``-``) and the marker, then read
    the requirement itself."""
    words = line.split()
    cut = next((i for i, word in enumerate(words) if word.startswith("-")), len(words))
    tail = parse_options(" ".join(words[cut:]))
    hashes = tuple(dict.fromkeys(value for name, value in tail.options if name == "--hash" and value))
    unknown = tail.errors + tuple(f"stray word {word[:60]!r} after the options" for word in tail.positional)
    text = " ".join(words[:cut])
    if not text:
        raise RequirementSyntaxError("no requirement before the options")
    url_like = bool(_SCHEME.match(text)) or text.startswith((".", "/", "~", "file:")) or "@" in text
    separator = re.compile(r"\s;\s*|;\s") if url_like else re.compile(r";")
    requirement, *marker = separator.split(text, maxsplit=1)
    markers = (marker[0].strip() or None) if marker else None
    requirement = requirement.strip()
    if editable or _SCHEME.match(requirement) or requirement.startswith((".", "/", "~", "file:")):
        name, source = _located(requirement, editable)
        return ParsedLine(name, None, source, hashes, markers, (), unknown, named=False)
    match = _NAMED.fullmatch(requirement)
    rest = match.group("rest").strip() if match else ""
    if match is not None and rest.startswith("@"):
        extras = _extras(match.group("extras"))
        source = _classify(rest[1:].strip(), False)
        return ParsedLine(match.group("name"), None, source, hashes, markers, extras, unknown)
    if "/" in requirement or "\\" in requirement or requirement.lower().endswith(_ARCHIVE_SUFFIXES):
        name, source = _located(requirement, False)  # pip reads these as local paths, not project names
        return ParsedLine(name, None, source, hashes, markers, (), unknown, named=False)
    if match is None:
        raise RequirementSyntaxError("not a requirement (expected `name==version` or `name @ url`)")
    return ParsedLine(match.group("name"), _pin(rest), None, hashes, markers, _extras(match.group("extras")), unknown)


def _extras(text: str | None) -> tuple[str, ...]:
    return tuple(e.strip() for e in (text or "").split(",") if e.strip())


def _pin(specifiers: str) -> str | None:
    """The version when the specifiers are a single exact pin; ranges and wildcards are unpinned."""
    text = specifiers[1:-1] if specifiers.startswith("(") and specifiers.endswith(")") else specifiers
    if not text.strip():
        return None
    parts = [_SPEC.fullmatch(part) for part in text.split(",")]
    if any(part is None for part in parts):
        raise RequirementSyntaxError(f"cannot read version specifier {specifiers!r}")
    pins = [p for p in parts if p is not None and p.group("op") in ("==", "===") and "*" not in p.group("version")]
    return pins[0].group("version") if len(parts) == 1 and pins else None


def _located(location: str, editable: bool) -> tuple[str, PackageSource]:
    """Name for a bare URL/path requirement: ``#egg=``, else the file name, else the last path segment.

    When none of those is a valid name (``-e .``) the location itself stands in, so the entry is still listed.
    """
    try:
        parts = urlsplit(location)
    except ValueError as exc:
        raise RequirementSyntaxError(f"malformed URL {location!r}") from exc
    egg = _EGG.search(parts.fragment)
    segment = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]).split("@", 1)[0]
    file_match = _WHEEL.fullmatch(segment) or _ARCHIVE.fullmatch(segment)
    if egg:
        name = egg.group("name")
    elif file_match:
        name = file_match.group("name")
    else:
        name = segment.removesuffix(".git")
    source = _classify(location, editable)
    if not re.fullmatch(_NAME, name):
        name = source.url or location  # e.g. `-e .`: pip reads the name from the project, which we cannot
    return name, source


def _classify(location: str, editable: bool) -> PackageSource:
    """VCS to ``git`` (other VCS to ``url``), local to ``path``/``editable``, the rest to ``url``."""
    bare = location.split("#", 1)[0]
    try:
        urlsplit(bare)
    except ValueError as exc:
        raise RequirementSyntaxError(f"malformed URL {location[:120]!r}") from exc
    if not bare:
        raise RequirementSyntaxError("no URL or path after `@`")
    if bare.startswith("git+"):
        return PackageSource("git", redact(bare.removeprefix("git+")))
    if bare.startswith(_VCS):
        return PackageSource("url", redact(bare))
    if bare.startswith("file:") or not _SCHEME.match(bare):
        return PackageSource("editable" if editable else "path", bare)
    return PackageSource("url", redact(bare))
