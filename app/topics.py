"""``qwatch topics create|list``: idempotent topic creation with partitions, compaction and retention."""

from __future__ import annotations

import argparse
import os
from typing import Any

from qwatch.events.topics import ALL_TOPICS
from qwatch.runtime import add_common, kafka_config


def register(sub: Any) -> None:
    """Add ``topics``."""
    p = sub.add_parser(
        "topics",
        help="create the qwatch topics (idempotent) or list them",
        description="Creates every qwatch topic with its partitions and configs; existing topics are left alone.",
    )
    p.add_argument("action", choices=("create", "list"), help="create missing topics, or list the expected ones")
    add_common(p, sink=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Create or list."""
    if args.action == "list":
        for spec in ALL_TOPICS:
            print(f"{spec.name:28} partitions={spec.partitions} {spec.configs} - {spec.doc}")
        return 0
    from qwatch.kafka.io import create_topics, make_admin

    admin = make_admin(kafka_config(os.environ, args.bootstrap))
    try:
        created = create_topics(admin)
    finally:
        admin.close()
    for spec in ALL_TOPICS:
        print(f"{spec.name}: {'created' if spec.name in created else 'exists'}")
    return 0
