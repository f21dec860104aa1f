"""Version ordering and distribution-filename facts, as Warehouse derives them.

Warehouse sorts ``versions`` and ``files`` with ``packaging_legacy.version.parse`` and picks the JSON API's
"latest" release by (yanked, is_prerelease, version).  The fake must order things the same way or a client
diffing two bodies would see spurious changes, so this module re-implements that ordering with the standard
library only (PEP 440 versions sort by their release/pre/post/dev/local parts; anything else is a "legacy"
version and sorts before every PEP 440 version).
"""

from __future__ import annotations

import re
from typing import Final

_PEP440: Final = re.compile(
    r"""
    ^\s*v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre_l>alpha|beta|preview|pre|a|b|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$
    """,
    re.IGNORECASE | re.VERBOSE,
)
_PRE_RANK: Final = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
_LEGACY_PART: Final = re.compile(r"(\d+|[a-z]+|\.|-)")
_LEGACY_SUBST: Final = {"pre": "c", "preview": "c", "-": "final-", "rc": "c", "dev": "@"}

VersionKey = tuple[object, ...]


def version_key(version: str) -> VersionKey:
    """Return a sort key equivalent to ``packaging_legacy.version.parse(version)``'s ordering."""
    match = _PEP440.match(version)
    if match is None:
        return (0, _legacy_parts(version))
    release = [int(p) for p in match["release"].split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    has_post = match["post_n1"] is not None or match["post_l"] is not None
    pre: tuple[int, ...]
    if match["pre_l"] is not None:
        pre = (1, _PRE_RANK[match["pre_l"].lower()], int(match["pre_n"] or 0))
    elif match["dev_l"] is not None and not has_post:
        pre = (0,)  # a bare .devN sorts before every pre-release of the same release
    else:
        pre = (2,)
    post = (1, int(match["post_n1"] or match["post_n2"] or 0)) if has_post else (0,)
    dev = (0, int(match["dev_n"] or 0)) if match["dev_l"] is not None else (1,)
    local: tuple[object, ...] = (0,)
    if match["local"] is not None:
        segments = re.split(r"[-_.]", match["local"].lower())
        local = (1, tuple((1, int(s), "") if s.isdigit() else (0, 0, s) for s in segments))
    return (1, int(match["epoch"] or 0), tuple(release), pre, post, dev, local)


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
    match = _PEP440.match(version)
    return match is not None and (match["pre_l"] is not None or match["dev_l"] is not None)


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
