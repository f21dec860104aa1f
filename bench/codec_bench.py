"""Codec throughput: qwatch's single-object encode/decode vs raw fastavro schemaless I/O, in the same run.

The baseline is the client library's own limit; the ratio shows what our framing and dataclass conversion cost.
Usage: python bench/codec_bench.py [--records N]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time
from pathlib import Path
from typing import Any

import fastavro

from qwatch import events
from qwatch.events.codec import Codec


def _status(i: int) -> events.ProjectStatusObserved:
    return events.ProjectStatusObserved(
        event_id=f"{i:032x}",
        source="pypi-simple",
        ecosystem="PyPI",
        package=f"pkg-{i}",
        observed_at=1767323045000 + i,
        upstream_time=None,
        status="active",
        last_serial=31000000 + i,
        versions=("1.0", "1.1", "2.0"),
        yanked_versions=(),
        http_status=200,
    )


def _transition(i: int) -> events.Transition:
    return events.Transition(
        event_id=f"{i:032x}",
        kind="QUARANTINED",
        ecosystem="PyPI",
        package=f"pkg-{i}",
        severity="high",
        version=None,
        report_id=None,
        before=events.PackageState("active", 1),
        after=events.PackageState("quarantined", 2),
        evidence=(events.Evidence("o", "pypi-journal", 1),),
        upstream_time=1,
        detected_at=2,
        summary="pkg quarantined",
    )


def _best(fn: Any, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(kind: str, records: list[Any], codec: Codec) -> dict[str, float]:
    """records/s for our codec and for raw fastavro on the equivalent dicts."""
    name = codec.schema_name(records[0])
    schema = codec.parsed_schema(name)
    dicts = [codec.to_json_dict(r) for r in records]
    for d in dicts:
        d.pop("type")
    n = len(records)
    encoded: list[bytes] = []

    def ours_encode() -> None:
        encoded[:] = [codec.encode(r) for r in records]

    def raw_encode() -> None:
        out = []
        for d in dicts:
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, schema, d)
            out.append(buf.getvalue())

    raw_bodies = []
    for d in dicts:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, d)
        raw_bodies.append(buf.getvalue())

    def ours_decode() -> None:
        for b in encoded:
            codec.decode(b)

    def raw_decode() -> None:
        for b in raw_bodies:
            fastavro.schemaless_reader(io.BytesIO(b), schema, None)

    t_oe, t_re = _best(ours_encode), _best(raw_encode)
    t_od, t_rd = _best(ours_decode), _best(raw_decode)
    return {
        f"{kind}_encode_records_per_s": n / t_oe,
        f"{kind}_encode_baseline_records_per_s": n / t_re,
        f"{kind}_encode_ratio": t_re / t_oe,
        f"{kind}_decode_records_per_s": n / t_od,
        f"{kind}_decode_baseline_records_per_s": n / t_rd,
        f"{kind}_decode_ratio": t_rd / t_od,
    }


def main() -> None:
    """Run both record kinds and write bench/out/codec.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args()
    codec = Codec()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''} py{platform.python_version()}"
    }
    results.update(bench("status", [_status(i) for i in range(args.records)], codec))
    results.update(bench("transition", [_transition(i) for i in range(args.records)], codec))
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "codec.json").write_text(json.dumps(results, indent=2))
    for k, v in results.items():
        print(f"{k:45} {v:,.2f}" if isinstance(v, float) else f"{k:45} {v}")


if __name__ == "__main__":
    main()
