"""``requirements.txt`` (hand-written or pip-compile / ``uv pip compile`` output) to an :class:`Inventory`.

The graph comes from pip-compile's ``# via`` annotations, in all three forms: ``# via a``, ``# via a, b``
and the block ``# via`` followed by ``#   a`` lines. ``-r file.in`` (or ``name (pyproject.toml)``) marks a
direct requirement. Files without annotations have no graph, so everything in them is direct.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._common import PYPI, index_source, is_pypi_index, redact
from ._reqline import ParsedLine, RequirementSyntaxError, parse_requirement
from .model import Inventory, LockedPackage, LockfileError, PackageSource, normalize

_COMMENT_START = re.compile(r"(?:^|(?<=\s))#")  # a lookbehind, not `\s+#`, which is quadratic on long blanks
_VIA = re.compile(r"#\s*via\b\s*(?P<rest>.*)")
_VIA_ITEM = re.compile(r"#\s{2,}(?P<item>\S.*)")
_PARENT = re.compile(r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?")
_OPTION = re.compile(r"(?P<option>--[A-Za-z-]+|-[A-Za-z])(?:\s*=\s*|\s+)?(?P<value>.*)", re.DOTALL)


@dataclass(slots=True)
class _Draft:
    """A requirement while the file is still being read; its ``# via`` lines come after it."""

    line: ParsedLine
    parents: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    annotated: bool = False


@dataclass(slots=True)
class _Walk:
    """File-wide state: pip options apply to the whole file wherever they appear."""

    path: str
    drafts: list[_Draft] = field(default_factory=list)
    index_url: str | None = None
    other_locations: list[str] = field(default_factory=list)
    no_index: bool = False
    last: _Draft | None = None
    in_via_block: bool = False


def parse(text: str, path: str = "requirements.txt") -> Inventory:
    """Parse the text of one requirements file; ``-r``/``-c`` includes are not followed (no I/O here)."""
    walk = _Walk(path)
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            if pending:  # as in pip, a comment or blank line ends a continued line
                _logical(walk, " ".join(pending), start)
                pending = []
            _comment(walk, stripped)
            continue
        walk.in_via_block = False
        hash_mark = _COMMENT_START.search(raw)
        code = (raw[: hash_mark.start()] if hash_mark else raw).rstrip()
        comment = raw[hash_mark.start() :].strip() if hash_mark else ""
        if not pending:
            start = number
        if code.endswith("\\"):
            pending.append(code[:-1])
            continue
        pending.append(code)
        _logical(walk, " ".join(pending), start)
        pending = []
        if comment.startswith("#") and walk.last is not None:
            _comment(walk, comment, inline=True)
    if pending:
        _logical(walk, " ".join(pending), start)
    return _inventory(walk)


def _comment(walk: _Walk, comment: str, inline: bool = False) -> None:
    """Collect ``# via`` annotations for the requirement just read; other comments end a via block."""
    if not comment:
        walk.in_via_block = False
        return
    via = _VIA.fullmatch(comment)
    item = _VIA_ITEM.fullmatch(comment)
    if via is not None and walk.last is not None:
        walk.last.annotated = True
        rest = via.group("rest").strip()
        walk.in_via_block = not rest and not inline
        items = rest.split(",") if rest and not rest.startswith("-") else [rest]
        for entry in items:
            _via_entry(walk.last, entry.strip())
    elif item is not None and walk.in_via_block and walk.last is not None:
        _via_entry(walk.last, item.group("item").strip())
    else:
        walk.in_via_block = False


def _via_entry(draft: _Draft, entry: str) -> None:
    """``-r x.in`` and ``pkg (pyproject.toml)`` mean the project asked for it; ``-c`` only constrained it."""
    if not entry or entry.startswith(("-c ", "--constraint")):
        return
    if entry.startswith(("-r ", "--requirement")) or entry.endswith(")"):
        draft.origins.append(entry)
        return
    parent = _PARENT.fullmatch(entry)
    if parent is not None:
        draft.parents.append(normalize(parent.group("name")))


def _logical(walk: _Walk, line: str, number: int) -> None:
    """One joined line: a pip option or a requirement."""
    text = line.strip()
    walk.last = None
    if not text:
        return
    try:
        if text.startswith("-"):
            _option(walk, text)
        else:
            walk.last = _Draft(parse_requirement(text))
            walk.drafts.append(walk.last)
    except RequirementSyntaxError as exc:
        raise LockfileError(walk.path, f"line {number}: {exc}: {text[:120]!r}; fix or regenerate the file") from exc


def _option(walk: _Walk, text: str) -> None:
    match = _OPTION.fullmatch(text)
    if match is None:
        return
    option, value = match.group("option"), match.group("value").strip()
    if option in ("-e", "--editable"):
        if not value:
            raise RequirementSyntaxError(f"{option} needs a path or URL")
        walk.last = _Draft(parse_requirement(value, editable=True))
        walk.drafts.append(walk.last)
    elif option in ("-i", "--index-url") and value:
        walk.index_url = value
    elif option in ("--extra-index-url", "-f", "--find-links") and value:
        walk.other_locations.append(value)
    elif option == "--no-index":
        walk.no_index = True


def _index_source(walk: _Walk) -> PackageSource:
    """Where plain ``name==version`` lines resolve; any non-PyPI location in play means "not PyPI".

    With ``--extra-index-url`` pip picks from every index, so a private one makes the origin ambiguous and
    the package must not be treated as PyPI (dependency confusion).
    """
    if walk.no_index:
        local = walk.other_locations[0] if walk.other_locations else None
        return PackageSource("index", redact(local) if local else None)
    candidates = ([walk.index_url] if walk.index_url else []) + walk.other_locations
    private = [url for url in candidates if not is_pypi_index(url)]
    if private:
        return index_source(private[0])
    return PYPI


def _inventory(walk: _Walk) -> Inventory:
    present = {normalize(d.line.name) for d in walk.drafts}
    children: dict[str, set[str]] = {}
    for draft in walk.drafts:
        for parent in draft.parents:
            children.setdefault(parent, set()).add(normalize(draft.line.name))
    from_index = _index_source(walk)
    packages = tuple(
        LockedPackage(
            name=d.line.name,
            normalized=normalize(d.line.name),
            version=d.line.version,
            source=d.line.source or from_index,
            hashes=d.line.hashes,
            markers=d.line.markers,
            direct=not d.annotated or bool(d.origins) or not any(p in present for p in d.parents),
            dependencies=tuple(sorted(children.get(normalize(d.line.name), ()))),
            groups=tuple(dict.fromkeys(d.origins)),
            extras=d.line.extras,
        )
        for d in walk.drafts
    )
    return Inventory(format="requirements.txt", path=walk.path, root=None, packages=packages)
