"""Where a file's provenance is, and what an answer means: shared by the ingestor and the gate.

The Simple API names the URL per file from API version 1.3 (``provenance``: a URL, or ``null`` for none);
older pages (and mirrors that rewrite them) say nothing, so the Integrity API on the index's host is asked.
Only Warehouse's "No provenance available" 404 means *none*; any other answer that is not a 200 says nothing
about provenance, and is reported as a failure so no caller reads it as "unattested".
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from qwatch.http import HttpError, PoliteClient
from qwatch.provenance.drift import ReleaseView, order_key
from qwatch.pypi.model import PageFile, ProjectPage

INTEGRITY_ACCEPT = "application/vnd.pypi.integrity.v1+json, application/json;q=0.9"
NO_PROVENANCE = b"No provenance available"


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """No answer about provenance: a bounded reason, the message, and the body if any."""

    reason: str
    error: str
    payload: bytes | None = None


def integrity_url(index_url: str, project: str, version: str, filename: str) -> str:
    """The Integrity API URL on the index's host: ``/integrity/<project>/<version>/<filename>/provenance``."""
    parts = urlsplit(index_url)
    path = "/".join(quote(p, safe="") for p in (project, version, filename))
    return f"{parts.scheme}://{parts.netloc}/integrity/{path}/provenance"


def names_provenance(page: ProjectPage) -> bool:
    """True when the page's API version (1.3+) promises a ``provenance`` key per file, so null means none."""
    try:
        major, minor = (int(x) for x in (page.api_version or "").split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (1, 3)


def provenance_location(page: ProjectPage, index_url: str, project: str, version: str, f: PageFile) -> str | None:
    """Where to ask for ``f``'s provenance (``project`` as asked, when the page names none); None when the page
    says it has none."""
    if f.provenance_url:
        return f.provenance_url
    if names_provenance(page):
        return None
    return integrity_url(index_url, page.name or project, version, f.filename)


def fetch_provenance(client: PoliteClient, url: str) -> bytes | None | FetchFailure:
    """The body (200), None (Warehouse's "No provenance available" 404), or why there is no answer."""
    try:
        result = client.get(url, accept=INTEGRITY_ACCEPT)
    except HttpError as exc:
        return FetchFailure(exc.reason, f"GET {url}: {exc}")
    if result.status == 200:
        return result.body
    if result.status == 404 and NO_PROVENANCE in result.body[:512]:
        return None
    reason = "provenance-not-found" if result.status == 404 else "http-status"
    return FetchFailure(reason, f"GET {url}: HTTP {result.status} is not an answer about provenance", result.body)


def releases_in_order(page: ProjectPage) -> list[tuple[str, list[PageFile]]]:
    """Every release with files, in upload order (then version), oldest first."""
    by_version: dict[str, list[PageFile]] = {}
    for f in page.files:
        if f.version is not None:
            by_version.setdefault(f.version, []).append(f)

    def key(item: tuple[str, list[PageFile]]) -> tuple[int, int, tuple[int, object], str]:
        times = [f.upload_time for f in item[1] if f.upload_time is not None]
        return order_key(ReleaseView(item[0], min(times) if times else None, ()))

    return sorted(by_version.items(), key=key)
