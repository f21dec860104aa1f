"""``POST /pypi`` XML-RPC: the three mirroring methods PyPI still supports (B7), plus its rate limit.

Why a limiter: Warehouse rate-limits XML-RPC per IP and answers with fault ``-32500``
"... Limit may reset in N seconds." (possibly with HTTP 200), which a changelog tailer must parse and
honour.  ``None`` travels as ``<nil/>`` because Warehouse's renderer uses ``allow_none=True``.
"""

from __future__ import annotations

import math
import threading
import xmlrpc.client
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from .faults import RATE_LIMIT_FAULT_CODE, rate_limit_message
from .synthetic import JournalRow

CHANGELOG_PAGE_SIZE: Final = 50_000
_REMOVED: Final = frozenset(
    {
        "browse",
        "changed_packages",
        "changelog",
        "list_packages",
        "package_data",
        "package_releases",
        "package_roles",
        "package_urls",
        "release_data",
        "release_urls",
        "search",
        "top_packages",
        "updated_releases",
        "user_packages",
    }
)


class Backend(Protocol):
    """What the XML-RPC methods read; implemented by ``FakePyPI``'s application object."""

    def changelog_since_serial(self, serial: int, limit: int) -> list[JournalRow]: ...

    def changelog_last_serial(self) -> int: ...

    def list_packages_xml(self) -> bytes: ...


class RateLimiter:
    """A moving window of ``limit`` calls per ``window`` seconds per client address."""

    def __init__(self, limit: int | None, clock: Callable[[], float], window: float = 3600.0) -> None:
        self._limit = limit
        self._clock = clock
        self._window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, client: str) -> int | None:
        """Record a call; return the seconds until a slot frees up if the client is over the limit."""
        if self._limit is None:
            return None
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - self._window:
                hits.popleft()
            if len(hits) >= self._limit:
                return max(1, math.ceil(hits[0] + self._window - now))
            hits.append(now)
            return None


def fault_body(code: int, message: str) -> bytes:
    """A marshalled ``<fault>`` response."""
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, message), methodresponse=True, allow_none=True).encode()


def _result(value: Any) -> bytes:
    return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True).encode("utf-8")


def handle(body: bytes, backend: Backend, limiter: RateLimiter, client: str, page_size: int) -> bytes:
    """Decode one call, apply the rate limit, dispatch, and marshal the result or fault."""
    try:
        params, method = xmlrpc.client.loads(body, use_builtin_types=True)
    except Exception:  # noqa: BLE001 - any malformed body is a parse error for the client
        return fault_body(-32700, "parse error; not well formed")
    wait = limiter.hit(client)
    if wait is not None:
        return fault_body(RATE_LIMIT_FAULT_CODE, rate_limit_message(wait))
    if method == "changelog_since_serial":
        if len(params) != 1 or not isinstance(params[0], int) or isinstance(params[0], bool):
            return fault_body(-32602, "server error; invalid method params")
        return _result([list(row) for row in backend.changelog_since_serial(params[0], page_size)])
    if method == "changelog_last_serial":
        return _result(backend.changelog_last_serial())
    if method == "list_packages_with_serial":
        return backend.list_packages_xml()
    if method in _REMOVED:
        return fault_body(
            RATE_LIMIT_FAULT_CODE,
            f"RuntimeError: The XML-RPC method {method!r} has been removed; use the JSON or Simple API.",
        )
    return fault_body(-32601, "server error; requested method not found")
