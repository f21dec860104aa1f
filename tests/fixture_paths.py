"""Where the tests find their data: the project's shared fixtures beside the repository, and its own small ones.

The shared fixtures (real OpenSSF history, real PyPI bodies, real lockfiles) live in ``../shared/fixtures`` next to
the checkout, as CI lays them out; they are read in place, never copied into the repository.
``QWATCH_SHARED_FIXTURES`` points elsewhere. A missing folder is a failure with this path in the message, not a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QWATCH_SHARED_FIXTURES") or REPO.parent / "shared" / "fixtures")
"""``../shared/fixtures`` (or ``$QWATCH_SHARED_FIXTURES``)."""
LOCAL = REPO / "tests" / "fixtures"
"""Fixtures the project made itself (``tests/fixtures``)."""
