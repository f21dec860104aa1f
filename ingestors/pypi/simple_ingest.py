"""``pypi-simple``: diff the root ``/simple/`` index and fetch the project pages that need a look.

One pass:
1. GET the root (JSON, ``If-None-Match`` when we hold a snapshot). A 304 means no membership change. A 200 is
   diffed against the previous snapshot and every project that appeared or disappeared becomes an
   IndexMembershipObserved (``present`` true/false). **First run** (no snapshot): the root is only the
   baseline and no membership event is emitted, since "everything appeared" is not news. A root whose own
   serial is older than the snapshot's is a stale CDN copy and is ignored.
2. Fetch ``/simple/<name>/`` for: every project that disappeared (quarantined or removed: its page tells),
   watched projects whose serial changed or that appeared, every watched project on a full pass (archive and
   unarchive change no serial, so only re-reading the page catches them), urgent requests, and pages left
   pending by an earlier pass (stale or failed).
3. Emit a ProjectStatusObserved when status, versions or serial differ from what we last emitted
   (``tracker``); re-fetch stale pages a few times with backoff, then leave them pending.
4. Flush, then commit the new snapshot, ETags and per-project memory, and save the state file. If the flush
   fails nothing is committed, so the next pass repeats the work (the event ids repeat too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ingestors.pypi import emit
from ingestors.pypi.config import SimpleIngestConfig
from ingestors.pypi.emit import Seen
from ingestors.pypi.pages import SIMPLE_ACCEPT, Fetched, fetch_simple, project_url
from ingestors.pypi.parse_root import (
    RootSnapshot,
    body_digest,
    canonical_entries,
    parse_root_html,
    parse_root_json,
)
from ingestors.pypi.rootdiff import RootDiff, diff_roots
from ingestors.pypi.state import load_state, save_state
from ingestors.pypi.tracker import StatusTracker, Verdict
from ingestors.pypi.watchset import WatchSet, sweep
from qwatch.http import ETagCache, HttpError, PoliteClient
from qwatch.ids import now_ms
from qwatch.logs import safe
from qwatch.metrics import Metrics
from qwatch.pypi.errors import PyPIParseError
from qwatch.pypi.model import ProjectPage
from qwatch.pypi.pages import SIMPLE_HTML_TYPES, SIMPLE_JSON_TYPES
from qwatch.retry import backoff_delay
from qwatch.sinks import PublishError, Sink

logger = logging.getLogger(__name__)
SOURCE = emit.SIMPLE


@dataclass
class PassReport:
    """What one pass did; ``ok`` is the exit-code decision for ``--once``."""

    root: str = "skipped"  # baseline | changed | unchanged | stale | failed | skipped
    fetched: int = 0
    emitted: int = 0
    dead_letters: int = 0
    stale: int = 0
    pending: list[str] = field(default_factory=list)
    published: bool = False

    @property
    def ok(self) -> bool:
        """True when everything emitted was acknowledged and the root snapshot advanced (or had no need)."""
        return self.published and self.root != "failed"


@dataclass(frozen=True, slots=True)
class _Root:
    kind: str
    snapshot: RootSnapshot | None = None
    etag: str | None = None
    diff: RootDiff | None = None


class SimpleIngestor:
    """The pass logic of ``pypi-simple``; client, sink, watch set and optional state file are injected."""

    def __init__(
        self,
        cfg: SimpleIngestConfig,
        client: PoliteClient,
        sink: Sink,
        metrics: Metrics,
        watch: WatchSet,
        state_file: Path | None = None,
        *,
        clock_ms: Callable[[], int] = now_ms,
        sleep: Callable[[float], object] = time.sleep,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.sink = sink
        self.metrics = metrics
        self.watch = watch
        self.state_file = state_file
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._should_stop = should_stop
        self.root: RootSnapshot | None = None
        self.root_etag: str | None = None
        self.pending: set[str] = set()
        seen: dict[str, Seen] = {}
        etags: dict[str, str] = {}
        loaded = load_state(state_file) if state_file is not None else None
        if loaded is not None:
            header, lines = loaded
            root = header.get("root") or {}
            if root.get("present"):
                digest = bytes.fromhex(str(root.get("digest") or ""))
                entries = frozenset(canonical_entries(lines))
                self.root = RootSnapshot(root.get("serial"), root.get("api_version"), entries, digest)
                self.root_etag = root.get("etag")
            etags = dict(header.get("etags") or {})
            seen = {name: Seen.load(raw) for name, raw in (header.get("seen") or {}).items()}
            self.pending = set(header.get("pending") or [])
        self.tracker = StatusTracker(SOURCE, seen, ETagCache(etags), clock_ms)

    @property
    def root_url(self) -> str:
        """The root index URL, with the trailing slash PyPI requires."""
        return self.cfg.index_url.rstrip("/") + "/"

    def run_pass(self, *, poll_root: bool = True, recheck_all: bool = True, extra: Iterable[str] = ()) -> PassReport:
        """One pass (see the module docstring); never raises for upstream or publish failures."""
        started = time.monotonic()
        report = PassReport()
        emitted: dict[str, int] = {}
        staged_root: _Root | None = None
        try:
            targets: dict[str, int | None] = {}
            if poll_root:
                staged_root = self._poll_root()
                report.root = staged_root.kind
                if staged_root.diff is not None:
                    self._emit_membership(staged_root, emitted)
                    targets.update(self._root_targets(staged_root.diff))
            if recheck_all:
                for name in self.watch.names():
                    targets.setdefault(name, None)
            for name in [*self.pending, *extra]:
                targets.setdefault(name, None)
            failed = self._fetch(targets, report, emitted)
            self.sink.flush()
        except PublishError as exc:
            logger.warning("pypi-simple: events not acknowledged, state kept for a retry: %s", safe(str(exc)))
            self.tracker.rollback()
            self.metrics.polls.labels(SOURCE, "publish-failed").inc()
            self.metrics.source_failed(SOURCE)
            return report
        except BaseException:
            self.tracker.rollback()  # a bug or an interrupt: never keep half a pass
            raise
        self.tracker.commit()
        if staged_root is not None and staged_root.snapshot is not None:
            self.root, self.root_etag = staged_root.snapshot, staged_root.etag
        self.pending = failed
        report.pending = sorted(failed)
        report.published = True
        for event_type, count in emitted.items():
            self.metrics.events_emitted.labels(SOURCE, event_type).inc(count)
        self.save()
        self.metrics.polls.labels(SOURCE, "ok" if report.ok else report.root).inc()
        self.metrics.poll_duration.labels(SOURCE).observe(time.monotonic() - started)
        if report.ok:
            self.metrics.source_succeeded(SOURCE)
        else:
            self.metrics.source_failed(SOURCE)
        return report

    def save(self) -> None:
        """Write the committed state (a no-op without ``--state-dir``)."""
        if self.state_file is None:
            return
        root = self.root
        header = {
            "index_url": self.cfg.index_url,
            "root": {
                "present": root is not None,
                "serial": root.serial if root else None,
                "api_version": root.api_version if root else None,
                "etag": self.root_etag,
                "digest": root.digest.hex() if root else "",
            },
            "etags": self.tracker.etags.dump(),
            "seen": self.tracker.dump(),
            "pending": sorted(self.pending),
        }
        save_state(self.state_file, header, root.entries if root else ())

    def _poll_root(self) -> _Root:
        url = self.root_url
        etag = self.root_etag if self.root is not None else None
        try:
            result = self.client.get(url, accept=SIMPLE_ACCEPT, etag=etag)
        except HttpError as exc:
            return self._root_failed(exc.reason, str(exc), None)
        if result.status == 304:
            return _Root("unchanged")
        if result.status != 200:
            return self._root_failed("http-status", f"GET {url}: HTTP {result.status}", result.body)
        if self.root is not None and self.root.digest and body_digest(result.body) == self.root.digest:
            return _Root("unchanged")  # the same bytes as the last believed root (no ETag needed): skip the parse
        try:
            if result.content_type in SIMPLE_JSON_TYPES:
                snapshot = parse_root_json(result.body)
            elif result.content_type in SIMPLE_HTML_TYPES:
                snapshot = parse_root_html(result.body)
            else:
                return self._root_failed("content-type", f"{url}: Content-Type {result.content_type!r}", result.body)
        except PyPIParseError as exc:
            return self._root_failed(exc.reason, f"{url}: {exc}", result.body)
        header_serial = result.header_int("X-PyPI-Last-Serial")
        if header_serial is not None and snapshot.serial is None:
            snapshot = RootSnapshot(header_serial, snapshot.api_version, snapshot.entries, snapshot.digest)
        previous = self.root
        if previous is None:
            return _Root("baseline", snapshot, result.etag)
        if previous.serial is not None and snapshot.serial is not None and snapshot.serial < previous.serial:
            self.metrics.retries.labels(SOURCE, "stale").inc()
            logger.info(
                "pypi-simple: root serial %s is older than %s: stale copy ignored",
                snapshot.serial,
                previous.serial,
            )
            return _Root("stale")
        diff = diff_roots(previous, snapshot)
        if diff.unreadable:
            sample = b"\n".join(diff.unreadable[:5])
            return self._root_failed("schema", f"{url}: {len(diff.unreadable)} unreadable root entries", sample)
        return _Root("changed", snapshot, result.etag, diff)

    def _root_failed(self, reason: str, error: str, payload: bytes | None) -> _Root:
        logger.warning("pypi-simple: root index not believed (%s): %s", reason, safe(error))
        self._dead_letter("", reason, error, self.root_url, payload)
        return _Root("failed")

    def _emit_membership(self, root: _Root, emitted: dict[str, int]) -> None:
        assert root.diff is not None and root.snapshot is not None
        index_serial = root.snapshot.serial
        now = self._clock_ms()
        changes = [(name, True, serial) for name, serial in root.diff.added.items()]
        changes += [(name, False, serial) for name, serial in root.diff.removed.items()]
        for name, present, serial in sorted(changes):
            self.sink.emit(emit.membership(name, present, serial, index_serial, now))
            emitted["IndexMembershipObserved"] = emitted.get("IndexMembershipObserved", 0) + 1

    def _root_targets(self, diff: RootDiff) -> dict[str, int | None]:
        """Pages the diff asks for, each with the serial a believable page must at least carry."""
        # The action that hid a project (quarantine, removal) bumped its serial past the one we knew.
        targets = {name: (old + 1 if old is not None else None) for name, old in diff.removed.items()}
        targets.update((name, serial) for name, serial in diff.added.items() if name in self.watch)
        for name, (_, new) in diff.changed.items():
            if name in self.watch:
                targets[name] = new
        return targets

    def _fetch(self, targets: dict[str, int | None], report: PassReport, emitted: dict[str, int]) -> set[str]:
        """Fetch, judge and emit; re-fetch stale pages with backoff. Returns the names to look at again."""
        retry: set[str] = set()
        todo = sorted(targets)
        for attempt in range(self.cfg.stale_retries + 1):
            if attempt:
                if self._should_stop():
                    break
                self._sleep(backoff_delay(attempt, self.cfg.stale_delay))
                self.metrics.retries.labels(SOURCE, "stale").inc(len(todo))
            stale: list[str] = []
            for fetched in sweep(todo, self._fetch_one, self.cfg.workers, self._should_stop):
                report.fetched += 1
                judged = self.tracker.judge(fetched, targets.get(fetched.name))
                if judged.verdict is Verdict.EMIT and judged.event is not None:
                    self.sink.emit(judged.event)
                    report.emitted += 1
                    emitted["ProjectStatusObserved"] = emitted.get("ProjectStatusObserved", 0) + 1
                elif judged.verdict is Verdict.STALE:
                    report.stale += 1
                    stale.append(fetched.name)
                elif judged.verdict is Verdict.FAILED and fetched.failure is not None:
                    f = fetched.failure
                    self._dead_letter(fetched.name, f.reason, f.error, fetched.url, f.payload)
                    report.dead_letters += 1
                    retry.add(fetched.name)
            todo = sorted(stale)
            if not todo:
                break
        if todo:
            logger.info("pypi-simple: %d stale page(s) left for the next pass", len(todo))
        return retry | set(todo)

    def _fetch_one(self, name: str) -> Fetched[ProjectPage]:
        index = self.cfg.index_url
        return fetch_simple(self.client, index, name, self.tracker.etags.get(project_url(index, name)))

    def _dead_letter(self, package: str, reason: str, error: str, pointer: str, payload: bytes | None) -> None:
        self.sink.emit(emit.dead_letter(SOURCE, package, reason, error, pointer, payload, self._clock_ms()))
        self.metrics.deadletters.labels(SOURCE, reason).inc()
