"""Pure parsers for the two PyPI answers the gate reads: a PEP 691 project page and a JSON API release.

Anything that does not have the expected shape raises :class:`UnusableAnswer`: the gate reports "cannot
verify" instead of guessing, because a half-understood page is how a gate fails open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from qwatch.fakepypi.versions import VersionKey
from qwatch.ids import parse_rfc3339_ms
from subscribers.facts import ACTIVE, PackageFacts, vkey

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
_MAX_FILES = 200_000


class UnusableAnswer(ValueError):
    """The index answered, but not with something the gate can rely on."""


def _object(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise UnusableAnswer(f"{what} is not a JSON object")
    return value


def _json(body: bytes, what: str) -> dict[str, object]:
    try:
        data: object = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise UnusableAnswer(f"{what} is not valid JSON ({exc})") from exc
    return _object(data, what)


def _time(value: object) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339_ms(value)
    except ValueError:
        return None


def parse_simple_project(package: str, body: bytes, origin: str = "pypi") -> PackageFacts:
    """A PEP 691 project page: status (PEP 792), installable versions, yanks and first upload times (PEP 700)."""
    page = _json(body, "the project page")
    status_obj = page.get("project-status")
    status = ACTIVE
    if status_obj is not None:
        raw = _object(status_obj, "project-status").get("status")
        if not isinstance(raw, str) or not raw:
            raise UnusableAnswer("project-status.status is missing")
        status = raw.lower()
    files = page.get("files")
    if not isinstance(files, list) or len(files) > _MAX_FILES:
        raise UnusableAnswer("the project page has no files list")
    versions_raw = page.get("versions")
    from_files: set[str] = set()
    uploads: dict[VersionKey, int] = {}
    yanked_files: dict[VersionKey, list[bool]] = {}
    for item in files:
        entry = _object(item, "a file entry")
        filename = entry.get("filename")
        if not isinstance(filename, str):
            raise UnusableAnswer("a file entry has no filename")
        version = _version_from_filename(package, filename)
        if version is None:
            continue
        from_files.add(version)
        key = vkey(version)
        yanked_files.setdefault(key, []).append(bool(entry.get("yanked")))
        uploaded = _time(entry.get("upload-time"))
        if uploaded is not None and (key not in uploads or uploaded < uploads[key]):
            uploads[key] = uploaded
    if isinstance(versions_raw, list) and all(isinstance(v, str) for v in versions_raw):
        listed = {vkey(str(v)) for v in versions_raw}
    elif versions_raw is None:
        listed = {vkey(v) for v in from_files}  # api-version < 1.1 has no versions list
    else:
        raise UnusableAnswer("versions is not a list of strings")
    yanked = frozenset(k for k, flags in yanked_files.items() if flags and all(flags))
    return PackageFacts(package, status, frozenset(listed), origin, yanked=yanked, first_upload=uploads)


def _version_from_filename(package: str, filename: str) -> str | None:
    """Version part of a wheel or sdist name; None for names we cannot split (they then add no upload time)."""
    stem = filename
    if stem.endswith(".whl"):
        parts = stem[:-4].split("-")
        return parts[1] if len(parts) >= 5 else None
    for suffix in (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        return None
    # sdists are "<name>-<version>"; the name may itself contain dashes, so split on the last one.
    head, sep, version = stem.rpartition("-")
    return version if sep and head else None


def parse_release_uploads(body: bytes) -> int | None:
    """``/pypi/<name>/<version>/json``: the earliest ``upload_time_iso_8601`` of the release's files."""
    data = _json(body, "the JSON API release")
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
