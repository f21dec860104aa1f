"""Generated Avro binary encoders for qwatch's frozen dataclasses: bytes straight from attributes.

The processor encodes a transition or a package state for every change it publishes. Through fastavro that took two
steps, a dataclass → dict conversion and then fastavro's generic writer, which looks up every field by name and
checks every union branch against the value; together about a fifth of the processor's own time
(bench/processor_bench.py). Here each record schema becomes one Python function, generated once at start-up from the
parsed ``.avsc``, that reads the attributes in schema order and appends their Avro binary encoding.

Only what qwatch's schemas use is supported: null, boolean, int, long, string, bytes, records, arrays, and unions of
null with one other type. :func:`compile_encoder` returns None for anything else, and the codec then keeps fastavro.
fastavro stays the reference: tests/qwatch/events/test_avro_encoder.py checks that both write the same bytes for every
type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qwatch.events.codegen import SourceGenerator, Unsupported

Encoder = Callable[[Any, bytearray], None]

_SMALL = tuple(bytes([n << 1]) if n < 64 else bytes([((n << 1) & 0x7F) | 0x80, n >> 6]) for n in range(8192))
"""Zigzag varints of 0..8191 (lengths, counts, small ints): one tuple index instead of arithmetic."""


def zigzag_varint(n: int) -> bytes:
    """Avro's long encoding: zigzag, then base-128 little-endian varint (``n`` within 64 bits; the generated code
    checks the range before calling)."""
    if 0 <= n < 8192:
        return _SMALL[n]
    z = (n << 1) ^ (n >> 63)
    # Unrolled for the sizes qwatch writes most: serials (4 bytes) and epoch milliseconds (6 bytes).
    if 1 << 21 <= z < 1 << 28:
        return bytes((z & 127 | 128, z >> 7 & 127 | 128, z >> 14 & 127 | 128, z >> 21))
    if 1 << 35 <= z < 1 << 42:
        return bytes(
            (z & 127 | 128, z >> 7 & 127 | 128, z >> 14 & 127 | 128, z >> 21 & 127 | 128, z >> 28 & 127 | 128, z >> 35)
        )
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


class _Generator(SourceGenerator):
    prefix = "enc"

    def __init__(self) -> None:
        super().__init__({"L": zigzag_varint, "S": _SMALL})

    def record(self, schema: dict[str, Any]) -> str:
        """The name of the function encoding this record (generated on first use)."""
        fn, known = self._function(schema["name"])
        if known:
            return fn
        lines = [f"def {fn}(o, w):", *self.field_lines(schema, self.value)]
        if len(lines) == 1:
            lines.append("    pass")
        self.sources.append("\n".join(lines))
        return fn

    def value(self, schema: Any, expr: str, depth: int) -> list[str]:
        pad = "    " * depth
        if isinstance(schema, str):
            return self._primitive(schema, expr, pad)
        if isinstance(schema, list):
            return self._union(schema, expr, depth)
        kind = schema.get("type")
        if kind == "record":
            return [f"{pad}{self.record(schema)}({expr}, w)"]
        if kind == "array":
            v, x = self._var(), self._var()
            return [
                f"{pad}{v} = {expr}",
                f"{pad}if {v}:",
                *self._length(f"len({v})", pad + "    "),
                f"{pad}    for {x} in {v}:",
                *self.value(schema["items"], x, depth + 2),
                f"{pad}w += b'\\x00'",
            ]
        if isinstance(kind, str) and kind in _PRIMITIVES and "logicalType" not in schema:
            return self._primitive(kind, expr, pad)
        raise Unsupported(f"schema construct {kind!r}")

    def _primitive(self, kind: str, expr: str, pad: str) -> list[str]:
        v = self._var()
        if kind == "null":
            return [f"{pad}if {expr} is not None:", f"{pad}    raise TypeError('expected null')"]
        if kind == "boolean":
            return [
                f"{pad}{v} = {expr}",
                f"{pad}if {v} is True:",
                f"{pad}    w += b'\\x01'",
                f"{pad}elif {v} is False:",
                f"{pad}    w += b'\\x00'",
                f"{pad}else:",
                f"{pad}    raise TypeError(f'expected a bool, got {{{v}!r}}')",
            ]
        if kind in ("int", "long"):
            low, high = (-(1 << 31), (1 << 31) - 1) if kind == "int" else (-(1 << 63), (1 << 63) - 1)
            return [
                f"{pad}{v} = {expr}",
                f"{pad}if {v}.__class__ is not int:",
                f"{pad}    raise TypeError(f'expected an Avro {kind}, got {{{v}!r}}')",
                f"{pad}if 0 <= {v} < {len(_SMALL)}:",
                f"{pad}    w += S[{v}]",
                f"{pad}elif {low} <= {v} <= {high}:",
                f"{pad}    w += L({v})",
                f"{pad}else:",
                f"{pad}    raise TypeError(f'expected an Avro {kind}, got {{{v}!r}}')",
            ]
        if kind == "string":
            return [f"{pad}{v} = {expr}.encode()", *self._length(f"len({v})", pad), f"{pad}w += {v}"]
        if kind == "bytes":
            return [f"{pad}{v} = bytes({expr})", *self._length(f"len({v})", pad), f"{pad}w += {v}"]
        if kind in self.functions:  # a named record defined earlier in the schema
            return [f"{pad}{self.functions[kind]}({expr}, w)"]
        raise Unsupported(f"type {kind!r}")

    def _length(self, expr: str, pad: str) -> list[str]:
        """A length or count (never negative): a table lookup in line for the usual sizes, no call."""
        n = self._var()
        return [f"{pad}{n} = {expr}", f"{pad}w += S[{n}] if {n} < {len(_SMALL)} else L({n})"]

    def _union(self, branches: list[Any], expr: str, depth: int) -> list[str]:
        if len(branches) != 2 or branches[0] != "null":
            raise Unsupported("unions other than [null, X]")
        pad = "    " * depth
        v = self._var()
        return [
            f"{pad}{v} = {expr}",
            f"{pad}if {v} is None:",
            f"{pad}    w += b'\\x00'",
            f"{pad}else:",
            f"{pad}    w += b'\\x02'",
            *self.value(branches[1], v, depth + 1),
        ]


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "string", "bytes"})


def compile_encoder(parsed_schema: Any) -> Encoder | None:
    """``encode(obj, out)`` appending the Avro binary body of ``obj`` (a dataclass mirroring the record schema) to
    ``out``; None when the schema uses something the generator does not support."""
    if not isinstance(parsed_schema, dict) or parsed_schema.get("type") != "record":
        return None
    gen = _Generator()
    try:
        top = gen.record(parsed_schema)
    except Unsupported:
        return None
    encoder: Encoder = gen.build(f"<avro encoder {parsed_schema['name']}>")[top]
    return encoder
