"""The pure core of the mirror enforcers: (transition, holds, policy) -> (actions, new holds), no I/O.

Why holds with reasons instead of "hidden or not": a project can be hidden for several reasons at once (PyPI
quarantined it *and* an OpenSSF report names it). CLEARED lifts only the quarantine; the report still holds it.
So every hide records a reason ("QUARANTINED", "REMOVED", "report:MAL-…", "RELEASE_QUARANTINED"), every lift
removes one, and the mirror serves a project or version again only when no reason is left. The actions are the
difference between the served set before and after, so applying a transition twice, or replaying a log, plans
nothing the second time (and ids already applied are skipped before planning at all).

Adapters (``bandersnatch.py``, ``devpi.py``) turn actions into file moves or devpi index settings; they never
decide anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from qwatch import events

# Kinds (the processor's vocabulary, qwatch/events/kinds.py; spelled here so this core imports no processor code).
QUARANTINED, CLEARED, REMOVED, RESTORED = "QUARANTINED", "CLEARED", "REMOVED", "RESTORED"
RELEASE_QUARANTINED, RELEASE_CLEARED, RELEASE_REMOVED = "RELEASE_QUARANTINED", "RELEASE_CLEARED", "RELEASE_REMOVED"
REPORTED, REPORT_UPDATED, REPORT_WITHDRAWN, REPORT_ESCALATED = (
    "REPORTED",
    "REPORT_UPDATED",
    "REPORT_WITHDRAWN",
    "REPORT_ESCALATED",
)
INFORMATIONAL = frozenset(
    {"ARCHIVED", "UNARCHIVED", "YANKED", "PROVENANCE_LOST", "PROVENANCE_CHANGED", "PROVENANCE_INVALID"}
)
"""Known kinds that never change what a mirror serves (a yanked file stays installable by pin, as on PyPI; a
provenance drift is a warning about who published a release, not a takedown)."""

HIDING_KINDS = frozenset({QUARANTINED, REMOVED, RELEASE_QUARANTINED, RELEASE_REMOVED, REPORTED})
"""Kinds a policy may switch on or off (``act_on``); REPORT_UPDATED/ESCALATED follow REPORTED."""

KNOWN_KINDS = frozenset(
    {
        QUARANTINED,
        CLEARED,
        REMOVED,
        RESTORED,
        RELEASE_QUARANTINED,
        RELEASE_CLEARED,
        RELEASE_REMOVED,
        REPORTED,
        REPORT_UPDATED,
        REPORT_WITHDRAWN,
        REPORT_ESCALATED,
        *INFORMATIONAL,
    }
)

REPORTED_MODES = ("versions", "project", "ignore")
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")


def normalize(name: str) -> str:
    """PEP 503 normalization: the directory name bandersnatch and devpi use."""
    return re.sub(r"[-_.]+", "-", name).lower()


def safe_name(name: str) -> str | None:
    """The normalized name if it is safe as one path component, else ``None`` (never ``..``, ``/``, empty)."""
    norm = normalize(name)
    return norm if _NAME.match(norm) and ".." not in norm else None


@dataclass(frozen=True, slots=True)
class Allow:
    """A policy exception: never hide ``package`` (or only these ``versions``) for these kinds/reports."""

    package: str
    reason: str
    versions: frozenset[str] = frozenset()
    reports: frozenset[str] = frozenset()

    def covers(self, version: str | None, report_id: str | None) -> bool:
        """True when this exception keeps ``version`` (``None``: the whole project) served."""
        if self.reports and (report_id is None or report_id not in self.reports):
            return False
        return not self.versions or (version is not None and version in self.versions)


@dataclass(frozen=True, slots=True)
class Policy:
    """Which kinds act, which packages are exempt, and what a report without a PyPI verdict does."""

    act_on: frozenset[str] = HIDING_KINDS
    reported: str = "versions"
    allow: tuple[Allow, ...] = ()

    def __post_init__(self) -> None:
        unknown = self.act_on - HIDING_KINDS
        if unknown:
            raise ValueError(f"policy act_on: unknown kinds {sorted(unknown)}; expected some of {sorted(HIDING_KINDS)}")
        if self.reported not in REPORTED_MODES:
            raise ValueError(f"policy reported: expected one of {', '.join(REPORTED_MODES)}, got {self.reported!r}")

    def allowed(self, package: str, version: str | None, report_id: str | None) -> Allow | None:
        """The exception keeping this served, if any."""
        return next((a for a in self.allow if a.package == package and a.covers(version, report_id)), None)


@dataclass(frozen=True, slots=True)
class Holds:
    """Why a project (or some of its versions) is kept off the mirror; empty means served as upstream serves it."""

    project: frozenset[str] = frozenset()
    versions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    removed_at: int | None = None
    """When PyPI's journal confirmed the removal (ms): the purge clock. None: no confirmed removal."""
    purged: bool = False

    @property
    def empty(self) -> bool:
        """Nothing held."""
        return not self.project and not any(self.versions.values())

    def hidden_versions(self) -> frozenset[str]:
        """Versions held by a release-level reason."""
        return frozenset(v for v, reasons in self.versions.items() if reasons)


@dataclass(frozen=True, slots=True)
class Action:
    """One change to the mirror. ``op``: hide_project, restore_project, hide_versions, restore_versions,
    purge_project, purge_versions, keep (nothing changes: recorded for the audit only)."""

    op: str
    package: str
    versions: tuple[str, ...] = ()
    why: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """What one transition does: the actions in order and the holds afterwards; ``rejected`` when malformed."""

    package: str
    actions: tuple[Action, ...]
    holds: Holds
    rejected: str | None = None


def validate(t: object) -> str | None:
    """Why ``t`` cannot be acted upon (malformed or unknown), or ``None``. Nothing is changed for a rejected one."""
    if not isinstance(t, events.Transition):
        return f"not a Transition: {type(t).__name__}"
    if t.ecosystem != "PyPI":
        return f"ecosystem {t.ecosystem!r} is not PyPI"
    if t.kind not in KNOWN_KINDS:
        return f"unknown transition kind {t.kind!r}"
    if not t.event_id:
        return "empty event_id"
    if safe_name(t.package or "") is None:
        return f"package name {t.package!r} is not a valid project name"
    if t.kind.startswith("RELEASE_") and not (t.version and _VERSION.match(t.version)):
        return f"{t.kind} needs a valid version, got {t.version!r}"
    if t.kind in (REPORTED, REPORT_UPDATED, REPORT_WITHDRAWN, REPORT_ESCALATED) and not t.report_id:
        return f"{t.kind} without a report_id"
    return None


def _report_reason(report_id: str) -> str:
    return f"report:{report_id}"


def _journal_confirmed(t: events.Transition) -> bool:
    return any(e.source == "pypi-journal" for e in t.evidence)


def _add(versions: Mapping[str, frozenset[str]], keys: Iterable[str], reason: str) -> dict[str, frozenset[str]]:
    out = dict(versions)
    for v in keys:
        out[v] = out.get(v, frozenset()) | {reason}
    return out


def _drop(
    versions: Mapping[str, frozenset[str]], reason: str, keys: Iterable[str] | None = None
) -> dict[str, frozenset[str]]:
    wanted = None if keys is None else set(keys)
    out: dict[str, frozenset[str]] = {}
    for v, reasons in versions.items():
        kept = reasons - {reason} if wanted is None or v in wanted else reasons
        if kept:
            out[v] = kept
    return out


def next_holds(
    t: events.Transition, holds: Holds, policy: Policy, scope: tuple[frozenset[str], bool] | None
) -> tuple[Holds, str]:
    """The holds after ``t`` (already validated) and a one-line why. ``scope``: the report's affected versions and
    its all-versions flag, from the processor's state (``None`` when not known: a report then holds the project,
    failing closed)."""
    kind, version = t.kind, t.version
    if kind == REMOVED and REMOVED in policy.act_on:
        return replace(
            holds,
            project=holds.project | {REMOVED},
            removed_at=holds.removed_at or (t.detected_at if _journal_confirmed(t) else None),
        ), "PyPI removed the project"
    if kind == QUARANTINED and QUARANTINED in policy.act_on:
        return replace(holds, project=holds.project | {QUARANTINED}), "PyPI quarantined the project"
    if kind == CLEARED:
        return replace(holds, project=holds.project - {QUARANTINED}), "PyPI cleared the quarantine"
    if kind == RESTORED:
        return replace(holds, project=holds.project - {REMOVED}, removed_at=None, purged=False), "back on PyPI"
    if kind in (RELEASE_QUARANTINED, RELEASE_REMOVED) and kind in policy.act_on and version:
        return replace(holds, versions=_add(holds.versions, [version], kind)), f"PyPI {kind.lower()} {version}"
    if kind == RELEASE_CLEARED and version:
        return replace(
            holds, versions=_drop(holds.versions, RELEASE_QUARANTINED, [version])
        ), f"PyPI cleared the quarantine of {version}"
    if kind in (REPORTED, REPORT_UPDATED, REPORT_ESCALATED) and t.report_id:
        if REPORTED not in policy.act_on or policy.reported == "ignore":
            return holds, "reports do not act (policy)"
        reason = _report_reason(t.report_id)
        cleared = replace(holds, project=holds.project - {reason}, versions=_drop(holds.versions, reason))
        if policy.reported == "project" or scope is None or scope[1] or not scope[0]:
            why = "report scope unknown: the whole project is held" if scope is None else f"{t.report_id} live"
            return replace(cleared, project=cleared.project | {reason}), why
        return replace(cleared, versions=_add(cleared.versions, sorted(scope[0]), reason)), (
            f"{t.report_id} affects {', '.join(sorted(scope[0]))}"
        )
    if kind == REPORT_WITHDRAWN and t.report_id:
        reason = _report_reason(t.report_id)
        return replace(
            holds, project=holds.project - {reason}, versions=_drop(holds.versions, reason)
        ), f"{t.report_id} withdrawn"
    return holds, f"{kind} does not change the mirror" + (" (policy)" if kind in HIDING_KINDS else "")


def effective(package: str, holds: Holds, policy: Policy) -> tuple[bool, frozenset[str]]:
    """(project hidden, hidden versions) after policy exceptions: what the mirror must look like."""
    project_reasons = [r for r in holds.project if policy.allowed(package, None, _report_of(r)) is None]
    versions = frozenset(
        v
        for v, reasons in holds.versions.items()
        if any(policy.allowed(package, v, _report_of(r)) is None for r in reasons)
    )
    return bool(project_reasons), versions


def _report_of(reason: str) -> str | None:
    return reason.removeprefix("report:") if reason.startswith("report:") else None


def diff(package: str, before: Holds, after: Holds, policy: Policy, why: str) -> tuple[Action, ...]:
    """Actions that take the mirror from the effective state of ``before`` to that of ``after``.

    A project restore brings back every file the project hide took, held versions included, so it is followed by
    a hide of every version still held (the adapters' hides are idempotent)."""
    was_hidden, was_versions = effective(package, before, policy)
    hidden, versions = effective(package, after, policy)
    actions: list[Action] = []
    if hidden and not was_hidden:
        actions.append(Action("hide_project", package, why=why))
    if was_hidden and not hidden:
        actions.append(Action("restore_project", package, why=why))
        lifted = sorted(was_versions - versions)
        if lifted:
            actions.append(Action("restore_versions", package, tuple(lifted), why))
        if versions:
            actions.append(Action("hide_versions", package, tuple(sorted(versions)), why))
    else:
        newly = sorted(versions - was_versions)
        if newly:
            actions.append(Action("hide_versions", package, tuple(newly), why))
        lifted = sorted(was_versions - versions)
        if lifted:
            actions.append(Action("restore_versions", package, tuple(lifted), why))
    if not actions:
        actions.append(Action("keep", package, why=why))
    return tuple(actions)


def decide(t: object, holds: Holds, policy: Policy, scope: tuple[frozenset[str], bool] | None = None) -> Decision:
    """The whole planning step for one transition; a rejected transition leaves ``holds`` unchanged."""
    problem = validate(t)
    if problem is not None:
        package = getattr(t, "package", "") if isinstance(getattr(t, "package", ""), str) else ""
        return Decision(package, (), holds, problem)
    assert isinstance(t, events.Transition)  # noqa: S101 - validate() checked it
    package = normalize(t.package)
    after, why = next_holds(t, holds, policy, scope)
    return Decision(package, diff(package, holds, after, policy, why), after)


def plan_purge(package: str, holds: Holds, now_ms: int, purge_after_ms: int) -> Action | None:
    """Delete held files only after a removal confirmed by PyPI's journal has lasted ``purge_after``."""
    if holds.purged or holds.removed_at is None or REMOVED not in holds.project:
        return None
    if now_ms - holds.removed_at < purge_after_ms:
        return None
    return Action("purge_project", package, why=f"removal confirmed by the journal over {purge_after_ms // 1000}s ago")
