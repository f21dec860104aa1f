"""Does one OSV ``affected[]`` entry cover a PyPI version? Explicit ``versions`` and ``ECOSYSTEM`` ranges, PEP 440.

The answer is a :class:`Verdict`: ``affected`` (a bool) plus a ``reason`` saying why. It is really three states:

* affected, for certain: ``listed`` (in ``versions``), ``in-range`` (inside an ``ECOSYSTEM`` range) or
  ``all-versions`` (the entry has neither ``versions`` nor ``ranges``);
* not affected: ``not-affected``, the only reason with ``affected=False``;
* undecidable, which **fails closed** (``affected=True``, :attr:`Verdict.fail_closed` is True):
  ``unparseable-version`` (the version being checked is not PEP 440 and is not listed verbatim),
  ``unparseable-event`` (a range bound is not PEP 440), ``unsupported-range`` (a range type other than
  ``ECOSYSTEM``, e.g. ``SEMVER`` or ``GIT``, whose ordering is not PyPI's) and ``malformed`` (the entry does not
  follow the OSV schema: wrong JSON types, an event with zero or two keys, a range without ``introduced``...).

Ranges follow the OSV schema's evaluation pseudocode (``IncludedInRanges``/``BeforeLimits``): events are sorted by
version and walked in order; ``introduced`` switches "affected" on when ``v >= introduced``, ``fixed`` switches it
off when ``v >= fixed``, ``last_affected`` switches it off when ``v > last_affected``; ``limit`` events are checked
apart: with any, ``v`` must be below at least one (a limit containing ``*`` is infinity). ``introduced: "0"``
sorts before every version (``0.dev0`` included). The schema leaves the order of events *at the same version*
open; here it is ``fixed``, then ``introduced``, then ``last_affected``. So ``introduced X`` + ``last_affected X``
is exactly ``X``, and a ``fixed X`` next to an ``introduced X`` never hides ``X`` and what follows it (the
ambiguous case errs towards "affected"). Equivalently: ``v`` is affected by a range iff it is below a limit and
some ``introduced I <= v`` has no ``fixed F`` with ``I < F <= v`` and no ``last_affected L`` with ``I <= L < v``.

Versions compare with :class:`packaging.version.Version` (``1.0`` equals ``1.0.0``; ``1.0a1 < 1.0 < 1.0.post1``).
A ``versions`` entry that is not PEP 440 still matches the same string (whitespace-trimmed), as the schema says
that list holds the ecosystem's own spellings. Pure, no I/O; :meth:`Affected.from_osv` never raises.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

ECOSYSTEM = "ECOSYSTEM"
INTRODUCED, FIXED, LAST_AFFECTED, LIMIT = "introduced", "fixed", "last_affected", "limit"
EVENT_KINDS = (INTRODUCED, FIXED, LAST_AFFECTED, LIMIT)

LISTED = "listed"
IN_RANGE = "in-range"
ALL_VERSIONS = "all-versions"
NOT_AFFECTED = "not-affected"
UNPARSEABLE_VERSION = "unparseable-version"
UNPARSEABLE_EVENT = "unparseable-event"
UNSUPPORTED_RANGE = "unsupported-range"
MALFORMED = "malformed"
FAIL_CLOSED = frozenset({UNPARSEABLE_VERSION, UNPARSEABLE_EVENT, UNSUPPORTED_RANGE, MALFORMED})
"""Reasons that mean "could not decide, so affected"."""

_TIE_RANK = {FIXED: 0, INTRODUCED: 1, LAST_AFFECTED: 2}
"""Order of events at one version (see the module docstring)."""
_ZERO = Version("0")
"""Stands for ``introduced: "0"``; recognised by identity, never compared as a version."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """``affected`` and why; ``detail`` names the offending value for the fail-closed reasons."""

    affected: bool
    reason: str
    detail: str = ""

    @property
    def fail_closed(self) -> bool:
        """True when ``affected`` is only a refusal to say "not affected"."""
        return self.reason in FAIL_CLOSED


@dataclass(frozen=True, slots=True)
class Event:
    """One range event: ``kind`` is one of :data:`EVENT_KINDS`, ``value`` the version string as written."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class Range:
    """One ``ranges[]`` item: its ``type`` and its events in record order."""

    type: str
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Affected:
    """What one ``affected[]`` entry says about versions; ``malformed`` is why it could not be read (fail closed)."""

    versions: tuple[str, ...] = ()
    ranges: tuple[Range, ...] = ()
    malformed: str | None = None

    @classmethod
    def from_osv(cls, entry: Any) -> Affected:
        """Read ``versions`` and ``ranges`` of one ``affected[]`` entry (the ``package`` is the caller's business)."""
        try:
            return cls(_versions(entry), _ranges(entry))
        except _Malformed as exc:
            return cls(malformed=str(exc))

    def check(self, version: str) -> Verdict:
        """Whether ``version`` is affected, and why (module docstring)."""
        if self.malformed is not None:
            return Verdict(True, MALFORMED, self.malformed)
        if not self.versions and not self.ranges:
            return Verdict(True, ALL_VERSIONS)
        wanted = _parse(version)
        trimmed = version.strip()
        for listed in self.versions:
            if listed.strip() == trimmed or (wanted is not None and _parse(listed) == wanted):
                return Verdict(True, LISTED, listed)
        if wanted is None:
            return Verdict(True, UNPARSEABLE_VERSION, version)
        undecided: Verdict | None = None
        for rng in self.ranges:
            if rng.type != ECOSYSTEM and self.versions:
                continue  # OSV: a GIT or SEMVER range comes with the versions it covers, listed above
            verdict = _check_range(rng, wanted)
            if verdict.affected and not verdict.fail_closed:
                return verdict
            if verdict.affected and undecided is None:
                undecided = verdict
        return undecided or Verdict(False, NOT_AFFECTED)

    def affects(self, version: str) -> bool:
        """``check(version).affected``: True when listed, in a range, or undecidable."""
        return self.check(version).affected


def check_entry(entry: Any, version: str) -> Verdict:
    """Check one raw ``affected[]`` entry (a parsed JSON object)."""
    return Affected.from_osv(entry).check(version)


def check_all(entries: Iterable[Affected], version: str) -> Verdict:
    """Several entries for one package (a record may split them): affected if any entry says so.

    A definite answer is preferred over a fail-closed one as the reason; no entries at all is ``malformed``.
    """
    undecided: Verdict | None = None
    seen = False
    for entry in entries:
        seen = True
        verdict = entry.check(version)
        if verdict.affected and not verdict.fail_closed:
            return verdict
        if verdict.affected and undecided is None:
            undecided = verdict
    if not seen:
        return Verdict(True, MALFORMED, "no affected[] entry")
    return undecided or Verdict(False, NOT_AFFECTED)


# -- ranges ----------------------------------------------------------------------------------------------------


def _check_range(rng: Range, version: Version) -> Verdict:
    if rng.type != ECOSYSTEM:
        return Verdict(True, UNSUPPORTED_RANGE, rng.type)
    limits: list[Version | None] = []  # None: infinity
    ordered: list[tuple[tuple[int, Version], int, str]] = []
    for event in rng.events:
        if event.kind == LIMIT:
            if "*" in event.value:
                limits.append(None)
                continue
            bound = _parse(event.value)
            if bound is None:
                return Verdict(True, UNPARSEABLE_EVENT, f"limit {event.value!r}")
            limits.append(bound)
            continue
        if event.kind == INTRODUCED and event.value == "0":
            key = (0, _ZERO)  # before every version, 0.dev0 and 0a1 included
        else:
            bound = _parse(event.value)
            if bound is None:
                return Verdict(True, UNPARSEABLE_EVENT, f"{event.kind} {event.value!r}")
            key = (1, bound)
        ordered.append((key, _TIE_RANK[event.kind], event.kind))
    if limits and not any(limit is None or version < limit for limit in limits):
        return Verdict(False, NOT_AFFECTED)
    affected = False
    for (_, bound), _rank, kind in sorted(ordered, key=lambda item: (item[0], item[1])):
        if kind == INTRODUCED and (bound is _ZERO or version >= bound):
            affected = True
        elif kind == FIXED and version >= bound:
            affected = False
        elif kind == LAST_AFFECTED and version > bound:
            affected = False
    return Verdict(True, IN_RANGE) if affected else Verdict(False, NOT_AFFECTED)


def _parse(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


# -- reading the JSON ------------------------------------------------------------------------------------------


class _Malformed(ValueError):
    pass


def _versions(entry: Any) -> tuple[str, ...]:
    if not isinstance(entry, dict):
        raise _Malformed(f"affected[] entry is {type(entry).__name__}, expected an object")
    raw = entry.get("versions")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise _Malformed("versions is not a list of strings")
    return tuple(raw)


def _ranges(entry: dict[str, Any]) -> tuple[Range, ...]:
    raw = entry.get("ranges")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _Malformed("ranges is not a list")
    return tuple(_range(item) for item in raw)


def _range(item: Any) -> Range:
    if not isinstance(item, dict):
        raise _Malformed("a ranges[] item is not an object")
    kind = item.get("type")
    if not isinstance(kind, str):
        raise _Malformed("ranges[].type is not a string")
    raw_events = item.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise _Malformed(f"{kind} range has no events")
    events = tuple(_event(ev) for ev in raw_events)
    if not any(ev.kind == INTRODUCED for ev in events):
        raise _Malformed(f"{kind} range has no introduced event")
    return Range(kind, events)


def _event(raw: Any) -> Event:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise _Malformed("an event must be an object with exactly one key")
    ((kind, value),) = raw.items()
    if kind not in EVENT_KINDS:
        raise _Malformed(f"unknown event {str(kind)[:40]!r}")
    if not isinstance(value, str):
        raise _Malformed(f"{kind} is not a string")
    return Event(kind, value)
