"""The gate's pure policy core: (inventory, package facts, now, soak policy) → findings.

No I/O and no clock of its own, so every rule is a table-driven test. Exit codes follow from the result:
a definite violation (1) outranks "could not verify" (2), because the build must be fixed either way and the
findings say how; anything unverified with no violation is 2, never 0: the gate never passes what it could not
check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qwatch.ids import iso_ms
from subscribers.facts import INSTALLABLE, QUARANTINED, REMOVED, Answer, PackageFacts, Unverified, vkey
from subscribers.lockfiles import Inventory, LockedPackage
from subscribers.soak import SoakPolicy, format_duration

REASONS = {
    "quarantined": "Package quarantined on PyPI",
    "removed": "Package removed from PyPI",
    "malicious": "Package reported malicious for the locked version",
    "version-missing": "Pinned version no longer available",
    "soak-hold": "Version held by the soak window",
}
"""Finding reasons (the JSON ``reason`` and the SARIF rule ids) with their short descriptions."""

EXIT_CLEAN, EXIT_VIOLATION, EXIT_UNVERIFIED = 0, 1, 2


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

    @property
    def exit_code(self) -> int:
        """0 clean, 1 violation, 2 cannot verify."""
        if self.findings:
            return EXIT_VIOLATION
        return EXIT_UNVERIFIED if self.unverified else EXIT_CLEAN


def split_sources(inventory: Inventory) -> tuple[list[LockedPackage], list[Skipped]]:
    """PyPI packages to check, and the rest: a private-index or git package must never match PyPI facts."""
    check: list[LockedPackage] = []
    skipped: list[Skipped] = []
    for package in inventory.packages:
        if package.source.kind == "pypi":
            check.append(package)
        elif package.source.kind != "project":
            skipped.append(Skipped(package.normalized, package.version, package.source.kind, package.source.url))
    return check, skipped


def dependency_path(inventory: Inventory, name: str) -> tuple[str, ...]:
    """Root … package; a package nothing reaches (a flat requirements file) is its own path."""
    path = inventory.path_to(name)
    return tuple(path) if path else (name,)


def evaluate(inventory: Inventory, answers: Mapping[str, Answer], now_ms: int, soak: SoakPolicy) -> GateResult:
    """Apply every rule to every PyPI-sourced locked package."""
    check, skipped = split_sources(inventory)
    findings: dict[tuple[str, str | None, str], Finding] = {}
    notices: dict[tuple[str, str | None, str], Notice] = {}
    unverified: dict[str, Unverified] = {}
    for package in check:
        answer = answers.get(package.normalized)
        if answer is None:
            answer = Unverified(package.normalized, "no-answer", "no facts were fetched for this package")
        if isinstance(answer, Unverified):
            unverified.setdefault(package.normalized, answer)
            continue
        path = dependency_path(inventory, package.normalized)
        for finding in _package_findings(package, answer, path, now_ms, soak, unverified):
            findings.setdefault((finding.package, finding.version, finding.reason), finding)
        for notice in _notices(package, answer):
            notices.setdefault((notice.package, notice.version, notice.kind), notice)
    return GateResult(
        tuple(findings.values()),
        tuple(skipped),
        tuple(notices.values()),
        tuple(unverified.values()),
        len({p.normalized for p in check}),
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
                f"{name} is quarantined on PyPI: its files are withheld and installs fail; remove or "
                "replace the dependency until PyPI clears it",
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
                f"{name} is not on the index (removed, or never published there); a new upload "
                "under this name could be anyone's: remove or replace the dependency",
                origin,
            )
        )
    reports = tuple(r.report_id for r in facts.reports if r.affects(version))
    if reports:
        out.append(
            Finding(
                name,
                version,
                "malicious",
                path,
                f"{name} {version or '(unpinned)'} is reported malicious ({', '.join(reports)}): treat "
                "any environment that installed it as compromised",
                origin,
                report_ids=reports,
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
                f"{name}=={version} {missing}; a fresh install of this lockfile fails: re-lock to an available version",
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
                f"({format_duration(until - now_ms)} from now); pin the previous version or wait",
                origin,
                held_until=until,
                first_upload=uploaded,
            )
        )
    return out


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
