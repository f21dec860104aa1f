"""The OSV record parser for ``ossf/malicious-packages``: bytes and a path in, a typed report (or a reason) out.

Pure on purpose: no git, no I/O, so the fuzz tests can throw anything at it. Every value a parsed report carries
is already valid for the ``ReportObserved`` Avro schema (strings encodable as UTF-8, tuples of strings), which is
what lets the service promise "schema-breaking records are dead-lettered" without encoding twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from qwatch.errors import QwatchError
from qwatch.frozen import fast_init
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
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD]")
"""``\\ud800``-``\\udfff`` in JSON: the only way a strict UTF-8 file can put a lone surrogate in a string."""


class ReportParseError(QwatchError, ValueError):
    """A file that cannot become a report; ``reason`` is the bounded DeadLetter category."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@fast_init  # one or more per file of a 250k-file snapshot (see qwatch.frozen)
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


@fast_init  # one per file of a 250k-file snapshot (see qwatch.frozen)
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


_BASES: dict[str, str] = {}
"""Ecosystem spelling → its lower-cased base (``VSCode:https://open-vsx.org`` → ``vscode``)."""


def normalize_package(ecosystem: str, name: str) -> str:
    """The name downstream joins on: PEP 503 for PyPI, and the directory spelling upstream uses elsewhere.

    NuGet, RubyGems and VSCode directories are the lower-cased name, crates.io (2026) the lower-cased
    ``_`` form; npm, Go, Maven, git and Packagist names are case-sensitive or already canonical, so they stay
    as published.
    """
    base = _BASES.get(ecosystem)
    if base is None:
        base = ecosystem.split(":", 1)[0].lower()
        if len(_BASES) < 256:  # a handful upstream; bounded against a repository of made-up ecosystems
            _BASES[ecosystem] = base
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
        if not isinstance(rng, dict):
            _wrong(rng, "affected[].ranges[]", "an object")
        events = rng.get("events")
        if events is None:
            continue
        if not isinstance(events, list):
            _wrong(events, "affected[].ranges[].events", "a list")
        starts_at_zero = False
        bounded = False
        for event in events:
            if not isinstance(event, dict):
                _wrong(event, "affected[].ranges[].events[]", "an object")
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

    Two paths, one contract. The fast one (orjson, a third of ``json.loads``' time on the real history) gives what
    the ``json`` path gives whenever orjson reads the file: orjson accepts nothing but strict UTF-8 and refuses lone
    surrogates however they are spelled (raw or ``\\ud800``), so no string it returns needs the surrogate check
    (tests pin that behaviour of orjson). Whatever orjson refuses (NaN, a byte order mark, other encodings,
    surrogates, 1024 levels of nesting) and every file the fast path finds wrong goes through ``_parse_with_json``,
    whose verdict and message are the contract: orjson reads an integer beyond 64 bits as a float, which could only
    change a message naming the wrong type, and that message comes from the ``json`` path.
    tests/qwatch/openssf/test_osv_reference.py holds both paths to a reference parser on every report of the real
    history, real reports damaged byte by byte, and generated records.
    """
    if len(data) > max_bytes:
        raise ReportParseError("oversized", f"{len(data)} bytes is over the {max_bytes}-byte cap")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        if type(doc) is dict:
            try:
                return _parse_record(doc, path, False)
            except (ReportParseError, RecursionError):
                pass  # the json path gives the verdict and the message
    return _parse_with_json(data, path)


def _parse_with_json(data: bytes, path: str) -> ParsedReport | Pending:
    """The reference path: ``json.loads`` (every encoding it detects, surrogates kept) and checked strings.

    Why the decoding dance: every string a report carries must be encodable as UTF-8, and checking that string by
    string was a fifth of a snapshot's CPU. A Python string can only hold a lone surrogate if the bytes spelled
    one (``json.loads`` decodes with ``surrogatepass``) or the JSON escaped one (``\\ud800``). So a file that
    decodes as strict UTF-8 and holds no ``\\ud``/``\\uD`` escape cannot produce one, and its strings skip the
    check; any other file (other encodings, raw surrogates, escapes) takes the checked path.
    """
    text: str | bytes = data
    checked = True
    if json.detect_encoding(data) == "utf-8":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data  # json.loads decides (with surrogatepass), and every string is checked
        else:
            checked = b"\\" in data and _SURROGATE_ESCAPE.search(data) is not None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ReportParseError("malformed-json", f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ReportParseError("schema", f"top level is {type(doc).__name__}, expected an object")
    try:
        return _parse_record(doc, path, checked)
    except RecursionError:
        raise ReportParseError("schema", "record nested too deeply") from None


def _parse_record(doc: dict[str, Any], path: str, checked: bool) -> ParsedReport | Pending:
    if path.rpartition("/")[2].startswith(PENDING_PREFIX):
        return Pending("pending file name")
    raw_id = doc.get("id")
    if raw_id is None or raw_id == "":
        return Pending("empty id" if raw_id == "" else "missing id")
    report_id = raw_id if type(raw_id) is str and not checked else _text(raw_id, "id", checked)
    if not _ID.match(report_id):
        raise ReportParseError("schema", f"id {report_id[:80]!r} is not a report id")
    packages = _affected(doc.get("affected"), checked)
    first = packages[0]
    # The optional strings, checked in record order; a plain string in a file without surrogate escapes (nearly
    # every one) needs no call.
    get = doc.get
    summary, published, modified, withdrawn = get("summary"), get("published"), get("modified"), get("withdrawn")
    if summary is not None and (checked or type(summary) is not str):
        summary = _text(summary, "summary", checked)
    if published is not None and (checked or type(published) is not str):
        published = _text(published, "published", checked)
    if modified is not None and (checked or type(modified) is not str):
        modified = _text(modified, "modified", checked)
    if withdrawn is not None and (checked or type(withdrawn) is not str):
        withdrawn = _text(withdrawn, "withdrawn", checked)
    return ParsedReport(
        report_id,
        first.ecosystem,
        first.package_name,
        first.package,
        first.affected_versions,
        first.all_versions,
        summary or "",
        published,
        modified,
        withdrawn or None,
        _texts(get("aliases"), "aliases", checked),
        _origins(get("database_specific"), checked),
        packages,
    )


def _affected(value: Any, checked: bool) -> tuple[AffectedPackage, ...]:
    """Every package the report names, in record order; entries for the same package are merged.

    "The same package" is the same ``(ecosystem, normalized name)``: that is the key downstream keeps state
    under, so ``Evil_Pkg`` and ``evil-pkg`` on PyPI are one package (the first spelling is kept). A record with
    one entry (every upstream record) skips the merging.
    """
    entries = _list(value, "affected")
    if not entries:
        raise ReportParseError("schema", "affected is missing or empty")
    if len(entries) == 1:
        ecosystem, name, package, entry = _affected_entry(entries[0], checked)
        versions = _texts(entry.get("versions"), "affected[].versions", checked)
        if len(versions) > 1:
            versions = tuple(dict.fromkeys(versions))
        return (AffectedPackage(ecosystem, name, package, versions, ranges_mean_all_versions(entry.get("ranges"))),)
    names: dict[tuple[str, str], str] = {}
    merged: dict[tuple[str, str], dict[str, None]] = {}
    all_versions: dict[tuple[str, str], bool] = {}
    for item in entries:
        ecosystem, name, package, entry = _affected_entry(item, checked)
        key = (ecosystem, package)
        names.setdefault(key, name)
        merged.setdefault(key, {}).update(dict.fromkeys(_texts(entry.get("versions"), "affected[].versions", checked)))
        all_versions[key] = all_versions.get(key, False) or ranges_mean_all_versions(entry.get("ranges"))
    return tuple(AffectedPackage(key[0], names[key], key[1], tuple(merged[key]), all_versions[key]) for key in names)


def _affected_entry(item: Any, checked: bool) -> tuple[str, str, str, dict[str, Any]]:
    """``(ecosystem, name, normalized name, entry)`` of one ``affected[]`` entry."""
    if not isinstance(item, dict):
        _wrong(item, "affected[]", "an object")
    pkg = item.get("package")
    if not isinstance(pkg, dict):
        _wrong(pkg, "affected[].package", "an object")
    ecosystem, name = pkg.get("ecosystem"), pkg.get("name")
    if checked or type(ecosystem) is not str:
        ecosystem = _text(ecosystem, "affected[].package.ecosystem", checked)
    if checked or type(name) is not str:
        name = _text(name, "affected[].package.name", checked)
    if not ecosystem or not name:
        raise ReportParseError("schema", "affected[].package needs a non-empty ecosystem and name")
    return ecosystem, name, normalize_package(ecosystem, name), item


def _origins(value: Any, checked: bool) -> tuple[str, ...]:
    """Distinct origin sources in record order; null or missing blocks (119 upstream records) mean none."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        _wrong(value, "database_specific", "an object")
    raw = value.get(_ORIGINS_KEY)
    if raw is None:
        return ()
    sources: dict[str, None] = {}
    for item in _list(raw, _ORIGINS_KEY):
        if not isinstance(item, dict):
            _wrong(item, f"{_ORIGINS_KEY}[]", "an object")
        source = item.get("source")
        if source is not None:
            sources[_text(source, f"{_ORIGINS_KEY}[].source", checked)] = None
    return tuple(sources)


def _wrong(value: Any, field: str, expected: str) -> NoReturn:
    raise ReportParseError("schema", f"{field} is {type(value).__name__}, expected {expected}")


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        _wrong(value, field, "a list")
    return value


def _text(value: Any, field: str, checked: bool = True) -> str:
    """``value`` if it is a string Avro and UTF-8 can carry; ``checked=False`` when no lone surrogate is possible."""
    if not isinstance(value, str):
        _wrong(value, field, "a string")
    if checked:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # JSON may spell lone surrogates (\ud800); Avro and UTF-8 files cannot carry them.
            raise ReportParseError("schema", f"{field} holds a lone surrogate") from None
    return value


def _opt_text(value: Any, field: str, checked: bool) -> str | None:
    return None if value is None else _text(value, field, checked)


def _texts(value: Any, field: str, checked: bool) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        _wrong(value, field, "a list")
    if checked:
        for item in value:
            _text(item, f"{field}[]")
    else:
        for item in value:
            if not isinstance(item, str):
                _wrong(item, f"{field}[]", "a string")
    return tuple(value)
