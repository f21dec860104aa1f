"""Process-level tuning the processor applies at start, so benchmarks and production run the same way."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

GC_THRESHOLDS = (100_000, 50, 100)
IDLE_COLLECT_INTERVAL_S = 30.0


def tune_gc() -> None:
    """Collect young objects less often.

    The processor keeps hundreds of thousands of small frozen records alive for the whole process, and every
    observation allocates a few more. With CPython's default threshold (700 allocations) the collector keeps
    re-scanning that state: about a quarter of the core's time in bench/processor_bench.py. The records form no
    reference cycles (they are freed by reference counting), so rarer collections lose little; the client's own
    cycles are handled by :class:`IdleCollector`.
    """
    gc.set_threshold(*GC_THRESHOLDS)


class IdleCollector:
    """A young-generation collection when the input is idle, at most every ``interval`` seconds.

    kafka-python leaves a reference cycle behind every poll that times out (the exception it keeps refers to its own
    frame). A quiet processor allocates slowly, so with ``GC_THRESHOLDS`` the first collection came only after about
    18 minutes and RSS climbed ~0.7 MiB a minute until then (bench/soak.py). Collecting on idle polls bounds that
    garbage at no cost to a busy stream, which never polls empty.
    """

    def __init__(self, interval: float = IDLE_COLLECT_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last = clock()

    def idle(self) -> bool:
        """Called on an empty poll; True when it collected."""
        now = self._clock()
        if now - self._last < self._interval:
            return False
        self._last = now
        gc.collect(0)
        return True


def settle_after_restore() -> None:
    """Move everything alive now (the state just restored) out of the collector's view."""
    gc.collect()
    gc.freeze()
