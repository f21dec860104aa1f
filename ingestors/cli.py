"""``qwatch ingest <source>``: one subcommand per ingestor, each registered by its own module."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ingestors.openssf import cli as openssf_cli
from ingestors.pypi import cli_journal, cli_json, cli_provenance, cli_simple

INGESTOR_MODULES: tuple[ModuleType, ...] = (openssf_cli, cli_simple, cli_json, cli_journal, cli_provenance)
"""Modules exposing ``register(ingest_subparsers)``; each ingestor adds its own line, in ``--help`` order."""


def register(sub: Any) -> None:
    """Add ``ingest`` and every ingestor under it."""
    p = sub.add_parser(
        "ingest",
        help="poll an upstream feed and emit observations",
        description="Each ingestor polls one upstream source and emits normalized Avro observations.",
    )
    ingest = p.add_subparsers(dest="ingestor", metavar="SOURCE", required=True)
    for module in INGESTOR_MODULES:
        module.register(ingest)
