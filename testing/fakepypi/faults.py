"""Injectable failures, so a poller's retry/backoff/stale-page logic can be tested deterministically.

Each kind is something pypi.org or its Fastly edge really does (``docs/pypi-signals.md`` section c):
429 with ``Retry-After``, 5xx, a slow origin, a connection cut mid-body, a wrong ``Content-Type``
(pypi/warehouse#12088), a CDN serving an older copy of a page (stale ``X-PyPI-Last-Serial``,
pypi/warehouse#12933), and the XML-RPC rate-limit fault ``-32500``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final, Literal, get_args

from .render import TEXT_PLAIN, Response

FaultKind = Literal["429", "500", "503", "slow", "truncate", "content-type", "stale", "xmlrpc-fault"]
FAULT_KINDS: Final = frozenset(get_args(FaultKind))
RATE_LIMIT_FAULT_CODE: Final = -32500
_REASONS: Final = {"429": "Too Many Requests", "500": "Internal Server Error", "503": "Service Unavailable"}


def rate_limit_message(seconds: int) -> str:
    """Warehouse's ``HTTPTooManyRequests`` fault string (clients parse the number out of it)."""
    return (
        "HTTPTooManyRequests: The action could not be performed because there were too many requests "
        f"by the client. Limit may reset in {seconds} seconds."
    )


@dataclass(frozen=True, slots=True)
class Fault:
    """The next ``count`` requests whose path starts with ``path_prefix`` get this failure.

    ``retry_after`` feeds the ``Retry-After`` header (429/503) and the XML-RPC fault text; fractional
    values are sent as-is (not valid HTTP, but it keeps tests fast).  ``delay`` is the ``slow`` pause.
    ``content_type`` replaces the real one for the ``content-type`` kind.  ``message``/``code`` override
    the XML-RPC fault.  ``stale`` serves the page as it was before its last change.
    """

    kind: FaultKind
    path_prefix: str = "/"
    count: int = 1
    retry_after: float | None = None
    delay: float = 1.0
    content_type: str = TEXT_PLAIN
    message: str | None = None
    code: int = RATE_LIMIT_FAULT_CODE

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.count < 1:
            raise ValueError("count must be >= 1")

    def applies_to(self, path: str, *, xmlrpc: bool) -> bool:
        """``xmlrpc-fault`` only hits XML-RPC calls; every other kind hits any matching path."""
        if self.kind == "xmlrpc-fault" and not xmlrpc:
            return False
        return path.startswith(self.path_prefix)

    def error_response(self) -> Response:
        """The canned response for the status-code kinds."""
        headers: list[tuple[str, str]] = [("Content-Type", TEXT_PLAIN)]
        if self.retry_after is not None and self.kind in ("429", "503"):
            headers.append(("Retry-After", format_seconds(self.retry_after)))
        body = f"{self.kind} {_REASONS[self.kind]}".encode()
        return Response(int(self.kind), tuple(headers), body)

    def xmlrpc_fault_string(self) -> str:
        """Fault text; defaults to the rate-limit message with ``retry_after`` (or 1) seconds."""
        if self.message is not None:
            return self.message
        return rate_limit_message(math.ceil(self.retry_after if self.retry_after is not None else 1))


def format_seconds(seconds: float) -> str:
    """Integral values as ``"2"``, others as their shortest decimal (``"0.25"``)."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


@dataclass(slots=True)
class _Armed:
    fault: Fault
    remaining: int


class FaultQueue:
    """Thread-safe FIFO of armed faults; the first matching one is consumed per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []

    def inject(self, fault: Fault) -> None:
        """Arm ``fault`` for its next ``count`` matching requests."""
        with self._lock:
            self._armed.append(_Armed(fault, fault.count))

    def take(self, path: str, *, xmlrpc: bool) -> Fault | None:
        """Consume one use of the first fault matching this request, if any."""
        with self._lock:
            for slot in self._armed:
                if slot.fault.applies_to(path, xmlrpc=xmlrpc):
                    slot.remaining -= 1
                    if slot.remaining <= 0:
                        self._armed.remove(slot)
                    return slot.fault
        return None

    def clear(self) -> None:
        """Disarm everything."""
        with self._lock:
            self._armed.clear()

    def pending(self) -> list[tuple[Fault, int]]:
        """Armed faults with their remaining uses (for assertions)."""
        with self._lock:
            return [(slot.fault, slot.remaining) for slot in self._armed]
