"""Supervised child processes for ``qwatch up``: start, restart with backoff after a crash, stop cleanly.

Each component runs as its own OS process, exactly as it would in its own pod, so a crash in one never takes the
others down and a SIGTERM reaches each one's own clean-shutdown path (finish the batch, flush, commit).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qwatch.retry import backoff_delay

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildSpec:
    """One component: its name (for logs and metrics), its argv, and extra environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    metrics_port: int = 0


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0


class Supervisor:
    """Keeps every child running; a child that exits is restarted after an exponential backoff (max 30 s).

    ``base_backoff`` (first delay, doubling per quick crash) and ``max_backoff`` exist for fault-injection runs,
    which kill components on purpose and want them back at once; production keeps the defaults.
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        log_dir: Path,
        base_env: Mapping[str, str] | None = None,
        *,
        base_backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        if not 0 <= base_backoff <= max_backoff:
            raise ValueError("expected 0 <= base_backoff <= max_backoff")
        self._children = [_Child(s) for s in specs]
        self._log_dir = log_dir
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def restarts(self) -> dict[str, int]:
        """Restart counts per component, for the summary and tests."""
        return {c.spec.name: c.restarts for c in self._children}

    def pids(self) -> dict[str, int]:
        """Current pid per running component."""
        return {c.spec.name: c.process.pid for c in self._children if c.process is not None}

    def log_path(self, name: str) -> Path:
        """Where a component's stderr goes."""
        return self._log_dir / f"{name}.log"

    def _start(self, child: _Child) -> None:
        env = {**self._base_env, **child.spec.env}
        if child.spec.metrics_port:
            env["QWATCH_METRICS_PORT"] = str(child.spec.metrics_port)
        with open(self.log_path(child.spec.name), "ab") as log:
            # Its own session, without the terminal: Ctrl-C on the terminal reaches ``qwatch up`` only, which then
            # stops every child in order (SIGTERM, batch finished, flushed, committed) instead of each child being
            # interrupted at once and then terminated again mid-shutdown; and nothing a child does (uvicorn's
            # signal handling in `serve`) can touch the terminal's own processes.
            child.process = subprocess.Popen(
                list(child.spec.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        child.started_at = time.monotonic()
        logger.info("started %s (pid %s)", child.spec.name, child.process.pid)

    def start(self) -> None:
        """Start every child."""
        for child in self._children:
            self._start(child)

    def check(self) -> list[str]:
        """Restart children that exited; return the names restarted (or scheduled) in this call."""
        now = time.monotonic()
        touched = []
        for child in self._children:
            if child.process is not None and child.process.poll() is not None:
                code = child.process.returncode
                lived = now - child.started_at
                # A child that ran for a while before dying starts its backoff afresh.
                if lived > 60:
                    child.restarts = 0
                delay = backoff_delay(child.restarts + 1, self._base_backoff, self._max_backoff, max_doublings=5)
                logger.warning(
                    "%s exited with code %s after %.0fs; restarting in %.1fs (log: %s)",
                    child.spec.name,
                    code,
                    lived,
                    delay,
                    self.log_path(child.spec.name),
                )
                child.process = None
                child.next_start = now + delay
                child.restarts += 1
                touched.append(child.spec.name)
            elif child.process is None and now >= child.next_start:
                self._start(child)
                touched.append(child.spec.name)
        return touched

    def stop(self, timeout: float = 20.0) -> dict[str, int | None]:
        """SIGTERM everyone (each flushes and commits), wait, then SIGKILL stragglers; return exit codes."""
        for child in self._children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for child in self._children:
            if child.process is None:
                codes[child.spec.name] = None
                continue
            try:
                codes[child.spec.name] = child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0fs; killing it", child.spec.name, timeout)
                child.process.kill()
                codes[child.spec.name] = child.process.wait(5)
        return codes
