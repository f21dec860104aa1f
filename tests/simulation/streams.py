"""Each ingestor's observation stream for one package, as the real ingestors would emit it from a timeline.

* ``pypi-journal``: the package's rows from the ingestor's first serial on, in serial order
  (``testing.samples.journal``: id ``("pypi-journal", serial)``).
* ``pypi-simple``: Simple pages polled soon after some upstream changes and at random times; sometimes the CDN
  serves a stale copy (what PyPI served at an earlier moment: an older serial, consistent content). As
  ``ingestors/pypi/tracker.py`` does, a page is emitted only when (status, serial, digest) differs from the last
  one emitted, its id chains the previous id (so active → archived → active → archived never repeats an id), and
  a 200 older than the highest serial already believed is dropped as stale (so a stale copy still gets through at
  the serial believed, or after a 404, which carries no serial). A 404 is ``status='absent'``, no serial.
* ``pypi-json``: the JSON API the same way (``ingestors/pypi/emit.py``'s recipe): 200 with releases, 404 when
  quarantined, removed, or nothing listed.
* ``openssf``: the report changes of the package in commit order (snapshot first when the deployment has one);
  ids ``("openssf", report_id, change, commit)``, and for ``moved`` the package too (ingestors/openssf/README.md).

Delivery is at least once: now and then a stream carries a record a second time, a few records later.

Observation times are unique within a package, so "fetched before" is never a tie.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from qwatch import events
from qwatch.ids import event_id
from testing.samples import journal

from .upstream import ABSENT, HOUR, MINUTE, SECOND, Timeline, View

JOURNAL = "pypi-journal"
SIMPLE = "pypi-simple"
JSON = "pypi-json"
OPENSSF = "openssf"
SOURCES = (JOURNAL, SIMPLE, JSON, OPENSSF)
MAX_PAGES = 13
MAX_JSON = 5


@dataclass
class PackageStreams:
    """One package's streams, each in its source's own order."""

    package: str
    sources: dict[str, list[events.Observation]]

    def without(self, source: str) -> PackageStreams:
        """The same streams minus one source (the pages authority runs without the journal ingestor)."""
        return PackageStreams(self.package, {s: list(o) for s, o in self.sources.items() if s != source})

    def all(self) -> list[events.Observation]:
        """Every observation, source by source."""
        return [o for s in SOURCES for o in self.sources.get(s, ())]


class _Clock:
    """Unique, per-stream non-decreasing observation times within one package."""

    def __init__(self) -> None:
        self.used: set[int] = set()

    def at(self, t: int, after: int) -> int:
        t = max(t, after + 1)
        while t in self.used:
            t += 1
        self.used.add(t)
        return t


def _fetch_times(rng: random.Random, tl: Timeline, package: str, follow: float, extra: int) -> list[int]:
    times = [tl.start + rng.randint(0, 5 * MINUTE)]
    times.extend(
        c + rng.randint(1 * SECOND, 15 * MINUTE) for c in tl.changes[package] if c >= tl.start and rng.random() < follow
    )
    times += [rng.randint(tl.start, tl.end) for _ in range(rng.randint(0, extra))]
    return sorted(times)


def _seen(rng: random.Random, tl: Timeline, package: str, t: int) -> View:
    """What a fetch at ``t`` got: usually the view of that moment, sometimes a stale CDN copy of an earlier one."""
    if rng.random() < 0.22:
        lag = rng.randint(1 * SECOND, 10 * MINUTE) if rng.random() < 0.7 else rng.randint(10 * MINUTE, 2 * HOUR)
        return tl.view_at(package, t - lag)
    return tl.view_at(package, t)


def _pages(rng: random.Random, tl: Timeline, package: str, clock: _Clock) -> list[events.Observation]:
    out: list[events.Observation] = []
    floor: int | None = None
    last: tuple[str, int | None, str] | None = None
    previous: str | None = None
    at = 0
    for t in _fetch_times(rng, tl, package, follow=0.6, extra=4):
        v = _seen(rng, tl, package, t)
        if v.status != ABSENT and floor is not None and v.serial is not None and v.serial < floor:
            continue  # the tracker's stale verdict
        if v.serial is not None:
            floor = v.serial if floor is None else max(floor, v.serial)
        digest = event_id("digest", v.status, *v.versions, "|", *v.yanked)[:16]
        if (v.status, v.serial, digest) == last:
            continue
        if len(out) >= MAX_PAGES:
            break
        last = (v.status, v.serial, digest)
        at = clock.at(t, at)
        absent = v.status == ABSENT
        obs = events.ProjectStatusObserved(
            event_id=event_id(SIMPLE, package, v.status, v.serial, digest, previous),
            source=SIMPLE,
            ecosystem="PyPI",
            package=package,
            observed_at=at,
            upstream_time=None,
            status=v.status,
            last_serial=v.serial,
            versions=v.versions,
            yanked_versions=v.yanked,
            http_status=404 if absent else 200,
        )
        previous = obs.event_id
        out.append(obs)
    return out


def _json(rng: random.Random, tl: Timeline, package: str, clock: _Clock) -> list[events.Observation]:
    out: list[events.Observation] = []
    floor: int | None = None
    last: tuple[int, int | None, str] | None = None
    previous: str | None = None
    at = 0
    for t in _fetch_times(rng, tl, package, follow=0.25, extra=2)[: rng.randint(0, MAX_JSON)]:
        v = _seen(rng, tl, package, t)
        status, serial = (200, v.serial) if v.json is not None else (404, None)
        if serial is not None and floor is not None and serial < floor:
            continue
        if serial is not None:
            floor = serial if floor is None else max(floor, serial)
        body = v.json or ()
        digest = event_id("digest", *(f"{ver}:{y}:{up}" for ver, y, up in body))[:16]
        if (status, serial, digest) == last:
            continue
        last = (status, serial, digest)
        at = clock.at(t, at)
        uploads = [up for _, _, up in body if up is not None]
        obs = events.ReleasesObserved(
            event_id=event_id(JSON, package, status, serial, digest, previous),
            source=JSON,
            ecosystem="PyPI",
            package=package,
            observed_at=at,
            upstream_time=max(uploads) if uploads else None,
            http_status=status,
            last_serial=serial,
            releases=tuple(events.ReleaseInfo(ver, up, y, None) for ver, y, up in body),
        )
        previous = obs.event_id
        out.append(obs)
    return out


def build(tl: Timeline) -> dict[str, PackageStreams]:
    """Every package's streams (journal included); deterministic for the timeline's seed."""
    rng = random.Random(f"{tl.seed}:streams")
    out: dict[str, PackageStreams] = {}
    for package in tl.packages:
        clock = _Clock()
        rows: list[events.Observation] = []
        at = 0
        for r in sorted(tl.rows, key=lambda r: r.serial):
            if r.package == package and r.serial >= tl.journal_from:
                at = clock.at(r.ts + rng.randint(500, 90 * SECOND), at)
                rows.append(journal(package, r.serial, r.action, r.version, ts=r.ts, seen=at))
        reports: list[events.Observation] = []
        at = 0
        for c in tl.report_stream():
            if c.package != package:
                continue
            at = clock.at(c.commit_time + rng.randint(1 * SECOND, 5 * MINUTE), at)
            reports.append(
                events.ReportObserved(
                    event_id=(
                        event_id(OPENSSF, c.report_id, c.change, c.commit, "PyPI", package)
                        if c.change == "moved"
                        else event_id(OPENSSF, c.report_id, c.change, c.commit)
                    ),
                    source=OPENSSF,
                    ecosystem="PyPI",
                    package=package,
                    observed_at=at,
                    upstream_time=c.commit_time,
                    report_id=c.report_id,
                    change=c.change,
                    package_name=package,
                    affected_versions=c.affected,
                    all_versions=c.all_versions,
                    summary=f"Malicious code in {package} (PyPI)",
                    published=c.published,
                    modified=c.modified,
                    withdrawn=c.withdrawn,
                    aliases=(),
                    origins=("ossf-package-analysis",),
                    commit=c.commit,
                    path=c.path,
                )
            )
        pages = _pages(rng, tl, package, clock)
        bodies = _json(rng, tl, package, clock)
        sources = {JOURNAL: rows, SIMPLE: pages, JSON: bodies, OPENSSF: reports}
        out[package] = PackageStreams(package, {s: _redeliver(rng, obs) for s, obs in sources.items()})
    return out


def _redeliver(rng: random.Random, obs: list[events.Observation]) -> list[events.Observation]:
    """At-least-once delivery: now and then a record comes again (same record: same id, same time), a little later."""
    out = list(obs)
    if out and rng.random() < 0.15:
        i = rng.randrange(len(out))
        out.insert(min(len(out), i + 1 + rng.randint(0, 3)), out[i])
    return out
