"""JSONL sinks and sources run the same code paths as Kafka: round trips, bad lines, and failing disks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qwatch import events
from qwatch.cursors import FileCursorStore
from qwatch.errors import UsageError
from qwatch.events.codec import Codec
from qwatch.sinks import JsonlSink, JsonlSource, PublishError, SinkExistsError, parse_endpoint

ROW = events.JournalEntryObserved("id1", "pypi-journal", "PyPI", "demo", 1, 2, "remove project", None, 7, 2, "Demo")


def test_round_trip_through_a_file(tmp_path: Path, codec: Codec) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(str(path), codec)
    sink.emit(ROW)
    sink.close()
    line = json.loads(path.read_text())
    assert line["type"] == "JournalEntryObserved" and line["serial"] == 7 and line["version"] is None
    source = JsonlSource(str(path), codec)
    batch = source.poll(0)
    assert [d.event for d in batch] == [ROW]
    assert source.exhausted


def test_bad_lines_come_back_as_errors_not_exceptions(tmp_path: Path, codec: Codec) -> None:
    path = tmp_path / "in.jsonl"
    good = json.dumps(codec.to_json_dict(ROW))
    path.write_text(f'{good}\nnot json\n{{"type": "Nope"}}\n\n[1, 2]\n{good}\n')
    batch = JsonlSource(str(path), codec).poll(0)
    assert [d.event is not None for d in batch] == [True, False, False, False, True]
    assert all(d.error for d in batch if d.event is None)
    assert batch[1].pointer.endswith("@2")


def test_lines_that_are_not_utf8_come_back_as_errors_and_the_rest_is_read(tmp_path: Path, codec: Codec) -> None:
    """A corrupt byte in one line (a truncated copy, another encoding) is that line's error, dead-lettered with its
    bytes: it must not end the whole replay with a UnicodeDecodeError."""
    path = tmp_path / "in.jsonl"
    good = json.dumps(codec.to_json_dict(ROW)).encode()
    latin1 = json.dumps(codec.to_json_dict(ROW), ensure_ascii=False).replace("demo", "d\u00e9mo").encode()
    path.write_bytes(
        good + b"\n\xff\xfe{}\n" + good.replace(b'"Demo"', b'"D\xe9mo"') + b"\n" + latin1 + b"\n" + good + b"\n"
    )
    batch = JsonlSource(str(path), codec).poll(0)
    assert [d.event is not None for d in batch] == [True, False, False, True, True]
    assert [d.pointer.rsplit("@", 1)[1] for d in batch] == ["1", "2", "3", "4", "5"]
    for bad in (batch[1], batch[2]):
        assert bad.error is not None and "UTF-8" in bad.error
    assert batch[1].raw == b"\xff\xfe{}"


def test_full_disk_is_a_publish_error_and_the_cursor_stays(tmp_path: Path, codec: Codec) -> None:
    store = FileCursorStore(tmp_path / "state")
    store.save(events.Cursor("c", "1", 1))
    if not Path("/dev/full").exists():
        pytest.fail("/dev/full is needed to simulate a full disk")
    sink = JsonlSink("/dev/full", codec)
    sink.emit(ROW)
    with pytest.raises(PublishError):
        sink.flush()
    assert store.load("c").value == "1"  # type: ignore[union-attr]


def test_unwritable_state_dir_raises_and_keeps_the_old_cursor(tmp_path: Path) -> None:
    store = FileCursorStore(tmp_path / "state")
    store.save(events.Cursor("c", "1", 1))
    os.chmod(tmp_path / "state", 0o500)
    try:
        if os.geteuid() == 0:
            # root ignores directory permissions; a file in place of the temp name fails the write the same way.
            (tmp_path / "state" / ".cursor-c.json.tmp").mkdir()
        with pytest.raises(OSError):
            store.save(events.Cursor("c", "2", 2))
    finally:
        os.chmod(tmp_path / "state", 0o700)
    assert store.load("c").value == "1"  # type: ignore[union-attr]


def test_cursor_file_names_cannot_escape_the_state_dir(tmp_path: Path) -> None:
    store = FileCursorStore(tmp_path / "state")
    store.save(events.Cursor("../../etc/passwd\x00\n", "1", 1))
    assert [p.parent for p in (tmp_path / "state").iterdir()] == [tmp_path / "state"]
    assert store.load("../../etc/passwd\x00\n").value == "1"  # type: ignore[union-attr]


@pytest.mark.parametrize("spec", ["kafka", "jsonl:-", "jsonl:/tmp/x.jsonl"])
def test_endpoint_specs(spec: str) -> None:
    kind, _ = parse_endpoint(spec, "--sink")
    assert kind in ("kafka", "jsonl")


@pytest.mark.parametrize("spec", ["", "jsonl:", "json:-", "kafka:foo"])
def test_bad_endpoint_specs(spec: str) -> None:
    with pytest.raises(UsageError, match="jsonl:PATH"):
        parse_endpoint(spec, "--sink")


def test_a_sink_never_silently_doubles_a_file(tmp_path: Path, codec: Codec) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path), codec)  # new file: fine
    sink.emit(ROW)
    sink.close()
    with pytest.raises(SinkExistsError, match="--append"):
        JsonlSink(str(path), codec)
    assert len(path.read_text().splitlines()) == 1  # the refusal wrote nothing
    again = JsonlSink(str(path), codec, append=True)
    again.emit(ROW)
    again.close()
    assert len(path.read_text().splitlines()) == 2
    (tmp_path / "empty.jsonl").touch()
    JsonlSink(str(tmp_path / "empty.jsonl"), codec).close()  # an empty file holds nothing to double


def test_the_cli_refuses_a_rerun_into_the_same_file_unless_append(tmp_path: Path) -> None:
    """The way a user meets it: ``qwatch process`` run twice into one ``--sink jsonl:`` file."""
    from app.cli import main

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("")
    out.write_text('{"already": "here"}\n')
    base = ["process", "--source", f"jsonl:{src}", "--state-dir", str(tmp_path / "st")]
    assert main([*base, "--sink", f"jsonl:{out}"]) == 2
    assert out.read_text() == '{"already": "here"}\n'
    assert main([*base, "--sink", f"jsonl:{out}", "--append"]) == 0
