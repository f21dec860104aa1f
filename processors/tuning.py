"""Process-level tuning the processor applies at start, so benchmarks and production run the same way."""

from __future__ import annotations

import gc

GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Collect young objects less often.

    The processor keeps hundreds of thousands of small frozen records alive for the whole process, and every
    observation allocates a few more. With CPython's default threshold (700 allocations) the collector keeps
    re-scanning that state: about a quarter of the core's time in bench/processor_bench.py. The records form no
    reference cycles (they are freed by reference counting), so rarer collections lose nothing.
    """
    gc.set_threshold(*GC_THRESHOLDS)


def settle_after_restore() -> None:
    """Move everything alive now (the state just restored) out of the collector's view."""
    gc.collect()
    gc.freeze()
