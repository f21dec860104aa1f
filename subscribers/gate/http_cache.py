"""A small on-disk cache of (ETag, body) per URL, so a warm gate run revalidates instead of re-downloading.

The gate always revalidates (a conditional GET per package) rather than trusting ``Cache-Control``: a quarantine
minutes ago must fail this build, and a 304 costs a round trip but no body. Entries are written atomically, so
two CI jobs sharing a cache directory can at worst both miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """What a 304 lets us reuse: the validator, the media type and the body."""

    etag: str
    content_type: str
    body: bytes


class DiskCache:
    """URL → cached response, one file per URL: a JSON header line, a newline, then the body."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, url: str) -> Path:
        return self._dir / (hashlib.sha256(url.encode()).hexdigest()[:40] + ".cache")

    def get(self, url: str) -> CachedResponse | None:
        """The stored response, or None when absent or unreadable (a cache never fails the gate)."""
        try:
            data = self._path(url).read_bytes()
        except OSError:
            return None
        head, sep, body = data.partition(b"\n")
        try:
            meta = json.loads(head) if sep else None
        except ValueError:
            return None
        if not isinstance(meta, dict) or meta.get("url") != url:
            return None
        etag, ctype = meta.get("etag"), meta.get("content_type")
        if not isinstance(etag, str) or not etag or not isinstance(ctype, str):
            return None
        return CachedResponse(etag, ctype, body)

    def put(self, url: str, response: CachedResponse) -> None:
        """Store a response in one atomic write, so an ETag never pairs with another response's body."""
        path = self._path(url)
        meta = {"url": url, "etag": response.etag, "content_type": response.content_type}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_bytes(json.dumps(meta).encode() + b"\n" + response.body)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
