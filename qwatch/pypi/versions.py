"""PEP 440 versions from distribution file names, and their order, with ``packaging``.

Why here: HTML Simple pages and api-version 1.0 JSON pages carry no ``versions`` list, so the versions a page
offers must be derived from its file names, the way installers do (wheel: PEP 427; sdist: PEP 625, name and
version split at the last dash). Names that do not follow either rule (``.exe``, eggs, ``bdist_dumb`` archives
with a platform suffix) are ambiguous and yield no version instead of an invented one. The file-name split is
kept here rather than ``packaging.utils.parse_wheel_filename`` because that one also rejects odd project names
and build tags, and a page we cannot fully validate must still tell which versions it serves.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

SortKey = tuple[object, ...]


def canonical_version(text: str) -> str | None:
    """The PEP 440 normal form (``1.0-RC1`` → ``1.0rc1``), or None when ``text`` is not a PEP 440 version."""
    try:
        return str(Version(text))
    except InvalidVersion:
        return None


def version_sort_key(text: str) -> SortKey:
    """PEP 440 order; anything unparseable sorts first, by its text, so sorting never fails."""
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def sort_versions(versions: set[str] | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Unique versions in PEP 440 order (equal versions spelled differently keep a stable, textual order)."""
    return tuple(sorted(set(versions), key=lambda v: (version_sort_key(v), v)))


def version_from_filename(filename: str) -> str | None:
    """The canonical version of a wheel or sdist file name, or None for any other kind of file."""
    if filename.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        if len(parts) not in (5, 6) or not parts[0]:
            return None
        return canonical_version(parts[1])
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            name, sep, version = filename[: -len(suffix)].rpartition("-")
            if not sep or not name:
                return None
            return canonical_version(version)
    return None
