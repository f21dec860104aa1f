"""Query parameters → validated filters: the one place the API, the feeds, the stream and the HTML page parse input.

Pure and strict: an unknown parameter, an unknown kind or severity, a malformed cursor or an oversized value is a
:class:`BadRequest` (a 4xx with a JSON error), never a silently ignored filter. A client that typed ``kinds=`` for
``kind=`` must learn it, not receive every transition and page someone for nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qwatch.events.kinds import ALL_KINDS
from qwatch.pypi.names import normalize
from subscribers.serve import cursor as cursormod

SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
MAX_VALUES = 20
"""Values per filter (repeated or comma-separated); more is a scripted scan, not a question."""
MAX_VALUE_CHARS = 200
_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
"""A PEP 508 project name; anything else cannot be a package we serve."""
_ECOSYSTEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,63}$")

TAKEDOWN_KINDS = (
    "QUARANTINED",
    "RELEASE_QUARANTINED",
    "REMOVED",
    "RELEASE_REMOVED",
    "REPORTED",
    "REPORT_ESCALATED",
)
"""What the feeds carry unless ``kind`` says otherwise: takedowns and malicious-package reports."""


class BadRequest(ValueError):
    """Input the client must fix; ``status`` is the HTTP code, ``param`` the offending parameter when there is one."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


@dataclass(frozen=True)
class Filters:
    """Which transitions a caller wants; empty sets mean "any"."""

    kinds: frozenset[str] = frozenset()
    ecosystems: frozenset[str] = frozenset()
    """Lower-cased: ecosystems match case-insensitively (``pypi`` finds ``PyPI``)."""
    packages: frozenset[str] = frozenset()
    """Normalized as the ingestors key them (PEP 503)."""
    severities: frozenset[str] = frozenset()
    min_severity: str | None = None

    def matches(self, kind: str, ecosystem: str, package: str, severity: str) -> bool:
        """The same test the SQL applies, for rows that arrive live on the stream."""
        if self.kinds and kind not in self.kinds:
            return False
        if self.ecosystems and ecosystem.lower() not in self.ecosystems:
            return False
        if self.packages and package not in self.packages:
            return False
        if self.severities and severity not in self.severities:
            return False
        return self.min_severity is None or SEVERITY_RANK.get(severity, -1) >= SEVERITY_RANK[self.min_severity]

    def as_params(self) -> list[tuple[str, str]]:
        """Back to query parameters (for next links and the HTML form), in a stable order."""
        out = [("kind", k) for k in sorted(self.kinds)]
        out += [("ecosystem", e) for e in sorted(self.ecosystems)]
        out += [("package", p) for p in sorted(self.packages)]
        out += [("severity", s) for s in sorted(self.severities, key=SEVERITY_RANK.__getitem__)]
        if self.min_severity:
            out.append(("min_severity", self.min_severity))
        return out


@dataclass(frozen=True)
class Query:
    """Filters plus paging: where to start and how many."""

    filters: Filters = field(default_factory=Filters)
    since: dict[int, int] | None = None
    limit: int = 50
    extra: Mapping[str, str] = field(default_factory=dict)
    """Validated endpoint-specific parameters (``q`` for search, ``ready`` for health)."""


FILTER_PARAMS = ("kind", "ecosystem", "package", "severity", "min_severity")
PARAM_DOCS: dict[str, str] = {
    "kind": f"transition kinds, repeated or comma-separated: {', '.join(ALL_KINDS)}",
    "ecosystem": "ecosystems (case-insensitive), e.g. PyPI",
    "package": "package names, normalized as PyPI does (Trig_Guard finds trig-guard)",
    "severity": f"exact severities: {', '.join(SEVERITIES)}",
    "min_severity": "this severity or worse",
    "since": "an opaque cursor: the 'next' value of a previous response (absent: from the oldest retained)",
    "limit": "how many items (1 to the server's maximum)",
}


def _values(params: Mapping[str, Sequence[str]], name: str) -> list[str]:
    out: list[str] = []
    for raw in params.get(name, ()):
        for v in raw.split(","):
            v = v.strip()
            if not v:
                continue
            if len(v) > MAX_VALUE_CHARS:
                raise BadRequest(f"{name}: value longer than {MAX_VALUE_CHARS} characters", name)
            out.append(v)
    if len(out) > MAX_VALUES:
        raise BadRequest(f"{name}: at most {MAX_VALUES} values", name)
    return out


def package_name(raw: str) -> str:
    """A project name from a URL or a form, normalized; BadRequest if it cannot be a PyPI project name."""
    if not raw or len(raw) > MAX_VALUE_CHARS or not _NAME.match(raw):
        raise BadRequest("not a valid package name (letters, digits, '.', '_', '-')", "name")
    return normalize(raw)


def ecosystem_name(raw: str) -> str:
    """An ecosystem from a URL or a filter, lower-cased for matching."""
    if not _ECOSYSTEM.match(raw):
        raise BadRequest("not a valid ecosystem name", "ecosystem")
    return raw.lower()


def parse(
    params: Mapping[str, Sequence[str]],
    allowed: Iterable[str],
    default_limit: int = 50,
    max_limit: int = 500,
) -> Query:
    """Validate ``params`` (name → every value given) for an endpoint accepting ``allowed`` names."""
    allowed = tuple(allowed)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        shown = ", ".join(repr(u[:40]) for u in unknown[:5])
        accepted = ", ".join(allowed) or "none"
        raise BadRequest(f"unknown parameter {shown}; this endpoint accepts: {accepted}", unknown[0])
    kinds = {k.upper() for k in _values(params, "kind")}
    bad = sorted(kinds - set(ALL_KINDS))
    if bad:
        raise BadRequest(f"kind: unknown {bad[0][:40]!r}; expected one of {', '.join(ALL_KINDS)}", "kind")
    severities = {s.lower() for s in _values(params, "severity")}
    if severities - set(SEVERITIES):
        raise BadRequest(f"severity: expected one of {', '.join(SEVERITIES)}", "severity")
    mins = _values(params, "min_severity")
    if len(mins) > 1 or (mins and mins[0].lower() not in SEVERITY_RANK):
        raise BadRequest(f"min_severity: expected one of {', '.join(SEVERITIES)}", "min_severity")
    try:
        ecosystems = {ecosystem_name(e) for e in _values(params, "ecosystem")}
        packages = {package_name(p) for p in _values(params, "package")}
    except BadRequest as exc:
        raise BadRequest(str(exc), "package" if exc.param == "name" else exc.param) from None
    filters = Filters(
        frozenset(kinds),
        frozenset(ecosystems),
        frozenset(packages),
        frozenset(severities),
        mins[0].lower() if mins else None,
    )
    since: dict[int, int] | None = None
    raw_since = params.get("since", ())
    if len(raw_since) > 1:
        raise BadRequest("since: give one cursor", "since")
    if raw_since and raw_since[0]:
        try:
            since = cursormod.decode(raw_since[0])
        except cursormod.CursorError as exc:
            raise BadRequest(f"since: {exc}", "since") from None
    limit = default_limit
    raw_limit = params.get("limit", ())
    if raw_limit:
        text = raw_limit[-1]
        if len(raw_limit) > 1 or not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= max_limit:
            raise BadRequest(f"limit: expected a whole number from 1 to {max_limit}", "limit")
        limit = int(text)
    extra: dict[str, str] = {}
    for name in allowed:
        if name in FILTER_PARAMS or name in ("since", "limit") or name not in params:
            continue
        values = params[name]
        if len(values) > 1 or len(values[0]) > MAX_VALUE_CHARS:
            raise BadRequest(f"{name}: give one value of at most {MAX_VALUE_CHARS} characters", name)
        extra[name] = values[0]
    return Query(filters, since, limit, extra)


def multi(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """``[(name, value), …]`` (a parsed query string) → ``{name: [values]}``."""
    out: dict[str, list[str]] = {}
    for k, v in items:
        out.setdefault(k, []).append(v)
    return out


def describe_params(names: Iterable[str]) -> list[dict[str, Any]]:
    """OpenAPI parameter objects for ``names`` (the same table :func:`parse` enforces)."""
    out: list[dict[str, Any]] = []
    for name in names:
        schema: dict[str, Any] = {"type": "string"}
        if name == "kind":
            schema = {"type": "array", "items": {"type": "string", "enum": list(ALL_KINDS)}}
        elif name == "severity":
            schema = {"type": "array", "items": {"type": "string", "enum": list(SEVERITIES)}}
        elif name == "min_severity":
            schema = {"type": "string", "enum": list(SEVERITIES)}
        elif name in ("ecosystem", "package"):
            schema = {"type": "array", "items": {"type": "string", "maxLength": MAX_VALUE_CHARS}}
        elif name == "limit":
            schema = {"type": "integer", "minimum": 1}
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": False,
            "description": PARAM_DOCS.get(name, name),
            "schema": schema,
        }
        if schema.get("type") == "array":
            param.update(style="form", explode=True)
        out.append(param)
    return out
