"""The gate's pure policy core: (inventory, package facts, now, soak policy) → findings.

No I/O and no clock of its own, so every rule is a table-driven test. Exit codes follow from the result:
a definite violation (1) outranks "could not verify" (2), because the build must be fixed either way and the
findings say how; anything unverified with no violation is 2, never 0: the gate never passes what it could not
check.

Fail closed, as one rule in one place (``evaluate``): every input is either understood and judged, or it makes
its package unverified with the reason. An answer whose status the policy does not know, a lockfile entry the
parser could not classify or an include it could not read (``Inventory.unverified``), a package from an index
the gate does not check, a lockfile in which nothing could be checked: all unverified, never a pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from qwatch.ids import iso_ms
from qwatch.pypi.indexes import canonical_index_url, is_pypi_index
from qwatch.remediation import ADVICE, project_url, report_url
from subscribers.gate.facts import (
    INSTALLABLE,
    KNOWN_STATUSES,
    QUARANTINED,
    REMOVED,
    Answer,
    PackageFacts,
    ProvenanceAnswer,
    Unverified,
    vkey,
)
from subscribers.gate.soak import SoakPolicy, format_duration
from subscribers.gate.suppressions import Suppression, apply_suppressions
from subscribers.inventory.lockfiles import Inventory, LockedPackage

REASONS = {
    "quarantined": "Package quarantined on PyPI",
    "removed": "Package removed from PyPI",
    "malicious": "Package reported malicious for the locked version",
    "version-missing": "Pinned version no longer available",
    "soak-hold": "Version held by the soak window",
    "provenance-lost": "Pinned version lost the provenance of the project's recent releases",
    "provenance-changed": "Pinned version attested by another publisher than the project's recent releases",
    "provenance-invalid": "Pinned version carries an attestation that does not hold",
}
"""Finding reasons (the JSON ``reason`` and the SARIF rule ids) with their short descriptions."""

EXIT_CLEAN, EXIT_VIOLATION, EXIT_UNVERIFIED, EXIT_USAGE = 0, 1, 2, 3
"""0 clean; 1 violation; 2 cannot verify (fail closed); 3 usage error (bad flag, bad configuration): a mistake in
how the gate was called is never confused with "the index could not be asked"."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation for one locked package version."""

    package: str
    version: str | None
    reason: str
    path: tuple[str, ...]
    message: str
    origin: str
    held_until: int | None = None
    first_upload: int | None = None
    report_ids: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    """Where to read more (the report on osv.dev, the project on PyPI)."""


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A finding a suppression entry covers: kept visible in JSON and SARIF, not counted for the exit code."""

    finding: Finding
    by: Suppression


@dataclass(frozen=True, slots=True)
class Skipped:
    """A package not checked against PyPI facts because it does not come from PyPI."""

    package: str
    version: str | None
    source_kind: str
    source_url: str | None


@dataclass(frozen=True, slots=True)
class Notice:
    """Worth knowing, not a violation: yanked pins, archived projects, unpinned requirements."""

    package: str
    version: str | None
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class GateResult:
    """Everything the output formats need."""

    findings: tuple[Finding, ...]
    skipped: tuple[Skipped, ...]
    notices: tuple[Notice, ...]
    unverified: tuple[Unverified, ...]
    checked: int
    suppressed: tuple[Suppressed, ...] = ()
    expired: tuple[Suppression, ...] = ()
    """Suppression entries past their ``until``: they no longer suppress, and the report says so."""
    allow_empty: bool = False

    @property
    def empty(self) -> bool:
        """Nothing was checked (an empty or fully skipped lockfile), which is not the same as clean."""
        return self.checked == 0

    @property
    def exit_code(self) -> int:
        """0 clean, 1 violation, 2 cannot verify (including "nothing checked" without ``allow_empty``)."""
        if self.findings:
            return EXIT_VIOLATION
        if self.unverified or (self.empty and not self.allow_empty):
            return EXIT_UNVERIFIED
        return EXIT_CLEAN


@dataclass(frozen=True, slots=True)
class Sources:
    """Which indexes the gate checks: PyPI, and the index it asks (``--index-url``, e.g. a PyPI proxy); which
    other indexes the user accepts unchecked (``--allow-index``)."""

    index_url: str = "https://pypi.org/simple/"
    allowed_indexes: tuple[str, ...] = ()

    def checks(self, url: str | None) -> bool:
        """True for packages locked from an index whose answers the gate asks."""
        return url is None or is_pypi_index(url) or canonical_index_url(url) == canonical_index_url(self.index_url)

    def allows(self, url: str | None) -> bool:
        """True for an index the user accepted unchecked."""
        return url is not None and canonical_index_url(url) in {canonical_index_url(u) for u in self.allowed_indexes}


def split_sources(
    inventory: Inventory, sources: Sources | None = None
) -> tuple[list[LockedPackage], list[Skipped], list[Unverified]]:
    """PyPI packages to check, the ones PyPI facts do not apply to (git, paths, URLs, an accepted private index),
    and the ones the gate can neither check nor set aside: a package from an index it was not told about may be
    a PyPI package behind a proxy, so it is unverified until ``--index-url`` or ``--allow-index`` says which."""
    sources = sources or Sources()
    check: list[LockedPackage] = []
    skipped: list[Skipped] = []
    unverified: list[Unverified] = []
    for package in inventory.packages:
        kind, url = package.source.kind, package.source.url
        if kind == "pypi" or (kind == "index" and sources.checks(url)):
            check.append(package)
        elif kind == "index" and not sources.allows(url):
            unverified.append(
                Unverified(
                    package.normalized,
                    "other-index",
                    f"locked from {url}, an index the gate does not check: pass --index-url {url} to check it "
                    f"there (a PyPI proxy or mirror), or --allow-index {url} to accept its packages unchecked",
                )
            )
        elif kind != "project":
            skipped.append(Skipped(package.normalized, package.version, kind, url))
    return check, skipped, unverified


def dependency_path(inventory: Inventory, name: str) -> tuple[str, ...]:
    """Root … package; a package nothing reaches (a flat requirements file) is its own path."""
    path = inventory.path_to(name)
    return tuple(path) if path else (name,)


def understood(name: str, answer: Answer | None) -> Answer:
    """The answer if the policy can judge it, else why not: the one place where "not understood" becomes
    "unverified", whichever adapter the answer came from."""
    if answer is None:
        return Unverified(name, "no-answer", "no facts were fetched for this package")
    if isinstance(answer, PackageFacts) and answer.status not in KNOWN_STATUSES:
        return Unverified(
            name,
            "unknown-status",
            f"{answer.origin} gave the status {answer.status[:40]!r}, which the gate does not understand; it "
            "cannot judge the package, so it does not pass it",
        )
    return answer


def evaluate(
    inventory: Inventory,
    answers: Mapping[str, Answer],
    now_ms: int,
    soak: SoakPolicy,
    *,
    sources: Sources | None = None,
    suppressions: Iterable[Suppression] = (),
    allow_empty: bool = False,
    provenance: Mapping[tuple[str, str], ProvenanceAnswer] | None = None,
) -> GateResult:
    """Apply every rule to every PyPI-sourced locked package; with ``provenance`` (``--require-provenance``), every
    pin must also have a verdict there: drift is a finding, no verdict (or an unpinned package) is unverified."""
    check, skipped, not_checked = split_sources(inventory, sources)
    findings: dict[tuple[str, str | None, str], Finding] = {}
    notices: dict[tuple[str, str | None, str], Notice] = {}
    unverified: dict[str, Unverified] = {}
    for problem in inventory.unverified:
        unverified.setdefault(problem.subject, Unverified(problem.subject, problem.reason, problem.message))
    for u in not_checked:
        unverified.setdefault(u.package, u)
    for package in check:
        answer = understood(package.normalized, answers.get(package.normalized))
        if isinstance(answer, Unverified):
            unverified.setdefault(package.normalized, answer)
            continue
        path = dependency_path(inventory, package.normalized)
        found = _package_findings(package, answer, path, now_ms, soak, unverified)
        if provenance is not None:
            found += _provenance_findings(package, provenance, path, unverified)
        for finding in found:
            findings.setdefault((finding.package, finding.version, finding.reason), finding)
        for notice in _notices(package, answer):
            notices.setdefault((notice.package, notice.version, notice.kind), notice)
    kept, suppressed, expired = apply_suppressions(list(findings.values()), tuple(suppressions), now_ms)
    return GateResult(
        tuple(kept),
        tuple(skipped),
        tuple(notices.values()),
        tuple(unverified.values()),
        len({p.normalized for p in check}),
        tuple(Suppressed(f, by) for f, by in suppressed),
        expired,
        allow_empty,
    )


def _package_findings(
    package: LockedPackage,
    facts: PackageFacts,
    path: tuple[str, ...],
    now_ms: int,
    soak: SoakPolicy,
    unverified: dict[str, Unverified],
) -> list[Finding]:
    name, version, origin = package.normalized, package.version, facts.origin
    out: list[Finding] = []
    if facts.status == QUARANTINED:
        out.append(
            Finding(
                name,
                version,
                "quarantined",
                path,
                f"{name} is quarantined on PyPI: its files are withheld and installs fail; {ADVICE['quarantined']}",
                origin,
            )
        )
    elif facts.status == REMOVED:
        out.append(
            Finding(
                name,
                version,
                "removed",
                path,
                f"{name} is not on the index (removed, or never published there); {ADVICE['removed']}",
                origin,
            )
        )
    reports = tuple(dict.fromkeys(r.report_id for r in facts.reports if r.affects(version)))
    if reports:
        out.append(
            Finding(
                name,
                version,
                "malicious",
                path,
                f"{name} {version or '(unpinned)'} is reported malicious ({', '.join(reports)}): {ADVICE['malicious']}",
                origin,
                report_ids=reports,
                links=tuple(report_url(rid) for rid in reports),
            )
        )
    if facts.status not in INSTALLABLE or version is None:
        return out
    key = vkey(version)
    missing = _missing(facts, key)
    if missing:
        out.append(
            Finding(
                name,
                version,
                "version-missing",
                path,
                f"{name}=={version} {missing}; a fresh install of this lockfile fails: {ADVICE['version-missing']}",
                origin,
            )
        )
        return out
    window = soak.window_for(name)
    if window <= 0:
        return out
    uploaded = facts.first_upload.get(key)
    if uploaded is None:
        unverified.setdefault(
            name,
            Unverified(
                name,
                "no-upload-time",
                f"{name}=={version}: the index gave no upload time, so the soak window cannot be checked",
            ),
        )
        return out
    until = uploaded + window
    if until > now_ms:
        out.append(
            Finding(
                name,
                version,
                "soak-hold",
                path,
                f"{name}=={version} was first uploaded {iso_ms(uploaded)}; new versions of this widely "
                f"used package are held for {format_duration(window)}, until {iso_ms(until)} "
                f"({format_duration(until - now_ms)} from now); {ADVICE['soak-hold']}",
                origin,
                held_until=until,
                first_upload=uploaded,
            )
        )
    return out


_DRIFT_REASONS = {
    "PROVENANCE_LOST": "provenance-lost",
    "PROVENANCE_CHANGED": "provenance-changed",
    "PROVENANCE_INVALID": "provenance-invalid",
}


def _provenance_findings(
    package: LockedPackage,
    provenance: Mapping[tuple[str, str], ProvenanceAnswer],
    path: tuple[str, ...],
    unverified: dict[str, Unverified],
) -> list[Finding]:
    name, version = package.normalized, package.version
    if version is None:
        unverified.setdefault(
            name, Unverified(name, "provenance", f"{name} is not pinned: --require-provenance needs an exact version")
        )
        return []
    answer = provenance.get((name, version))
    if answer is None:
        answer = Unverified(name, "provenance", f"{name}=={version}: provenance was not looked up")
    if isinstance(answer, Unverified):
        unverified.setdefault(name, answer)
        return []
    return [
        Finding(
            name,
            version,
            _DRIFT_REASONS[d.kind],
            path,
            f"{name}=={version}: {d.detail} ({answer.signatures}); {ADVICE['provenance']}",
            "provenance",
            links=(project_url(name, version),),
        )
        for d in answer.drifts
    ]


def _missing(facts: PackageFacts, key: object) -> str | None:
    if key in facts.quarantined_versions:
        return "was quarantined on PyPI (release-level)"
    if key in facts.removed_versions:
        return "was removed from PyPI"
    if facts.versions is not None and key not in facts.versions:
        return "is not listed by the index (release removed, quarantined or never published)"
    return None


def _notices(package: LockedPackage, facts: PackageFacts) -> list[Notice]:
    name, version = package.normalized, package.version
    out: list[Notice] = []
    if facts.status in INSTALLABLE and facts.status != "active":
        out.append(Notice(name, version, facts.status, f"{name} is {facts.status} on PyPI: expect no fixes"))
    if version is None:
        out.append(Notice(name, None, "unpinned", f"{name} is not pinned; only package-level status was checked"))
    elif vkey(version) in facts.yanked:
        out.append(Notice(name, version, "yanked", f"{name}=={version} is yanked; installers still honour the pin"))
    return out
