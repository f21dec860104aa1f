"""Index URLs: one canonical spelling, and the one decision "is this PyPI itself?".

Lockfiles and pip options spell the same index many ways (``https://PyPI.org/simple``, ``https://pypi.org:443/
simple/``, ``https://user:token@pypi.org/simple/#x``, the old ``pypi.python.org``). Deciding "from PyPI" on the raw
string sends PyPI packages down the "other index" path (or, with a sloppy comparison, the reverse), so every
caller compares :func:`canonical_index_url` forms and asks :func:`is_pypi_index`.

Only spellings that provably reach the same server are merged: scheme and host are case-insensitive, a default
port is the same port, credentials and fragments are not part of where files come from, and ``/simple`` and
``/simple/`` are the same index (pip and uv add the slash). Anything the standard parser cannot read, or that
holds characters clients disagree about (backslashes, whitespace, control characters), is returned as written,
so it can never compare equal to PyPI.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

PYPI_SIMPLE_URL = "https://pypi.org/simple/"
"""PyPI's simple index, in canonical form."""

PYPI_INDEXES = frozenset(
    {
        PYPI_SIMPLE_URL,
        "https://pypi.python.org/simple/",  # the old name; still served (redirects to pypi.org), old Pipfile.locks
        "https://pypi.org/pypi/",  # the JSON API base beside the index: PyPI's own server too
        "https://pypi.python.org/pypi/",
    }
)
"""Canonical URLs that mean "PyPI itself". Plain ``http://`` is not among them: without TLS anyone on the path
can answer, so an ``http://pypi.org/simple`` lock is not treated as PyPI (it is another index, which the gate does
not pass unchecked)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSAFE = re.compile(r"[\s\\\x00-\x1f\x7f]")
"""Backslashes: WHATWG parsers (and some HTTP clients) read ``\\`` as ``/``, ``urllib`` does not, so
``https://evil.example\\@pypi.org/`` has two hosts depending on who reads it. Whitespace and control characters
are stripped or rejected differently by different clients."""


def canonical_index_url(url: str) -> str:
    """One spelling per index: lower-case scheme and host, no default port, no credentials, no fragment, the path
    (case kept) with exactly one trailing slash, the query kept. Never raises: unreadable input comes back
    stripped but otherwise as written."""
    text = url.strip()
    if not text or _UNSAFE.search(text):
        return text
    try:
        parts = urlsplit(text)
        port = parts.port
        host = parts.hostname
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    netloc = ""
    if host is not None:
        host = host.removesuffix(".")  # the DNS root: `pypi.org.` is `pypi.org`
        netloc = f"[{host}]" if ":" in host else host
        if port is not None and port != _DEFAULT_PORTS.get(scheme):
            netloc = f"{netloc}:{port}"
    elif parts.netloc and "@" not in parts.netloc:
        netloc = parts.netloc.lower()
    path = parts.path.rstrip("/") + "/"
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def is_pypi_index(url: str) -> bool:
    """True only for PyPI's own index (or its JSON API base), however it is spelt; a mirror or proxy is not PyPI,
    because it may serve other files under the same names."""
    return canonical_index_url(url) in PYPI_INDEXES


PYPI_FILE_HOSTS = frozenset({"files.pythonhosted.org", "pypi.org"})
"""Hosts PyPI serves distribution files from (``pypi.org/packages/...`` redirects to the first)."""


def is_pypi_file_url(url: str) -> bool:
    """True when a recorded download URL is served by PyPI: https, a PyPI file host, nothing clients read
    differently (``https://evil.example\\@files.pythonhosted.org/x.whl`` is evil.example to a WHATWG parser)."""
    text = url.strip()
    if _UNSAFE.search(text):
        return False
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return False
    return parts.scheme.lower() == "https" and (parts.hostname or "").removesuffix(".") in PYPI_FILE_HOSTS
