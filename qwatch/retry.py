"""The one backoff rule every retry loop uses: exponential from a base, doubling per attempt, capped.

One function instead of a formula per loop, so every loop has the same off-by-one (attempt 1 waits ``base``), the
same overflow guard (the exponent stops growing long before a float would) and, where many clients retry the same
server at once, the same jitter. The loops themselves stay where they are: each retries a different failure and
counts it in its own metric.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_DOUBLINGS = 30
"""Beyond 2**30 times the base every sensible cap has long been reached; stops 2.0**attempt from overflowing."""


def backoff_delay(
    attempt: int,
    base: float,
    cap: float | None = None,
    *,
    jitter: Callable[[], float] | None = None,
    max_doublings: int = MAX_DOUBLINGS,
) -> float:
    """Seconds to wait before retry ``attempt`` (1 for the first retry): ``base * 2**(attempt - 1)``, at most ``cap``.

    With ``jitter`` (a source of uniform numbers in [0, 1)), "equal jitter": half the delay fixed, half random, so
    clients that failed together do not retry together and none retries sooner than half its delay.
    """
    doublings = min(max(attempt - 1, 0), max_doublings)
    delay = base * 2.0**doublings
    if cap is not None:
        delay = min(cap, delay)
    if jitter is not None:
        delay = delay / 2 + jitter() * delay / 2
    return delay
