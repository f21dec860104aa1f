"""Provenance drift end to end on a real broker: the local PyPI → ``ingest pypi-provenance`` → ``process`` →
``alerts`` (a real webhook receiver) → ``gate --require-provenance``.

Three scenarios, each a project with two attested releases (the baseline, seen first, so silent) and then one new
release:

* ``pypi-attestations``: real provenance recorded from PyPI for 0.0.19 (GitHub ``trailofbits/pypi-attestations``),
  verified offline against Sigstore's shipped trust root; 0.0.20 comes without attestation → PROVENANCE_LOST.
* ``gcb-attestation-test``: real Google-attested 0.0.0 (verified); 0.0.1 attested in that publisher's name with
  a subject digest that is not the file's → PROVENANCE_INVALID.
* ``changed-demo``: synthetic attestations by ``org/changed-demo``, then 1.2 attested by ``attacker/changed-demo``
  → PROVENANCE_CHANGED. A changed publisher needs two *verifiable* identities on one project, which no recorded
  real data has, so this project lives on a second local index whose ingestor runs with ``--signatures off``, and
  the evidence says so. (Two indexes, because every ingestor also follows the watch requests on Kafka: one index
  per verification mode keeps each project's provenance checked one way.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qwatch.broker import LocalBroker
from qwatch.config import KafkaConfig
from qwatch.events import Transition
from qwatch.events.codec import Codec
from qwatch.events.outputs import Alert
from qwatch.events.topics import ALERTS, TRANSITIONS
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import read_topic
from testing.fakepypi import FakePyPI, Fault
from testing.fakepypi.integrity import github_publisher
from tests.cli_support import Received, wait_for, webhook_receiver

QWATCH = str(Path(sys.executable).with_name("qwatch"))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "provenance"
DAY = 86400.0
T0 = time.time() - 400 * DAY
REAL_GH = "pypi_attestations-0.0.19.tar.gz"
REAL_GOOGLE = "gcb_attestation_test-0.0.0.tar.gz"
GOOGLE = {"kind": "Google", "email": "919436158236-compute@developer.gserviceaccount.com"}


def cli(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([QWATCH, *args, "--bootstrap", bootstrap], capture_output=True, text=True, timeout=180)


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    with webhook_receiver() as served:
        yield served


@pytest.fixture
def synthetic_pypi() -> Iterator[FakePyPI]:
    fake = FakePyPI()
    fake.add_project("changed-demo", {"1.0": ["changed_demo-1.0.tar.gz"]}, upload_time=T0)
    fake.add_release("changed-demo", "1.1", ["changed_demo-1.1.tar.gz"], upload_time=T0 + DAY)
    for f in ("changed_demo-1.0.tar.gz", "changed_demo-1.1.tar.gz"):
        fake.attest(f, github_publisher("org/changed-demo"))
    with fake.serve():
        yield fake


@pytest.fixture
def pypi() -> Iterator[FakePyPI]:
    fake = FakePyPI()
    fake.add_project("pypi-attestations", {"0.0.19": [REAL_GH]}, upload_time=T0)
    fake.use_real_file(REAL_GH, (FIXTURES / REAL_GH).read_bytes())
    fake.attest(REAL_GH, body=(FIXTURES / f"{REAL_GH}.provenance").read_bytes())
    fake.add_project("gcb-attestation-test", {"0.0.0": [REAL_GOOGLE]}, upload_time=T0)
    fake.use_real_file(REAL_GOOGLE, (FIXTURES / REAL_GOOGLE).read_bytes())
    fake.attest(REAL_GOOGLE, body=(FIXTURES / f"{REAL_GOOGLE}.provenance").read_bytes())
    with fake.serve():
        yield fake


def _drift(pypi: FakePyPI, synthetic: FakePyPI) -> None:
    """The three new releases, uploaded after the baseline was seen."""
    later = T0 + 10 * DAY
    pypi.add_release("pypi-attestations", "0.0.20", ["pypi_attestations-0.0.20.tar.gz"], upload_time=later)
    pypi.add_release("gcb-attestation-test", "0.0.1", ["gcb_attestation_test-0.0.1.tar.gz"], upload_time=later)
    pypi.attest("gcb_attestation_test-0.0.1.tar.gz", GOOGLE, subject_sha256="0b" * 32)
    synthetic.add_release("changed-demo", "1.2", ["changed_demo-1.2.tar.gz"], upload_time=later)
    synthetic.attest("changed_demo-1.2.tar.gz", github_publisher("attacker/changed-demo"))


@pytest.mark.kafka
def test_three_drifts_each_one_transition_one_alert_and_a_failing_gate(
    fresh_broker: Callable[[], LocalBroker],
    receiver: tuple[str, Received],
    codec: Codec,
    pypi: FakePyPI,
    synthetic_pypi: FakePyPI,
    tmp_path: Path,
) -> None:
    url, got = receiver
    boot = fresh_broker().bootstrap
    cfg = KafkaConfig(bootstrap=boot)
    real = tmp_path / "real.txt"
    real.write_text("pypi-attestations\ngcb-attestation-test\n")
    synthetic = tmp_path / "synthetic.txt"
    synthetic.write_text("changed-demo\n")
    lock = tmp_path / "requirements.txt"
    lock.write_text("pypi-attestations==0.0.20\ngcb-attestation-test==0.0.1\nchanged-demo==1.2\n")
    index = f"{pypi.base_url}/simple/"
    synthetic_index = f"{synthetic_pypi.base_url}/simple/"

    def ingest() -> None:
        for where, watch, signatures in ((index, real, "sigstore"), (synthetic_index, synthetic, "off")):
            done = cli(
                boot, "ingest", "pypi-provenance", "--index-url", where, "--watch", str(watch), "--once",
                "--signatures", signatures, "--state-dir", str(tmp_path / f"state-{signatures}"),
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
        processed = cli(boot, "process", "--once", "--idle-exit", "3")
        assert processed.returncode == 0, processed.stderr

    def transitions() -> list[Transition]:
        return [d.event for d in read_topic(KafkaClients(cfg), codec, TRANSITIONS) if isinstance(d.event, Transition)]

    added = cli(boot, "inventory", "add", "--name", "acme", "--lock", str(lock))
    assert added.returncode == 0, added.stderr
    lines: list[str] = []
    proc = subprocess.Popen(
        [QWATCH, "alerts", "--bootstrap", boot, "--group", "prov-e2e", "--webhook-url", url],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "QWATCH_WEBHOOK_SECRET": "s", "QWATCH_ALERTS_POLL_TIMEOUT": "0.5"},
    )
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(lambda: any("alerts: ready" in line for line in lines), 60, "qwatch alerts to be ready")
        ingest()  # first sight: the baseline, silent
        assert transitions() == []
        _drift(pypi, synthetic_pypi)
        ingest()
        ingest()  # a second look changes nothing: each drift is one transition
        seen = sorted((t.package, t.kind, t.version, t.severity) for t in transitions())
        assert seen == [
            ("changed-demo", "PROVENANCE_CHANGED", "1.2", "high"),
            ("gcb-attestation-test", "PROVENANCE_INVALID", "0.0.1", "critical"),
            ("pypi-attestations", "PROVENANCE_LOST", "0.0.20", "high"),
        ]
        by_package = {t.package: t for t in transitions()}
        lost = by_package["pypi-attestations"].summary
        assert "trailofbits/pypi-attestations" in lost and "pypi_attestations-0.0.20.tar.gz" in lost
        assert "attacker/changed-demo" in by_package["changed-demo"].summary
        assert "signature not checked" in by_package["changed-demo"].summary  # says so; claims nothing
        assert "0b0b0b0b" in by_package["gcb-attestation-test"].summary
        wait_for(lambda: len(got) >= 3, 60, "three webhook POSTs")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, "".join(lines[-20:])
    alerts = [d.event for d in read_topic(KafkaClients(cfg), codec, ALERTS) if isinstance(d.event, Alert)]
    assert sorted((a.package, a.kind) for a in alerts) == [
        ("changed-demo", "PROVENANCE_CHANGED"),
        ("gcb-attestation-test", "PROVENANCE_INVALID"),
        ("pypi-attestations", "PROVENANCE_LOST"),
    ]
    posted = [json.loads(body)["data"] for _, body in got]
    assert sorted(p["kind"] for p in posted) == sorted(a.kind for a in alerts)
    assert all("maintainers confirm the release" in p["remediation"] for p in posted)
    _gate(pypi, index, synthetic_index, tmp_path)


def _gate(pypi: FakePyPI, index: str, synthetic_index: str, tmp_path: Path) -> None:
    """The gate judges each pin against the releases before it: exit 1 on drift, 0 without, 2 when it cannot."""

    def gate(pins: str, *extra: str, where: str = index) -> tuple[int, dict[str, Any]]:
        lock = tmp_path / "gate" / f"{abs(hash((pins, extra)))}" / "requirements.txt"
        lock.parent.mkdir(parents=True)
        lock.write_text(pins)
        done = subprocess.run(
            [QWATCH, "gate", "--lock", str(lock), "--index-url", where, "--facts", "pypi", "--format", "json",
             "--require-provenance", *extra],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return done.returncode, json.loads(done.stdout)

    code, doc = gate("pypi-attestations==0.0.20\ngcb-attestation-test==0.0.1\n")
    assert code == 1
    assert sorted((f["package"], f["reason"]) for f in doc["findings"]) == [
        ("gcb-attestation-test", "provenance-invalid"),
        ("pypi-attestations", "provenance-lost"),
    ]
    code, doc = gate("changed-demo==1.2\n", "--provenance-signatures", "off", where=synthetic_index)
    assert (code, [f["reason"] for f in doc["findings"]]) == (1, ["provenance-changed"])
    # The releases that kept the habit pass, with signatures verified where they are real.
    code, doc = gate("pypi-attestations==0.0.19\ngcb-attestation-test==0.0.0\n")
    assert (code, doc["findings"], doc["unverified"]) == (0, [], [])
    # Synthetic signatures do not verify: with verification on, the gate calls them invalid (never a pass).
    code, doc = gate("changed-demo==1.1\n", where=synthetic_index)
    assert (code, [f["reason"] for f in doc["findings"]]) == (1, ["provenance-invalid"])
    # Provenance that cannot be fetched is exit 2, not a pass and not "unattested".
    pypi.inject(Fault("503", path_prefix="/integrity/", count=1000))
    code, doc = gate("pypi-attestations==0.0.19\n")
    assert code == 2 and doc["unverified"][0]["reason"] == "provenance"
    pypi.clear_faults()
