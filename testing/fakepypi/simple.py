"""``/simple/<name>/``: Warehouse's ``_simple_detail`` context and its two renderings (B1, B2, B3).

Why byte-exact HTML: PEP 833 froze the HTML form, including its odd whitespace (the status meta shares a
line with ``<title>``), and pollers hash or diff these bodies; the template below reproduces the Jinja
output with ``trim_blocks``/``lstrip_blocks`` as frozen by ``test_pep833_simple_api_detail_html_frozen``.
"""

from __future__ import annotations

from collections.abc import Callable

from .model import FileState, ProjectState, ReleaseState
from .render import (
    API_VERSION,
    SIMPLE_CACHE,
    SIMPLE_JSON,
    Digests,
    Response,
    digests,
    dumps,
    escape,
    iso_z,
    ok,
)
from .versions import version_key

_HTML_HEAD = (
    "<!DOCTYPE html>\n"
    '<html lang="en">\n'
    "  <head>\n"
    '    <meta name="pypi:repository-version" content="{api}">\n'
    '<meta name="pypi:project-status" content="{status}">'
    "    <title>Links for {name}</title>\n"
    "  </head>\n"
    "  <body>\n"
    "    <h1>Links for {name}</h1>\n"
)
_HTML_TAIL = "</body>\n</html>\n<!--SERIAL {serial}-->"


def visible_files(project: ProjectState) -> list[tuple[ReleaseState, FileState]]:
    """Files the index offers: none for a quarantined project, none of a quarantined release."""
    if project.quarantined:
        return []
    pairs = [(r, f) for r in project.releases if not r.quarantined for f in r.files]
    pairs.sort(key=lambda pair: (version_key(pair[0].version), pair[1].filename))
    return pairs


ProvenanceURL = Callable[[str, str, str], "str | None"]
"""(project, version, filename) → the Integrity API URL of the file's provenance, None when it has none."""


def _no_provenance(project: str, version: str, filename: str) -> str | None:
    return None


def detail_context(
    project: ProjectState, facts_of: Callable[[str], Digests] = digests, provenance_of: ProvenanceURL = _no_provenance
) -> dict[str, object]:
    """The dict ``_simple_detail`` returns; ``versions`` come only from visible files."""
    pairs = visible_files(project)
    versions = sorted({r.version for r, _ in pairs}, key=version_key)
    files: list[dict[str, object]] = []
    for release, file in pairs:
        facts = facts_of(file.filename)
        metadata: object = {"sha256": facts.metadata_sha256} if facts.metadata_sha256 else False
        files.append(
            {
                "core-metadata": metadata,
                "data-dist-info-metadata": metadata,
                "filename": file.filename,
                "hashes": {"sha256": facts.sha256},
                "provenance": provenance_of(project.normalized, release.version, file.filename),
                "requires-python": release.requires_python or None,
                "size": facts.size,
                "upload-time": iso_z(file.upload_time),
                "url": facts.url,
                "yanked": (release.yanked_reason or True) if release.yanked else False,
            }
        )
    return {
        "files": files,
        "meta": {"_last-serial": project.last_serial, "api-version": API_VERSION},
        "name": project.normalized,
        "project-status": {"status": project.status},
        "versions": versions,
    }


def _html_link(file: dict[str, object], facts_of: Callable[[str], Digests]) -> str:
    facts = facts_of(str(file["filename"]))
    attrs = ""
    if file["requires-python"]:
        attrs += f'data-requires-python="{escape(str(file["requires-python"]))}" '
    yanked = file["yanked"]
    if yanked:
        attrs += f'data-yanked="{escape(yanked) if isinstance(yanked, str) else ""}" '
    if facts.metadata_sha256:
        attrs += f'data-dist-info-metadata="sha256={facts.metadata_sha256}" '
        attrs += f'data-core-metadata="sha256={facts.metadata_sha256}"'
    if file.get("provenance"):
        sep = "" if not attrs or attrs.endswith(" ") else " "
        attrs += f'{sep}data-provenance="{escape(str(file["provenance"]))}" '
    href = escape(f"{facts.url}#sha256={facts.sha256}")
    return f'<a href="{href}" {attrs}>{escape(str(file["filename"]))}</a><br />\n'


def render_detail_html(
    context: dict[str, object], status: str, serial: int, facts_of: Callable[[str], Digests] = digests
) -> bytes:
    """Render the frozen PEP 833 HTML page from a detail context."""
    name = escape(str(context["name"]))
    head = _HTML_HEAD.format(api=API_VERSION, status=escape(status), name=name)
    files = context["files"]
    assert isinstance(files, list)  # noqa: S101 - built by detail_context
    links = "".join(_html_link(f, facts_of) for f in files)
    return (head + links + _HTML_TAIL.format(serial=serial)).encode("utf-8")


def simple_detail(
    project: ProjectState,
    content_type: str,
    facts_of: Callable[[str], Digests] = digests,
    provenance_of: ProvenanceURL = _no_provenance,
) -> Response:
    """The full 200 response for one project in the negotiated representation."""
    context = detail_context(project, facts_of, provenance_of)
    if content_type == SIMPLE_JSON:
        body = dumps(context)
    else:
        body = render_detail_html(context, project.status, project.last_serial, facts_of)
    return ok(body, content_type, project.last_serial, SIMPLE_CACHE, vary=True)
