"""Routing from a parsed request to a ``Response``: the HTTP-free core of the fake server.

Why separate from ``server.py``: routing, negotiation and caching can be reasoned about (and unit-tested)
without sockets, and the socket layer stays a thin adapter that only adds faults and writes bytes.
Routes mirror Warehouse's: ``/simple/``, ``/simple/<name>/``, ``/pypi/<name>/json``,
``/pypi/<name>/<version>/json``, ``/integrity/<name>/<version>/<filename>/provenance`` and ``POST /pypi`` (XML-RPC).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from . import rpc
from .files import FileStore
from .index import list_packages_xml, root_response
from .integrity import ProvenanceStore, provenance_response
from .jsonapi import json_project, json_release
from .model import ProjectState
from .registry import Registry
from .render import TEXT_PLAIN, Digests, Response, digests, moved, not_found_text, select_content_type
from .simple import simple_detail, visible_files
from .synthetic import JournalRow

XMLRPC_PATHS: Final = frozenset({"/pypi", "/pypi/", "/RPC2"})
_ROOT_CACHE_SIZE: Final = 4  # current + previous version, in both representations


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of an HTTP request the fake looks at."""

    method: str
    path: str
    accept: str | None = None
    body: bytes = b""
    client: str = "127.0.0.1"


class Application:
    """Answers requests from a ``Registry`` guarded by the caller's lock."""

    def __init__(
        self,
        registry: Registry,
        lock: threading.RLock,
        clock: Callable[[], float],
        xmlrpc_rate_limit: int | None,
        changelog_page_size: int,
        files: FileStore | None = None,
    ) -> None:
        self._registry = registry
        self.files = files
        self.provenance = ProvenanceStore()
        self._base_facts: Callable[[str], Digests] = files.digests if files is not None else digests
        self._facts: Callable[[str], Digests] = self.announced
        self._lock = lock
        self._render_lock = threading.Lock()
        self._root_cache: OrderedDict[tuple[int, str], Response] = OrderedDict()
        self._xml_cache: tuple[int, bytes] | None = None
        self._limiter = rpc.RateLimiter(xmlrpc_rate_limit, clock)
        self._page_size = changelog_page_size

    # ------------------------------------------------------------------ HTTP
    def handle(self, request: Request, *, stale: bool = False) -> Response:
        """Route one request; ``stale`` answers from the state before the page's last change."""
        if request.method == "POST":
            if request.path in XMLRPC_PATHS:
                body = rpc.handle(request.body, self, self._limiter, request.client, self._page_size)
                return Response(200, (("Content-Type", "text/xml"),), body)
            return Response(405, (("Content-Type", TEXT_PLAIN), ("Allow", "GET, HEAD")), b"405 Method Not Allowed")
        if request.method not in ("GET", "HEAD"):
            return Response(
                405, (("Content-Type", TEXT_PLAIN), ("Allow", "GET, HEAD, POST")), b"405 Method Not Allowed"
            )
        path = request.path
        if path == "/simple":
            return moved("/simple/")
        if path == "/simple/":
            return self.root(select_content_type(request.accept), stale=stale)
        if path.startswith("/simple/"):
            return self._simple(path.removeprefix("/simple/"), request.accept, stale)
        if path.startswith("/pypi/"):
            return self._json(path.removeprefix("/pypi/").split("/"), stale)
        if path.startswith("/integrity/"):
            return self._integrity(path.removeprefix("/integrity/").split("/"), request.accept, stale)
        if path.startswith("/packages/") and self.files is not None:
            content = self.files.read(path)
            if content is not None:
                return Response(200, (("Content-Type", "application/octet-stream"),), content)
        return not_found_text()

    def announced(self, filename: str) -> Digests:
        """The digests a page announces: a real file's sha256 where one was given (``use_real_file``)."""
        facts = self._base_facts(filename)
        sha = self.provenance.sha256(filename)
        return facts if sha is None else dataclasses.replace(facts, sha256=sha)

    def _integrity(self, parts: list[str], accept: str | None, stale: bool) -> Response:
        if len(parts) != 4 or parts[3] != "provenance":
            return not_found_text()
        name, version, filename = (unquote(p) for p in parts[:3])
        project = self._project(name, stale)
        known = project is not None and any(
            r.version == version and f.filename == filename for r, f in visible_files(project)
        )
        return provenance_response(self.provenance, filename, known, accept)

    def _project(self, name: str, stale: bool) -> ProjectState | None:
        with self._lock:
            return self._registry.previous(name) if stale else self._registry.get(name)

    def _simple(self, rest: str, accept: str | None, stale: bool) -> Response:
        if "/" not in rest:
            return moved(f"/simple/{rest}/")  # Pyramid's append_slash
        name, tail = rest.split("/", 1)
        if not name or tail:
            return not_found_text()
        project = self._project(name, stale)
        if project is None:
            return not_found_text()
        if name != project.normalized:
            return moved(f"/simple/{project.normalized}/")
        return simple_detail(project, select_content_type(accept), self._facts, self.provenance.url)

    def _json(self, parts: list[str], stale: bool) -> Response:
        if len(parts) == 2 and parts[1] == "json" and parts[0]:
            return json_project(self._project(parts[0], stale), parts[0], self._facts)
        if len(parts) == 3 and parts[2] == "json" and parts[0] and parts[1]:
            return json_release(self._project(parts[0], stale), parts[0], parts[1], self._facts)
        return not_found_text()

    def root(self, content_type: str, *, stale: bool = False) -> Response:
        """``/simple/``, rendered once per root version and representation, then served from cache."""
        with self._render_lock:
            with self._lock:
                registry = self._registry
                version = registry.previous_root_version if stale else registry.root_version
                cached = self._root_cache.get((version, content_type))
                snapshot = None if cached is not None else registry.root_snapshot(previous=stale)
            if cached is not None:
                self._root_cache.move_to_end((version, content_type))
                return cached
            assert snapshot is not None  # noqa: S101 - set whenever the cache missed
            response = root_response(snapshot, content_type)
            self._root_cache[(version, content_type)] = response
            while len(self._root_cache) > _ROOT_CACHE_SIZE:
                self._root_cache.popitem(last=False)
            return response

    # ------------------------------------------------------------------ XML-RPC backend
    def changelog_since_serial(self, serial: int, limit: int) -> list[JournalRow]:
        """Journal rows after ``serial``, at most ``limit``."""
        with self._lock:
            return self._registry.journal.since(serial, limit)

    def changelog_last_serial(self) -> int:
        """Global last serial."""
        with self._lock:
            return self._registry.last_serial

    def list_packages_xml(self) -> bytes:
        """Every existing project (quarantined included) with its serial, marshalled and cached."""
        with self._render_lock:
            with self._lock:
                version = self._registry.root_version
                if self._xml_cache is not None and self._xml_cache[0] == version:
                    return self._xml_cache[1]
                snapshot = self._registry.root_snapshot()
            body = list_packages_xml(snapshot)
            self._xml_cache = (version, body)
            return body
