"""The alert rules and the Grafana dashboard, evaluated by a real Prometheus scraping the real components.

A private Apache Kafka broker, the local PyPI (``testing.fakepypi``), a local OpenSSF git repository, a webhook
receiver and every component (the four ingestors, the processor, the alerts service) run as ``qwatch``
subprocesses, each serving its own ``/metrics`` as a pod would. Prometheus (Debian's binary, installed by
``.ci/ops-check`` under ``~/.cache/quarantine-watch/tools/bin``) scrapes them every second and evaluates the chart's
rules file. Then:

1. healthy: upstream changes flow (a quarantine, a yank, a malicious report, a signed webhook); every dashboard
   query returns data, every rule evaluates without error, no ``team=platform`` alert fires (once start-up has
   settled with nothing pending), and the SOC alerts fire for what happened;
2. webhook down: the receiver stops while an inventory alert is due: ``QwatchWebhookFailing`` fires;
3. journal down and processor stuck: the XML-RPC endpoint answers 405 (a proxy blocking POSTs) and the processor
   is frozen (SIGSTOP) while pages keep changing: ``QwatchSourceDown`` and ``QwatchFeedStale`` fire for
   pypi-journal, ``QwatchProcessorStuck`` fires, and the journal log carries the 405 warning exactly once.

Time scale, and why: Prometheus runs on real time and the rules speak in minutes (``for: 5m``, ``[10m]``, a journal
that is stale after 300 s). A test cannot wait that long, so the rules file is rewritten before Prometheus loads it:
every duration (range selectors, ``offset``, ``for:``) and every seconds threshold of ``QwatchFeedStale`` is divided
by 60, so a minute becomes a second. The expressions, label matchers, metric names and every other threshold stay
exactly as shipped; the rewrite asserts it changed what it meant to change. Scrape and evaluation run every second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from qwatch.broker import LocalBroker
from qwatch.broker.local import free_port
from testing.fakepypi import FakePyPI
from tests.fixture_paths import REPO
from tests.pypi_support import BlockingJournalProxy

pytestmark = pytest.mark.kafka

ROOT = REPO
RULES = ROOT / "helm" / "quarantine-watch" / "files" / "rules.yml"
DASHBOARD = ROOT / "helm" / "quarantine-watch" / "dashboards" / "quarantine-watch.json"
SCALE = 60
"""Minutes become seconds (see the module docstring)."""
FEED_STALE_SECONDS = (300, 1800, 3600, 21600)
"""QwatchFeedStale's thresholds in seconds (journal, pages, openssf success, openssf commit age)."""
SECRET = "prometheus-live-test-secret"
LOCKFILE = "evil-pkg==0.1\ntypo-squat==0.0.1\nfastapi==0.136.3\n"


# --------------------------------------------------------------------------------------------- tools


def prometheus_binary() -> str:
    """Debian's prometheus as .ci/ops-check installs it; missing is a failure that says how to install it."""
    cache = Path(os.environ.get("QWATCH_CACHE_DIR") or Path.home() / ".cache" / "quarantine-watch")
    candidate = cache / "tools" / "bin" / "prometheus"
    found = str(candidate) if candidate.is_file() else shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus not found: run `bash .ci/ops-check --install-only` (installs it from Debian's package)")
    return found


def scaled_rules(text: str) -> str:
    """The shipped rules with every duration and QwatchFeedStale's seconds thresholds divided by SCALE."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def seconds(amount: str, unit: str) -> str:
        total = int(amount) * units[unit]
        assert total % SCALE == 0, f"{amount}{unit} does not scale to whole seconds"
        return f"{total // SCALE}s"

    out, n_ranges = re.subn(r"\[(\d+)([smhd])\]", lambda m: f"[{seconds(*m.groups())}]", text)
    out, n_offsets = re.subn(r"offset (\d+)([smhd])", lambda m: f"offset {seconds(*m.groups())}", out)
    out, n_for = re.subn(r"(\n\s+for: )(\d+)([smhd])", lambda m: m.group(1) + seconds(m.group(2), m.group(3)), out)
    assert n_ranges >= 10 and n_offsets >= 3 and n_for >= 5, (n_ranges, n_offsets, n_for)
    start = out.index("- alert: QwatchFeedStale")
    end = out.index("- alert:", start + 1)
    block = out[start:end]
    for threshold in FEED_STALE_SECONDS:
        block, count = re.subn(rf"> {threshold}\b", f"> {threshold // SCALE}", block)
        assert count >= 1, f"QwatchFeedStale no longer compares with {threshold}: update FEED_STALE_SECONDS"
    return out[:start] + block + out[end:]


def dashboard_queries(range_seconds: int) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every dashboard target, with Grafana's variables filled in."""
    data = json.loads(DASHBOARD.read_text())
    panels = []
    for panel in data["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    subs = {"$__rate_interval": "10s", "$__range": f"{range_seconds}s", "$job": ".+", "$instance": ".+"}
    out = []
    for panel in panels:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in subs.items():
                expr = expr.replace(var, value)
            out.append((panel["title"], expr))
    for var in data["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):  # label_values(METRIC, label): the metric must exist
            out.append((f"variable {var['name']}", query["query"].split("(", 1)[1].split(",")[0].replace("$job", ".+")))
    return out


class Prometheus:
    """A real Prometheus on 127.0.0.1 with our scrape targets and the scaled rules; queried over its HTTP API."""

    def __init__(self, workdir: Path, targets: dict[str, int]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "rules.yml").write_text(scaled_rules(RULES.read_text()))
        static = [{"targets": [f"127.0.0.1:{port}"], "labels": {"component": name}} for name, port in targets.items()]
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": [str(workdir / "rules.yml")],
            "scrape_configs": [{"job_name": "qwatch", "static_configs": static}],
        }
        (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: _get_status(self.url + "/-/ready") == 200, 30, "Prometheus ready", self.tail)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - our own 127.0.0.1 server
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else [data]
        return result

    def firing(self) -> set[tuple[str, str]]:
        """(alertname, source or '') of every firing alert."""
        return {
            (a["labels"]["alertname"], a["labels"].get("source", ""))
            for a in self.api("alerts")["alerts"]
            if a["state"] == "firing"
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _get_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own 127.0.0.1 servers
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, detail: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{detail()}")


# --------------------------------------------------------------------------------------------- the world


class Receiver:
    """The SOC's webhook endpoint; ``down`` closes its socket so deliveries are refused."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                received.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - fixed by http.server
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env, timeout=60)


def osv_report(report_id: str, name: str, version: str) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps(
        {
            "modified": now,
            "published": now,
            "schema_version": "1.5.0",
            "id": report_id,
            "summary": f"Malicious code in {name} (PyPI)",
            "details": "seen by the live Prometheus test",
            "affected": [{"package": {"ecosystem": "PyPI", "name": name}, "versions": [version]}],
        },
        indent=2,
    )


class World:
    """Every component as its own process, plus the upstreams they watch."""

    def __init__(self, tmp: Path, bootstrap: str) -> None:
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.pypi = FakePyPI()
        for name, version in (("demo", "1.0"), ("evil-pkg", "0.1"), ("typo-squat", "0.0.1"), ("oldlib", "2.0")):
            self.pypi.add_project(name, {version: [f"{name}-{version}.tar.gz"]})
        self.pypi.add_project("fastapi", {"0.136.3": ["fastapi-0.136.3.tar.gz"]})
        base = self.pypi.start()
        self.proxy = BlockingJournalProxy(base + "/pypi")
        self.receiver = Receiver()
        self.repo = tmp / "ossf"
        self.repo.mkdir()
        git(self.repo, "init", "-q", "-b", "main")
        (self.repo / "README.md").write_text("malicious packages (test)\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "start")
        watch = tmp / "watch.txt"
        watch.write_text("demo\nevil-pkg\ntypo-squat\noldlib\nfastapi\n")
        lock = tmp / "requirements.txt"
        lock.write_text(LOCKFILE)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("QWATCH_")},
            "QWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "QWATCH_CACHE_DIR": str(tmp / "cache"),
            "QWATCH_WEBHOOK_SECRET": SECRET,
            "QWATCH_WEBHOOK_BACKOFF_BASE": "0.3",
            "QWATCH_WEBHOOK_BACKOFF_MAX": "1",
            "QWATCH_WEBHOOK_MAX_ATTEMPTS": "20",
            "QWATCH_HTTP_BACKOFF_BASE": "0.1",
            "QWATCH_HTTP_BACKOFF_MAX": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
        # The alerts service follows the inventory topic, so registering runs alongside the components' start.
        self.inventory = subprocess.Popen(
            [sys.executable, "-m", "app", "inventory", "add", "--name", "app", "--lock", str(lock)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        q = [sys.executable, "-m", "app"]
        watch_args = ["--watch", str(watch)]
        self.commands = {
            "pypi-journal": [*q, "ingest", "pypi-journal", "--xmlrpc-url", self.proxy.url, "--interval", "1"],
            "pypi-simple": [
                *q,
                "ingest",
                "pypi-simple",
                "--index-url",
                base + "/simple/",
                *watch_args,
                "--interval",
                "1",
                "--recheck",
                "1",
                "--state-dir",
                str(tmp / "simple-state"),
            ],
            "pypi-json": [*q, "ingest", "pypi-json", "--index-url", base + "/simple/", *watch_args, "--interval", "1"],
            "openssf": [
                *q,
                "ingest",
                "openssf",
                "--repo",
                str(self.repo),
                "--interval",
                "1",
                "--workdir",
                str(tmp / "ossf-work"),
            ],
            "processor": [*q, "process", "--group-id", "qwatch-processor"],
            "alerts": [*q, "alerts", "--webhook-url", self.receiver.url],
        }
        self.ports = {name: free_port() for name in self.commands}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for name, argv in self.commands.items():
            with open(self.logs / f"{name}.log", "wb") as log:
                env = {**self.env, "QWATCH_METRICS_PORT": str(self.ports[name])}
                self.procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def logs_tail(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)[-1500:]}" for name in self.commands)

    def all_ready(self) -> bool:
        if self.inventory.poll() is None:
            return False
        assert self.inventory.returncode == 0, self.inventory.communicate()[0].decode(errors="replace")[-2000:]
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}"
        return all(_get_status(f"http://127.0.0.1:{port}/readyz") == 200 for port in self.ports.values())

    def report(self, report_id: str, name: str, version: str) -> None:
        path = self.repo / "osv" / "malicious" / "pypi" / name / f"{report_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(osv_report(report_id, name, version))
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", f"add {report_id}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.proxy.server.shutdown()
        self.pypi.stop()


@pytest.fixture
def world(tmp_path: Path, fresh_broker: Callable[[], LocalBroker]) -> Iterator[World]:
    w = World(tmp_path, fresh_broker().bootstrap)
    try:
        yield w
    finally:
        w.stop()


# --------------------------------------------------------------------------------------------- the test


def test_rules_scale_only_durations_and_feed_stale_seconds() -> None:
    original = RULES.read_text()
    scaled = scaled_rules(original)
    assert "for: 5s" in scaled and "[10s]" in scaled and "offset 5s" in scaled and "[180s]" in scaled
    assert "> 5\n" in scaled and "> 360\n" in scaled, "QwatchFeedStale's 300 s and 21600 s thresholds"
    assert "> 0.2" in scaled and "> 1000" in scaled and ") > 10" in scaled, "other thresholds are not durations"
    strip = re.compile(r"\[\d+[smhd]\]|offset \d+[smhd]|for: \d+[smhd]|> \d+\b")
    assert strip.sub("", original) == strip.sub("", scaled)


def test_rules_and_dashboard_on_a_live_prometheus(world: World, tmp_path: Path) -> None:
    started = time.monotonic()
    prom = Prometheus(tmp_path / "prometheus", world.ports)
    try:
        wait_for(world.all_ready, 60, "every component's /readyz", world.logs_tail)

        # Start-up is not steady state: at this time scale a processor that joined its group a few seconds after the
        # ingestors' first events looks "stuck" for a moment. The healthy window starts once the processor has
        # caught up and nothing is pending; from then on no platform alert may fire.
        def settled() -> bool:
            lag = prom.query("sum(qwatch_consumer_lag_records)")
            pending = prom.query('ALERTS{team="platform"}')
            return bool(lag) and float(lag[0]["value"][1]) == 0 and not pending

        wait_for(
            settled,
            30,
            "a caught-up processor and no pending platform alert",
            lambda: "\n".join(f"{a['labels']} {a['state']}" for a in prom.api("alerts")["alerts"]),
        )
        ready_at = time.monotonic()

        # ---- healthy: a quarantine (journal), a yank (JSON API), a malicious report (git), a signed webhook
        world.pypi.quarantine("evil-pkg")
        world.pypi.yank("demo", "1.0", "broken")
        world.report("MAL-2026-90001", "fastapi", "0.136.3")

        def flowed() -> bool:
            kinds = {r["metric"]["kind"] for r in prom.query("qwatch_transitions_total > 0")}
            return {"QUARANTINED", "YANKED", "REPORTED"} <= kinds and len(world.receiver.received) >= 2

        wait_for(flowed, 40, "transitions and webhooks on the healthy pipeline", world.logs_tail)
        time.sleep(3)  # a few more scrapes and evaluations of the healthy state
        window = int(time.monotonic() - ready_at) + 1
        empty = []
        for title, expr in dashboard_queries(int(time.monotonic() - started) + 5):
            if not prom.query(expr):
                empty.append(f"{title}: {expr}")
        assert not empty, "dashboard queries without data on a healthy pipeline:\n" + "\n".join(empty)
        unhealthy = [r for g in prom.api("rules")["groups"] for r in g["rules"] if r["health"] != "ok"]
        assert not unhealthy, unhealthy
        rules = [r["name"] for g in prom.api("rules")["groups"] for r in g["rules"]]
        assert len(rules) == RULES.read_text().count("- alert:"), rules
        # Firing, not pending: at this time scale a batch that takes a second to commit can make "stuck" true for an
        # evaluation or two; `for:` exists to absorb exactly that, in production as here.
        platform = prom.query(f'count_over_time(ALERTS{{team="platform", alertstate="firing"}}[{window}s])')
        assert not platform, f"platform alerts fired on a healthy pipeline: {platform}"
        soc = {r["metric"]["alertname"] for r in prom.query(f'count_over_time(ALERTS{{team="soc"}}[{window}s])')}
        assert {"QwatchNewQuarantine", "QwatchReportedInstallable", "QwatchInventoryAffected"} <= soc, soc
        ratio = prom.query(
            'sum by (source) (qwatch_ingest_fetches_total{outcome!~"ok|not-modified|not-found"})'
            " / sum by (source) (qwatch_ingest_fetches_total)"
        )
        assert ratio and all(float(r["value"][1]) == 0 for r in ratio), ratio

        # ---- webhook down: an inventory alert is due and every delivery is refused
        world.receiver.down()
        world.pypi.quarantine("typo-squat")
        wait_for(lambda: ("QwatchWebhookFailing", "") in prom.firing(), 40, "QwatchWebhookFailing", world.logs_tail)

        # ---- journal down (405 from a proxy) and processor stuck, while pages keep changing
        world.proxy.blocked.set()
        world.procs["processor"].send_signal(signal.SIGSTOP)
        stop = threading.Event()

        def churn() -> None:
            archived = False
            while not stop.wait(0.7):
                (world.pypi.unarchive if archived else world.pypi.archive)("oldlib")
                archived = not archived

        threading.Thread(target=churn, daemon=True).start()
        expected = {
            ("QwatchSourceDown", "pypi-journal"),
            ("QwatchFeedStale", "pypi-journal"),
            ("QwatchProcessorStuck", ""),
        }
        try:
            wait_for(
                lambda: expected <= prom.firing(), 45, f"{expected}", lambda: f"{prom.firing()}\n{world.logs_tail()}"
            )
        finally:
            stop.set()
        up = prom.query('qwatch_source_up{source="pypi-journal"}')
        assert [float(r["value"][1]) for r in up] == [0.0]
        warning = "pypi-journal: HTTP 405 from " + world.proxy.url + " (XML-RPC blocked?); quarantines will only be "
        assert world.log("pypi-journal").count(warning) == 1, world.log("pypi-journal")[-3000:]
        for source in ("pypi-simple", "pypi-json", "openssf"):
            assert ("QwatchSourceDown", source) not in prom.firing()
    finally:
        prom.stop()
    assert time.monotonic() - started < 120
