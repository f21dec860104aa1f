"""What happened upstream, generated from a seed: PyPI journal rows, what PyPI served at every moment, report history.

PyPI's rules (/work/shared/docs/pypi-signals.md, sections 0 and (a)) are kept: every journaled action bumps the
project's serial to the row's serial (journal ids are global, so other projects' rows leave gaps); archive is
allowed only from active (status None or quarantine-exit) and unarchive only from archived, and neither writes a
row or bumps the serial; ``quarantine_project()`` overwrites archived and a clearance returns active; a
quarantined project's Simple page is 200 with status quarantined and no versions, its serial the project's last
row, and its JSON API is 404; a removed project is 404 everywhere, with no serial; a quarantined release drops out
of both APIs while the project stays active; a release without files is not on the Simple page and is listed
without files (no first upload) by the JSON API. Re-registration is a ``create`` after ``remove project``.

OpenSSF, as ingestors/openssf/README.md describes the ingestor: reports are added, modified (affected versions
changed or not), withdrawn (moved under ``osv/withdrawn/``), edited while withdrawn (told as ``withdrawn`` again),
reinstated, deleted (the event carries the old copy), added again after a deletion, and moved to another package
(the old package hears ``moved`` with the old record; the new one ``added``, or ``withdrawn`` if the report is
withdrawn). After a force-push that lost both the old commit and the index, the ingestor falls back to a
snapshot: ``existing`` (or ``withdrawn``) again for every report. A deployment that starts with the OpenSSF
snapshot sees the reports of that moment as ``existing`` (live) or ``withdrawn``.

Everything is bounded so one package stays inside the processor's kept history (qwatch/events/state.py: 16 runs,
32 points, 32 facts): a few project rows and a few fetched pages per package.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

T0 = 1_767_323_045_000
"""2026-01-02T03:04:05Z: every timeline starts here."""
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

MAX_PROJECT_ROWS = 8
"""Project status rows per package (each is a status point and maybe a run)."""
MAX_VERSIONS = 7
MAX_REPORTS = 4

ACTIVE = "active"
ARCHIVED = "archived"
QUARANTINED = "quarantined"
ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Row:
    """One journal row (only rows of the simulated projects; other projects' rows are the serial gaps)."""

    serial: int
    ts: int
    package: str
    action: str
    version: str | None


@dataclass(frozen=True, slots=True)
class View:
    """What PyPI served for one project from ``t`` until the next view."""

    t: int
    status: str
    """active, archived, quarantined, or absent (404, removed or never registered)."""
    serial: int | None
    versions: tuple[str, ...]
    """The Simple page's versions: releases with files that are not quarantined (none when quarantined)."""
    yanked: tuple[str, ...]
    json: tuple[tuple[str, bool, int | None], ...] | None
    """The JSON API's releases (version, yanked, first upload or None without files); None: a 404."""


@dataclass(frozen=True, slots=True)
class ReportChange:
    """One report-id change in one commit, as the OpenSSF ingestor classifies it, for one package."""

    commit: str
    commit_time: int
    report_id: str
    change: str
    package: str
    affected: tuple[str, ...]
    all_versions: bool
    modified: str
    published: str
    withdrawn: str | None
    path: str


@dataclass
class Timeline:
    """One seed's upstream history and the deployment that watches it."""

    seed: int
    start: int
    """Deployment start: the pollers' first look, the OpenSSF snapshot (if any)."""
    end: int
    packages: list[str]
    rows: list[Row]
    views: dict[str, list[View]]
    changes: dict[str, list[int]]
    """Per package, the times at which what PyPI serves changed (the pollers look soon after some of them)."""
    reports: list[ReportChange]
    """Every report change ever, in commit order (the snapshot entries are in ``snapshot_reports``)."""
    snapshot_reports: list[ReportChange]
    """The OpenSSF snapshot at ``start``; empty when the ingestor followed the repository from its beginning."""
    journal_from: int
    """The journal ingestor's first serial (0: it reads the whole history)."""
    log: list[str]
    """What happened, for people."""

    def view_at(self, package: str, t: int) -> View:
        """What PyPI served for ``package`` at ``t``."""
        current = self.views[package][0]
        for v in self.views[package]:
            if v.t > t:
                break
            current = v
        return current

    def report_stream(self) -> list[ReportChange]:
        """What the OpenSSF ingestor emits: the snapshot then later changes, or every change."""
        if self.snapshot_reports:
            return self.snapshot_reports + [c for c in self.reports if c.commit_time > self.start]
        return list(self.reports)


def iso(ms: int) -> str:
    """RFC 3339 with milliseconds; sorts like the time it spells."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass
class _Release:
    version: str
    uploaded: int
    files: bool = True
    yanked: bool = False
    quarantined: bool = False


@dataclass
class _Project:
    name: str
    account: int
    status: str = ABSENT
    serial: int | None = None
    releases: dict[str, _Release] = field(default_factory=dict)
    minor: int = 0
    project_rows: int = 0
    ever: bool = False


@dataclass
class _Report:
    rid: str
    package: str
    state: str
    """live, withdrawn or deleted."""
    affected: tuple[str, ...]
    all_versions: bool
    modified: int
    published: int
    known: set[str]


class _Gen:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.t = T0
        self.serial = 1_000_000 + self.rng.randint(0, 999) * 1000
        n = self.rng.randint(2, 5)
        names = ["ace", "bolt", "cask", "dune", "echo", "fern"]
        self.projects = [_Project(f"{names[i]}-{seed % 1000}", account=self.rng.randint(0, 1)) for i in range(n)]
        self.rows: list[Row] = []
        self.views: dict[str, list[View]] = {p.name: [View(T0, ABSENT, None, (), (), None)] for p in self.projects}
        self.changes: dict[str, list[int]] = {p.name: [] for p in self.projects}
        self.reports: dict[str, _Report] = {}
        self.report_changes: list[ReportChange] = []
        self.commits = 0
        self.log: list[str] = []

    # -- clock, rows, views ---------------------------------------------------------------------------------------

    def tick(self) -> None:
        r = self.rng.random()
        if r < 0.25:
            self.t += self.rng.randint(1 * SECOND, 90 * SECOND)  # quick succession: pollers may miss a state
        elif r < 0.85:
            self.t += self.rng.randint(2 * MINUTE, 40 * MINUTE)
        else:
            self.t += self.rng.randint(1 * HOUR, 12 * HOUR)

    def row(self, p: _Project, action: str, version: str | None = None, gap: int | None = None) -> None:
        self.serial += gap if gap is not None else self.rng.randint(1, 40)
        self.rows.append(Row(self.serial, self.t, p.name, action, version))
        p.serial = None if action == "remove project" else self.serial
        if version is None:
            p.project_rows += 1
        self.log.append(f"t={self.t - T0} {p.name}: row {self.serial} {action!r}" + (f" {version}" if version else ""))

    def note(self, p: _Project, what: str) -> None:
        self.log.append(f"t={self.t - T0} {p.name}: {what} (no row)")

    def view(self, p: _Project) -> None:
        if p.status == ABSENT:
            v = View(self.t, ABSENT, None, (), (), None)
        elif p.status == QUARANTINED:
            v = View(self.t, QUARANTINED, p.serial, (), (), None)
        else:
            shown = [r for r in p.releases.values() if not r.quarantined]
            versions = tuple(r.version for r in shown if r.files)
            yanked = tuple(r.version for r in shown if r.files and r.yanked)
            body = tuple((r.version, r.yanked and r.files, r.uploaded if r.files else None) for r in shown)
            v = View(self.t, p.status, p.serial, versions, yanked, body or None)
        last = self.views[p.name][-1]
        if (last.status, last.serial, last.versions, last.yanked, last.json) != (
            v.status,
            v.serial,
            v.versions,
            v.yanked,
            v.json,
        ):
            if last.t == v.t:
                self.views[p.name][-1] = v
            else:
                self.views[p.name].append(v)
            self.changes[p.name].append(self.t)

    # -- project actions ------------------------------------------------------------------------------------------

    def new_version(self, p: _Project) -> str:
        p.minor += 1
        return f"1.{p.minor}"

    def create(self, p: _Project) -> None:
        again = p.ever
        p.status, p.ever = ACTIVE, True
        p.releases = {}
        self.row(p, "create")
        v = self.new_version(p)
        self.row(p, "new release", v, gap=1)
        self.row(p, f"add source file {p.name}-{v}.tar.gz", v, gap=1)
        p.releases[v] = _Release(v, self.t)
        if again:
            self.log[-3] += " (re-registration)"
        self.view(p)

    def act(self, p: _Project) -> bool:
        """One random upstream action on ``p`` that PyPI allows in its status; False if none was taken."""
        rng = self.rng
        s = p.status
        files = [r for r in p.releases.values() if r.files and not r.quarantined]
        rows_left = p.project_rows < MAX_PROJECT_ROWS
        options: list[tuple[str, float]] = []
        if s == ABSENT and rows_left:
            options.append(("create", 3.0))
        if s == ACTIVE:
            if len(p.releases) < MAX_VERSIONS:
                options.append(("release", 2.5))
            if any(not r.yanked for r in files):
                options.append(("yank", 1.0))
            if any(r.yanked for r in files):
                options.append(("unyank", 0.7))
            if len(files) > 1:
                options.append(("remove_file", 0.4))
            options.append(("archive", 2.0))
            if any(not r.quarantined for r in p.releases.values()):
                options.append(("rel_quarantine", 1.0))
        if s == ARCHIVED:
            options.append(("unarchive", 2.0))
        if s in (ACTIVE, ARCHIVED) and rows_left:
            options += [("quarantine", 2.5), ("remove", 0.8)]
        if s == QUARANTINED and rows_left:
            options += [("clear", 3.0), ("remove", 1.0), ("requarantine", 0.3)]
        if s != ABSENT and p.releases:
            options.append(("rel_remove", 0.6))
        if s != ABSENT and any(r.quarantined for r in p.releases.values()):
            options.append(("rel_clear", 1.5))
        if not options:
            return False
        action = rng.choices([o for o, _ in options], [w for _, w in options])[0]
        getattr(self, f"_do_{action}")(p)
        self.view(p)
        return True

    def _do_create(self, p: _Project) -> None:
        self.create(p)

    def _do_release(self, p: _Project) -> None:
        v = self.new_version(p)
        self.row(p, "new release", v)
        self.row(p, f"add py3 file {p.name}-{v}-py3-none-any.whl", v, gap=1)
        p.releases[v] = _Release(v, self.t)

    def _pick(self, releases: list[_Release]) -> _Release:
        return self.rng.choice(sorted(releases, key=lambda r: r.version))

    def _do_yank(self, p: _Project) -> None:
        r = self._pick([r for r in p.releases.values() if r.files and not r.quarantined and not r.yanked])
        r.yanked = True
        self.row(p, "yank release", r.version)

    def _do_unyank(self, p: _Project) -> None:
        r = self._pick([r for r in p.releases.values() if r.files and not r.quarantined and r.yanked])
        r.yanked = False
        self.row(p, "unyank release", r.version)

    def _do_remove_file(self, p: _Project) -> None:
        r = self._pick([r for r in p.releases.values() if r.files and not r.quarantined])
        r.files = False
        self.row(p, f"remove file {p.name}-{r.version}.tar.gz", r.version)

    def _do_archive(self, p: _Project) -> None:
        p.status = ARCHIVED
        self.note(p, "archived")

    def _do_unarchive(self, p: _Project) -> None:
        p.status = ACTIVE
        self.note(p, "unarchived")

    def _do_rel_quarantine(self, p: _Project) -> None:
        r = self._pick([r for r in p.releases.values() if not r.quarantined])
        r.quarantined = True
        self.row(p, "release quarantined", r.version)

    def _do_rel_clear(self, p: _Project) -> None:
        r = self._pick([r for r in p.releases.values() if r.quarantined])
        r.quarantined = False
        self.row(p, "release quarantine cleared", r.version)

    def _do_rel_remove(self, p: _Project) -> None:
        r = self._pick(list(p.releases.values()))
        del p.releases[r.version]
        self.row(p, "remove release", r.version)

    def _do_quarantine(self, p: _Project) -> None:
        p.status = QUARANTINED  # overwrites archived
        self.row(p, "project quarantined")

    def _do_requarantine(self, p: _Project) -> None:
        self.row(p, "project quarantined")  # a second row inside one quarantine

    def _do_clear(self, p: _Project) -> None:
        p.status = ACTIVE  # never back to archived
        self.row(p, "project quarantine cleared")

    def _do_remove(self, p: _Project) -> None:
        p.status = ABSENT
        p.releases = {}
        self.row(p, "remove project")

    def burst(self) -> bool:
        """Several projects of one account quarantined at once (consecutive serials, one timestamp)."""
        account = self.rng.randint(0, 1)
        group = [
            p
            for p in self.projects
            if p.account == account and p.status in (ACTIVE, ARCHIVED) and p.project_rows < MAX_PROJECT_ROWS
        ]
        if len(group) < 2:
            return False
        self.log.append(f"t={self.t - T0} burst: account {account} quarantined")
        for i, p in enumerate(group):
            p.status = QUARANTINED
            self.row(p, "project quarantined", gap=self.rng.randint(1, 40) if i == 0 else 1)
            self.view(p)
        return True

    # -- reports --------------------------------------------------------------------------------------------------

    def _affected(self, pkg: str) -> tuple[tuple[str, ...], bool]:
        rng = self.rng
        if rng.random() < 0.2:
            return (), True
        p = next(q for q in self.projects if q.name == pkg)
        pool = sorted(p.releases) or ["1.1"]
        chosen = set(rng.sample(pool, k=min(len(pool), rng.randint(1, 2))))
        if rng.random() < 0.25:
            chosen.add(f"1.{p.minor + rng.randint(1, 3)}")  # a version not (yet) on PyPI
        if rng.random() < 0.1:
            chosen = {"9.9"}
        return tuple(sorted(chosen)), False

    def _emit(self, r: _Report, change: str, package: str, commit: str) -> None:
        withdrawn = r.state == "withdrawn"
        where = "withdrawn" if withdrawn else "malicious"
        self.report_changes.append(
            ReportChange(
                commit=commit,
                commit_time=self.t,
                report_id=r.rid,
                change=change,
                package=package,
                affected=r.affected,
                all_versions=r.all_versions,
                modified=iso(r.modified),
                published=iso(r.published),
                withdrawn=iso(r.modified) if withdrawn else None,
                path=f"osv/{where}/pypi/{r.package}/{r.rid}.json",
            )
        )
        self.log.append(
            f"t={self.t - T0} openssf {commit[:8]}: {r.rid} {change} on {package} "
            f"affected={'ALL' if r.all_versions else ','.join(r.affected)}"
        )

    def report_action(self) -> bool:
        rng = self.rng
        self.commits += 1
        commit = hashlib.sha1(f"{self.seed}:{self.commits}".encode(), usedforsecurity=False).hexdigest()
        live = [r for r in self.reports.values() if r.state == "live"]
        withdrawn = [r for r in self.reports.values() if r.state == "withdrawn"]
        deleted = [r for r in self.reports.values() if r.state == "deleted"]
        options: list[tuple[str, float]] = []
        if len(self.reports) < MAX_REPORTS:
            options.append(("add", 3.0))
        if live:
            options += [("modify", 2.0), ("withdraw", 1.5), ("delete", 0.5), ("move", 0.7)]
        if withdrawn:
            options += [("reinstate", 1.2), ("modify_withdrawn", 0.6), ("delete", 0.3), ("move", 0.2)]
        if live or withdrawn:
            options.append(("resnapshot", 0.25))
        if deleted:
            options.append(("readd", 1.0))
        if not options:
            return False
        what = rng.choices([o for o, _ in options], [w for _, w in options])[0]
        if what == "add":
            pkg = rng.choice(self.projects).name
            affected, every = self._affected(pkg)
            rid = f"MAL-2026-{self.seed % 10_000}-{len(self.reports) + 1}"
            r = _Report(rid, pkg, "live", affected, every, self.t, self.t, {pkg})
            self.reports[rid] = r
            self._emit(r, "added", pkg, commit)
        elif what == "modify":
            r = rng.choice(live)
            if rng.random() < 0.6:
                r.affected, r.all_versions = self._affected(r.package)
            r.modified = self.t
            self._emit(r, "modified", r.package, commit)
        elif what == "withdraw":
            r = rng.choice(live)
            r.state, r.modified = "withdrawn", self.t
            self._emit(r, "withdrawn", r.package, commit)
        elif what == "modify_withdrawn":
            r = rng.choice(withdrawn)
            r.modified = self.t  # edited (aliases, details), still withdrawn, same versions: told as withdrawn again
            self._emit(r, "withdrawn", r.package, commit)
        elif what == "reinstate":
            r = rng.choice(withdrawn)
            r.state, r.modified = "live", self.t
            if rng.random() < 0.3:
                r.affected, r.all_versions = self._affected(r.package)
            self._emit(r, "reinstated", r.package, commit)
        elif what == "delete":
            r = rng.choice(live + withdrawn)
            self._emit(r, "deleted", r.package, commit)  # the event describes the old copy
            r.state = "deleted"
        elif what == "readd":
            r = rng.choice(deleted)
            r.state, r.modified = "live", self.t
            r.affected, r.all_versions = self._affected(r.package)
            self._emit(r, "added", r.package, commit)
        elif what == "resnapshot":
            # the ingestor lost both its old commit and its index after a force-push: a snapshot again, as changes
            self.log.append(f"t={self.t - T0} openssf {commit[:8]}: snapshot again after a force-push")
            for r in sorted(self.reports.values(), key=lambda r: r.rid):
                if r.state != "deleted":
                    self._emit(r, "existing" if r.state == "live" else "withdrawn", r.package, commit)
        else:  # move: the affected package changes (a withdrawn report can move too)
            r = rng.choice(live + withdrawn)
            targets = [p.name for p in self.projects if p.name not in r.known]
            if not targets:
                return False
            self._emit(r, "moved", r.package, commit)  # the old package hears the old record, as for a deletion
            r.package = rng.choice(targets)
            r.known.add(r.package)
            r.modified = self.t
            r.affected, r.all_versions = self._affected(r.package)
            self._emit(r, "added" if r.state == "live" else "withdrawn", r.package, commit)
        return True

    # -- the whole history ----------------------------------------------------------------------------------------

    def run(self) -> Timeline:
        rng = self.rng
        for p in self.projects:  # most projects exist before the deployment starts
            if rng.random() < 0.85:
                self.tick()
                self.create(p)
                for _ in range(rng.randint(0, 2)):
                    self.tick()
                    self._do_release(p)
                    self.view(p)
        for _ in range(rng.randint(0, 5)):
            self.tick()
            if rng.random() < 0.3:
                self.report_action()
            else:
                self.act(rng.choice(self.projects))
        self.tick()
        start = self.t
        journal_from = 0 if rng.random() < 0.35 else self.serial + 1
        snapshot = rng.random() < 0.7
        snapshot_reports: list[ReportChange] = []
        if snapshot:
            head = hashlib.sha1(f"{self.seed}:head".encode(), usedforsecurity=False).hexdigest()
            for r in self.reports.values():
                if r.state == "deleted":
                    continue
                change = "existing" if r.state == "live" else "withdrawn"
                self.t, saved = start - 1, self.t
                before = len(self.report_changes)
                self._emit(r, change, r.package, head)
                snapshot_reports.append(self.report_changes.pop(before))
                self.t = saved
        self.log.append(f"t={start - T0} deployment starts (journal from serial {journal_from}, snapshot={snapshot})")
        for _ in range(rng.randint(5, 18)):
            self.tick()
            u = rng.random()
            if u < 0.27:
                self.report_action()
            elif u < 0.32:
                self.burst() or self.act(rng.choice(self.projects))
            else:
                self.act(rng.choice(self.projects))
        self.tick()
        self.tick()
        return Timeline(
            seed=self.seed,
            start=start,
            end=self.t,
            packages=[p.name for p in self.projects],
            rows=self.rows,
            views=self.views,
            changes=self.changes,
            reports=self.report_changes,
            snapshot_reports=snapshot_reports,
            journal_from=journal_from,
            log=self.log,
        )


def generate(seed: int) -> Timeline:
    """The upstream history of ``seed``: the same seed always gives the same history."""
    return _Gen(seed).run()
