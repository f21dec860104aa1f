"""Generated Avro binary decoders for qwatch's frozen dataclasses: objects straight from the bytes.

Every consumer decodes what it reads (the processor every observation that is not a routine journal row, a restore
every package state), and through fastavro that took two steps: fastavro's generic reader builds a dict per record,
then the codec turns the dict into the frozen dataclass. Here each record schema becomes one Python function,
generated once at start-up from the parsed ``.avsc`` and the dataclass it mirrors, that reads the fields in schema
order and fills the dataclass's slots directly (bench/codec_bench.py has the speed against fastavro).

The subset is the encoder's (``qwatch.events.avro_encoder``): null, boolean, int, long, string, bytes, records, arrays
and unions of null with one other type; :func:`compile_decoder` returns None for anything else and the codec keeps
fastavro. On every valid encoding both give the same object (tests/qwatch/events/test_codec_fuzz.py); on malformed bytes
this decoder is stricter, never looser: a boolean byte other than 0 or 1, a union index other than 0 or 1, an ``int``
beyond 32 bits, a varint longer than 10 bytes or beyond 64 bits, a negative length or a length past the end all raise
``ValueError`` (the codec turns it into a SchemaError), where fastavro may return a value.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from qwatch.events.codegen import SourceGenerator, Unsupported

Decoder = Callable[[bytes, int], Any]
"""``decode(data, offset)``: the object whose Avro body starts at ``offset`` (trailing bytes are ignored)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "string", "bytes"})


def read_long(d: bytes, i: int) -> tuple[int, int]:
    """A zigzag varint of two or more bytes at ``i``: (value, next offset). The generated code reads one-byte
    varints inline and calls this for the rest; unrolled up to six bytes (serials take four, epoch milliseconds
    six), then a loop up to Avro's ten."""
    n = d[i] & 0x7F
    b = d[i + 1]
    n |= (b & 0x7F) << 7
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), i + 2
    b = d[i + 2]
    n |= (b & 0x7F) << 14
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), i + 3
    b = d[i + 3]
    n |= (b & 0x7F) << 21
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), i + 4
    b = d[i + 4]
    n |= (b & 0x7F) << 28
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), i + 5
    b = d[i + 5]
    n |= (b & 0x7F) << 35
    if b < 0x80:
        return (n >> 1) ^ -(n & 1), i + 6
    i += 6
    shift = 42
    while b & 0x80:
        if shift >= 70:
            raise ValueError("Avro long longer than 10 bytes")
        b = d[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
    if n >> 64:
        raise ValueError("Avro long beyond 64 bits")
    return (n >> 1) ^ -(n & 1), i


def unwrap_optional(tp: Any) -> Any:
    """``X`` for ``X | None``; any other type as it is (the schemas' nullable unions map to optional fields)."""
    args = typing.get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


class _Generator(SourceGenerator):
    prefix = "dec"

    def __init__(self) -> None:
        super().__init__({"R": read_long, "new": object.__new__})
        self.classes: dict[str, type] = {}

    def _bind(self, value: Any) -> str:
        self._tmp += 1
        name = f"k{self._tmp}"
        self.env[name] = value
        return name

    # --- records -------------------------------------------------------------------------------------------
    def record(self, schema: dict[str, Any], cls: Any) -> str:
        """The name of the function decoding this record into ``cls`` (generated on first use)."""
        name: str = schema["name"]
        if name in self.functions:
            if self.classes[name] is not cls:
                raise Unsupported(f"record {name} mirrored by two classes")
            return self.functions[name]
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise Unsupported(f"record {name} has no dataclass")
        fn, _ = self._function(name)
        self.classes[name] = cls
        hints = typing.get_type_hints(cls)
        own = {f.name for f in dataclasses.fields(cls)}
        fields = schema["fields"]
        if {f["name"] for f in fields} != own:
            raise Unsupported(f"record {name} and {cls.__name__} have different fields")
        slotted = all(isinstance(cls.__dict__.get(f), types.MemberDescriptorType) for f in own)
        c = self._bind(cls)
        lines = [f"def {fn}(d, i, e):"]
        values: list[tuple[str, str]] = []
        if slotted:
            lines.append(f"    o = new({c})")
        for field in fields:
            fname = field["name"]
            if not _NAME.fullmatch(fname):  # the Avro spec's name rule, which also keeps the source safe
                raise Unsupported(f"field name {fname!r}")
            v = self._var()
            lines += self.value(field["type"], hints[fname], v, 1)
            if slotted:
                lines.append(f"    {self._bind(cls.__dict__[fname].__set__)}(o, {v})")
            else:
                values.append((fname, v))
        if not slotted:
            lines.append(f"    o = {c}(" + ", ".join(f"{k}={v}" for k, v in values) + ")")
        lines.append("    return o, i")
        self.sources.append("\n".join(lines))
        return fn

    # --- values --------------------------------------------------------------------------------------------
    def value(self, schema: Any, tp: Any, out: str, depth: int) -> list[str]:
        """Lines that decode one value of ``schema`` (Python type ``tp``) at ``d[i]`` into ``out``, advancing i."""
        pad = "    " * depth
        if isinstance(schema, list):
            return self._union(schema, tp, out, depth)
        if isinstance(schema, dict):
            kind = schema.get("type")
            if kind == "record":
                return [f"{pad}{out}, i = {self.record(schema, unwrap_optional(tp))}(d, i, e)"]
            if kind == "array":
                return self._array(schema["items"], tp, out, depth)
            if isinstance(kind, str) and kind in _PRIMITIVES and "logicalType" not in schema:
                return self._primitive(kind, out, pad)
            raise Unsupported(f"schema construct {kind!r}")
        if isinstance(schema, str) and schema in _PRIMITIVES:
            return self._primitive(schema, out, pad)
        if isinstance(schema, str) and schema in self.functions:  # a named record defined earlier in the schema
            if self.classes[schema] is not unwrap_optional(tp):
                raise Unsupported(f"record {schema} mirrored by two classes")
            return [f"{pad}{out}, i = {self.functions[schema]}(d, i, e)"]
        raise Unsupported(f"type {schema!r}")

    def _long(self, out: str, pad: str) -> list[str]:
        b = self._var()
        return [
            f"{pad}{b} = d[i]",
            f"{pad}if {b} < 128:",
            f"{pad}    {out} = ({b} >> 1) ^ -({b} & 1)",
            f"{pad}    i += 1",
            f"{pad}else:",
            f"{pad}    {out}, i = R(d, i)",
        ]

    def _length(self, pad: str) -> list[str]:
        """Lines leaving the end offset of a string or bytes value in ``j`` (i at its first byte)."""
        n = self._var()
        return [
            f"{pad}{n} = d[i]",
            f"{pad}if {n} < 128:",
            f"{pad}    if {n} & 1:",
            f"{pad}        raise ValueError('negative Avro length')",
            f"{pad}    i += 1",
            f"{pad}    j = i + ({n} >> 1)",
            f"{pad}else:",
            f"{pad}    {n}, i = R(d, i)",
            f"{pad}    if {n} < 0:",
            f"{pad}        raise ValueError('negative Avro length')",
            f"{pad}    j = i + {n}",
            f"{pad}if j > e:",
            f"{pad}    raise ValueError('Avro value runs past the end of the record')",
        ]

    def _primitive(self, kind: str, out: str, pad: str) -> list[str]:
        if kind == "null":
            return [f"{pad}{out} = None"]
        if kind == "boolean":
            b = self._var()
            return [
                f"{pad}{b} = d[i]",
                f"{pad}i += 1",
                f"{pad}if {b} == 1:",
                f"{pad}    {out} = True",
                f"{pad}elif {b} == 0:",
                f"{pad}    {out} = False",
                f"{pad}else:",
                f"{pad}    raise ValueError('Avro boolean byte other than 0 or 1')",
            ]
        if kind == "long":
            return self._long(out, pad)
        if kind == "int":
            return [
                *self._long(out, pad),
                f"{pad}if not -2147483648 <= {out} <= 2147483647:",
                f"{pad}    raise ValueError('Avro int beyond 32 bits')",
            ]
        if kind == "string":
            return [*self._length(pad), f"{pad}{out} = d[i:j].decode()", f"{pad}i = j"]
        if kind == "bytes":
            return [*self._length(pad), f"{pad}{out} = bytes(d[i:j])", f"{pad}i = j"]
        raise Unsupported(f"type {kind!r}")

    def _union(self, branches: list[Any], tp: Any, out: str, depth: int) -> list[str]:
        if len(branches) != 2 or branches[0] != "null":
            raise Unsupported("unions other than [null, X]")
        pad = "    " * depth
        b = self._var()
        return [
            f"{pad}{b} = d[i]",
            f"{pad}i += 1",
            f"{pad}if {b} == 0:",
            f"{pad}    {out} = None",
            f"{pad}elif {b} == 2:",
            *self.value(branches[1], unwrap_optional(tp), out, depth + 1),
            f"{pad}else:",
            f"{pad}    raise ValueError('Avro union index other than 0 or 1')",
        ]

    def _array(self, items: Any, tp: Any, out: str, depth: int) -> list[str]:
        tp = unwrap_optional(tp)
        if typing.get_origin(tp) is not tuple:
            raise Unsupported(f"array mirrored by {tp!r}, not a tuple")
        if items == "null" or (isinstance(items, dict) and items.get("type") == "null"):
            raise Unsupported("arrays of null (a count could then stand for no bytes at all)")
        pad = "    " * depth
        acc, n, x, skip = self._var(), self._var(), self._var(), self._var()
        return [
            f"{pad}{acc} = []",
            f"{pad}while True:",
            *self._long(n, pad + "    "),
            f"{pad}    if not {n}:",
            f"{pad}        break",
            f"{pad}    if {n} < 0:",
            *self._long(skip, pad + "        "),
            f"{pad}        {n} = -{n}",
            f"{pad}    if {n} > e - i:",  # every item takes at least one byte: a count past that is corrupt
            f"{pad}        raise ValueError('Avro array count past the end of the record')",
            f"{pad}    for _ in range({n}):",
            *self.value(items, typing.get_args(tp)[0], x, depth + 2),
            f"{pad}        {acc}.append({x})",
            f"{pad}{out} = tuple({acc})",
        ]


def compile_decoder(parsed_schema: Any, cls: type) -> Decoder | None:
    """``decode(data, offset)`` building a ``cls`` (a dataclass mirroring the record schema) from the Avro body at
    ``offset``; None when the schema or the class uses something the generator does not support."""
    if not isinstance(parsed_schema, dict) or parsed_schema.get("type") != "record":
        return None
    gen = _Generator()
    try:
        top = gen.record(parsed_schema, cls)
    except Unsupported:
        return None
    entry = f"def decode(d, i):\n    return {top}(d, i, len(d))[0]\n"
    decoder: Decoder = gen.build(f"<avro decoder {parsed_schema['name']}>", entry)["decode"]
    return decoder
