"""The alerts service without Kafka: registered inventories and current state in, alerts (and webhooks) out.

The adapter in ``alerts_cli`` feeds it records; this class decides what to emit and when to deliver:
- an alert is emitted once per id (ids already on ``qwatch.alerts.v1`` are loaded at start);
- a transition is matched live against every inventory; its alerts are delivered to the webhook even when they
  were emitted before, because an uncommitted transition means the last delivery may not have happened;
- a new or changed inventory is checked retroactively against current state, and only newly emitted alerts
  from that check are delivered (so a restart does not re-page anyone).
Live alerts are flushed to the sink before any webhook POST, so a receiver never hears of a live alert the topic
lacks. Retroactive alerts are delivered *before* they are flushed: nothing else records that they are owed, so an
alert on the topic must mean "delivered" (a crash in between re-derives and re-delivers it at the next start,
and receivers deduplicate on the id).
Delivery never drops an alert: the webhook is retried for as long as the receiver is down, and a stop request
in the meantime raises :class:`DeliveryInterrupted`, so the caller does not commit its input. A receiver that
refuses an alert (4xx) parks it as a DeadLetter for ``qwatch alerts redeliver``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from qwatch import deadletters, events
from qwatch.events.outputs import Alert, InventoryRecord
from qwatch.ids import now_ms
from qwatch.metrics import Metrics
from qwatch.sinks import Delivery, Sink
from subscribers.alerts.matching import CurrentState, match_all
from subscribers.alerts.webhook import WebhookSender
from subscribers.gate.facts import ReportFact

logger = logging.getLogger(__name__)


def report_scopes(records: Iterable[events.PackageStateRecord]) -> dict[str, ReportFact]:
    """Report id → affected versions, from the processor's state (the transitions only carry report ids)."""
    return {
        r.report_id: ReportFact(r.report_id, r.affected_versions, r.all_versions)
        for rec in records
        for r in rec.reports
    }


class DeliveryInterrupted(Exception):
    """Asked to stop while a webhook was still undelivered: the input behind it must stay uncommitted."""


class AlertService:
    """Holds inventories, current state and emitted ids; every input method returns after a durable flush."""

    def __init__(
        self,
        sink: Sink,
        metrics: Metrics,
        webhook: WebhookSender | None = None,
        clock: Callable[[], int] = now_ms,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self._webhook = webhook
        self._clock = clock
        self._stopped = stopped
        self.inventories: dict[str, InventoryRecord] = {}
        self.state = CurrentState()
        self.scopes: dict[str, ReportFact] = {}
        self.emitted: set[str] = set()

    def start(
        self,
        inventories: Iterable[InventoryRecord],
        transitions: Iterable[events.Transition],
        states: Iterable[events.PackageStateRecord],
        alerts: Iterable[Alert],
    ) -> list[Alert]:
        """Load everything read at start, then check every inventory against current state."""
        self.emitted.update(a.event_id for a in alerts)
        self.scopes.update(report_scopes(states))
        for t in transitions:
            self.state.apply(t)
        for record in inventories:
            self._register(record)
        now = self._clock()
        found = [a for r in self.inventories.values() for a in self.state.retroactive(r, now, self.scopes)]
        return self._publish(found, deliver_all=False)

    def on_inventory(self, record: InventoryRecord) -> list[Alert]:
        """A registration (or removal) arrived: check it at once against current state."""
        previous = self.inventories.get(record.project)
        if not self._register(record) or (previous is not None and previous.fingerprint == record.fingerprint):
            return []
        return self._publish(self.state.retroactive(record, self._clock(), self.scopes), deliver_all=False)

    def on_state(self, record: events.PackageStateRecord) -> None:
        """Processor state arrived: keep the reports' affected versions current."""
        self.scopes.update(report_scopes([record]))

    def on_transitions(self, transitions: Iterable[events.Transition]) -> list[Alert]:
        """Match each transition against every inventory; returns the alerts raised."""
        now = self._clock()
        found: list[Alert] = []
        for t in transitions:
            self.state.apply(t)
            found.extend(match_all(t, self.inventories.values(), now, self.scopes))
        return self._publish(found, deliver_all=True)

    def deadletter(self, delivery: Delivery) -> None:
        """Park an input record that did not decode; the rest of the stream keeps flowing."""
        self._sink.emit(
            deadletters.dead_letter(
                source="alerts",
                reason="schema",
                error=delivery.error or "undecodable",
                pointer=delivery.pointer,
                observed_at=self._clock(),
            )
        )
        self._sink.flush(30)
        self._metrics.deadletters.labels("alerts", "schema").inc()

    def _register(self, record: InventoryRecord) -> bool:
        if record.removed:
            self.inventories.pop(record.project, None)
            return False
        self.inventories[record.project] = record
        return True

    def _publish(self, alerts: list[Alert], deliver_all: bool) -> list[Alert]:
        unique = list({a.event_id: a for a in alerts}.values())
        new = [a for a in unique if a.event_id not in self.emitted]
        if not deliver_all:
            self._deliver(new)  # retroactive: delivered first, see the module docstring
        for alert in new:
            self._sink.emit(alert)
        self._sink.flush(30)  # raises PublishError: the caller must not commit its input
        for alert in new:
            self.emitted.add(alert.event_id)
            self._metrics.alerts.labels(alert.severity).inc()
            logger.info("alert %s: %s", alert.event_id, alert.summary)
        if deliver_all:
            self._deliver(unique)
        return new

    def _deliver(self, alerts: list[Alert]) -> None:
        """Deliver in order, each until accepted or refused; refusals are parked as dead letters."""
        if self._webhook is None or not alerts:
            return
        dead: list[events.DeadLetter] = []
        try:
            for alert in alerts:
                outcome = self._webhook.deliver_until(alert, self._stopped)
                if outcome.status == "interrupted":
                    raise DeliveryInterrupted(f"stopped before alert {alert.event_id} was delivered")
                if outcome.deadletter is not None:
                    dead.append(outcome.deadletter)
        finally:
            for letter in dead:
                self._sink.emit(letter)
                self._metrics.deadletters.labels("webhook", "delivery").inc()
            if dead:
                self._sink.flush(30)
