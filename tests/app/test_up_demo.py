"""The main job end to end: ``qwatch up --demo`` on a real broker, real processes, a real local PyPI and git repo,
on a real terminal: it runs inside tmux and the screen is read back with ``tmux capture-pane``.

It checks the promise made to a newcomer: the scripted transitions appear, each exactly once, within a minute;
the screen has one time format, status lines per source and human latencies, and a closing summary; while it
runs, ``qwatch broker status`` and ``qwatch tail`` find its broker without flags; the live ``/metrics`` serves
every metric the Grafana dashboard queries; and it stops cleanly.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
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

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
LINE = re.compile(rf"^{STAMP} (?P<kind>[A-Z_]+)\s+\S+\s+PyPI:(?P<package>\S+)")
QWATCH = str(Path(sys.executable).with_name("qwatch"))


def _served_kinds(url: str, want: str, timeout: float) -> set[str]:
    """The transition kinds ``qwatch serve`` shows for a package, polled until ``want`` is among them."""
    deadline = time.monotonic() + timeout
    kinds: set[str] = set()
    while want not in kinds and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - 127.0.0.1
                kinds = {t["kind"] for t in json.loads(resp.read())["transitions"]}
        except OSError:
            pass
        if want not in kinds:
            time.sleep(0.5)
    return kinds


def _dashboard_metric_names() -> set[str]:
    from tests.deploy.test_ops_chart import METRIC_TOKEN, dashboard_exprs

    return {name for expr in dashboard_exprs() for name in METRIC_TOKEN.findall(expr)}


def _tmux() -> str:
    found = shutil.which("tmux")
    if found is None:
        pytest.fail("tmux is needed to capture the demo's screen: run ./scripts/bootstrap (apt-get install tmux)")
    return found


def test_demo_on_a_terminal_shows_every_scripted_transition_once_with_status_lines(tmp_path: Path) -> None:
    tmux = _tmux()
    bash = shutil.which("bash")
    assert bash, "bash is needed to record qwatch up's exit status: install it (apt-get install bash)"
    port, serve_port = free_port(), free_port()
    socket = f"qwatch-test-{os.getpid()}"
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),  # where `up` records its broker, isolated from the developer's
        "QWATCH_BROKER_DIR": str(tmp_path / "no-broker"),  # no `qwatch broker start` broker to prefer
        "TERM": "xterm-256color",
    }
    env.pop("NO_COLOR", None)
    up = [QWATCH, "up", "--demo", "--status-every", "10", "--metrics-port", str(port), "--serve-port", str(serve_port),
          "--run-dir", str(tmp_path / "run")]  # fmt: skip
    # The exit status comes from the shell that waited for `qwatch up`, not from tmux: tmux 3.3a sometimes marks a
    # pane dead (its pty read failed) without ever recording the status of the process that exited (reproduced by
    # hand: a pane whose program had exited 0 stayed "dead" with empty #{pane_dead_status} and #{pane_dead_time}).
    # Non-interactive bash lets `qwatch up` handle Ctrl-C and then carries on to record its status.
    status_file = tmp_path / "up.exit"
    script = f"{shlex.join(up)}; echo $? > {shlex.quote(str(status_file))}"
    subprocess.run(
        [tmux, "-L", socket, "new-session", "-d", "-s", "demo", "-x", "250", "-y", "60", bash, "-c", script, ";",
         "set-option", "-w", "-t", "demo", "remain-on-exit", "on", ";",
         "set-option", "-g", "history-limit", "5000"],
        env=env,
        check=True,
    )  # fmt: skip

    def pane(fmt: str) -> str:
        return subprocess.run(
            [tmux, "-L", socket, "display-message", "-p", "-t", "demo", fmt], capture_output=True, text=True
        ).stdout.strip()

    def screen(colours: bool = False) -> str:
        flags = ["-e"] if colours else []
        return subprocess.run(
            [tmux, "-L", socket, "capture-pane", "-p", "-J", *flags, "-S", "-", "-t", "demo"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def wait_screen(pattern: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, screen(), re.M):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} on screen within {timeout:.0f}s:\n{screen()[-4000:]}")
            time.sleep(0.5)
        return time.monotonic()

    scraped = ""
    try:
        watching = wait_screen(r"Z WATCHING ", 150)
        # Another terminal finds the broker `up` started, without flags.
        status = subprocess.run([QWATCH, "broker", "status"], capture_output=True, text=True, env=env, timeout=60)
        assert status.returncode == 0 and "started by qwatch up" in status.stdout, status.stdout + status.stderr
        summary = wait_screen(r"Z SUMMARY ", 180)
        # `up` started `qwatch serve` and printed its URL; the quarantined package's page has the transition.
        serve_url = re.search(r"Z SERVE\s+(http://127\.0\.0\.1:\d+/)", screen())
        assert serve_url, screen()[-3000:]
        served = _served_kinds(serve_url.group(1) + "v1/packages/pypi/evil-pkg", "QUARANTINED", 30)
        assert "QUARANTINED" in served, served
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:  # noqa: S310
            scraped = resp.read().decode()
        tail = subprocess.run(
            [QWATCH, "tail", "--topic", "alerts", "--from-beginning", "--max", "1", "--idle-exit", "20"],
            capture_output=True,
            text=True,
            env=env,
            timeout=90,
        )
        assert tail.returncode == 0 and "project=demo-app" in tail.stdout, tail.stdout + tail.stderr
        subprocess.run([tmux, "-L", socket, "send-keys", "-t", "demo", "C-c"], check=True)  # as a user stops it
        deadline = time.monotonic() + 60
        exit_status = ""
        while not exit_status and time.monotonic() < deadline:
            time.sleep(0.5)
            exit_status = status_file.read_text().strip() if status_file.exists() else ""
        how_it_ended = f"tmux: pane dead={pane('#{pane_dead}')!r} signal={pane('#{pane_dead_signal}')!r}"
        out, coloured = screen(), screen(colours=True)
    finally:
        subprocess.run([tmux, "-L", socket, "kill-server"], check=False)
    (tmp_path / "screen.txt").write_text(out)
    print(out)
    stopped = re.search(r"Z STOPPED\s+exit codes: \{([^}]*)\}", out)
    assert stopped, out[-3000:]
    children = dict(re.findall(r"'([\w-]+)': (-?\d+)", stopped.group(1)))
    assert children and set(children.values()) == {"0"}, stopped.group(0)
    ended = exit_status or "no status within 60 s"
    assert exit_status == "0", f"qwatch up exited with {ended!r} ({how_it_ended}):\n{out[-3000:]}"
    out = "\n".join(line for line in out.splitlines() if not line.startswith("Pane is dead"))

    seen = Counter((m["kind"], m["package"]) for m in map(LINE.match, out.splitlines()) if m)
    expected = Counter(EXPECTED_TRANSITIONS)
    assert seen & expected == expected and all(seen[k] == 1 for k in expected), out[-4000:]
    # The script's last change is at 30 s; on an idle machine the summary follows within seconds of it.
    assert summary - watching < 120, "the scripted changes must all arrive within two minutes of the start"
    # One time format on the whole screen: every line starts with the same RFC 3339 stamp.
    lines = [line.removeprefix("^C") for line in out.splitlines() if line.strip()]  # ^C: the tty echoes Ctrl-C
    assert all(re.match(rf"^{STAMP} ", line) for line in lines), [x for x in lines if not re.match(STAMP, x)][:5]
    # Status lines per source, human latencies (never raw seconds like 16873957.3s), a closing summary.
    for source in ("openssf", "pypi-journal", "pypi-simple", "pypi-json"):
        assert re.search(rf"Z STATUS\s+{source}\s+ok\s+last success [\d.]+ (s|min) ago", out), out[-4000:]
    assert re.search(r"latency \d+(\.\d)? s ", out) and re.search(r"latency \d+ d \d+ h ", out), out[-4000:]
    assert not re.search(r"latency=?[\d.]+s\b", out)
    assert re.search(rf"^{STAMP} SUMMARY\s+all {len(expected)} scripted changes arrived", out, re.M), out[-3000:]
    # Signed, path-carrying alerts, including the first quarantine (published while the alerts group may still be
    # joining: a new group starts where its start-up read ended, tests/subscribers/alerts/test_e2e.py).
    for alert in (
        "QUARANTINED evil-pkg via demo > typo-squat > evil-pkg",
        "QUARANTINED typo-squat via demo > typo-squat",
    ):
        assert re.search(rf"Z WEBHOOK\s+signed alert for demo-app: {alert}", out), out[-4000:]
    assert "restarts: none" in out
    assert "\x1b[31mhigh\x1b[0m" in coloured or "\x1b[31mhigh\x1b[39m" in coloured, "severity is coloured on a tty"

    exported = {line.split("{")[0].split(" ")[0] for line in scraped.splitlines() if line.startswith("qwatch_")}
    missing = _dashboard_metric_names() - exported
    assert not missing, f"the dashboard queries metrics no running component exports: {sorted(missing)}"
    assert 'component="processor"' in scraped and 'component="pypi-journal"' in scraped
