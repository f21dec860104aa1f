"""The wire format: single-object encoding, golden bytes, JSONL form, and hostile input."""

from __future__ import annotations

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import given
from hypothesis import strategies as st

from qwatch import events
from qwatch.events.codec import MAGIC, Codec, SchemaError, crc64_avro

CURSOR = events.Cursor(component="openssf:demo", value="629cb43c", updated_at=1767323045000, upstream_time=None)
TRANSITION = events.Transition(
    event_id="e1",
    kind="QUARANTINED",
    ecosystem="PyPI",
    package="demo",
    severity="high",
    version=None,
    report_id=None,
    before=events.PackageState(status="active", last_serial=31000002),
    after=events.PackageState(status="quarantined", last_serial=31000003),
    evidence=(events.Evidence("obs1", "pypi-journal", 1767323046000),),
    upstream_time=1767323045000,
    detected_at=1767323047000,
    summary="demo quarantined",
)

# Golden bytes: if these change, every consumer in every language breaks. Change them only with a new schema name.
CURSOR_GOLDEN = (
    "c301"  # single-object marker
    "670b5351bc83023a"  # CRC-64-AVRO fingerprint of Cursor's canonical form, little-endian
    "18"
    "6f70656e7373663a64656d6f"  # component: zigzag length 12, "openssf:demo"
    "10"
    "3632396362343363"  # value: length 8, "629cb43c"
    "90b2cccaef66"  # updated_at 1767323045000 as a zigzag varint
    "00"  # upstream_time: union branch 0 (null)
)


def test_crc64_matches_an_independent_implementation(codec: Codec) -> None:
    for name in ("Cursor", "Transition", "ReportObserved"):
        canonical = to_parsing_canonical_form(codec.parsed_schema(name))
        assert codec.fingerprint(name).hex() == fingerprint(canonical, "CRC-64-AVRO")
    # The Avro spec's empty-input value: the fingerprint of no bytes is the seed itself.
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def test_cursor_golden_bytes(codec: Codec) -> None:
    data = codec.encode(CURSOR)
    assert data[:2] == MAGIC
    assert data[2:10] == codec.fingerprint("Cursor")
    assert data.hex() == CURSOR_GOLDEN
    assert codec.decode(data) == CURSOR


def test_transition_round_trip_and_golden_body(codec: Codec) -> None:
    data = codec.encode(TRANSITION)
    assert codec.decode(data) == TRANSITION
    # The body after the 10-byte header is plain Avro binary that fastavro reads with the .avsc alone.
    import io

    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), codec.parsed_schema("Transition"), None)
    assert record["after"]["status"] == "quarantined"
    assert record["evidence"][0]["source"] == "pypi-journal"
    assert data.hex() == TRANSITION_GOLDEN


TRANSITION_GOLDEN = (
    "c30163690a7fc11041d00465311651554152414e54494e454408507950490864656d6f08686967680000020c616374697665028497c8"
    "1d00000000001671756172616e74696e6564028697c81d000000000002086f62733118707970692d6a6f75726e616ce0c1cccaef6600"
    "0290b2cccaef66b0d1cccaef662064656d6f2071756172616e74696e6564"
)


def test_json_form_round_trips(codec: Codec) -> None:
    data = codec.to_json_dict(TRANSITION)
    assert data["type"] == "Transition"
    assert list(data)[1:4] == ["event_id", "kind", "ecosystem"]
    assert codec.from_json_dict(data) == TRANSITION


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "single-object"),
        (b"\x00\x01" + b"\x00" * 8, "single-object"),
        (MAGIC + b"\xff" * 8 + b"\x00", "unknown schema fingerprint"),
    ],
)
def test_foreign_bytes_are_schema_errors(codec: Codec, payload: bytes, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        codec.decode(payload)


def test_values_that_break_the_schema_are_schema_errors(codec: Codec) -> None:
    bad = events.Cursor(component="x", value=None, updated_at=1)  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        codec.encode(bad)
    for updated_at in (2**63, "soon", 1.5, True):  # out of range, or not an int (a bool is not an Avro long)
        with pytest.raises(SchemaError, match="Cursor"):
            codec.encode(events.Cursor(component="x", value="v", updated_at=updated_at))  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="unknown event type"):
        codec.from_json_dict({"type": "Nope"})
    with pytest.raises(SchemaError, match="missing field"):
        codec.from_json_dict({"type": "Cursor", "component": "x"})
    with pytest.raises(SchemaError):
        codec.from_json_dict({"type": "Cursor", "component": "x", "value": 3, "updated_at": "soon"})


@given(st.binary(max_size=200))
def test_decode_never_raises_anything_but_schema_error(data: bytes) -> None:
    codec = _CODEC
    for candidate in (
        data,
        MAGIC + codec.fingerprint("Transition") + data,
        MAGIC + codec.fingerprint("Cursor") + data,
    ):
        try:
            codec.decode(candidate)
        except SchemaError:
            pass


@given(
    st.text(max_size=50),
    st.text(max_size=50),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_any_valid_cursor_round_trips(component: str, value: str, updated: int, upstream: int | None) -> None:
    cursor = events.Cursor(component, value, updated, upstream)
    assert _CODEC.decode(_CODEC.encode(cursor)) == cursor
    assert _CODEC.from_json_dict(_CODEC.to_json_dict(cursor)) == cursor


_CODEC = Codec()


def test_jsonl_values_avro_would_reject_are_schema_errors() -> None:
    """``from_json_dict`` validates through the generated encoder: it must refuse what fastavro refuses."""
    from testing.samples import journal

    codec = Codec()
    good = codec.to_json_dict(journal("demo", 5, "yank release", "1.0"))
    assert codec.from_json_dict(dict(good)) == journal("demo", 5, "yank release", "1.0")
    for field, bad in (("serial", "5"), ("serial", 1.5), ("serial", 1 << 64), ("action", 7), ("name", "\ud800")):
        with pytest.raises(SchemaError):
            codec.from_json_dict({**good, field: bad})
