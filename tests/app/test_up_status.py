"""``qwatch up``'s screen: human latencies, status lines and the loud warning for a failing source.

The warning is checked end to end against a real journal ingestor process polling a real HTTP server on
127.0.0.1 that answers 405 to every XML-RPC POST (what a proxy that blocks XML-RPC does), scraped on its real
``/metrics``; the wording against a real ``Metrics`` registry.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from app import status
from app.render import colour_enabled, human_duration, paint
from app.supervisor import ChildSpec
from app.up import StatusBoard
from qwatch.broker.local import free_port
from qwatch.metrics import Metrics

_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def _seconds(text: str) -> tuple[float, float]:
    """A human duration back to (seconds, size of its smallest unit shown)."""
    parts = re.findall(r"(-?[\d.]+) (d|h|min|s)", text)
    assert parts and " ".join(f"{n} {u}" for n, u in parts) == text, text
    total = sum(float(n) * _UNITS[u] for n, u in parts)
    return total, _UNITS[parts[-1][1]] if "." not in parts[-1][0] else 0.1


@given(st.floats(min_value=0, max_value=10 * 365 * 86400, allow_nan=False))
def test_human_duration_reads_back_to_the_duration(seconds: float) -> None:
    text = human_duration(seconds)
    value, unit = _seconds(text)
    assert value - 0.05 <= seconds < value + unit + 0.05, (seconds, text)
    assert len(re.findall(r"[a-z]+", text)) <= 2  # never more than two units
    assert "e+" not in text and ("." not in text or seconds < 10)  # decimals only below 10 s


def test_human_duration_examples_from_the_issue() -> None:
    assert human_duration(0.83) == "0.8 s"
    assert human_duration(1.2) == "1.2 s"
    assert human_duration(180) == "3 min"
    assert human_duration(4 * 3600 + 41 * 60 + 13) == "4 h 41 min"
    assert human_duration(16873957.3) == "195 d 7 h"  # was printed as latency=16873957.3s
    assert human_duration(-2.5) == "-2.5 s"  # clock skew stays visible


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert colour_enabled(Tty(), {"TERM": "xterm"})
    assert not colour_enabled(Tty(), {"TERM": "xterm", "NO_COLOR": ""})
    assert not colour_enabled(io.StringIO(), {"TERM": "xterm"})
    line = "2026-11-25T05:14:48Z QUARANTINED         high     PyPI:evil-pkg"
    assert paint(line, "high", True) == line.replace(" high ", " \x1b[31mhigh\x1b[0m ")
    assert paint(line, "high", False) == line


def _journal_metrics(codes: dict[int, int], ok: bool) -> status.Samples:
    m = Metrics(CollectorRegistry())
    for code, n in codes.items():
        m.http_responses.labels("pypi-journal", str(code)).inc(n)
        m.polls.labels("pypi-journal", "http").inc(n)
    m.events_emitted.labels("pypi-journal", "JournalEntryObserved").inc(42)
    if ok:
        m.source_succeeded("pypi-journal", 1_000.0)
    else:
        m.source_failed("pypi-journal")
    return status.parse(generate_latest(m.registry).decode())


def test_a_blocked_journal_is_named_with_its_consequence() -> None:
    cur = status.source_status("pypi-journal", _journal_metrics({405: 3}, ok=False))
    assert status.failing(None, cur)
    text = status.warning_text(None, cur, "https://pypi.org/pypi", "poll failed (http) from https://pypi.org/pypi")
    assert text.startswith(
        "pypi-journal: HTTP 405 from https://pypi.org/pypi (XML-RPC blocked?); quarantines will only be inferred "
        "from page polls, without upstream time"
    )
    assert "[log: poll failed" in text
    line = status.status_line(cur, 1_030.0)
    assert "FAILING" in line and "42 events" in line and "405×3" in line


def test_a_healthy_source_gives_a_status_line_and_no_warning() -> None:
    cur = status.source_status("pypi-journal", _journal_metrics({}, ok=True))
    assert not status.failing(None, cur)
    assert status.status_line(cur, 1_003.2) == (
        "pypi-journal  ok       last success 3.2 s ago · 42 events · 0 failed polls"
    )
    # a 404 is an answer (a removed project), never counted as an HTTP error
    assert status.source_status("pypi-json", _journal_metrics({404: 9}, ok=True)).http_errors == {}


class _Blocked(BaseHTTPRequestHandler):
    """A proxy that refuses XML-RPC: 405 to every POST."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def blocked_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Blocked)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/pypi"
    server.shutdown()
    server.server_close()


def test_up_warns_at_once_when_the_real_journal_ingestor_gets_405(blocked_url: str, tmp_path: Path) -> None:
    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(logs / "pypi-journal.log", "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "app", "ingest", "pypi-journal", "--xmlrpc-url", blocked_url,
             "--since-serial", "100", "--interval", "1", "--sink", "jsonl:-", "--state-dir", str(tmp_path / "st"),
             "--metrics-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )  # fmt: skip
    try:
        board = StatusBoard(
            [ChildSpec("pypi-journal", [], {}, port)], {"pypi-journal": blocked_url}, logs, every=30, colour=False
        )
        screen = io.StringIO()
        deadline = time.monotonic() + 30
        while "WARNING" not in screen.getvalue() and time.monotonic() < deadline:
            with redirect_stdout(screen):
                board.tick(force_status=True)
            time.sleep(0.5)
        for _ in range(2):  # still failing: looked at again, not warned again
            time.sleep(1.0)
            with redirect_stdout(screen):
                board.tick(force_status=True)
    finally:
        child.terminate()
        child.wait(10)
    out = screen.getvalue()
    warning = next((line for line in out.splitlines() if " WARNING " in line), "")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ WARNING\s+pypi-journal: HTTP 405 from ", warning), out
    assert (
        f"HTTP 405 from {blocked_url} (XML-RPC blocked?); quarantines will only be inferred from page polls, "
        "without upstream time" in warning
    )
    assert re.search(r"Z STATUS\s+pypi-journal\s+FAILING\s+no success yet", out), out
    assert out.count(" WARNING ") == 1, "one warning per failure episode, not one per look"
