"""The Avro contract of quarantine-watch, shipped as ``.avsc`` files so any language can consume the topics.

The files are the source of truth; ``qwatch.events`` mirrors them as frozen dataclasses and a parity test keeps
both in step.
"""

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
"""Where the ``.avsc`` files live, inside the installed package as well as in a checkout."""
