"""Facts from the processor, for the gate's broker mode: the state topic first, the transitions topic as fallback.

``qwatch.state.v1`` (compacted ``PackageStateRecord``) knows a report's affected versions, so the gate can be
version-aware about OpenSSF reports; ``qwatch.transitions.v1``'s latest ``after`` per package is always there
(even before a processor writes state) but only names report ids, which the policy then treats as affecting
every version. A package the processor never saw is simply absent: the gate asks PyPI about it directly.
"""

from __future__ import annotations

from collections.abc import Iterable

from qwatch import events
from qwatch.config import KafkaConfig
from qwatch.events.codec import Codec
from qwatch.events.topics import STATE, TRANSITIONS
from subscribers.gate.facts import PackageFacts, ReportFact, vkeys

ORIGIN = "processor"
PYPI = "PyPI"


def from_state(records: Iterable[events.PackageStateRecord]) -> dict[str, PackageFacts]:
    """Latest record per PyPI package the processor knows something about: its status, or a live report (status
    ``unknown`` then: no PyPI source has shown the package yet, and the gate asks the index and keeps the report)."""
    out: dict[str, PackageFacts] = {}
    for rec in records:
        if rec.ecosystem != PYPI:
            continue
        live = tuple(
            ReportFact(r.report_id, r.affected_versions, r.all_versions) for r in rec.reports if r.status == "live"
        )
        if rec.status == "unknown" and not live:
            continue  # nothing known: the gate asks the index
        visible = vkeys(rec.visible_versions) if rec.visible_serial is not None else None
        out[rec.package] = PackageFacts(
            rec.package,
            rec.status,
            visible,
            ORIGIN,
            yanked=vkeys(r.version for r in rec.releases if r.yanked),
            quarantined_versions=vkeys(r.version for r in rec.releases if r.quarantined),
            removed_versions=vkeys(r.version for r in rec.releases if r.removed),
            reports=live,
        )
    return out


def from_transitions(transitions: Iterable[events.Transition]) -> dict[str, PackageFacts]:
    """Latest ``after`` per PyPI package, in topic order (one partition per package keeps them ordered)."""
    latest: dict[str, events.Transition] = {}
    for t in transitions:
        if t.ecosystem == PYPI:
            latest[t.package] = t
    out: dict[str, PackageFacts] = {}
    for name, t in latest.items():
        after = t.after
        if after.status == "unknown" and not after.live_reports:
            continue
        out[name] = PackageFacts(
            name,
            after.status,
            None,
            ORIGIN,
            yanked=vkeys(after.yanked_versions),
            quarantined_versions=vkeys(after.quarantined_versions),
            removed_versions=vkeys(after.removed_versions),
            reports=tuple(ReportFact(r, known=False) for r in after.live_reports),
        )
    return out


def load(cfg: KafkaConfig, codec: Codec, timeout: float = 30.0) -> dict[str, PackageFacts]:
    """Read both topics to their current end (read_committed); state wins where both know a package."""
    from qwatch.kafka.clients import KafkaClients
    from qwatch.kafka.io import read_topic

    clients = KafkaClients(cfg)

    state = [
        d.event for d in read_topic(clients, codec, STATE, timeout) if isinstance(d.event, events.PackageStateRecord)
    ]
    trans = [
        d.event for d in read_topic(clients, codec, TRANSITIONS, timeout) if isinstance(d.event, events.Transition)
    ]
    merged = from_transitions(trans)
    merged.update(from_state(state))
    return merged
