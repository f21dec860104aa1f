"""Progress bars: only on a terminal, honouring NO_COLOR, throttled, never in the way of the events."""

from __future__ import annotations

import io

from qwatch import events
from qwatch.progress import ProgressBar, ProgressSink
from qwatch.sinks import MemorySink


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bar_draws_only_on_a_terminal() -> None:
    pipe = io.StringIO()
    bar = ProgressBar("sweep", 10, stream=pipe, env={})
    bar.update(5, force=True)
    bar.close()
    assert not bar.enabled and pipe.getvalue() == ""
    assert not ProgressBar("sweep", 10, stream=Tty(), env={"TERM": "dumb"}).enabled


def test_no_color_draws_plain_characters_and_the_eta_is_human() -> None:
    clock = Clock()
    plain = ProgressBar("pypi-simple sweep", 200, stream=Tty(), env={"NO_COLOR": "1"}, clock=clock, unit="pages")
    coloured = ProgressBar("pypi-simple sweep", 200, stream=Tty(), env={}, clock=clock, unit="pages")
    clock.now += 10
    line = plain.render(50, clock.now)
    assert line == "pypi-simple sweep [######..................]  25% 50/200 pages · 5/s · 30 s left"
    assert "\x1b[" not in line
    assert "\x1b[32m" in coloured.render(50, clock.now)


def test_updates_are_throttled_and_delayed_and_the_line_is_ended() -> None:
    clock, tty = Clock(), Tty()
    bar = ProgressBar("backfill", None, stream=tty, env={"NO_COLOR": "1"}, clock=clock, delay=2.0, unit="rows")
    bar.update(1)
    assert tty.getvalue() == ""  # a job shorter than the delay never draws
    clock.now += 2.5
    for n in range(2, 100):
        bar.update(n)
    assert tty.getvalue().count("\r") == 1  # throttled: one redraw within 0.2 s
    clock.now += 0.3
    bar.update(100)
    bar.close()
    out = tty.getvalue()
    assert (
        out.count("\r") == 3 and out.endswith("\n") and "backfill: 100 rows · 36/s · 2.8 s" in out
    )  # 100 rows in 2.8 s


def test_the_progress_sink_passes_every_event_on_and_counts_the_chosen_type() -> None:
    inner = MemorySink()
    bar = ProgressBar("journal", None, stream=Tty(), env={"NO_COLOR": "1"})
    sink = ProgressSink(inner, bar, (events.JournalEntryObserved,), lambda e: f"rows, at serial {e.serial:,}")
    row = events.JournalEntryObserved("id", "pypi-journal", "PyPI", "demo", 1, 2, "create", None, 12345, 2, "Demo")
    other = events.WatchRequest("w", "inventory", "PyPI", "demo", 1, None, "inventory")
    for event in (row, other, row):
        sink.emit(event)
    sink.flush()
    assert inner.events == [row, other, row] and bar.done == 2 and bar.unit == "rows, at serial 12,345"
    sink.close()
