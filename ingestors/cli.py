"""``qwatch ingest <source>``: one subcommand per ingestor, each registered by its own module."""

from __future__ import annotations

import importlib
from typing import Any

INGESTOR_MODULES: tuple[str, ...] = (
    "ingestors.openssf.cli",
    "ingestors.pypi.cli_simple",
    "ingestors.pypi.cli_json",
    "ingestors.pypi.cli_journal",
)
"""Modules exposing ``register(ingest_subparsers)``; each ingestor adds its own line."""


def register(sub: Any) -> None:
    """Add ``ingest`` and every ingestor under it."""
    p = sub.add_parser(
        "ingest",
        help="poll an upstream feed and emit observations",
        description="Each ingestor polls one upstream source and emits normalized Avro observations.",
    )
    ingest = p.add_subparsers(dest="ingestor", metavar="SOURCE", required=True)
    for name in INGESTOR_MODULES:
        importlib.import_module(name).register(ingest)
