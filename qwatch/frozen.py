"""A faster ``__init__`` for the frozen slots dataclasses that every observation creates by the handful.

A frozen dataclass's generated ``__init__`` stores each field with ``object.__setattr__`` (its own ``__setattr__``
refuses), a generic attribute lookup per field. The processor's core builds three or four such records per
observation (a status point, a state record, a transition and its before/after), and those stores were a quarter
of the opcodes it ran (bench/processor_bench.py). Storing through each slot's member descriptor does the same work
in half the time. The class stays a frozen dataclass in every other respect: same signature and defaults, same
``__eq__``/``__hash__``/``__repr__``, and assignment after construction still raises ``FrozenInstanceError``.

Used only where the processor's hot path builds records (observations, transitions and their evidence, the state
records, the core's drafts); records built a few times per minute (alerts, inventories, dead letters, cursors,
watch requests) stay plain frozen dataclasses, free to use ``default_factory``, ``__post_init__`` or keyword-only
fields. This module imports nothing from qwatch, so any record module can use it.
"""

from __future__ import annotations

import dataclasses
import types
from typing import TypeVar

T = TypeVar("T", bound=type)


def fast_init(cls: T) -> T:
    """Replace the ``__init__`` of a frozen slots dataclass by one that stores through the slots' descriptors.

    Only the plain shape is supported (positional-or-keyword fields, constant defaults, no ``__post_init__``); any
    other is a TypeError at import time, so a new field kind cannot silently lose its dataclass behaviour."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: fast_init is for frozen slots dataclasses")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: fast_init does not run __post_init__")
    env: dict[str, object] = {}
    params_src: list[str] = []
    body: list[str] = []
    for i, f in enumerate(dataclasses.fields(cls)):
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: fast_init supports plain fields with constant defaults only")
        if not f.name.isidentifier() or f.name == "self":
            raise TypeError(f"{cls.__name__}.{f.name}: not usable as a parameter name")
        slot = cls.__dict__.get(f.name)
        if not isinstance(slot, types.MemberDescriptorType):
            raise TypeError(f"{cls.__name__}.{f.name}: not a slot")
        env[f"set{i}"] = slot.__set__
        if f.default is dataclasses.MISSING:
            params_src.append(f.name)
        else:
            env[f"default{i}"] = f.default
            params_src.append(f"{f.name}=default{i}")
        body.append(f"    set{i}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params_src)}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(compile(source, f"<fast_init {cls.__qualname__}>", "exec"), env)  # noqa: S102 - built from field names only
    init = env["__init__"]
    assert isinstance(init, types.FunctionType)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[misc]
    return cls
