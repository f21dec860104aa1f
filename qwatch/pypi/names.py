"""PEP 503 name normalization: the key under which PyPI serves a project and we key every event.

One definition for the ingestors, the gate, the lockfile parsers, the OpenSSF parser and the local PyPI, built on
``packaging`` so it agrees with pip by construction.
"""

from __future__ import annotations

from packaging.utils import canonicalize_name


def normalize(name: str) -> str:
    """Lower-case and collapse runs of ``-_.`` into ``-`` (``Trig_Guard`` → ``trig-guard``)."""
    return str(canonicalize_name(name))
