"""PEP 440 versions from distribution file names, and their order, with the standard library only.

Why here: HTML Simple pages and api-version 1.0 JSON pages carry no ``versions`` list, so the versions a page
offers must be derived from its file names, the way installers do (wheel: PEP 427; sdist: PEP 625, name and
version split at the last dash). Names that do not follow either rule (``.exe``, eggs, ``bdist_dumb`` archives
with a platform suffix) are ambiguous and yield no version instead of an invented one.
"""

from __future__ import annotations

import re

_VERSION = re.compile(
    r"""
    ^\s*v?
    (?:(?P<epoch>\d+)!)?
    (?P<release>\d+(?:\.\d+)*)
    (?:[-_.]?(?P<pre_l>alpha|beta|preview|pre|a|b|c|rc)[-_.]?(?P<pre_n>\d+)?)?
    (?:-(?P<post_implicit>\d+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n>\d+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>\d+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$
    """,
    re.IGNORECASE | re.VERBOSE,
)
_PRE_SPELLING = {
    "alpha": "a",
    "a": "a",
    "beta": "b",
    "b": "b",
    "c": "rc",
    "pre": "rc",
    "preview": "rc",
    "rc": "rc",
}
_PRE_RANK = {"a": 0, "b": 1, "rc": 2}

SortKey = tuple[object, ...]


def canonical_version(text: str) -> str | None:
    """The PEP 440 normal form (``1.0-RC1`` → ``1.0rc1``), or None when ``text`` is not a PEP 440 version."""
    m = _VERSION.match(text)
    if m is None:
        return None
    out = ""
    if m["epoch"] is not None and int(m["epoch"]) != 0:
        out += f"{int(m['epoch'])}!"
    out += ".".join(str(int(part)) for part in m["release"].split("."))
    if m["pre_l"] is not None:
        out += _PRE_SPELLING[m["pre_l"].lower()] + str(int(m["pre_n"] or 0))
    if m["post_implicit"] is not None:
        out += f".post{int(m['post_implicit'])}"
    elif m["post_l"] is not None:
        out += f".post{int(m['post_n'] or 0)}"
    if m["dev_l"] is not None:
        out += f".dev{int(m['dev_n'] or 0)}"
    if m["local"] is not None:
        out += "+" + ".".join(re.split(r"[-_.]", m["local"].lower()))
    return out


def version_sort_key(text: str) -> SortKey:
    """PEP 440 order; anything unparseable sorts first, by its text, so sorting never fails."""
    m = _VERSION.match(text)
    if m is None:
        return (0, text)
    release = [int(p) for p in m["release"].split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    has_post = m["post_implicit"] is not None or m["post_l"] is not None
    pre: tuple[int, ...]
    if m["pre_l"] is not None:
        pre = (1, _PRE_RANK[_PRE_SPELLING[m["pre_l"].lower()]], int(m["pre_n"] or 0))
    elif m["dev_l"] is not None and not has_post:
        pre = (0,)  # 1.0.dev0 sorts before 1.0a1
    else:
        pre = (2,)
    post = (1, int(m["post_implicit"] or m["post_n"] or 0)) if has_post else (0,)
    dev = (0, int(m["dev_n"] or 0)) if m["dev_l"] is not None else (1,)
    local: tuple[object, ...] = (0,)
    if m["local"] is not None:
        parts = re.split(r"[-_.]", m["local"].lower())
        local = (1, tuple((1, int(p), "") if p.isdigit() else (0, 0, p) for p in parts))
    return (1, int(m["epoch"] or 0), tuple(release), pre, post, dev, local)


def sort_versions(versions: set[str] | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Unique versions in PEP 440 order."""
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
