"""Parse the root ``/simple/`` index (JSON and HTML) into a RootSnapshot, fast enough for 800k projects.

Why entries instead of a dict: between two polls only a few hundred of ~800k projects change, so decoding
every entry into Python objects (what ``json.loads`` does: seconds and hundreds of MB) is wasted work.
Warehouse renders the root compactly with sorted keys, ``{"_last-serial":N,"name":"X"}``, so the fast path
splits the ``projects`` array into raw entry byte strings kept in a frozenset; the diff is then a C-speed set
difference and only the changed entries are ever decoded. Any other spelling (whitespace, key order, an older
server) takes the ``json.loads`` path and is re-rendered into the same canonical entry form, so a snapshot
from either path compares correctly with one from the other.

Each snapshot also carries the SHA-256 of the body it came from: a poll whose body hashes the same as the last
one (upstream sent no ETag, or a new one for the same bytes) is over before any parsing (about 20 ms for 40 MB).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from qwatch.pypi.errors import PyPIParseError
from qwatch.pypi.jsonbody import as_int, as_str, load_json

_PROJECTS = b'"projects":['
_ENTRY_HEAD = b'{"_last-serial":'
_SEPARATOR = b"},{"
_ENTRY = re.compile(rb'"_last-serial":(\d{1,18}|null),"name":"([^"\\]*)"')
_ANCHOR_OPEN = re.compile(r"<a\s", re.I)
_ANCHOR_CLOSE = re.compile(r"</a\s*>", re.I)
_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_TAG = re.compile(r"<[^<>]*>")
"""A tag inside an anchor's text; ``<`` is excluded so a run of unclosed ``<`` cannot make it quadratic."""
_REPO_VERSION = re.compile(r"""<meta\s+name=["']pypi:repository-version["']\s+content=["']([^"']*)["']""", re.I)


@dataclass(frozen=True, slots=True)
class RootSnapshot:
    """The root index: its own serial and one canonical entry per project (see the module docstring)."""

    serial: int | None
    api_version: str | None
    entries: frozenset[bytes]
    digest: bytes = field(default=b"", compare=False)
    """SHA-256 of the body parsed (``body_digest``); empty when unknown (an old state file, a test's snapshot)."""

    def __len__(self) -> int:
        return len(self.entries)

    def to_mapping(self) -> dict[str, int | None]:
        """Display name → ``_last-serial`` for every entry (decodes everything: for tests and small roots)."""
        out: dict[str, int | None] = {}
        for entry in self.entries:
            decoded = decode_entry(entry)
            if decoded is not None:
                out[decoded[0]] = decoded[1]
        return out


def body_digest(body: bytes) -> bytes:
    """The digest a snapshot remembers of its body: equal digests mean nothing to parse or diff."""
    return hashlib.sha256(body).digest()


def render_entry(name: str, serial: int | None) -> bytes:
    """The canonical entry form the fast path sees in Warehouse's compact output."""
    value = "null" if serial is None else str(serial)
    return f'"_last-serial":{value},"name":{json.dumps(name, ensure_ascii=False)}'.encode()


def decode_entry(entry: bytes) -> tuple[str, int | None] | None:
    """(display name, serial) of one entry, or None when it is not a project entry we can read."""
    m = _ENTRY.fullmatch(entry)
    if m is not None:
        try:
            name = m.group(2).decode("utf-8")
        except UnicodeDecodeError:
            return None
        return (name, None if m.group(1) == b"null" else int(m.group(1))) if name else None
    try:
        data = json.loads(b"{" + entry + b"}")
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        return None
    return data["name"], as_int(data.get("_last-serial"))


def snapshot_from(
    serial: int | None, api_version: str | None, projects: Iterable[tuple[str, int | None]]
) -> RootSnapshot:
    """Build a snapshot from decoded (name, serial) pairs (slow path, HTML, tests, benchmarks)."""
    return RootSnapshot(serial, api_version, frozenset(render_entry(n, s) for n, s in projects if n))


def parse_root_json(body: bytes) -> RootSnapshot:
    """The PEP 691 root: ``meta._last-serial`` and one entry per project; raises only PyPIParseError."""
    fast = _fast_root(body)
    if fast is not None:
        return fast
    data = load_json(body)
    if not isinstance(data, dict) or not isinstance(data.get("projects"), list):
        raise PyPIParseError("schema", "root index lacks a 'projects' list")
    meta = data.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    pairs = (
        (entry["name"], as_int(entry.get("_last-serial")))
        for entry in data["projects"]
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    )
    snap = snapshot_from(as_int(meta.get("_last-serial")), as_str(meta.get("api-version")), pairs)
    return RootSnapshot(snap.serial, snap.api_version, snap.entries, body_digest(body))


def _fast_root(body: bytes) -> RootSnapshot | None:
    start = body.find(_PROJECTS)
    end = body.rfind(b"]")
    if start < 0 or end < start:
        return None
    start += len(_PROJECTS)
    if end > start and (not body.startswith(_ENTRY_HEAD, start) or body[end - 1 : end] != b"}"):
        return None
    frame = load_json(body[:start] + body[end:])  # proves the body is whole: a cut-off root fails here
    if not isinstance(frame, dict) or frame.get("projects") != []:
        return None
    entries = _split_entries(body, start, end) if end > start else []
    # Every entry must be one object of the expected shape: the counts of its two keys must match.
    if body.count(b'"_last-serial":', start, end) != len(entries) or body.count(b'"name":', start, end) != len(entries):
        return None
    meta = frame.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    return RootSnapshot(
        as_int(meta.get("_last-serial")), as_str(meta.get("api-version")), frozenset(entries), body_digest(body)
    )


def _split_entries(body: bytes, start: int, end: int) -> list[bytes]:
    """``body[start + 1 : end - 1].split(_SEPARATOR)`` without that slice: on a 40 MB root the copy alone was
    40 MB of peak memory. The whole body is split, and only its first and last pieces are trimmed (the objects
    before and after the array hold no ``},{``: the frame was checked to be ``projects: []`` otherwise, and
    ``meta`` holds no nested objects)."""
    if body.find(_SEPARATOR, 0, start) >= 0 or body.find(_SEPARATOR, end) >= 0:
        return body[start + 1 : end - 1].split(_SEPARATOR)  # an odd frame: take the simple way
    entries = body.split(_SEPARATOR)
    entries[0] = entries[0][start + 1 :]
    entries[-1] = entries[-1][: len(entries[-1]) - (len(body) - end) - 1]
    return entries


def _last_segment(href: str) -> str:
    try:
        path = urlsplit(href).path
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return ""
    return unquote(path.rstrip("/").rpartition("/")[2])


def _anchors(text: str) -> Iterator[tuple[str, str]]:
    """(attributes, inner HTML) of each ``<a ...>...</a>``, as ``<a\\s([^>]*)>(.*?)</a\\s*>`` would find them.

    Why not that regex: where no ``</a>`` follows, every ``<a`` retries the scan to the end of the body, so a
    hostile 160 KB root took 10 s (quadratic). Here each scan resumes where the previous anchor ended, and a
    missing ``>`` or ``</a>`` ends the search, since no later anchor can have one either.
    """
    pos = 0
    while (start := _ANCHOR_OPEN.search(text, pos)) is not None:
        gt = text.find(">", start.end())
        if gt < 0:
            return
        end = _ANCHOR_CLOSE.search(text, gt + 1)
        if end is None:
            return
        yield text[start.end() : gt], text[gt + 1 : end.start()]
        pos = end.end()


def parse_root_html(body: bytes) -> RootSnapshot:
    """The PEP 503 root: one anchor per project, display name as text, no serials."""
    text = body.decode("utf-8", errors="replace")
    if "<" not in text:
        raise PyPIParseError("malformed-html", "no HTML markup in a text/html body")
    names: list[str] = []
    for attrs, inner in _anchors(text):
        name = html.unescape(_TAG.sub("", inner)).strip()
        if not name:
            m = _HREF.search(attrs)
            href = html.unescape(next((g for g in m.groups() if g), "")) if m else ""
            name = _last_segment(href)
        names.append(name)
    m = _REPO_VERSION.search(text)
    snap = snapshot_from(None, m.group(1) if m else None, ((n, None) for n in names))
    return RootSnapshot(snap.serial, snap.api_version, snap.entries, body_digest(body))
