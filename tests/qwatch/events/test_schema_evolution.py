"""Schema evolution rule: a published schema may only gain fields that have defaults.

``tests/schema_baseline/`` holds the schemas as first published. Old data must stay readable with the new
schema, and new data with the old one, so producers and consumers can upgrade in any order.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from schemas import SCHEMA_DIR

BASELINE = Path(__file__).parent / "schema_baseline"


def evolution_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every way ``new`` breaks the rule relative to ``old`` (empty when compatible)."""
    problems = []
    old_fields = {f["name"]: f for f in old["fields"]}
    new_fields = {f["name"]: f for f in new["fields"]}
    for name, f in old_fields.items():
        if name not in new_fields:
            problems.append(f"field {name!r} was removed")
        elif json.dumps(new_fields[name]["type"], sort_keys=True) != json.dumps(f["type"], sort_keys=True):
            problems.append(f"field {name!r} changed type")
    problems += [
        f"new field {n!r} has no default" for n, f in new_fields.items() if n not in old_fields and "default" not in f
    ]
    if old["name"] != new["name"] or old.get("namespace") != new.get("namespace"):
        problems.append("record renamed")
    return problems


@pytest.mark.parametrize("old_path", sorted(BASELINE.glob("*.avsc")), ids=lambda p: p.name)
def test_published_schemas_only_grow_with_defaults(old_path: Path) -> None:
    old = json.loads(old_path.read_text())
    new_path = SCHEMA_DIR / old_path.name
    assert new_path.exists(), f"{old_path.name} was deleted: published schemas are forever"
    new = json.loads(new_path.read_text())
    assert evolution_problems(old, new) == []


def test_the_rule_catches_a_breaking_change() -> None:
    old = json.loads((BASELINE / "Cursor.avsc").read_text())
    new = json.loads(json.dumps(old))
    new["fields"].append({"name": "extra", "type": "string", "doc": "x"})
    new["fields"] = [f for f in new["fields"] if f["name"] != "value"]
    assert evolution_problems(old, new) == ["field 'value' was removed", "new field 'extra' has no default"]


def test_new_field_with_default_resolves_both_ways() -> None:
    old = json.loads((BASELINE / "Cursor.avsc").read_text())
    new = json.loads(json.dumps(old))
    new["fields"].append({"name": "shard", "type": "int", "default": 0, "doc": "x"})
    record = {"component": "c", "value": "v", "updated_at": 1, "upstream_time": None}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), record)
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, fastavro.parse_schema(old), fastavro.parse_schema(new))["shard"] == 0
