"""What to do about a finding or an alert, and where to read more: one wording for the gate and the alerts.

The gate's findings (``subscribers.gate.policy``) and the alerts raised for registered inventories describe the same
conditions; a developer paged by an alert and one failed by the gate must be told the same thing. Pure strings,
no I/O, so both the policy table tests and the webhook payload tests read them from here.
"""

from __future__ import annotations

from urllib.parse import quote

ADVICE = {
    "quarantined": "remove or replace the dependency until PyPI clears it",
    "removed": "a new upload under this name could be anyone's: remove or replace the dependency",
    "malicious": "treat any environment that installed it as compromised",
    "version-missing": "re-lock to an available version",
    "soak-hold": "pin the previous version or wait",
    "provenance": "do not install it until the maintainers confirm the release: pin the previous version",
}
"""The gate's remediation per finding reason (the tail of each finding's message)."""

_KIND_ADVICE = {
    "QUARANTINED": ADVICE["quarantined"],
    "REMOVED": ADVICE["removed"],
    "RESTORED": "the name may now belong to someone else: check who publishes it before re-locking or upgrading",
    "REPORTED": ADVICE["malicious"],
    "REPORT_UPDATED": ADVICE["malicious"],
    "REPORT_ESCALATED": ADVICE["malicious"],
    "RELEASE_QUARANTINED": f"a fresh install of this lockfile fails: {ADVICE['version-missing']}",
    "RELEASE_REMOVED": f"a fresh install of this lockfile fails: {ADVICE['version-missing']}",
    "YANKED": "installers still honour the pin, but re-lock to a version that is not yanked when you can",
    "ARCHIVED": "expect no fixes: plan to replace the dependency",
    "CLEARED": "no action needed: PyPI cleared it (undo any emergency pin or removal made for it)",
    "RELEASE_CLEARED": "no action needed: PyPI cleared the release (undo any emergency pin made for it)",
    "REPORT_WITHDRAWN": "no action needed: the report was withdrawn as a false positive",
    "UNARCHIVED": "no action needed: the project is maintained again",
    "PROVENANCE_LOST": f"it may have been published with a stolen token: {ADVICE['provenance']}",
    "PROVENANCE_CHANGED": f"it was built somewhere new (a hijack, or a moved repository): {ADVICE['provenance']}",
    "PROVENANCE_INVALID": f"its attestation does not match the file: {ADVICE['provenance']}",
}

PYPI_PROJECT = "https://pypi.org/project/"
OSV_VULNERABILITY = "https://osv.dev/vulnerability/"


def for_kind(kind: str) -> str:
    """The remediation sentence for a transition kind (an unknown kind still gets a sentence, never nothing)."""
    return _KIND_ADVICE.get(kind, "check the package's status on PyPI before the next install")


def remediation(kind: str, package: str, version: str | None) -> str:
    """One sentence a paged developer can act on: what happened to which pin, then what to do."""
    pin = f"{package}=={version}" if version else package
    return f"{pin}: {for_kind(kind)}."


def project_url(package: str, version: str | None = None) -> str:
    """The PyPI project (or release) page."""
    tail = f"{quote(version, safe='')}/" if version else ""
    return f"{PYPI_PROJECT}{quote(package, safe='')}/{tail}"


def report_url(report_id: str) -> str:
    """The report on osv.dev (``MAL-…`` ids are published there)."""
    return f"{OSV_VULNERABILITY}{quote(report_id, safe='')}"


def links(package: str, version: str | None, report_id: str | None) -> tuple[str, ...]:
    """Where to read more: the project page, the release page when one version is concerned, the osv.dev report."""
    out = [project_url(package)]
    if version:
        out.append(project_url(package, version))
    if report_id:
        out.append(report_url(report_id))
    return tuple(out)
