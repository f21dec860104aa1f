"""What ``qwatch up`` says about each source: a status line every 30 s, and a loud warning when one fails.

Read from each child's own ``/metrics`` (the same numbers Prometheus sees, so the screen and the dashboard never
disagree): ``qwatch_source_up`` and ``qwatch_source_last_success_timestamp_seconds`` where the child exports them
(older children: ``qwatch_ingest_last_success_timestamp_seconds`` and the poll outcomes stand in), events emitted,
failed polls and HTTP error codes. A failing source is named with what it failed on and what that costs, because
"pypi-journal: error" tells an operator nothing while "quarantines will only be inferred from page polls" tells
them why to care. Pure functions of scraped text and a clock, so the wording is tested without processes.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from app.render import human_duration
from qwatch.logs import safe

SOURCES = ("openssf", "pypi-journal", "pypi-simple", "pypi-json", "pypi-provenance")

CONSEQUENCES = {
    "pypi-journal": "quarantines will only be inferred from page polls, without upstream time",
    "pypi-simple": "archives, index removals and first sightings go unseen; quarantines are not confirmed on pages",
    "pypi-json": "yanks and release-level changes of watched projects go unseen",
    "openssf": "new and withdrawn malicious-package reports go unseen",
    "pypi-provenance": "releases that lose or change their PEP 740 provenance go unseen",
}
"""What is lost while a source fails, in the words of the warning."""

HINTS = {("pypi-journal", 405): "XML-RPC blocked?", ("pypi-journal", 403): "XML-RPC blocked?"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Prometheus text → {(sample name, sorted labels): value}."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def _sum(samples: Samples, name: str, **match: str) -> float:
    return sum(
        v for (n, labels), v in samples.items() if n == name and all(dict(labels).get(k) == m for k, m in match.items())
    )


def _get(samples: Samples, name: str, **match: str) -> float | None:
    found = [
        v for (n, labels), v in samples.items() if n == name and all(dict(labels).get(k) == m for k, m in match.items())
    ]
    return max(found) if found else None


@dataclass(frozen=True)
class SourceStatus:
    """One source at one scrape."""

    name: str
    reachable: bool
    up: bool | None = None
    last_success: float | None = None
    events: float = 0.0
    failed_polls: float = 0.0
    http_errors: Mapping[int, float] = field(default_factory=dict)


def source_status(name: str, samples: Samples | None) -> SourceStatus:
    """The numbers that matter for ``name`` in its child's scrape (None: the endpoint did not answer)."""
    if samples is None:
        return SourceStatus(name, reachable=False)
    up = _get(samples, "qwatch_source_up", source=name)
    last = _get(samples, "qwatch_source_last_success_timestamp_seconds", source=name)
    if last is None:
        last = _get(samples, "qwatch_ingest_last_success_timestamp_seconds", source=name)
    polls = [
        (dict(labels).get("outcome", ""), v)
        for (n, labels), v in samples.items()
        if n == "qwatch_ingest_polls_total" and dict(labels).get("source") == name
    ]
    codes: dict[int, float] = {}
    for (n, labels), v in samples.items():
        d = dict(labels)
        if n == "qwatch_http_responses_total" and d.get("source") == name and d.get("code", "").isdigit():
            code = int(d["code"])
            if code >= 400 and code != 404:  # a 404 is an answer (removed project), not a failure
                codes[code] = codes.get(code, 0.0) + v
    return SourceStatus(
        name,
        reachable=True,
        up=None if up is None else up >= 1,
        last_success=last if last else None,
        events=_sum(samples, "qwatch_events_emitted_total", source=name),
        failed_polls=sum(v for outcome, v in polls if outcome not in ("ok", "")),
        http_errors=codes,
    )


def failing(prev: SourceStatus | None, cur: SourceStatus) -> bool:
    """Down by its own account, or polls failed since the last look with no success in between."""
    if not cur.reachable:
        return False  # not running at all is the supervisor's warning (exit code, restart), not this one
    if cur.up is not None:
        return not cur.up
    if cur.last_success is None:
        return cur.failed_polls > 0
    if prev is None or not prev.reachable:
        return False
    return cur.failed_polls > prev.failed_polls and cur.last_success == prev.last_success


def failure_detail(prev: SourceStatus | None, cur: SourceStatus, url: str) -> str:
    """``HTTP 405 from <url> (XML-RPC blocked?)``: the error code that grew since the last look (else the most
    frequent), or the failed-poll count when no HTTP error explains it."""
    before = prev.http_errors if prev is not None else {}
    grown = {c: n - before.get(c, 0.0) for c, n in cur.http_errors.items() if n > before.get(c, 0.0)}
    pool = grown or dict(cur.http_errors)
    if pool:
        code = max(pool, key=lambda c: (pool[c], c))
        hint = HINTS.get((cur.name, code))
        return f"HTTP {code} from {safe(url, 120)}" + (f" ({hint})" if hint else "")
    return f"{cur.failed_polls:.0f} failed poll(s) against {safe(url, 120)}"


def warning_text(prev: SourceStatus | None, cur: SourceStatus, url: str, last_log: str | None) -> str:
    """The operator-facing warning: source, what failed, what it costs, and the child's own last words."""
    text = f"{cur.name}: {failure_detail(prev, cur, url)}; {CONSEQUENCES.get(cur.name, 'its events go unseen')}"
    if last_log:
        text += f" [log: {safe(last_log, 200)}]"
    return text


def status_line(cur: SourceStatus, now: float) -> str:
    """``pypi-journal  ok       last success 3.1 s ago · 42 events · 0 failed polls``."""
    if not cur.reachable:
        return f"{cur.name:<13} {'down':<8} metrics not answering (starting or restarting)"
    state = "FAILING" if cur.up is False else "ok" if cur.last_success else "starting"
    last = f"last success {human_duration(now - cur.last_success)} ago" if cur.last_success else "no success yet"
    return f"{cur.name:<13} {state:<8} {last} · {_n(cur.events, 'event')} · {_n(cur.failed_polls, 'failed poll')}" + (
        f" · HTTP errors {format_codes(cur.http_errors)}" if cur.http_errors else ""
    )


def _n(count: float, noun: str) -> str:
    """``1 event``, ``42 events``."""
    return f"{count:,.0f} {noun}{'' if count == 1 else 's'}"


def format_codes(codes: Mapping[int, float]) -> str:
    """``405×12, 503×2``."""
    return ", ".join(f"{c}×{n:.0f}" for c, n in sorted(codes.items()))


def pipeline_line(processor: Samples | None, alerts: Samples | None) -> str:
    """Processor and alerts in one line: what came in, what changed, who was told."""
    parts = []
    if processor is None:
        parts.append("processor metrics not answering")
    else:
        parts.append(
            f"{_n(_sum(processor, 'qwatch_processor_observations_total'), 'observation')} → "
            f"{_n(_sum(processor, 'qwatch_transitions_total'), 'transition')} "
            f"(lag {_sum(processor, 'qwatch_consumer_lag_records'):,.0f})"
        )
    if alerts is None:
        parts.append("alerts metrics not answering")
    else:
        parts.append(
            f"{_n(_sum(alerts, 'qwatch_alerts_total'), 'alert')}; webhook "
            f"{_sum(alerts, 'qwatch_webhook_deliveries_total', outcome='delivered'):,.0f} delivered, "
            f"{_sum(alerts, 'qwatch_webhook_deliveries_total', outcome='retried'):,.0f} retries, "
            f"{_sum(alerts, 'qwatch_webhook_deliveries_total', outcome='dead-letter'):,.0f} parked"
        )
    return f"{'pipeline':<13} {'':<8} " + " · ".join(parts)


def scrape(port: int, timeout: float = 2.0) -> Samples | None:
    """A child's samples, or None when it does not answer (starting, restarting, gone)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:  # noqa: S310
            return parse(resp.read().decode())
    except (OSError, ValueError):
        return None


def last_log_problem(path: Path, tail_bytes: int = 16384) -> str | None:
    """The message of the newest WARNING or ERROR line in a child's log (the detail metrics cannot carry)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - tail_bytes))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        for level in (" ERROR ", " WARNING "):
            if level in line:
                message = line.split(level, 1)[1]
                return message.split(": ", 1)[1] if ": " in message else message
    return None
