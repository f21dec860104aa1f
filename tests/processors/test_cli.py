"""``qwatch process`` with JSONL on both ends: the external contract, replays, dead letters, state-dir."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from app.cli import main
from qwatch import events
from qwatch.events.codec import Codec
from qwatch.sinks import JsonlSink
from testing.samples import T0, index, journal, page, report

CONTRACT_FIELDS = {"type", "event_id", "kind", "ecosystem", "package", "upstream_time", "detected_at"}

OBSERVATIONS: list[events.Observation] = [
    page("demo", "active", 31000002, T0),
    report("demo", "MAL-2026-1", "added", "2026-01-02T00:00:00Z", "c1", T0, ("1.0",)),
    index("demo", False, T0 + 1000),
    journal("demo", 31000003, "project quarantined"),
    page("demo", "quarantined", 31000003, T0 + 60_000),
    journal("demo", 31000004, "project quarantine cleared"),
    journal("evil", 31000005, "create"),
    journal("evil", 31000006, "remove project"),
    journal("evil", 31000007, "create"),
]
EXPECTED = ["REPORTED", "QUARANTINED", "CLEARED", "REMOVED", "RESTORED"]


def write_observations(path: Path, observations: Sequence[object], codec: Codec) -> None:
    """Exactly what an ingestor's ``--sink jsonl:`` writes."""
    sink = JsonlSink(str(path), codec)
    for o in observations:
        sink.emit(o)
    sink.close()


def lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_contract_and_replay(tmp_path: Path, codec: Codec) -> None:
    src, out, state = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "state"
    write_observations(src, OBSERVATIONS, codec)
    argv = ["process", "--source", f"jsonl:{src}", "--sink", f"jsonl:{out}", "--state-dir", str(state)]
    assert main(argv) == 0
    rows = lines(out)
    assert [r["kind"] for r in rows] == EXPECTED
    for r in rows:
        assert CONTRACT_FIELDS <= set(r) and r["type"] == "Transition"
        assert isinstance(r["detected_at"], int)
    assert rows[1]["upstream_time"] == T0 + 3000  # the journal row's timestamp
    # A replay of the same input with the same state emits nothing new (--append: the file is kept on purpose).
    assert main([*argv, "--append"]) == 0
    assert len(lines(out)) == len(rows)


def test_resume_across_runs_equals_one_run(tmp_path: Path, codec: Codec) -> None:
    state = tmp_path / "state"
    first, full = tmp_path / "first.jsonl", tmp_path / "full.jsonl"
    write_observations(first, OBSERVATIONS[:4], codec)
    write_observations(full, OBSERVATIONS, codec)
    out = tmp_path / "out.jsonl"
    for src in (first, full):
        argv = ["process", "--source", f"jsonl:{src}", "--sink", f"jsonl:{out}", "--state-dir", str(state)]
        assert main([*argv, "--append"]) == 0
    assert [r["kind"] for r in lines(out)] == EXPECTED


def test_without_state_dir_state_lives_for_the_run(tmp_path: Path, codec: Codec) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_observations(src, OBSERVATIONS, codec)
    assert main(["process", "--source", f"jsonl:{src}", "--sink", f"jsonl:{out}"]) == 0
    assert [r["kind"] for r in lines(out)] == EXPECTED


def test_bad_lines_are_dead_lettered_and_the_rest_flows(tmp_path: Path, codec: Codec) -> None:
    src, out, side = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "side.jsonl"
    write_observations(src, OBSERVATIONS, codec)
    with src.open("a") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"type": "JournalEntryObserved", "event_id": "x"}) + "\n")
        fh.write(json.dumps(codec.to_json_dict(events.Cursor("c", "v", 1))) + "\n")
    argv = ["process", "--source", f"jsonl:{src}", "--sink", f"jsonl:{out}", "--side-sink", f"jsonl:{side}"]
    assert main(argv) == 0
    assert [r["kind"] for r in lines(out)] == EXPECTED
    side_rows = lines(side)
    dead = [r for r in side_rows if r["type"] == "DeadLetter"]
    assert [d["reason"] for d in dead] == ["malformed-json", "malformed-json", "unexpected-type"]
    assert all(str(d["pointer"]).startswith(f"jsonl:{src}") for d in dead)
    watch = [r for r in side_rows if r["type"] == "WatchRequest"]
    assert sorted(str(w["reason"]) for w in watch) == ["dropped-from-root-index", "new-report"]


def test_a_corrupt_state_file_is_a_clear_error(
    tmp_path: Path, codec: Codec, capsys: pytest.CaptureFixture[str]
) -> None:
    src, state = tmp_path / "in.jsonl", tmp_path / "state"
    write_observations(src, OBSERVATIONS, codec)
    state.mkdir()
    (state / "processor-state.json").write_text("{garbage")
    argv = ["process", "--source", f"jsonl:{src}", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}", "--state-dir", str(state)]
    assert main(argv) == 2
    assert "processor-state.json" in capsys.readouterr().err


def test_pipe_through_the_console_script(tmp_path: Path, codec: Codec) -> None:
    """stdin → stdout, as in ``qwatch ingest ... --sink jsonl:- | qwatch process --source jsonl:- --sink jsonl:-``."""
    src = tmp_path / "in.jsonl"
    write_observations(src, OBSERVATIONS, codec)
    exe = Path(sys.executable).with_name("qwatch")
    done = subprocess.run(
        [str(exe), "process", "--source", "jsonl:-", "--sink", "jsonl:-"],
        input=src.read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [json.loads(line)["kind"] for line in done.stdout.splitlines()] == EXPECTED


def test_help_describes_the_command() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["process", "--help"])
    assert exc.value.code == 0


def test_bad_settings_are_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QWATCH_PROCESSOR_BATCH_SIZE", "0")
    src = tmp_path / "in.jsonl"
    src.write_text("")
    assert main(["process", "--source", f"jsonl:{src}", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}"]) == 2
    assert "QWATCH_PROCESSOR_BATCH_SIZE" in capsys.readouterr().err


def test_transactional_id_is_stable_per_group_and_instance() -> None:
    from processors.config import ProcessorConfig

    assert ProcessorConfig(group_id="g", instance_id="2").transactional_id == "qwatch-processor-g-2"
