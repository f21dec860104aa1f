"""Parse the legacy JSON API (``/pypi/<name>/json`` and ``/pypi/<name>/<version>/json``) into a JsonProject.

What we keep and why: per release, the earliest upload time (a fresh release of a hijacked project is the
one to distrust, so subscribers soak new versions) and whether every file is yanked. Bodies from 2017 to
today are accepted: files without ``yanked`` keys are not yanked, ``upload_time`` without a zone is UTC,
releases without files are kept (first upload unknown). A ``releases`` that is not an object (one real
body has ``[]``) leaves the release set unknown (``releases=None``) rather than empty, so no one mistakes it
for "every release gone".
"""

from __future__ import annotations

from qwatch.ids import parse_rfc3339_ms
from qwatch.pypi.errors import PyPIParseError
from qwatch.pypi.jsonbody import as_int, as_str, load_json
from qwatch.pypi.model import JsonFile, JsonProject, JsonRelease


def parse_json_api(body: bytes) -> JsonProject:
    """Parse one JSON API body; raises only PyPIParseError."""
    data = load_json(body)
    if not isinstance(data, dict) or not isinstance(data.get("info"), dict):
        raise PyPIParseError("schema", "JSON API body lacks an 'info' object")
    info = data["info"]
    name = as_str(info.get("name"))
    if not name:
        raise PyPIParseError("schema", "JSON API body lacks info.name")
    raw_urls = data.get("urls")
    urls = tuple(_files(raw_urls)) if isinstance(raw_urls, list) else ()
    raw_releases = data.get("releases")
    releases: tuple[JsonRelease, ...] | None = None
    if isinstance(raw_releases, dict):
        releases = tuple(
            _release(version, files if isinstance(files, list) else [])
            for version, files in raw_releases.items()
            if isinstance(version, str) and version
        )
    vulns = data.get("vulnerabilities")
    return JsonProject(
        name=name,
        version=as_str(info.get("version")),
        last_serial=as_int(data.get("last_serial")),
        releases=releases,
        urls=urls,
        vulnerability_count=len(vulns) if isinstance(vulns, list) else None,
    )


def _release(version: str, raw_files: list[object]) -> JsonRelease:
    files = tuple(_files(raw_files))
    uploads = [f.upload_time for f in files if f.upload_time is not None]
    yanked = bool(files) and all(f.yanked for f in files)
    reason = next((f.yanked_reason for f in files if f.yanked and f.yanked_reason), None) if yanked else None
    return JsonRelease(version, files, min(uploads) if uploads else None, yanked, reason)


def _files(entries: list[object]) -> list[JsonFile]:
    out: list[JsonFile] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        filename = as_str(entry.get("filename"))
        if not filename:
            continue
        out.append(
            JsonFile(
                filename=filename,
                upload_time=_upload_ms(entry),
                yanked=entry.get("yanked") is True,
                yanked_reason=as_str(entry.get("yanked_reason")) or None,
                packagetype=as_str(entry.get("packagetype")),
            )
        )
    return out


def _upload_ms(entry: dict[str, object]) -> int | None:
    for key in ("upload_time_iso_8601", "upload_time"):
        value = as_str(entry.get(key))
        if value:
            try:
                return parse_rfc3339_ms(value)
            except (ValueError, OverflowError):
                continue
    return None
