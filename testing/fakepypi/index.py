"""The root ``/simple/`` index (B4) and ``list_packages_with_serial``, fast enough for 800 000 projects.

Why a merge of runs: real projects are a small sorted list and each synthetic segment is an already-sorted
virtual sequence.  Instead of materialising and sorting 800 000 entries, the renderer walks the runs in
name order, copying whole slices between interleavings (found by binary search), and formats each slice
with a single comprehension.  Quarantined projects are dropped from ``/simple/`` but kept in
``list_packages_with_serial``, exactly as Warehouse filters one and not the other.
"""

from __future__ import annotations

import bisect
import heapq
import json
from collections.abc import Sequence
from xml.sax.saxutils import escape as xml_escape

from .registry import RootEntry, RootSnapshot
from .render import API_VERSION, SIMPLE_CACHE, SIMPLE_JSON, Response, escape, ok

_ROOT_HTML_HEAD = (
    "<!DOCTYPE html>\n"
    '<html lang="en">\n'
    "  <head>\n"
    f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
    "    <title>Simple index</title>\n"
    "  </head>\n"
    "  <body>\n"
)
_ROOT_HTML_TAIL = "</body>\n</html>"
_XML_HEAD = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n"
_XML_TAIL = "</struct></value>\n</param>\n</params>\n</methodResponse>\n"


def merge_plan(runs: Sequence[Sequence[str]]) -> list[tuple[int, int, int]]:
    """Slices ``(run, start, stop)`` that, concatenated, list every run's keys in sorted order."""
    heap = [(run[0], number) for number, run in enumerate(runs) if len(run)]
    heapq.heapify(heap)
    position = [0] * len(runs)
    plan: list[tuple[int, int, int]] = []
    while heap:
        _, number = heapq.heappop(heap)
        run, start = runs[number], position[number]
        stop = len(run) if not heap else max(start + 1, bisect.bisect_left(run, heap[0][0], start))
        plan.append((number, start, stop))
        position[number] = stop
        if stop < len(run):
            heapq.heappush(heap, (run[stop], number))
    return plan


def _walk(snapshot: RootSnapshot, *, listed_only: bool) -> tuple[list[RootEntry], list[tuple[int, int, int]]]:
    real = [e for e in snapshot.entries if e[3] or not listed_only]
    runs: list[Sequence[str]] = [[e[0] for e in real], *(segment for segment, _ in snapshot.segments)]
    return real, merge_plan(runs)


def root_json(snapshot: RootSnapshot) -> bytes:
    """Compact, key-sorted JSON identical to ``json.dumps(_simple_index(...), sort_keys=True, ...)``."""
    real, plan = _walk(snapshot, listed_only=True)
    parts: list[str] = []
    for number, start, stop in plan:
        if number == 0:
            parts.extend(
                f'{{"_last-serial":{serial},"name":{json.dumps(display, ensure_ascii=False)}}}'
                for _, display, serial, _ in real[start:stop]
            )
        else:
            segment, skip = snapshot.segments[number - 1]
            parts.extend(segment.json_fragments(start, stop, skip))
    head = f'{{"meta":{{"_last-serial":{snapshot.serial},"api-version":"{API_VERSION}"}},"projects":['
    return (head + ",".join(parts) + "]}\n").encode("utf-8")


def root_html(snapshot: RootSnapshot) -> bytes:
    """The PEP 503 root page: ``<a href="/simple/<normalized>/">Display</a>`` lines, no serials."""
    real, plan = _walk(snapshot, listed_only=True)
    parts: list[str] = [_ROOT_HTML_HEAD]
    for number, start, stop in plan:
        if number == 0:
            parts.extend(f'<a href="/simple/{key}/">{escape(display)}</a>\n' for key, display, _, _ in real[start:stop])
        else:
            segment, skip = snapshot.segments[number - 1]
            parts.extend(segment.html_fragments(start, stop, skip))
    parts.append(_ROOT_HTML_TAIL)
    return "".join(parts).encode("utf-8")


def root_response(snapshot: RootSnapshot, content_type: str) -> Response:
    """The 200 for ``/simple/``; ``X-PyPI-Last-Serial`` is the global serial."""
    body = root_json(snapshot) if content_type == SIMPLE_JSON else root_html(snapshot)
    return ok(body, content_type, snapshot.serial, SIMPLE_CACHE, vary=True)


def list_packages_xml(snapshot: RootSnapshot) -> bytes:
    """``list_packages_with_serial()`` marshalled like ``xmlrpc.client.dumps`` would, but in one pass."""
    real, plan = _walk(snapshot, listed_only=False)
    member = "<member>\n<name>%s</name>\n<value><int>%d</int></value>\n</member>\n"
    parts: list[str] = [_XML_HEAD]
    for number, start, stop in plan:
        if number == 0:
            parts.extend(member % (xml_escape(display), serial) for _, display, serial, _ in real[start:stop])
        else:
            segment, skip = snapshot.segments[number - 1]
            base = segment.first_serial
            parts.extend(member % (segment.name(i), base + i) for i in range(start, stop) if i not in skip)
    parts.append(_XML_TAIL)
    return "".join(parts).encode("utf-8")
