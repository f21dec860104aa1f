"""``qwatch alerts``: match every transition against every registered inventory; emit alerts, push webhooks.

Kafka wiring around :class:`subscribers.alerts.core.AlertService`:
- at start, read to their ends (read_committed): inventories, emitted alerts, processor state and transitions
  (the latter rebuild each package's current state for retroactive checks);
- follow the inventory and state topics with an unassigned-group consumer from where the start read ended;
- consume ``qwatch.transitions.v1`` in a consumer group, committing only after alerts are flushed and pushed.
A brand-new group starts exactly where the start-up read of the transitions topic ended: history before it is
covered by the retroactive check against current state (instead of paging people about a year of old transitions),
and a transition published while the group was still joining is matched live, not skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from qwatch import config as cfgmod
from qwatch import events
from qwatch.events.outputs import Alert, InventoryRecord
from qwatch.events.topics import ALERTS, DEADLETTER, INVENTORY, STATE, TRANSITIONS
from qwatch.logs import safe
from qwatch.metrics import Heartbeat
from qwatch.runtime import Runtime, StopFlag, UsageError, add_common, build_runtime
from qwatch.sinks import Delivery, PublishError
from qwatch.upstate import fill_bootstrap
from subscribers.alerts.core import AlertService, DeliveryInterrupted
from subscribers.alerts.matching import SEVERITIES
from subscribers.alerts.webhook import FORMATS, WebhookConfig, WebhookSender, make_client, redact_url
from subscribers.inventory.cli import open_sink

logger = logging.getLogger(__name__)
_P = "ALERTS_"


@cfgmod.component(_P)
@dataclass(frozen=True)
class AlertsConfig:
    """``qwatch alerts`` settings (``QWATCH_ALERTS_*``)."""

    group: str = field(default="qwatch-alerts", metadata={"help": "consumer group on qwatch.transitions.v1"})
    poll_timeout: float = field(default=1.0, metadata={"help": "seconds per poll of the transitions topic"})
    startup_timeout: float = field(default=120.0, metadata={"help": "seconds to read the topics at start"})
    retry_backoff: float = field(default=2.0, metadata={"help": "seconds between retries of a failed publish"})

    def __post_init__(self) -> None:
        cfgmod.require(bool(self.group), _P, "group", "must not be empty")
        cfgmod.require(0 < self.poll_timeout <= 60, _P, "poll_timeout", "expected 0 < seconds <= 60")
        cfgmod.require(0 < self.startup_timeout <= 3600, _P, "startup_timeout", "expected 0 < seconds <= 3600")
        cfgmod.require(0 <= self.retry_backoff <= 300, _P, "retry_backoff", "expected 0-300 seconds")


def register(sub: Any) -> None:
    """Add ``alerts``."""
    p = sub.add_parser(
        "alerts",
        help="match transitions against registered inventories; emit alerts and push webhooks",
        description="Consumes qwatch.transitions.v1 and the registered inventories (qwatch.inventory.v1), emits "
        "Alert events to qwatch.alerts.v1 with the dependency path, and optionally POSTs each alert as a signed "
        "CloudEvent (or Slack message). A newly registered inventory is checked against current state at once. "
        "The webhook secret comes from QWATCH_WEBHOOK_SECRET only.",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("serve", "redeliver"),
        default="serve",
        help="serve (default): follow transitions; redeliver: POST the parked (dead-lettered) webhook alerts again",
    )
    p.add_argument("--id", dest="alert_ids", action="append", default=[], help="redeliver: only this alert id")
    p.add_argument("--dry-run", action="store_true", help="redeliver: list what would be sent, send nothing")
    p.add_argument("--group", default=None, help="consumer group (default qwatch-alerts)")
    p.add_argument("--once", action="store_true", help="exit once caught up (for cron and tests)")
    p.add_argument("--webhook-url", default=None, help="POST alerts here (env QWATCH_WEBHOOK_URL)")
    p.add_argument("--webhook-format", choices=FORMATS, default=None, help="cloudevents (default) or slack")
    p.add_argument("--min-severity", choices=SEVERITIES, default=None, help="deliver only this severe or worse")
    add_common(p, sink=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start, then serve until stopped (or caught up with --once); or replay parked webhook alerts."""
    env = os.environ
    fill_bootstrap(args, env)
    rt = build_runtime(args, env)
    cfg = cfgmod.load(AlertsConfig, env, _P, {"group": args.group})
    wcfg = cfgmod.load(
        WebhookConfig,
        env,
        "WEBHOOK_",
        {
            "url": args.webhook_url,
            "format": args.webhook_format,
            "min_severity": args.min_severity,
        },
    )
    if args.action == "redeliver":
        return redeliver(rt, wcfg, set(args.alert_ids), args.dry_run)
    unsigned = unsigned_warning(wcfg)
    if unsigned:
        logger.warning("%s", unsigned)
    stop = StopFlag().install()
    keepalive = _Keepalive(stop)
    client = make_client() if wcfg.url else None
    webhook = WebhookSender(client, wcfg, rt.metrics, sleep=keepalive.sleep) if client is not None else None
    sink = open_sink(rt)
    try:
        service = AlertService(sink, rt.metrics, webhook, stopped=lambda: stop.is_set)
        return _serve(rt, cfg, service, args.once, stop, keepalive)
    except DeliveryInterrupted as exc:
        logger.warning("alerts: %s; its input stays uncommitted and it is delivered after the restart", exc)
        return 0
    finally:
        sink.close()
        if client is not None:
            client.close()


def unsigned_warning(wcfg: WebhookConfig) -> str | None:
    """The start-up warning for a webhook without a secret (None when signed, or when there is no webhook)."""
    if not wcfg.url or wcfg.secret:
        return None
    return (
        f"webhook: QWATCH_WEBHOOK_SECRET is not set, so alerts to {redact_url(wcfg.url)} go out UNSIGNED and a "
        "receiver cannot tell them from forgeries; set it and verify X-Qwatch-Signature (README, 'Webhooks')"
    )


class _Keepalive:
    """The webhook's sleep between retries: wakes on a stop request, and keeps the transitions consumer in its group
    while a long outage holds a batch (a paused poll returns nothing and counts as progress for Kafka)."""

    def __init__(self, stop: StopFlag) -> None:
        self._stop = stop
        self.consumer: KafkaConsumer | None = None
        self.heartbeat: Heartbeat | None = None

    def sleep(self, seconds: float) -> None:
        if self.heartbeat is not None:
            # waiting for a receiver that is down is progress, not a stuck loop: a restart would not deliver sooner
            self.heartbeat.beat(idle=seconds)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(left, 1.0)):
                return
            consumer = self.consumer
            if consumer is not None and consumer.assignment():
                held = list(consumer.assignment())
                consumer.pause(*held)
                try:
                    consumer.poll(timeout_ms=0)
                finally:
                    consumer.resume(*held)


def redeliver(rt: Runtime, wcfg: WebhookConfig, only: set[str], dry_run: bool) -> int:
    """POST every parked webhook alert (DeadLetters of source ``webhook``, reason ``delivery``) again, newest copy
    per alert id, re-signed with a fresh timestamp; exit 1 if any is still not accepted. Receivers deduplicate on
    the id, so replaying one that was in fact received is harmless."""
    from qwatch.kafka.io import read_topic

    if not wcfg.url and not dry_run:
        raise UsageError("redeliver needs a receiver: pass --webhook-url URL (or set QWATCH_WEBHOOK_URL)")
    parked: dict[str, events.DeadLetter] = {}
    for d in read_topic(rt.clients, rt.codec, DEADLETTER, timeout=60):
        letter = d.event
        if isinstance(letter, events.DeadLetter) and letter.source == "webhook" and letter.reason == "delivery":
            alert_id = parked_alert_id(letter)
            if alert_id and (not only or alert_id in only):
                parked.pop(alert_id, None)
                parked[alert_id] = letter
    print(f"{len(parked)} parked webhook alert(s)", flush=True)
    if dry_run or not parked:
        for alert_id, letter in parked.items():
            print(f"  {alert_id} {safe(letter.package)}: {safe(letter.error, 200)}")
        return 0
    failed = 0
    with make_client() as client:
        sender = WebhookSender(client, wcfg, rt.metrics)
        for alert_id, letter in parked.items():
            outcome = sender.deliver_body((letter.payload or "").encode(), alert_id)
            print(f"  {alert_id} {safe(letter.package)}: {outcome.status} after {outcome.attempts} attempt(s)")
            failed += outcome.status != "delivered"
    return 1 if failed else 0


def parked_alert_id(letter: events.DeadLetter) -> str | None:
    """The alert id inside a parked webhook body (CloudEvents ``id``; Slack bodies carry it in their context)."""
    try:
        body = json.loads(letter.payload or "")
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        return str(body["id"])
    found = _ALERT_ID.search(letter.payload or "")
    return found.group(1) if found else None


_ALERT_ID = re.compile(r"alert `([0-9a-f]{16,64})`")


def _serve(
    rt: Runtime, cfg: AlertsConfig, service: AlertService, once: bool, stop: StopFlag, keepalive: _Keepalive
) -> int:
    from qwatch.kafka.io import KafkaSource, read_topic_to_end

    clients, codec = rt.clients, rt.codec
    ends: dict[TopicPartition, int] = {}  # where each start-up read stopped: the follower and a new group go on there

    def read(topic: str) -> list[Any]:
        records, end = read_topic_to_end(clients, codec, topic, cfg.startup_timeout)
        ends.update(end)
        return [d.event for d in records if d.event is not None]

    inventories = [e for e in read(INVENTORY) if isinstance(e, InventoryRecord)]
    raised = service.start(
        inventories,
        [e for e in read(TRANSITIONS) if isinstance(e, events.Transition)],
        [e for e in read(STATE) if isinstance(e, events.PackageStateRecord)],
        [e for e in read(ALERTS) if isinstance(e, Alert)],
    )
    follow_from = {tp: offset for tp, offset in ends.items() if tp.topic in (INVENTORY, STATE)}
    logger.info(
        "alerts: %d inventories, %d packages in current state, %d retroactive alerts at start",
        len(service.inventories),
        len(service.state),
        len(raised),
    )
    follower = clients.consumer(None)
    follower.assign(list(follow_from))
    for tp, offset in follow_from.items():
        follower.seek(tp, offset)
    follow = KafkaSource(follower, codec)
    source = KafkaSource(clients.consumer(cfg.group, TRANSITIONS, auto_offset_reset="latest"), codec)
    keepalive.consumer = source.consumer
    heartbeat = keepalive.heartbeat = rt.heartbeat("alerts loop")
    ready = False
    try:
        while not stop.is_set:
            heartbeat.beat(idle=cfg.poll_timeout)
            _drain(follow, service)
            batch = source.poll(cfg.poll_timeout)
            if not ready and source.consumer.assignment():
                if _start_new_partitions(source.consumer, ends):
                    batch = []  # polled from "latest" before the seek: the same records come again from the seek
                if not batch:
                    # ...and records it: uncommitted, a restart before the first transition would start at the
                    # (new) end again and never alert on what was published while it was down. With a batch in
                    # hand, the commit after handling it records the start instead.
                    source.commit()
                ready = True
                heartbeat.ready()
                logger.info("alerts: ready (group %s, partitions %d)", cfg.group, len(source.consumer.assignment()))
            if batch:
                if not _handle(batch, service, cfg, stop):
                    return 1
                source.commit()
            elif once and ready:
                return 0
    finally:
        source.close()
        follow.close()
    return 0


def _start_new_partitions(consumer: KafkaConsumer, history_end: Mapping[TopicPartition, int]) -> bool:
    """Seek each assigned partition the group has never committed to where the start-up read ended (the
    beginning, for a partition that read did not see); True if any seek happened."""
    moved = False
    for tp in consumer.assignment():
        if consumer.committed(tp) is None:
            consumer.seek(tp, history_end.get(tp, 0))
            moved = True
        else:
            consumer.position(tp)
    return moved


def _drain(follow: Any, service: AlertService) -> None:
    """Apply every inventory and state record that arrived since the last loop."""
    while True:
        batch: list[Delivery] = follow.poll(0.05)
        if not batch:
            return
        for d in batch:
            if isinstance(d.event, InventoryRecord):
                service.on_inventory(d.event)
            elif isinstance(d.event, events.PackageStateRecord):
                service.on_state(d.event)
            elif d.error is not None:
                service.deadletter(d)


def _handle(batch: list[Delivery], service: AlertService, cfg: AlertsConfig, stop: StopFlag) -> bool:
    """Process a batch until its alerts are durable; False if stopped first (offsets then stay uncommitted)."""
    for d in batch:
        if d.error is not None:
            service.deadletter(d)
    transitions = [d.event for d in batch if isinstance(d.event, events.Transition)]
    while True:
        try:
            service.on_transitions(transitions)
            return True
        except PublishError as exc:
            logger.warning("alerts: publish failed (%s); retrying in %.1fs", exc, cfg.retry_backoff)
            if stop.wait(cfg.retry_backoff):
                return False


__all__ = ["AlertsConfig", "register", "run"]
