"""The journal prefilter (``processors.prefilter``): a row it skips undecoded is always one the core ignores, and a
row the core acts on is never skipped, whatever the package is called or how the action is padded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core import DECIDING_JOURNAL_ACTIONS, step
from processors.prefilter import JournalPrefilter
from qwatch import events
from qwatch.events.codec import Codec
from testing.samples import T0, index, journal, page, report

CODEC = Codec()
PREFILTER = JournalPrefilter(CODEC)
ROUTINE = ("add py3 file x-1.0-py3-none-any.whl", "new release", "remove file x.tar.gz", "add Owner alice", "")
ACTIONS = st.sampled_from(sorted(DECIDING_JOURNAL_ACTIONS) + list(ROUTINE)) | st.text(max_size=30)
PADDED = st.builds(lambda a, left, right: " " * left + a + " " * right, ACTIONS, st.integers(0, 2), st.integers(0, 2))
NAMES = st.sampled_from(["requests", "create-app", "yank release", "remove-project", "x"]) | st.from_regex(
    r"[a-z][a-z0-9-]{0,20}", fullmatch=True
)


@settings(max_examples=400, deadline=None)
@given(
    action=PADDED,
    name=NAMES,
    version=st.none() | st.sampled_from(["1.0", "2.0rc1", "create"]),
    known=st.booleans(),
)
def test_a_skipped_row_is_one_the_core_ignores(action: str, name: str, version: str | None, known: bool) -> None:
    row = journal(name, 40_000_001, action, version)
    state = step(None, page(name, "active", 40_000_000, T0), T0).state if known else None
    if PREFILTER.ignorable(CODEC.encode(row)):
        assert step(state, row, T0).outcome == "ignored"
    if action.strip() in DECIDING_JOURNAL_ACTIONS:
        assert not PREFILTER.ignorable(CODEC.encode(row))


def test_routine_rows_are_skipped_and_deciding_rows_are_not() -> None:
    assert PREFILTER.ignorable(CODEC.encode(journal("requests", 1, "add py3 file requests-2.0.whl", "2.0")))
    assert PREFILTER.ignorable(CODEC.encode(journal("requests", 2, "new release", "2.0")))
    assert not PREFILTER.ignorable(CODEC.encode(journal("requests", 3, "project quarantined")))
    assert not PREFILTER.ignorable(CODEC.encode(journal("requests", 4, "yank release", "2.0")))
    # Conservative: a routine row that merely names an action is decoded, and the core then ignores it.
    assert not PREFILTER.ignorable(CODEC.encode(journal("create-app", 5, "new release", "1.0")))


def test_other_records_are_never_skipped() -> None:
    others: list[events.Observation] = [
        page("requests", "active", 1, T0),
        index("requests", False, T0),
        report("requests", "MAL-2026-1", "added", "2026-01-02T00:00:00Z", "c1", T0, ("1.0",)),
    ]
    for obs in others:
        assert not PREFILTER.ignorable(CODEC.encode(obs))
    assert not PREFILTER.ignorable(None)
    assert not PREFILTER.ignorable(b"")
    assert not PREFILTER.ignorable(b"not avro at all, add py3 file")
