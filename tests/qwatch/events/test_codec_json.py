"""The JSONL fast paths of the codec agree with the plain ``json`` forms they replace (bench/jsonl_bench.py).

- ``Codec.to_json_bytes`` (orjson over the dataclass) writes, byte for byte, what
  ``json.dumps(codec.to_json_dict(v), separators=(",", ":"), ensure_ascii=False)`` writes, for every record of every
  type (generated from the dataclasses, hostile strings included), and raises where that raised;
- ``JsonlSink`` files are byte-identical to the former per-event encoder's (``json.dumps`` + the line-break escapes);
- ``Codec.from_json_dict`` (the compiled builder, then the JSON check, first) gives the very event or the very error
  of the general builder followed by the Avro encoder as the validator, on valid records and on records with
  fields dropped, nulled or retyped anywhere (a JSON check looser than the encoder would accept one it refuses).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qwatch import events
from qwatch.events.codec import Codec, SchemaError, _dict_to_record
from qwatch.sinks import JsonlSink
from tests.qwatch.events.test_codec_fuzz import ANY_RECORD, record

CODEC = Codec()
OLD_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
"""The former sink's ``str.translate`` table."""
ROW = events.JournalEntryObserved("id1", "pypi-journal", "PyPI", "demo", 1, 2, "remove project", None, 7, 2, "Demo")
SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)


def reference_line(value: Any) -> bytes:
    return json.dumps(CODEC.to_json_dict(value), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _with_text(value: Any, text: str) -> Any:
    """``value`` with its first string field set to ``text`` (every top-level record has one)."""
    for f in dataclasses.fields(value):
        if isinstance(getattr(value, f.name), str):
            return dataclasses.replace(value, **{f.name: text})
    raise AssertionError(f"{type(value).__name__} has no string field")


@SETTINGS
@given(value=ANY_RECORD, text=st.text(st.characters(codec="utf-8") | st.sampled_from("\x85\u2028\u2029\x7f\x00\x1f")))
def test_to_json_bytes_is_the_json_module_byte_for_byte(value: Any, text: str) -> None:
    assert CODEC.to_json_bytes(value) == reference_line(value)
    changed = _with_text(value, text)
    assert CODEC.to_json_bytes(changed) == reference_line(changed)


def test_values_orjson_refuses_take_the_json_path_with_its_result_or_its_error() -> None:
    huge = dataclasses.replace(ROW, serial=2**70)  # beyond 64 bits: orjson refuses, json writes it
    assert CODEC.to_json_bytes(huge) == reference_line(huge) and b"1180591620717411303424" in reference_line(huge)
    surrogate = dataclasses.replace(ROW, package="a\ud800b")  # not UTF-8: both refuse, with the same error
    with pytest.raises(UnicodeEncodeError):
        reference_line(surrogate)
    with pytest.raises(UnicodeEncodeError):
        CODEC.to_json_bytes(surrogate)
    with pytest.raises(SchemaError, match="no schema registered"):
        CODEC.to_json_bytes(object())


@SETTINGS
@given(values=st.lists(ANY_RECORD, min_size=1, max_size=8), text=st.text('ab\x85\u2028\u2029\n"\\é', max_size=6))
@example(values=[ROW], text="\x85\u2028\u2029")
def test_jsonl_sink_files_are_the_former_encoders_byte_for_byte(
    tmp_path_factory: pytest.TempPathFactory, values: list[Any], text: str
) -> None:
    values = [*values, _with_text(values[0], text)]
    path = Path(tmp_path_factory.mktemp("sink")) / "out.jsonl"
    sink = JsonlSink(str(path), CODEC)
    for v in values:
        sink.emit(v)
    sink.close()
    expected = "".join(reference_line(v).decode("utf-8").translate(OLD_LINE_BREAKS) + "\n" for v in values)
    assert path.read_bytes() == expected.encode("utf-8")


def _reference_from_json(data: Any) -> tuple[str, Any]:
    """The former ``from_json_dict``: the general builder, then the generated encoder as the validator."""
    try:
        if not isinstance(data, dict):
            raise SchemaError("a JSONL event must be a JSON object")
        name = data.get("type")
        cls = next((c for c in events.TOP_LEVEL if c.SCHEMA == name), None)  # type: ignore[attr-defined]
        if cls is None:
            raise SchemaError(f"unknown event type {name!r}")
        try:
            event = _dict_to_record(cls)(data)
            CODEC.encode(event)  # raises SchemaError("<name>: <reason>") as the validation did
        except SchemaError:
            raise
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
            raise SchemaError(f"{name}: {exc}", name) from exc
    except SchemaError as exc:
        return "error", str(exc)
    return "event", event


def _outcome(data: Any) -> tuple[str, Any]:
    try:
        return "event", CODEC.from_json_dict(data)
    except SchemaError as exc:
        return "error", str(exc)


REPLACEMENT: dict[str, Any] = {
    "null": None,
    "text": "x",
    "surrogate": "a\ud800",  # json.loads reads it; it is not UTF-8
    "int": 3,
    "bool": True,
    "int64": 2**40,  # a long, not an Avro int
    "list": [],
    "items": ["x", 1, None],
    "dict": {},
    "float": 1.5,
    "huge": 2**64,
}
DAMAGE = st.sampled_from(["drop", *REPLACEMENT])


def _damage(value: Any, data: st.DataObject) -> Any:
    """Drop, null or retype a field somewhere in the record's JSON form (nested records and arrays included)."""
    if isinstance(value, dict) and value:
        key = data.draw(st.sampled_from(sorted(k for k in value if k != "type") or ["type"]))
        how = data.draw(DAMAGE)
        if how == "drop":
            return {k: v for k, v in value.items() if k != key}
        if data.draw(st.booleans()) and isinstance(value[key], (dict, list)) and value[key]:
            return {**value, key: _damage(value[key], data)}
        return {**value, key: REPLACEMENT[how]}
    if isinstance(value, list) and value:
        at = data.draw(st.integers(0, len(value) - 1))
        return [*value[:at], _damage(value[at], data), *value[at + 1 :]]
    return REPLACEMENT[data.draw(DAMAGE.filter(lambda d: d != "drop"))]


@SETTINGS
@given(value=ANY_RECORD, data=st.data())
def test_from_json_dict_gives_the_general_builders_event_or_error(value: Any, data: st.DataObject) -> None:
    form = json.loads(reference_line(value))
    assert _outcome(form) == _reference_from_json(form) == ("event", value)
    damaged = form
    for _ in range(data.draw(st.integers(1, 3))):
        damaged = _damage(damaged, data)
    assert _outcome(damaged) == _reference_from_json(damaged)


def test_a_missing_field_with_a_default_still_decodes_and_one_without_is_named() -> None:
    form = json.loads(reference_line(ROW))
    fields = dataclasses.fields(events.PackageStateRecord)
    with_default = [f.name for f in fields if f.default is not dataclasses.MISSING]
    assert with_default, "PackageStateRecord has fields with defaults"
    state = events.PackageStateRecord("PyPI", "demo", "active", 1, None, (), (), (), None, (), (), (), 5)
    state_form = json.loads(reference_line(state))
    for name in with_default:
        del state_form[name]
    assert CODEC.from_json_dict(state_form) == state
    del form["serial"]
    with pytest.raises(SchemaError, match="JournalEntryObserved: missing field 'serial'"):
        CODEC.from_json_dict(form)


def test_validation_still_refuses_what_avro_refuses() -> None:
    form = json.loads(reference_line(ROW))
    for bad, reason in (({"serial": 2**64}, "expected an Avro long"), ({"serial": "7"}, "expected an Avro long")):
        with pytest.raises(SchemaError, match=reason):
            CODEC.from_json_dict({**form, **bad})
    # fastavro agrees that the valid form is valid (the validator is no stricter than Avro)
    fastavro.schemaless_writer(io.BytesIO(), CODEC.parsed_schema("JournalEntryObserved"), form)


ODD_VALUES: list[Any] = [None, True, False, 0, -1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 1.0, "", "a\udc80", b"x"]
ODD_VALUES += [(), ("x",), (1,), [], {}]


def _paths(obj: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every field of ``obj`` and, recursively, of the records it holds directly (arrays keep their items)."""
    out = []
    for f in dataclasses.fields(obj):
        out.append((*prefix, f.name))
        inner = getattr(obj, f.name)
        if dataclasses.is_dataclass(inner):
            out += _paths(inner, (*prefix, f.name))
    return out


def _replace_path(obj: Any, path: tuple[str, ...], new: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(obj, **{path[0]: new})
    return dataclasses.replace(obj, **{path[0]: _replace_path(getattr(obj, path[0]), path[1:], new)})


@pytest.mark.parametrize("cls", list(events.TOP_LEVEL), ids=lambda c: c.__name__)
@settings(SETTINGS, max_examples=15)
@given(data=st.data())
def test_the_json_check_never_accepts_what_the_encoder_refuses(cls: type, data: st.DataObject) -> None:
    """Every field (top-level or in a nested record) replaced, one at a time, by each value of the wrong class, range
    or encoding: whatever the check accepts, the generated encoder writes."""
    value = data.draw(record(cls))
    entry = CODEC._entry_for(value)
    assert entry.json_check is not None and entry.json_check(value), "a valid record is accepted"
    for path in _paths(value):
        for odd in ODD_VALUES:
            changed = _replace_path(value, path, odd)
            try:
                accepted = entry.json_check(changed)
            except Exception:  # noqa: BLE001 - a failing check counts as "not accepted", as in Codec.from_json_dict
                accepted = False
            if accepted:
                CODEC.encode(changed)
