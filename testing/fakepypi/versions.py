"""Version ordering and distribution-filename facts, as Warehouse derives them.

Warehouse sorts ``versions`` and ``files`` with ``packaging_legacy.version.parse`` and picks the JSON API's
"latest" release by (yanked, is_prerelease, version).  The fake must order things the same way or a client
diffing two bodies would see spurious changes: PEP 440 versions by ``packaging``'s order, anything else as a
"legacy" version that sorts before every PEP 440 version (the legacy part is the one piece ``packaging`` no
longer has, so it is written out below).
"""

from __future__ import annotations

import re
from typing import Final

from packaging.version import InvalidVersion, Version

_LEGACY_PART: Final = re.compile(r"(\d+|[a-z]+|\.|-)")
_LEGACY_SUBST: Final = {"pre": "c", "preview": "c", "-": "final-", "rc": "c", "dev": "@"}

VersionKey = tuple[object, ...]


def _pep440(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


def version_key(version: str) -> VersionKey:
    """Return a sort key equivalent to ``packaging_legacy.version.parse(version)``'s ordering."""
    parsed = _pep440(version)
    if parsed is None:
        return (0, _legacy_parts(version))
    return (1, parsed)


def _legacy_parts(version: str) -> tuple[str, ...]:
    """Order non-PEP 440 strings the way setuptools' old ``parse_version`` did."""
    pieces: list[str] = []
    for raw in _LEGACY_PART.split(version.lower()):
        piece = _LEGACY_SUBST.get(raw, raw)
        if piece and piece != ".":
            pieces.append(piece.zfill(8) if piece[:1].isdigit() else "*" + piece)
    pieces.append("*final")
    parts: list[str] = []
    for piece in pieces:
        if piece.startswith("*"):
            if piece < "*final":  # a pre-release tag drops the implicit "final-" before it
                while parts and parts[-1] == "*final-":
                    parts.pop()
            while parts and parts[-1] == "00000000":
                parts.pop()
        parts.append(piece)
    return tuple(parts)


def is_prerelease(version: str) -> bool:
    """True for PEP 440 pre- and dev-releases; legacy versions never count as pre-releases."""
    parsed = _pep440(version)
    return parsed is not None and parsed.is_prerelease


def dist_kind(filename: str) -> tuple[str, str]:
    """Return ``(packagetype, python_version)`` for a distribution filename.

    Warehouse journals uploads as ``add <python_version> file <filename>`` and reports both values in the
    JSON API, so the fake derives them from the name exactly as an upload would declare them.
    """
    lower = filename.lower()
    if lower.endswith(".whl"):
        parts = filename[:-4].split("-")
        return ("bdist_wheel", parts[-3] if len(parts) >= 5 else "py3")
    if lower.endswith((".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")):
        return ("sdist", "source")
    if lower.endswith(".egg"):
        parts = filename[:-4].split("-")
        return ("bdist_egg", parts[2] if len(parts) >= 3 else "any")
    if lower.endswith(".exe"):
        return ("bdist_wininst", "any")
    if lower.endswith(".msi"):
        return ("bdist_msi", "any")
    return ("bdist_dumb", "any")
