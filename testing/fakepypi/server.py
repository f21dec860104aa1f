"""The socket layer: a ``ThreadingHTTPServer`` that applies faults, conditional GETs, and records requests.

Why threads and HTTP/1.1: real clients (httpx pools) keep connections alive and poll concurrently; a
single-threaded or HTTP/1.0 fake would hide connection-reuse bugs.  Open connections are tracked so
``stop()`` really cuts them, as a dying origin would.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from .app import XMLRPC_PATHS, Application, Request
from .faults import Fault, FaultQueue
from .render import TEXT_PLAIN, Response, conditional
from .rpc import fault_body

Recorder = Callable[[str, str, int], None]


class FakeHTTPServer(ThreadingHTTPServer):
    """Carries the application, the fault queue and the request recorder to each handler."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: Application, faults: FaultQueue, record: Recorder) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.faults = faults
        self.record = record
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Remember the connection so ``close_connections`` can cut it."""
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection once the handler is done with it."""
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeouts, truncation tests) is normal here; anything else is printed."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Abort every kept-alive connection."""
        with self._open_lock:
            sockets = list(self._open)
            self._open.clear()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes; Nagle would add ~40 ms stalls
    server: FakeHTTPServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        """Silence per-request logging; ``FakePyPI.requests`` is the log."""

    def _serve(self) -> None:
        method = self.command
        path = unquote(urlsplit(self.path).path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        is_rpc = method == "POST" and path in XMLRPC_PATHS
        fault = self.server.faults.take(path, xmlrpc=is_rpc)
        try:
            response, truncate = self._respond(method, path, body, is_rpc, fault)
        except Exception:  # noqa: BLE001 - a bug must surface as a 500, not a hung client
            traceback.print_exc(file=sys.stderr)
            response, truncate = (
                Response(500, (("Content-Type", TEXT_PLAIN),), b"500 Internal Server Error"),
                False,
            )
        self.server.record(method, path, response.status)
        self._write(response, head=method == "HEAD", truncate=truncate)

    def _respond(self, method: str, path: str, body: bytes, is_rpc: bool, fault: Fault | None) -> tuple[Response, bool]:
        kind = fault.kind if fault is not None else None
        if fault is not None and kind in ("429", "500", "503"):
            return fault.error_response(), False
        if fault is not None and kind == "xmlrpc-fault":
            return Response(
                200, (("Content-Type", "text/xml"),), fault_body(fault.code, fault.xmlrpc_fault_string())
            ), False
        if fault is not None and kind == "slow":
            time.sleep(fault.delay)
        request = Request(method, path, self.headers.get("Accept"), body, self.client_address[0])
        response = self.server.app.handle(request, stale=kind == "stale")
        if method in ("GET", "HEAD"):
            response = conditional(response, self.headers.get("If-None-Match"))
        if fault is not None and kind == "content-type":
            response = response.with_header("Content-Type", fault.content_type)
        return response, kind == "truncate"

    def _write(self, response: Response, *, head: bool, truncate: bool) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.status != 304:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if head or response.status == 304:
            return
        if truncate:
            self.wfile.write(response.body[: len(response.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(response.body)
