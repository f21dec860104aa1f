"""One logical requirements.txt requirement line to its parts, kept apart from the file-level walk.

Only the shapes pip accepts are read: ``name[extras] specifiers ; marker``, ``name @ url``, bare VCS/URL/path
requirements (name from ``#egg=`` or the file name) and per-line ``--hash`` options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

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


class RequirementSyntaxError(ValueError):
    """Raised for a line pip would reject; the file walker adds the path and line number."""


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """The parts of one requirement; ``source`` None means "from whatever indexes the file names"."""

    name: str
    version: str | None
    source: PackageSource | None
    hashes: tuple[str, ...]
    markers: str | None
    extras: tuple[str, ...]


def parse_requirement(line: str, editable: bool = False) -> ParsedLine:
    """Split off ``--hash`` options and the marker, then read the requirement itself."""
    words = line.split()
    cut = next((i for i, word in enumerate(words) if word.startswith("-")), len(words))
    hashes = _hashes(words[cut:])
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
        return ParsedLine(name, None, source, hashes, markers, ())
    match = _NAMED.fullmatch(requirement)
    if match is None:
        raise RequirementSyntaxError("not a requirement (expected `name==version` or `name @ url`)")
    extras = tuple(e.strip() for e in (match.group("extras") or "").split(",") if e.strip())
    rest = match.group("rest").strip()
    if rest.startswith("@"):
        return ParsedLine(match.group("name"), None, _classify(rest[1:].strip(), False), hashes, markers, extras)
    return ParsedLine(match.group("name"), _pin(rest), None, hashes, markers, extras)


def _hashes(options: list[str]) -> tuple[str, ...]:
    found: list[str] = []
    for index, word in enumerate(options):
        if word.startswith("--hash="):
            found.append(word.removeprefix("--hash="))
        elif word == "--hash" and index + 1 < len(options):
            found.append(options[index + 1])
    return tuple(dict.fromkeys(found))


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
    if bare.startswith("git+"):
        return PackageSource("git", redact(bare.removeprefix("git+")))
    if bare.startswith(_VCS):
        return PackageSource("url", redact(bare))
    if bare.startswith("file:") or not _SCHEME.match(bare):
        return PackageSource("editable" if editable else "path", bare)
    return PackageSource("url", redact(bare))
