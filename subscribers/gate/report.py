"""The gate's three outputs: text for people, JSON for scripts (the stable contract), SARIF for code scanning.

Pure functions of the result, so each format is tested without running a gate. JSON keeps ``findings`` with
``package``, ``version``, ``reason`` and ``path`` (root … package) stable; other keys may grow.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwatch import __version__
from qwatch.ids import iso_ms
from qwatch.logs import safe
from subscribers.gate.policy import EXIT_CLEAN, EXIT_VIOLATION, REASONS, Finding, GateResult
from subscribers.gate.soak import SoakPolicy, format_duration

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/quarantine-watch/quarantine-watch"
UNVERIFIED_RULE = "cannot-verify"
RESULTS = {EXIT_CLEAN: "clean", EXIT_VIOLATION: "violation"}
ADVICE = {
    EXIT_CLEAN: "every PyPI package in the lockfile was checked and passes",
    EXIT_VIOLATION: "fix the findings above (re-lock, pin another version, or remove the dependency)",
    2: "retry, or point --index-url at a reachable mirror; the gate never passes what it could not check",
}


EMPTY_ADVICE = (
    "no PyPI package was checked (an empty lockfile, or everything in it skipped): pass --allow-empty if that "
    "is expected"
)


@dataclass(frozen=True, slots=True)
class GateContext:
    """What was checked, against what, and when: the report's header."""

    lockfile: str
    lock_format: str
    index_url: str
    facts: str
    now_ms: int
    soak: SoakPolicy


def to_json(result: GateResult, ctx: GateContext) -> dict[str, Any]:
    """The JSON document (contract: ``findings[].package/version/reason/path``)."""
    code = result.exit_code
    return {
        "tool": "qwatch gate",
        "tool_version": __version__,
        "lockfile": ctx.lockfile,
        "format": ctx.lock_format,
        "index_url": ctx.index_url,
        "facts": ctx.facts,
        "checked_at": iso_ms(ctx.now_ms),
        "exit_code": code,
        "result": RESULTS.get(code, "unverified"),
        "message": EMPTY_ADVICE if result.empty and code == 2 and not result.unverified else ADVICE[code],
        "findings": [_finding(f) for f in result.findings],
        "suppressed": [
            {
                **_finding(x.finding),
                "suppression": {
                    "reason": x.by.reason,
                    "until": iso_ms(x.by.until_ms),
                    "declared_in": x.by.declared_in,
                },
            }
            for x in result.suppressed
        ],
        "expired_suppressions": [
            {"entry": e.label(), "reason": e.reason, "until": iso_ms(e.until_ms), "declared_in": e.declared_in}
            for e in result.expired
        ],
        "unverified": [{"package": u.package, "reason": u.reason, "message": u.message} for u in result.unverified],
        "skipped": [
            {
                "package": s.package,
                "version": s.version,
                "source_kind": s.source_kind,
                "source_url": s.source_url,
                "reason": "not from PyPI: PyPI facts do not apply",
            }
            for s in result.skipped
        ],
        "notices": [
            {"package": n.package, "version": n.version, "kind": n.kind, "message": n.message} for n in result.notices
        ],
        "soak": {
            "window": format_duration(ctx.soak.window_ms),
            "other_window": format_duration(ctx.soak.other_ms),
            "listed_packages": len(ctx.soak.listed),
        },
        "counts": {
            "checked": result.checked,
            "findings": len(result.findings),
            "suppressed": len(result.suppressed),
            "unverified": len(result.unverified),
            "skipped": len(result.skipped),
        },
    }


def _finding(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "package": f.package,
        "version": f.version,
        "reason": f.reason,
        "path": list(f.path),
        "message": f.message,
        "source": f.origin,
    }
    if f.held_until is not None:
        out["held_until"] = iso_ms(f.held_until)
        out["first_upload"] = iso_ms(f.first_upload)
        out["held_until_ms"] = f.held_until
    if f.report_ids:
        out["report_ids"] = list(f.report_ids)
    if f.links:
        out["links"] = list(f.links)
    return out


def to_text(result: GateResult, ctx: GateContext) -> str:
    """Readable lines: one block per finding, then what to do."""
    lines = [f"qwatch gate: {safe(ctx.lockfile)} ({ctx.lock_format}) against {safe(ctx.index_url)} [{ctx.facts}]"]
    for f in result.findings:
        pin = f"=={safe(f.version)}" if f.version else ""
        lines.append(f"  FAIL {f.reason:<16} {safe(f.package)}{pin}   path: {safe(' > '.join(f.path), 400)}")
        lines.append(f"       {safe(f.message, 500)}")
        lines.extend(f"       see {safe(link, 200)}" for link in f.links)
    lines.extend(f"  ???? {u.reason:<16} {safe(u.package)}   {safe(u.message, 400)}" for u in result.unverified)
    for x in result.suppressed:
        pin = f"=={safe(x.finding.version)}" if x.finding.version else ""
        lines.append(
            f"  skip {x.finding.reason:<16} {safe(x.finding.package)}{pin}   suppressed until "
            f"{iso_ms(x.by.until_ms)[:10]}: {safe(x.by.reason, 300)}"
        )
    lines.extend(
        f"  note expired-suppression {safe(e.label())}   expired {iso_ms(e.until_ms)[:10]} ({safe(e.declared_in)}): "
        "it no longer suppresses"
        for e in result.expired
    )
    lines.extend(f"  note {n.kind:<16} {safe(n.package)}   {safe(n.message, 300)}" for n in result.notices)
    if result.skipped:
        lines.append(f"  skipped {len(result.skipped)} package(s) not from PyPI (git, path, URL or another index)")
    code = result.exit_code
    advice = ADVICE[code]
    if result.empty and code != EXIT_VIOLATION:
        advice = EMPTY_ADVICE if not result.allow_empty else "nothing to check (--allow-empty)"
    lines.append(
        f"{RESULTS.get(code, 'cannot verify').upper()}: {len(result.findings)} finding(s), "
        f"{len(result.unverified)} unverified, {len(result.suppressed)} suppressed, {result.checked} checked; "
        f"{advice} (exit {code})"
    )
    return "\n".join(lines) + "\n"


def to_sarif(result: GateResult, ctx: GateContext, lock_text: str) -> dict[str, Any]:
    """SARIF 2.1.0: one rule per reason, results located in the lockfile at the package's entry."""
    rule_ids = [*REASONS, UNVERIFIED_RULE]
    rules = [
        {
            "id": rid,
            "name": "".join(part.capitalize() for part in rid.split("-")),
            "shortDescription": {"text": REASONS.get(rid, "Package could not be verified")},
            "fullDescription": {"text": REASONS.get(rid, "The index could not be asked or gave unusable answers")},
            "helpUri": INFO_URI,
            "defaultConfiguration": {"level": "error"},
            "properties": {"tags": ["security", "supply-chain"], "security-severity": _severity(rid)},
        }
        for rid in rule_ids
    ]
    uri = repo_relative(Path(ctx.lockfile))

    def finding(f: Finding, key: str) -> dict[str, Any]:
        text = f"{f.message} (path: {' > '.join(f.path)})"
        return _sarif_result(f.reason, rule_ids.index(f.reason), text, uri, _line_of(lock_text, f.package), key)

    results = [finding(f, f"{f.package}|{f.version}|{f.reason}") for f in result.findings]
    results += [
        _sarif_result(
            UNVERIFIED_RULE,
            rule_ids.index(UNVERIFIED_RULE),
            f"{u.package}: {u.message}",
            uri,
            _line_of(lock_text, u.package),
            f"{u.package}|unverified|{u.reason}",
        )
        for u in result.unverified
    ]
    for x in result.suppressed:
        f = x.finding
        item = finding(f, f"{f.package}|{f.version}|{f.reason}|{','.join(f.report_ids)}")
        item["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f"{x.by.reason} (until {iso_ms(x.by.until_ms)[:10]}, {x.by.declared_in})",
            }
        ]
        results.append(item)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "qwatch-gate",
                        "version": __version__,
                        "informationUri": INFO_URI,
                        "rules": rules,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": result.exit_code != 2,
                        "exitCode": result.exit_code,
                        "endTimeUtc": iso_ms(ctx.now_ms),
                    }
                ],
                "originalUriBaseIds": {"SRCROOT": {"description": {"text": "the repository root"}}},
                "artifacts": [{"location": {"uri": uri, "uriBaseId": "SRCROOT"}}],
                "results": results,
            }
        ],
    }


def _severity(rule: str) -> str:
    return {"malicious": "9.8", "quarantined": "9.0", "removed": "7.5", "version-missing": "7.0"}.get(rule, "5.0")


def _sarif_result(rule: str, index: int, text: str, uri: str, line: int, key: str) -> dict[str, Any]:
    return {
        "ruleId": rule,
        "ruleIndex": index,
        "level": "error",
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": uri, "uriBaseId": "SRCROOT"},
                    "region": {"startLine": line},
                }
            }
        ],
        "partialFingerprints": {"qwatchFinding/v1": hashlib.sha256(key.encode()).hexdigest()[:32]},
    }


def _line_of(text: str, package: str) -> int:
    """1-based line of the package's own entry, else its first mention, else 1.

    Tried in order: a TOML record (``name = "x"``), a JSON key (``"x": {``), a requirement line (``x==1.0``).
    """
    name = "[-_.]+".join(re.escape(part) for part in package.split("-"))
    patterns = (
        rf'^\s*name\s*=\s*"{name}"\s*$',
        rf'^\s*"{name}"\s*:',
        rf"^{name}\s*(?:\[|===?|~=|>=|<=|!=|<|>|;|@|\\|$)",
        rf"(?<![\w.-]){name}(?![\w-])",
    )
    lines = text.splitlines()
    for pattern in patterns:
        compiled = re.compile(pattern, re.IGNORECASE)
        for number, line in enumerate(lines, 1):
            if compiled.search(line):
                return number
    return 1


def repo_relative(lockfile: Path) -> str:
    """The lockfile's path relative to its repository root (the nearest parent with ``.git``), as code scanning
    expects; relative to the working directory outside a repository; as given when neither applies."""
    path = lockfile.resolve()
    for parent in path.parents:
        if (parent / ".git").exists():
            return path.relative_to(parent).as_posix()
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return lockfile.as_posix()


def dumps(document: dict[str, Any]) -> str:
    """Stable, readable JSON."""
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
