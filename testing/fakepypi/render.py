"""Pure rendering shared by every endpoint: responses, headers, negotiation, JSON, ETags, fake digests.

Everything here reproduces a rule from ``docs/pypi-signals.md`` (sections b and c): the
``json-with-newline`` renderer, WebOb's ``acceptable_offers`` negotiation (``application/json`` is not an
offer, so it gets HTML), the MD5 ETag of ``conditional_http_tween_factory``, and the CORS headers of
``warehouse/utils/cors.py``.  A client tested against these bytes should not be surprised by pypi.org.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

TEXT_HTML: Final = "text/html"
SIMPLE_HTML: Final = "application/vnd.pypi.simple.v1+html"
SIMPLE_JSON: Final = "application/vnd.pypi.simple.v1+json"
APPLICATION_JSON: Final = "application/json"
TEXT_PLAIN: Final = "text/plain"
API_VERSION: Final = "1.4"
FILES_URL: Final = "https://files.pythonhosted.org/packages"
SIMPLE_CACHE: Final = "max-age=600, public"
JSON_API_CACHE: Final = "max-age=900, public"
_OFFERS: Final = (TEXT_HTML, SIMPLE_HTML, SIMPLE_JSON)

Headers = tuple[tuple[str, str], ...]

CORS_HEADERS: Final[Headers] = (
    ("Access-Control-Allow-Origin", "*"),
    (
        "Access-Control-Allow-Headers",
        "Content-Type, If-Match, If-Modified-Since, If-None-Match, If-Unmodified-Since",
    ),
    ("Access-Control-Allow-Methods", "GET"),
    ("Access-Control-Max-Age", "86400"),
    ("Access-Control-Expose-Headers", "X-PyPI-Last-Serial"),
)


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response; immutable so cached bodies can be shared between threads."""

    status: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def with_header(self, name: str, value: str | None) -> Response:
        """Replace (or with ``None`` drop) a header."""
        kept = tuple((k, v) for k, v in self.headers if k.lower() != name.lower())
        return replace(self, headers=kept if value is None else (*kept, (name, value)))


def dumps(payload: object) -> bytes:
    """Warehouse's ``json-with-newline`` renderer: compact, sorted keys, raw UTF-8, trailing newline."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def etag(body: bytes) -> str:
    """WebOb's ``md5_etag``: base64 of the MD5 digest without ``=`` padding, quoted."""
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    return '"' + base64.b64encode(digest).decode("ascii").rstrip("=") + '"'


def escape(text: str) -> str:
    """MarkupSafe's escaping (what Jinja autoescape emits), e.g. ``>=3.9`` -> ``&gt;=3.9``."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace("'", "&#39;")
    )


def iso_z(timestamp: float) -> str:
    """``upload_time.isoformat() + "Z"`` on a naive UTC datetime: microseconds vanish when zero."""
    return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None).isoformat() + "Z"


def legacy_time(timestamp: float) -> str:
    """The JSON API's second-resolution ``upload_time``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True)
class Digests:
    """Deterministic stand-ins for a file's stored hashes, size and CDN URL."""

    sha256: str
    md5: str
    blake2b_256: str
    metadata_sha256: str | None
    size: int
    url: str


def fake_sha256(filename: str) -> str:
    """The sha256 the fake reports for ``filename``: ``sha256(filename.encode())``, easy to recompute."""
    return hashlib.sha256(filename.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=65536)
def digests(filename: str) -> Digests:
    """Hashes derived from the filename, so bodies are stable across runs; wheels get PEP 658 metadata."""
    raw = filename.encode("utf-8")
    blake = hashlib.blake2b(raw, digest_size=32).hexdigest()
    sha = fake_sha256(filename)
    metadata = hashlib.sha256(raw + b".metadata").hexdigest() if filename.endswith(".whl") else None
    return Digests(
        sha256=sha,
        md5=hashlib.md5(raw, usedforsecurity=False).hexdigest(),
        blake2b_256=blake,
        metadata_sha256=metadata,
        size=1024 + int(sha[:5], 16),
        url=f"{FILES_URL}/{blake[:2]}/{blake[2:4]}/{blake[4:]}/{filename}",
    )


def _parse_accept(header: str) -> list[tuple[str, str, float]] | None:
    """Media ranges as ``(type, subtype, q)``; ``None`` if the header is invalid (WebOb then ignores it)."""
    ranges: list[tuple[str, str, float]] = []
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        media, *params = (p.strip() for p in item.split(";"))
        if media.count("/") != 1:
            return None
        mtype, subtype = (part.strip().lower() for part in media.split("/"))
        if not mtype or not subtype or (mtype == "*" and subtype != "*"):
            return None
        q, has_media_params = 1.0, False
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    return None
                if not 0.0 <= q <= 1.0:
                    return None
                break  # anything after q is an accept-extension
            has_media_params = True
        if not has_media_params:  # a range with media parameters never matches our parameterless offers
            ranges.append((mtype, subtype, q))
    return ranges


def select_content_type(accept: str | None) -> str:
    """Warehouse's ``_select_content_type``: best q wins, ties go to offer order, default ``text/html``."""
    if accept is None:
        return TEXT_HTML
    ranges = _parse_accept(accept)
    if ranges is None:
        return TEXT_HTML
    best: list[tuple[float, int, str]] = []
    for position, offer in enumerate(_OFFERS):
        otype, osub = offer.split("/")
        chosen: tuple[int, float] | None = None
        for mtype, subtype, q in ranges:
            if (mtype, subtype) == (otype, osub):
                specificity = 2
            elif mtype == otype and subtype == "*":
                specificity = 1
            elif mtype == "*":
                specificity = 0
            else:
                continue
            if chosen is None or specificity > chosen[0]:
                chosen = (specificity, q)
        if chosen is not None and chosen[1] > 0:
            best.append((-chosen[1], position, offer))
    return min(best)[2] if best else TEXT_HTML


def not_found_text() -> Response:
    """Simple API 404 (removed or unknown project)."""
    return Response(404, (("Content-Type", TEXT_PLAIN), *CORS_HEADERS), b"404 Not Found")


def not_found_json() -> Response:
    """JSON API 404 from ``httpexception_view``: quarantined, removed, unknown, or nothing installable."""
    return Response(404, (("Content-Type", APPLICATION_JSON), *CORS_HEADERS), b'{"message": "Not Found"}')


def moved(location: str) -> Response:
    """``HTTPMovedPermanently`` with CORS headers, as both APIs use for non-canonical names."""
    body = (
        "301 Moved Permanently\n\n"
        f"The resource has been moved to {location}; you should be redirected automatically.\n\n"
    )
    headers = (("Content-Type", TEXT_PLAIN), ("Location", location), *CORS_HEADERS)
    return Response(301, headers, body.encode("utf-8"))


def ok(body: bytes, content_type: str, serial: int, cache_control: str, *, vary: bool) -> Response:
    """A 200 with the headers every Warehouse API view sets, and its ETag."""
    headers: list[tuple[str, str]] = [("Content-Type", content_type)]
    if vary:
        headers.append(("Vary", "Accept"))
    headers += [("Cache-Control", cache_control), ("X-PyPI-Last-Serial", str(serial)), *CORS_HEADERS]
    headers.append(("ETag", etag(body)))
    return Response(200, tuple(headers), body)


def conditional(response: Response, if_none_match: str | None) -> Response:
    """Answer a matching ``If-None-Match`` with a bodiless 304, as the conditional tween does for 200s."""
    tag = response.header("ETag")
    if response.status != 200 or tag is None or if_none_match is None:
        return response
    candidates = {c.strip().removeprefix("W/") for c in if_none_match.split(",")}
    if "*" not in candidates and tag not in candidates:
        return response
    kept = tuple((k, v) for k, v in response.headers if k.lower() not in ("content-type", "content-length"))
    return Response(304, kept, b"")
