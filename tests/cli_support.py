"""Running the real ``qwatch`` CLI in a subprocess and reading what it wrote, for the end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def qwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One ``qwatch`` CLI call in a subprocess; a non-zero exit fails the test with its stderr."""
    cmd = [sys.executable, "-m", "app", *args]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ), timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of ``path`` (none when the file was never written)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
