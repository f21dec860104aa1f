"""Webhook delivery of alerts: CloudEvents 1.0 structured JSON (or a Slack message), signed, retried, dead-lettered.

Signature: ``X-Qwatch-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` with the Unix time in
``X-Qwatch-Timestamp``. The timestamp is inside the MAC so a captured request cannot be replayed later with a
fresh timestamp; receivers call :func:`verify_signature` (constant-time compare, bounded clock skew) and
deduplicate on the CloudEvents ``id`` (the alert's deterministic id), because delivery is at-least-once.

Retries: 408/425/429/5xx, timeouts and cut connections are retried with exponential backoff and equal jitter
(honouring ``Retry-After`` up to ``backoff_max``); other answers are final. The alerts service delivers with
:meth:`WebhookSender.deliver_until`: a receiver that is down is retried for as long as it is down (every
``backoff_max`` seconds once ``max_attempts`` have failed, with a warning each time), and the consumer does not
commit past the alert meanwhile, so an outage delays alerts and never drops one. Only a refusal (another 4xx: a
wrong secret, a wrong path) parks the alert as a DeadLetter (reason ``delivery``, the exact body as payload), from
where ``qwatch alerts redeliver`` replays it once the receiver is fixed. :meth:`WebhookSender.deliver` is the
bounded variant (dead-letters when the attempts run out), for one-shot replays.
The URL can itself be a secret (Slack's are), so logs and dead letters only show its host and a hash.

The payload (CloudEvents ``data``, see README "Webhooks") carries RFC 3339 times, the remediation sentence and
links (PyPI project and release pages, the report on osv.dev, the journal serial).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

import httpx

from qwatch import config as cfgmod
from qwatch import deadletters, events, ids, remediation
from qwatch.config import Secret
from qwatch.events.outputs import Alert
from qwatch.http import DEFAULT_USER_AGENT, RETRY_STATUSES, parse_retry_after
from qwatch.ids import rfc3339_ms as rfc3339
from qwatch.logs import safe
from qwatch.metrics import Metrics
from qwatch.retry import backoff_delay
from subscribers.alerts.matching import SEVERITIES, at_least

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Qwatch-Signature"
TIMESTAMP_HEADER = "X-Qwatch-Timestamp"
EVENT_TYPE = "dev.qwatch.alert.v1"
CE_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
FORMATS = ("cloudevents", "slack")
MAX_PAYLOAD = 64 * 1024
_P = "WEBHOOK_"


@cfgmod.component(_P)
@dataclass(frozen=True)
class WebhookConfig:
    """Where and how alerts are pushed (``QWATCH_WEBHOOK_*``; the secret only from ``QWATCH_WEBHOOK_SECRET``)."""

    url: str = field(default="", metadata={"help": "receiver URL; empty = no webhook"})
    secret: Secret = field(default_factory=Secret, metadata={"help": "HMAC-SHA256 key for X-Qwatch-Signature (secret)"})
    format: str = field(default="cloudevents", metadata={"help": "cloudevents or slack"})
    min_severity: str = field(default="low", metadata={"help": "deliver alerts at least this severe"})
    max_attempts: int = field(
        default=5,
        metadata={"help": "quick attempts per alert; after them, one retry every backoff_max seconds (never dropped)"},
    )
    backoff_base: float = field(default=1.0, metadata={"help": "first backoff in seconds; doubles per attempt"})
    backoff_max: float = field(default=60.0, metadata={"help": "longest wait between attempts, seconds"})
    timeout: float = field(default=10.0, metadata={"help": "seconds per attempt"})
    source: str = field(default="/qwatch/alerts", metadata={"help": "CloudEvents source attribute"})

    def __repr__(self) -> str:
        """The URL redacted as in logs, since a webhook path is often the credential itself (Slack's are)."""
        rest = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "url")
        return f"WebhookConfig(url={redact_url(self.url) if self.url else ''!r}, {rest})"

    def __post_init__(self) -> None:
        cfgmod.require(
            not self.url or self.url.startswith(("http://", "https://")), _P, "url", "expected an http(s) URL"
        )
        cfgmod.require(self.format in FORMATS, _P, "format", f"one of {', '.join(FORMATS)}")
        cfgmod.require(self.min_severity in SEVERITIES, _P, "min_severity", f"one of {', '.join(SEVERITIES)}")
        cfgmod.require(1 <= self.max_attempts <= 20, _P, "max_attempts", "expected 1-20")
        cfgmod.require(
            0 <= self.backoff_base <= self.backoff_max <= 3600,
            _P,
            "backoff_base",
            "expected 0 <= base <= backoff_max <= 3600",
        )
        cfgmod.require(0 < self.timeout <= 300, _P, "timeout", "expected 0 < seconds <= 300")
        cfgmod.require(bool(self.source), _P, "source", "must not be empty")


def alert_links(alert: Alert) -> dict[str, Any]:
    """Where to read more, by name: the PyPI project page, the release page (one version concerned), the report on
    osv.dev, and the journal serial the transition rests on."""
    return {
        "project": remediation.project_url(alert.package),
        "release": remediation.project_url(alert.package, alert.version) if alert.version else None,
        "report": remediation.report_url(alert.report_id) if alert.report_id else None,
        "journal_serial": alert.journal_serial,
    }


def payload(alert: Alert) -> dict[str, Any]:
    """The alert as webhook JSON: the record's fields, times as RFC 3339 strings, remediation and links.

    ``observed_at`` and ``upstream_time`` are RFC 3339 (null when unknown); no epoch-millisecond copies are kept,
    since no published schema describes this JSON (the Avro ``Alert`` on Kafka keeps its longs)."""
    data = asdict(alert)
    data["observed_at"] = rfc3339(alert.observed_at)
    data["upstream_time"] = rfc3339(alert.upstream_time)
    data["remediation"] = alert.remediation or remediation.remediation(alert.kind, alert.package, alert.version)
    data["links"] = alert_links(alert)
    return data


def cloudevent(alert: Alert, source: str) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode envelope with the alert as ``data``."""
    return {
        "specversion": "1.0",
        "id": alert.event_id,
        "source": source,
        "type": EVENT_TYPE,
        "subject": f"{alert.project}/{alert.package}",
        "time": rfc3339(alert.observed_at),
        "datacontenttype": "application/json",
        "data": payload(alert),
    }


_EMOJI = {
    "critical": ":rotating_light:",
    "high": ":warning:",
    "medium": ":large_orange_diamond:",
    "low": ":information_source:",
}


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped, so upstream text cannot forge a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    return f"<{_mrkdwn(url)}|{_mrkdwn(label)}>"


def slack_message(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook payload: ``text`` for notifications, ``blocks`` for the message (summary, what to
    do, and links to the PyPI project or release page and the osv.dev report)."""
    pin = f"=={alert.version}" if alert.version else ""
    title = f"{alert.severity.upper()} {alert.kind}: {alert.package}{pin} in {alert.project}"
    links = alert_links(alert)
    fields = [
        {"type": "mrkdwn", "text": f"*Path*\n{_mrkdwn(' › '.join(alert.path))}"},
        {"type": "mrkdwn", "text": f"*Lockfile*\n{_mrkdwn(alert.lockfile)}"},
        {"type": "mrkdwn", "text": f"*Project*\n{_link(links['project'], 'PyPI: ' + alert.package)}"},
    ]
    if links["release"]:
        fields.append({"type": "mrkdwn", "text": f"*Release*\n{_link(links['release'], alert.package + pin)}"})
    if alert.report_id and links["report"]:
        fields.append({"type": "mrkdwn", "text": f"*Report*\n{_link(links['report'], 'osv.dev: ' + alert.report_id)}"})
    if alert.journal_serial is not None:
        fields.append({"type": "mrkdwn", "text": f"*PyPI journal serial*\n{alert.journal_serial}"})
    upstream = rfc3339(alert.upstream_time)
    if upstream:
        fields.append({"type": "mrkdwn", "text": f"*Upstream time*\n{upstream}"})
    todo = alert.remediation or remediation.remediation(alert.kind, alert.package, alert.version)
    return {
        "text": f"{title}: {todo}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{_EMOJI.get(alert.severity, '')} {_mrkdwn(alert.summary)}"[:3000],
                },
                "fields": fields[:10],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*What to do:* {_mrkdwn(todo)}"[:3000]}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"alert `{alert.event_id}` · transition "
                        f"`{alert.transition_id}`{' · retroactive' if alert.retroactive else ''}",
                    }
                ],
            },
        ],
    }


def body_for(alert: Alert, cfg: WebhookConfig) -> tuple[bytes, str]:
    """The exact bytes to POST (and to sign) and their content type."""
    if cfg.format == "slack":
        payload, ctype = slack_message(alert), "application/json"
    else:
        payload, ctype = cloudevent(alert, cfg.source), CE_CONTENT_TYPE
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode(), ctype


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """``sha256=<hex>`` over ``"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str | Secret, body: bytes, headers: Mapping[str, str], tolerance: float = 300.0, now: float | None = None
) -> bool:
    """For receivers: True only for a valid MAC over this exact body with a timestamp within ``tolerance`` seconds.

    Never raises for hostile headers: the timestamp must be the plain ASCII decimal the sender writes (``²`` or
    5,000 digits once made ``int()`` raise), and a header repeated with different values (in any letter case) is
    ambiguous, so it is refused rather than letting the iteration order pick one.
    """
    key = secret.reveal() if isinstance(secret, Secret) else secret
    seen: dict[str, set[str]] = {}
    for name, value in headers.items():
        seen.setdefault(name.lower(), set()).add(value.strip())
    signatures, stamps = seen.get(SIGNATURE_HEADER.lower(), set()), seen.get(TIMESTAMP_HEADER.lower(), set())
    if not key or len(signatures) != 1 or len(stamps) != 1:
        return False
    given, stamp = signatures.pop(), stamps.pop()
    if not given or not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 15) or stamp != str(int(stamp)):
        return False
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(key, body, timestamp).encode(), given.strip().encode())


def redact_url(url: str) -> str:
    """Host only, plus a short hash to tell receivers apart: webhook paths often embed a token."""
    parts = urlsplit(url)
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}/… (#{digest})"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one delivery ended: ``delivered``, ``skipped``, ``dead-letter`` (with the DeadLetter to emit) or
    ``interrupted`` (asked to stop while the receiver was still down: the alert is not delivered yet)."""

    status: str
    attempts: int
    deadletter: events.DeadLetter | None = None


class WebhookSender:
    """POSTs alerts over an injected httpx.Client; clock, sleep and randomness are injected for tests."""

    def __init__(
        self,
        client: httpx.Client,
        cfg: WebhookConfig,
        metrics: Metrics,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.cfg = cfg
        self._metrics = metrics
        self._sleep = sleep
        self._rand = rand
        self._wall = wall

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter, capped."""
        return backoff_delay(attempt, self.cfg.backoff_base, self.cfg.backoff_max, jitter=self._rand)

    def deliver(self, alert: Alert) -> Outcome:
        """POST until accepted, refused or out of attempts; never raises for the receiver's failures."""
        return self._deliver(alert, None)

    def deliver_until(self, alert: Alert, stopped: Callable[[], bool]) -> Outcome:
        """POST until accepted or refused, however long the receiver is down (``interrupted`` if ``stopped()``
        turns true first): the alerts service calls this and commits its input only after it returns."""
        return self._deliver(alert, stopped)

    def _deliver(self, alert: Alert, stopped: Callable[[], bool] | None) -> Outcome:
        if not at_least(alert.severity, self.cfg.min_severity):
            self._metrics.webhook_deliveries.labels("skipped").inc()
            return Outcome("skipped", 0)
        body, ctype = body_for(alert, self.cfg)
        status, attempt, error = self._send(body, ctype, alert.event_id, stopped)
        if status != "dead-letter":
            return Outcome(status, attempt)
        return Outcome("dead-letter", attempt, self._deadletter(alert, body, f"{error} after {attempt} attempt(s)"))

    def deliver_body(self, body: bytes, alert_id: str) -> Outcome:
        """POST a body rendered earlier (a parked alert's exact bytes), re-signed now; bounded like ``deliver``."""
        try:
            cloud = "specversion" in json.loads(body)
        except (ValueError, TypeError):
            cloud = False
        ctype = CE_CONTENT_TYPE if cloud else "application/json"
        status, attempt, _ = self._send(body, ctype, alert_id, None)
        return Outcome(status, attempt)

    def _send(self, body: bytes, ctype: str, alert_id: str, stopped: Callable[[], bool] | None) -> tuple[str, int, str]:
        """(``delivered`` | ``dead-letter`` | ``interrupted``, attempts, last error)."""
        error = ""
        attempt = 0
        while attempt < self.cfg.max_attempts or stopped is not None:
            if stopped is not None and stopped():
                return "interrupted", attempt, error
            attempt += 1
            wait: float | None = None
            try:
                status, retry_after = self._post(body, ctype)
            except httpx.TimeoutException as exc:
                error = f"timeout ({type(exc).__name__})"
            except httpx.HTTPError as exc:
                error = f"transport error ({type(exc).__name__}: {safe(str(exc), 200)})"
            else:
                if 200 <= status < 300:
                    self._metrics.webhook_deliveries.labels("delivered").inc()
                    return "delivered", attempt, ""
                error = f"HTTP {status}"
                if status not in RETRY_STATUSES:
                    break
                wait = retry_after
            if stopped is not None and attempt >= self.cfg.max_attempts:
                logger.warning(
                    "webhook: %s still failing after %d attempt(s) (%s); alert %s and the ones after it are held "
                    "and retried every %.0fs until it answers",
                    redact_url(self.cfg.url),
                    attempt,
                    error,
                    alert_id,
                    self.cfg.backoff_max,
                )
            if attempt < self.cfg.max_attempts or stopped is not None:
                self._metrics.webhook_deliveries.labels("retried").inc()
                self._sleep(min(wait, self.cfg.backoff_max) if wait is not None else self.backoff(attempt))
        self._metrics.webhook_deliveries.labels("dead-letter").inc()
        logger.warning(
            "webhook delivery of alert %s to %s failed after %d attempt(s): %s; parked as a dead letter "
            "('qwatch alerts redeliver' sends it again)",
            alert_id,
            redact_url(self.cfg.url),
            attempt,
            error,
        )
        return "dead-letter", attempt, error

    def _post(self, body: bytes, ctype: str) -> tuple[int, float | None]:
        stamp = int(self._wall())
        headers = {"Content-Type": ctype, TIMESTAMP_HEADER: str(stamp), "User-Agent": DEFAULT_USER_AGENT}
        if self.cfg.secret:
            headers[SIGNATURE_HEADER] = sign(self.cfg.secret.reveal(), body, stamp)
        response = self._client.post(self.cfg.url, content=body, headers=headers, timeout=self.cfg.timeout)
        return response.status_code, parse_retry_after(response.headers.get("retry-after"), self._wall())

    def _deadletter(self, alert: Alert, body: bytes, error: str) -> events.DeadLetter:
        return deadletters.dead_letter(
            source="webhook",
            reason="delivery",
            error=error,
            pointer=redact_url(self.cfg.url),
            observed_at=ids.now_ms(),
            payload=body,
            payload_cap=MAX_PAYLOAD,
            ecosystem=alert.ecosystem,
            package=alert.package,
            upstream_time=alert.upstream_time,
            key=alert.event_id,
        )


def make_client() -> httpx.Client:
    """A client that never follows redirects: a redirected POST would turn into a GET and lose the alert."""
    return httpx.Client(follow_redirects=False, verify=True)
