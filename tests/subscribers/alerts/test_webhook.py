"""The webhook sink against a real local HTTP receiver: signatures, retries, dead letters, both formats."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from qwatch.config import Secret, load
from qwatch.events.outputs import Alert
from qwatch.metrics import Metrics
from subscribers.alerts.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookConfig,
    WebhookSender,
    body_for,
    make_client,
    sign,
    verify_signature,
)

SECRET = "s3cret-for-tests"
ALERT = Alert(
    event_id="a" * 32,
    source="alerts",
    ecosystem="PyPI",
    package="delta",
    observed_at=1_800_000_000_000,
    upstream_time=1_799_999_990_000,
    project="acme",
    lockfile="uv.lock",
    version="3.0.0",
    locked_versions=("3.0.0",),
    kind="QUARANTINED",
    severity="high",
    path=("acme-app", "alpha", "beta", "delta"),
    transition_id="t" * 32,
    report_id=None,
    retroactive=False,
    summary="HIGH QUARANTINED: acme uses delta==3.0.0 via acme-app > alpha > beta > delta",
)


@dataclass
class Receiver:
    """What the receiver got, and the statuses it answers with (popped per request; then 200)."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                state.requests.append((dict(self.headers.items()), body))
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def sender(url: str, **kw: Any) -> tuple[WebhookSender, Metrics, list[float]]:
    cfg = WebhookConfig(url=url, secret=Secret(SECRET), backoff_base=0.5, backoff_max=4.0, **kw)
    metrics = Metrics(CollectorRegistry())
    sleeps: list[float] = []
    return WebhookSender(make_client(), cfg, metrics, sleep=sleeps.append, rand=lambda: 0.5), metrics, sleeps


def test_cloudevent_delivered_and_signature_verifies(receiver: Receiver) -> None:
    send, metrics, _ = sender(receiver.url)
    outcome = send.deliver(ALERT)
    assert (outcome.status, outcome.attempts) == ("delivered", 1)
    headers, body = receiver.requests[0]
    assert headers["Content-Type"].startswith("application/cloudevents+json")
    assert headers[SIGNATURE_HEADER].startswith("sha256=")
    assert verify_signature(SECRET, body, headers)
    assert verify_signature(Secret(SECRET), body, {k.lower(): v for k, v in headers.items()})
    event = json.loads(body)
    assert event["specversion"] == "1.0" and event["id"] == ALERT.event_id
    assert event["type"] == "dev.qwatch.alert.v1" and event["source"] == "/qwatch/alerts"
    assert event["datacontenttype"] == "application/json" and event["time"].endswith("Z")
    assert event["data"]["path"] == ["acme-app", "alpha", "beta", "delta"]
    assert metrics.webhook_deliveries.labels("delivered")._value.get() == 1


def test_verification_rejects_tampering_wrong_secret_and_stale_or_missing_timestamps(receiver: Receiver) -> None:
    send, _, _ = sender(receiver.url)
    send.deliver(ALERT)
    headers, body = receiver.requests[0]
    assert not verify_signature(SECRET, body.replace(b"delta", b"deltb"), headers)
    assert not verify_signature("wrong-secret", body, headers)
    assert not verify_signature(SECRET, body, {k: v for k, v in headers.items() if k != TIMESTAMP_HEADER})
    assert not verify_signature(SECRET, body, {k: v for k, v in headers.items() if k != SIGNATURE_HEADER})
    old = int(time.time()) - 3600
    replayed = {**headers, TIMESTAMP_HEADER: str(old), SIGNATURE_HEADER: sign(SECRET, body, old)}
    assert not verify_signature(SECRET, body, replayed, tolerance=300)
    assert verify_signature(SECRET, body, replayed, tolerance=7200)
    moved = {**headers, TIMESTAMP_HEADER: str(int(headers[TIMESTAMP_HEADER]) + 1)}  # timestamp is inside the MAC
    assert not verify_signature(SECRET, body, moved)
    assert not verify_signature("", body, headers)


def test_retries_on_500_then_succeeds(receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 429]
    send, metrics, sleeps = sender(receiver.url)
    outcome = send.deliver(ALERT)
    assert (outcome.status, outcome.attempts, outcome.deadletter) == ("delivered", 4, None)
    assert sleeps == [0.375, 0.75, 1.5]  # equal jitter with rand=0.5: 3/4 of 0.5, 1, 2
    assert len({b for _, b in receiver.requests}) == 1  # the same body every time
    assert metrics.webhook_deliveries.labels("retried")._value.get() == 3


def test_dead_letter_after_retries_run_out(receiver: Receiver) -> None:
    receiver.statuses = [502] * 10
    send, metrics, sleeps = sender(receiver.url, max_attempts=3)
    outcome = send.deliver(ALERT)
    assert (outcome.status, outcome.attempts) == ("dead-letter", 3)
    letter = outcome.deadletter
    assert letter is not None
    assert (letter.reason, letter.source, letter.package) == ("delivery", "webhook", "delta")
    assert "HTTP 502 after 3 attempt(s)" in letter.error
    assert "/hook" not in letter.pointer and "127.0.0.1" in letter.pointer  # the path may be a token
    assert json.loads(letter.payload or "")["id"] == ALERT.event_id
    assert SECRET not in repr(letter)
    assert len(receiver.requests) == 3 and len(sleeps) == 2
    assert metrics.webhook_deliveries.labels("dead-letter")._value.get() == 1


def test_refusal_is_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [401]
    send, _, sleeps = sender(receiver.url)
    outcome = send.deliver(ALERT)
    assert (outcome.status, outcome.attempts, sleeps) == ("dead-letter", 1, [])


def test_unreachable_receiver_dead_letters() -> None:
    send, _, sleeps = sender("http://127.0.0.1:9/hook", max_attempts=2)
    outcome = send.deliver(ALERT)
    assert outcome.status == "dead-letter" and outcome.deadletter is not None
    assert "transport error" in outcome.deadletter.error and len(sleeps) == 1


def test_slack_format(receiver: Receiver) -> None:
    send, _, _ = sender(receiver.url, format="slack")
    assert send.deliver(ALERT).status == "delivered"
    headers, body = receiver.requests[0]
    message = json.loads(body)
    assert "QUARANTINED" in message["text"] and "delta==3.0.0" in message["text"]
    assert message["blocks"][0]["type"] == "header"
    assert any("acme-app › alpha › beta › delta" in f["text"] for f in message["blocks"][1]["fields"])
    assert verify_signature(SECRET, body, headers)


def test_min_severity_skips(receiver: Receiver) -> None:
    send, _, _ = sender(receiver.url, min_severity="critical")
    assert send.deliver(ALERT).status == "skipped"
    assert send.deliver(replace(ALERT, severity="critical")).status == "delivered"
    assert len(receiver.requests) == 1


def test_secret_from_env_never_shows() -> None:
    cfg = load(
        WebhookConfig, {"QWATCH_WEBHOOK_SECRET": SECRET, "QWATCH_WEBHOOK_URL": "https://x.example/h"}, "WEBHOOK_"
    )
    assert cfg.secret.reveal() == SECRET
    assert SECRET not in repr(cfg) and SECRET not in str(cfg)


REPORT_ALERT = replace(
    ALERT,
    kind="REPORTED",
    severity="critical",
    report_id="MAL-2026-4750",
    journal_serial=None,
    remediation="delta==3.0.0: treat any environment that installed it as compromised.",
)


def test_payload_carries_rfc3339_times_remediation_and_links(receiver: Receiver) -> None:
    send, _, _ = sender(receiver.url)
    journal = replace(ALERT, journal_serial=1022)
    assert send.deliver(journal).status == "delivered"
    assert send.deliver(REPORT_ALERT).status == "delivered"
    first, second = (json.loads(body) for _, body in receiver.requests)
    data = first["data"]
    assert data["observed_at"] == "2027-01-15T08:00:00.000Z" == first["time"]
    assert data["upstream_time"] == "2027-01-15T07:59:50.000Z"
    assert not any(isinstance(data[k], int) for k in ("observed_at", "upstream_time"))  # no epoch ms left
    # The gate's wording, from the one shared table.
    assert data["remediation"] == "delta==3.0.0: remove or replace the dependency until PyPI clears it."
    assert data["links"] == {
        "project": "https://pypi.org/project/delta/",
        "release": "https://pypi.org/project/delta/3.0.0/",
        "report": None,
        "journal_serial": 1022,
    }
    assert second["data"]["links"]["report"] == "https://osv.dev/vulnerability/MAL-2026-4750"
    assert second["data"]["remediation"].endswith("treat any environment that installed it as compromised.")
    assert second["data"]["upstream_time"] == "2027-01-15T07:59:50.000Z"
    unknown = json.loads(body_for(replace(ALERT, upstream_time=None), send.cfg)[0])
    assert unknown["data"]["upstream_time"] is None


def test_slack_blocks_link_to_pypi_and_osv_and_say_what_to_do(receiver: Receiver) -> None:
    send, _, _ = sender(receiver.url, format="slack")
    assert send.deliver(replace(REPORT_ALERT, journal_serial=77, summary="a <b> & <!channel>")).status == "delivered"
    message = json.loads(receiver.requests[0][1])
    text = json.dumps(message["blocks"])
    assert "<https://pypi.org/project/delta/|PyPI: delta>" in text
    assert "<https://osv.dev/vulnerability/MAL-2026-4750|osv.dev: MAL-2026-4750>" in text
    assert "*PyPI journal serial*\\n77" in text and "2027-01-15T07:59:50.000Z" in text
    assert "*What to do:* delta==3.0.0: treat any environment" in text
    assert "<!channel>" not in text and "a &lt;b&gt; &amp; &lt;!channel&gt;" in text  # upstream text cannot ping
    assert "treat any environment" in message["text"]


def test_held_delivery_retries_past_max_attempts_until_the_receiver_answers(receiver: Receiver) -> None:
    receiver.statuses = [503] * 7
    send, metrics, sleeps = sender(receiver.url, max_attempts=2)
    outcome = send.deliver_until(ALERT, lambda: False)
    assert (outcome.status, outcome.attempts, outcome.deadletter) == ("delivered", 8, None)
    assert sleeps[-1] == sleeps[-2] == 3.0  # capped at backoff_max (4.0) with equal jitter 0.5
    assert metrics.webhook_deliveries.labels("dead-letter")._value.get() == 0


def test_held_delivery_stops_when_asked_and_parks_only_refusals(receiver: Receiver) -> None:
    receiver.statuses = [503] * 50
    send, _, sleeps = sender(receiver.url, max_attempts=2)
    outcome = send.deliver_until(ALERT, lambda: len(sleeps) >= 3)
    assert (outcome.status, outcome.attempts, outcome.deadletter) == ("interrupted", 3, None)
    receiver.statuses = [403]
    refused = send.deliver_until(ALERT, lambda: False)
    assert refused.status == "dead-letter" and refused.deadletter is not None
    assert "HTTP 403" in refused.deadletter.error


def test_a_parked_body_is_redelivered_verbatim_and_re_signed(receiver: Receiver) -> None:
    send, _, _ = sender(receiver.url)
    body, _ = body_for(ALERT, send.cfg)
    assert send.deliver_body(body, ALERT.event_id).status == "delivered"
    headers, got = receiver.requests[0]
    assert got == body and verify_signature(SECRET, got, headers)
    assert headers["Content-Type"].startswith("application/cloudevents+json")


def test_a_webhook_without_a_secret_is_warned_about_at_start() -> None:
    from subscribers.alerts.cli import unsigned_warning

    bare = load(WebhookConfig, {"QWATCH_WEBHOOK_URL": "https://hooks.example/T0/secret-path"}, "WEBHOOK_")
    text = unsigned_warning(bare)
    assert text is not None and "UNSIGNED" in text and "QWATCH_WEBHOOK_SECRET" in text
    assert "secret-path" not in text  # the URL path may be the credential: redacted
    signed = replace(bare, secret=Secret(SECRET))
    assert unsigned_warning(signed) is None
    assert unsigned_warning(WebhookConfig()) is None  # no webhook, nothing to warn about
