"""The topics of quarantine-watch, their configs, and which topic each event type travels on.

Keys are ``<ecosystem>:<normalized name>`` wherever a package applies, so one package's events stay in order on
one partition and the processor can scale out as a consumer group with state partitioned like its input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qwatch import events

OBSERVATIONS = "qwatch.observations.v1"
TRANSITIONS = "qwatch.transitions.v1"
STATE = "qwatch.state.v1"
CURSORS = "qwatch.cursors.v1"
DEADLETTER = "qwatch.deadletter.v1"
WATCH = "qwatch.watch.v1"
INVENTORY = "qwatch.inventory.v1"
ALERTS = "qwatch.alerts.v1"

PACKAGE_PARTITIONS = 6
"""Partitions of every package-keyed topic; equal counts keep the processor's state co-partitioned with its input."""

_WEEK_MS = 7 * 24 * 3600 * 1000
_COMPACT = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": str(3600 * 1000)}


@dataclass(frozen=True)
class TopicSpec:
    """A topic as ``qwatch topics create`` makes it; configs are Kafka topic-level settings."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    doc: str = ""


ALL_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(OBSERVATIONS, PACKAGE_PARTITIONS, {"retention.ms": str(4 * _WEEK_MS)}, "what ingestors saw upstream"),
    TopicSpec(
        TRANSITIONS,
        PACKAGE_PARTITIONS,
        {"retention.ms": str(52 * _WEEK_MS)},
        "real state changes, exactly once",
    ),
    TopicSpec(STATE, PACKAGE_PARTITIONS, dict(_COMPACT), "processor state per package (compacted)"),
    TopicSpec(CURSORS, 1, dict(_COMPACT), "ingestor cursors (compacted)"),
    TopicSpec(DEADLETTER, 1, {"retention.ms": str(4 * _WEEK_MS)}, "bad input with the reason"),
    TopicSpec(WATCH, PACKAGE_PARTITIONS, {"retention.ms": str(_WEEK_MS)}, "check-this-package-now requests"),
    TopicSpec(INVENTORY, 1, dict(_COMPACT), "registered lockfiles (compacted)"),
    TopicSpec(ALERTS, PACKAGE_PARTITIONS, {"retention.ms": str(52 * _WEEK_MS)}, "transitions matched to inventories"),
)

SHORT_NAMES = {spec.name.split(".")[1]: spec.name for spec in ALL_TOPICS}
"""``observations`` → ``qwatch.observations.v1``, for CLI flags such as ``qwatch tail --topic alerts``."""

_ROUTES: dict[type, str] = {
    events.ReportObserved: OBSERVATIONS,
    events.ProjectStatusObserved: OBSERVATIONS,
    events.IndexMembershipObserved: OBSERVATIONS,
    events.JournalEntryObserved: OBSERVATIONS,
    events.ReleasesObserved: OBSERVATIONS,
    events.ProvenanceObserved: OBSERVATIONS,
    events.WatchRequest: WATCH,
    events.DeadLetter: DEADLETTER,
    events.Cursor: CURSORS,
    events.Transition: TRANSITIONS,
    events.PackageStateRecord: STATE,
    events.InventoryRecord: INVENTORY,
    events.Alert: ALERTS,
}


def route(event: object) -> str:
    """The topic an event belongs on, by type; an unrouted type is a programming error."""
    try:
        return _ROUTES[type(event)]
    except KeyError:
        raise LookupError(f"no topic for {type(event).__name__}; add it to qwatch.events.topics") from None


def resolve(name: str) -> str:
    """Accept a short name (``alerts``) or a full topic name."""
    return SHORT_NAMES.get(name, name)


def key_of(event: object) -> bytes:
    """The Kafka key: ``ecosystem:package`` when the event names a package, else the source or component."""
    eco = getattr(event, "ecosystem", "")
    pkg = getattr(event, "package", "")
    if pkg:
        return f"{eco}:{pkg}".encode()
    fallback = getattr(event, "component", None) or getattr(event, "source", "") or ""
    return str(fallback).encode()
