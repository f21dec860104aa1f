"""The processor's GC tuning: rare young collections while busy, and a collection when idle so that cyclic
garbage (kafka-python leaves a cycle per timed-out poll) cannot pile up for the 18 minutes the threshold allows."""

from __future__ import annotations

import gc
import weakref

from processors.tuning import IdleCollector


class _Node:
    other: object | None = None


def test_idle_collector_frees_cyclic_garbage_once_the_interval_has_passed() -> None:
    now = [100.0]
    collector = IdleCollector(30.0, clock=lambda: now[0])
    enabled = gc.isenabled()
    gc.disable()  # only the collector under test may collect
    try:
        node = _Node()
        node.other = node  # a cycle: reference counting alone never frees it
        ref = weakref.ref(node)
        del node
        now[0] += 29.0
        assert not collector.idle() and ref() is not None
        now[0] += 2.0
        assert collector.idle() and ref() is None
        assert not collector.idle()  # and not again until another interval has passed
    finally:
        if enabled:
            gc.enable()
