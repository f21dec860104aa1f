"""The dataclasses in qwatch.events and the .avsc files must say the same thing, field by field."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import fastavro
import pytest

from qwatch import events
from schemas import SCHEMA_DIR

_PRIMITIVES = {str: "string", int: "long", bool: "boolean", float: "double", bytes: "bytes"}


def _python_to_avro(tp: Any) -> Any:
    """The Avro type a Python annotation must correspond to (names for records)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        return ["null", _python_to_avro(inner)]
    if typing.get_origin(tp) is tuple:
        return {"array": _python_to_avro(args[0])}
    if dataclasses.is_dataclass(tp):
        return tp.SCHEMA  # type: ignore[union-attr]
    return _PRIMITIVES[tp]


def _avro_shape(t: Any) -> Any:
    """Reduce an Avro type declaration to the same shape (records by name, int/long both 'long')."""
    if isinstance(t, list):
        return [_avro_shape(x) for x in t]
    if isinstance(t, dict):
        if t["type"] == "array":
            return {"array": _avro_shape(t["items"])}
        if t["type"] == "record":
            return t["name"]
        return _avro_shape(t["type"])
    return "long" if t == "int" else t


def _records(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {schema["name"]: schema}
    for f in schema["fields"]:
        for candidate in f["type"] if isinstance(f["type"], list) else [f["type"]]:
            if isinstance(candidate, dict):
                if candidate["type"] == "record":
                    found.update(_records(candidate))
                elif candidate["type"] == "array" and isinstance(candidate["items"], dict):
                    found.update(_records(candidate["items"]))
    return found


ALL_RECORDS: dict[str, dict[str, Any]] = {}
for path in sorted(SCHEMA_DIR.glob("*.avsc")):
    ALL_RECORDS.update(_records(json.loads(path.read_text())))

DATACLASSES = {cls.SCHEMA: cls for cls in vars(events).values() if dataclasses.is_dataclass(cls)}


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.avsc")), ids=lambda p: p.name)
def test_every_schema_parses_and_documents_every_field(path: Path) -> None:
    raw = json.loads(path.read_text())
    fastavro.parse_schema(raw)
    assert raw["namespace"] == "dev.qwatch.v1"
    assert raw.get("doc"), f"{path.name} needs a doc"
    for record in _records(raw).values():
        for f in record["fields"]:
            assert f.get("doc"), f"{record['name']}.{f['name']} needs a doc"


@pytest.mark.parametrize("cls", list(events.TOP_LEVEL), ids=lambda c: c.__name__)
def test_top_level_types_have_a_schema_file(cls: type) -> None:
    assert (SCHEMA_DIR / f"{cls.SCHEMA}.avsc").exists()  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(DATACLASSES), ids=str)
def test_dataclass_fields_match_schema(name: str) -> None:
    cls = DATACLASSES[name]
    assert name in ALL_RECORDS, f"{name} has no Avro record"
    record = ALL_RECORDS[name]
    hints = typing.get_type_hints(cls)
    py_fields = [(f.name, _python_to_avro(hints[f.name])) for f in dataclasses.fields(cls)]
    avro_fields = [(f["name"], _avro_shape(f["type"])) for f in record["fields"]]
    assert py_fields == avro_fields


def test_every_avro_record_has_a_dataclass() -> None:
    assert set(ALL_RECORDS) <= set(DATACLASSES)
