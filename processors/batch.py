"""One batch of input records through the core, shared by the Kafka and the JSONL adapters.

The batch collects everything to publish (transitions, watch requests, dead letters, changed states) without
touching the adapters' committed state: the adapter publishes, commits, and only then calls ``accept`` so a failed
batch leaves no trace and can be retried from the last committed position.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from processors.core import step
from processors.draft import JOURNAL
from qwatch import deadletters, events
from qwatch.events.state import PackageStateRecord, state_key
from qwatch.logs import safe
from qwatch.metrics import Metrics
from qwatch.sinks import Delivery

logger = logging.getLogger(__name__)

OBSERVATION_TYPES = (
    events.ReportObserved,
    events.ProjectStatusObserved,
    events.IndexMembershipObserved,
    events.JournalEntryObserved,
    events.ReleasesObserved,
    events.ProvenanceObserved,
)
PAYLOAD_CAP = 4096


def dead_letter(delivery: Delivery, reason: str, error: str, now_ms: int) -> events.DeadLetter:
    """A record the processor cannot use, kept with its coordinates (id: pointer + reason, never the clock)."""
    payload = None
    if delivery.raw is not None:
        try:
            payload = delivery.raw.decode("utf-8")[:PAYLOAD_CAP]
        except UnicodeDecodeError:
            payload = None  # Avro bytes are not text; the pointer finds them on the topic
    event = delivery.event
    return deadletters.dead_letter(
        source="processor",
        reason=reason,
        error=error,
        pointer=delivery.pointer,
        observed_at=now_ms,
        payload=payload,
        payload_cap=PAYLOAD_CAP,
        ecosystem=str(getattr(event, "ecosystem", "") or ""),
        package=str(getattr(event, "package", "") or ""),
    )


@dataclass
class Batch:
    """What a batch decided; nothing is visible outside until the adapter accepts it after publishing."""

    clock: Callable[[], int]
    authority: str = JOURNAL
    """README, S3: ``journal`` or ``pages`` (ProcessorConfig.authority)."""
    transitions: list[events.Transition] = field(default_factory=list)
    watch: list[events.WatchRequest] = field(default_factory=list)
    deadletters: list[events.DeadLetter] = field(default_factory=list)
    changed: dict[tuple[int, str], PackageStateRecord] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)

    def apply(self, delivery: Delivery, states: Mapping[str, PackageStateRecord], partition: int = 0) -> None:
        """Run one record through the core against ``states`` (plus this batch's own changes)."""
        if delivery.error is not None:
            reason = "malformed-json" if delivery.topic.startswith("jsonl:") else "schema"
            self._dead(delivery, reason, delivery.error, self.clock())
            return
        self.apply_event(delivery.event, states, partition, lambda: delivery)

    def apply_event(
        self,
        obs: object,
        states: Mapping[str, PackageStateRecord],
        partition: int,
        origin: Callable[[], Delivery],
    ) -> None:
        """Run one decoded event through the core; ``origin`` builds the record's Delivery, only needed when it is
        dead-lettered (the Kafka adapter's hot path builds none for the records that go through)."""
        now = self.clock()
        if not isinstance(obs, OBSERVATION_TYPES):
            self._dead(origin(), "unexpected-type", f"{type(obs).__name__} is not an observation", now)
            return
        key = state_key(obs.ecosystem, obs.package)
        slot = (partition, key)
        current = self.changed.get(slot) or states.get(key)
        try:
            result = step(current, obs, now, self.authority)
        except Exception as exc:  # noqa: BLE001 - a poison record must not stop the stream; it is parked instead
            delivery = origin()
            logger.exception("processing %s failed; dead-lettered", delivery.pointer)
            self._dead(delivery, "processing", f"{type(exc).__name__}: {exc}", now)
            return
        self.outcomes[result.outcome] += 1
        if result.state is not None and result.state is not current:
            self.changed[slot] = result.state
        self.transitions.extend(result.transitions)
        self.watch.extend(result.watch_requests)

    def ignored(self, count: int) -> None:
        """Count records the adapter recognized as ignorable without decoding them (``processors.prefilter``)."""
        if count:
            self.outcomes["ignored"] += count

    def _dead(self, delivery: Delivery, reason: str, error: str, now: int) -> None:
        logger.warning("dead-lettering %s: %s (%s)", delivery.pointer, reason, safe(error))
        self.outcomes["deadletter"] += 1
        self.deadletters.append(dead_letter(delivery, reason, error, now))

    def record(self, metrics: Metrics) -> None:
        """Count the batch once it is committed (never for a batch that was rolled back)."""
        for outcome, n in self.outcomes.items():
            metrics.observations.labels(outcome).inc(n)
        by_kind: dict[str, list[events.Transition]] = {}
        for t in self.transitions:
            by_kind.setdefault(t.kind, []).append(t)
        for kind, ts in by_kind.items():  # one label lookup per kind: a busy batch holds thousands of transitions
            metrics.transitions.labels(kind).inc(len(ts))
            latency = metrics.detection_latency.labels(kind)
            for t in ts:
                if t.upstream_time is not None:
                    latency.observe(max(0.0, (t.detected_at - t.upstream_time) / 1000))
        for d in self.deadletters:
            metrics.deadletters.labels("processor", d.reason).inc()
