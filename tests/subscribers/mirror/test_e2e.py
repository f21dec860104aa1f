"""End to end with the real tools on the real broker: bandersnatch 8 mirrors the local PyPI into a temp dir served by
``python -m http.server``, devpi-server (with quarantine-watch's plugin) mirrors it as ``root/local``, and both
``qwatch mirror`` enforcers run as long-lived processes on a transitions topic. pip downloads a project through
both mirrors; the project is quarantined in the local PyPI and its QUARANTINED transition (the processor's record
format, journal evidence) is published; within the next poll pip can no longer get it through either mirror.
CLEARED brings it back. A malformed and an unknown-kind transition before that change nothing and are
dead-lettered with their reason.

The tools come from ``scripts/bootstrap`` (``python -m subscribers.mirror.tools install``); a missing tool fails
the test with the install command, never skips it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from qwatch import events, ids
from qwatch.config import KafkaConfig
from qwatch.events.codec import Codec
from qwatch.kafka.io import KafkaSink, make_producer
from subscribers.mirror import tools
from testing.fakepypi import FakePyPI

pytestmark = pytest.mark.kafka
QWATCH = str(Path(sys.executable).with_name("qwatch"))


def transition(kind: str, package: str, serial: int, *, version: str | None = None) -> events.Transition:
    """A transition as the processor writes it for a journal row (deterministic id, journal evidence)."""
    status = {"QUARANTINED": "quarantined", "REMOVED": "removed"}.get(kind, "active")
    now = ids.now_ms()
    return events.Transition(
        event_id=ids.event_id("processor", "PyPI", package, kind, serial),
        kind=kind,
        ecosystem="PyPI",
        package=package,
        severity="high",
        version=version,
        report_id=None,
        before=events.PackageState("active", serial - 1),
        after=events.PackageState(status, serial),
        evidence=(events.Evidence(ids.event_id("pypi-journal", package, serial), "pypi-journal", now),),
        upstream_time=now - 500,
        detected_at=now,
        summary=f"{kind} {package}",
    )


def report_state(package: str, report_id: str, versions: tuple[str, ...]) -> events.PackageStateRecord:
    """The processor's state record for a package with one live report (what carries the affected versions)."""
    now = ids.now_ms()
    report = events.ReportRecord(report_id, "live", versions, False, None, now, now, now)
    return events.PackageStateRecord("PyPI", package, "active", None, None, (), (), (), None, (report,), (), (), now)


def reported(package: str, report_id: str) -> events.Transition:
    now = ids.now_ms()
    return events.Transition(
        event_id=ids.event_id("processor", "PyPI", package, "REPORTED", report_id, "m1"),
        kind="REPORTED",
        ecosystem="PyPI",
        package=package,
        severity="critical",
        version=None,
        report_id=report_id,
        before=events.PackageState("active"),
        after=events.PackageState("active", live_reports=(report_id,)),
        evidence=(events.Evidence(ids.event_id("openssf", report_id), "openssf", now),),
        upstream_time=now,
        detected_at=now,
        summary=f"{report_id} reports {package}",
    )


def tree_digest(web: Path) -> str:
    """One hash over every path and its bytes under ``web`` (what http.server would serve)."""
    h = hashlib.sha256()
    for p in sorted(web.rglob("*")):
        h.update(str(p.relative_to(web)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def mirrors(tmp_path: Path) -> Iterator[tuple[FakePyPI, Path, str, str]]:
    """The local PyPI, a bandersnatch mirror of it (root dir, served URL) and a devpi mirror index URL."""
    tools.tool("bandersnatch")  # fails with the install command when missing
    tools.tool("devpi-server")
    pypi = FakePyPI(serve_files=True)
    pypi.add_project("evil-pkg", {"0.1": ["evil_pkg-0.1-py3-none-any.whl"]})
    pypi.add_project("safe-lib", {"1.0": ["safe_lib-1.0-py3-none-any.whl"]})
    pypi.add_project("two-ver", {"1.0": ["two_ver-1.0-py3-none-any.whl"], "2.0": ["two_ver-2.0-py3-none-any.whl"]})
    devpi = tools.DevpiServer(tmp_path / "devpi")
    devpi.launch()  # devpi's start-up is the slow part: it overlaps the bandersnatch sync
    try:
        with pypi.serve() as base:
            conf = tmp_path / "bandersnatch.conf"
            root = tmp_path / "mirror"
            conf.write_text(tools.bandersnatch_config(root, base))
            tools.run_bandersnatch(conf)
            devpi.wait()
            devpi.create_mirror("root/local", f"{base}/simple/")
            with tools.http_server(root / "web") as served:
                yield pypi, root, f"{served}/simple/", f"{devpi.url}/root/local/+simple/"
    finally:
        devpi.stop()


# Known flake, under investigation: in some full-suite runs on two xdist workers the enforcers' dead letters did not
# appear within 30 s while the worker's broker refused connections. Two ways a broker could vanish under a test are
# gone (a free port taken by another worker or an outgoing connection before the component bound it; a broker stop or
# a chaos kill signalling a recycled pid, see qwatch.broker.local.free_port and LocalBroker._own_pid), and no run
# since has reproduced it; a failure now carries the enforcers' own output. One rerun; a real regression fails twice.
@pytest.mark.flaky(reruns=1)
def test_quarantine_stops_both_mirrors_within_a_poll_and_clearance_brings_it_back(
    mirrors: tuple[FakePyPI, Path, str, str],
    kafka_cfg: KafkaConfig,
    topic_factory: Callable[..., str],
    tmp_path: Path,
) -> None:
    pypi, root, band_index, devpi_index = mirrors
    topic, state_topic = topic_factory(), topic_factory()
    downloads = tmp_path / "dl"

    def pip_ok(index: str, project: str) -> bool:
        return tools.pip_download(index, project, downloads).returncode == 0

    def served(project: str) -> list[bool]:
        """Cheap poll (pip itself takes seconds on a busy machine): does each mirror offer a file of it?"""
        out = []
        for index in (band_index, devpi_index):
            r = httpx.get(f"{index}{project}/", headers={"Accept": "text/html"}, timeout=10)
            out.append(r.status_code == 200 and ".whl" in r.text)
        return out

    for index in (band_index, devpi_index):
        assert pip_ok(index, "evil-pkg"), f"evil-pkg must install through {index} before its quarantine"

    env = {
        **os.environ,
        "QWATCH_KAFKA_BOOTSTRAP": kafka_cfg.bootstrap,
        "QWATCH_MIRROR_TRANSITIONS_TOPIC": topic,
        "QWATCH_MIRROR_STATE_TOPIC": state_topic,
        "QWATCH_MIRROR_POLL_TIMEOUT": "0.2",
    }
    letters = tmp_path / "deadletters.jsonl"
    group = f"mirror-e2e-{topic}"
    procs = [
        subprocess.Popen(
            [
                QWATCH,
                "mirror",
                "bandersnatch",
                "--root",
                str(root),
                "--group",
                group + "-b",
                "--sink",
                f"jsonl:{letters}.b",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                QWATCH,
                "mirror",
                "devpi",
                "--url",
                devpi_index.split("/root/")[0],
                "--index",
                "root/local",
                "--group",
                group + "-d",
                "--sink",
                f"jsonl:{letters}.d",
                "--state-dir",
                str(tmp_path / "st"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ),
    ]
    sink = KafkaSink(make_producer(kafka_cfg), Codec())
    failure: AssertionError | None = None
    try:
        # 1. malformed and unknown transitions: nothing changes, each is dead-lettered with its reason
        before = tree_digest(root / "web")
        bad_name = transition("QUARANTINED", "../../etc", 1)
        unknown = transition("EXPLODED", "evil-pkg", 2)
        for t in (bad_name, unknown):
            sink.emit(t, topic)
        sink.flush(10)

        def lettered(suffix: str) -> list[dict[str, object]]:
            path = Path(f"{letters}.{suffix}")
            return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

        wait_until(lambda: len(lettered("b")) == 2 and len(lettered("d")) == 2, 30, "both dead letters")
        for suffix in ("b", "d"):
            errors = sorted(str(d["error"]) for d in lettered(suffix))
            assert "not a valid project name" in errors[0] and "unknown transition kind 'EXPLODED'" in errors[1]
            assert {d["reason"] for d in lettered(suffix)} == {"invalid-transition"}
        assert tree_digest(root / "web") == before
        assert served("evil-pkg") == [True, True]

        # 2. the quarantine: upstream first, then the transition; both mirrors stop within the next poll
        pypi.quarantine("evil-pkg")
        sink.emit(transition("QUARANTINED", "evil-pkg", pypi.last_serial), topic)
        sink.flush(10)
        took = wait_until(lambda: served("evil-pkg") == [False, False], 20, "takedown")
        print(f"takedown observed on both mirrors {took:.2f}s after the transition was published")
        assert not pip_ok(band_index, "evil-pkg") and not pip_ok(devpi_index, "evil-pkg")
        assert not (root / "web" / "simple" / "evil-pkg").exists()
        assert "evil-pkg" not in (root / "web" / "simple" / "index.v1_json").read_text()
        assert (root / "qwatch-hold" / "evil-pkg" / "web" / "json" / "evil-pkg").exists()
        assert served("safe-lib") == [True, True], "only the quarantined project goes"

        # 3. the clearance brings it back through both mirrors
        pypi.clear_quarantine("evil-pkg")
        sink.emit(transition("CLEARED", "evil-pkg", pypi.last_serial), topic)
        sink.flush(10)
        wait_until(lambda: served("evil-pkg") == [True, True], 20, "restore")
        assert pip_ok(band_index, "evil-pkg") and pip_ok(devpi_index, "evil-pkg")
        audit = [json.loads(x) for x in (root / "qwatch-audit.jsonl").read_text().splitlines()]
        ops = [(a["op"], a["kind"]) for a in audit]
        assert ("hide_project", "QUARANTINED") in ops and ("restore_project", "CLEARED") in ops
        assert all(a["evidence"] for a in audit if a["op"] in ("hide_project", "restore_project"))

        # 4. a live report with no PyPI verdict (upstream still serves everything): only the affected version goes,
        #    on both mirrors (devpi's version filter, bandersnatch's page rewrite); the scope comes from the state
        sink.emit(report_state("two-ver", "MAL-2026-1", ("2.0",)), state_topic)
        sink.flush(10)
        # the processor writes both in one transaction; here they are two sends, so give the enforcers a few polls
        # to read the state first (a REPORTED whose scope is unknown would hide the whole project: fail closed)
        time.sleep(2)
        sink.emit(reported("two-ver", "MAL-2026-1"), topic)
        sink.flush(10)

        def two_ver_pages() -> list[str]:
            return [httpx.get(f"{i}two-ver/", headers={"Accept": "text/html"}, timeout=10).text for i in indexes]

        indexes = (band_index, devpi_index)
        wait_until(lambda: all("two_ver-2.0" not in t for t in two_ver_pages()), 20, "the reported version to go")
        assert all("two_ver-1.0" in t for t in two_ver_pages()), "the unaffected version stays"
        assert not any(tools.pip_download(i, "two-ver==2.0", downloads).returncode == 0 for i in indexes)
    except AssertionError as exc:
        failure = exc
        raise
    finally:
        for p in procs:
            p.terminate()
        outputs = [p.communicate(timeout=20)[0] for p in procs]
        if failure is not None:  # what the enforcers said tells a slow start from a broker problem
            for name, p, out in zip(("bandersnatch", "devpi"), procs, outputs, strict=True):
                failure.add_note(f"--- qwatch mirror {name} (exit {p.returncode}):\n{out.decode()[-4000:]}")
    assert all(p.returncode == 0 for p in procs), [o.decode()[-2000:] for o in outputs]
