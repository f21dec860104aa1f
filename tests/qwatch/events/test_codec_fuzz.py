"""Fuzzing the Avro codec: hostile bytes only ever raise SchemaError, and every valid record of every type round trips.

Why the instances are generated from the dataclasses' type hints rather than from the ``.avsc`` files: the point is
to find a dataclass and a schema that disagree (a field the dataclass allows to be None that the schema does not, a
tuple of records the codec converts wrongly, a renamed field). Generating from the schema would only ever produce
values the schema accepts. The schemas are consulted for one thing Python's ``int`` cannot say: whether a field is
Avro ``int`` (32-bit) or ``long`` (64-bit), so its bounds are right.

Decoding is fuzzed three ways: arbitrary bytes behind every registered fingerprint, arbitrary bytes on their own,
and valid encodings with bytes flipped, cut or appended (which reach the nested-record and array paths).
"""

from __future__ import annotations

import dataclasses
import io
import json
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qwatch import events
from qwatch.events.codec import MAGIC, Codec, SchemaError
from qwatch.sinks import JsonlSink, JsonlSource

CODEC = Codec()
REFERENCE = Codec(generated=False)
"""fastavro alone, for both directions: what the generated encoders and decoders must agree with."""
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

HOSTILE_TEXT = st.sampled_from(
    ["", "../../etc/passwd", "a\x00b", "line\nbreak", "\x1b[2J\x1b[H", "\u202egnp.exe", "\u2028", "é", "\U0001f600"]
)
TEXT = st.text(max_size=24) | HOSTILE_TEXT


def _int32_fields() -> frozenset[tuple[str, str]]:
    """(record name, field name) of every Avro ``int`` field, found by walking the parsed schemas."""
    found: set[tuple[str, str]] = set()

    def walk(schema: Any) -> None:
        if isinstance(schema, list):
            for branch in schema:
                walk(branch)
        elif isinstance(schema, dict):
            if schema.get("type") == "record":
                for f in schema["fields"]:
                    branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
                    if "int" in branches:
                        found.add((schema["name"].rpartition(".")[2], f["name"]))
                    walk(f["type"])
            elif schema.get("type") == "array":
                walk(schema["items"])

    for cls in events.TOP_LEVEL:
        walk(CODEC.parsed_schema(cls.SCHEMA))
    return frozenset(found)


INT32_FIELDS = _int32_fields()


def _for_type(tp: Any, owner: str, field: str) -> st.SearchStrategy[Any]:
    """A strategy for one annotated type: str, int, bool, ``X | None``, ``tuple[X, ...]`` or a nested dataclass."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        assert len(rest) == 1, f"{owner}.{field}: only Optional unions are mirrored by the schemas"
        inner = _for_type(rest[0], owner, field)
        return st.none() | inner if type(None) in args else inner
    if typing.get_origin(tp) is tuple:
        assert len(args) == 2 and args[1] is Ellipsis, f"{owner}.{field}: tuples are homogeneous"
        return st.lists(_for_type(args[0], owner, field), max_size=3).map(tuple)
    if dataclasses.is_dataclass(tp):
        return record(tp)  # type: ignore[arg-type]
    if tp is bool:
        return st.booleans()
    if tp is int:
        low, high = INT32 if (owner, field) in INT32_FIELDS else INT64
        return st.integers(low, high) | st.sampled_from([low, high, 0, -1])
    if tp is str:
        return TEXT
    raise AssertionError(f"{owner}.{field}: no strategy for {tp!r}; extend _for_type with the new field type")


@cache
def record(cls: type) -> st.SearchStrategy[Any]:
    """``st.builds`` over every field of ``cls``, each from its type hint (defaults are exercised too)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: _for_type(hints[f.name], cls.__name__, f.name) for f in dataclasses.fields(cls)}
    return st.builds(cls, **fields)


TYPES = list(events.TOP_LEVEL)
ANY_RECORD = st.one_of([record(cls) for cls in TYPES])


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_record_type_round_trips(cls: type, data: st.DataObject) -> None:
    """Avro binary and the JSONL form give back an equal instance, whatever the field values."""
    value = data.draw(record(cls))
    encoded = CODEC.encode(value)
    assert encoded[:2] == MAGIC and encoded[2:10] == CODEC.fingerprint(cls.SCHEMA)  # type: ignore[attr-defined]
    assert CODEC.decode(encoded) == value
    line = json.dumps(CODEC.to_json_dict(value), separators=(",", ":"), ensure_ascii=False)
    assert "\n" not in line  # one event per JSONL line, whatever the strings hold
    assert CODEC.from_json_dict(json.loads(line)) == value


def _fastavro_body(value: Any) -> bytes:
    """The reference encoding: the dataclass as fastavro's input dict, through fastavro's own writer."""
    name = type(value).SCHEMA
    out = io.BytesIO()
    fastavro.schemaless_writer(out, CODEC.parsed_schema(name), CODEC.to_json_dict(value))
    return out.getvalue()


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_encoders_write_what_fastavro_writes(cls: type, data: st.DataObject) -> None:
    """qwatch.events.avro_encoder against fastavro, byte for byte, for every valid record of every type."""
    value = data.draw(record(cls))
    assert CODEC.encode(value)[10:] == _fastavro_body(value)


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_decoders_read_what_fastavro_reads(cls: type, data: st.DataObject) -> None:
    """qwatch.events.avro_decoder against fastavro: fastavro's own bytes for every valid record of every type give the
    same instance through both readers (and trailing bytes are ignored by both, as Avro bodies carry no length)."""
    value = data.draw(record(cls))
    encoded = MAGIC + CODEC.fingerprint(cls.SCHEMA) + _fastavro_body(value)  # type: ignore[attr-defined]
    assert CODEC.decode(encoded) == REFERENCE.decode(encoded) == value
    trailing = encoded + data.draw(st.binary(min_size=1, max_size=8))
    assert CODEC.decode(trailing) == REFERENCE.decode(trailing) == value


def _outcome(codec: Codec, data: bytes) -> tuple[bool, Any]:
    try:
        return True, codec.decode(data)
    except SchemaError:
        return False, None


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(value=ANY_RECORD, data=st.data())
@example(value=events.Cursor("c", "v", 1, None), data=None)
def test_generated_decoders_are_never_looser_than_fastavro(value: Any, data: st.DataObject | None) -> None:
    """On damaged bytes the generated decoder may refuse what fastavro reads (a boolean byte of 2, an overlong
    varint), never the other way round, and when both read a record they read the same one."""
    encoded = bytearray(CODEC.encode(value))
    if data is None:
        encoded[10] = 0x01  # zigzag -1 as the first string's length
    else:
        for _ in range(data.draw(st.integers(1, 3))):
            at = data.draw(st.integers(10, len(encoded) - 1))
            encoded[at] = data.draw(st.integers(0, 255))
    ours, theirs = _outcome(CODEC, bytes(encoded)), _outcome(REFERENCE, bytes(encoded))
    if ours[0]:
        assert theirs == ours


@settings(max_examples=25)
@given(st.lists(ANY_RECORD, min_size=1, max_size=6))
def test_jsonl_files_round_trip_hostile_strings(tmp_path_factory: pytest.TempPathFactory, values: list[Any]) -> None:
    """Through the real JSONL sink and source: no string (newline, U+2028, NEL, NUL) can split or merge lines."""
    path = Path(tmp_path_factory.mktemp("jsonl")) / "events.jsonl"
    sink = JsonlSink(str(path), CODEC)
    for value in values:
        sink.emit(value)
    sink.close()
    assert len(path.read_text(encoding="utf-8").splitlines()) == len(values)  # even for readers that split on U+2028
    source = JsonlSource(str(path), CODEC)
    try:
        got = source.poll(0)
    finally:
        source.close()
    assert [d.error for d in got] == [None] * len(values)
    assert [d.event for d in got] == values


def _decode(data: bytes) -> None:
    try:
        CODEC.decode(data)
    except SchemaError:
        pass


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
@given(body=st.binary(max_size=300))
@example(body=b"")
@example(body=b"\x80" * 11)  # a varint that never ends
@example(body=b"\x01")  # zigzag -1: a negative string length
@example(body=b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01")  # a 2**63-scale length
def test_decode_of_arbitrary_bodies_raises_only_schema_error(cls: type, body: bytes) -> None:
    _decode(MAGIC + CODEC.fingerprint(cls.SCHEMA) + body)  # type: ignore[attr-defined]


@given(st.binary(max_size=64))
def test_decode_of_arbitrary_bytes_raises_only_schema_error(data: bytes) -> None:
    _decode(data)
    _decode(MAGIC + data)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(value=ANY_RECORD, data=st.data())
def test_decode_of_damaged_encodings_raises_only_schema_error(value: Any, data: st.DataObject) -> None:
    encoded = bytearray(CODEC.encode(value))
    body_start = 10
    damage = data.draw(st.sampled_from(["flip", "cut", "append", "splice"]))
    if damage == "flip" and len(encoded) > body_start:
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(body_start, len(encoded) - 1))
            encoded[at] = data.draw(st.integers(0, 255))
    elif damage == "cut":
        del encoded[data.draw(st.integers(body_start, len(encoded))) :]
    elif damage == "append":
        encoded += data.draw(st.binary(min_size=1, max_size=16))
    else:
        at = data.draw(st.integers(body_start, len(encoded)))
        encoded[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    _decode(bytes(encoded))


@given(st.dictionaries(st.sampled_from(["type", "event_id", "component", "value", "updated_at", "x"]), TEXT))
def test_json_form_of_arbitrary_objects_raises_only_schema_error(data: dict[str, str]) -> None:
    try:
        CODEC.from_json_dict(data)
    except SchemaError:
        pass
