"""Builders of observations as the ingestors emit them, with plain values: for tests, benchmarks and examples.

Ids follow each ingestor's recipe (source + natural key), so a rebuilt observation is the same observation and a
changed one is a different one, exactly as on the real topic.
"""

from __future__ import annotations

from collections.abc import Sequence

from qwatch import events, ids

PYPI = "PyPI"
T0 = 1_767_323_045_000
"""2026-01-02T03:04:05Z in epoch milliseconds: the base time of the examples."""


def journal(
    package: str, serial: int, action: str, version: str | None = None, ts: int | None = None, seen: int | None = None
) -> events.JournalEntryObserved:
    """A journal row; timestamp defaults to T0 + serial seconds, observed one second later."""
    ts = T0 + (serial % 1_000_000) * 1000 if ts is None else ts
    return events.JournalEntryObserved(
        event_id=ids.event_id("pypi-journal", serial),
        source="pypi-journal",
        ecosystem=PYPI,
        package=package,
        observed_at=ts + 1000 if seen is None else seen,
        upstream_time=ts,
        action=action,
        version=version,
        serial=serial,
        timestamp=ts,
        name=package,
    )


def page(
    package: str,
    status: str,
    serial: int | None,
    at: int,
    versions: Sequence[str] = ("1.0",),
    yanked: Sequence[str] = (),
    source: str = "pypi-simple",
) -> events.ProjectStatusObserved:
    """A fetched simple page (``status='absent'`` is a 404 with no serial)."""
    absent = status == "absent"
    shown = () if absent or status == "quarantined" else tuple(versions)
    digest = ids.event_id("digest", status, *shown, "|", *yanked)[:16]
    return events.ProjectStatusObserved(
        event_id=ids.event_id(source, package, status, serial, digest),
        source=source,
        ecosystem=PYPI,
        package=package,
        observed_at=at,
        upstream_time=None,
        status=status,
        last_serial=None if absent else serial,
        versions=shown,
        yanked_versions=() if absent else tuple(yanked),
        http_status=404 if absent else 200,
    )


def index(package: str, present: bool, at: int, last_serial: int | None = None) -> events.IndexMembershipObserved:
    """A root-index membership change."""
    return events.IndexMembershipObserved(
        event_id=ids.event_id("pypi-simple", package, present, last_serial),
        source="pypi-simple",
        ecosystem=PYPI,
        package=package,
        observed_at=at,
        upstream_time=None,
        present=present,
        last_serial=last_serial,
        index_serial=None,
    )


def json_api(
    package: str,
    http_status: int,
    serial: int | None,
    at: int,
    releases: Sequence[tuple[str, bool]] = (),
) -> events.ReleasesObserved:
    """The JSON API's view: (version, yanked) pairs; a 404 carries none."""
    infos = tuple(events.ReleaseInfo(v, T0, y, None) for v, y in releases)
    return events.ReleasesObserved(
        event_id=ids.event_id("pypi-json", package, http_status, serial, *(f"{v}:{y}" for v, y in releases)),
        source="pypi-json",
        ecosystem=PYPI,
        package=package,
        observed_at=at,
        upstream_time=None,
        http_status=http_status,
        last_serial=serial,
        releases=infos,
    )


def report(
    package: str,
    report_id: str,
    change: str,
    modified: str,
    commit: str,
    commit_time: int,
    affected: Sequence[str] = (),
    all_versions: bool = False,
    ecosystem: str = PYPI,
    seen: int | None = None,
) -> events.ReportObserved:
    """An OpenSSF report change seen in ``commit``."""
    return events.ReportObserved(
        event_id=ids.event_id("openssf", report_id, change, commit),
        source="openssf",
        ecosystem=ecosystem,
        package=package,
        observed_at=commit_time + 5000 if seen is None else seen,
        upstream_time=commit_time,
        report_id=report_id,
        change=change,
        package_name=package,
        affected_versions=tuple(affected),
        all_versions=all_versions,
        summary=f"Malicious code in {package} ({ecosystem})",
        published=modified,
        modified=modified,
        withdrawn=modified if change == "withdrawn" else None,
        aliases=(),
        origins=("ossf-package-analysis",),
        commit=commit,
        path=f"osv/malicious/pypi/{package}/{report_id}.json",
    )


ProvenanceFile = tuple[str, "str | None", str] | tuple[str, "str | None", str, int]
"""(filename, attesting repository or None for no attestation, "ok" | "digest" | "signature"[, upload time])."""


def provenance(
    package: str,
    releases: Sequence[tuple[str, int, Sequence[ProvenanceFile]]],
    seen: int,
    workflow: str = "release.yml",
) -> events.ProvenanceObserved:
    """A ProvenanceObserved: ``releases`` are (version, upload time, files); the id follows the content."""
    out = []
    for version, uploaded, files in releases:
        checked = []
        for filename, repo, state, *when in files:
            file_upload = when[0] if when else uploaded
            publishers = () if repo is None else (events.PublisherIdentity("GitHub", repo, workflow, ""),)
            digest_ok = None if repo is None else state != "digest"
            signature = "invalid" if state == "signature" else ("verified" if repo else "not-checked")
            detail = {"ok": "signature verified", "digest": "subject sha256 differs", "signature": "bad signature"}
            sha = ids.event_id("sha", filename)
            checked.append(
                events.FileProvenance(
                    filename,
                    sha,
                    file_upload,
                    repo is not None,
                    publishers,
                    digest_ok,
                    signature,
                    detail[state] if repo else "no attestation",
                )
            )
        out.append(events.ReleaseProvenance(version, uploaded, tuple(checked)))
    key = repr([(r.version, [(f.filename, f.publishers, f.digest_ok, f.signature) for f in r.files]) for r in out])
    return events.ProvenanceObserved(
        event_id=ids.event_id("pypi-provenance", package, key),
        source="pypi-provenance",
        ecosystem=PYPI,
        package=package,
        observed_at=seen,
        upstream_time=max((r.upload_time for r in out if r.upload_time is not None), default=None),
        last_serial=None,
        releases=tuple(out),
    )
