"""The OpenSSF poll: cursor → head, classified by report id, emitted, flushed, and only then the cursor moves.

Every event is about one report and one package (``ecosystem``/``package``, the Kafka key); a report is classified
by id (``classify``), package by package, so a report moved to another package's folder is ``moved`` for the
package that lost it and new (``added``) for the one that gained it. What downstream sees, by mode (the event id
is ``event_id("openssf", report_id, change, commit)``, plus ``ecosystem, package`` for ``moved`` and for reports
naming several packages, so a replay of the same step yields the same ids):

* **Snapshot** (no cursor and no ``--since``): one event per report id and package at head, ``existing`` for live
  reports (a baseline, not news) and ``withdrawn`` for reports under ``osv/withdrawn/`` (or carrying
  ``withdrawn``), so the processor learns withdrawn reports too. ``commit`` is the head.
* **Range** (default): one diff ``cursor..head``; every event carries the head commit and its time.
* **Per commit** (``--per-commit``): one step per first-parent commit, each with its own commit and cursor save.
  Set-wise both modes agree on the end state; per commit also shows intermediate changes (an id added then
  withdrawn inside the range shows as ``added`` + ``withdrawn`` instead of just ``withdrawn``).
* **Force-push** (cursor no longer an ancestor of head): the head tree is compared, file by file, with the last
  known report state (the index of the old cursor's tree). Downstream sees only the net difference, stamped with
  the new head: reports that disappeared with the rewritten history are ``deleted``, new ones ``added``, changed
  ones ``modified``/``withdrawn``/``reinstated``/``moved``; unchanged reports emit nothing, so nothing is
  duplicated. Only if neither the old commit nor the index survives does it fall back to a full snapshot
  (``existing``, logged as a warning).

Pending files are counted, never emitted; malformed or schema-breaking files become DeadLetters with
``path@commit`` while the rest of the step still flows. A failing flush or cursor save rolls the index back and
leaves the cursor where it was, so the next poll redoes the same step with the same event ids.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from hashlib import sha256 as _sha256
from typing import IO

from ingestors.openssf.config import OpenSSFConfig
from ingestors.openssf.index import INVALID, PENDING, REPORT, IndexEntry, ReportIndex
from qwatch.cursors import CursorStore
from qwatch.deadletters import dead_letter
from qwatch.events import Cursor, ReportObserved
from qwatch.events.codec import SchemaError
from qwatch.ids import event_id, now_ms
from qwatch.logs import safe
from qwatch.metrics import Heartbeat, Metrics
from qwatch.openssf.classify import EXISTING, MOVED, WITHDRAWN, Change, PackageKey, classify_one, effective
from qwatch.openssf.gitsource import GitSource, GitSourceError
from qwatch.openssf.osv import (
    AffectedPackage,
    ParsedReport,
    Pending,
    ReportParseError,
    is_withdrawn,
    parse_report,
)
from qwatch.retry import backoff_delay
from qwatch.runtime import StopFlag
from qwatch.sinks import PublishError, Sink

logger = logging.getLogger(__name__)

SOURCE = "openssf"
BATCH = 1000
PAYLOAD_CAP = 4096
PROGRESS_MIN_FILES = 5000
"""Below this, a step is over before a progress line would be readable."""
PARSE_CACHE = 20_000
"""Parsed reports kept between parsing and emitting a diff; bigger diffs re-read the few blobs they emit."""


def report_event_id(report_id: str, change: str, commit: str, package: PackageKey, several: bool) -> str:
    """``event_id("openssf", report_id, change, commit)``; ``moved`` events, and every event of a report naming
    several packages, add ``ecosystem, package``, so two packages hearing of one report get different ids."""
    if change == MOVED or several:
        return event_id(SOURCE, report_id, change, commit, *package)
    # event_id's own formula for four strings, spelled out: a snapshot computes 250k of these, and the generic
    # version's per-part type checks were a twentieth of its time (tests/ingestors/openssf/test_event_ids.py
    # holds the two equal).
    return _sha256(f"{SOURCE}\x1f{report_id}\x1f{change}\x1f{commit}".encode()).hexdigest()[:32]


class PollInterrupted(Exception):
    """A stop was requested mid-step; the step was rolled back and the cursor did not move."""


@dataclass
class StepStats:
    """What one cursor step did; the tests compare these with the fixtures' per-commit expectations."""

    commit: str
    mode: str
    changes: Counter[str] = field(default_factory=Counter)
    reports: dict[str, set[str]] = field(default_factory=dict)
    pending: int = 0
    deadletters: Counter[str] = field(default_factory=Counter)
    files: int = 0

    def record(self, change: str, report_id: str) -> None:
        """Count one emitted report change."""
        self.changes[change] += 1
        ids = self.reports.get(change)
        if ids is None:
            ids = self.reports[change] = set()
        ids.add(report_id)


@dataclass
class PollResult:
    """The head a poll reached and its steps (empty when nothing changed)."""

    head: str
    steps: list[StepStats]


class Progress:
    """A one-line ``\\r`` progress display on stderr, throttled, only when a person is watching."""

    def __init__(self, enabled: bool, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._last = 0.0
        self._start = time.monotonic()
        self._shown = False

    def start(self) -> None:
        """Reset the rate clock."""
        self._start = time.monotonic()

    def update(self, label: str, done: int, total: int | None, records: int, force: bool = False) -> None:
        """Show ``label: done/total files, N rec/s`` at most a few times a second (``done files`` while a
        streamed snapshot does not know its total yet)."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.25):
            return
        self._last = now
        rate = records / max(now - self._start, 1e-9)
        count = f"{done:,}" if total is None else f"{done:,}/{total:,}"
        self.stream.write(f"\r{label}: {count} files, {rate:,.0f} rec/s ")
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        """End the line so later log output starts clean."""
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


class OpenSSFService:
    """One repository, one branch, one cursor; ``poll`` is a whole step or nothing."""

    def __init__(
        self,
        cfg: OpenSSFConfig,
        source: GitSource,
        index: ReportIndex,
        sink: Sink,
        cursors: CursorStore,
        metrics: Metrics,
        component: str,
        since: str | None = None,
        clock: Callable[[], int] = now_ms,
        progress: Progress | None = None,
        stop: StopFlag | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.index = index
        self.sink = sink
        self.cursors = cursors
        self.metrics = metrics
        self.component = component
        self._since = since
        self._clock = clock
        self._progress = progress if progress is not None else Progress(False)
        self._stop = stop if stop is not None else StopFlag()
        self._heartbeat = heartbeat if heartbeat is not None else Heartbeat("openssf poll loop", float("inf"))
        self._cursor_time: int | None = None

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self, once: bool = False) -> int:
        """Poll until stopped; ``once`` polls one time and raises on failure so the CLI can exit non-zero."""
        failures = 0
        while not self._stop.is_set:
            try:
                self.poll()
                failures = 0
                self._heartbeat.ready()
            except PollInterrupted:
                logger.info("stopped during a step; the cursor was not moved")
                return 0
            except (PublishError, OSError, GitSourceError, sqlite3.Error) as exc:
                if once:
                    raise
                failures += 1
                delay = backoff_delay(failures, 5.0, self.cfg.interval, max_doublings=10)
                logger.error(
                    "poll failed (%d in a row), cursor not moved; retrying in %.0fs: %s",
                    failures,
                    delay,
                    safe(str(exc), 500),
                )
                # Upstream trouble is the source's (qwatch_source_up); only Kafka refusing events means not ready.
                self._heartbeat.ready(not isinstance(exc, PublishError), "Kafka did not acknowledge the events")
                self._heartbeat.beat(idle=delay)
                self._stop.wait(delay)
                continue
            if once:
                return 0
            self._heartbeat.beat(idle=self.cfg.interval)
            self._stop.wait(self.cfg.interval)
        return 0

    def poll(self) -> PollResult:
        """One poll: fetch, resolve head, then snapshot, range, per-commit steps or the force-push comparison."""
        started = time.monotonic()
        try:
            result = self._poll()
        except Exception:
            self.metrics.polls.labels(SOURCE, "error").inc()
            self.metrics.source_failed(SOURCE)
            self.index.rollback()
            raise
        finally:
            self.metrics.poll_duration.labels(SOURCE).observe(time.monotonic() - started)
        self.metrics.polls.labels(SOURCE, "ok").inc()
        self.metrics.source_succeeded(SOURCE)
        return result

    def _poll(self) -> PollResult:
        self.source.fetch()
        head = self.source.head()
        cursor = self.cursors.load(self.component)
        self._cursor_time = cursor.upstream_time if cursor is not None else None
        base = self.source.resolve(self._since) if self._since else (cursor.value if cursor else None)
        if base is None:
            steps = [self._snapshot(head, "snapshot")]
        elif base == head:
            steps = []
            if cursor is None or cursor.value != head:
                self._save_cursor(head, self.source.commit_time_ms(head))
        elif self.source.has_commit(base) and self.source.is_ancestor(base, head):
            steps = self._forward(base, head)
        else:
            steps = [self._force_push(base, head)]
        self._since = None
        self._update_cursor_age()
        return PollResult(head, steps)

    def _forward(self, base: str, head: str) -> list[StepStats]:
        self._sync_index(base)
        if not self.cfg.per_commit:
            return [self._diff_step(base, head, "range")]
        steps = []
        prev = base
        for commit in self.source.first_parent_path(base, head):
            # Diff against the previous step, not the git parent: the chain then telescopes exactly to base..head.
            steps.append(self._diff_step(prev, commit, "commit"))
            prev = commit
        if prev != head:  # head reached only through a merge's second parent: close the gap in one step
            steps.append(self._diff_step(prev, head, "range"))
        return steps

    def _diff_step(self, old: str, new: str, mode: str) -> StepStats:
        return self._step(new, mode, lambda: self.index.add_changes(self._diff_rows(old, new)))

    def _force_push(self, base: str, head: str) -> StepStats:
        indexed = self.index.commit_sha
        if indexed != base and self.source.has_commit(base):
            self._sync_index(base)
        elif indexed is None:
            logger.warning(
                "cursor %s is gone and no report index survives: emitting a full snapshot at %s",
                base[:12],
                head[:12],
            )
            return self._snapshot(head, "snapshot")
        elif indexed != base:
            logger.warning("cursor %s is gone; comparing head with the index of %s instead", base[:12], indexed[:12])
        logger.warning(
            "cursor %s is not an ancestor of %s (force-push?): comparing the head tree with the last "
            "known report state",
            base[:12],
            head[:12],
        )
        return self._step(head, "force-push", lambda: self.index.changes_from_listing(self.source.list_tree(head)))

    def _diff_rows(self, old: str, new: str) -> Iterable[tuple[str, str | None, str | None]]:
        return ((c.path, c.old_blob, c.new_blob) for c in self.source.diff(old, new))

    # -- steps ---------------------------------------------------------------------------------------------
    def _step(self, commit: str, mode: str, fill: Callable[[], None]) -> StepStats:
        """Diff-driven step: parse new blobs, swap them into the index, classify affected ids, emit, commit."""
        upstream_time = self.source.commit_time_ms(commit)
        stats = StepStats(commit, mode)
        self.index.begin()
        fill()
        cache: dict[str, ParsedReport] = {}
        for batch_entries in self._parse_changed(commit, upstream_time, stats, emit=True):
            for entry, report in batch_entries:
                if report is not None and len(cache) < PARSE_CACHE:
                    cache[entry.blob] = report
            self.index.add_incoming(self._last_good(entry) for entry, _ in batch_entries)
        self.index.apply(capture_before=True)
        observed = self._clock()
        for report_id in self.index.affected_ids():
            changes = classify_one(
                report_id, effective(self.index.before(report_id)), effective(self.index.locations(report_id))
            )
            for change in changes:
                self._emit_change(change, cache, commit, upstream_time, observed, stats)
        self._finish(commit, upstream_time, stats)
        return stats

    def _snapshot(self, head: str, mode: str, emit: bool = True) -> StepStats:
        """Every in-scope file at ``head``, streamed: parse once, emit the first copy of each id in path order.

        The listing goes straight from ``ls-tree`` into one ``cat-file --batch`` stream (no staging table: the
        index was just cleared, so every file is new), and "first copy" is a set of the ids already seen in
        this snapshot rather than an index query per file. Only that set grows with the tree (ids, not records).
        """
        upstream_time = self.source.commit_time_ms(head)
        stats = StepStats(head, mode)
        self.index.begin()
        self.index.clear()
        self.index.bulk_start()
        seen: set[str] = set()
        since_flush = 0
        label = "snapshot"
        self._progress.start()
        batches = self.source.stream_blobs(self.source.list_tree(head), self.cfg.max_file_bytes, BATCH)
        try:
            for batch in batches:
                if self._stop.is_set:
                    raise PollInterrupted
                observed = self._clock()
                entries = []
                for path, blob, data in batch:
                    entry, report = self._parse_one(path, blob, data, head, upstream_time, stats, emit)
                    entries.append(entry)
                    if report is None or not emit or report.report_id in seen:
                        continue
                    seen.add(report.report_id)
                    change = WITHDRAWN if entry.withdrawn else EXISTING
                    for affected in report.packages:
                        self._emit_report(
                            report.report_id, change, report, affected, path, head, upstream_time, observed, stats
                        )
                        since_flush += 1
                self.index.insert(entries)
                stats.files += len(batch)
                if stats.files >= PROGRESS_MIN_FILES:
                    self._progress.update(label, stats.files, None, stats.files)
                if since_flush >= self.cfg.flush_every:
                    self.sink.flush()
                    since_flush = 0
        finally:
            batches.close()
        if stats.files >= PROGRESS_MIN_FILES:
            self._progress.update(label, stats.files, stats.files, stats.files, force=True)
            self._progress.finish()
        self.index.bulk_end()
        if emit:
            self._finish(head, upstream_time, stats)
        else:
            self.index.set_commit(head)
            self.index.commit()
        return stats

    def _sync_index(self, commit: str) -> None:
        """Make the index mirror ``commit`` without emitting: cheap by diff when possible, else a rebuild."""
        indexed = self.index.commit_sha
        if indexed == commit:
            return
        if indexed is not None and self.source.has_commit(indexed):
            logger.info("bringing the report index from %s to %s", indexed[:12], commit[:12])
            self.index.begin()
            self.index.add_changes(self._diff_rows(indexed, commit))
            for batch_entries in self._parse_changed(commit, None, StepStats(commit, "sync"), emit=False):
                self.index.add_incoming(self._last_good(entry) for entry, _ in batch_entries)
            self.index.apply(capture_before=False)
            self.index.set_commit(commit)
            self.index.commit()
            return
        logger.info("building the report index at %s (no events: this is the starting point)", commit[:12])
        self._snapshot(commit, "rebuild", emit=False)

    def _last_good(self, entry: IndexEntry) -> IndexEntry:
        """A report file that turns unparseable keeps its last good content: a broken edit is dead-lettered,
        never reported as a deletion downstream would act on."""
        if entry.kind != INVALID:
            return entry
        previous = self.index.entry(entry.path)
        return previous if previous is not None and previous.kind == REPORT else entry

    def _parse_changed(
        self, commit: str, upstream_time: int | None, stats: StepStats, emit: bool
    ) -> Iterable[list[tuple[IndexEntry, ParsedReport | None]]]:
        """Read and parse every changed path's new blob, a batch at a time; dead-letter what cannot be parsed."""
        total = self.index.changed_count()[1]
        label = "snapshot" if stats.mode in ("snapshot", "rebuild") else stats.mode
        show = total >= PROGRESS_MIN_FILES
        self._progress.start()
        done = 0
        for batch in self.index.new_blobs(BATCH):
            if self._stop.is_set:
                raise PollInterrupted
            out: list[tuple[IndexEntry, ParsedReport | None]] = []
            blobs = self.source.read_blobs([blob for _, blob in batch], self.cfg.max_file_bytes)
            for (path, blob), data in zip(batch, blobs, strict=True):
                entry, report = self._parse_one(path, blob, data, commit, upstream_time, stats, emit)
                out.append((entry, report))
            done += len(batch)
            stats.files += len(batch)
            yield out
            if show:
                self._progress.update(label, done, total, done)
        if show:
            self._progress.update(label, done, total, done, force=True)
            self._progress.finish()

    def _parse_one(
        self,
        path: str,
        blob: str,
        data: tuple[int, bytes] | None,
        commit: str,
        upstream_time: int | None,
        stats: StepStats,
        emit: bool,
    ) -> tuple[IndexEntry, ParsedReport | None]:
        try:
            if data is None:
                raise GitSourceError(f"blob {blob} of {path} is missing from the object database")
            size, content = data
            if size > self.cfg.max_file_bytes:
                raise ReportParseError("oversized", f"{size} bytes is over the {self.cfg.max_file_bytes}-byte cap")
            outcome = parse_report(content, path, self.cfg.max_file_bytes)
        except ReportParseError as exc:
            if emit:
                self._dead_letter(exc.reason, str(exc), path, commit, upstream_time, data, stats)
            return IndexEntry(path, blob, INVALID), None
        if isinstance(outcome, Pending):
            stats.pending += 1
            return IndexEntry(path, blob, PENDING), None
        packages = outcome.packages
        entry = IndexEntry(
            path,
            blob,
            REPORT,
            outcome.report_id,
            is_withdrawn(path, outcome),
            outcome.ecosystem,
            outcome.package_name,
            outcome.package,
            tuple((p.ecosystem, p.package_name, p.package) for p in packages[1:]) if len(packages) > 1 else (),
        )
        return entry, outcome

    # -- emitting ------------------------------------------------------------------------------------------
    def _emit_change(
        self,
        change: Change,
        cache: dict[str, ParsedReport],
        commit: str,
        upstream_time: int,
        observed: int,
        stats: StepStats,
    ) -> None:
        loc = change.location
        report = cache.get(loc.blob) or self._reparse(loc.path, loc.blob)
        if report is not None and len(cache) < PARSE_CACHE:
            cache.setdefault(loc.blob, report)  # a report leaving two packages is read once
        if report is None or change.package not in report.keys:
            # Only the old side can land here (its blob may be gone after a force-push): name it from the index.
            report = self._from_index(change.report_id, loc.path)
        if change.package in report.keys:
            affected = report.affected(change.package)
        else:  # pragma: no cover - the index lost the row too; still tell the package, with what is known
            affected = AffectedPackage(change.package[0], change.package[1], change.package[1], (), False)
        self._emit_report(
            change.report_id, change.change, report, affected, loc.path, commit, upstream_time, observed, stats
        )

    def _from_index(self, report_id: str, path: str) -> ParsedReport:
        """A report known only by the index's row for ``path`` before this step: names, no versions."""
        entry = self.index.entry_before(path)
        names = entry.names if entry is not None else ()
        packages = tuple(AffectedPackage(eco, name, pkg, (), False) for eco, name, pkg in names)
        first = packages[0] if packages else AffectedPackage("", "", "", (), False)
        return ParsedReport(
            report_id,
            first.ecosystem,
            first.package_name,
            first.package,
            (),
            False,
            "",
            None,
            None,
            None,
            (),
            (),
            packages,
        )

    def _reparse(self, path: str, blob: str) -> ParsedReport | None:
        data = next(iter(self.source.read_blobs([blob], self.cfg.max_file_bytes)))
        if data is None:
            return None
        try:
            outcome = parse_report(data[1], path, self.cfg.max_file_bytes)
        except ReportParseError:
            return None
        return outcome if isinstance(outcome, ParsedReport) else None

    def _emit_report(
        self,
        report_id: str,
        change: str,
        report: ParsedReport,
        affected: AffectedPackage,
        path: str,
        commit: str,
        upstream_time: int,
        observed: int,
        stats: StepStats,
    ) -> None:
        event = ReportObserved(
            event_id=report_event_id(report_id, change, commit, affected.key, len(report.packages) > 1),
            source=SOURCE,
            ecosystem=affected.ecosystem,
            package=affected.package,
            observed_at=observed,
            upstream_time=upstream_time,
            report_id=report_id,
            change=change,
            package_name=affected.package_name,
            affected_versions=affected.affected_versions,
            all_versions=affected.all_versions,
            summary=report.summary,
            published=report.published,
            modified=report.modified,
            withdrawn=report.withdrawn,
            aliases=report.aliases,
            origins=report.origins,
            commit=commit,
            path=path,
        )
        try:
            self.sink.emit(event)
        except SchemaError as exc:
            self._dead_letter("schema", str(exc), path, commit, upstream_time, None, stats)
            return
        stats.record(change, report_id)

    def _dead_letter(
        self,
        reason: str,
        error: str,
        path: str,
        commit: str,
        upstream_time: int | None,
        data: tuple[int, bytes] | None,
        stats: StepStats,
    ) -> None:
        pointer = f"{path}@{commit}"
        logger.warning("dead-lettering %s: %s: %s", safe(pointer), reason, safe(error))
        self.sink.emit(
            dead_letter(
                source=SOURCE,
                reason=reason,
                error=error,
                pointer=pointer,
                observed_at=self._clock(),
                upstream_time=upstream_time,
                payload=data[1] if data is not None else None,
                payload_cap=PAYLOAD_CAP,
            )
        )
        stats.deadletters[reason] += 1

    # -- committing ----------------------------------------------------------------------------------------
    def _finish(self, commit: str, upstream_time: int, stats: StepStats) -> None:
        """Flush, save the cursor, then commit the index; any failure leaves cursor and index as they were."""
        self.index.set_commit(commit)
        self.sink.flush()
        self._save_cursor(commit, upstream_time)
        self.index.commit()
        for change, count in stats.changes.items():
            self.metrics.openssf_reports.labels(change).inc(count)
        emitted = stats.changes.total()
        if emitted:
            self.metrics.events_emitted.labels(SOURCE, "ReportObserved").inc(emitted)
        for reason, count in stats.deadletters.items():
            self.metrics.deadletters.labels(SOURCE, reason).inc(count)
            self.metrics.events_emitted.labels(SOURCE, "DeadLetter").inc(count)
        if stats.pending:
            self.metrics.openssf_pending.inc(stats.pending)
        logger.info(
            "%s %s: %s, %d pending skipped, %d dead-lettered",
            stats.mode,
            commit[:12],
            dict(stats.changes) or "no report changes",
            stats.pending,
            stats.deadletters.total(),
        )

    def _save_cursor(self, commit: str, upstream_time: int) -> None:
        self.cursors.save(Cursor(self.component, commit, self._clock(), upstream_time))
        self._cursor_time = upstream_time

    def _update_cursor_age(self) -> None:
        if self._cursor_time is not None:
            self.metrics.cursor_age.labels(SOURCE).set(max(0.0, (self._clock() - self._cursor_time) / 1000))
