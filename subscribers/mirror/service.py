"""The enforcer without Kafka: transitions in, mirror actions out, with the state and audit that make it safe.

Order of durability for one batch: the actions are applied to the mirror, then the holds and the ids applied are
saved (one atomic rename), then the caller commits its input offsets. A crash in between replays the batch: ids not
yet saved are planned again from the old holds, and every adapter action is idempotent, so the mirror ends the same.
Ids already saved are skipped before planning, which is what makes a no-op replay of a long log cheap.

A transition that is malformed or of an unknown kind changes nothing: it is returned as a dead letter with the
reason, and recorded in the audit log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from qwatch import events
from qwatch.deadletters import dead_letter
from qwatch.ids import iso_ms, now_ms
from subscribers.mirror.fsutil import read_json, write_json
from subscribers.mirror.plan import Action, Decision, Holds, Policy, decide, diff, effective, normalize, plan_purge

logger = logging.getLogger(__name__)

Scope = tuple[frozenset[str], bool]


class Adapter(Protocol):
    """A mirror the enforcer can change: bandersnatch's tree, a devpi index."""

    def apply(self, action: Action) -> Any:
        """Carry out one action idempotently; returns something with ``note`` (for the audit)."""

    def serves(self, name: str) -> bool:
        """True if the mirror currently serves the project (reconcile re-hides what reappeared)."""


@dataclass
class MirrorState:
    """Holds per project and the transition ids already applied, saved as one JSON document."""

    holds: dict[str, Holds] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> MirrorState:
        """Read the saved state (empty when none)."""
        doc = read_json(path, {})
        holds = {
            name: Holds(
                frozenset(h.get("project", [])),
                {v: frozenset(r) for v, r in h.get("versions", {}).items()},
                h.get("removed_at"),
                bool(h.get("purged", False)),
            )
            for name, h in doc.get("holds", {}).items()
        }
        return cls(holds, set(doc.get("applied", [])))

    def save(self, path: Path) -> None:
        """Atomic write of the whole state."""
        write_json(
            path,
            {
                "holds": {
                    name: {
                        "project": sorted(h.project),
                        "versions": {v: sorted(r) for v, r in sorted(h.versions.items())},
                        "removed_at": h.removed_at,
                        "purged": h.purged,
                    }
                    for name, h in sorted(self.holds.items())
                    if not h.empty or h.removed_at is not None
                },
                "applied": sorted(self.applied),
            },
            durable=True,
        )


@dataclass(frozen=True, slots=True)
class Rejected:
    """A transition the enforcer refused, with why (the caller dead-letters it)."""

    transition: object
    reason: str


class AuditLog:
    """Append-only JSONL: one line per action (or refusal) with the transition id and its evidence."""

    def __init__(self, path: Path | None, echo: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.echo = echo

    def write(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append and fsync-free flush (the state file, not the audit, is what replays rely on)."""
        lines = [json.dumps(dict(r), sort_keys=True, separators=(",", ":")) + "\n" for r in records]
        if not lines:
            return
        if self.echo is not None:
            for line in lines:
                self.echo(line.rstrip("\n"))
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write("".join(lines))


def _evidence(t: events.Transition) -> list[dict[str, Any]]:
    return [{"observation_id": e.observation_id, "source": e.source, "observed_at": e.observed_at} for e in t.evidence]


class Enforcer:
    """Plans and applies; the Kafka or JSONL loop feeds it batches."""

    def __init__(
        self,
        adapter: Adapter,
        policy: Policy,
        state_path: Path | None,
        audit: AuditLog,
        *,
        mirror: str,
        purge_after_s: float = 7 * 86400,
        dry_run: bool = False,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.adapter = adapter
        self.policy = policy
        self.state_path = state_path
        self.state = MirrorState.load(state_path) if state_path is not None else MirrorState()
        self.audit = audit
        self.mirror = mirror
        self.purge_after_ms = int(purge_after_s * 1000)
        self.dry_run = dry_run
        self.clock = clock
        self.scopes: dict[tuple[str, str], Scope] = {}
        self.replayed = 0

    def on_state(self, record: events.PackageStateRecord) -> None:
        """Learn each report's affected versions (transitions carry only the report id)."""
        name = normalize(record.package)
        for r in record.reports:
            self.scopes[(name, r.report_id)] = (frozenset(r.affected_versions), bool(r.all_versions))

    def handle(self, transitions: Iterable[object]) -> list[Rejected]:
        """Apply a batch; returns the rejected ones. Saves state once, after every action of the batch."""
        rejected: list[Rejected] = []
        audit: list[dict[str, Any]] = []
        now = self.clock()
        changed = False
        for t in transitions:
            if isinstance(t, events.Transition) and t.event_id in self.state.applied:
                self.replayed += 1
                continue
            name = normalize(t.package) if isinstance(t, events.Transition) and isinstance(t.package, str) else ""
            holds = self.state.holds.get(name, Holds())
            scope = self.scopes.get((name, t.report_id or "")) if isinstance(t, events.Transition) else None
            decision = decide(t, holds, self.policy, scope)
            if decision.rejected is not None:
                rejected.append(Rejected(t, decision.rejected))
                audit.append(self._record(t, None, now, rejected=decision.rejected))
                continue
            assert isinstance(t, events.Transition)  # noqa: S101 - decide() rejects anything else
            audit.extend(self._apply(decision, t, now))
            self.state.holds[decision.package] = decision.holds  # in memory also in a dry run: the plan of the
            self.state.applied.add(t.event_id)  # next transition starts from this one's holds (nothing is saved)
            changed = True
        audit.extend(self._maintain(now))
        if changed and not self.dry_run and self.state_path is not None:
            self.state.save(self.state_path)
        self.audit.write(audit)
        return rejected

    def reconcile(self) -> None:
        """Re-hide held projects that reappeared, purge what is due (run on every poll, even with no input)."""
        records = self._maintain(self.clock())
        if records and not self.dry_run and self.state_path is not None:
            self.state.save(self.state_path)
        self.audit.write(records)

    def _apply(self, decision: Decision, t: events.Transition | None, now: int) -> list[dict[str, Any]]:
        records = []
        for action in decision.actions:
            note = "dry run: not applied"
            if not self.dry_run and action.op != "keep":
                note = str(getattr(self.adapter.apply(action), "note", ""))
            records.append(self._record(t, action, now, note=note))
            if action.op != "keep":
                logger.info(
                    "mirror %s: %s %s %s (%s)", self.mirror, action.op, action.package, action.versions, action.why
                )
        return records

    def _maintain(self, now: int) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for name, holds in list(self.state.holds.items()):
            hidden, _ = effective(name, holds, self.policy)
            if hidden and not holds.purged and self.adapter.serves(name):
                action = Action("hide_project", name, why="reappeared on the mirror (re-sync) while held")
                records.extend(self._apply(Decision(name, (action,), holds), None, now))
            purge = plan_purge(name, holds, now, self.purge_after_ms)
            if purge is not None:
                records.extend(self._apply(Decision(name, (purge,), holds), None, now))
                if not self.dry_run:
                    self.state.holds[name] = replace(holds, purged=True)
        return records

    def _record(
        self,
        t: object,
        action: Action | None,
        now: int,
        *,
        note: str = "",
        rejected: str | None = None,
    ) -> dict[str, Any]:
        tr = t if isinstance(t, events.Transition) else None
        package = action.package if action else (getattr(t, "package", None) if tr is not None else None)
        return {
            "at": iso_ms(now),
            "mirror": self.mirror,
            "transition_id": tr.event_id if tr is not None else None,
            "kind": tr.kind if tr is not None else None,
            "package": package,
            "op": "rejected" if rejected else (action.op if action else None),
            "versions": list(action.versions) if action else [],
            "why": rejected or (action.why if action else ""),
            "result": note,
            "evidence": _evidence(tr) if tr is not None else [],
            "dry_run": self.dry_run,
        }


def deadletter(source: str, item: Rejected, pointer: str, clock: Callable[[], int] = now_ms) -> events.DeadLetter:
    """The DeadLetter for a refused transition (id from the transition id or the pointer: replays dedupe)."""
    t = item.transition
    key = t.event_id if isinstance(t, events.Transition) and t.event_id else pointer
    payload: str | None
    try:
        payload = json.dumps(t, default=lambda o: getattr(o, "__dict__", str(o)))[:4096] if t is not None else None
    except (TypeError, ValueError):
        payload = None
    return dead_letter(
        source=source,
        reason="invalid-transition",
        error=item.reason,
        pointer=pointer,
        observed_at=clock(),
        payload=payload,
        ecosystem=str(getattr(t, "ecosystem", "") or ""),
        package=str(getattr(t, "package", "") or ""),
        key=key,
    )


__all__ = ["Adapter", "AuditLog", "Enforcer", "MirrorState", "Rejected", "deadletter", "diff"]
