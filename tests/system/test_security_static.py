"""No shell, no unverified TLS: scans of the whole source tree, and the clients we build checked at run time.

The scans parse every Python file (package code, tests, benchmarks) with ``ast`` rather than grepping, so a
comment or a docstring that mentions ``shell=True`` does not count and a call spelled across lines does. The run-time
checks look at the ``ssl.SSLContext`` inside the real clients and complete a real TLS handshake against a local
server whose self-signed certificate must be refused.
"""

from __future__ import annotations

import ast
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from qwatch.config import KafkaConfig, Secret
from qwatch.http import HttpConfig, HttpError, PoliteClient, make_http_client
from qwatch.kafka import clients as kafka_clients
from qwatch.metrics import Metrics
from subscribers.alerts import webhook
from tests.hostile_support import ROOT

SKIP_DIRS = {".venv", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "build", "dist"}
SHELL_CALLS = {
    "os.system",
    "os.popen",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "pty.spawn",
    "asyncio.create_subprocess_shell",
}
SHELL_PREFIXES = ("os.exec", "os.spawn", "os.posix_spawn")
PROCESS_CALLS = {
    "subprocess.run",
    "subprocess.Popen",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
}
EXEC_ALLOWED = {
    "qwatch/events/codec.py",  # the records' dict builders, from our own dataclass field names
    "qwatch/events/codegen.py",  # the one compile step of the Avro encoder, the decoder and the codec's JSON check
    "qwatch/frozen.py",
    # runs the verification example from our own README against the real signer, so the docs cannot rot
    "tests/subscribers/alerts/test_webhook_readme.py",
}
"""``exec`` builds the codec's encoders, decoders and JSON checks from our own ``.avsc`` files (field names checked against
Avro's name rule) and the records' ``__init__`` from our own dataclass field names (checked as identifiers), at
import or start-up; nothing else may."""


def _python_scripts() -> list[Path]:
    """Extension-less executables with a Python shebang (``bench/run``) are source too."""
    candidates = [p for d in ("bench", "scripts", ".ci") for p in (ROOT / d).glob("*") if p.is_file() and not p.suffix]
    return [p for p in candidates if p.read_bytes()[:64].startswith(b"#!") and b"python" in p.read_bytes()[:64]]


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted([*ROOT.rglob("*.py"), *_python_scripts()]):
        rel = path.relative_to(ROOT)
        if SKIP_DIRS.intersection(rel.parts) or any(p.endswith(".egg-info") for p in rel.parts):
            continue
        yield rel.as_posix(), ast.parse(path.read_text(encoding="utf-8"), str(rel))


SOURCES = list(_sources())


def _calls(tree: ast.Module) -> Iterator[ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value in (False, None, 0)


def test_the_scan_sees_the_whole_tree() -> None:
    names = {rel for rel, _ in SOURCES}
    assert {
        "qwatch/http.py",
        "qwatch/openssf/gitsource.py",
        "subscribers/alerts/webhook.py",
        "bench/codec_bench.py",
    } <= names
    assert len(names) > 100


def test_nothing_reaches_a_shell() -> None:
    found = []
    for rel, tree in SOURCES:
        for call in _calls(tree):
            name = ast.unparse(call.func)
            found += [
                f"{rel}:{call.lineno} {name}(shell=...)"
                for kw in call.keywords
                if kw.arg == "shell" and not _is_false(kw.value)
            ]
            if name in SHELL_CALLS or name.startswith(SHELL_PREFIXES):
                found.append(f"{rel}:{call.lineno} {name}()")
            if name in PROCESS_CALLS and call.args and isinstance(call.args[0], ast.Constant | ast.JoinedStr):
                found.append(f"{rel}:{call.lineno} {name} with a command string")
    assert found == []


def test_exec_and_eval_only_where_the_input_is_our_own() -> None:
    found = [
        f"{rel}:{call.lineno}"
        for rel, tree in SOURCES
        for call in _calls(tree)
        if isinstance(call.func, ast.Name) and call.func.id in ("exec", "eval") and rel not in EXEC_ALLOWED
    ]
    assert found == []


def test_tls_verification_is_never_turned_off_in_the_source() -> None:
    found = []
    for rel, tree in SOURCES:
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg in ("verify", "ssl_check_hostname", "check_hostname"):
                if _is_false(node.value):
                    found.append(f"{rel}: {node.arg}={ast.unparse(node.value)}")
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr in ("check_hostname", "verify_mode") for t in node.targets
            ):
                found.append(f"{rel}:{node.lineno} {ast.unparse(node)}")
            elif isinstance(node, ast.Attribute) and node.attr in ("CERT_NONE", "_create_unverified_context"):
                found.append(f"{rel}:{node.lineno} {node.attr}")
            elif isinstance(node, ast.Dict):  # **{"ssl_check_hostname": False} spelled as a mapping
                found += [
                    f"{rel}:{node.lineno} {ast.unparse(k)}: {ast.unparse(v)}"
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value in ("verify", "ssl_check_hostname") and _is_false(v)
                ]
    assert found == []


@pytest.mark.parametrize("client", [make_http_client(HttpConfig()), webhook.make_client()], ids=["upstream", "webhook"])
def test_the_clients_we_build_verify_certificates_and_host_names(client: httpx.Client) -> None:
    context: ssl.SSLContext = client._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    client.close()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local HTTPS server with a self-signed certificate for 127.0.0.1; yields (URL, certificate path)."""
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def _ok(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = _ok  # noqa: N815 - http.server's naming

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", cert
    finally:
        server.shutdown()
        server.server_close()


def test_a_self_signed_upstream_is_refused(self_signed: tuple[str, Path]) -> None:
    url, cert = self_signed
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as trusting:
        assert trusting.get(url).status_code == 200  # the server is fine; only trust is missing below
    cfg = HttpConfig(max_attempts=1)
    client = PoliteClient(make_http_client(cfg), cfg, Metrics(CollectorRegistry()), "pypi-simple")
    with pytest.raises(HttpError) as caught:
        client.get(url)
    assert caught.value.reason == "transport" and "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    client.close()


def test_a_self_signed_webhook_receiver_gets_nothing(self_signed: tuple[str, Path]) -> None:
    url, _ = self_signed
    cfg = webhook.WebhookConfig(url=url, secret=Secret("k"), max_attempts=1)
    sender = webhook.WebhookSender(webhook.make_client(), cfg, Metrics(CollectorRegistry()))
    from tests.subscribers.alerts.test_webhook import ALERT

    outcome = sender.deliver(ALERT)
    assert outcome.status == "dead-letter" and outcome.deadletter is not None
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.deadletter.error


@pytest.mark.parametrize("factory", ["make_producer", "make_consumer", "make_admin"])
def test_kafka_clients_keep_hostname_checks(factory: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What our factories hand kafka-python for a TLS cluster: nothing that weakens its (secure) defaults."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    for cls in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert cls.DEFAULT_CONFIG["ssl_check_hostname"] is True
    seen: dict[str, Any] = {}

    def record(*args: Any, **kwargs: Any) -> object:
        seen.update(kwargs)
        return object()

    for name in ("KafkaProducer", "KafkaConsumer", "KafkaAdminClient"):
        monkeypatch.setattr(kafka_clients, name, record)
    cfg = KafkaConfig(
        bootstrap="broker:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="qwatch",
        sasl_password=Secret("pw"),
        ssl_cafile="/etc/qwatch/ca.pem",
    )
    factory_fn = getattr(kafka_clients, factory)
    if factory == "make_consumer":
        factory_fn(cfg, "group")
    else:
        factory_fn(cfg)
    assert seen["security_protocol"] == "SASL_SSL" and seen["ssl_cafile"] == "/etc/qwatch/ca.pem"
    assert seen.get("ssl_check_hostname", True) is True
    assert not {k for k in seen if k.startswith("ssl_") and k != "ssl_cafile"}
