"""The main job end to end: ``qwatch up --demo`` on a real broker, real processes, a real local PyPI and git repo.

It checks the promise made to a newcomer (the scripted transitions appear, each exactly once, within a minute),
the live ``/metrics`` against every metric the Grafana dashboard queries, and a clean shutdown.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from app.demo import EXPECTED_TRANSITIONS
from qwatch.broker.local import free_port

pytestmark = pytest.mark.kafka

LINE = re.compile(r"^\S+Z (?P<kind>[A-Z_]+)\s+\S+\s+PyPI:(?P<package>\S+)")


def _dashboard_metric_names() -> set[str]:
    from tests.deploy.test_ops_chart import METRIC_TOKEN, dashboard_exprs

    return {name for expr in dashboard_exprs() for name in METRIC_TOKEN.findall(expr)}


def test_demo_shows_every_scripted_transition_once_and_serves_the_dashboard_metrics(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "up",
            "--demo",
            "--for",
            "45",
            "--metrics-port",
            str(port),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    scraped = ""
    try:
        time.sleep(36)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:  # noqa: S310
            scraped = resp.read().decode()
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    elapsed = time.monotonic() - started

    seen = Counter((m["kind"], m["package"]) for m in map(LINE.match, out.splitlines()) if m)
    assert seen == Counter(EXPECTED_TRANSITIONS), out[-4000:]
    assert elapsed < 60 + 30, "the demo must show its transitions within a minute (plus start and stop)"
    # Signed, path-carrying alerts, including the first quarantine (published while the alerts group may still be
    # joining: a new group starts where its start-up read ended, tests/subscribers/alerts/test_e2e.py).
    for alert in (
        "QUARANTINED evil-pkg via demo > typo-squat > evil-pkg",
        "QUARANTINED typo-squat via demo > typo-squat",
    ):
        assert f"webhook: signed alert for demo-app: {alert}" in out, out[-4000:]
    assert "restarts: none" in out

    exported = {line.split("{")[0].split(" ")[0] for line in scraped.splitlines() if line.startswith("qwatch_")}
    missing = _dashboard_metric_names() - exported
    assert not missing, f"the dashboard queries metrics no running component exports: {sorted(missing)}"
    assert 'component="processor"' in scraped and 'component="pypi-journal"' in scraped
