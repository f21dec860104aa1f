"""``FakePyPI``: the public facade tests, benchmarks and ``qwatch up --demo`` code against.

It owns one lock around the ``Registry`` so that timeline threads, test code and HTTP handler threads can
mutate and read concurrently, and it wires the registry to the HTTP server, the fault queue and the
request log.  All PyPI semantics live in the modules it delegates to.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .app import Application, Request
from .faults import Fault, FaultQueue
from .files import FileStore
from .integrity import github_publisher, synthetic_provenance
from .journal import Journal
from .model import ProjectState
from .registry import Registry
from .render import Response
from .rpc import CHANGELOG_PAGE_SIZE
from .server import FakeHTTPServer
from .synthetic import SyntheticSegment
from .timeline import start_timeline

REQUEST_LOG_LIMIT = 10_000
"""Requests the log keeps (the most recent ones): ``qwatch up --demo --churn`` serves ~2,000 a minute for hours, and
each entry costs ~140 bytes, so an unbounded log grew the ``up`` process by ~0.25 MiB a minute."""


class FakePyPI:
    """A local PyPI (Simple, JSON and XML-RPC APIs) whose state tests drive through method calls."""

    def __init__(
        self,
        start_serial: int = 1000,
        clock: Callable[[], float] | None = None,
        *,
        xmlrpc_rate_limit: int | None = None,
        changelog_page_size: int = CHANGELOG_PAGE_SIZE,
        host: str = "127.0.0.1",
        request_log_limit: int = REQUEST_LOG_LIMIT,
        serve_files: bool = False,
    ) -> None:
        """``clock`` returns unix seconds (journal timestamps, upload times, rate-limit window).

        ``xmlrpc_rate_limit`` is calls per hour per client (``None``: unlimited); ``changelog_page_size``
        caps ``changelog_since_serial`` (Warehouse: 50 000); ``request_log_limit`` is how many of the most recent
        requests ``requests`` keeps; ``serve_files`` serves real, hash-consistent distribution files at
        ``/packages/...`` (for mirroring tools and pip; see ``files.py``).
        """
        if changelog_page_size < 1:
            raise ValueError("changelog_page_size must be >= 1")
        if request_log_limit < 1:
            raise ValueError("request_log_limit must be >= 1")
        self._clock: Callable[[], float] = clock or time.time
        self._lock = threading.RLock()
        self._registry = Registry(start_serial, self._clock)
        self._files = FileStore() if serve_files else None
        self._app = Application(
            self._registry, self._lock, self._clock, xmlrpc_rate_limit, changelog_page_size, self._files
        )
        self._faults = FaultQueue()
        self._requests: deque[tuple[str, str, int]] = deque(maxlen=request_log_limit)
        self._requests_lock = threading.Lock()
        self._host = host
        self._server: FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timeline_stop = threading.Event()
        self.timeline_errors: list[BaseException] = []

    # ------------------------------------------------------------------ state: reading
    @property
    def last_serial(self) -> int:
        """Global serial (``max(journals.id)``)."""
        with self._lock:
            return self._registry.last_serial

    @property
    def journal(self) -> Journal:
        """Every journal row ``(name, version, ts, action, serial)`` in serial order (a live view)."""
        return self._registry.journal

    def project(self, name: str) -> ProjectState | None:
        """The current state of a project (any spelling), or ``None`` if it does not exist."""
        with self._lock:
            return self._registry.get(name)

    # ------------------------------------------------------------------ state: uploads
    def add_project(
        self,
        name: str,
        releases: Mapping[str, Sequence[str]] | None = None,
        upload_time: float | None = None,
        *,
        requires_python: str | None = None,
    ) -> ProjectState:
        """Create a project (journals ``create``, ``new release``, ``add <pyver> file <f>``); re-registers."""
        with self._lock:
            return self._registry.add_project(name, releases, upload_time, requires_python)

    def add_release(
        self,
        name: str,
        version: str,
        files: Sequence[str] = (),
        *,
        upload_time: float | None = None,
        requires_python: str | None = None,
    ) -> None:
        """Upload a release (journals ``new release`` and one row per file)."""
        with self._lock:
            self._registry.add_release(name, version, files, upload_time, requires_python)

    def add_file(self, name: str, version: str, filename: str, *, upload_time: float | None = None) -> None:
        """Upload one file to an existing release."""
        with self._lock:
            self._registry.add_file(name, version, filename, upload_time)

    def remove_file(self, name: str, version: str, filename: str) -> None:
        """Journal ``remove file <filename>``."""
        with self._lock:
            self._registry.remove_file(name, version, filename)

    # ------------------------------------------------------------------ state: provenance (PEP 740)
    def attest(
        self,
        filename: str,
        publisher: Mapping[str, object] | None = None,
        *,
        body: bytes | None = None,
        subject_sha256: str | None = None,
    ) -> None:
        """Serve provenance for ``filename``: ``body`` as given (a real object), or a synthetic one by
        ``publisher`` (default: GitHub ``example/<project>`` ``release.yml``) whose subject is the announced file,
        or, with ``subject_sha256``, another digest (a provenance that does not match the file)."""
        if body is None:
            project = filename.split("-", 1)[0]
            claims = dict(publisher) if publisher is not None else github_publisher(f"example/{project}")
            sha = subject_sha256 or self._app.announced(filename).sha256
            body = synthetic_provenance(filename, sha, claims)
        self._app.provenance.set_body(filename, body)

    def use_real_file(self, filename: str, content: bytes) -> None:
        """Announce the sha256 of a real distribution's bytes for ``filename`` (for real provenance objects)."""
        self._app.provenance.set_sha256(filename, hashlib.sha256(content).hexdigest())

    # ------------------------------------------------------------------ state: lifecycle
    def quarantine(self, name: str) -> None:
        """Journal ``project quarantined``; hidden from ``/simple/`` and the JSON API."""
        with self._lock:
            self._registry.quarantine(name)

    def clear_quarantine(self, name: str) -> None:
        """Journal ``project quarantine cleared``; the project is active (not archived) again."""
        with self._lock:
            self._registry.clear_quarantine(name)

    def archive(self, name: str) -> None:
        """Archive without a journal row or serial bump (only from no status / quarantine-exit)."""
        with self._lock:
            self._registry.archive(name)

    def unarchive(self, name: str) -> None:
        """Unarchive without a journal row or serial bump."""
        with self._lock:
            self._registry.unarchive(name)

    def remove_project(self, name: str) -> None:
        """Journal ``remove project`` and delete the project (its pages 404)."""
        with self._lock:
            self._registry.remove_project(name)

    def remove_release(self, name: str, version: str) -> None:
        """Journal ``remove release``."""
        with self._lock:
            self._registry.remove_release(name, version)

    def yank(self, name: str, version: str, reason: str | None = None) -> None:
        """Journal ``yank release``."""
        with self._lock:
            self._registry.yank(name, version, reason)

    def unyank(self, name: str, version: str) -> None:
        """Journal ``unyank release``."""
        with self._lock:
            self._registry.unyank(name, version)

    def quarantine_release(self, name: str, version: str) -> None:
        """Journal ``release quarantined``; the release disappears, the project stays active."""
        with self._lock:
            self._registry.quarantine_release(name, version)

    def clear_release_quarantine(self, name: str, version: str) -> None:
        """Journal ``release quarantine cleared``."""
        with self._lock:
            self._registry.clear_release_quarantine(name, version)

    def generate(self, n: int, prefix: str = "pkg") -> SyntheticSegment:
        """Add ``n`` lazy projects named ``<prefix>-<i zero-padded>``; returns the sequence of names."""
        with self._lock:
            return self._registry.generate(n, prefix)

    # ------------------------------------------------------------------ faults and request log
    def inject(self, fault: Fault) -> None:
        """Arm a fault for the next ``fault.count`` matching requests."""
        self._faults.inject(fault)

    def clear_faults(self) -> None:
        """Disarm every pending fault."""
        self._faults.clear()

    @property
    def pending_faults(self) -> list[tuple[Fault, int]]:
        """Armed faults and their remaining uses."""
        return self._faults.pending()

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """A copy of ``(method, path, status)`` per request served: the most recent ``request_log_limit``."""
        with self._requests_lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        """Forget the request log."""
        with self._requests_lock:
            self._requests.clear()

    def _record(self, method: str, path: str, status: int) -> None:
        with self._requests_lock:
            self._requests.append((method, path, status))

    def render(self, path: str, accept: str | None = None) -> Response:
        """Answer a GET in-process (no socket, no faults, not recorded): handy for unit tests."""
        return self._app.handle(Request("GET", path, accept))

    # ------------------------------------------------------------------ serving
    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError("server is not running; call start() or use serve()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, port: int = 0) -> str:
        """Start serving in a daemon thread and return the base URL (index: ``+ "/simple/"``)."""
        if self._server is not None:
            return self.base_url
        self._timeline_stop.clear()
        self._server = FakeHTTPServer((self._host, port), self._app, self._faults, self._record)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the accept loop
            name="fakepypi-http",
            daemon=True,
        )
        self._thread.start()
        if self._files is not None:
            self._files.base_url = self.base_url
        self._app.provenance.base_url = self.base_url
        return self.base_url

    def stop(self) -> None:
        """Stop timelines, stop serving and cut open connections."""
        self._timeline_stop.set()
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @contextmanager
    def serve(self, port: int = 0) -> Iterator[str]:
        """``with pypi.serve() as base_url:`` start, yield the base URL, always stop."""
        url = self.start(port)
        try:
            yield url
        finally:
            self.stop()

    def run_timeline(self, steps: Sequence[tuple[Any, ...]], speed: float = 1.0) -> threading.Thread:
        """Run ``(seconds, method_name, *args)`` steps in a daemon thread; ``speed=2`` runs twice as fast.

        Failing steps are appended to ``timeline_errors`` and the timeline carries on.
        """
        return start_timeline(self, steps, speed, self._timeline_stop, self.timeline_errors)
