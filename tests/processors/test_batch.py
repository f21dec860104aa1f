"""The batch step shared by the adapters: dead letters, poison records, metrics only after commit."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from processors import batch as batch_mod
from processors.batch import Batch
from qwatch import events
from qwatch.events.state import PackageStateRecord
from qwatch.metrics import Metrics
from qwatch.sinks import Delivery
from testing.samples import T0, journal, page

NOW = T0 + 10_000


def deliver(event: object, offset: int = 0, error: str | None = None, raw: bytes | None = None) -> Delivery:
    return Delivery(event, "qwatch.observations.v1", 3, offset, b"PyPI:demo", raw, error)


def test_transitions_states_and_metrics() -> None:
    metrics = Metrics(CollectorRegistry())
    b = Batch(lambda: NOW)
    states: dict[str, PackageStateRecord] = {}
    b.apply(deliver(page("demo", "active", 5, T0)), states, 3)
    b.apply(deliver(journal("demo", 6, "project quarantined", ts=T0 + 4_000), 1), states, 3)
    assert [t.kind for t in b.transitions] == ["QUARANTINED"]
    assert set(b.changed) == {(3, "PyPI:demo")} and b.changed[(3, "PyPI:demo")].status == "quarantined"
    assert states == {}  # nothing is applied before the adapter commits
    sample = metrics.registry.get_sample_value
    assert sample("qwatch_transitions_total", {"kind": "QUARANTINED"}) is None
    b.record(metrics)
    assert sample("qwatch_transitions_total", {"kind": "QUARANTINED"}) == 1
    assert sample("qwatch_processor_observations_total", {"outcome": "transition"}) == 1
    assert sample("qwatch_detection_latency_seconds_sum", {"kind": "QUARANTINED"}) == pytest.approx(6.0)


def test_undecodable_and_foreign_records_are_dead_letters() -> None:
    metrics = Metrics(CollectorRegistry())
    b = Batch(lambda: NOW)
    b.apply(deliver(None, 7, "not Avro single-object encoding", b"\x00\x01"), {}, 3)
    b.apply(deliver(events.Cursor("c", "v", 1), 8), {}, 3)
    assert [(d.reason, d.pointer, d.payload) for d in b.deadletters] == [
        ("schema", "qwatch.observations.v1[3]@7", "\x00\x01"),
        ("unexpected-type", "qwatch.observations.v1[3]@8", None),
    ]
    again = Batch(lambda: NOW + 1)
    again.apply(deliver(None, 7, "not Avro single-object encoding", b"\x00\x01"), {}, 3)
    assert again.deadletters[0].event_id == b.deadletters[0].event_id  # no clock in the id
    b.record(metrics)
    labels = {"source": "processor", "reason": "schema"}
    assert metrics.registry.get_sample_value("qwatch_deadletters_total", labels) == 1


def test_a_poison_record_is_parked_and_the_batch_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(batch_mod, "step", boom)
    b = Batch(lambda: NOW)
    b.apply(deliver(journal("demo", 6, "create")), {}, 3)
    assert [d.reason for d in b.deadletters] == ["processing"] and "RuntimeError: bug" in b.deadletters[0].error


def test_checkpoint_metadata_round_trips_and_ignores_foreign_metadata() -> None:
    from processors.partitions import Partition, checkpoint_metadata, parse_checkpoint

    assert parse_checkpoint(checkpoint_metadata(1234)) == 1234
    assert parse_checkpoint("") is None and parse_checkpoint(None) is None
    assert parse_checkpoint("qwatch-state-checkpoint=x") is None and parse_checkpoint("other") is None
    assert Partition(0, next_offset=150, checkpoint=100).unflushed == 50
    assert Partition(0).unflushed == 0
