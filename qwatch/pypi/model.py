"""Plain values the PyPI parsers return; frozen so a parsed page can be shared between threads and hashed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

STATUSES = ("active", "archived", "quarantined", "deprecated")
"""PEP 792 markers; ``absent`` (a 404) is added by the ingestors, never parsed from a page."""


@dataclass(frozen=True, slots=True)
class PageFile:
    """One distribution link on a Simple page (JSON or HTML)."""

    filename: str
    version: str | None
    yanked: bool
    yanked_reason: str | None = None
    requires_python: str | None = None
    upload_time: int | None = None
    core_metadata: bool = False
    provenance: bool = False
    sha256: str | None = None
    """The announced sha256 (JSON ``hashes``, HTML ``#sha256=``), lower-case hex; None when not given."""
    provenance_url: str | None = None
    """PEP 740: where the file's provenance is (JSON ``provenance``, HTML ``data-provenance``)."""


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """``/simple/<name>/`` reduced to what a watcher needs: PEP 792 status and installable versions."""

    name: str
    status: str
    status_reason: str | None
    api_version: str | None
    last_serial: int | None
    versions: tuple[str, ...]
    yanked_versions: tuple[str, ...]
    files: tuple[PageFile, ...]

    def digest(self) -> str:
        """A short hash of what we report (status, versions, yanks): equal digests mean nothing to emit."""
        text = "\x1f".join([self.status, ",".join(self.versions), ",".join(self.yanked_versions)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RootIndex:
    """``/simple/``: display name → ``_last-serial`` (None in the HTML form, which has no serials)."""

    serial: int | None
    api_version: str | None
    projects: dict[str, int | None]


@dataclass(frozen=True, slots=True)
class JsonFile:
    """One file of a release as the JSON API lists it."""

    filename: str
    upload_time: int | None
    yanked: bool
    yanked_reason: str | None
    packagetype: str | None


@dataclass(frozen=True, slots=True)
class JsonRelease:
    """One release of ``/pypi/<name>/json``, with the earliest upload time that drives a soak window."""

    version: str
    files: tuple[JsonFile, ...]
    first_upload: int | None
    yanked: bool
    yanked_reason: str | None


@dataclass(frozen=True, slots=True)
class JsonProject:
    """``/pypi/<name>/json`` (or the per-version form). ``releases`` is None when the body does not say."""

    name: str
    version: str | None
    last_serial: int | None
    releases: tuple[JsonRelease, ...] | None
    urls: tuple[JsonFile, ...]
    vulnerability_count: int | None

    def digest(self) -> str:
        """A short hash of the release facts we report; equal digests mean nothing to emit."""
        parts = [
            f"{r.version}|{r.first_upload}|{int(r.yanked)}|{r.yanked_reason or ''}"
            for r in sorted(self.releases or (), key=lambda r: r.version)
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One ``changelog_since_serial`` row; ``timestamp`` converted to epoch milliseconds."""

    name: str
    version: str | None
    timestamp: int
    action: str
    serial: int


@dataclass(frozen=True, slots=True)
class ChangelogPage:
    """A decoded changelog response: good rows in serial order, and the rows we could not read."""

    rows: tuple[JournalRow, ...]
    bad_rows: tuple[str, ...]
    high_serial: int | None = None
    """The highest serial on the page, bad rows included when their serial is readable (the cursor moves past
    a dead-lettered row instead of fetching it forever)."""


@dataclass(frozen=True, slots=True)
class RpcFault:
    """An XML-RPC fault: a well-formed answer that is not data (-32500 = rate limited)."""

    code: int
    message: str

    @property
    def rate_limited(self) -> bool:
        """True for Warehouse's ``HTTPTooManyRequests`` fault (code -32500)."""
        return self.code == RATE_LIMIT_FAULT


RATE_LIMIT_FAULT = -32500
"""The XML-RPC fault code Warehouse raises when a client exceeds its rate limit."""
