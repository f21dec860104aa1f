"""Facts straight from a PyPI-compatible index: one PEP 691 page per package, the JSON API only when needed.

The project page alone carries the PEP 792 status, the installable versions, yanks and (PEP 700) upload
times, so a gate run costs one conditional GET per package; the per-release JSON API is asked only when a soak
window applies and the page had no upload time. Every failure that leaves a package unchecked becomes an
:class:`Unverified` with a reason, never an exception and never a pass.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from qwatch.http import HttpError, PoliteClient
from qwatch.logs import safe
from subscribers.gate.facts import REMOVED, Answer, PackageFacts, Unverified, vkey
from subscribers.gate.http_cache import CachedResponse, DiskCache
from subscribers.gate.pypi_pages import (
    SIMPLE_JSON,
    UnusableAnswer,
    parse_release_uploads,
    parse_simple_project,
    with_upload,
)

logger = logging.getLogger(__name__)

GONE = (404, 410)
"""A project page that is not found: removed from PyPI, or never there (either way, not installable)."""


def normalize_index(url: str) -> str:
    """The index URL with exactly one trailing slash, as pip spells it."""
    return url.rstrip("/") + "/"


def json_api_base(index_url: str) -> str:
    """``https://pypi.org/simple/`` → ``https://pypi.org/pypi/``: the JSON API lives beside the index."""
    base = normalize_index(index_url)
    if base.endswith("/simple/"):
        return base[: -len("simple/")] + "pypi/"
    return base + "../pypi/"


class PyPIFacts:
    """Looks packages up on one index with bounded concurrency and an optional ETag disk cache."""

    def __init__(
        self, http: PoliteClient, index_url: str, *, cache: DiskCache | None = None, concurrency: int = 16
    ) -> None:
        self._http = http
        self._index = normalize_index(index_url)
        self._api = json_api_base(index_url)
        self._cache = cache
        self._concurrency = max(1, concurrency)

    @property
    def index_url(self) -> str:
        """The index asked."""
        return self._index

    def lookup(
        self, wanted: Mapping[str, Iterable[str]], soak_for: Iterable[str] = (), deadline: float | None = None
    ) -> dict[str, Answer]:
        """Facts per package: ``wanted`` maps names to locked versions; ``soak_for`` names need upload times.

        ``deadline`` (a ``time.monotonic()`` value) bounds the whole lookup: an index that trickles a byte at a
        time defeats every per-request timeout, so past it each package not answered yet is unverified. The
        workers are daemon threads, so one stuck in a read cannot keep the process (and the CI job) alive."""
        needs_upload = set(soak_for)
        names = sorted(wanted)
        todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        for name in names:
            todo.put(name)
        results: dict[str, Answer] = {}
        lock = threading.Lock()

        def work() -> None:
            while deadline is None or time.monotonic() < deadline:
                try:
                    name = todo.get_nowait()
                except queue.Empty:
                    return
                answer = self._one(name, tuple(wanted[name]), name in needs_upload)
                with lock:
                    results[name] = answer

        workers = [threading.Thread(target=work, daemon=True) for _ in range(min(self._concurrency, len(names)))]
        for w in workers:
            w.start()
        for w in workers:
            w.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with lock:
            done = dict(results)
        for name in names:
            if name not in done:
                done[name] = Unverified(
                    name, "deadline", "not answered before the gate's --timeout: not checked, so it does not pass"
                )
        return done

    def _one(self, name: str, versions: tuple[str, ...], needs_upload: bool) -> Answer:
        url = f"{self._index}{quote(name)}/"
        try:
            result = self._get(url, SIMPLE_JSON)
        except HttpError as exc:
            return Unverified(name, exc.reason, f"{url}: {safe(str(exc), 300)}")
        if result.status in GONE:
            return PackageFacts(name, REMOVED, frozenset(), "pypi")
        if result.status != 200:
            return Unverified(name, "http-status", f"{url}: unexpected HTTP {result.status}")
        if result.content_type != SIMPLE_JSON:
            return Unverified(
                name,
                "unusable",
                f"{url}: answered {result.content_type or 'no content type'}, not "
                f"{SIMPLE_JSON} (PEP 691); use an index that serves the JSON API",
            )
        try:
            facts = parse_simple_project(name, result.body, content_type=result.content_type)
        except UnusableAnswer as exc:
            return Unverified(name, "unusable", f"{url}: {exc}")
        if needs_upload:
            return self._fill_uploads(facts, versions)
        return facts

    def _fill_uploads(self, facts: PackageFacts, versions: tuple[str, ...]) -> Answer:
        for version in versions:
            key = vkey(version)
            if key in facts.first_upload or facts.versions is None or key not in facts.versions:
                continue
            url = f"{self._api}{quote(facts.package)}/{quote(version)}/json"
            try:
                result = self._get(url, "application/json")
                uploaded = parse_release_uploads(result.body) if result.status == 200 else None
            except HttpError as exc:
                return Unverified(facts.package, exc.reason, f"{url}: {safe(str(exc), 300)}")
            except UnusableAnswer as exc:
                return Unverified(facts.package, "unusable", f"{url}: {exc}")
            if uploaded is not None:
                facts = with_upload(facts, version, uploaded)
        return facts

    def _get(self, url: str, accept: str) -> Fetched:
        cached = self._cache.get(url) if self._cache is not None else None
        result = self._http.get(url, accept=accept, etag=cached.etag if cached else None)
        if result.not_modified and cached is not None:
            return Fetched(200, cached.content_type, cached.body)
        if result.status == 200 and self._cache is not None and result.etag:
            self._cache.put(url, CachedResponse(result.etag, result.content_type, result.body))
        return Fetched(result.status, result.content_type, result.body)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A usable answer, fresh or revalidated from the cache."""

    status: int
    content_type: str
    body: bytes
