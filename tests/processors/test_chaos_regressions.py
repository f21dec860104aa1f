"""Failing examples the chaos suite found in the processor core, kept as plain-value regression tests.

Each one is the exact observation order a SIGKILL run produced (an ingestor restarted, so the journal rows of a
change arrived after a page had already shown its outcome), reduced to the rows that matter.
"""

from __future__ import annotations

from collections.abc import Sequence

from processors.core import step
from qwatch import events
from qwatch.events.state import PackageStateRecord
from testing.samples import T0, journal, page

P = "chaos-023"
NOW = T0 + 3_600_000


def kinds(observations: Sequence[events.Observation]) -> list[str]:
    """Feed the observations in order; the kinds of every transition emitted."""
    state: PackageStateRecord | None = None
    out: list[str] = []
    for obs in observations:
        result = step(state, obs, NOW)
        state = result.state if result.state is not None else state
        out += [t.kind for t in result.transitions]
    return out


def test_a_404_fetched_in_the_second_of_a_re_registration_is_not_a_second_removal() -> None:
    # remove project; a JSON-API 404 (no serial) fetched 40 ms into the second in which the name is registered
    # again (the create row is stamped with that whole second); the new page; then the late create row.
    second = T0 + 6000
    observations = [
        journal(P, 1288, "remove project", ts=T0),
        page(P, "absent", None, second + 40, source="pypi-json"),
        page(P, "active", 1321, second + 500, versions=("2.0",)),
        journal(P, 1315, "create", ts=second),
    ]
    assert kinds(observations) == ["REMOVED", "RESTORED"]


def test_a_404_fetched_before_a_re_registration_and_a_quarantine_in_the_same_second_is_no_removal() -> None:
    # The name is registered again and quarantined at once, both rows stamped in the second of the 404; the
    # quarantine row's stamp alone would put the 404 after it (a removal of the quarantined project).
    second = T0 + 6000
    observations = [
        journal(P, 1440, "remove project", ts=T0),
        page(P, "absent", None, second + 600, source="pypi-json"),
        journal(P, 1529, "create", ts=second),
        journal(P, 1536, "project quarantined", ts=second),
    ]
    assert kinds(observations) == ["REMOVED", "RESTORED", "QUARANTINED"]


def test_a_404_fetched_in_the_second_of_a_quarantine_and_a_removal_follows_the_quarantine() -> None:
    # The other side of the same ambiguity: the 404 came after both rows (stamped in its second), and only the
    # quarantine row is known when it is processed. It must not be anchored before the quarantine.
    observations = [
        page(P, "active", 1091, T0 - 5000),
        journal(P, 1303, "project quarantined", ts=T0),
        page(P, "absent", None, T0 + 500, source="pypi-json"),
        journal(P, 1304, "remove project", ts=T0),
    ]
    assert kinds(observations) == ["QUARANTINED", "REMOVED"]


def test_an_active_page_after_a_quarantine_is_no_clearance_when_the_name_was_removed_and_registered_again() -> None:
    # The page shows the project active after its quarantine; the journal rows arriving later say it was removed
    # and the name registered again. CLEARED would have been a false all-clear for a possible takeover.
    observations = [
        page(P, "active", 1500, T0, versions=("1.0",)),
        journal(P, 1614, "project quarantined", ts=T0 + 10_000),
        page(P, "active", 1656, T0 + 20_000, versions=("2.0",)),
        journal(P, 1648, "remove project", ts=T0 + 15_000),
        journal(P, 1650, "create", ts=T0 + 16_000),
    ]
    assert kinds(observations) == ["QUARANTINED", "REMOVED", "RESTORED"]


def test_a_clearance_seen_first_on_a_page_is_reported_once_when_its_journal_row_arrives() -> None:
    quarantined = [page(P, "active", 1500, T0), journal(P, 1614, "project quarantined", ts=T0 + 10_000)]
    shown = page(P, "active", 1656, T0 + 20_000)
    assert kinds([*quarantined, shown]) == ["QUARANTINED"]
    cleared = journal(P, 1640, "project quarantine cleared", ts=T0 + 15_000)
    assert kinds([*quarantined, shown, cleared]) == ["QUARANTINED", "CLEARED"]
    assert kinds([*quarantined, cleared, shown]) == ["QUARANTINED", "CLEARED"]
