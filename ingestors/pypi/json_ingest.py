"""``pypi-json``: the JSON API (``/pypi/<name>/json``) of every watched project, once per pass.

It contributes what the Simple API lacks: the first upload time of each release (subscribers soak fresh
releases) and per-release yank reasons. A JSON-API 404 is ambiguous (quarantined, removed, or every release
quarantined), so on a 404 we emit ReleasesObserved with ``http_status`` 404 *and* fetch ``/simple/<name>/`` to
emit the ProjectStatusObserved (source ``pypi-json``) that settles it. Emission, staleness and commit rules
are those of ``pypi-simple``: emit on change only, never believe a serial older than one already seen, and
commit memory and ETags only after the flush.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingestors.pypi import emit
from ingestors.pypi.config import JsonIngestConfig
from ingestors.pypi.emit import Seen, max_serial
from ingestors.pypi.pages import Failure, Fetched, fetch_json_api, fetch_simple, json_api_url, project_url
from ingestors.pypi.state import load_state, save_state
from ingestors.pypi.tracker import StatusTracker, Verdict
from ingestors.pypi.watchset import WatchSet, sweep
from qwatch.events import ReleaseInfo
from qwatch.http import ETagCache, PoliteClient
from qwatch.ids import now_ms
from qwatch.logs import safe
from qwatch.metrics import Metrics
from qwatch.pypi.model import JsonProject, ProjectPage
from qwatch.pypi.versions import version_sort_key
from qwatch.retry import backoff_delay
from qwatch.sinks import PublishError, Sink

logger = logging.getLogger(__name__)
SOURCE = emit.JSON
ABSENT = "absent"


@dataclass
class JsonPassReport:
    """What one pass did; ``ok`` decides the ``--once`` exit code."""

    fetched: int = 0
    emitted: int = 0
    dead_letters: int = 0
    stale: int = 0
    pending: list[str] = field(default_factory=list)
    published: bool = False
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every emitted event was acknowledged."""
        return self.published

    def count(self, event_type: str) -> None:
        """Tally one emitted observation (metrics are bumped only once the flush succeeded)."""
        self.emitted += 1
        self.by_type[event_type] = self.by_type.get(event_type, 0) + 1


@dataclass(frozen=True, slots=True)
class _Look:
    """One project's JSON-API answer and, after a 404, its Simple page."""

    api: Fetched[JsonProject]
    simple: Fetched[ProjectPage] | None = None


class JsonIngestor:
    """The pass logic of ``pypi-json``; client, sink, watch set and optional state file are injected."""

    def __init__(
        self,
        cfg: JsonIngestConfig,
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
        self.pending: set[str] = set()
        self._seen: dict[str, Seen] = {}
        self._staged: dict[str, Seen] = {}
        # Canonical JSON-API URL per project: PyPI redirects /pypi/<normalized>/json to the display name,
        # and asking there directly halves the requests for every such project.
        self._api_urls: dict[str, str] = {}
        self._staged_urls: dict[str, str | None] = {}
        etags: dict[str, str] = {}
        status_seen: dict[str, Seen] = {}
        loaded = load_state(state_file) if state_file is not None else None
        if loaded is not None:
            header, _ = loaded
            etags = dict(header.get("etags") or {})
            self._seen = {n: Seen.load(raw) for n, raw in (header.get("releases_seen") or {}).items()}
            status_seen = {n: Seen.load(raw) for n, raw in (header.get("status_seen") or {}).items()}
            self._api_urls = dict(header.get("api_urls") or {})
            self.pending = set(header.get("pending") or [])
        self.etags = ETagCache(etags)
        self.tracker = StatusTracker(SOURCE, status_seen, self.etags, clock_ms)

    def run_pass(self, names: Iterable[str] | None = None) -> JsonPassReport:
        """Look at ``names`` (default: the whole watch set plus pending ones); never raises for upstream errors."""
        started = time.monotonic()
        report = JsonPassReport()
        todo = sorted({*(self.watch.names() if names is None else names), *self.pending})
        retry: set[str] = set()
        try:
            for attempt in range(self.cfg.stale_retries + 1):
                if attempt:
                    if self._should_stop():
                        break
                    self._sleep(backoff_delay(attempt, self.cfg.stale_delay))
                    self.metrics.retries.labels(SOURCE, "stale").inc(len(todo))
                stale: list[str] = []
                for look in sweep(todo, self._look, self.cfg.workers, self._should_stop):
                    report.fetched += 1
                    self._handle(look, report, stale, retry)
                todo = sorted(set(stale))
                if not todo:
                    break
            self.sink.flush()
        except PublishError as exc:
            logger.warning("pypi-json: events not acknowledged, state kept for a retry: %s", safe(str(exc)))
            self._rollback()
            self.metrics.polls.labels(SOURCE, "publish-failed").inc()
            self.metrics.source_failed(SOURCE)
            return report
        except BaseException:
            self._rollback()  # a bug or an interrupt: never keep half a pass
            raise
        self._seen.update(self._staged)
        self._staged.clear()
        for name, url in self._staged_urls.items():
            if url is None:
                self._api_urls.pop(name, None)
            else:
                self._api_urls[name] = url
        self._staged_urls.clear()
        self.tracker.commit()
        self.pending = retry | set(todo)
        report.pending = sorted(self.pending)
        report.published = True
        for event_type, count in report.by_type.items():
            self.metrics.events_emitted.labels(SOURCE, event_type).inc(count)
        self.save()
        emit.record_pass(self.metrics, SOURCE, report.fetched, report.dead_letters, started)
        return report

    def _rollback(self) -> None:
        self._staged.clear()
        self._staged_urls.clear()
        self.tracker.rollback()

    def save(self) -> None:
        """Write the committed state (a no-op without ``--state-dir``)."""
        if self.state_file is None:
            return
        header = {
            "index_url": self.cfg.index_url,
            "etags": self.etags.dump(),
            "releases_seen": {n: s.dump() for n, s in self._seen.items()},
            "status_seen": self.tracker.dump(),
            "api_urls": self._api_urls,
            "pending": sorted(self.pending),
        }
        save_state(self.state_file, header)

    def _look(self, name: str) -> _Look:
        index = self.cfg.index_url
        url = self._api_urls.get(name) or json_api_url(index, name)
        api = fetch_json_api(self.client, url, name, self.etags.get(url))
        if api.http_status != 404:
            return _Look(api)
        simple = fetch_simple(self.client, index, name, self.etags.get(project_url(index, name)))
        return _Look(api, simple)

    def _handle(self, look: _Look, report: JsonPassReport, stale: list[str], retry: set[str]) -> None:
        api = look.api
        name = api.name
        if api.failure is not None:
            self._dead_letter(name, api.failure, api.url, report, retry)
            return
        previous = self._staged.get(name) or self._seen.get(name)
        floor = previous.floor if previous else None
        if api.http_status == 304:
            return
        if api.http_status == 200:
            project = api.value
            if project is None or project.releases is None:
                failure = Failure("schema", f"{api.url}: 'releases' is not an object; the release set is unknown")
                self._dead_letter(name, failure, api.url, report, retry)
                return
            if floor is not None and api.serial is not None and api.serial < floor:
                report.stale += 1
                stale.append(name)
                return
            self.etags.stage(api.url, api.etag)
            self._staged_urls[name] = api.url
            self._compare(name, previous, 200, api.serial, project, max_serial(floor, api.serial), report)
            return
        self.etags.stage(api.url, None)
        self._staged_urls[name] = None
        self._compare(name, previous, 404, None, None, floor, report)
        if look.simple is not None:
            self._disambiguate(look.simple, report, stale, retry)

    def _compare(
        self,
        name: str,
        previous: Seen | None,
        http_status: int,
        serial: int | None,
        project: JsonProject | None,
        floor: int | None,
        report: JsonPassReport,
    ) -> None:
        digest = project.digest() if project is not None else ABSENT
        status = str(http_status)
        if previous is not None and (previous.status, previous.serial, previous.digest) == (status, serial, digest):
            if previous.floor != floor:
                self._staged[name] = replace(previous, floor=floor)
            return
        infos, newest = _release_infos(project)
        event = emit.releases(
            name,
            http_status=http_status,
            serial=serial,
            infos=infos,
            newest_upload=newest,
            digest=digest,
            previous=previous.event_id if previous else None,
            observed_at=self._clock_ms(),
        )
        self.sink.emit(event)
        report.count("ReleasesObserved")
        self._staged[name] = Seen(status, serial, digest, event.event_id, floor)

    def _disambiguate(
        self, simple: Fetched[ProjectPage], report: JsonPassReport, stale: list[str], retry: set[str]
    ) -> None:
        judged = self.tracker.judge(simple)
        if judged.verdict is Verdict.EMIT and judged.event is not None:
            self.sink.emit(judged.event)
            report.count("ProjectStatusObserved")
        elif judged.verdict is Verdict.STALE:
            report.stale += 1
            stale.append(simple.name)
        elif judged.verdict is Verdict.FAILED and simple.failure is not None:
            self._dead_letter(simple.name, simple.failure, simple.url, report, retry)

    def _dead_letter(
        self, package: str, failure: Failure, pointer: str, report: JsonPassReport, retry: set[str]
    ) -> None:
        event = emit.dead_letter(
            SOURCE, package, failure.reason, failure.error, pointer, failure.payload, self._clock_ms()
        )
        self.sink.emit(event)
        self.metrics.deadletters.labels(SOURCE, failure.reason).inc()
        report.dead_letters += 1
        retry.add(package)


def _release_infos(project: JsonProject | None) -> tuple[tuple[ReleaseInfo, ...], int | None]:
    """Releases in PEP 440 order (stable digests and ids) and the newest file upload time."""
    if project is None or project.releases is None:
        return (), None
    infos = tuple(
        ReleaseInfo(r.version, r.first_upload, r.yanked, r.yanked_reason)
        for r in sorted(project.releases, key=lambda r: (version_sort_key(r.version), r.version))
    )
    uploads = [f.upload_time for r in project.releases for f in r.files if f.upload_time is not None]
    return infos, max(uploads) if uploads else None
