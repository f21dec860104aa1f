"""Helpers for the security tests (no tests here): hostile values, a crafted upstream server, output checks.

The crafted server is a real ``ThreadingHTTPServer`` on 127.0.0.1: the fake PyPI refuses names PyPI would refuse,
but a hostile mirror, a compromised CDN edge or a future Warehouse bug is not so polite, so the security tests
serve exactly the bytes they want, including bodies that never end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

HOSTILE_NAMES: tuple[str, ...] = (
    "../../../../tmp/qwatch-pwned",
    "..",
    "nul\x00byte",
    "evil\n2026-01-01 00:00:00,000 INFO qwatch: forged log line",
    "\x1b[2J\x1b[31mscreen-wipe",
    "\u202etxt.exe",
    "csi\x9b31mc1",
    "para\u2029sep",
    "long-" + "x" * 10_240,
)
"""Package names no real index would serve, but that a parser will happily hand over."""

XML_SAFE_NAMES = tuple(n for n in HOSTILE_NAMES if "\x00" not in n and "\x1b" not in n)
"""XML 1.0 cannot carry NUL or ESC at all, so the XML-RPC journal can only deliver the others."""

_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def unsafe_chars(text: str) -> list[str]:
    """Characters that can repaint a terminal or forge/split a log line (tab and newline are allowed)."""
    return sorted({repr(m.group()) for m in _UNSAFE.finditer(text)})


@dataclass(frozen=True)
class Reply:
    """One canned response. ``endless`` repeats ``body`` until the client hangs up (no Content-Length)."""

    status: int = 200
    content_type: str = "application/json"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    endless: bool = False


Route = Callable[[str, bytes], Reply | None]
"""(raw request path, request body) → the reply, or None for "not mine"."""


@dataclass
class CraftedServer:
    """Routes tried in order; records every raw request path and how many body bytes each reply sent."""

    routes: list[Route] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    url: str = ""
    max_endless: int = 256 * 1024 * 1024
    """An endless body stops here even if the client keeps reading, so a failing test cannot hang."""

    def settled(self, timeout: float = 10.0) -> list[int]:
        """``sent`` once every request's reply finished (a handler notices the client hung up only later)."""
        deadline = time.monotonic() + timeout
        while len(self.sent) < len(self.requests) and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.sent)

    def reply(self, path: str, body: bytes) -> Reply:
        for route in self.routes:
            answer = route(path, body)
            if answer is not None:
                return answer
        return Reply(404, "text/plain", b"404 Not Found")


@contextmanager
def crafted_server() -> Iterator[CraftedServer]:
    """Serve a CraftedServer on an ephemeral port for the duration of the block."""
    state = CraftedServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request_body = self.rfile.read(length) if length else b""
            with lock:
                state.requests.append((method, self.path))
            reply = state.reply(self.path, request_body)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers:
                self.send_header(name, value)
            if not reply.endless:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            sent = 0
            try:
                if reply.endless:
                    while sent < state.max_endless:
                        self.wfile.write(reply.body)
                        sent += len(reply.body)
                else:
                    self.wfile.write(reply.body)
                    sent = len(reply.body)
            except OSError:  # the client hung up: exactly what a size cap should make it do
                pass
            with lock:
                state.sent.append(sent)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def run_cli(args: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m app ARGS`` in a child process, with a clean QWATCH_* environment plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("QWATCH_") or k == "QWATCH_CACHE_DIR"}
    base = {k: v for k, v in base.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        timeout=120,
        check=False,
    )
