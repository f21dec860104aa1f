"""Fan-out of new transitions to ``/v1/stream`` clients, with resumption that neither skips nor repeats.

One hub per process reads each new batch of rows from the view once and offers it to every subscriber's bounded
queue (200 clients cost one query, not 200). A subscriber starts in two phases:
1. it registers and takes the hub's mark M (the newest row already broadcast) in one step on the event loop, so
   every row after M reaches its queue;
2. it catches up from the view for rows at or after its cursor up to M, then drains the queue.
Rows are also checked against the client's cursor in phase 2, so a cursor from a replica that is ahead never
repeats an event. A client too slow to keep its queue under the limit is disconnected; it resumes with
``Last-Event-ID`` and, again, misses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from subscribers.serve.view import Reader, Row

logger = logging.getLogger(__name__)

CHUNK = 500


class Subscriber:
    """One stream client's queue of row batches."""

    def __init__(self, limit: int) -> None:
        self.queue: asyncio.Queue[list[Row]] = asyncio.Queue(maxsize=limit)
        self.overflowed = False

    def offer(self, rows: list[Row]) -> None:
        """Queue a batch, or mark the subscriber overflowed (its stream then ends)."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(rows)
        except asyncio.QueueFull:
            # Nothing more is queued; the full queue keeps the stream loop busy until it sees the flag.
            self.overflowed = True


class Hub:
    """Broadcasts rows newer than its mark; runs on the event loop (``run``), woken by ``wake_threadsafe``."""

    def __init__(self, reader: Reader, queue_limit: int, interval: float = 0.25) -> None:
        self._reader = reader
        self._limit = queue_limit
        self._interval = interval
        self.mark = reader.max_seq()
        self.subscribers: set[Subscriber] = set()
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self) -> tuple[Subscriber, int]:
        """Register a subscriber and return it with the mark it must catch up to (one step: no await between)."""
        sub = Subscriber(self._limit)
        self.subscribers.add(sub)
        return sub, self.mark

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a subscriber."""
        self.subscribers.discard(sub)

    def wake_threadsafe(self) -> None:
        """Called by the feeder thread after it applied new transitions."""
        loop, event = self._loop, self._event
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    async def run(self, stopping: Callable[[], bool] = lambda: False) -> None:
        """Broadcast until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        while not stopping():
            try:
                await asyncio.wait_for(self._event.wait(), self._interval)
            except TimeoutError:
                pass
            self._event.clear()
            self.broadcast()

    def broadcast(self) -> int:
        """Offer every row after the mark to every subscriber; returns how many rows went out."""
        sent = 0
        while True:
            rows = self._reader.rows_after(self.mark, CHUNK)
            if not rows:
                return sent
            self.mark = rows[-1].seq
            sent += len(rows)
            for sub in list(self.subscribers):
                sub.offer(rows)
