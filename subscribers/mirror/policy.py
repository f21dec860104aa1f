"""The enforcers' policy file (TOML): which kinds act, per-package exceptions, what a bare report does.

```toml
act_on = ["QUARANTINED", "REMOVED", "RELEASE_QUARANTINED", "RELEASE_REMOVED", "REPORTED"]   # the default
reported = "versions"    # a report with no PyPI verdict: hide the versions it affects (default),
                         # "project" (the whole project) or "ignore"
[[allow]]                # keep serving this (a reviewed false positive, an internal fork...)
package = "example"
reason = "reviewed 2026-11-02: false positive, PyPI cleared it"
versions = ["1.2.0"]     # optional: only these versions (default: the whole project)
reports = ["MAL-2026-1"] # optional: only against these reports (default: every reason)
```

Clearing kinds (CLEARED, RESTORED, RELEASE_CLEARED, REPORT_WITHDRAWN) always lift what they end: a policy
cannot keep something hidden after its reason is gone, only decide what hides it in the first place.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from subscribers.mirror.plan import HIDING_KINDS, Allow, Policy, safe_name


def parse_policy(doc: dict[str, Any], where: str = "policy") -> Policy:
    """A ``Policy`` from a parsed TOML document; ValueError naming the bad key otherwise."""
    unknown = set(doc) - {"act_on", "reported", "allow"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (expected act_on, reported, allow)")
    act_on = doc.get("act_on", sorted(HIDING_KINDS))
    if not isinstance(act_on, list) or not all(isinstance(k, str) for k in act_on):
        raise ValueError(f"{where}: act_on must be a list of kinds")
    allows: list[Allow] = []
    for i, entry in enumerate(doc.get("allow", [])):
        if not isinstance(entry, dict) or not isinstance(entry.get("package"), str):
            raise ValueError(f'{where}: allow[{i}] needs package = "name"')
        name = safe_name(entry["package"])
        if name is None:
            raise ValueError(f"{where}: allow[{i}]: {entry['package']!r} is not a project name")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"{where}: allow[{i}] ({name}) needs a reason")
        extra = set(entry) - {"package", "reason", "versions", "reports"}
        if extra:
            raise ValueError(f"{where}: allow[{i}]: unknown keys {sorted(extra)}")
        allows.append(
            Allow(
                name,
                reason,
                frozenset(map(str, entry.get("versions", []))),
                frozenset(map(str, entry.get("reports", []))),
            )
        )
    return Policy(frozenset(act_on), str(doc.get("reported", "versions")), tuple(allows))


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path`` (the default policy when ``None``)."""
    if path is None:
        return Policy()
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"policy {path}: {exc}") from exc
    return parse_policy(doc, str(path))
