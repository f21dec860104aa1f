"""``pypi-provenance``: the PEP 740 provenance of the recent releases of every watched project.

Per project and pass: one conditional GET of the Simple page (a 304 means no new file, so nothing more), then,
for each file of the ``releases`` most recent releases not checked before, its provenance: from the URL the page
names (API version 1.3 and later, where ``provenance: null`` means none), else from the Integrity API. Each body
is checked (subject digest against the page's sha256, signature by the injected verifier) once: PyPI fixes a
file's provenance at upload, so a checked file is remembered for good (as long as its release is recent).

What is emitted: one ProvenanceObserved per project whenever the set of checked files changed. A project with any
file whose provenance could not be fetched (5xx, timeout, a 404 that is not "No provenance available", 403 while
attestations are disabled) emits nothing that pass: a half-checked release would read as "no attestation" and
raise a false PROVENANCE_LOST. The failure is dead-lettered with its reason and the project retried next pass.
Remembered checks commit only after the sink acknowledged the pass's events.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ingestors.pypi import emit
from ingestors.pypi.config import ProvenanceIngestConfig
from ingestors.pypi.pages import Failure, Fetched, fetch_simple, project_url
from ingestors.pypi.state import load_state, save_state
from ingestors.pypi.watchset import WatchSet, sweep
from qwatch import events
from qwatch.http import ETagCache, PoliteClient
from qwatch.ids import event_id, now_ms
from qwatch.logs import safe
from qwatch.metrics import Metrics
from qwatch.provenance.check import check_file
from qwatch.provenance.fetch import FetchFailure, fetch_provenance, provenance_location, releases_in_order
from qwatch.provenance.verify import SignatureVerifier
from qwatch.pypi.model import PageFile, ProjectPage
from qwatch.sinks import PublishError, Sink

logger = logging.getLogger(__name__)
SOURCE = emit.PROVENANCE


def recent_releases(page: ProjectPage, count: int) -> list[tuple[str, list[PageFile]]]:
    """The ``count`` most recent releases with files (upload order, then version), oldest first."""
    return releases_in_order(page)[-count:]


@dataclass
class ProvenancePassReport:
    """What one pass did; ``ok`` decides the ``--once`` exit code."""

    fetched: int = 0
    emitted: int = 0
    checked_files: int = 0
    dead_letters: int = 0
    published: bool = False
    pending: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every emitted event was acknowledged."""
        return self.published


@dataclass(frozen=True, slots=True)
class _Look:
    name: str
    page: Fetched[ProjectPage]
    files: dict[str, events.FileProvenance] = field(default_factory=dict)
    failure: tuple[str, Failure] | None = None


class ProvenanceIngestor:
    """The pass logic of ``pypi-provenance``; client, sink, watch set, verifier and state file are injected."""

    def __init__(
        self,
        cfg: ProvenanceIngestConfig,
        client: PoliteClient,
        sink: Sink,
        metrics: Metrics,
        watch: WatchSet,
        verifier: SignatureVerifier,
        state_file: Path | None = None,
        *,
        clock_ms: Callable[[], int] = now_ms,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.sink = sink
        self.metrics = metrics
        self.watch = watch
        self.verifier = verifier
        self.state_file = state_file
        self._clock_ms = clock_ms
        self._should_stop = should_stop
        self.pending: set[str] = set()
        self._checked: dict[str, dict[str, events.FileProvenance]] = {}
        self._emitted: dict[str, str] = {}
        self._staged_checked: dict[str, dict[str, events.FileProvenance]] = {}
        self._staged_emitted: dict[str, str] = {}
        etags: dict[str, str] = {}
        loaded = load_state(state_file) if state_file is not None else None
        if loaded is not None:
            header, _ = loaded
            etags = dict(header.get("etags") or {})
            self._emitted = dict(header.get("emitted") or {})
            self.pending = set(header.get("pending") or [])
            for name, files in (header.get("checked") or {}).items():
                self._checked[name] = {f[0]: _file_load(f) for f in files}
        self.etags = ETagCache(etags)

    # ------------------------------------------------------------------ pass
    def run_pass(self, names: Iterable[str] | None = None) -> ProvenancePassReport:
        """Look at ``names`` (default: the watch set plus pending ones); never raises for upstream errors."""
        started = time.monotonic()
        report = ProvenancePassReport()
        todo = sorted({*(self.watch.names() if names is None else names), *self.pending})
        retry: set[str] = set()
        try:
            for look in sweep(todo, self._look, self.cfg.workers, self._should_stop):
                report.fetched += 1
                self._handle(look, report, retry)
            self.sink.flush()
        except PublishError as exc:
            logger.warning("pypi-provenance: events not acknowledged, state kept for a retry: %s", safe(str(exc)))
            self._rollback()
            self.metrics.polls.labels(SOURCE, "publish-failed").inc()
            self.metrics.source_failed(SOURCE)
            return report
        except BaseException:
            self._rollback()
            raise
        self._checked.update(self._staged_checked)
        self._emitted.update(self._staged_emitted)
        self._staged_checked.clear()
        self._staged_emitted.clear()
        self.etags.commit()
        self.pending = retry
        report.pending = sorted(retry)
        report.published = True
        if report.emitted:
            self.metrics.events_emitted.labels(SOURCE, "ProvenanceObserved").inc(report.emitted)
        self.save()
        emit.record_pass(self.metrics, SOURCE, report.fetched, report.dead_letters, started)
        return report

    def _rollback(self) -> None:
        self._staged_checked.clear()
        self._staged_emitted.clear()
        self.etags.rollback()

    def save(self) -> None:
        """Write the committed state (a no-op without ``--state-dir``)."""
        if self.state_file is None:
            return
        header = {
            "index_url": self.cfg.index_url,
            "etags": self.etags.dump(),
            "emitted": self._emitted,
            "pending": sorted(self.pending),
            "checked": {n: [_file_dump(f) for f in files.values()] for n, files in self._checked.items()},
        }
        save_state(self.state_file, header)

    # ------------------------------------------------------------------ one project (worker thread)
    def _look(self, name: str) -> _Look:
        index = self.cfg.index_url
        url = project_url(index, name)
        etag = self.etags.get(url) if name in self._emitted else None
        page = fetch_simple(self.client, index, name, etag)
        if page.http_status != 200 or page.value is None:
            return _Look(name, page)
        known = self._checked.get(name, {})
        files: dict[str, events.FileProvenance] = {}
        for version, release_files in recent_releases(page.value, self.cfg.releases):
            for f in release_files:
                sha = f.sha256 or ""
                cached = known.get(f.filename)
                if cached is not None and cached.sha256 == sha:
                    files[f.filename] = cached
                    continue
                where = provenance_location(page.value, index, name, version, f)
                body: bytes | None = None
                if where is not None:
                    fetched = fetch_provenance(self.client, where)
                    if isinstance(fetched, FetchFailure):
                        return _Look(
                            name, page, failure=(where, Failure(fetched.reason, fetched.error, fetched.payload))
                        )
                    body = fetched
                files[f.filename] = check_file(f.filename, sha, f.upload_time, body, self.verifier)
        return _Look(name, page, files)

    # ------------------------------------------------------------------ one project (emitting thread)
    def _handle(self, look: _Look, report: ProvenancePassReport, retry: set[str]) -> None:
        page = look.page
        if look.failure is not None:
            self._dead_letter(look.name, look.failure[1], look.failure[0], report, retry)
            return
        if page.failure is not None:
            self._dead_letter(look.name, page.failure, page.url, report, retry)
            return
        if page.http_status != 200 or page.value is None:
            return  # 304: no new file; 404: gone (the status ingestors report that)
        report.checked_files += sum(1 for f in look.files if f not in self._checked.get(look.name, {}))
        event = self._observation(look.name, page.value, look.files)
        self._staged_checked[look.name] = look.files
        self.etags.stage(page.url, page.etag)
        if event is None:
            return
        self.sink.emit(event)
        report.emitted += 1
        self._staged_emitted[look.name] = event.event_id

    def _observation(
        self, name: str, page: ProjectPage, files: dict[str, events.FileProvenance]
    ) -> events.ProvenanceObserved | None:
        releases = []
        for version, release_files in recent_releases(page, self.cfg.releases):
            checked = tuple(files[f.filename] for f in sorted(release_files, key=lambda f: f.filename))
            times = [f.upload_time for f in checked if f.upload_time is not None]
            releases.append(events.ReleaseProvenance(version, min(times) if times else None, checked))
        digest = json.dumps([[r.version, [_file_dump(f) for f in r.files]] for r in releases], sort_keys=True)
        eid = event_id(SOURCE, name, digest)
        if self._emitted.get(name) == eid:
            return None
        uploads = [f.upload_time for r in releases for f in r.files if f.upload_time is not None]
        return events.ProvenanceObserved(
            eid, SOURCE, emit.ECOSYSTEM, name, self._clock_ms(), max(uploads) if uploads else None,
            page.last_serial, tuple(releases),
        )  # fmt: skip

    def _dead_letter(
        self, package: str, failure: Failure, pointer: str, report: ProvenancePassReport, retry: set[str]
    ) -> None:
        event = emit.dead_letter(
            SOURCE, package, failure.reason, failure.error, pointer, failure.payload, self._clock_ms()
        )
        self.sink.emit(event)
        self.metrics.deadletters.labels(SOURCE, failure.reason).inc()
        report.dead_letters += 1
        retry.add(package)


def _file_dump(f: events.FileProvenance) -> list[object]:
    publishers = [[p.kind, p.repository, p.workflow, p.environment] for p in f.publishers]
    return [f.filename, f.sha256, f.upload_time, f.attested, publishers, f.digest_ok, f.signature, f.detail]


def _file_load(raw: list[object]) -> events.FileProvenance:
    filename, sha, up, attested, publishers, digest_ok, signature, detail = raw
    pubs = tuple(events.PublisherIdentity(*p) for p in publishers)  # type: ignore[attr-defined]
    return events.FileProvenance(
        str(filename), str(sha), up if isinstance(up, int) else None, bool(attested), pubs,
        digest_ok if isinstance(digest_ok, bool) else None, str(signature), str(detail),
    )  # fmt: skip
