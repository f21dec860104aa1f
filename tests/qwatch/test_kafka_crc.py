"""kafka-python checks every record batch's CRC-32C, fetched or produced; it uses the ``crc32c`` C extension when it
is importable and a pure-Python loop otherwise, silently. That loop was 36% of the processor's end-to-end time
(bench/processor_bench.py), so a deployment missing the extension would run at half speed with nothing said.
This fails instead, and checks the native function agrees with kafka-python's own implementation."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st
from kafka.record import util
from kafka.record._crc32c import crc as pure_python_crc


def test_kafka_python_uses_the_native_crc32c() -> None:
    assert util.crc32c_c is not None, "the crc32c extension is missing: pip install 'kafka-python[crc32c]'"
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


@given(data=st.binary(max_size=4096))
def test_native_and_pure_python_crc32c_agree(data: bytes) -> None:
    assert util.calc_crc32c(data) == pure_python_crc(data)


def test_a_record_batch_written_and_read_back_validates_with_the_native_crc() -> None:
    from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=-1,
        batch_size=1 << 20,
    )  # fmt: skip
    payloads = [os.urandom(n) for n in (0, 1, 100, 5000)]
    for offset, value in enumerate(payloads):
        builder.append(offset, timestamp=1, key=b"k", value=value, headers=[])
    batch = DefaultRecordBatch(bytes(builder.build()))
    assert batch.validate_crc()
    assert [record.value for record in batch] == payloads
