"""Secrets never show: not in ``repr``/``str``, not in logs (ours or kafka-python's), not in dead letters.

The real code paths run: configuration loaded from the environment, a producer that tries to reach a broker with
SASL credentials, the CLI failing on a bad setting, and webhook deliveries that fail every way a receiver can make
them fail, to a URL whose path and query carry a token.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from qwatch import config
from qwatch.broker.local import free_port
from qwatch.config import KafkaConfig
from qwatch.kafka.io import make_admin, make_producer
from qwatch.logs import PACKAGES, QUIET, configure
from qwatch.metrics import Metrics
from subscribers.alerts.webhook import WebhookConfig, WebhookSender, make_client, redact_url
from tests.hostile_support import run_cli
from tests.subscribers.alerts.test_webhook import ALERT

PASSWORD = "hunter2-sasl-Pa55word"
WEBHOOK_SECRET = "whsec-0123456789abcdef"
TOKEN = "T0KEN-b7f3e1d2c4"
SASL_ENV = {
    "QWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "QWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "QWATCH_KAFKA_SASL_USERNAME": "qwatch",
    "QWATCH_KAFKA_SASL_PASSWORD": PASSWORD,
}


def _nothing_leaks(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret[:6]}… leaked"


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def _refusing_port() -> int:
    """A port with nothing listening: connections are refused at once. From the test port allocator, so no other
    process of the run is handed it (a port-0 number could become some broker's or an outgoing connection's)."""
    return free_port()


def test_kafka_password_stays_out_of_repr_and_of_every_log(caplog: pytest.LogCaptureFixture) -> None:
    cfg = config.load(KafkaConfig, {**SASL_ENV, "QWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{_refusing_port()}"}, "KAFKA_")
    assert cfg.sasl_password.reveal() == PASSWORD
    _nothing_leaks(repr(cfg) + str(cfg) + f"{cfg}" + repr(cfg.sasl_password) + f"{cfg.sasl_password}", PASSWORD)
    caplog.set_level(logging.DEBUG)  # kafka-python's own loggers too: they propagate to the root
    for factory in (make_producer, make_admin):
        with pytest.raises(KafkaError) as caught:
            factory(cfg, bootstrap_timeout_ms=1500, request_timeout_ms=1000)
        _nothing_leaks(repr(caught.value) + str(caught.value), PASSWORD)
    assert any(r.name.startswith("kafka") for r in caplog.records), "kafka-python was expected to log the attempts"
    _nothing_leaks(_log_text(caplog), PASSWORD)


def test_the_cli_names_a_bad_setting_without_echoing_the_password(tmp_path: Path) -> None:
    env = {**SASL_ENV, "QWATCH_KAFKA_SASL_USERNAME": "", "QWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    result = run_cli(["topics", "create", "--log-level", "DEBUG"], cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert "QWATCH_KAFKA_SASL_USERNAME" in result.stderr
    _nothing_leaks(result.stdout + result.stderr, PASSWORD)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[int]]]:
    """Answers each POST with the next status (a negative one: hang past the client's timeout)."""
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = statuses.pop(0) if statuses else 500
            if status < 0:
                time.sleep(1.0)
                return
            self.send_response(status)
            self.send_header("Location", f"https://elsewhere.invalid/{TOKEN}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", statuses
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cli_logging() -> Iterator[io.StringIO]:
    """Logging as the CLI sets it up (``logs.configure``), plus a root handler at DEBUG as an embedding app might
    add; everything written goes to one stream. The loggers are restored afterwards for the other tests."""
    names = ("", *PACKAGES, *QUIET)
    saved = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names
    }
    stream = io.StringIO()
    root = logging.getLogger()
    root.addHandler(logging.StreamHandler(stream))
    root.setLevel(logging.DEBUG)
    with contextlib.redirect_stderr(stream):
        configure("DEBUG")
    try:
        yield stream
    finally:
        for n, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(n)
            logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def test_webhook_secret_and_tokened_url_stay_out_of_logs_repr_and_dead_letters(
    receiver: tuple[str, list[int]], cli_logging: io.StringIO
) -> None:
    base, statuses = receiver
    urls = {
        "refused": f"http://127.0.0.1:{_refusing_port()}/hooks/{TOKEN}?token={TOKEN}",
        "answered": f"{base}/services/{TOKEN}?token={TOKEN}",
        "userinfo": f"http://user:{TOKEN}@127.0.0.1:{_refusing_port()}/hook",
    }
    seen: list[str] = []
    for label, url in urls.items():
        env = {"QWATCH_WEBHOOK_URL": url, "QWATCH_WEBHOOK_SECRET": WEBHOOK_SECRET, "QWATCH_WEBHOOK_TIMEOUT": "0.3"}
        cfg = config.load(WebhookConfig, env, "WEBHOOK_", {"max_attempts": 4, "backoff_base": 0.0})
        seen += [repr(cfg), str(cfg), redact_url(url)]
        statuses[:] = [503, -1, 301]  # retried, timed out and retried, then a redirect: final, never followed
        outcome = WebhookSender(make_client(), cfg, Metrics(CollectorRegistry()), sleep=lambda _: None).deliver(ALERT)
        assert outcome.status == "dead-letter" and outcome.deadletter is not None, label
        letter = outcome.deadletter
        seen += [repr(outcome), letter.error, letter.pointer, letter.payload or ""]
        if label == "answered":
            assert letter.error == "HTTP 301 after 3 attempt(s)"
    logging.getLogger("third.party").debug("probe")  # the root handler really takes everything at DEBUG
    logged = cli_logging.getvalue()
    assert "webhook delivery of alert" in logged and "probe" in logged
    _nothing_leaks("\n".join(seen) + logged, TOKEN, WEBHOOK_SECRET)
