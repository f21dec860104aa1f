"""The watch set: which PyPI projects we look at page by page, and the bounded-concurrency sweep over it.

Why a set at all: the root index tells us little (a quarantine hides the project, an archive changes nothing),
so the authoritative per-project pages must be fetched, and 800k of them cannot be. We watch the union of a
configured list (``--watch``), packages named in OpenSSF reports and packages anyone asks about through
``WatchRequest`` (processor, inventories, CLI). Urgent requests are fetched before the next sweep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeVar

from qwatch.metrics import Metrics
from qwatch.pypi.names import normalize

T = TypeVar("T")
_MAX_REASONS = 8


def read_watch_file(path: Path) -> list[str]:
    """Names from a file, one per line; ``#`` starts a comment; blank lines are skipped."""
    names: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


class WatchSet:
    """Normalized names with why each is watched; thread-safe; new and urgent names are queued for a look."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._lock = threading.Lock()
        self._reasons: dict[str, list[str]] = {}
        self._new: dict[str, None] = {}
        self._urgent: dict[str, None] = {}
        self._metrics = metrics

    def add(self, name: str, reason: str, *, urgent: bool = False) -> bool:
        """Watch ``name`` (any spelling); True if it was not watched before. Urgent names jump the queue."""
        key = normalize(name.strip())
        if not key:
            return False
        with self._lock:
            reasons = self._reasons.get(key)
            added = reasons is None
            if reasons is None:
                reasons = self._reasons[key] = []
                self._new[key] = None
            if reason not in reasons and len(reasons) < _MAX_REASONS:
                reasons.append(reason)
            if urgent:
                self._urgent[key] = None
            size = len(self._reasons)
        if self._metrics is not None:
            self._metrics.watchset_size.set(size)
        return added

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize(name) in self._reasons

    def __len__(self) -> int:
        return len(self._reasons)

    def names(self) -> list[str]:
        """Every watched name, sorted (a stable sweep order makes runs comparable)."""
        with self._lock:
            return sorted(self._reasons)

    def reasons(self, name: str) -> tuple[str, ...]:
        """Why ``name`` is watched (at most a few reasons are kept)."""
        with self._lock:
            return tuple(self._reasons.get(normalize(name), ()))

    def take_new(self) -> list[str]:
        """Names added since the last call (a full sweep covers them, so callers may ignore this)."""
        with self._lock:
            out, self._new = list(self._new), {}
        return out

    def take_urgent(self) -> list[str]:
        """Names someone asked to check now, in request order; each is returned once."""
        with self._lock:
            out, self._urgent = list(self._urgent), {}
        return out


def sweep(
    names: Iterable[str],
    work: Callable[[str], T],
    concurrency: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[T]:
    """Run ``work`` over ``names`` on ``concurrency`` threads and yield results as they complete.

    At most ``2 * concurrency`` tasks are queued at a time, so 100k names cost no more memory than 32, and the
    caller consumes results (emits events) on its own thread. ``should_stop`` ends the sweep early; work in
    flight still finishes and is yielded.
    """
    pending: set[Future[T]] = set()
    source = iter(names)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="qwatch-sweep") as pool:
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * concurrency and not should_stop():
                name = next(source, None)
                if name is None:
                    exhausted = True
                    break
                pending.add(pool.submit(work, name))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
            if should_stop():
                exhausted = True
