"""Fetch one project's Simple page or JSON API document and classify the answer; never raises for bad input.

These run on sweep threads, so they return plain values (``Fetched``) and leave emitting, state and stale
judgement to the caller's thread. Content negotiation follows ``pypi-signals.md`` (c)3: ask for PEP 691 JSON
(``application/json`` is not an offer PyPI honours), accept HTML as a fallback, and dead-letter anything else:
a text/plain "404 Not Found" body parsed as a page would read as an active project with no files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from ingestors.pypi.parse_jsonapi import parse_json_api
from qwatch.http import FetchResult, HttpError, PoliteClient
from qwatch.pypi.errors import PyPIParseError
from qwatch.pypi.model import JsonProject, ProjectPage
from qwatch.pypi.pages import parse_page

SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
JSON_TYPES = frozenset({"application/json"})
SERIAL_HEADER = "X-PyPI-Last-Serial"

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a fetch produced nothing believable: a bounded reason, the message, and the body if any."""

    reason: str
    error: str
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class Fetched(Generic[P]):
    """One classified answer: 200 with a parsed value, 304, 404, or a failure. ``url`` is where the answer
    came from (after same-host redirects), the key for its ETag."""

    name: str
    url: str
    http_status: int | None
    value: P | None = None
    serial: int | None = None
    etag: str | None = None
    failure: Failure | None = None


def project_url(index_url: str, name: str) -> str:
    """``<index>/<normalized>/``: PyPI redirects anything else, and the spec says clients MUST use this."""
    return index_url.rstrip("/") + "/" + quote(name, safe="") + "/"


def json_api_url(index_url: str, name: str) -> str:
    """``/pypi/<name>/json`` on the index URL's host."""
    parts = urlsplit(index_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/pypi/{quote(name, safe='')}/json", "", ""))


Parser = Callable[[str, bytes], tuple[P, int | None] | None]
"""(content type, body) → (value, serial in the body), or None when the content type is not one we read."""


def _classify(name: str, url: str, fetch: Callable[[], FetchResult], parse: Parser[P]) -> Fetched[P]:
    try:
        result = fetch()
    except HttpError as exc:
        return Fetched(name, url, exc.status, failure=Failure(exc.reason, str(exc)))
    if result.final_url and urlsplit(result.final_url).netloc == urlsplit(url).netloc:
        url = result.final_url  # e.g. /pypi/django/json → /pypi/Django/json: ask there next time
    if result.status == 304:
        return Fetched(name, url, 304, serial=result.header_int(SERIAL_HEADER), etag=result.etag)
    if result.status == 404:
        return Fetched(name, url, 404)
    if result.status != 200:
        failure = Failure("http-status", f"GET {url}: HTTP {result.status}", result.body)
        return Fetched(name, url, result.status, failure=failure)
    try:
        parsed = parse(result.content_type, result.body)
    except PyPIParseError as exc:
        return Fetched(name, url, 200, failure=Failure(exc.reason, f"{url}: {exc}", result.body))
    if parsed is None:
        failure = Failure("content-type", f"{url}: unexpected Content-Type {result.content_type!r}", result.body)
        return Fetched(name, url, 200, failure=failure)
    header = result.header_int(SERIAL_HEADER)
    value, body_serial = parsed
    return Fetched(name, url, 200, value, header if header is not None else body_serial, result.etag)


def _parse_json_api(content_type: str, body: bytes) -> tuple[JsonProject, int | None] | None:
    if content_type not in JSON_TYPES:
        return None
    project = parse_json_api(body)
    return project, project.last_serial


def fetch_simple(client: PoliteClient, index_url: str, name: str, etag: str | None) -> Fetched[ProjectPage]:
    """GET ``/simple/<name>/`` (JSON preferred), conditional on ``etag``."""
    url = project_url(index_url, name)

    def parse(content_type: str, body: bytes) -> tuple[ProjectPage, int | None] | None:
        page = parse_page(content_type, body, name)
        return None if page is None else (page, page.last_serial)

    return _classify(name, url, lambda: client.get(url, accept=SIMPLE_ACCEPT, etag=etag), parse)


def fetch_json_api(client: PoliteClient, url: str, name: str, etag: str | None) -> Fetched[JsonProject]:
    """GET ``url`` (``json_api_url`` or the canonical URL a previous answer redirected to), conditional."""
    return _classify(name, url, lambda: client.get(url, accept="application/json", etag=etag), _parse_json_api)
