"""``pypi-journal``: tail PyPI's journal through XML-RPC ``changelog_since_serial``; the cursor is the serial.

The journal is the only timestamped record of ``project quarantined``, ``project quarantine cleared``,
``release quarantined`` and ``remove project`` (``pypi-signals.md`` point 3), so every row becomes one
JournalEntryObserved, verbatim. Rules:
- pages of at most ``page_size`` rows (PyPI: 50 000) are read until a short page says we are caught up;
- each page is emitted, flushed, and only then is the cursor saved (``Cursor.value`` = ``str(serial)``);
- with no cursor and no ``--since-serial`` we start at ``changelog_last_serial()``: no history is replayed,
  and that starting point is saved at once so the next run misses nothing;
- fault -32500 (rate limited) waits for "Limit may reset in N seconds" (or backs off) and retries; any other
  fault, HTTP error or unreadable body is dead-lettered and the cursor stays where it was;
- failing loudly: ``qwatch_source_up{source="pypi-journal"}`` is 0 while polls fail, and an HTTP 403/405 (a proxy
  or firewall refusing XML-RPC POSTs) logs one warning per episode that says what is lost meanwhile.
"""

from __future__ import annotations

import logging
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ingestors.pypi import emit
from ingestors.pypi.config import JournalIngestConfig
from ingestors.pypi.parse_xmlrpc import limit_reset_seconds, parse_changelog, parse_last_serial
from qwatch.cursors import CursorStore
from qwatch.errors import UsageError
from qwatch.events import Cursor
from qwatch.http import HttpError, PoliteClient
from qwatch.ids import now_ms
from qwatch.logs import safe
from qwatch.metrics import Heartbeat, Metrics
from qwatch.pypi.errors import PyPIParseError
from qwatch.pypi.model import ChangelogPage, RpcFault
from qwatch.sinks import PublishError, Sink

logger = logging.getLogger(__name__)
T = TypeVar("T")
SOURCE = emit.JOURNAL
XML_TYPES = frozenset({"text/xml", "application/xml"})
BLOCKED_STATUSES = frozenset({403, 405})
"""What a proxy or WAF that refuses XML-RPC POSTs answers; PyPI itself never does for changelog calls."""


@dataclass
class JournalReport:
    """What one poll did. ``failure`` is set when the cursor could not be moved as far as upstream allows."""

    start: int | None = None
    cursor: int | None = None
    rows: int = 0
    dead_letters: int = 0
    pages: int = 0
    rate_limited: int = 0
    failure: str | None = None
    wait_hint: float | None = None

    @property
    def ok(self) -> bool:
        """True when we caught up with the journal and every event was acknowledged."""
        return self.failure is None


class _Gave(Exception):
    """Internal: a call failed for good in this poll (reason already dead-lettered or counted)."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class JournalIngestor:
    """The poll logic of ``pypi-journal``; client, sink and cursor store are injected."""

    def __init__(
        self,
        cfg: JournalIngestConfig,
        client: PoliteClient,
        sink: Sink,
        metrics: Metrics,
        cursors: CursorStore,
        *,
        clock_ms: Callable[[], int] = now_ms,
        sleep: Callable[[float], object] = time.sleep,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.sink = sink
        self.metrics = metrics
        self.cursors = cursors
        self.component = f"pypi-journal {cfg.xmlrpc_url}"
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._position: int | None = None  # the saved cursor, once known (Kafka cursors are costly to load)
        self._heartbeat = heartbeat
        self._failing: str | None = None  # the failure of the current episode, so it is logged once
        self._blocked = False

    def poll(self) -> JournalReport:
        """Read pages until caught up; emit, flush, then save the cursor after each page. Never raises upstream
        or publish failures (they are in the report); a corrupt stored cursor does raise."""
        started = time.monotonic()
        report = JournalReport()
        try:
            since = self._start(report)
            report.start = report.cursor = since
            while True:
                page = self._changelog(since, report)
                report.pages += 1
                if self._heartbeat is not None:
                    self._heartbeat.beat()
                rows = [r for r in page.rows if r.serial > since]
                now = self._clock_ms()
                for row in rows:
                    self.sink.emit(emit.journal_entry(row, now))
                for bad in page.bad_rows:
                    self._dead_letter(
                        "schema",
                        "journal row does not match (name, version, ts, action, serial)",
                        f"{self.cfg.xmlrpc_url}#since={since}",
                        bad.encode(),
                        report,
                    )
                high = page.high_serial
                if high is None or high <= since:
                    break
                self.sink.flush()
                last_time = max((r.timestamp for r in rows), default=None)
                self.cursors.save(Cursor(self.component, str(high), now, last_time))
                self._position = high
                report.rows += len(rows)
                self.metrics.events_emitted.labels(SOURCE, "JournalEntryObserved").inc(len(rows))
                if last_time is not None:
                    self.metrics.cursor_age.labels(SOURCE).set(max(0.0, (now - last_time) / 1000))
                since = report.cursor = high
                if len(page.rows) + len(page.bad_rows) < self.cfg.page_size:
                    break
            self.sink.flush()  # dead letters of a page that did not move the cursor
        except _Gave as gave:
            report.failure, report.wait_hint = gave.reason, gave.wait
            try:
                self.sink.flush()  # the dead letter that explains the failure
            except PublishError as exc:
                logger.warning("pypi-journal: dead letter not acknowledged: %s", safe(str(exc)))
        except PublishError as exc:
            logger.warning(
                "pypi-journal: events not acknowledged, cursor kept at %s: %s", report.cursor, safe(str(exc))
            )
            report.failure = "publish"
        self.metrics.polls.labels(SOURCE, "ok" if report.ok else report.failure or "failed").inc()
        self.metrics.poll_duration.labels(SOURCE).observe(time.monotonic() - started)
        self._record_health(report)
        return report

    def _record_health(self, report: JournalReport) -> None:
        """``qwatch_source_up`` and last success after every poll; one log line when an episode starts or ends."""
        if report.ok:
            self.metrics.source_succeeded(SOURCE)
            if self._failing is not None:
                logger.warning("pypi-journal: polls work again after %s; serial %s", self._failing, report.cursor)
            self._failing = None
            self._blocked = False
            return
        self.metrics.source_failed(SOURCE)
        if self._failing is None and not self._blocked:
            logger.warning(
                "pypi-journal: poll failed (%s) from %s; the cursor stays at %s and is retried",
                report.failure,
                self.cfg.xmlrpc_url,
                report.cursor,
            )
        self._failing = report.failure or "failed"

    def _start(self, report: JournalReport) -> int:
        if self._position is not None:
            return self._position
        cursor = self.cursors.load(self.component)
        if cursor is not None:
            try:
                self._position = int(cursor.value)
            except ValueError:
                raise UsageError(f"cursor {self.component!r} holds {cursor.value!r}, not a serial") from None
            return self._position
        if self.cfg.since_serial is not None:
            return self.cfg.since_serial
        last = self._call("changelog_last_serial", (), parse_last_serial, report)
        self.cursors.save(Cursor(self.component, str(last), self._clock_ms(), None))
        self._position = last
        logger.info("pypi-journal: no cursor; starting at the current last serial %d (no history)", last)
        return last

    def _changelog(self, since: int, report: JournalReport) -> ChangelogPage:
        return self._call("changelog_since_serial", (since,), parse_changelog, report)

    def _call(
        self,
        method: str,
        params: tuple[int, ...],
        parse: Callable[[bytes], T | RpcFault],
        report: JournalReport,
    ) -> T:
        url = self.cfg.xmlrpc_url
        body = xmlrpc.client.dumps(params, method, allow_none=True).encode("utf-8")
        pointer = f"{url}#{method}({', '.join(map(str, params))})"
        faults = 0
        while True:
            try:
                result = self.client.post(url, body, content_type="text/xml")
            except HttpError as exc:
                self._dead_letter(exc.reason, str(exc), pointer, None, report)
                raise _Gave(exc.reason) from None
            if result.status != 200:
                if result.status in BLOCKED_STATUSES and not self._blocked:
                    self._blocked = True
                    logger.warning(
                        "pypi-journal: HTTP %d from %s (XML-RPC blocked?); quarantines will only be inferred from "
                        "page polls, without upstream time",
                        result.status,
                        url,
                    )
                self._dead_letter("http-status", f"POST {url}: HTTP {result.status}", pointer, result.body, report)
                raise _Gave("http-status")
            if result.content_type not in XML_TYPES:
                error = f"POST {url}: Content-Type {result.content_type!r}"
                self._dead_letter("content-type", error, pointer, result.body, report)
                raise _Gave("content-type")
            try:
                value = parse(result.body)
            except PyPIParseError as exc:
                self._dead_letter(exc.reason, f"{pointer}: {exc}", pointer, result.body, report)
                raise _Gave(exc.reason) from None
            if not isinstance(value, RpcFault):
                return value
            if not value.rate_limited:
                self._dead_letter("xmlrpc-fault", f"fault {value.code}: {value.message}", pointer, result.body, report)
                raise _Gave("xmlrpc-fault")
            faults += 1
            report.rate_limited += 1
            wait = limit_reset_seconds(value.message)
            wait = self.client.backoff(faults) if wait is None else wait
            self.metrics.retries.labels(SOURCE, "rate-limited").inc()
            if faults > self.cfg.max_fault_retries or wait > self.client.cfg.retry_after_max:
                logger.warning("pypi-journal: rate limited by PyPI; giving up this poll (reset in %.0f s)", wait)
                raise _Gave("rate-limited", wait)
            logger.info("pypi-journal: rate limited by PyPI; waiting %.1f s", wait)
            self._sleep(wait)

    def _dead_letter(self, reason: str, error: str, pointer: str, payload: bytes | None, report: JournalReport) -> None:
        self.sink.emit(emit.dead_letter(SOURCE, "", reason, error, pointer, payload, self._clock_ms()))
        self.metrics.deadletters.labels(SOURCE, reason).inc()
        report.dead_letters += 1
