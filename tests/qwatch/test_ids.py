"""Event ids are on the wire and in the state topic: the recipe must never change, whatever the implementation."""

from __future__ import annotations

from qwatch.ids import event_id


def test_ids_are_pinned() -> None:
    # Computed by the original part-by-part hashing; a change here would break deduplication across versions.
    assert event_id("processor", "PyPI", "evil-pkg", "QUARANTINED", 1022) == "27c0947942e2df89399f5fcf15dcf70d"
    assert event_id("pypi-journal", 1022, None, "é") == "f673fc1a8bd43a40c4d43eafda9f4381"


def test_parts_are_separated() -> None:
    assert event_id("s", "ab") != event_id("s", "a", "b") != event_id("sa", "b")
