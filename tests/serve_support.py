"""Running a real ``qwatch serve`` process for the serve tests: start, read its URL, wait until ready, stop."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Served:
    """A running server: its base URL and its stderr lines."""

    url: str
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.url.rstrip("/") + path, timeout=10, **kwargs)  # type: ignore[arg-type]


@contextmanager
def serve(*args: str, env: dict[str, str] | None = None, ready_transitions: int = 0) -> Iterator[Served]:
    """``qwatch serve --port 0 ARGS``; yields once /healthz?ready answers 200 with the view holding
    ``ready_transitions`` transitions or more; SIGTERM on exit (and the exit code must be 0)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []
    threading.Thread(target=lambda: [lines.put(x) for x in iter(proc.stdout.readline, "")], daemon=True).start()  # type: ignore[union-attr]
    threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    try:
        try:
            first = lines.get(timeout=60)
        except queue.Empty:
            raise AssertionError(f"qwatch serve printed no URL; stderr:\n{''.join(log)[-3000:]}") from None
        assert first.startswith("qwatch serve: http://"), first + "".join(log)
        served = Served(first.split()[2], proc, log)
        deadline = time.monotonic() + 60
        while True:
            try:
                r = served.get("/healthz?ready=1")
                if r.status_code == 200 and r.json()["view"]["transitions"] >= ready_transitions:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"qwatch serve not ready; stderr:\n{''.join(log)[-3000:]}")
            time.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise AssertionError("qwatch serve did not stop on SIGTERM") from None
    assert proc.returncode == 0, f"qwatch serve exited {proc.returncode}; stderr:\n{''.join(log)[-3000:]}"
