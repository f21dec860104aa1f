"""``qwatch up`` prints transitions for as long as it runs: it must count them without keeping them."""

from __future__ import annotations

import gc
import tracemalloc
from dataclasses import replace

import pytest

from app.up import TransitionTally
from qwatch.events.codec import Codec
from tests.qwatch.events.test_codec import TRANSITION as CODEC_TRANSITION

TRANSITION = replace(CODEC_TRANSITION, package="churn-7", summary="churn-7 quarantined")


def test_tally_prints_and_counts(codec: Codec, capsys: pytest.CaptureFixture[str]) -> None:
    tally = TransitionTally(codec)
    tally.show(codec.encode(TRANSITION), 0, quiet=False)
    tally.show(codec.encode(TRANSITION), 1, quiet=True)
    tally.show(b"not avro", 2, quiet=False)
    out, err = capsys.readouterr()
    assert "QUARANTINED" in out and "churn-7" in out and out.count("\n") == 1
    assert "undecodable transition at offset 2" in err
    assert tally.seen == 2


def test_tally_keeps_no_transition(codec: Codec) -> None:
    # A 10-minute churn soak prints ~1,100 transitions; keeping each decoded one grew `up` by ~1 KiB apiece.
    values = [codec.encode(replace(TRANSITION, event_id=f"e{i}", summary=f"change {i}")) for i in range(3000)]
    tally = TransitionTally(codec)
    for offset, value in enumerate(values[:100]):
        tally.show(value, offset, quiet=True)  # warm caches (schema lookups, interned strings) first
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for offset, value in enumerate(values[100:], start=100):
            tally.show(value, offset, quiet=True)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert tally.seen == 3000
    assert grown < 64 * 1024, f"{grown} bytes retained after 2,900 transitions"
