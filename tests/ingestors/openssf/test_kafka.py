"""The real CLI against the session's real Apache Kafka: events on the observation/dead-letter topics, cursor on
``qwatch.cursors.v1``. The topics are shared with other tests, so everything is filtered by this test's own
package names and commit shas.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ingestors.openssf.cli import component_name
from qwatch.config import KafkaConfig
from qwatch.cursors import KafkaCursorStore
from qwatch.events import DeadLetter, ReportObserved
from qwatch.events.codec import Codec
from qwatch.events.topics import DEADLETTER, OBSERVATIONS
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import make_producer, read_topic
from tests.openssf_support import WorkRepo, gone, live, osv


def _ingest(repo: Path, kafka_cfg: KafkaConfig, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWATCH_")}
    env["QWATCH_CACHE_DIR"] = str(cache)
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "ingest",
        "openssf",
        "--repo",
        str(repo),
        "--once",
        "--sink",
        "kafka",
        "--bootstrap",
        kafka_cfg.bootstrap,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.kafka
def test_kafka_sink_events_and_cursor(kafka_cfg: KafkaConfig, codec: Codec, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    one, two = f"qw-{tag}-one", f"qw-{tag}-two"
    id1, id2 = f"MAL-2099-{int(tag[:6], 16)}", f"MAL-2099-{int(tag[:6], 16) + 1}"
    repo = WorkRepo(tmp_path / "upstream")
    bad = f"osv/malicious/pypi/{tag}/MAL-2099-1.json"
    first = repo.commit({live(one, id1): osv(id1, one), live(two, id2): osv(id2, two), bad: "{,}"})
    proc = _ingest(repo.path, kafka_cfg, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    withdrawn = osv(id2, two, withdrawn="2026-02-01T00:00:00Z")
    head = repo.move(live(two, id2), gone(two, id2), withdrawn, "Withdraw FPs")
    proc = _ingest(repo.path, kafka_cfg, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr

    mine = [
        d.event
        for d in read_topic(KafkaClients(kafka_cfg), codec, OBSERVATIONS, timeout=30)
        if isinstance(d.event, ReportObserved) and d.event.package in (one, two)
    ]
    assert sorted((e.change, e.report_id, e.commit) for e in mine) == sorted(
        [("existing", id1, first), ("existing", id2, first), ("withdrawn", id2, head)]
    )
    assert {e.source for e in mine} == {"openssf"} and len({e.event_id for e in mine}) == 3
    dead = [
        d.event
        for d in read_topic(KafkaClients(kafka_cfg), codec, DEADLETTER, timeout=30)
        if isinstance(d.event, DeadLetter) and d.event.pointer == f"{bad}@{first}"
    ]
    assert [d.reason for d in dead] == ["malformed-json"]

    store = KafkaCursorStore(KafkaClients(kafka_cfg), make_producer(kafka_cfg), codec)
    cursor = store.load(component_name(str(repo.path), "main"))
    assert cursor is not None and cursor.value == head
    assert cursor.upstream_time == repo.repo.commit(head).committed_date * 1000
