"""``pypi-journal`` against the local fake PyPI's XML-RPC: rows, paging, rate limits, faults, cursors, Kafka."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from ingestors.pypi.config import JournalIngestConfig
from ingestors.pypi.journal_ingest import JournalIngestor
from qwatch.config import KafkaConfig
from qwatch.cursors import FileCursorStore, KafkaCursorStore
from qwatch.events import Cursor, DeadLetter, JournalEntryObserved
from qwatch.events.codec import Codec
from qwatch.events.topics import OBSERVATIONS
from qwatch.ids import event_id
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import KafkaSink, make_producer, read_topic
from qwatch.pypi.names import normalize
from qwatch.sinks import MemorySink, PublishError, Sink
from testing.fakepypi import FakePyPI, Fault
from tests.pypi_support import Served, Sleeps, fresh_metrics, of_type, polite, sample, serve_fake


@pytest.fixture
def pypi() -> Iterator[Served]:
    yield from serve_fake()


class RecordingCursors(FileCursorStore):
    """File cursors that also remember every save (to see one save per page)."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.saved: list[Cursor] = []

    def save(self, cursor: Cursor) -> None:
        super().save(cursor)
        self.saved.append(cursor)


def _ingestor(
    base: str,
    cursors: FileCursorStore,
    sink: Sink | None = None,
    sleeps: Sleeps | None = None,
    http: dict[str, float] | None = None,
    **cfg: object,
) -> tuple[JournalIngestor, MemorySink | Sink]:
    metrics = fresh_metrics()
    out = sink or MemorySink()
    config = JournalIngestConfig(xmlrpc_url=base + "/pypi", **cfg)  # type: ignore[arg-type]
    client = polite(metrics, "pypi-journal", sleeps, **(http or {}))
    return JournalIngestor(config, client, out, metrics, cursors, sleep=sleeps or Sleeps()), out


def _rows(sink: MemorySink | Sink) -> list[JournalEntryObserved]:
    assert isinstance(sink, MemorySink)
    return of_type(sink.events, JournalEntryObserved)


def test_every_journaled_state_becomes_a_row(pypi: Served, tmp_path: Path) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"], "1.1": ["demo-1.1.tar.gz"]})
    fake.add_project("Evil_Pkg", {"0.1": ["evil_pkg-0.1.tar.gz"]})
    start = fake.last_serial
    fake.quarantine("Demo")
    fake.clear_quarantine("Demo")
    fake.archive("Demo")  # no journal row: the journal cannot see archives
    fake.unarchive("Demo")
    fake.yank("Demo", "1.1", "broken")
    fake.remove_release("Demo", "1.0")
    fake.quarantine_release("Evil_Pkg", "0.1")
    fake.remove_project("Evil_Pkg")
    fake.add_project("Evil_Pkg", {"0.2": ["evil_pkg-0.2.tar.gz"]})  # re-registered
    cursors = FileCursorStore(tmp_path)
    ingestor, sink = _ingestor(base, cursors, since_serial=start)
    report = ingestor.poll()
    assert report.ok and report.start == start and report.cursor == fake.last_serial
    rows = _rows(sink)
    actions = [(r.package, r.action, r.version) for r in rows]
    assert actions[:6] == [
        ("demo", "project quarantined", None),
        ("demo", "project quarantine cleared", None),
        ("demo", "yank release", "1.1"),
        ("demo", "remove release", "1.0"),
        ("evil-pkg", "release quarantined", "0.1"),
        ("evil-pkg", "remove project", None),
    ]
    assert ("evil-pkg", "create", None) in actions[6:]
    expected = [tuple(row) for row in fake.journal[len(fake.journal) - len(rows) :]]
    assert [(r.name, r.version, r.timestamp // 1000, r.action, r.serial) for r in rows] == [
        (n, v, int(ts), a, s) for n, v, ts, a, s in expected
    ]
    for r in rows:
        assert r.event_id == event_id("pypi-journal", r.serial)
        assert (r.source, r.ecosystem, r.package) == ("pypi-journal", "PyPI", normalize(r.name))
        assert r.upstream_time == r.timestamp and r.timestamp % 1000 == 0
    assert rows[4].name == "Evil_Pkg", "the name is kept verbatim"
    saved = cursors.load(ingestor.component)
    assert saved is not None and saved.value == str(fake.last_serial)

    # caught up: another poll reads nothing and keeps the cursor
    report = ingestor.poll()
    assert report.ok and report.rows == 0 and report.cursor == fake.last_serial


def test_without_cursor_or_since_serial_starts_now(pypi: Served, tmp_path: Path) -> None:
    fake, base = pypi
    fake.add_project("Old", {"1.0": ["old-1.0.tar.gz"]})
    cursors = FileCursorStore(tmp_path)
    ingestor, sink = _ingestor(base, cursors)
    report = ingestor.poll()
    assert report.ok and _rows(sink) == [] and report.cursor == fake.last_serial
    assert cursors.load(ingestor.component) is not None, "the starting point is saved at once"
    fake.quarantine("Old")
    report = ingestor.poll()
    assert [r.action for r in _rows(sink)] == ["project quarantined"]


def test_pages_until_caught_up_saving_after_each_page(tmp_path: Path) -> None:
    fake = FakePyPI(start_serial=500, changelog_page_size=4)
    with fake.serve() as base:
        start = fake.last_serial
        for i in range(5):
            fake.add_project(f"p{i}", {"1.0": [f"p{i}-1.0.tar.gz"]})  # 3 rows each
        cursors = RecordingCursors(tmp_path)
        ingestor, sink = _ingestor(base, cursors, since_serial=start, page_size=4)
        report = ingestor.poll()
        assert report.ok and report.rows == 15 and report.pages == 4  # 4 + 4 + 4 + 3 (short: caught up)
        assert [int(c.value) for c in cursors.saved] == [start + 4, start + 8, start + 12, start + 15]
        assert [r.serial for r in _rows(sink)] == list(range(start + 1, start + 16))


def test_rate_limit_fault_waits_then_continues(pypi: Served, tmp_path: Path) -> None:
    fake, base = pypi
    start = fake.last_serial
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    fake.inject(Fault(kind="xmlrpc-fault", path_prefix="/pypi", retry_after=7))
    sleeps = Sleeps()
    ingestor, sink = _ingestor(base, FileCursorStore(tmp_path), sleeps=sleeps, since_serial=start)
    report = ingestor.poll()
    assert report.ok and report.rate_limited == 1 and len(_rows(sink)) == 3
    assert 7.0 in sleeps.calls, "Limit may reset in N seconds is honoured"
    assert sample(ingestor.metrics, "qwatch_ingest_retries_total", source="pypi-journal", reason="rate-limited") == 1

    # a reset beyond what we are willing to wait: give up this poll, keep the cursor, hint the wait
    fake.add_project("More", {"1.0": ["more-1.0.tar.gz"]})
    fake.inject(Fault(kind="xmlrpc-fault", path_prefix="/pypi", retry_after=100_000))
    report = ingestor.poll()
    assert (report.failure, report.wait_hint, report.cursor) == ("rate-limited", 100_000, start + 3)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(kind="500", path_prefix="/pypi", count=3), "http-status"),
        (Fault(kind="429", path_prefix="/pypi", count=3, retry_after=0.01), "http-status"),
        (Fault(kind="truncate", path_prefix="/pypi", count=3), "truncated"),
        (Fault(kind="slow", path_prefix="/pypi", count=3, delay=0.8), "timeout"),
        (Fault(kind="content-type", path_prefix="/pypi", content_type="text/html"), "content-type"),
        (Fault(kind="xmlrpc-fault", path_prefix="/pypi", code=-32601, message="method not found"), "xmlrpc-fault"),
    ],
    ids=["500", "429", "truncate", "timeout", "content-type", "other-fault"],
)
def test_faults_dead_letter_and_hold_the_cursor(pypi: Served, tmp_path: Path, fault: Fault, reason: str) -> None:
    fake, base = pypi
    start = fake.last_serial
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    cursors = FileCursorStore(tmp_path)
    ingestor, sink = _ingestor(base, cursors, since_serial=start, http={"timeout": 0.4})
    assert ingestor.poll().ok
    cursor_file = next(tmp_path.glob("cursor-*.json"))
    held = cursor_file.read_bytes()
    fake.quarantine("Demo")
    fake.inject(fault)
    report = ingestor.poll()
    assert report.failure == reason and not report.ok
    assert [d.reason for d in of_type(sink.events, DeadLetter)] == [reason]  # type: ignore[union-attr]
    assert cursor_file.read_bytes() == held, "the cursor must not move past a bad response"
    fake.clear_faults()
    report = ingestor.poll()
    assert report.ok and [r.action for r in _rows(sink)][-1] == "project quarantined"


class FailingSink(MemorySink):
    """Accepts events but never acknowledges them."""

    def flush(self, timeout: float | None = None) -> None:
        raise PublishError("broker unreachable", len(self.events))


def test_publish_failure_holds_the_cursor(pypi: Served, tmp_path: Path) -> None:
    fake, base = pypi
    start = fake.last_serial
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    cursors = FileCursorStore(tmp_path)
    failing, _ = _ingestor(base, cursors, sink=FailingSink(), since_serial=start)
    report = failing.poll()
    assert report.failure == "publish" and report.cursor == start
    assert cursors.load(failing.component) is None
    retry, sink = _ingestor(base, cursors, since_serial=start)
    assert retry.poll().ok and len(_rows(sink)) == 3, "nothing was skipped"


def test_cli_continues_from_the_cursor(pypi: Served, tmp_path: Path) -> None:
    fake, base = pypi
    fake.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    start = fake.last_serial
    fake.quarantine("Demo")
    cmd = [
        sys.executable,
        "-m",
        "app",
        "ingest",
        "pypi-journal",
        "--xmlrpc-url",
        base + "/pypi",
        "--since-serial",
        str(start),
        "--state-dir",
        str(tmp_path),
        "--once",
        "--sink",
        "jsonl:-",
    ]

    def run() -> list[dict[str, object]]:
        done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=60, check=True)
        return [json.loads(line) for line in done.stdout.splitlines()]

    first = run()
    assert [(x["type"], x["package"], x["action"], x["version"], x["serial"]) for x in first] == [
        ("JournalEntryObserved", "demo", "project quarantined", None, start + 1)
    ]
    assert isinstance(first[0]["timestamp"], int) and first[0]["source"] == "pypi-journal"
    assert run() == [], "the saved cursor wins over --since-serial"
    fake.clear_quarantine("Demo")
    assert [x["action"] for x in run()] == ["project quarantine cleared"]


@pytest.mark.kafka
def test_journal_through_kafka_with_kafka_cursors(pypi: Served, kafka_cfg: KafkaConfig, codec: Codec) -> None:
    fake, base = pypi
    tag = uuid.uuid4().hex[:8]
    names = {f"kq-{tag}-a", f"kq-{tag}-b"}
    start = fake.last_serial
    for name in sorted(names):
        fake.add_project(name, {"1.0": [f"{name}-1.0.tar.gz"]})
    fake.quarantine(f"kq-{tag}-a")

    producers: list[KafkaProducer] = []

    def make() -> JournalIngestor:
        metrics = fresh_metrics()
        cfg = JournalIngestConfig(xmlrpc_url=base + "/pypi", since_serial=start)
        producers.extend([make_producer(kafka_cfg), make_producer(kafka_cfg)])
        cursors = KafkaCursorStore(KafkaClients(kafka_cfg), producers[-2], codec)
        sink = KafkaSink(producers[-1], codec)
        return JournalIngestor(cfg, polite(metrics, "pypi-journal"), sink, metrics, cursors)

    first = make()
    assert first.poll().ok
    stored = first.cursors.load(first.component)
    assert stored is not None and stored.value == str(fake.last_serial)

    fake.remove_project(f"kq-{tag}-b")
    second = make()  # a restart: the cursor comes back from qwatch.cursors.v1
    report = second.poll()
    assert report.ok and report.start == int(stored.value) and report.rows == 1

    seen = [
        d.event
        for d in read_topic(KafkaClients(kafka_cfg), codec, OBSERVATIONS)
        if isinstance(d.event, JournalEntryObserved) and d.event.package in names
    ]
    # Keyed by package, so each package's rows are ordered within its partition; compare across packages as sets.
    assert sorted((e.package, e.action) for e in seen if e.action in ("project quarantined", "remove project")) == [
        (f"kq-{tag}-a", "project quarantined"),
        (f"kq-{tag}-b", "remove project"),
    ]
    for package in names:
        serials = [e.serial for e in seen if e.package == package]
        assert serials == sorted(serials)
    assert len({e.event_id for e in seen}) == len(seen) == 8  # 2 x (create, new release, add file) + 2
    for producer in producers:
        producer.close(timeout=5)
