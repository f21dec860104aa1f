"""``qwatch.events.avro_decoder``: Avro's long decoding at every size, what it refuses that fastavro would read, and the
fallback for what the generator does not handle. (The comparison with fastavro over every record type is in
test_fuzz_codec.py.)"""

from __future__ import annotations

import io
from dataclasses import dataclass

import fastavro
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from qwatch.events.avro_decoder import compile_decoder, read_long
from qwatch.events.avro_encoder import compile_encoder, zigzag_varint


@dataclass(frozen=True, slots=True)
class _Row:
    n: int
    small: int
    flag: bool
    label: str | None
    tags: tuple[str, ...]
    raw: bytes


ROW = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Row",
        "fields": [
            {"name": "n", "type": "long"},
            {"name": "small", "type": "int"},
            {"name": "flag", "type": "boolean"},
            {"name": "label", "type": ["null", "string"]},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "raw", "type": "bytes"},
        ],
    }
)
DECODE = compile_decoder(ROW, _Row)
ENCODE = compile_encoder(ROW)


def _body(row: _Row) -> bytes:
    assert ENCODE is not None
    out = bytearray()
    ENCODE(row, out)
    return bytes(out)


@given(st.integers(-(2**63), 2**63 - 1))
@example(64)  # the first two-byte varint
@example(-65)
@example(2**20)
@example(1_767_323_045_000)  # an epoch millisecond: six bytes
@example(2**41)  # seven bytes: past the unrolled part
@example(2**63 - 1)
@example(-(2**63))
def test_longs_decode_as_they_encode(n: int) -> None:
    data = b"\xaa" + zigzag_varint(n) + b"\xbb"
    if len(data) > 3:  # read_long is for varints of two bytes or more; one byte is read inline
        assert read_long(data, 1) == (n, len(data) - 1)
    assert DECODE is not None
    row = _Row(n, 0, False, None, (), b"")
    assert DECODE(_body(row), 0) == row


def test_a_record_decodes_like_fastavro() -> None:
    assert DECODE is not None
    for row in (
        _Row(5, -1, True, None, (), b""),
        _Row(-70_000, 2**31 - 1, False, "é", ("a", "b" * 200), b"\x00\xff"),
    ):
        body = _body(row)
        ref = fastavro.schemaless_reader(io.BytesIO(body), ROW, None)
        assert ref == {
            "n": row.n, "small": row.small, "flag": row.flag, "label": row.label, "tags": list(row.tags), "raw": row.raw
        }  # fmt: skip
        assert DECODE(body, 0) == row
        assert DECODE(b"\x00\x00" + body + b"trailing", 2) == row


def _refused(body: bytes) -> str:
    assert DECODE is not None
    with pytest.raises((ValueError, IndexError)) as info:
        DECODE(body, 0)
    return str(info.value)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\x02\x00\x04", "boolean"),  # n=1, small=0, flag byte 2: fastavro reads True
        (b"\x02\x00\x00\x06", "union index"),  # label branch 3
        (b"\x02\x00\x00\x01", "union index"),  # label branch -1: fastavro reads it as the last branch
        (b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (b"\xff" * 9 + b"\x7f", "beyond 64 bits"),
        (b"\x02\x80\x80\x80\x80\x10", "int beyond 32 bits"),  # small = 2**31: fastavro reads it
        (b"\x02\x00\x00\x02\x01", "negative"),  # label length -1
        (b"\x02\x00\x00\x02\x10ab", "past the end"),  # label length 8, two bytes left
        (b"\x02\x00\x00\x00\xfe\xff\xff\xff\x0f", "array count"),  # 2**31 tags in a few bytes
    ],
)
def test_malformed_bytes_are_refused(body: bytes, why: str) -> None:
    assert why in _refused(body)


def test_truncated_bodies_are_refused() -> None:
    body = _body(_Row(1_767_323_045_000, 7, True, "label", ("x",), b"raw"))
    for cut in range(len(body)):
        _refused(body[:cut])


@dataclass(frozen=True)
class _Plain:
    """Not a slots dataclass: built through its constructor instead of its slots."""

    n: int
    label: str | None


def test_a_dataclass_without_slots_is_built_through_its_constructor() -> None:
    schema = fastavro.parse_schema(
        {"type": "record", "name": "P", "fields": [{"name": "n", "type": "long"}, {"name": "label", "type": "string"}]}
    )
    decode = compile_decoder(schema, _Plain)
    assert decode is not None
    assert decode(b"\x0a\x04ok", 0) == _Plain(5, "ok")


def test_what_the_generator_does_not_handle_is_left_to_fastavro() -> None:
    def schema(field_type: object) -> object:
        return fastavro.parse_schema({"type": "record", "name": "M", "fields": [{"name": "n", "type": field_type}]})

    @dataclass(frozen=True, slots=True)
    class M:
        n: object

    assert compile_decoder(schema({"type": "map", "values": "long"}), M) is None
    assert compile_decoder(schema(["null", "long", "string"]), M) is None
    assert compile_decoder(schema({"type": "array", "items": "null"}), M) is None
    assert compile_decoder(schema({"type": "array", "items": "long"}), M) is None  # not mirrored by a tuple
    assert compile_decoder(schema("long"), _Row) is None  # fields differ
    assert compile_decoder("long", M) is None
