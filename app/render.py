"""One readable line per event, for analysts at a terminal (``qwatch tail``, ``qwatch up``).

Every upstream value goes through ``logs.safe`` first: a package name with ANSI escapes or newlines must not be
able to repaint an analyst's terminal.
"""

from __future__ import annotations

from qwatch import events
from qwatch.ids import iso_ms
from qwatch.logs import escape, safe
from qwatch.logs import human_duration as human_duration


def _latency(upstream: int | None, detected: int) -> str:
    if upstream is None:
        return ""
    return f" latency {human_duration((detected - upstream) / 1000)}"


SEVERITY_COLOURS = {"critical": "\x1b[1;31m", "high": "\x1b[31m", "medium": "\x1b[33m", "low": "\x1b[36m"}
"""ANSI SGR per severity (bold red, red, yellow, cyan); only ever applied to our own fixed severity words."""
WARNING_COLOUR = "\x1b[1;33m"
RESET = "\x1b[0m"


def colour_enabled(stream: object, env: dict[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set to anything (https://no-color.org)."""
    import os

    env = dict(os.environ) if env is None else env
    isatty = getattr(stream, "isatty", None)
    return "NO_COLOR" not in env and env.get("TERM") != "dumb" and callable(isatty) and bool(isatty())


def paint(line: str, severity: str, enabled: bool) -> str:
    """Colour the severity word of an already-escaped line (the first occurrence, padded column included)."""
    colour = SEVERITY_COLOURS.get(severity)
    if not enabled or colour is None:
        return line
    word = f" {severity} "
    at = line.find(word)
    if at < 0:
        return line
    return f"{line[: at + 1]}{colour}{severity}{RESET}{line[at + 1 + len(severity) :]}"


def render(event: object) -> str:
    """A single line; the first two columns are time and kind so ``grep``/``sort`` work.

    The finished line is escaped once more as a whole: a field rendered without ``safe`` (a kind, a status, a
    record type's own ``render_line``) then still cannot carry a control character to the terminal.
    """
    return escape(_render(event))


def _render(event: object) -> str:
    if isinstance(event, events.Transition):
        extra = f" {safe(event.version)}" if event.version else ""
        extra += f" {safe(event.report_id)}" if event.report_id else ""
        return (
            f"{iso_ms(event.detected_at)} {event.kind:<19} {event.severity:<8} "
            f"{safe(event.ecosystem)}:{safe(event.package)}{extra}{_latency(event.upstream_time, event.detected_at)}"
            f"  {safe(event.summary, 160)}"
        )
    if isinstance(event, events.Cursor):
        return f"{iso_ms(event.updated_at)} CURSOR {safe(event.component)} -> {safe(event.value, 80)}"
    name = type(event).__name__
    when = iso_ms(getattr(event, "observed_at", None))
    head = (
        f"{when} {name:<24} {safe(getattr(event, 'source', ''))} {safe(getattr(event, 'ecosystem', ''))}:"
        f"{safe(getattr(event, 'package', ''))}"
    )
    if isinstance(event, events.ReportObserved):
        return f"{head} {event.change} {safe(event.report_id)} @{event.commit[:10]}"
    if isinstance(event, events.ProjectStatusObserved):
        return f"{head} status={event.status} serial={event.last_serial} versions={len(event.versions)}"
    if isinstance(event, events.IndexMembershipObserved):
        return f"{head} present={event.present} serial={event.last_serial}"
    if isinstance(event, events.JournalEntryObserved):
        version = f" {safe(event.version)}" if event.version else ""
        return f"{head} #{event.serial} {safe(event.action)}{version} at {iso_ms(event.timestamp)}"
    if isinstance(event, events.DeadLetter):
        return f"{head} {event.reason}: {safe(event.error, 160)} ({safe(event.pointer, 120)})"
    if isinstance(event, events.WatchRequest):
        return f"{head} watch: {safe(event.reason)}"
    if isinstance(event, events.ProvenanceObserved):
        files = [f for r in event.releases for f in r.files]
        held = sum(1 for f in files if f.attested and f.digest_ok is not False and f.signature != "invalid")
        newest = f" newest {safe(event.releases[-1].version)}" if event.releases else ""
        return (
            f"{head} releases={len(event.releases)}{newest} files={len(files)} "
            f"attested={sum(f.attested for f in files)} holding={held}"
        )
    line = getattr(event, "render_line", None)  # record types of later issues render themselves (already safe)
    if callable(line):
        return f"{head} {line()}"
    return f"{head}"
