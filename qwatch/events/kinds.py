"""Transition kinds, and which kinds a change of project status implies.

The status table is the whole project-level state machine: a status run (an episode of one status on the PyPI
timeline) that follows a run of another status implies these transitions, in this order. Kinds that need two
steps (quarantined → archived is a clearance and then an archive) are spelled out so each real change is one
transition with its own before/after.
"""

from __future__ import annotations

from qwatch.events.state import ACTIVE, ARCHIVED, QUARANTINED, REMOVED, UNKNOWN

K_QUARANTINED = "QUARANTINED"
K_CLEARED = "CLEARED"
K_REMOVED = "REMOVED"
K_RESTORED = "RESTORED"
K_ARCHIVED = "ARCHIVED"
K_UNARCHIVED = "UNARCHIVED"
K_RELEASE_QUARANTINED = "RELEASE_QUARANTINED"
K_RELEASE_CLEARED = "RELEASE_CLEARED"
K_RELEASE_REMOVED = "RELEASE_REMOVED"
K_YANKED = "YANKED"
K_REPORTED = "REPORTED"
K_REPORT_UPDATED = "REPORT_UPDATED"
K_REPORT_WITHDRAWN = "REPORT_WITHDRAWN"
K_REPORT_ESCALATED = "REPORT_ESCALATED"
K_PROVENANCE_LOST = "PROVENANCE_LOST"
K_PROVENANCE_CHANGED = "PROVENANCE_CHANGED"
K_PROVENANCE_INVALID = "PROVENANCE_INVALID"

ALL_KINDS = (
    K_QUARANTINED,
    K_CLEARED,
    K_REMOVED,
    K_RESTORED,
    K_ARCHIVED,
    K_UNARCHIVED,
    K_RELEASE_QUARANTINED,
    K_RELEASE_CLEARED,
    K_RELEASE_REMOVED,
    K_YANKED,
    K_REPORTED,
    K_REPORT_UPDATED,
    K_REPORT_WITHDRAWN,
    K_REPORT_ESCALATED,
    K_PROVENANCE_LOST,
    K_PROVENANCE_CHANGED,
    K_PROVENANCE_INVALID,
)

PROVENANCE_KINDS = (K_PROVENANCE_LOST, K_PROVENANCE_CHANGED, K_PROVENANCE_INVALID)

REPORT_KINDS = (K_REPORTED, K_REPORT_UPDATED, K_REPORT_WITHDRAWN)

EXITS = {K_CLEARED: QUARANTINED, K_RESTORED: REMOVED}
"""Kinds that end an episode; their id names the episode they end (its start serial), when it is known."""

SAME_SERIAL_KINDS = frozenset({K_ARCHIVED, K_UNARCHIVED})
"""Kinds PyPI records without a journal row or serial bump; their id also needs the fetch time of the page."""

Step = tuple[str, str, str]
"""(kind, status before, status after)."""

STATUS_TABLE: dict[tuple[str, str], tuple[Step, ...]] = {
    (UNKNOWN, ARCHIVED): ((K_ARCHIVED, UNKNOWN, ARCHIVED),),
    (UNKNOWN, QUARANTINED): ((K_QUARANTINED, UNKNOWN, QUARANTINED),),
    (ACTIVE, ARCHIVED): ((K_ARCHIVED, ACTIVE, ARCHIVED),),
    (ACTIVE, QUARANTINED): ((K_QUARANTINED, ACTIVE, QUARANTINED),),
    (ACTIVE, REMOVED): ((K_REMOVED, ACTIVE, REMOVED),),
    (ARCHIVED, ACTIVE): ((K_UNARCHIVED, ARCHIVED, ACTIVE),),
    # PyPI's quarantine_project() overwrites the archived lifecycle status: no UNARCHIVED, and a clearance
    # later brings the project back active, not archived (pypi-signals.md, section 0).
    (ARCHIVED, QUARANTINED): ((K_QUARANTINED, ARCHIVED, QUARANTINED),),
    (ARCHIVED, REMOVED): ((K_REMOVED, ARCHIVED, REMOVED),),
    (QUARANTINED, ACTIVE): ((K_CLEARED, QUARANTINED, ACTIVE),),
    (QUARANTINED, ARCHIVED): ((K_CLEARED, QUARANTINED, ACTIVE), (K_ARCHIVED, ACTIVE, ARCHIVED)),
    (QUARANTINED, REMOVED): ((K_REMOVED, QUARANTINED, REMOVED),),
    (REMOVED, ACTIVE): ((K_RESTORED, REMOVED, ACTIVE),),
    (REMOVED, ARCHIVED): ((K_RESTORED, REMOVED, ACTIVE), (K_ARCHIVED, ACTIVE, ARCHIVED)),
    (REMOVED, QUARANTINED): ((K_RESTORED, REMOVED, ACTIVE), (K_QUARANTINED, ACTIVE, QUARANTINED)),
}
"""(status of the previous run, status of this run) → transitions. Missing pairs imply nothing: unknown → active
is a first sight, unknown → removed is a name that is not on PyPI (removed before we looked, or never existed)."""


def steps_between(before: str, after: str) -> tuple[Step, ...]:
    """The transitions a run of ``after`` following a run of ``before`` implies (empty when none)."""
    return STATUS_TABLE.get((before, after), ())


_SUMMARIES = {
    K_QUARANTINED: "PyPI quarantined {package}",
    K_CLEARED: "PyPI cleared the quarantine of {package}",
    K_REMOVED: "{package} was removed from PyPI",
    K_RESTORED: "{package} is back on PyPI after a removal (the name may have been re-registered by someone else)",
    K_ARCHIVED: "{package} was archived",
    K_UNARCHIVED: "{package} was unarchived",
    K_RELEASE_QUARANTINED: "PyPI quarantined {package} {version}",
    K_RELEASE_CLEARED: "PyPI cleared the quarantine of {package} {version}",
    K_RELEASE_REMOVED: "{package} {version} was removed from PyPI",
    K_YANKED: "{package} {version} was yanked",
    K_REPORTED: "{report} reports {package} ({ecosystem}) as malicious",
    K_REPORT_UPDATED: "{report} for {package} ({ecosystem}) was updated",
    K_REPORT_WITHDRAWN: "{report} for {package} ({ecosystem}) was withdrawn",
    K_REPORT_ESCALATED: "{report}: PyPI has served a version of {package} it reports as malicious",
    K_PROVENANCE_LOST: "{package} {version} was published without the attestations its recent releases carried",
    K_PROVENANCE_CHANGED: "{package} {version} was attested by another publisher than its recent releases",
    K_PROVENANCE_INVALID: "{package} {version} carries an attestation that does not hold",
}


def describe(kind: str, ecosystem: str, package: str, version: str | None, report: str | None, detail: str) -> str:
    """One line for analysts: what happened, then the upstream fact it rests on."""
    text = _SUMMARIES[kind].format(package=package, ecosystem=ecosystem, version=version or "", report=report or "")
    return f"{text} ({detail})" if detail else text
