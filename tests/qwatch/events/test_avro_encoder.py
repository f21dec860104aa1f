"""``qwatch.events.avro_encoder``: Avro's long encoding at every size, and the fallback to fastavro for what the
generator does not handle. (The byte-for-byte comparison with fastavro over every record type is in
test_fuzz_codec.py.)"""

from __future__ import annotations

import io
from dataclasses import dataclass

import fastavro
from hypothesis import example, given
from hypothesis import strategies as st

from qwatch.events.avro_encoder import compile_encoder, zigzag_varint

LONG = fastavro.parse_schema({"type": "record", "name": "L", "fields": [{"name": "n", "type": "long"}]})


@given(st.integers(-(2**63), 2**63 - 1))
@example(0)
@example(-1)
@example(8191)
@example(8192)
@example(2**20)  # zigzag just under 2**21, the edge of the unrolled 4-byte case
@example(2**27)
@example(2**34)
@example(2**41 - 1)
@example(1_767_323_045_000)  # an epoch millisecond: the 6-byte case
@example(2**63 - 1)
@example(-(2**63))
def test_longs_encode_as_fastavro_encodes_them(n: int) -> None:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, LONG, {"n": n})
    assert zigzag_varint(n) == out.getvalue()


@dataclass(frozen=True)
class _Point:
    n: int
    label: str | None


def test_a_record_encodes_like_fastavro() -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "P",
            "fields": [{"name": "n", "type": "long"}, {"name": "label", "type": ["null", "string"]}],
        }
    )
    encode = compile_encoder(schema)
    assert encode is not None
    for value in (_Point(5, None), _Point(-70_000, "é")):
        out = bytearray()
        encode(value, out)
        ref = io.BytesIO()
        fastavro.schemaless_writer(ref, schema, {"n": value.n, "label": value.label})
        assert bytes(out) == ref.getvalue()


def test_what_the_generator_does_not_handle_is_left_to_fastavro() -> None:
    enum = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    assert compile_encoder({"type": "record", "name": "R", "fields": [{"name": "e", "type": enum}]}) is None
    union = ["null", "string", "long"]
    assert compile_encoder({"type": "record", "name": "R", "fields": [{"name": "u", "type": union}]}) is None
    bad_name = {"type": "record", "name": "R", "fields": [{"name": "x; import os", "type": "long"}]}
    assert compile_encoder(bad_name) is None
    assert compile_encoder("long") is None
