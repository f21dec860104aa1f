"""``/pypi/<name>/json`` and ``/pypi/<name>/<version>/json`` (B5, B6).

Why it matters: a JSON-API 404 is ambiguous on purpose (quarantined, removed, every release quarantined,
or no releases at all), and a poller must learn to disambiguate via the Simple API.  The fake therefore
404s in exactly those cases and shows no lifecycle field anywhere in a 200 body, like ``_json_data``.
"""

from __future__ import annotations

from collections.abc import Callable

from .model import ProjectState, ReleaseState
from .render import (
    APPLICATION_JSON,
    JSON_API_CACHE,
    Digests,
    Response,
    digests,
    dumps,
    iso_z,
    legacy_time,
    moved,
    not_found_json,
    ok,
)
from .versions import dist_kind, is_prerelease, version_key

OWNER = "fakepypi"


def visible_releases(project: ProjectState) -> list[ReleaseState]:
    """Releases the JSON API can see; a quarantined project has none."""
    if project.quarantined:
        return []
    return [r for r in project.releases if not r.quarantined]


def latest_release(project: ProjectState) -> ReleaseState | None:
    """Warehouse's pick for ``info``: non-yanked first, then final releases, then the highest version."""
    releases = visible_releases(project)
    if not releases:
        return None
    return max(releases, key=lambda r: (not r.yanked, not is_prerelease(r.version), version_key(r.version)))


def _file_entries(release: ReleaseState, facts_of: Callable[[str], Digests] = digests) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for file in sorted(release.files, key=lambda f: f.filename):
        facts = facts_of(file.filename)
        packagetype, python_version = dist_kind(file.filename)
        entries.append(
            {
                "comment_text": None,
                "core-metadata": {"sha256": facts.metadata_sha256} if facts.metadata_sha256 else False,
                "digests": {"blake2b_256": facts.blake2b_256, "md5": facts.md5, "sha256": facts.sha256},
                "downloads": -1,
                "filename": file.filename,
                "has_sig": False,
                "md5_digest": facts.md5,
                "packagetype": packagetype,
                "python_version": python_version,
                "requires_python": release.requires_python or None,
                "size": facts.size,
                "upload_time": legacy_time(file.upload_time),
                "upload_time_iso_8601": iso_z(file.upload_time),
                "url": facts.url,
                "yanked": release.yanked,
                "yanked_reason": release.yanked_reason or None,
            }
        )
    return entries


def _info(project: ProjectState, release: ReleaseState) -> dict[str, object]:
    page = f"https://pypi.org/project/{project.name}/"
    return {
        "author": None,
        "author_email": None,
        "bugtrack_url": None,
        "classifiers": [],
        "description": f"# {project.name}\n\nA project served by qwatch's fake PyPI.\n",
        "description_content_type": "text/markdown",
        "docs_url": None,
        "download_url": None,
        "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
        "dynamic": None,
        "home_page": None,
        "keywords": None,
        "license": None,
        "license_expression": None,
        "license_files": None,
        "maintainer": None,
        "maintainer_email": None,
        "name": project.name,
        "package_url": page,
        "platform": None,
        "project_url": page,
        "project_urls": None,
        "provides_extra": None,
        "release_url": f"{page}{release.version}/",
        "requires_dist": None,
        "requires_python": release.requires_python,
        "summary": f"{project.name} (fake)",
        "version": release.version,
        "yanked": release.yanked,
        "yanked_reason": release.yanked_reason or None,
    }


def json_data(
    project: ProjectState,
    release: ReleaseState,
    *,
    all_releases: bool,
    facts_of: Callable[[str], Digests] = digests,
) -> dict[str, object]:
    """The body ``_json_data`` builds; ``releases`` (with empty lists kept) only on the project URL."""
    data: dict[str, object] = {
        "info": _info(project, release),
        "last_serial": project.last_serial,
        "ownership": {"organization": None, "roles": [{"role": "Owner", "user": OWNER}]},
        "urls": _file_entries(release, facts_of),
        "vulnerabilities": [],
    }
    if all_releases:
        data["releases"] = {r.version: _file_entries(r, facts_of) for r in visible_releases(project)}
    return data


def json_project(
    project: ProjectState | None, requested: str, facts_of: Callable[[str], Digests] = digests
) -> Response:
    """``GET /pypi/<requested>/json``: redirect to the display name, 404 when nothing is visible."""
    if project is None or project.quarantined:  # the factory filters quarantine before any redirect
        return not_found_json()
    if requested != project.name:
        return moved(f"/pypi/{project.name}/json")
    release = latest_release(project)
    if release is None:
        return not_found_json()
    body = dumps(json_data(project, release, all_releases=True, facts_of=facts_of))
    return ok(body, APPLICATION_JSON, project.last_serial, JSON_API_CACHE, vary=False)


def json_release(
    project: ProjectState | None, requested: str, version: str, facts_of: Callable[[str], Digests] = digests
) -> Response:
    """``GET /pypi/<requested>/<version>/json``: no ``releases`` key; hidden releases 404."""
    if project is None:
        return not_found_json()
    release = next((r for r in visible_releases(project) if r.version == version), None)
    if release is None:
        return not_found_json()
    if requested != project.name:
        return moved(f"/pypi/{project.name}/{version}/json")
    body = dumps(json_data(project, release, all_releases=False, facts_of=facts_of))
    return ok(body, APPLICATION_JSON, project.last_serial, JSON_API_CACHE, vary=False)
