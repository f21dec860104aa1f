"""Reports that change package, withdrawn reports that are edited, and snapshots as a baseline.

Three patterns of the real history (``shared/fixtures/ossf-history``): the same MAL id moved to another package's
folder (57c1e1b5b moves 2,209), files edited while they sit under ``osv/withdrawn/`` (c60d7ffca), and the first
run's snapshot. All on real git repositories built in tmp dirs, through the real ingestor.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from qwatch.events import ReportObserved
from qwatch.ids import event_id
from qwatch.openssf.classify import Location, classify_one
from qwatch.openssf.osv import AffectedPackage, ParsedReport, parse_report
from tests.openssf_support import COMPONENT, WorkRepo, gone, ingestor, live, osv

A, B, C = "MAL-2026-301", "MAL-2026-302", "MAL-2026-303"
W_AT = "2026-02-01T00:00:00Z"


def multi(report_id: str, *packages: tuple[str, str, tuple[str, ...]], withdrawn: str | None = None) -> str:
    """A hand-made record naming several packages: ``(ecosystem, name, versions)`` per ``affected[]`` entry."""
    doc: dict[str, Any] = {"modified": "2026-01-01T00:00:00Z", "published": "2026-01-01T00:00:00Z"}
    if withdrawn:
        doc["withdrawn"] = withdrawn
    doc.update(
        {
            "schema_version": "1.7.4",
            "id": report_id,
            "summary": "Malicious code in several packages",
            "affected": [
                {"package": {"ecosystem": eco, "name": name}, "versions": list(versions)}
                for eco, name, versions in packages
            ],
        }
    )
    return json.dumps(doc, indent=2) + "\n"


def triples(events: list[ReportObserved]) -> set[tuple[str, str, str]]:
    """(change, report id, package) of each event."""
    return {(e.change, e.report_id, e.package) for e in events}


@pytest.fixture
def repo(tmp_path: Path) -> WorkRepo:
    """Two live reports and one withdrawn one, the withdrawn one as upstream writes it (moved + field)."""
    r = WorkRepo(tmp_path / "upstream")
    r.commit(
        {
            live("alpha", A): osv(A, "alpha", versions=("1.0",)),
            live("beta", B): osv(B, "beta"),
            gone("lodestone", C): osv(C, "lodestone", versions=("0.0.58",), withdrawn=W_AT, modified=W_AT),
        },
        "base",
    )
    return r


# -- 1. a report that moves to another package ---------------------------------------------------------------
@pytest.mark.parametrize("per_commit", [True, False], ids=["per-commit", "range"])
def test_a_report_moved_to_another_package_leaves_the_old_one_and_is_new_for_the_new_one(
    repo: WorkRepo, tmp_path: Path, per_commit: bool
) -> None:
    base = repo.repo.head.commit.hexsha
    with ingestor(repo.path, tmp_path / "state", per_commit=per_commit, since=base) as h:
        h.service.poll()
        assert h.take() == set()
        # The same id now sits in another package's folder and names that package (57c1e1b5b does this 2,209 times).
        moved_doc = osv(A, "Gamma_Pkg", versions=("2.0", "2.1"), modified="2026-01-02T00:00:00Z")
        head = repo.move(live("alpha", A), live("gamma-pkg", A), moved_doc, "sync")
        h.service.poll()
        events = h.reports()
        assert triples(events) == {("moved", A, "alpha"), ("added", A, "gamma-pkg")}
        old = next(e for e in events if e.change == "moved")
        new = next(e for e in events if e.change == "added")
        # The old package hears of the report as it was there: old path, old names and versions, old record.
        assert (old.ecosystem, old.package, old.package_name, old.path) == ("PyPI", "alpha", "alpha", live("alpha", A))
        assert old.affected_versions == ("1.0",) and old.modified == "2026-01-01T00:00:00Z" and old.commit == head
        assert (new.package, new.package_name, new.path) == ("gamma-pkg", "Gamma_Pkg", live("gamma-pkg", A))
        assert new.affected_versions == ("2.0", "2.1")
        assert old.event_id == event_id("openssf", A, "moved", head, "PyPI", "alpha")
        assert new.event_id == event_id("openssf", A, "added", head)
        assert h.sample("qwatch_openssf_reports_total", {"change": "moved"}) == 1


def test_a_live_report_moved_into_another_packages_withdrawn_folder(repo: WorkRepo, tmp_path: Path) -> None:
    with ingestor(repo.path, tmp_path / "state", since=repo.repo.head.commit.hexsha) as h:
        repo.move(live("beta", B), gone("delta", B), osv(B, "delta", withdrawn=W_AT, modified=W_AT))
        h.service.poll()
        assert triples(h.reports()) == {("moved", B, "beta"), ("withdrawn", B, "delta")}


def test_two_reports_swapping_packages_tell_all_four_sides(repo: WorkRepo, tmp_path: Path) -> None:
    """57c1e1b5b renumbers: ids trade places between packages in one commit; no package is left stale."""
    with ingestor(repo.path, tmp_path / "state", since=repo.repo.head.commit.hexsha) as h:
        repo.commit(
            {
                live("alpha", A): None,
                live("beta", B): None,
                live("alpha", B): osv(B, "alpha", modified="2026-01-03T00:00:00Z"),
                live("beta", A): osv(A, "beta", modified="2026-01-03T00:00:00Z"),
            }
        )
        h.service.poll()
        assert triples(h.reports()) == {
            ("moved", A, "alpha"),
            ("added", A, "beta"),
            ("moved", B, "beta"),
            ("added", B, "alpha"),
        }
        assert len({e.event_id for e in h.reports()}) == 4


def test_a_move_found_by_the_force_push_comparison(repo: WorkRepo, tmp_path: Path) -> None:
    """The net difference against the index follows the same rule, even when the old blob is gone."""
    state = tmp_path / "state"
    with ingestor(repo.path, state) as h:
        h.service.poll()
    rewritten = WorkRepo(tmp_path / "rewritten")  # unrelated history, without the old blobs
    rewritten.commit(
        {
            live("gamma", A): osv(A, "gamma", modified="2026-01-05T00:00:00Z"),
            live("beta", B): osv(B, "beta"),
            gone("lodestone", C): osv(C, "lodestone", versions=("0.0.58",), withdrawn=W_AT, modified=W_AT),
        }
    )
    with ingestor(rewritten.path, state) as h:
        assert not h.source.has_commit(h.cursors.load(COMPONENT).value)  # type: ignore[union-attr]
        steps = h.service.poll().steps
        assert [s.mode for s in steps] == ["force-push"]
        events = h.reports()
        assert triples(events) == {("moved", A, "alpha"), ("added", A, "gamma")}
        old = next(e for e in events if e.change == "moved")
        assert (old.ecosystem, old.package, old.package_name, old.path) == ("PyPI", "alpha", "alpha", live("alpha", A))


# -- 2. a withdrawn report never comes back by an edit -----------------------------------------------------------
@pytest.mark.parametrize("per_commit", [True, False], ids=["per-commit", "range"])
def test_editing_a_withdrawn_report_is_withdrawn_not_modified(repo: WorkRepo, tmp_path: Path, per_commit: bool) -> None:
    with ingestor(repo.path, tmp_path / "state", per_commit=per_commit, since=repo.repo.head.commit.hexsha) as h:
        # c60d7ffca: a bulk rewrite also touches files already under osv/withdrawn/.
        edited = osv(C, "lodestone", versions=("0.0.58", "0.0.59"), withdrawn=W_AT, modified="2026-03-01T00:00:00Z")
        head = repo.commit({gone("lodestone", C): edited}, "update: khulnasoft")
        h.service.poll()
        events = h.reports()
        assert triples(events) == {("withdrawn", C, "lodestone")}
        assert events[0].withdrawn == W_AT and events[0].affected_versions == ("0.0.58", "0.0.59")
        assert events[0].event_id == event_id("openssf", C, "withdrawn", head)


def test_editing_a_report_withdrawn_by_field_only_is_withdrawn(repo: WorkRepo, tmp_path: Path) -> None:
    with ingestor(repo.path, tmp_path / "state", per_commit=True, since=repo.repo.head.commit.hexsha) as h:
        repo.commit({live("beta", B): osv(B, "beta", withdrawn=W_AT)})
        repo.commit({live("beta", B): osv(B, "beta", versions=("1.0.0", "1.0.1"), withdrawn=W_AT)})
        h.service.poll()
        assert [e.change for e in h.reports()] == ["withdrawn", "withdrawn"]


def test_deleting_a_withdrawn_report_after_an_edit_is_deleted(repo: WorkRepo, tmp_path: Path) -> None:
    """The edit is the part the old code got wrong (``modified``); the deletion was and stays ``deleted``."""
    with ingestor(repo.path, tmp_path / "state", per_commit=True, since=repo.repo.head.commit.hexsha) as h:
        repo.commit({gone("lodestone", C): osv(C, "lodestone", withdrawn=W_AT, modified="2026-03-01T00:00:00Z")})
        repo.commit({gone("lodestone", C): None}, "57c1e1b5b-style cleanup")
        h.service.poll()
        events = h.reports()
        assert [(e.change, e.report_id, e.package) for e in events] == [
            ("withdrawn", C, "lodestone"),
            ("deleted", C, "lodestone"),
        ]
        assert events[1].path == gone("lodestone", C)


def test_moving_a_withdrawn_report_back_after_an_edit_is_reinstated(repo: WorkRepo, tmp_path: Path) -> None:
    """The edit is the part the old code got wrong (``modified``); the un-withdrawal was and stays ``reinstated``."""
    with ingestor(repo.path, tmp_path / "state", per_commit=True, since=repo.repo.head.commit.hexsha) as h:
        repo.commit({gone("lodestone", C): osv(C, "lodestone", withdrawn=W_AT, modified="2026-03-01T00:00:00Z")})
        repo.move(gone("lodestone", C), live("lodestone", C), osv(C, "lodestone"), "Unwithdraw (#1278)")
        h.service.poll()
        events = h.reports()
        assert [(e.change, e.report_id) for e in events] == [("withdrawn", C), ("reinstated", C)]
        assert events[1].path == live("lodestone", C) and events[1].withdrawn is None


# -- 3. a snapshot is a baseline -----------------------------------------------------------------------------
def test_first_run_without_a_cursor_is_existing_not_added(repo: WorkRepo, tmp_path: Path) -> None:
    with ingestor(repo.path, tmp_path / "state") as h:
        steps = h.service.poll().steps
        assert [s.mode for s in steps] == ["snapshot"]
        assert h.take() == {("existing", A), ("existing", B), ("withdrawn", C)}
        # Afterwards news is news again.
        repo.commit({live("gamma", "MAL-2026-304"): osv("MAL-2026-304", "gamma")})
        h.service.poll()
        assert h.take() == {("added", "MAL-2026-304")}


def test_force_push_snapshot_fallback_is_existing_but_the_net_difference_keeps_added(
    repo: WorkRepo, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with ingestor(repo.path, state) as h:
        h.service.poll()
    rewritten = WorkRepo(tmp_path / "rewritten")
    rewritten.commit(
        {
            live("alpha", A): osv(A, "alpha", versions=("1.0",)),
            live("delta", "MAL-2026-305"): osv("MAL-2026-305", "delta"),
        }
    )
    with ingestor(rewritten.path, state) as h:  # the index survived: net difference, a new report is news
        h.service.poll()
        assert h.take() == {("added", "MAL-2026-305"), ("deleted", B), ("deleted", C)}
    (state / "index.sqlite").unlink()
    for extra in state.glob("index.sqlite-*"):
        extra.unlink()
    other = WorkRepo(tmp_path / "other")
    other.commit({live("epsilon", "MAL-2026-306"): osv("MAL-2026-306", "epsilon")})
    with ingestor(other.path, state) as h:  # neither the old commit nor the index: re-snapshot, a baseline
        assert [s.mode for s in h.service.poll().steps] == ["snapshot"]
        assert h.take() == {("existing", "MAL-2026-306")}


def test_an_index_written_before_this_change_still_names_moved_reports(repo: WorkRepo, tmp_path: Path) -> None:
    """The previous version's index has no ``more_packages`` column: opening it adds the column, keeps its rows."""
    state = tmp_path / "state"
    with ingestor(repo.path, state) as h:
        h.service.poll()
    db = sqlite3.connect(state / "index.sqlite")
    db.execute("ALTER TABLE files DROP COLUMN more_packages")
    db.commit()
    db.close()
    rewritten = WorkRepo(tmp_path / "rewritten")  # the old blobs are gone: the moved event is named from the index
    rewritten.commit({live("gamma", A): osv(A, "gamma"), live("beta", B): osv(B, "beta")})
    with ingestor(rewritten.path, state) as h:
        h.service.poll()
        assert triples(h.reports()) == {("moved", A, "alpha"), ("added", A, "gamma"), ("deleted", C, "lodestone")}


# -- several packages in one report ----------------------------------------------------------------------------
def test_a_report_naming_two_packages_losing_one(repo: WorkRepo, tmp_path: Path) -> None:
    path = "osv/malicious/pypi/twins/MAL-2026-310.json"
    rid = "MAL-2026-310"
    with ingestor(repo.path, tmp_path / "state", per_commit=True, since=repo.repo.head.commit.hexsha) as h:
        first = repo.commit({path: multi(rid, ("PyPI", "Twin_One", ("1.0",)), ("npm", "twin-two", ("2.0",)))})
        h.service.poll()
        events = h.reports()
        assert triples(events) == {("added", rid, "twin-one"), ("added", rid, "twin-two")}
        assert {(e.ecosystem, e.package, e.affected_versions) for e in events} == {
            ("PyPI", "twin-one", ("1.0",)),
            ("npm", "twin-two", ("2.0",)),
        }
        assert {e.event_id for e in events} == {
            event_id("openssf", rid, "added", first, "PyPI", "twin-one"),
            event_id("openssf", rid, "added", first, "npm", "twin-two"),
        }
        h.sink.events.clear()
        head = repo.commit({path: multi(rid, ("PyPI", "twin-one", ("1.0", "1.1")))}, "drop the npm package")
        h.service.poll()
        events = h.reports()
        assert triples(events) == {("moved", rid, "twin-two"), ("modified", rid, "twin-one")}
        moved = next(e for e in events if e.change == "moved")
        assert (moved.ecosystem, moved.affected_versions, moved.path) == ("npm", ("2.0",), path)
        assert moved.event_id == event_id("openssf", rid, "moved", head, "npm", "twin-two")
        h.sink.events.clear()
        repo.commit({path: None})
        h.service.poll()
        assert triples(h.reports()) == {("deleted", rid, "twin-one")}


def test_a_snapshot_tells_every_package_of_a_report(repo: WorkRepo, tmp_path: Path) -> None:
    repo.commit(
        {"osv/malicious/pypi/twins/MAL-2026-311.json": multi("MAL-2026-311", ("PyPI", "a", ()), ("PyPI", "b", ()))}
    )
    with ingestor(repo.path, tmp_path / "state") as h:
        h.service.poll()
        assert {("existing", "MAL-2026-311", "a"), ("existing", "MAL-2026-311", "b")} <= triples(h.reports())
        assert len({e.event_id for e in h.reports()}) == len(h.reports()) == 5


def test_the_parser_splits_packages_and_merges_spellings_of_one() -> None:
    doc = multi("MAL-2026-9", ("PyPI", "Evil_Pkg", ("1.0",)), ("npm", "evil", ("3",)), ("PyPI", "evil.pkg", ("2.0",)))
    report = parse_report(doc.encode(), "osv/malicious/pypi/evil-pkg/MAL-2026-9.json")
    assert isinstance(report, ParsedReport)
    assert report.packages == (
        AffectedPackage("PyPI", "Evil_Pkg", "evil-pkg", ("1.0", "2.0"), False),
        AffectedPackage("npm", "evil", "evil", ("3",), False),
    )
    assert report.keys == (("PyPI", "evil-pkg"), ("npm", "evil"))
    assert (report.package, report.affected_versions) == ("evil-pkg", ("1.0", "2.0"))  # the first package


# -- the pure rule ------------------------------------------------------------------------------------------------
X, Y = ("PyPI", "x"), ("PyPI", "y")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            Location("osv/malicious/pypi/x/M.json", "1", False, (X,)),
            Location("osv/malicious/pypi/y/M.json", "2", False, (Y,)),
            [("moved", X), ("added", Y)],
        ),
        (
            Location("osv/malicious/pypi/x/M.json", "1", False, (X,)),
            Location("osv/withdrawn/pypi/y/M.json", "2", True, (Y,)),
            [("moved", X), ("withdrawn", Y)],
        ),
        (
            Location("osv/withdrawn/pypi/x/M.json", "1", True, (X,)),
            Location("osv/malicious/pypi/y/M.json", "2", False, (Y,)),
            [("moved", X), ("added", Y)],
        ),
        (
            Location("osv/withdrawn/pypi/x/M.json", "1", True, (X,)),
            Location("osv/withdrawn/pypi/x/M.json", "2", True, (X,)),
            [("withdrawn", X)],
        ),
        (
            Location("osv/withdrawn/pypi/x/M.json", "1", True, (X,)),
            Location("osv/withdrawn/pypi/x2/M.json", "1", True, (X,)),
            [],
        ),
        (
            Location("osv/malicious/pypi/x/M.json", "1", False, (X, Y)),
            Location("osv/malicious/pypi/x/M.json", "2", False, (X,)),
            [("moved", Y), ("modified", X)],
        ),
        (
            Location("osv/malicious/pypi/x/M.json", "1", False, (X,)),
            Location("osv/malicious/pypi/x/M.json", "2", False, (X, Y)),
            [("modified", X), ("added", Y)],
        ),
        (Location("osv/malicious/pypi/x/M.json", "1", False, (X, Y)), None, [("deleted", X), ("deleted", Y)]),
        (None, Location("osv/malicious/pypi/x/M.json", "1", False, (X, Y)), [("added", X), ("added", Y)]),
    ],
)
def test_classify_one_package_by_package(
    old: Location | None, new: Location | None, expected: list[tuple[str, tuple[str, str]]]
) -> None:
    changes = classify_one("M", old, new)
    assert [(c.change, c.package) for c in changes] == expected
    for c in changes:
        assert c.location == (c.old if c.change in ("moved", "deleted") else c.new)
