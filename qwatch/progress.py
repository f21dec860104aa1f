"""Progress bars for long jobs (journal backfill, sweeps, replays), for a person at a terminal only.

Drawn on stderr with ``\\r`` when stderr is a terminal, never into a pipe, a log file or a CI log (where a
redrawn line is noise); ``NO_COLOR`` (https://no-color.org) turns the coloured fill into plain characters.
Throttled to a few redraws a second, so a tight loop pays nothing measurable for it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

from qwatch.logs import human_duration

WIDTH = 24


class ProgressBar:
    """``label [#########...............]  37% 1,234/3,300 · 850/s · 2 min left`` (without a total: a count and a
    rate). ``enabled=None`` decides from the stream (a terminal) and the environment (``TERM=dumb`` is off)."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: IO[str] | None = None,
        enabled: bool | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "",
        delay: float = 0.0,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        env = os.environ if env is None else env
        isatty = getattr(self.stream, "isatty", None)
        tty = callable(isatty) and bool(isatty())
        self.enabled = (tty and env.get("TERM") != "dumb") if enabled is None else enabled
        self.colour = self.enabled and "NO_COLOR" not in env
        self.label = label
        self.total = total
        self.unit = unit
        self._clock = clock
        self._start = clock()
        self._last = float("-inf")
        self._shown = False
        self.done = 0
        self.delay = delay
        """Seconds before the first draw: a job that finishes sooner never draws (a short poll is not long)."""

    def restart(self, total: int | None = None) -> None:
        """A new job on the same bar (the next poll): the clock, count and total start afresh."""
        self.close()
        self._start = self._clock()
        self._last = float("-inf")
        self.done = 0
        self.total = total

    def render(self, done: int, now: float) -> str:
        """The line for ``done`` at ``now`` (pure, for tests)."""
        elapsed = max(now - self._start, 1e-9)
        rate = done / elapsed
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            share = min(1.0, done / self.total)
            filled = int(share * WIDTH)
            bar = ("\x1b[32m" + "█" * filled + "\x1b[0m" if self.colour else "#" * filled) + (
                "·" if self.colour else "."
            ) * (WIDTH - filled)
            left = (self.total - done) / rate if rate > 0 and done < self.total else 0.0
            eta = f" · {human_duration(left)} left" if done < self.total and rate > 0 else ""
            return f"{self.label} [{bar}] {share:4.0%} {done:,}/{self.total:,}{unit} · {rate:,.0f}/s{eta}"
        return f"{self.label}: {done:,}{unit} · {rate:,.0f}/s · {human_duration(elapsed)}"

    def update(self, done: int, total: int | None = None, force: bool = False) -> None:
        """Record progress; redraw at most every 0.2 s (or when ``force``)."""
        self.done = done
        if total is not None:
            self.total = total
        if not self.enabled:
            return
        now = self._clock()
        if not force and (now - self._last < 0.2 or now - self._start < self.delay):
            return
        self._last = now
        self.stream.write("\r\x1b[2K" + self.render(done, now) if self.colour else "\r" + self.render(done, now) + " ")
        self.stream.flush()
        self._shown = True

    def advance(self, step: int = 1) -> None:
        """``update(done + step)``."""
        self.update(self.done + step)

    def close(self) -> None:
        """Draw the final state and end the line, so log output after it starts on a clean line."""
        if self.enabled and self._shown:
            self.update(self.done, force=True)
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


class ProgressSink:
    """Wraps a sink and advances a bar for each event of the given types it carries: the long jobs of the PyPI
    ingestors (a journal backfill, a sweep of every watched project) report progress without a hook in their
    poll logic, and the events reach the real sink unchanged."""

    def __init__(
        self, sink: Any, bar: ProgressBar, counts: tuple[type, ...], describe: Callable[[Any], str] | None = None
    ) -> None:
        self._sink = sink
        self.bar = bar
        self._counts = counts
        self._describe = describe
        self._last_event = time.monotonic()

    GAP = 5.0
    """Seconds without a counted event after which the next one starts a new job (the next poll or pass)."""

    def emit(self, event: object, topic: str | None = None) -> None:
        """Pass on, then count."""
        self._sink.emit(event, topic)
        if isinstance(event, self._counts):
            now = time.monotonic()
            if now - self._last_event > self.GAP:
                self.bar.restart(self.bar.total)
            self._last_event = now
            if self._describe is not None:
                self.bar.unit = self._describe(event)
            self.bar.advance()

    def flush(self, timeout: float | None = None) -> None:
        """Pass on."""
        self._sink.flush(timeout)

    def close(self) -> None:
        """End the bar's line, then close the real sink."""
        self.bar.close()
        self._sink.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)
