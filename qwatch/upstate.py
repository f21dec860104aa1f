"""Where a running ``qwatch up`` records itself, so other commands find its broker without flags.

``qwatch up`` starts its broker in its own run directory (a fresh temp dir for the demo), not in the directory
``qwatch broker start`` uses; without this record ``qwatch broker status``, ``qwatch tail`` and ``qwatch alerts``
would say "no broker" while one is running. The record lives in ``$XDG_STATE_HOME/quarantine-watch/up.json``
(``~/.local/state/...``), holds the bootstrap, run directory, log directory and pid, and counts only while that
pid is alive and the broker port answers; a crashed ``up`` leaves a stale record that is then ignored.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def state_home(env: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/quarantine-watch``, else ``~/.local/state/quarantine-watch``."""
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "quarantine-watch"


def record_path(env: Mapping[str, str]) -> Path:
    """The record file."""
    return state_home(env) / "up.json"


def write(env: Mapping[str, str], **fields: Any) -> Path:
    """Record this ``up`` (atomically: a reader never sees half a file)."""
    path = record_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **fields}, indent=1))
    tmp.replace(path)
    return path


def clear(env: Mapping[str, str]) -> None:
    """Remove the record if it is ours (a second ``up`` may have replaced it)."""
    path = record_path(env)
    current = read_raw(path)
    if current is not None and current.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def read_raw(path: Path) -> dict[str, Any] | None:
    """The record as written, or None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


def current(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The live record: its ``up`` is running and its broker answers; else None."""
    data = read_raw(record_path(env))
    if data is None or not _alive(data.get("pid")) or not _answers(str(data.get("bootstrap", ""))):
        return None
    return data


def fill_bootstrap(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """Point ``--bootstrap`` at a running ``up``'s broker when nothing else names one (no flag, no
    ``QWATCH_KAFKA_BOOTSTRAP``, no broker from ``qwatch broker start``)."""
    if getattr(args, "bootstrap", None) or env.get("QWATCH_KAFKA_BOOTSTRAP"):
        return
    from qwatch.broker import LocalBroker
    from qwatch.runtime import default_broker_dir

    if LocalBroker.attach(default_broker_dir(env)).status() is not None:
        return
    record = current(env)
    if record is not None:
        args.bootstrap = str(record["bootstrap"])
