"""Alerts, pure part and service logic: matching is source- and version-aware, ids are stable, retroactive checks
see current state, and alerts are emitted once but re-delivered for uncommitted transitions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry

from app.render import render
from qwatch import events
from qwatch.events.codec import Codec
from qwatch.events.outputs import Alert, InventoryRecord
from qwatch.metrics import Metrics
from qwatch.sinks import MemorySink
from subscribers.alerts.core import AlertService
from subscribers.alerts.matching import CurrentState, alert_id, match
from subscribers.gate.facts import ReportFact
from subscribers.inventory.core import build_record, latest, removal, watch_requests
from subscribers.inventory.lockfiles import load
from tests.fixture_paths import LOCAL

LOCK = LOCAL / "lockfiles" / "uv" / "uv.lock"
NOW = 1_800_000_000_000


def record(project: str = "acme", lock: Path = LOCK) -> InventoryRecord:
    return build_record(project, lock.name, load(lock), lock.read_bytes(), NOW)


def transition(
    kind: str,
    package: str,
    status: str = "active",
    version: str | None = None,
    report: str | None = None,
    **after: tuple[str, ...],
) -> events.Transition:
    state = events.PackageState(status=status, **after)  # type: ignore[arg-type]
    return events.Transition(
        event_id=f"{kind}-{package}-{version}-{report}",
        kind=kind,
        ecosystem="PyPI",
        package=package,
        severity="high",
        version=version,
        report_id=report,
        before=None,
        after=state,
        evidence=(),
        upstream_time=NOW - 5000,
        detected_at=NOW - 1000,
        summary=f"{package} {kind.lower()}",
    )


def test_record_keeps_sources_and_paths_compactly() -> None:
    rec = record()
    by_name = {p.name: p for p in rec.packages}
    assert by_name["acme-app"].source_kind == "project"
    assert by_name["delta"].parent == "beta" and rec.path_to("delta") == ("acme-app", "alpha", "beta", "delta")
    assert rec.path_to("alpha") == ("acme-app", "alpha")
    assert rec.path_to("nope") == ()
    assert len(rec.fingerprint) == 64
    watches = watch_requests(rec, NOW)
    assert [w.package for w in watches] == ["alpha", "beta", "colorama", "delta", "epsilon", "gamma", "urllib3"]
    assert {w.reason for w in watches} == {"inventory"}
    assert watch_requests(rec, NOW + 1)[0].event_id == watches[0].event_id  # no clock in the id
    codec = Codec()
    assert codec.decode(codec.encode(rec)) == rec


def test_latest_applies_removals() -> None:
    a, b = record("a"), record("b")
    assert set(latest([a, b, removal("a", NOW)])) == {"b"}


def test_project_level_transition_matches_transitive_dependency_with_path() -> None:
    alert = match(transition("QUARANTINED", "delta", "quarantined"), record(), NOW)
    assert alert is not None
    assert alert.path == ("acme-app", "alpha", "beta", "delta")
    assert (alert.project, alert.version, alert.kind, alert.severity) == ("acme", "3.0.0", "QUARANTINED", "high")
    assert alert.event_id == alert_id("acme", "QUARANTINED-delta-None-None")
    assert "acme-app > alpha > beta > delta" in alert.summary
    assert "QUARANTINED" in render(alert) and "acme-app > alpha > beta > delta" in render(alert)


def test_release_kinds_are_version_aware() -> None:
    rec = record()
    assert match(transition("RELEASE_REMOVED", "beta", version="2.0.0"), rec, NOW) is None
    hit = match(transition("RELEASE_REMOVED", "beta", version="2.1.0"), rec, NOW)
    assert hit is not None and hit.version == "2.1.0"
    assert match(transition("YANKED", "beta", version="2.1.1"), rec, NOW) is None
    assert match(transition("YANKED", "delta", version="3.0"), rec, NOW) is not None  # 3.0 == 3.0.0


def test_reports_use_affected_versions_when_known() -> None:
    rec = record()
    t = transition("REPORTED", "gamma", report="MAL-1", live_reports=("MAL-1",))
    assert match(t, rec, NOW) is not None  # scope unknown: every locked version
    assert match(t, rec, NOW, {"MAL-1": ReportFact("MAL-1", ("0.9.0",))}) is None
    assert match(t, rec, NOW, {"MAL-1": ReportFact("MAL-1", ("0.9.1",))}) is not None
    assert match(t, rec, NOW, {"MAL-1": ReportFact("MAL-1", (), True)}) is not None


def test_only_pypi_sourced_packages_match() -> None:
    rec = record()
    private = replace(
        rec, packages=tuple(replace(p, source_kind="index") if p.name == "delta" else p for p in rec.packages)
    )
    assert match(transition("QUARANTINED", "delta", "quarantined"), private, NOW) is None
    assert match(transition("QUARANTINED", "acme-app", "quarantined"), rec, NOW) is None  # the project itself
    assert match(replace(transition("QUARANTINED", "delta"), ecosystem="npm"), rec, NOW) is None


def test_current_state_points_at_the_transitions_behind_each_adverse_condition() -> None:
    state = CurrentState()
    state.apply(transition("YANKED", "beta", version="1.0", yanked_versions=("1.0",)))
    state.apply(transition("RELEASE_REMOVED", "beta", version="2.1.0", removed_versions=("2.1.0",)))
    state.apply(transition("QUARANTINED", "delta", "quarantined"))
    state.apply(transition("CLEARED", "delta", "active"))
    state.apply(transition("REPORTED", "gamma", report="MAL-9", live_reports=("MAL-9",)))
    assert [t.kind for t in state.adverse("beta")] == ["RELEASE_REMOVED"]
    assert state.adverse("delta") == []  # cleared: nothing to say now
    assert [t.kind for t in state.adverse("gamma")] == ["REPORTED"]
    alerts = state.retroactive(record(), NOW, {})
    assert {(a.package, a.kind, a.retroactive) for a in alerts} == {
        ("beta", "RELEASE_REMOVED", True),
        ("gamma", "REPORTED", True),
    }


def service() -> tuple[AlertService, MemorySink]:
    sink = MemorySink()
    return AlertService(sink, Metrics(CollectorRegistry()), clock=lambda: NOW), sink


def test_service_retroactive_on_registration_and_once_per_id() -> None:
    svc, sink = service()
    q = transition("QUARANTINED", "delta", "quarantined")
    assert svc.start([], [q], [], []) == []
    raised = svc.on_inventory(record())
    assert [(a.package, a.retroactive) for a in raised] == [("delta", True)]
    assert svc.on_inventory(record()) == []  # same fingerprint
    assert svc.on_transitions([q]) == []  # the live path raises the same id: not emitted twice
    assert len([e for e in sink.events if isinstance(e, Alert)]) == 1
    svc.on_inventory(removal("acme", NOW))
    assert svc.on_transitions([transition("REMOVED", "beta", "removed")]) == []


def test_service_start_skips_alerts_already_on_the_topic() -> None:
    svc, sink = service()
    q = transition("QUARANTINED", "delta", "quarantined")
    first = svc.start([record()], [q], [], [])
    assert len(first) == 1
    again, sink2 = service()
    assert again.start([record()], [q], [], first) == []
    assert sink2.events == []


def test_service_uses_state_records_for_report_scope() -> None:
    svc, _ = service()
    svc.start([record()], [], [], [])
    rec = events.PackageStateRecord(
        "PyPI",
        "gamma",
        "active",
        None,
        None,
        (),
        (),
        (),
        None,
        (events.ReportRecord("MAL-2", "live", ("0.1",), False, None, 0, None, 0),),
        (),
        (),
        NOW,
    )
    svc.on_state(rec)
    assert svc.on_transitions([transition("REPORTED", "gamma", report="MAL-2", live_reports=("MAL-2",))]) == []
