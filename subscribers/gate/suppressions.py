"""Suppressions: a known false positive accepted with a reason and an expiry, so a team never has to turn the
gate off to get past one.

Declared in ``[tool.qwatch.gate]`` of the project's ``pyproject.toml`` (or a TOML file given with ``--config``):

    [[tool.qwatch.gate.ignore]]
    package = "example"             # required
    version = "1.2.3"               # optional: only this version
    id = "MAL-2025-1234"            # optional: one report id, or a finding kind (quarantined, soak-hold, ...)
    reason = "reviewed: a false positive, reported upstream in ossf/malicious-packages#123"   # required
    until = 2027-01-31              # required: a TOML date or an RFC 3339 date-time

An entry without ``reason`` or ``until`` is a usage error, not a silent no-op. Past ``until`` an entry no longer
suppresses and the report names it as expired. Suppressed findings stay in the JSON (``suppressed``) and SARIF
(``suppressions``) outputs; only "unverified" can never be suppressed: it is not a finding about the package but
the gate not knowing.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from qwatch.errors import UsageError

if TYPE_CHECKING:
    from subscribers.gate.policy import Finding

KINDS = (
    "quarantined",
    "removed",
    "malicious",
    "version-missing",
    "soak-hold",
    "provenance-lost",
    "provenance-changed",
    "provenance-invalid",
)
"""Finding kinds an ``id`` may name instead of a report id (the keys of ``policy.REASONS``; a test holds them equal)."""
_KEYS = frozenset({"package", "version", "id", "reason", "until"})


class SuppressionError(UsageError):
    """A suppression entry the gate cannot accept; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Suppression:
    """One accepted finding: which package (and version, and report or kind), why, and until when."""

    package: str
    version: str | None
    id: str | None
    reason: str
    until_ms: int
    declared_in: str

    def covers(self, package: str, version: str | None, kind: str) -> bool:
        """True when this entry is about ``package`` (at ``version``) and, if it names a kind, that kind."""
        if canonicalize_name(package) != self.package:
            return False
        if self.version is not None and (version is None or not _same_version(version, self.version)):
            return False
        return self.id is None or self.id not in KINDS or self.id == kind

    def label(self) -> str:
        """``package[==version][ id]``, for messages."""
        pin = f"=={self.version}" if self.version else ""
        return f"{self.package}{pin}" + (f" {self.id}" if self.id else "")


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a.strip().lower() == b.strip().lower()


def _until_ms(value: object, where: str) -> int:
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time.max, tzinfo=dt.UTC)  # the whole day named
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise SuppressionError(f"{where}: until {value!r} is not a date (2027-01-31) or RFC 3339 time") from None
        return _until_ms(parsed if "T" in value or " " in value else parsed.date(), where)
    else:
        raise SuppressionError(f"{where}: until must be a date such as 2027-01-31")
    return int(moment.timestamp() * 1000)


def parse_entries(entries: object, declared_in: str) -> tuple[Suppression, ...]:
    """The ``ignore`` array of one file."""
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise SuppressionError(f"{declared_in}: [tool.qwatch.gate] ignore must be an array of tables")
    out: list[Suppression] = []
    for i, entry in enumerate(entries, 1):
        where = f"{declared_in}: ignore entry {i}"
        if not isinstance(entry, Mapping):
            raise SuppressionError(f"{where} is not a table")
        unknown = set(entry) - _KEYS
        if unknown:
            raise SuppressionError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        package, reason = entry.get("package"), entry.get("reason")
        if not isinstance(package, str) or not package.strip():
            raise SuppressionError(f"{where}: package is required")
        if not isinstance(reason, str) or not reason.strip():
            raise SuppressionError(f"{where} ({package}): a reason is required (why is this finding accepted?)")
        if "until" not in entry:
            raise SuppressionError(f"{where} ({package}): until is required (a suppression must expire)")
        version, ident = entry.get("version"), entry.get("id")
        for key, value in (("version", version), ("id", ident)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise SuppressionError(f"{where} ({package}): {key} must be a non-empty string")
        out.append(
            Suppression(
                canonicalize_name(package),
                version.strip() if isinstance(version, str) else None,
                ident.strip() if isinstance(ident, str) else None,
                reason.strip(),
                _until_ms(entry["until"], f"{where} ({package})"),
                declared_in,
            )
        )
    return tuple(out)


def load_suppressions(path: Path, *, required: bool) -> tuple[Suppression, ...]:
    """Entries from ``[tool.qwatch.gate]`` in ``path`` (a pyproject.toml, or any TOML with that table or a top-level
    ``ignore``). A missing file is an error only when it was asked for explicitly (``required``)."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise SuppressionError(f"{path}: no such file") from None
        return ()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SuppressionError(f"{path}: cannot read it as TOML ({exc})") from None
    table = data.get("tool", {}).get("qwatch", {}).get("gate") if isinstance(data.get("tool"), dict) else None
    if table is None and path.name != "pyproject.toml":
        table = data
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise SuppressionError(f"{path}: [tool.qwatch.gate] must be a table")
    return parse_entries(table.get("ignore"), str(path))


def apply_suppressions(
    findings: Sequence[Finding], suppressions: Sequence[Suppression], now_ms: int
) -> tuple[list[Finding], list[tuple[Finding, Suppression]], tuple[Suppression, ...]]:
    """(findings still standing, (finding, entry) pairs suppressed, entries expired).

    A ``malicious`` finding naming several reports is split: an entry for one report id suppresses that report
    only, and the finding stands for the others."""
    live = [s for s in suppressions if s.until_ms >= now_ms]
    expired = tuple(s for s in suppressions if s.until_ms < now_ms)
    kept: list[Finding] = []
    suppressed: list[tuple[Finding, Suppression]] = []
    for f in findings:
        entries = [s for s in live if s.covers(f.package, f.version, f.reason)]
        whole = next((s for s in entries if s.id is None or s.id in KINDS), None)
        if whole is not None:
            suppressed.append((f, whole))
            continue
        by_report = {s.id: s for s in entries if s.id is not None}
        covered = [rid for rid in f.report_ids if rid in by_report]
        if not covered:
            kept.append(f)
            continue
        suppressed.extend((_only(f, (rid,)), by_report[rid]) for rid in covered)
        rest = tuple(rid for rid in f.report_ids if rid not in by_report)
        if rest:
            kept.append(_only(f, rest))
    return kept, suppressed, expired


def _only(f: Finding, report_ids: tuple[str, ...]) -> Finding:
    links = tuple(link for link in f.links if any(link.endswith(rid) for rid in report_ids))
    return replace(f, report_ids=report_ids, links=links)
