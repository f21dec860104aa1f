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
from qwatch.remediation import for_kind
from qwatch.sinks import MemorySink
from subscribers.alerts.core import AlertService
from subscribers.alerts.matching import CurrentState, alert_id, match
from subscribers.gate.facts import ReportFact, vkeys
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


def test_alerts_carry_the_gates_remediation_links_and_the_journal_serial() -> None:
    from qwatch.remediation import ADVICE

    journal = replace(
        transition("QUARANTINED", "delta", "quarantined"),
        after=events.PackageState(status="quarantined", last_serial=1022),
        evidence=(events.Evidence("obs", "pypi-journal", NOW),),
    )
    alert = match(journal, record(), NOW)
    assert alert is not None
    assert alert.remediation == f"delta==3.0.0: {ADVICE['quarantined']}."
    assert alert.links == ("https://pypi.org/project/delta/",)
    assert alert.journal_serial == 1022
    page = replace(journal, evidence=(events.Evidence("obs", "pypi-simple", NOW),))
    assert match(page, record(), NOW).journal_serial is None  # type: ignore[union-attr]
    report = match(transition("REPORTED", "gamma", report="MAL-2026-1", live_reports=("MAL-2026-1",)), record(), NOW)
    assert report is not None and report.links[-1] == "https://osv.dev/vulnerability/MAL-2026-1"
    assert ADVICE["malicious"] in report.remediation
    release = match(transition("RELEASE_REMOVED", "beta", version="2.1.0"), record(), NOW)
    assert release is not None and "re-lock to an available version" in release.remediation
    assert release.links[1] == "https://pypi.org/project/beta/2.1.0/"
    codec = Codec()
    assert codec.decode(codec.encode(alert)) == alert  # the new fields travel on qwatch.alerts.v1


def test_the_gate_and_the_alert_say_the_same_thing_about_the_same_condition() -> None:
    """A developer paged by an alert and one failed by the gate get the same advice (one table, two users)."""
    from subscribers.gate.policy import evaluate
    from tests.subscribers.gate.test_policy import CORP, INV, SOAK, clean, facts
    from tests.subscribers.gate.test_policy import NOW as GATE_NOW

    cases = {
        "QUARANTINED": ({"leaf": facts("leaf", "quarantined", ())}, "quarantined"),
        "REMOVED": ({"leaf": facts("leaf", "removed", ())}, "removed"),
        "REPORTED": ({"leaf": facts("leaf", reports=(ReportFact("MAL-2026-9", None, True),))}, "malicious"),
        "RELEASE_REMOVED": ({"leaf": facts("leaf", removed_versions=vkeys(["1.0"]))}, "version-missing"),
    }
    for kind, (override, reason) in cases.items():
        finding = next(f for f in evaluate(INV, {**clean(), **override}, GATE_NOW, SOAK, sources=CORP).findings)
        assert finding.reason == reason
        advice = for_kind(kind).split(": ")[-1]  # release kinds prefix why; the advice is the gate's
        assert finding.message.endswith(advice), (kind, finding.message, advice)
