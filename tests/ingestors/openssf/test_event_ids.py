"""The OpenSSF ingestor's event ids are ``qwatch.ids.event_id``'s, whichever way the service computes them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingestors.openssf.service import SOURCE, report_event_id
from qwatch.ids import event_id
from qwatch.openssf.classify import CHANGES, MOVED


@given(
    report_id=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20),
    change=st.sampled_from(CHANGES),
    commit=st.from_regex(r"[0-9a-f]{40}", fullmatch=True),
    package=st.tuples(st.sampled_from(["PyPI", "npm", ""]), st.text(alphabet="ab-_.\x1fé", max_size=8)),
    several=st.booleans(),
)
def test_report_event_ids_are_event_id_of_the_natural_key(
    report_id: str, change: str, commit: str, package: tuple[str, str], several: bool
) -> None:
    expected = (
        event_id(SOURCE, report_id, change, commit, *package)
        if change == MOVED or several
        else event_id(SOURCE, report_id, change, commit)
    )
    assert report_event_id(report_id, change, commit, package, several) == expected
    # and the id of one report's event for one package differs from another's when either key part differs
    if not several and change != MOVED:
        assert report_event_id(report_id + "x", change, commit, package, several) != expected
