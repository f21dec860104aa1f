"""The provenance drift rule, pure: one release judged against the project's recent releases.

Shared by the processor (which emits each drift once, as a transition) and the gate (which fails a pinned version
that drifted), so a pin the gate fails is one an alert was raised for, and the other way round.

* **PROVENANCE_INVALID**: a file whose attestation does not hold: its subject is another file or another sha256
  than the index announces, or its signature does not verify. Judged per file.
* **PROVENANCE_LOST**: a release with a file that has no attestation, when each of the project's ``RECENT`` most
  recent earlier releases had every file attested. "Recent", not "all": a project that started attesting last
  month is judged on its habit since then, and one that stopped long ago is not alerted on for ever.
* **PROVENANCE_CHANGED**: a file attested by a publisher identity (kind, repository, workflow) none of those
  recent releases was attested by. Judged only on attestations that hold: one that does not is INVALID instead.

Releases are ordered by upload time (the order PyPI received them), then by version; a release without an upload
time sorts first, since it cannot be shown to be newer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from qwatch.events.kinds import K_PROVENANCE_CHANGED, K_PROVENANCE_INVALID, K_PROVENANCE_LOST

RECENT = 3
"""How many earlier releases make a project's habit."""


@dataclass(frozen=True, slots=True)
class FileView:
    """What drift needs of one file."""

    filename: str
    attested: bool
    identities: frozenset[str]
    invalid: str = ""
    """Why the attestation does not hold; empty when it holds (or there is none)."""
    upload_time: int | None = None


@dataclass(frozen=True, slots=True)
class ReleaseView:
    """What drift needs of one release."""

    version: str
    upload_time: int | None
    files: tuple[FileView, ...]

    @property
    def fully_attested(self) -> bool:
        """Every file attested (a release without files proves nothing either way and is never a habit)."""
        return bool(self.files) and all(f.attested for f in self.files)


@dataclass(frozen=True, slots=True)
class Drift:
    """One finding: its kind, the file or identity it is about (the key of its transition id), and why."""

    kind: str
    key: str
    detail: str


def _version_key(version: str) -> tuple[int, object]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def order_key(release: ReleaseView) -> tuple[int, int, tuple[int, object], str]:
    """Upload order, then version order."""
    up = release.upload_time
    return (0 if up is None else 1, up or 0, _version_key(release.version), release.version)


def as_of(releases: Iterable[ReleaseView], at: int | None) -> list[ReleaseView]:
    """The releases as they were at upload time ``at``: files uploaded later are left out (a wheel added to an
    older release after this one was published is no part of the habit this one broke). ``at`` None: all."""
    if at is None:
        return list(releases)
    return [
        ReleaseView(r.version, r.upload_time, tuple(f for f in r.files if f.upload_time is None or f.upload_time <= at))
        for r in releases
    ]


def habit(earlier: Iterable[ReleaseView]) -> tuple[ReleaseView, ...]:
    """The ``RECENT`` most recent releases with files among ``earlier``, newest last."""
    with_files = sorted((r for r in earlier if r.files), key=order_key)
    return tuple(with_files[-RECENT:])


def identities_of(releases: Iterable[ReleaseView]) -> frozenset[str]:
    """Every identity whose attestation held on these releases."""
    return frozenset(i for r in releases for f in r.files if f.attested and not f.invalid for i in f.identities)


def describe_identity(identity: str) -> str:
    """``GitHub|org/repo|release.yml`` → ``GitHub org/repo release.yml`` (for summaries)."""
    return " ".join(part for part in identity.split("|") if part)


def judge(earlier: Sequence[ReleaseView], release: ReleaseView, files: Iterable[str] | None = None) -> list[Drift]:
    """Drift of ``release`` (only of the files named in ``files``, default all) against ``earlier`` releases.

    Each file is judged against the habit as it was when that file was uploaded, so a verdict does not depend on
    whether the sdist and the wheels of a release were seen together or one pass apart."""
    names = {f.filename for f in release.files} if files is None else set(files)
    judged = [f for f in release.files if f.filename in names]
    found = [
        Drift(K_PROVENANCE_INVALID, f.filename, f"{f.filename}: {f.invalid}")
        for f in judged
        if f.attested and f.invalid
    ]
    others = [r for r in earlier if r.version != release.version]
    lost: list[str] = []
    changed: dict[str, tuple[ReleaseView, ...]] = {}
    context: tuple[ReleaseView, ...] = ()
    for f in judged:
        recent = habit(as_of(others, f.upload_time))
        if not recent:
            continue
        if not f.attested and all(r.fully_attested for r in recent):
            lost.append(f.filename)
            context = context or recent
        if f.attested and not f.invalid:
            before = identities_of(recent)
            for identity in sorted(f.identities - before) if before else ():
                changed.setdefault(identity, recent)
    if lost:
        found.append(Drift(K_PROVENANCE_LOST, "", f"no attestation for {', '.join(sorted(lost))}; {_was(context)}"))
    found.extend(
        Drift(K_PROVENANCE_CHANGED, identity, f"attested by {describe_identity(identity)}; {_was(recent)}")
        for identity, recent in sorted(changed.items())
    )
    return found


def _was(recent: Sequence[ReleaseView]) -> str:
    shown = ", ".join(sorted(describe_identity(i) for i in identities_of(recent))) or "none"
    return f"releases {', '.join(r.version for r in recent)} were attested by {shown}"
