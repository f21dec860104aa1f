"""Parse the root ``/simple/`` index (JSON and HTML) into a RootSnapshot, fast enough for 800k projects.

Why entries instead of a dict: between two polls only a few hundred of ~800k projects change, so decoding
every entry into Python objects (what ``json.loads`` does: seconds and hundreds of MB) is wasted work.
Warehouse renders the root compactly with sorted keys, ``{"_last-serial":N,"name":"X"}``, so the fast path
cuts the ``projects`` array into raw entry byte strings kept in a frozenset; the diff is then a C-speed set
difference and only the changed entries are ever decoded. Any other spelling (whitespace, key order, an older
server) takes the ``json.loads`` path and is re-rendered into the same canonical entry form, so a snapshot
from either path compares correctly with one from the other.

The canonical entry is ``N,X`` (``null,X`` without a serial): the serial, a comma, and the name as the JSON
string's raw content, without the quotes. Why not the entry as sent: its constant text (``"_last-serial":``,
``,"name":"``, the closing quote) is 25 bytes of every one of 800k entries, held twice while a poll compares the
previous snapshot with the new one; dropping it is what keeps a root poll under 250 MiB. The fast path strips
it with two ``bytes.replace`` per chunk of the array (C speed), never per entry. ``canonical_entry`` converts the
older ``"_last-serial":N,"name":"X"`` form (state files written before) on load.

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
_NAME_KEY = b',"name":"'
_CUT = b'"},{"_last-serial":'
"""Between two compact entries: the end of one and the head of the next. A raw newline replaces it, which no
JSON text can hold inside a string."""
_CHUNK = 1 << 18
_LEGACY_HEAD = b'"_last-serial":'
_LEGACY = re.compile(rb'"_last-serial":(\d{1,18}|null),"name":"((?:[^"\\]|\\.)*)"')
_SERIAL = re.compile(rb"\d{1,18}|null")
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
    """The canonical entry form (``serial,name``; see the module docstring) of one project."""
    value = "null" if serial is None else str(serial)
    return f"{value},{json.dumps(name, ensure_ascii=False)[1:-1]}".encode()


def canonical_entry(entry: bytes) -> bytes:
    """An entry in canonical form: the older ``"_last-serial":N,"name":"X"`` form converted, any other kept."""
    if entry.startswith(_LEGACY_HEAD):
        m = _LEGACY.fullmatch(entry)
        if m is not None:
            return m.group(1) + b"," + m.group(2)
    return entry


def canonical_entries(lines: list[bytes]) -> list[bytes]:
    """Stored entries in canonical form: a state file written before the ``N,X`` form holds only older entries
    (its first line says so) and is converted once; a current one is returned as it is, at no cost."""
    if lines and lines[0].startswith(_LEGACY_HEAD):
        return [canonical_entry(line) for line in lines]
    return lines


def decode_entry(entry: bytes) -> tuple[str, int | None] | None:
    """(display name, serial) of one entry, or None when it is not a project entry we can read."""
    serial_text, comma, raw = entry.partition(b",")
    if not comma or not raw:
        return None
    if _SERIAL.fullmatch(serial_text) is not None:
        serial = None if serial_text == b"null" else int(serial_text)
    else:  # another JSON value (a float, a huge number, [1,2]): read as the json.loads path reads it
        at = 0
        while True:
            at = entry.find(b",", at + 1)
            if at < 0:
                return None
            try:
                value = json.loads(entry[:at])
            except (ValueError, RecursionError):
                continue
            serial, raw = as_int(value), entry[at + 1 :]
            break
        if not raw:
            return None
    if b"\\" in raw:
        try:
            name = json.loads(b'"' + raw + b'"')
        except ValueError:
            return None
    elif b'"' in raw:
        return None
    else:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(name, str) or not name:
        return None
    return name, serial


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
    count = body.count(_SEPARATOR, start, end) + 1 if end > start else 0
    # Every entry must be one object of the expected shape: the counts of its two keys must match.
    if body.count(b'"_last-serial":', start, end) != count or body.count(b'"name":', start, end) != count:
        return None
    cut = [0]
    try:
        entries = frozenset(_cut_entries(body, start, end, cut)) if count else frozenset()
    except _NotCompact:
        return None  # not the compact shape after all: the json.loads path decides
    if cut[0] != count:
        return None
    meta = frame.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    return RootSnapshot(as_int(meta.get("_last-serial")), as_str(meta.get("api-version")), entries, body_digest(body))


class _NotCompact(Exception):
    """Some entry is not ``{"_last-serial":N,"name":"X"}`` with quote-free N and X."""


def _cut_entries(body: bytes, start: int, end: int, count: list[int]) -> Iterator[bytes]:
    """The canonical entries of ``body[start:end]`` (the ``projects`` array's inside), cut at C speed, a chunk of
    about ``_CHUNK`` bytes at a time; ``count[0]`` counts them. Raises _NotCompact for another shape.

    In each chunk (whole entries: it ends at a ``},{``), two ``replace`` calls turn
    ``{"_last-serial":N,"name":"X"},{"_last-serial":M,…`` into ``N,X\\nM,…``, and one ``split`` cuts it. No JSON
    text holds a raw newline inside a string (one outside a string makes more pieces than entries, which the
    caller's count catches), and a quote left after the replacements means an entry of another shape (an extra
    key, an escaped quote). Why chunks: the whole array replaced at once was two more copies of a 40 MB body
    and an 800k-item list at the peak of a poll that also holds the previous snapshot.
    """
    head = len(_ENTRY_HEAD)
    pos = start
    while pos < end:
        sep = body.find(_SEPARATOR, min(pos + _CHUNK, end), end)
        stop = end if sep < 0 else sep + 1  # through the closing brace of the chunk's last entry
        chunk = body[pos:stop].replace(_CUT, b"\n").replace(_NAME_KEY, b",")
        tail = len(chunk) - 2
        if not chunk.startswith(_ENTRY_HEAD) or not chunk.endswith(b'"}') or chunk.find(b'"', head, tail) >= 0:
            raise _NotCompact
        pieces = chunk.split(b"\n")
        del chunk
        pieces[-1] = pieces[-1][:-2]  # the end first: the start's offset stays as it is
        pieces[0] = pieces[0][head:]
        count[0] += len(pieces)
        yield from pieces
        pos = stop + 1  # past the comma between two entries


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
