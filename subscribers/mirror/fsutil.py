"""Atomic file operations for the enforcers: a reader never sees half a page, a crash never loses a file.

Pages and state are written to a temporary file in the same directory and renamed over the old one (rename is
atomic on POSIX within one filesystem). Files are *moved* (renamed) into the holding area, never copied and
deleted, so at every instant a file is in exactly one place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` in one rename: a reader sees the old or the new bytes, never a mix.

    ``durable`` also fsyncs before the rename (the enforcer's state: a power loss must not leave it empty). Pages
    skip it: they are derived data a re-sync rebuilds, and an fsync per page made a takedown several times slower."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, doc: Any, *, durable: bool = False) -> None:
    """``write_atomic`` of compact, key-sorted JSON."""
    write_atomic(path, (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode(), durable=durable)


def read_json(path: Path, default: Any) -> Any:
    """The JSON document at ``path``, or ``default`` when the file does not exist."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return default


def move(src: Path, dst: Path) -> bool:
    """Move ``src`` to ``dst`` (file or directory) by rename; a newer ``src`` replaces an older held ``dst``.

    Idempotent: with ``src`` gone and ``dst`` present (a replay after a crash) it does nothing. True if it moved.
    """
    if not src.exists() and not src.is_symlink():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    os.replace(src, dst)
    return True


def remove_tree(path: Path) -> None:
    """Delete a held tree (only ever called on the holding area)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def prune_empty_dirs(start: Path, stop: Path) -> None:
    """Remove empty directories from ``start`` up to (not including) ``stop``."""
    current = start
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
