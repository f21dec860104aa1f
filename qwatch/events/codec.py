"""Avro single-object encoding for qwatch events, so any Avro consumer can resolve the schema from the bytes.

Wire format (Avro spec, "Single-object encoding"): ``C3 01``, the 8-byte little-endian CRC-64-AVRO fingerprint of
the schema's Parsing Canonical Form, then the schemaless Avro body. Each schema is parsed once. Records are written and
read by code generated from the schema for its dataclass (``qwatch.events.avro_encoder``,
``qwatch.events.avro_decoder``), faster than raw fastavro on dicts (bench/codec_bench.py); fastavro remains the fallback
for a schema the generators do not handle, the JSONL validator, and the reference both are tested against
(``Codec(generated=False)``).

The JSONL form (``to_json_dict``/``from_json_dict``) has fast paths of its own, each tested against the plain form it
replaces (tests/qwatch/events/test_codec_json.py): lines written by orjson straight from the dataclasses
(``to_json_bytes``), read through the compiled builder, and validated by a generated check (``_JsonCheck``) before
the encoder is asked.
"""

from __future__ import annotations

import dataclasses
import io
import json
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import fastavro
import orjson
from fastavro.schema import to_parsing_canonical_form

from qwatch import events
from qwatch.errors import QwatchError
from qwatch.events.avro_decoder import Decoder, compile_decoder, unwrap_optional
from qwatch.events.avro_encoder import Encoder, compile_encoder
from qwatch.events.codegen import SourceGenerator, Unsupported
from schemas import SCHEMA_DIR

MAGIC = b"\xc3\x01"
SCHEMA_HEADER = "qwatch-schema"
"""Kafka header naming the record type, for consumers that route before decoding."""

_EMPTY = 0xC15D213AA4D7A795


class SchemaError(QwatchError):
    """Bytes or values that do not fit the contract; carries the schema name when known."""

    def __init__(self, message: str, schema: str | None = None) -> None:
        super().__init__(message)
        self.schema = schema


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Rabin CRC-64 the Avro spec defines for schema fingerprints."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def load_schema_file(path: Path) -> dict[str, Any]:
    """Read one ``.avsc`` as JSON; a broken file is a SchemaError naming the file."""
    try:
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"cannot read schema {path}: {exc}") from exc
    return loaded


_Plan = Callable[[Any], Any]


def _to_plan(tp: Any) -> _Plan | None:
    """How to turn a value of type ``tp`` into fastavro's input; None means 'as is' (the fast path)."""
    tp = unwrap_optional(tp)
    if dataclasses.is_dataclass(tp):
        return _record_to_dict(tp)  # type: ignore[arg-type]
    if typing.get_origin(tp) is tuple:
        inner = _to_plan(typing.get_args(tp)[0])
        if inner is None:
            return None
        return lambda v: [inner(x) for x in v]
    return None


def _record_to_dict(cls: type) -> _Plan:
    """Generated code that turns a dataclass into fastavro's input dict in one dict display.

    Every produced record passes through here (the processor writes a transition and a state record per change), so
    the conversion is compiled once per type rather than looping over fields per record (bench/codec_bench.py).
    """
    hints = typing.get_type_hints(cls)
    env: dict[str, Any] = {}
    items = []
    for i, f in enumerate(dataclasses.fields(cls)):
        plan = _to_plan(hints[f.name])
        if plan is None:
            items.append(f"{f.name!r}: o.{f.name}")
        else:
            env[f"p{i}"] = plan
            items.append(f"{f.name!r}: (None if o.{f.name} is None else p{i}(o.{f.name}))")
    source = "def convert(o):\n    if o is None:\n        return None\n    return {" + ", ".join(items) + "}"
    exec(source, env)  # noqa: S102 - the source is built from our own dataclass field names only
    convert: _Plan = env["convert"]
    return convert


def _from_plan(tp: Any) -> _Plan:
    tp = unwrap_optional(tp)
    if dataclasses.is_dataclass(tp):
        return _compiled_builder(tp)  # type: ignore[arg-type]
    if typing.get_origin(tp) is tuple:
        inner_tp = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(inner_tp):
            inner = _compiled_builder(inner_tp)  # type: ignore[arg-type]
            return lambda v: tuple([inner(x) for x in v])
        return tuple
    return lambda v: v


def _dict_to_record(cls: type) -> _Plan:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    plans = [(f.name, _from_plan(hints[f.name]), f.default) for f in fields]

    def build(data: Any) -> Any:
        if data is None:
            return None
        kwargs = {}
        for name, plan, default in plans:
            if name in data:
                value = data[name]
                kwargs[name] = None if value is None else plan(value)
            elif default is not dataclasses.MISSING:
                kwargs[name] = default
            else:
                raise SchemaError(f"{cls.__name__}: missing field {name!r}", cls.__name__)
        return cls(**kwargs)

    return build


def _compiled_builder(cls: type) -> _Plan:
    """Generated code that fills a frozen slots dataclass straight from an Avro-decoded dict.

    Every field is present in Avro output, so no defaults are needed; writing the slots directly skips the
    frozen ``__init__``'s per-field ``object.__setattr__``. Decoding is on every consumer's hot path, and this keeps
    it close to raw fastavro (bench/codec_bench.py). Built once per type at start-up.
    """
    hints = typing.get_type_hints(cls)
    env: dict[str, Any] = {"cls": cls, "new": object.__new__}
    lines = ["def build(d):", "    o = new(cls)"]
    for i, f in enumerate(dataclasses.fields(cls)):
        tp = unwrap_optional(hints[f.name])
        optional = tp is not hints[f.name]
        env[f"s{i}"] = cls.__dict__[f.name].__set__
        access = f"d[{f.name!r}]"
        if dataclasses.is_dataclass(tp) or (
            typing.get_origin(tp) is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0])
        ):
            env[f"p{i}"] = _from_plan(tp)
            expr = f"p{i}({access})"
        elif typing.get_origin(tp) is tuple:
            expr = f"tuple({access})"
        else:
            expr = access
        if optional and expr != access:
            expr = f"(None if {access} is None else {expr})"
        lines.append(f"    s{i}(o, {expr})")
    lines.append("    return o")
    exec("\n".join(lines), env)  # noqa: S102 - the source is built from our own dataclass field names only
    builder: _Plan = env["build"]
    return builder


class _JsonCheck(SourceGenerator):
    """Generates ``check(event) -> bool``: True only for events the type's generated Avro encoder certainly accepts.

    Why: every JSONL line is validated against the schema (``Codec.from_json_dict``); encoding it to throw the bytes
    away was the largest part of reading a line (bench/jsonl_bench.py). The check tests the same things without
    writing anything: the exact classes the encoder requires (``int``, not ``bool`` or ``float``; ``True``/``False``),
    the Avro ``int``/``long`` ranges, strings that are UTF-8 encodable, ``None`` where the schema allows null. It may
    be stricter than the encoder (an array must be a tuple, as the builders make them), never looser: whatever it
    does not accept goes through the encoder, whose verdict and message are the contract
    (tests/qwatch/events/test_codec_json.py compares the outcomes on damaged records)."""

    prefix = "chk"

    def __init__(self) -> None:
        super().__init__({"utf8": _utf8})

    def record(self, schema: dict[str, Any]) -> str:
        fn, known = self._function(schema["name"])
        if known:
            return fn
        lines = [f"def {fn}(o):", *self.field_lines(schema, self.value), "    return True"]
        self.sources.append("\n".join(lines))
        return fn

    def value(self, schema: Any, expr: str, depth: int) -> list[str]:
        """Lines that ``return False`` unless ``expr`` is certainly accepted."""
        pad = "    " * depth
        if isinstance(schema, str):
            return self._primitive(schema, expr, pad)
        if isinstance(schema, list):
            if len(schema) != 2 or schema[0] != "null":
                raise Unsupported("unions other than [null, X]")
            v = self._var()
            return [f"{pad}{v} = {expr}", f"{pad}if {v} is not None:", *self.value(schema[1], v, depth + 1)]
        kind = schema.get("type")
        if kind == "record":
            return [f"{pad}if not {self.record(schema)}({expr}):", f"{pad}    return False"]
        if kind == "array":
            v, x = self._var(), self._var()
            return [
                f"{pad}{v} = {expr}",
                f"{pad}if {v}.__class__ is not tuple:",
                f"{pad}    return False",
                f"{pad}for {x} in {v}:",
                *self.value(schema["items"], x, depth + 1),
            ]
        if isinstance(kind, str) and "logicalType" not in schema:
            return self._primitive(kind, expr, pad)
        raise Unsupported(f"schema construct {kind!r}")

    def _primitive(self, kind: str, expr: str, pad: str) -> list[str]:
        v = self._var()
        if kind == "null":
            test = f"{v} is not None"
        elif kind == "boolean":
            test = f"{v} is not True and {v} is not False"
        elif kind in ("int", "long"):
            low, high = (-(1 << 31), (1 << 31) - 1) if kind == "int" else (-(1 << 63), (1 << 63) - 1)
            test = f"{v}.__class__ is not int or not {low} <= {v} <= {high}"
        elif kind == "string":
            test = f"{v}.__class__ is not str or not ({v}.isascii() or utf8({v}))"
        elif kind in self.functions:
            test = f"not {self.functions[kind]}({v})"
        else:
            raise Unsupported(f"type {kind!r}")
        return [f"{pad}{v} = {expr}", f"{pad}if {test}:", f"{pad}    return False"]


def _utf8(text: str) -> bool:
    """True when ``text`` encodes as UTF-8 (no lone surrogate), as the encoder's ``str.encode`` requires."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def compile_json_check(parsed_schema: Any) -> Callable[[Any], bool] | None:
    """The check of ``_JsonCheck`` for one record schema; None when the schema uses anything it does not handle."""
    if not isinstance(parsed_schema, dict) or parsed_schema.get("type") != "record":
        return None
    gen = _JsonCheck()
    try:
        top = gen.record(parsed_schema)
    except Unsupported:
        return None
    check: Callable[[Any], bool] = gen.build(f"<json check {parsed_schema['name']}>")[top]
    return check


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    cls: type
    parsed: Any
    fingerprint: bytes
    to_dict: _Plan
    from_dict: _Plan
    from_avro: _Plan
    header: bytes
    kafka_headers: list[tuple[str, bytes]]
    encoder: Encoder | None
    decoder: Decoder | None
    json_head: bytes
    """``{"type":"<name>",``: the start of every JSONL line of this type (``Codec.to_json_bytes``)."""
    json_check: Callable[[Any], bool] | None
    """True only for events the encoder certainly accepts (``_JsonCheck``); None when it could not be generated."""


def _certainly_valid(entry: _Entry, event: object) -> bool:
    """The type's JSON check (``_JsonCheck``) accepts ``event``; False also when it has none or it fails."""
    if entry.json_check is None:
        return False
    try:
        return entry.json_check(event)
    except Exception:  # noqa: BLE001 - not certainly valid: the encoder decides, with its reason
        return False


class Codec:
    """Encodes and decodes every registered event type; built once per process and shared."""

    def __init__(
        self, types: Iterable[type] | None = None, schema_dir: Path = SCHEMA_DIR, generated: bool = True
    ) -> None:
        """``generated=False`` encodes and decodes through fastavro only: the reference the generated code is
        tested against (tests/qwatch/events/test_codec_fuzz.py), and the baseline of bench/codec_bench.py."""
        self._by_name: dict[str, _Entry] = {}
        self._by_cls: dict[type, _Entry] = {}
        self._by_fp: dict[bytes, _Entry] = {}
        for cls in types if types is not None else events.TOP_LEVEL:
            name: str = cls.SCHEMA  # type: ignore[attr-defined]
            raw = load_schema_file(schema_dir / f"{name}.avsc")
            parsed = fastavro.parse_schema(raw)
            canonical = to_parsing_canonical_form(parsed)
            fp = crc64_avro(canonical.encode()).to_bytes(8, "little")
            encoder = compile_encoder(parsed) if generated else None
            entry = _Entry(
                name,
                cls,
                parsed,
                fp,
                _record_to_dict(cls),
                _dict_to_record(cls),
                _compiled_builder(cls),
                MAGIC + fp,
                [(SCHEMA_HEADER, name.encode())],
                encoder,
                compile_decoder(parsed, cls) if generated else None,
                b'{"type":' + json.dumps(name).encode() + b",",
                compile_json_check(parsed) if encoder is not None else None,  # no looser than its encoder
            )
            self._by_name[name] = entry
            self._by_cls[cls] = entry
            self._by_fp[fp] = entry

    def schema_name(self, event: object) -> str:
        """The record name of an event, as put in the Kafka header and the JSONL ``type`` field."""
        return self._entry_for(event).name

    def kafka_headers(self, event: object) -> list[tuple[str, bytes]]:
        """The Kafka headers of an event (``qwatch-schema``: its record name); one shared list per type, not to be
        mutated, so producing a record builds no header."""
        return self._entry_for(event).kafka_headers

    def fingerprint(self, name: str) -> bytes:
        """The 8-byte single-object fingerprint of a registered schema."""
        return self._by_name[name].fingerprint

    def parsed_schema(self, name: str) -> Any:
        """The fastavro-parsed schema, for tools that need the raw writer schema."""
        return self._by_name[name].parsed

    def _entry_for(self, event: object) -> _Entry:
        try:
            return self._by_cls[type(event)]
        except KeyError:
            raise SchemaError(f"no schema registered for {type(event).__name__}") from None

    def encode(self, event: object) -> bytes:
        """Single-object encode; a value that breaks the schema is a SchemaError, never a crash.

        Through the type's generated encoder (``qwatch.events.avro_encoder``) when it has one, else through fastavro."""
        entry = self._entry_for(event)
        if entry.encoder is not None:
            out = bytearray(entry.header)
            try:
                entry.encoder(event, out)
            except (ValueError, TypeError, AttributeError, OverflowError) as exc:
                raise SchemaError(f"{entry.name}: {exc}", entry.name) from exc
            return bytes(out)
        buf = io.BytesIO(entry.header)
        buf.seek(10)
        try:
            fastavro.schemaless_writer(buf, entry.parsed, entry.to_dict(event))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise SchemaError(f"{entry.name}: {exc}", entry.name) from exc
        return buf.getvalue()

    def decode(self, data: bytes) -> Any:
        """Decode single-object bytes, resolving the schema by fingerprint; foreign bytes are a SchemaError."""
        if len(data) < 10 or not data.startswith(MAGIC):
            raise SchemaError("not Avro single-object encoding (missing C3 01 marker)")
        fp = data[2:10]
        entry = self._by_fp.get(fp)
        if entry is None:
            raise SchemaError(f"unknown schema fingerprint {bytes(fp).hex()}")
        try:
            if entry.decoder is not None:
                return entry.decoder(data if type(data) is bytes else bytes(data), 10)
            record = fastavro.schemaless_reader(io.BytesIO(data[10:]), entry.parsed, None)
        except (ValueError, TypeError, EOFError, IndexError, UnicodeDecodeError, OverflowError) as exc:
            raise SchemaError(f"{entry.name}: corrupt body: {exc}", entry.name) from exc
        return entry.from_avro(record)

    def to_json_dict(self, event: object) -> dict[str, Any]:
        """The JSONL form: the Avro record as plain JSON with ``type`` naming the record."""
        entry = self._entry_for(event)
        out: dict[str, Any] = {"type": entry.name}
        out.update(entry.to_dict(event))
        return out

    def to_json_bytes(self, event: object) -> bytes:
        """``to_json_dict(event)`` as compact UTF-8 JSON, byte for byte what ``json.dumps(..., separators=(",", ":"),
        ensure_ascii=False)`` writes (tests/qwatch/events/test_codec_json.py), without building the dicts.

        Why: the JSONL sink and the processor's ``--state-dir`` store write a transition and a state per change, and
        the dict conversion plus the ``json`` encoder were most of their cost (bench/jsonl_bench.py). orjson writes a
        frozen dataclass straight from its fields, in declaration order, so only the ``type`` member is added here.
        A value orjson refuses (an int beyond 64 bits, a lone surrogate, a foreign object) takes the ``json`` path,
        which accepts or raises exactly as before."""
        entry = self._entry_for(event)
        try:
            body = orjson.dumps(event)
        except orjson.JSONEncodeError:
            return json.dumps(self.to_json_dict(event), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(body) == 2:  # ``{}``: a record without fields
            return entry.json_head[:-1] + b"}"
        return entry.json_head + body[1:]

    def from_json_dict(self, data: dict[str, Any]) -> Any:
        """Rebuild an event from its JSONL form; unknown ``type`` or missing fields are SchemaErrors."""
        if not isinstance(data, dict):
            raise SchemaError("a JSONL event must be a JSON object")
        name = data.get("type")
        entry = self._by_name.get(name) if isinstance(name, str) else None
        if entry is None:
            raise SchemaError(f"unknown event type {name!r}")
        try:
            try:
                # The compiled builder (every field present, the common case) is the JSON fast path; anything it
                # cannot build (a missing field with a default, a wrong shape) goes through the general builder,
                # which gives the very result or error it always gave.
                event = entry.from_avro(data)
            except Exception:  # noqa: BLE001 - re-done by the general builder, whose errors are the contract
                event = entry.from_dict(data)
            # Validate against the schema so a JSONL line cannot smuggle in a value Avro would reject: first the
            # generated check (``_JsonCheck``, nothing written), then, for whatever it does not certainly accept, the
            # generated encoder, which checks every value as fastavro does (tests/qwatch/events/test_avro_encoder.py)
            # and gives the reason. Encoding every line was a third of `qwatch process --source jsonl:`
            # (bench/jsonl_bench.py).
            if _certainly_valid(entry, event):
                pass
            elif entry.encoder is not None:
                entry.encoder(event, bytearray())
            else:
                fastavro.schemaless_writer(io.BytesIO(), entry.parsed, entry.to_dict(event))
        except SchemaError:
            raise
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
            raise SchemaError(f"{name}: {exc}", name) from exc
        return event
