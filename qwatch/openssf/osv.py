"""The OSV record parser for ``ossf/malicious-packages``: bytes and a path in, a typed report (or a reason) out.

Pure on purpose: no git, no I/O, so the fuzz tests can throw anything at it. Every value a parsed report carries
is already valid for the ``ReportObserved`` Avro schema (strings encodable as UTF-8, tuples of strings), which is
what lets the service promise "schema-breaking records are dead-lettered" without encoding twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from qwatch.errors import QwatchError
from qwatch.pypi.names import normalize

MAX_FILE_BYTES = 1 << 20
"""Upstream's largest report is 17 KB; a megabyte is a generous cap that still bounds memory per file."""

LIVE_DIR = "osv/malicious/"
WITHDRAWN_DIR = "osv/withdrawn/"
SCOPE_DIRS = (LIVE_DIR, WITHDRAWN_DIR)
"""Only these hold reports; ``osv/unmergable/``, stray ``Downloads/osv/...`` copies and the rest are ignored."""

PENDING_PREFIX = "MAL-0000"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
_ORIGINS_KEY = "malicious-packages-origins"


class ReportParseError(QwatchError, ValueError):
    """A file that cannot become a report; ``reason`` is the bounded DeadLetter category."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AffectedPackage:
    """One package a report names, with what the report says about it (``affected[]`` entries merged)."""

    ecosystem: str
    package_name: str
    package: str
    affected_versions: tuple[str, ...]
    all_versions: bool

    @property
    def key(self) -> tuple[str, str]:
        """``(ecosystem, package)``: the key downstream keeps per-package state under."""
        return self.ecosystem, self.package


@dataclass(frozen=True, slots=True)
class ParsedReport:
    """The fields of one OSV report that downstream needs; everything else in the record is ignored.

    ``packages`` lists every package the report names, once per ``(ecosystem, package)`` key, in record order
    (upstream writes exactly one; a hand-made record may name several). The flat ``ecosystem`` …
    ``all_versions`` fields repeat the first of them.
    """

    report_id: str
    ecosystem: str
    package_name: str
    package: str
    affected_versions: tuple[str, ...]
    all_versions: bool
    summary: str
    published: str | None
    modified: str | None
    withdrawn: str | None
    aliases: tuple[str, ...]
    origins: tuple[str, ...]
    packages: tuple[AffectedPackage, ...]

    @property
    def keys(self) -> tuple[tuple[str, str], ...]:
        """The ``(ecosystem, package)`` keys the report names, in record order."""
        return tuple(p.key for p in self.packages)

    def affected(self, key: tuple[str, str]) -> AffectedPackage:
        """What the report says about one of its packages (KeyError for a package it does not name)."""
        for pkg in self.packages:
            if pkg.key == key:
                return pkg
        raise KeyError(key)


@dataclass(frozen=True, slots=True)
class Pending:
    """A not-yet-numbered report (``MAL-0000…`` file, empty or missing id): counted, never emitted."""

    why: str


def in_scope(path: str) -> bool:
    """True for ``.json`` files under ``osv/malicious/`` or ``osv/withdrawn/``."""
    return path.endswith(".json") and path.startswith(SCOPE_DIRS)


def in_withdrawn_dir(path: str) -> bool:
    """True when the path itself says the report was withdrawn."""
    return path.startswith(WITHDRAWN_DIR)


def is_withdrawn(path: str, report: ParsedReport) -> bool:
    """Withdrawn by location or by field: upstream moves the file *and* sets the field, but either alone counts."""
    return in_withdrawn_dir(path) or report.withdrawn is not None


def normalize_package(ecosystem: str, name: str) -> str:
    """The name downstream joins on: PEP 503 for PyPI, and the directory spelling upstream uses elsewhere.

    NuGet, RubyGems and VSCode directories are the lower-cased name, crates.io (2026) the lower-cased
    ``_`` form; npm, Go, Maven, git and Packagist names are case-sensitive or already canonical, so they stay
    as published.
    """
    base = ecosystem.split(":", 1)[0].lower()
    if base == "pypi":
        return normalize(name)
    if base in ("nuget", "rubygems", "vscode"):
        return name.lower()
    if base == "crates.io":
        return name.lower().replace("-", "_")
    return name


def ranges_mean_all_versions(ranges: Any) -> bool:
    """True when some range starts at ``introduced: "0"`` and never ends.

    A bounded range (``fixed``, ``last_affected`` or a real ``limit``) does not cover every version: reading
    ``introduced 1.95.6 / fixed 1.95.8`` as "all versions" would flag a whole project.
    """
    if ranges is None:
        return False
    for rng in _list(ranges, "affected[].ranges"):
        events = _list(_dict(rng, "affected[].ranges[]").get("events"), "affected[].ranges[].events")
        starts_at_zero = False
        bounded = False
        for ev in events:
            event = _dict(ev, "affected[].ranges[].events[]")
            if event.get("introduced") == "0":
                starts_at_zero = True
            if "fixed" in event or "last_affected" in event or event.get("limit", "*") != "*":
                bounded = True
        if starts_at_zero and not bounded:
            return True
    return False


def parse_report(data: bytes, path: str, max_bytes: int = MAX_FILE_BYTES) -> ParsedReport | Pending:
    """Parse one file; raise ReportParseError (oversized, malformed-json, schema) for anything unusable.

    Pending detection comes after the JSON check so a broken pending file is still surfaced as bad input.
    """
    if len(data) > max_bytes:
        raise ReportParseError("oversized", f"{len(data)} bytes is over the {max_bytes}-byte cap")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ReportParseError("malformed-json", f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ReportParseError("schema", f"top level is {type(doc).__name__}, expected an object")
    try:
        return _parse_record(doc, path)
    except RecursionError:
        raise ReportParseError("schema", "record nested too deeply") from None


def _parse_record(doc: dict[str, Any], path: str) -> ParsedReport | Pending:
    if PurePosixPath(path).name.startswith(PENDING_PREFIX):
        return Pending("pending file name")
    raw_id = doc.get("id")
    if raw_id is None or raw_id == "":
        return Pending("empty id" if raw_id == "" else "missing id")
    report_id = _text(raw_id, "id")
    if not _ID.match(report_id):
        raise ReportParseError("schema", f"id {report_id[:80]!r} is not a report id")
    packages = _affected(doc.get("affected"))
    first = packages[0]
    return ParsedReport(
        report_id=report_id,
        ecosystem=first.ecosystem,
        package_name=first.package_name,
        package=first.package,
        affected_versions=first.affected_versions,
        all_versions=first.all_versions,
        summary=_opt_text(doc.get("summary"), "summary") or "",
        published=_opt_text(doc.get("published"), "published"),
        modified=_opt_text(doc.get("modified"), "modified"),
        withdrawn=_opt_text(doc.get("withdrawn"), "withdrawn") or None,
        aliases=_texts(doc.get("aliases"), "aliases"),
        origins=_origins(doc.get("database_specific")),
        packages=packages,
    )


def _affected(value: Any) -> tuple[AffectedPackage, ...]:
    """Every package the report names, in record order; entries for the same package are merged.

    "The same package" is the same ``(ecosystem, normalized name)``: that is the key downstream keeps state
    under, so ``Evil_Pkg`` and ``evil-pkg`` on PyPI are one package (the first spelling is kept).
    """
    entries = _list(value, "affected")
    if not entries:
        raise ReportParseError("schema", "affected is missing or empty")
    names: dict[tuple[str, str], str] = {}
    versions: dict[tuple[str, str], dict[str, None]] = {}
    all_versions: dict[tuple[str, str], bool] = {}
    for item in entries:
        entry = _dict(item, "affected[]")
        pkg = _dict(entry.get("package"), "affected[].package")
        ecosystem = _text(pkg.get("ecosystem"), "affected[].package.ecosystem")
        name = _text(pkg.get("name"), "affected[].package.name")
        if not ecosystem or not name:
            raise ReportParseError("schema", "affected[].package needs a non-empty ecosystem and name")
        key = (ecosystem, normalize_package(ecosystem, name))
        names.setdefault(key, name)
        versions.setdefault(key, {}).update(dict.fromkeys(_texts(entry.get("versions"), "affected[].versions")))
        all_versions[key] = all_versions.get(key, False) or ranges_mean_all_versions(entry.get("ranges"))
    return tuple(AffectedPackage(key[0], names[key], key[1], tuple(versions[key]), all_versions[key]) for key in names)


def _origins(value: Any) -> tuple[str, ...]:
    """Distinct origin sources in record order; null or missing blocks (119 upstream records) mean none."""
    if value is None:
        return ()
    raw = _dict(value, "database_specific").get(_ORIGINS_KEY)
    if raw is None:
        return ()
    sources: dict[str, None] = {}
    for item in _list(raw, _ORIGINS_KEY):
        source = _dict(item, f"{_ORIGINS_KEY}[]").get("source")
        if source is not None:
            sources[_text(source, f"{_ORIGINS_KEY}[].source")] = None
    return tuple(sources)


def _dict(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportParseError("schema", f"{field} is {type(value).__name__}, expected an object")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReportParseError("schema", f"{field} is {type(value).__name__}, expected a list")
    return value


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ReportParseError("schema", f"{field} is {type(value).__name__}, expected a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # JSON may spell lone surrogates (\ud800); Avro and UTF-8 files cannot carry them.
        raise ReportParseError("schema", f"{field} holds a lone surrogate") from None
    return value


def _opt_text(value: Any, field: str) -> str | None:
    return None if value is None else _text(value, field)


def _texts(value: Any, field: str) -> tuple[str, ...]:
    return tuple(_text(v, f"{field}[]") for v in _list(value, field))
