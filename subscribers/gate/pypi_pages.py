"""What the gate reads from an index, through the one PyPI page parser the ingestor uses too.

``qwatch.pypi.pages.parse_page`` turns a PEP 691 (or PEP 503) project page into a ProjectPage and refuses what it
cannot vouch for: an unknown PEP 792 status, an API major version other than 1, a page that names another project.
The gate and the ingestor therefore cannot disagree about what a page says. Anything refused raises
:class:`UnusableAnswer`: the gate reports "cannot verify" instead of guessing, because a half-understood page is
how a gate fails open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from qwatch.errors import QwatchError
from qwatch.ids import parse_rfc3339_ms
from qwatch.pypi.errors import PyPIParseError
from qwatch.pypi.model import ProjectPage
from qwatch.pypi.pages import parse_page
from subscribers.gate.facts import PackageFacts, VersionKey, vkey, vkeys

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


class UnusableAnswer(QwatchError, ValueError):
    """The index answered, but not with something the gate can rely on."""


def _object(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise UnusableAnswer(f"{what} is not a JSON object")
    return value


def _time(value: object) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339_ms(value)
    except ValueError:
        return None


def parse_simple_project(
    package: str, body: bytes, origin: str = "pypi", content_type: str = SIMPLE_JSON
) -> PackageFacts:
    """A project page: status (PEP 792), installable versions, yanks and first upload times (PEP 700)."""
    try:
        page = parse_page(content_type, body, package)
    except PyPIParseError as exc:
        raise UnusableAnswer(str(exc)) from exc
    if page is None:
        raise UnusableAnswer(f"{content_type or 'no content type'} is not a Simple API page (PEP 691 or PEP 503)")
    return facts_from_page(package, page, origin)


def facts_from_page(package: str, page: ProjectPage, origin: str) -> PackageFacts:
    """The gate's facts from a parsed page: a version counts as listed only if a file of it is served."""
    uploads: dict[VersionKey, int] = {}
    for f in page.files:
        if f.version is None or f.upload_time is None:
            continue
        key = vkey(f.version)
        if key not in uploads or f.upload_time < uploads[key]:
            uploads[key] = f.upload_time
    return PackageFacts(
        package,
        page.status,
        vkeys(page.versions),
        origin,
        yanked=vkeys(page.yanked_versions),
        first_upload=uploads,
    )


def parse_release_uploads(body: bytes) -> int | None:
    """``/pypi/<name>/<version>/json``: the earliest ``upload_time_iso_8601`` of the release's files."""
    try:
        data = _object(json.loads(body), "the JSON API release")
    except (ValueError, RecursionError) as exc:
        raise UnusableAnswer(f"the JSON API release is not valid JSON ({exc})") from exc
    urls = data.get("urls")
    if not isinstance(urls, list):
        raise UnusableAnswer("the JSON API release has no urls list")
    times = [_time(_object(u, "a url entry").get("upload_time_iso_8601")) for u in urls]
    known = [t for t in times if t is not None]
    return min(known) if known else None


def with_upload(facts: PackageFacts, version: str, uploaded: int) -> PackageFacts:
    """Facts with one more known first-upload time."""
    merged: Mapping[VersionKey, int] = {**facts.first_upload, vkey(version): uploaded}
    return PackageFacts(
        facts.package,
        facts.status,
        facts.versions,
        facts.origin,
        facts.yanked,
        facts.quarantined_versions,
        facts.removed_versions,
        merged,
        facts.reports,
    )
