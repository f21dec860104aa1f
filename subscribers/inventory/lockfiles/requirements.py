"""``requirements.txt`` (hand-written or pip-compile / ``uv pip compile`` output) to an :class:`Inventory`.

The graph comes from pip-compile's ``# via`` annotations, in all three forms: ``# via a``, ``# via a, b``
and the block ``# via`` followed by ``#   a`` lines. ``-r file.in`` (or ``name (pyproject.toml)``) marks a
direct requirement. Files without annotations have no graph, so everything in them is direct.

Includes are followed as pip follows them: ``-r``/``--requirement`` and ``-c``/``--constraint`` paths are relative
to the including file's directory, recursively; a file already read (in the same role) is not read again, so
cycles end. A ``-r`` file's packages are part of the inventory. A ``-c`` file adds no package (pip: constraints
only constrain); its pins and URLs apply to the packages the requirement files name, and a ``-r`` inside it adds
packages again, as in pip. Index options in any of the files apply to the whole install, as in pip.

Nothing is silently dropped: a line or option the parser does not understand, an include it cannot read and a
remote include (never fetched: the gate works offline) each become an :class:`InventoryProblem` in
``Inventory.unverified``.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

from qwatch.pypi.indexes import is_pypi_index

from ._common import PYPI, index_source, redact
from ._reqline import ParsedLine, RequirementSyntaxError, parse_options, parse_requirement
from .model import Inventory, LockedPackage, LockfileError, PackageSource, ProblemLog, ProblemReason, normalize

_COMMENT_START = re.compile(r"(?:^|(?<=\s))#")  # a lookbehind, not `\s+#`, which is quadratic on long blanks
_VIA = re.compile(r"#\s*via\b\s*(?P<rest>.*)")
_VIA_ITEM = re.compile(r"#\s{2,}(?P<item>\S.*)")
_PARENT = re.compile(r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?")
_REMOTE = re.compile(r"(?:https?):", re.IGNORECASE)  # pip's SCHEME_RE without file:, which is local
_FILE_URL = re.compile(r"file:", re.IGNORECASE)

MAX_INCLUDED_FILES = 256
"""Real projects include a handful of files; the cap bounds the work a hostile tree of includes can cause."""
MAX_TOTAL_CHARS = 50 * 1024 * 1024
"""The file and all it includes together: the same bound as one lockfile (``MAX_BYTES``)."""


class IncludeReader(Protocol):
    """The file system, for following includes; :func:`parse` itself does no I/O.

    ``read`` raises :class:`LockfileError` (its ``reason`` is reported) for a file it cannot read or decode.
    """

    def identity(self, path: str) -> str:
        """What makes two paths the same file (the real path), for the loop guard."""

    def read(self, path: str) -> str:
        """The decoded text of one included file."""


@dataclass(slots=True)
class _Draft:
    """A requirement while the file is still being read; its ``# via`` lines come after it."""

    line: ParsedLine
    parents: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    annotated: bool = False


@dataclass(slots=True)
class _File:
    """Per-file state: ``# via`` comments belong to the requirement just above them in the same file."""

    path: str
    constraint: bool
    last: _Draft | None = None
    in_via_block: bool = False


@dataclass(frozen=True, slots=True)
class _Include:
    """One ``-r``/``-c`` waiting to be read: where it resolves to, in which role, and the line that asked."""

    path: str
    constraint: bool
    subject: str
    shown: str


@dataclass(slots=True)
class _Walk:
    """Install-wide state: pip applies index options from every file, whichever file they appear in."""

    path: str
    reader: IncludeReader | None
    drafts: list[_Draft] = field(default_factory=list)
    constraints: list[ParsedLine] = field(default_factory=list)
    index_urls: list[str] = field(default_factory=list)
    other_locations: list[str] = field(default_factory=list)
    no_index: bool = False
    problems: ProblemLog = field(default_factory=ProblemLog)
    pending: deque[_Include] = field(default_factory=deque)
    seen: set[tuple[str, bool]] = field(default_factory=set)
    files: int = 0
    chars: int = 0

    def problem(self, subject: str, reason: ProblemReason, message: str) -> None:
        self.problems.add(subject, reason, message)


def parse(text: str, path: str = "requirements.txt", read_include: IncludeReader | None = None) -> Inventory:
    """Parse one requirements file and, given a reader, the files it includes.

    Without ``read_include`` (text from anywhere but a file system) every include is recorded as not followed.
    """
    walk = _Walk(path, read_include)
    if read_include is not None:
        walk.seen.add((read_include.identity(path), False))
    walk.chars = len(text)
    _walk_file(walk, _File(path, constraint=False), text)
    while walk.pending:
        _read_include(walk, walk.pending.popleft())
    return _inventory(walk)


def _walk_file(walk: _Walk, file: _File, text: str) -> None:
    """Logical lines (continuations joined, comments split off) of one file."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            if pending:  # as in pip, a comment or blank line ends a continued line
                _logical(walk, file, " ".join(pending), start)
                pending = []
            _comment(file, stripped)
            continue
        file.in_via_block = False
        hash_mark = _COMMENT_START.search(raw)
        code = (raw[: hash_mark.start()] if hash_mark else raw).rstrip()
        comment = raw[hash_mark.start() :].strip() if hash_mark else ""
        if not pending:
            start = number
        if code.endswith("\\"):
            pending.append(code[:-1])
            continue
        pending.append(code)
        _logical(walk, file, " ".join(pending), start)
        pending = []
        if comment.startswith("#") and file.last is not None:
            _comment(file, comment, inline=True)
    if pending:
        _logical(walk, file, " ".join(pending), start)


def _comment(file: _File, comment: str, inline: bool = False) -> None:
    """Collect ``# via`` annotations for the requirement just read; other comments end a via block."""
    if not comment:
        file.in_via_block = False
        return
    via = _VIA.fullmatch(comment)
    item = _VIA_ITEM.fullmatch(comment)
    if via is not None and file.last is not None:
        file.last.annotated = True
        rest = via.group("rest").strip()
        file.in_via_block = not rest and not inline
        items = rest.split(",") if rest and not rest.startswith("-") else [rest]
        for entry in items:
            _via_entry(file.last, entry.strip())
    elif item is not None and file.in_via_block and file.last is not None:
        _via_entry(file.last, item.group("item").strip())
    else:
        file.in_via_block = False


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


def _logical(walk: _Walk, file: _File, line: str, number: int) -> None:
    """One joined line: pip options or a requirement; whatever cannot be read is recorded, never skipped."""
    text = line.strip()
    file.last = None
    if not text:
        return
    at = _At(f"{file.path}:{number}", number, text)
    try:
        if text.startswith("-"):
            _option_line(walk, file, at)
        else:
            _add(walk, file, parse_requirement(text), at)
    except RequirementSyntaxError as exc:
        _unparsed(walk, at, str(exc))


@dataclass(frozen=True, slots=True)
class _At:
    """The line being read, for problems: ``subject`` is ``file:line``."""

    subject: str
    number: int
    text: str


def _unparsed(walk: _Walk, at: _At, why: str) -> None:
    walk.problem(
        at.subject,
        "unparsed-line",
        f"line {at.number}: {why}: {at.text[:120]!r}; what pip installs from this line cannot be checked: fix "
        "or regenerate the file",
    )


def _add(walk: _Walk, file: _File, parsed: ParsedLine, at: _At) -> None:
    """A requirement (or, in a ``-c`` file, a constraint); options pip would refuse are reported with it."""
    file.last = _Draft(parsed)
    if file.constraint:
        refused = _refused_constraint(parsed)
        if refused:
            _unparsed(walk, at, f"{refused} (pip refuses it, so the install fails)")
            return
        walk.constraints.append(parsed)
    else:
        walk.drafts.append(file.last)
    if parsed.unknown_options:
        _unparsed(walk, at, f"{'; '.join(parsed.unknown_options)} (pip refuses options it does not know)")


def _refused_constraint(parsed: ParsedLine) -> str | None:
    """pip's ``check_invalid_constraint_type``: constraints are named, not editable, without extras."""
    if parsed.source is not None and parsed.source.kind == "editable":
        return "an editable constraint"
    if not parsed.named:
        return "an unnamed constraint (a bare URL or path)"
    if parsed.extras:
        return "a constraint with extras"
    return None


def _option_line(walk: _Walk, file: _File, at: _At) -> None:
    """Every option on the line is applied (pip follows only the first ``-r``/``-e``: more is safe here); what
    pip would refuse or ignore is reported after the rest is applied."""
    parsed = parse_options(at.text)
    for option, value in parsed.options:
        if value is None:
            if option == "--no-index":
                walk.no_index = True
            continue
        if option == "--editable":
            _add(walk, file, parse_requirement(value, editable=True), at)
        elif option == "--index-url":
            walk.index_urls.append(value)
        elif option in ("--extra-index-url", "--find-links"):
            walk.other_locations.append(value)
        elif option in ("--requirement", "--constraint"):
            _include(walk, file, option == "--constraint", value, at.subject)
    if parsed.errors or parsed.positional:
        stray = [f"stray word {word[:60]!r}" for word in parsed.positional]
        _unparsed(walk, at, "; ".join([*parsed.errors, *stray]))


def _include(walk: _Walk, file: _File, constraint: bool, target: str, subject: str) -> None:
    """Queue a ``-r``/``-c`` file, resolved as pip does; what cannot be followed is recorded."""
    shown = f"{'-c' if constraint else '-r'} {target}"
    if _REMOTE.match(target):
        walk.problem(
            subject,
            "include-remote",
            f"{shown}: remote files are never fetched (the gate works offline), so what it lists cannot be "
            f"checked; vendor it next to {file.path} and include it by path",
        )
        return
    if walk.reader is None:
        walk.problem(
            subject,
            "include-not-followed",
            f"{shown}: includes are only followed when the lockfile is read from disk; check the file by path",
        )
        return
    location = target
    if _FILE_URL.match(target):
        parts = urlsplit(target)
        if parts.netloc not in ("", "localhost"):
            walk.problem(subject, "include-remote", f"{shown}: a file on another host is never read; vendor it")
            return
        location = url2pathname(parts.path)
    resolved = os.path.normpath(os.path.join(os.path.dirname(file.path), location))
    walk.pending.append(_Include(resolved, constraint, subject, shown))


def _read_include(walk: _Walk, include: _Include) -> None:
    """Read and walk one queued include, once per file and role."""
    assert walk.reader is not None  # only queued when there is a reader
    advice = "the packages it lists cannot be checked: make it readable next to the file that includes it"
    try:
        key = (walk.reader.identity(include.path), include.constraint)
        if key in walk.seen:
            return
        if walk.files >= MAX_INCLUDED_FILES:
            reason = f"more than {MAX_INCLUDED_FILES} included files"
            raise LockfileError(include.path, reason)
        text = walk.reader.read(include.path)
    except LockfileError as exc:
        walk.problem(include.subject, "include-unreadable", f"{include.shown} ({include.path}): {exc.reason}; {advice}")
        return
    walk.seen.add(key)
    walk.files += 1
    walk.chars += len(text)
    if walk.chars > MAX_TOTAL_CHARS:
        limit = f"the included files pass {MAX_TOTAL_CHARS // (1024 * 1024)} MiB together"
        walk.problem(include.subject, "include-unreadable", f"{include.shown} ({include.path}): {limit}; {advice}")
        return
    _walk_file(walk, _File(include.path, include.constraint), text)


def _index_source(walk: _Walk) -> PackageSource:
    """Where plain ``name==version`` lines resolve; any non-PyPI location in play means "not PyPI".

    With ``--extra-index-url`` pip picks from every index, so a private one makes the origin ambiguous and
    the package must not be treated as PyPI (dependency confusion). Every ``--index-url`` of every file counts,
    not only the one pip ends with: which one that is depends on the order pip reads the files in.
    """
    if walk.no_index:
        local = walk.other_locations[0] if walk.other_locations else None
        return PackageSource("index", redact(local) if local else None)
    private = [url for url in walk.index_urls + walk.other_locations if not is_pypi_index(url)]
    if private:
        return index_source(private[0])
    return PYPI


def _inventory(walk: _Walk) -> Inventory:
    present = {normalize(d.line.name) for d in walk.drafts}
    children: dict[str, set[str]] = {}
    for draft in walk.drafts:
        for parent in draft.parents:
            children.setdefault(parent, set()).add(normalize(draft.line.name))
    constraints: dict[str, list[ParsedLine]] = {}
    for constraint in walk.constraints:
        constraints.setdefault(normalize(constraint.name), []).append(constraint)
    from_index = _index_source(walk)
    packages: dict[LockedPackage, None] = {}
    for d in walk.drafts:
        package = LockedPackage(
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
        packages.update(dict.fromkeys(_constrained(package, d.line, constraints.get(package.normalized, []))))
    return Inventory(
        format="requirements.txt",
        path=walk.path,
        root=None,
        packages=tuple(packages),
        unverified=walk.problems.freeze(),
    )


def _constrained(package: LockedPackage, line: ParsedLine, constraints: list[ParsedLine]) -> list[LockedPackage]:
    """The package as installed under the ``-c`` constraints that name it.

    A constraint pins an unpinned requirement, and a constraint with a URL (``name @ url``) makes pip take the
    package from there. Constraints with markers apply only in some environments: each gives its own record, and
    unless one applies everywhere the unconstrained record stays too. A requirement's own pin or URL wins (a
    conflicting constraint makes pip fail, it does not change what is installed).
    """
    out: list[LockedPackage] = []
    everywhere = False
    for constraint in constraints:
        version = package.version if package.version is not None else constraint.version
        source = package.source if line.source is not None else (constraint.source or package.source)
        if (version, source) == (package.version, package.source):
            continue  # changes nothing pip installs
        everywhere = everywhere or not constraint.markers
        markers = package.markers
        if constraint.markers:
            markers = f"({package.markers}) and ({constraint.markers})" if package.markers else constraint.markers
        hashes = package.hashes or constraint.hashes
        out.append(replace(package, version=version, source=source, markers=markers, hashes=hashes))
    return out if everywhere else [package, *out]
