"""Parse ``/simple/<name>/``, JSON (PEP 691/700/792) or HTML (PEP 503/592/792), into a ProjectPage.

Leniency is deliberate, because the specs and real servers disagree (``pypi-signals.md``, "Spec warts"):
- a missing ``project-status`` means ``active`` (pre-1.4 servers, mirrors that drop PEP 792 markers);
- an explicit marker is believed even under an older ``api-version`` (a hand-edited 1.2 page says deprecated);
- ``project-status`` is also looked for inside ``meta`` (the canonical spec's example puts it there), and
  ``state`` is accepted for ``status`` (PEP 792's prose);
- ``alternate-locations``, ``tracks`` and unknown keys are ignored.
An unknown status value is *not* guessed: it raises ``schema``, so the page is dead-lettered and visible.

What is never lenient (``parse_page``, used by the ingestor and the gate alike): an ``api-version`` whose major
version is not 1 (PEP 629: a client must stop, the meaning of every key may have changed) and a page whose
``name`` is another project (a mirror or proxy answering with the wrong page would otherwise pass for it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from qwatch.ids import parse_rfc3339_ms
from qwatch.pypi.errors import PyPIParseError
from qwatch.pypi.jsonbody import as_int, as_str, load_json
from qwatch.pypi.model import STATUSES, PageFile, ProjectPage
from qwatch.pypi.versions import canonical_version, sort_versions, version_from_filename

_SERIAL_COMMENT = re.compile(r"\s*SERIAL\s+(\d{1,18})\s*")
_LINKS_FOR = re.compile(r"^\s*Links for\s+(.*)$", re.S)
"""The name is the rest, right-stripped in Python: a lazy ``(.*?)\\s*$`` was quadratic on long blank runs."""


def effective_status(raw: object) -> tuple[str, str | None]:
    """(status, reason) from a ``project-status`` value: a dict with ``status``/``state``, a string, None."""
    reason: str | None = None
    value: object = raw
    if isinstance(raw, dict):
        value = raw.get("status", raw.get("state"))
        reason = as_str(raw.get("reason"))
    if value is None:
        return "active", reason
    if not isinstance(value, str):
        raise PyPIParseError("schema", f"project-status is a {type(value).__name__}, expected a string")
    status = value.strip().lower()
    if status not in STATUSES:
        raise PyPIParseError("schema", f"unknown project-status {value[:40]!r}")
    return status, reason


def summarize_versions(
    files: Iterable[PageFile], listed: Iterable[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(versions with a visible file, versions whose every file is yanked), both in PEP 440 order.

    A version named in ``versions`` but without a file is dropped only when we can prove it: if some file
    names yield no version (``.exe``, eggs), such a version keeps the benefit of the doubt.
    """
    by_version: dict[str, list[PageFile]] = {}
    underivable = False
    for f in files:
        if f.version is None:
            underivable = True
        else:
            by_version.setdefault(f.version, []).append(f)
    spelled: dict[str, str] = {v: v for v in by_version}
    keep: set[str] = set(by_version)
    for version in listed or ():
        canon = canonical_version(version) or version
        if canon in by_version:
            spelled[canon] = version
        elif underivable:
            spelled[canon] = version
            keep.add(canon)
    versions = sort_versions([spelled[c] for c in keep])
    yanked = sort_versions([spelled[c] for c, fs in by_version.items() if fs and all(f.yanked for f in fs)])
    return versions, yanked


def parse_project_json(body: bytes) -> ProjectPage:
    """A PEP 691 JSON project page; ``last_serial`` is ``meta._last-serial`` (the header is the adapter's)."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise PyPIParseError("schema", f"project page is a JSON {type(data).__name__}, expected an object")
    name = as_str(data.get("name"))
    raw_files = data.get("files")
    if name is None or not isinstance(raw_files, list):
        raise PyPIParseError("schema", "project page lacks 'name' or a 'files' list")
    meta = data.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    raw_status = data.get("project-status", meta.get("project-status"))
    status, reason = effective_status(raw_status)
    files = tuple(f for f in (_json_file(entry) for entry in raw_files) if f is not None)
    listed_raw = data.get("versions")
    listed = [v for v in listed_raw if isinstance(v, str)] if isinstance(listed_raw, list) else None
    versions, yanked = summarize_versions(files, listed)
    return ProjectPage(
        name=name,
        status=status,
        status_reason=reason,
        api_version=as_str(meta.get("api-version")),
        last_serial=as_int(meta.get("_last-serial")),
        versions=versions,
        yanked_versions=yanked,
        files=files,
    )


def _json_file(entry: object) -> PageFile | None:
    # Entries without a string filename cannot be installed; skip them rather than lose the page's status.
    if not isinstance(entry, dict):
        return None
    filename = as_str(entry.get("filename"))
    if not filename:
        return None
    yanked_raw = entry.get("yanked")
    yanked = yanked_raw is True or isinstance(yanked_raw, str)
    reason = yanked_raw if isinstance(yanked_raw, str) and yanked_raw else None
    upload = as_str(entry.get("upload-time"))
    core = entry.get("core-metadata", entry.get("data-dist-info-metadata"))
    hashes = entry.get("hashes")
    sha = hashes.get("sha256") if isinstance(hashes, dict) else None
    provenance = entry.get("provenance")
    return PageFile(
        filename=filename,
        version=version_from_filename(filename),
        yanked=yanked,
        yanked_reason=reason,
        requires_python=as_str(entry.get("requires-python")),
        upload_time=_time_ms(upload),
        core_metadata=bool(core) and core is not False,
        provenance=isinstance(provenance, str),
        sha256=sha.lower() if isinstance(sha, str) and _SHA256.fullmatch(sha) else None,
        provenance_url=provenance if isinstance(provenance, str) and provenance else None,
    )


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _fragment_sha256(href: str | None) -> str | None:
    """``…/f.tar.gz#sha256=<hex>`` → ``<hex>`` (PEP 503's hash fragment), else None."""
    if not href or "#" not in href:
        return None
    kind, _, value = href.rsplit("#", 1)[1].partition("=")
    return value.lower() if kind.lower() == "sha256" and _SHA256.fullmatch(value) else None


def _time_ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return parse_rfc3339_ms(value)
    except (ValueError, OverflowError):
        return None


class _PageHTML(HTMLParser):
    """Collects meta tags, title/h1 text, anchors with their attributes and text, and the SERIAL comment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self.h1 = ""
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.serial: int | None = None
        self.saw_markup = False
        self._in: str | None = None
        self._attrs: dict[str, str | None] = {}
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.saw_markup = True
        if tag == "meta":
            found = dict(attrs)
            name = found.get("name")
            if name and name.lower() not in self.meta:
                self.meta[name.lower()] = (found.get("content") or "").strip()
        elif tag in ("a", "title", "h1"):
            self.end_element()
            self._in, self._attrs, self._text = tag, dict(attrs), []

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self.end_element()

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self._text.append(data)

    def handle_comment(self, data: str) -> None:
        m = _SERIAL_COMMENT.fullmatch(data)
        if m:
            self.serial = int(m.group(1))

    def end_element(self) -> None:
        text = "".join(self._text).strip()
        if self._in == "a":
            self.anchors.append((self._attrs, text))
        elif self._in == "title" and not self.title:
            self.title = text
        elif self._in == "h1" and not self.h1:
            self.h1 = text
        self._in, self._attrs, self._text = None, {}, []


def _feed(text: str) -> _PageHTML:
    """Run html.parser over the whole body; a body that ends inside a tag, comment or declaration is refused.

    Why refuse instead of letting ``close()`` recover: its recovery re-scans the rest of the body from every
    following ``<``, which is quadratic (CPython before 3.11.13, CVE-2025-6069): 100 KB of ``<a `` stalled a pass
    for minutes. ``feed`` alone is linear and leaves such an unterminated construct in ``rawdata``. A page cut
    there is truncated or malformed either way, and believing its partial file list would hide versions.
    """
    parser = _PageHTML()
    try:
        parser.feed(text)
        if len(parser.rawdata) > 1 and parser.rawdata.startswith("<"):
            raise PyPIParseError("truncated", "the body ends inside an unterminated tag, comment or declaration")
        parser.close()
    except (AssertionError, ValueError, IndexError) as exc:  # html.parser's own failure modes
        raise PyPIParseError("malformed-html", f"unparseable HTML: {type(exc).__name__}") from None
    parser.end_element()
    return parser


def _filename(attrs: dict[str, str | None], text: str) -> str:
    if text:
        return text
    try:
        path = urlsplit(attrs.get("href") or "").path
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return ""
    return unquote(path.rstrip("/").rpartition("/")[2])


SUPPORTED_MAJOR = "1"
"""The Simple API major version this code understands (PEP 629)."""


def parse_page(content_type: str, body: bytes, requested: str) -> ProjectPage | None:
    """A project page in whichever form ``content_type`` says (None for a type that is neither), checked to be
    the page of ``requested`` in an API version this code understands; PyPIParseError otherwise."""
    if content_type in SIMPLE_JSON_TYPES:
        page = parse_project_json(body)
    elif content_type in SIMPLE_HTML_TYPES:
        page = parse_project_html(body)
    else:
        return None
    check_page(page, requested)
    return page


def check_page(page: ProjectPage, requested: str) -> None:
    """Refuse a page in an unknown major API version, or one that names another project."""
    if page.api_version is not None:
        major = page.api_version.strip().partition(".")[0]
        if major != SUPPORTED_MAJOR:
            raise PyPIParseError(
                "api-version",
                f"api-version {page.api_version[:20]!r} is not {SUPPORTED_MAJOR}.x; PEP 629 says a client must not "
                "interpret a major version it does not know",
            )
    if page.name and canonicalize_name(page.name) != canonicalize_name(requested):
        raise PyPIParseError("name-mismatch", f"the page is for {page.name[:80]!r}, not {requested!r}")


SIMPLE_JSON_TYPES = frozenset(
    {"application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.latest+json", "application/json"}
)
"""Content types of a PEP 691 JSON page (``application/json`` from lenient servers)."""
SIMPLE_HTML_TYPES = frozenset(
    {"text/html", "application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html"}
)
"""Content types of a PEP 503 HTML page."""


def parse_project_html(body: bytes) -> ProjectPage:
    """A PEP 503 HTML project page with PEP 592 yanks and PEP 792 meta markers."""
    page = _feed(body.decode("utf-8", errors="replace"))
    if not page.saw_markup:
        raise PyPIParseError("malformed-html", "no HTML markup in a text/html body")
    status, _ = effective_status(page.meta.get("pypi:project-status") or None)
    files: list[PageFile] = []
    for attrs, text in page.anchors:
        filename = _filename(attrs, text)
        if not filename:
            continue
        yanked = "data-yanked" in attrs
        reason = attrs.get("data-yanked") or None
        core = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        files.append(
            PageFile(
                filename=filename,
                version=version_from_filename(filename),
                yanked=yanked,
                yanked_reason=reason,
                requires_python=attrs.get("data-requires-python"),
                core_metadata=core is not None and core.lower() != "false",
                provenance="data-provenance" in attrs,
                sha256=_fragment_sha256(attrs.get("href")),
                provenance_url=attrs.get("data-provenance") or None,
            )
        )
    versions, yanked_versions = summarize_versions(files, None)
    m = _LINKS_FOR.match(page.title) or _LINKS_FOR.match(page.h1)
    return ProjectPage(
        name=m.group(1).rstrip() if m else "",
        status=status,
        status_reason=page.meta.get("pypi:project-status-reason") or None,
        api_version=page.meta.get("pypi:repository-version") or None,
        last_serial=page.serial,
        versions=versions,
        yanked_versions=yanked_versions,
        files=tuple(files),
    )
