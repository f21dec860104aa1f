"""``qwatch.frozen.fast_init``: the faster constructor keeps every behaviour of a frozen dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from qwatch import events
from qwatch.frozen import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class _Point:
    x: int
    label: str | None = None
    tags: tuple[str, ...] = ()


def test_it_builds_what_the_dataclass_init_builds() -> None:
    reference = dataclass(frozen=True, slots=True)(type("_Point", (), {"__annotations__": _Point.__annotations__}))
    assert _Point(1) == _Point(x=1) == _Point(1, None, ())
    assert repr(_Point(2, "a", ("t",))) == "_Point(x=2, label='a', tags=('t',))"
    assert hash(_Point(3, "b")) == hash(_Point(3, "b"))
    assert dataclasses.astuple(_Point(4, "c", ("u",))) == dataclasses.astuple(reference(4, "c", ("u",)))


def test_it_stays_frozen_and_rejects_the_same_calls() -> None:
    p = _Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        _Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Point(1, nope=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Point(1, "a", (), 4)  # type: ignore[call-arg]


HOT = (
    events.ReportObserved,
    events.ProjectStatusObserved,
    events.IndexMembershipObserved,
    events.JournalEntryObserved,
    events.ReleasesObserved,
    events.Transition,
    events.PackageStateRecord,
    events.PackageState,
    events.Evidence,
    events.StatusPoint,
    events.Sighting,
)
"""Records the processor builds per observation: the only ones that give up dataclass features for speed."""


def _fast(cls: type) -> bool:
    return cls.__init__.__code__.co_filename.startswith("<fast_init")  # type: ignore[misc]


def test_hot_records_use_it_and_the_rest_stay_plain_dataclasses() -> None:
    """A hot record added without the decorator is noticed (it would still work, only slower); a cold one that
    gains it is too (it would give up ``default_factory`` and ``__post_init__`` for nothing)."""
    assert [cls.__name__ for cls in HOT if not _fast(cls)] == []
    cold = [cls for cls in events.TOP_LEVEL if cls not in HOT]
    assert cold and [cls.__name__ for cls in cold if _fast(cls)] == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: dataclass(frozen=False, slots=True)(type("A", (), {"__annotations__": {"x": "int"}})),
        lambda: dataclass(frozen=True)(type("B", (), {"__annotations__": {"x": "int"}})),
        lambda: dataclass(frozen=True, slots=True)(
            type("C", (), {"__annotations__": {"x": "tuple[int, ...]"}, "x": field(default_factory=tuple)})
        ),
        lambda: dataclass(frozen=True, slots=True, kw_only=True)(type("D", (), {"__annotations__": {"x": "int"}})),
        lambda: dataclass(frozen=True, slots=True)(
            type("E", (), {"__annotations__": {"x": "int"}, "__post_init__": lambda self: None})
        ),
    ],
    ids=["not-frozen", "no-slots", "default-factory", "kw-only", "post-init"],
)
def test_what_it_cannot_keep_is_refused(make: object) -> None:
    with pytest.raises(TypeError):
        fast_init(make())  # type: ignore[operator]
