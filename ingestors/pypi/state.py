"""Durable state of the page-fetching ingestors: one gzip file, replaced atomically, in ``--state-dir``.

Layout: a JSON header line (ETags, what was last emitted per project, pending re-fetches, root metadata),
then the root-index entries, one per line. Why this shape: 800k root entries as JSON objects would cost
seconds and ~100 MB to load, while newline-separated raw entries gunzip and split in a fraction of a second
(``gzip`` level 1: the file is rewritten after every pass, so speed beats ratio). A corrupt file is an error
that names the file, never a silent fresh start, which would re-emit a baseline as if everything changed.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterable
from hashlib import sha256
from pathlib import Path
from typing import Any

from qwatch.errors import UsageError

FORMAT = 1


class StateError(UsageError):
    """The state file exists but cannot be read; the message says which file and how to recover."""


def state_path(state_dir: Path, kind: str, upstream: str) -> Path:
    """One file per ingestor kind and upstream URL, so one state dir can serve several indexes."""
    return state_dir / f"{kind}-{sha256(upstream.encode()).hexdigest()[:12]}.state.gz"


def load_state(path: Path) -> tuple[dict[str, Any], list[bytes]] | None:
    """(header, entry lines), or None when there is no state yet."""
    if not path.exists():
        return None
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read()
        head, _, rest = data.partition(b"\n")
        header = json.loads(head)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"unknown format {header.get('format') if isinstance(header, dict) else header!r}")
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise StateError(f"state file {path} is unreadable ({exc}); move it away to start from scratch") from None
    return header, (rest.split(b"\n") if rest else [])


def save_state(path: Path, header: dict[str, Any], lines: Iterable[bytes] = ()) -> None:
    """Write via a temp file, fsync, rename: a crash leaves the old state or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    body = json.dumps({**header, "format": FORMAT}, separators=(",", ":")).encode()
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as fh:
        fh.write(body + b"\n")
        fh.write(b"\n".join(line for line in lines if b"\n" not in line))
        fh.close()
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, path)
