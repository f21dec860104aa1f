"""The ``qwatch`` command: one composition root for every component.

Each command module exposes ``register(subparsers)``; this file only assembles them and maps errors to exit
codes, so a user sees one line that says what to do instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from app import broker, tail, topics, up
from ingestors import cli as ingestors_cli
from processors import cli as processors_cli
from qwatch import __version__
from qwatch.config import KafkaConfig
from qwatch.errors import QwatchError, UsageError
from qwatch.kafka.clients import KafkaClients
from qwatch.sinks import PublishError
from subscribers.alerts import cli as alerts_cli
from subscribers.gate import cli as gate_cli
from subscribers.inventory import cli as inventory_cli
from subscribers.mirror import cli as mirror_cli
from subscribers.serve import cli as serve_cli

COMMAND_MODULES: tuple[ModuleType, ...] = (
    broker,
    topics,
    tail,
    up,
    ingestors_cli,
    processors_cli,
    gate_cli,
    inventory_cli,
    alerts_cli,
    serve_cli,
    mirror_cli,
)
"""Modules whose ``register`` adds a subcommand; order is the order ``--help`` lists them."""

DESCRIPTION = """\
quarantine-watch: streams PyPI quarantines, clearances and removals, and OpenSSF malicious-package reports,
to the people who must act. Ingestors poll upstream and emit Avro observations to Kafka; the processor turns
them into transitions exactly once; subscribers alert, gate CI and feed dashboards.

Kafka: set QWATCH_KAFKA_BOOTSTRAP, or run 'qwatch broker start' for the embedded local broker.
Every command also takes --sink/--source jsonl:PATH to run without Kafka.
"""


def build_parser() -> argparse.ArgumentParser:
    """The full parser tree (also used by tests that check every ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="qwatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"quarantine-watch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


USAGE_EXIT = {"gate": 3}
"""Commands whose exit codes give usage errors their own code (argparse's is 2, which the gate uses for
"cannot verify")."""


def main(argv: Sequence[str] | None = None, kafka_clients: Callable[[KafkaConfig], KafkaClients] | None = None) -> int:
    """Parse, run, and turn the project's errors (``QwatchError``) into one line and their exit code.

    ``kafka_clients`` replaces the factory every command builds its Kafka clients with (tests inject doubles here,
    so no test-only knob reaches the production config).
    """
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(words)
        args.kafka_clients = kafka_clients
    except SystemExit as exc:
        command = next((w for w in words if not w.startswith("-")), None)
        if exc.code == 2 and command in USAGE_EXIT:
            return USAGE_EXIT[command]
        raise
    try:
        code: int = args.func(args)
        return code
    except UsageError as exc:
        print(f"qwatch {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (PublishError, OSError) as exc:
        # A full disk, an unwritable --state-dir, a sink that stopped acknowledging: an operational failure, not a
        # bug. Every command saves its cursor and state only after its output was acknowledged, so say so.
        logging.getLogger("qwatch").debug("qwatch %s failed", args.command, exc_info=True)
        print(
            f"qwatch {args.command}: error: {exc} (cursor and state were not moved past unwritten output; "
            "run again once this is fixed)",
            file=sys.stderr,
        )
        return 1
    except QwatchError as exc:
        print(f"qwatch {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:
        logging.getLogger("qwatch").exception("qwatch %s failed unexpectedly", args.command)
        return 1


if __name__ == "__main__":
    sys.exit(main())
