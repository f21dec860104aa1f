"""PEP 503 name normalization: the key under which PyPI serves a project and we key every event."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """Lower-case and collapse runs of ``-_.`` into ``-`` (``Trig_Guard`` → ``trig-guard``)."""
    return _SEPARATORS.sub("-", name).lower()
