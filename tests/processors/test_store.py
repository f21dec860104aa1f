"""``--state-dir`` processor state: an append-only log plus a snapshot (processors/store.py).

Checked against simple models, on generated inputs (hypothesis):
- the store alone: any sequence of batches, compactions at any size, and crashes that tear the last append (cut
  anywhere inside it, or NUL-filled) load exactly the states of the last whole batch, and keep working after;
- the real runner: a run stopped after any prefix of a generated observation stream (its log possibly torn) and
  resumed on the whole stream ends with the same states and the same set of transition ids as one uninterrupted
  run, and the uninterrupted run's state equals the pure core's over the same stream;
- the amount written per batch is the batch's own changes (no run writes every state per batch).
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from processors.core import step
from processors.runner import BatchRunner
from processors.store import FILENAME, LOGNAME, FileStateStore, StateFileError
from qwatch import events
from qwatch.events.codec import Codec
from qwatch.events.state import PackageStateRecord, empty_state, state_key
from qwatch.metrics import Metrics
from qwatch.sinks import JsonlSource, MemorySink
from testing.samples import T0, journal, page, report

CODEC = Codec()
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _state(name: str, version: int) -> PackageStateRecord:
    return replace(empty_state("PyPI", name, T0 + version), last_serial=version, visible_versions=(str(version),))


batches_st = st.lists(
    st.dictionaries(st.sampled_from([f"p{i}" for i in range(12)]), st.integers(0, 10_000), min_size=1, max_size=6),
    min_size=1,
    max_size=25,
)


@SETTINGS
@given(
    batches=batches_st,
    compact_min=st.integers(0, 3000),
    crashes=st.lists(st.tuples(st.integers(0, 24), st.sampled_from(["cut", "nul", "none"]), st.floats(0, 1))),
)
def test_store_loads_the_last_whole_batch_after_any_crash(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[dict[str, int]],
    compact_min: int,
    crashes: list[tuple[int, str, float]],
) -> None:
    directory = tmp_path_factory.mktemp("store")
    crash_at = {i: (how, where) for i, how, where in crashes}
    model: dict[str, PackageStateRecord] = {}
    store = FileStateStore(directory, CODEC, compact_min_bytes=compact_min, compact_ratio=0.5)
    assert store.load() == {}
    for i, batch in enumerate(batches):
        changed = {state_key("PyPI", n): _state(n, v) for n, v in batch.items()}
        durable = dict(model)
        model.update(changed)
        log = directory / LOGNAME
        before = log.stat().st_size if log.exists() else 0
        store.append(changed, dict(model))
        if i in crash_at and log.exists() and log.stat().st_size > before:
            how, where = crash_at[i]
            data = log.read_bytes()
            cut = before + int((len(data) - before - 1) * where)  # somewhere inside this batch's line
            if how == "cut":
                log.write_bytes(data[:cut])
                model = durable
            elif how == "nul":
                log.write_bytes(data[:cut] + b"\0" * (len(data) - cut))
                model = durable
        store = FileStateStore(directory, CODEC, compact_min_bytes=compact_min, compact_ratio=0.5)
        assert store.load() == model, f"after batch {i}"
        assert not log.exists() or log.read_bytes().endswith(b"\n") or log.stat().st_size == 0
    assert FileStateStore(directory, CODEC).load() == model


def test_compaction_crash_between_snapshot_and_log_truncation_loses_nothing(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path, CODEC, compact_min_bytes=10**9)
    model: dict[str, PackageStateRecord] = {}
    for v in range(30):
        changed = {state_key("PyPI", f"p{v % 7}"): _state(f"p{v % 7}", v)}
        model.update(changed)
        store.append(changed, dict(model))
    log_before = (tmp_path / LOGNAME).read_bytes()
    assert log_before.count(b"\n") == 29  # the first save was the snapshot, the rest appended
    store.compact(model)
    (tmp_path / LOGNAME).write_bytes(log_before)  # as if the crash came after the snapshot's rename
    assert FileStateStore(tmp_path, CODEC).load() == model


def test_a_bad_line_before_the_last_is_an_error_not_a_silent_loss(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path, CODEC, compact_min_bytes=10**9)
    model: dict[str, PackageStateRecord] = {}
    for v in range(4):
        changed = {state_key("PyPI", f"p{v}"): _state(f"p{v}", v)}
        model.update(changed)
        store.append(changed, dict(model))
    lines = (tmp_path / LOGNAME).read_bytes().split(b"\n")
    lines[0] = b"[{not json"
    (tmp_path / LOGNAME).write_bytes(b"\n".join(lines))
    with pytest.raises(StateFileError, match=r"processor-state\.log: line 1"):
        FileStateStore(tmp_path, CODEC).load()
    (tmp_path / LOGNAME).write_bytes(b"\n".join([*lines[1:-1], b'{"a": 1}', b""]))  # whole JSON, wrong shape
    with pytest.raises(StateFileError, match="not a list of states"):
        FileStateStore(tmp_path, CODEC).load()


def test_bytes_written_per_batch_do_not_grow_with_the_state(tmp_path: Path) -> None:
    """10,000 packages of state, then batches of one change each: each append writes one record, not all."""
    store = FileStateStore(tmp_path, CODEC)
    states = {state_key("PyPI", f"p{i}"): _state(f"p{i}", i) for i in range(10_000)}
    store.append(states, states)
    snapshot = (tmp_path / FILENAME).stat().st_size
    sizes = []
    for v in range(50):
        changed = {state_key("PyPI", "p1"): _state("p1", 20_000 + v)}
        states.update(changed)
        before = (tmp_path / LOGNAME).stat().st_size if (tmp_path / LOGNAME).exists() else 0
        store.append(changed, states)
        sizes.append((tmp_path / LOGNAME).stat().st_size - before)
    assert store.compactions == 1 and (tmp_path / FILENAME).stat().st_size == snapshot
    assert max(sizes) < snapshot / 1000, (max(sizes), snapshot)
    assert FileStateStore(tmp_path, CODEC).load() == states


# -- the runner: restart mid-stream ---------------------------------------------------------------------------------
def _stream(seed: int, length: int) -> list[events.Observation]:
    """Journal rows, pages and reports for a few projects, upstream kept consistent per project."""
    rnd = random.Random(seed)
    serial = 50_000_000
    status = {f"proj-{i}": "active" for i in range(8)}
    moves = {
        "active": [("project quarantined", "quarantined"), ("remove project", "removed")],
        "quarantined": [("project quarantine cleared", "active"), ("remove project", "removed")],
        "removed": [("create", "active")],
    }
    out: list[events.Observation] = []
    for n in range(length):
        name = rnd.choice(sorted(status))
        t = T0 + n * 60_000
        kind = rnd.random()
        if kind < 0.4:
            action, status[name] = rnd.choice(moves[status[name]])
            serial += 1
            out.append(journal(name, serial, action, ts=t))
        elif kind < 0.55:
            serial += 1
            out.append(journal(name, serial, "yank release", "1.0", ts=t))
        elif kind < 0.85:
            shown = "absent" if status[name] == "removed" else status[name]
            out.append(page(name, shown, serial, t + 5_000, ("1.0", "1.1")))
        else:
            change = rnd.choice(["added", "modified", "withdrawn"])
            out.append(report(name, f"MAL-2026-{n % 5}", change, f"2026-02-{1 + n % 27:02d}T00:00:00Z", f"c{n}", t))
        if rnd.random() < 0.1 and out:
            out.append(rnd.choice(out))  # a redelivery
    return out


def _write(path: Path, observations: list[events.Observation]) -> Path:
    path.write_text(
        "".join(json.dumps(CODEC.to_json_dict(o), separators=(",", ":")) + "\n" for o in observations),
        encoding="utf-8",
    )
    return path


def _run(src: Path, state_dir: Path, compact_min: int) -> tuple[list[str], dict[str, PackageStateRecord]]:
    sink = MemorySink()
    store = FileStateStore(state_dir, CODEC, compact_min_bytes=compact_min, compact_ratio=0.5)
    source = JsonlSource(str(src), CODEC, batch_size=7)
    runner = BatchRunner(source, sink, None, store, Metrics(CollectorRegistry()), lambda: T0)
    try:
        runner.run()
    finally:
        source.close()
    return [t.event_id for t in sink.events if isinstance(t, events.Transition)], runner.states


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    length=st.integers(5, 160),
    stop=st.floats(0, 1),
    compact_min=st.integers(0, 4000),
    tear=st.booleans(),
)
def test_restart_mid_stream_matches_one_uninterrupted_run(
    tmp_path_factory: pytest.TempPathFactory, seed: int, length: int, stop: float, compact_min: int, tear: bool
) -> None:
    work = tmp_path_factory.mktemp("restart")
    observations = _stream(seed, length)
    full = _write(work / "all.jsonl", observations)
    once_ids, once_states = _run(full, work / "once", compact_min)

    states: dict[str, PackageStateRecord] = {}
    core_ids: list[str] = []
    for o in observations:
        key = state_key(o.ecosystem, o.package)
        result = step(states.get(key), o, T0)
        if result.state is not None:
            states[key] = result.state
        core_ids += [t.event_id for t in result.transitions]
    assert once_states == states and once_ids == core_ids, "the stored run must equal the pure core"
    assert len(set(once_ids)) == len(once_ids)

    prefix = _write(work / "prefix.jsonl", observations[: int(len(observations) * stop)])
    first_ids, _ = _run(prefix, work / "twice", compact_min)
    log = work / "twice" / LOGNAME
    if tear and log.exists() and log.stat().st_size > 1:
        data = log.read_bytes()
        log.write_bytes(data[: len(data) - 1 - random.Random(seed).randrange(0, 5)])  # the last append, torn
    second_ids, second_states = _run(full, work / "twice", compact_min)
    assert second_states == once_states
    assert set(first_ids) | set(second_ids) == set(once_ids)
    if not tear:
        assert first_ids + second_ids == once_ids, "a resumed run re-emits nothing and misses nothing"
    _, replayed = _run(full, work / "twice", compact_min)
    assert replayed == once_states


# -- the files are the json module's form, whatever the store kept in memory ----------------------------------------
def _reference_json(items: list[PackageStateRecord]) -> bytes:
    return json.dumps([CODEC.to_json_dict(s) for s in items], separators=(",", ":"), ensure_ascii=False).encode()


@SETTINGS
@given(
    batches=batches_st,
    compact_min=st.integers(0, 3000),
    restarts=st.sets(st.integers(0, 24)),
    names=st.lists(st.sampled_from(["p", "é", "\u2028", 'q"\\', "\x00"]), min_size=12, max_size=12),
)
def test_snapshot_and_log_bytes_are_the_json_encoding_of_the_model(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[dict[str, int]],
    compact_min: int,
    restarts: set[int],
    names: list[str],
) -> None:
    """After restarts (states restored, not encoded by this store object) and compactions at any size: the snapshot
    is ``json.dumps`` of every state (sorted by key) and each log line ``json.dumps`` of its batch's states."""
    directory = tmp_path_factory.mktemp("bytes")
    model: dict[str, PackageStateRecord] = {}
    store = FileStateStore(directory, CODEC, compact_min_bytes=compact_min, compact_ratio=0.5)
    store.load()
    for i, batch in enumerate(batches):
        if i in restarts:
            store = FileStateStore(directory, CODEC, compact_min_bytes=compact_min, compact_ratio=0.5)
            model = store.load()  # fresh records: equal to the old ones, not the same objects
        changed = {
            state_key("PyPI", f"{names[int(n[1:])]}{n}"): _state(f"{names[int(n[1:])]}{n}", v) for n, v in batch.items()
        }
        model.update(changed)
        compactions = store.compactions
        log_before = (directory / LOGNAME).read_bytes() if (directory / LOGNAME).exists() else b""
        store.append(changed, dict(model))
        if store.compactions > compactions:
            snapshot = (directory / FILENAME).read_bytes()
            packages = [CODEC.to_json_dict(model[k]) for k in sorted(model)]
            expected = json.dumps(
                {"format": "qwatch-processor-state/1", "packages": packages}, separators=(",", ":"), ensure_ascii=False
            )
            assert snapshot == expected.encode() + b"\n"
            assert not (directory / LOGNAME).exists() or (directory / LOGNAME).read_bytes() == b""
        else:
            line = (directory / LOGNAME).read_bytes()[len(log_before) :]
            assert line == _reference_json([changed[k] for k in sorted(changed)]) + b"\n"
        assert FileStateStore(directory, CODEC).load() == model


def test_save_writes_the_states_given_not_the_lines_kept_from_earlier_appends(tmp_path: Path) -> None:
    """The kept lines are reused only for the very records they encode: a save of other states (changed values,
    packages gone) writes those states."""
    store = FileStateStore(tmp_path, CODEC, compact_min_bytes=10**9)
    model = {state_key("PyPI", f"p{i}"): _state(f"p{i}", i) for i in range(5)}
    store.append(model, model)
    for v in range(3):
        changed = {state_key("PyPI", "p1"): _state("p1", 100 + v)}
        model.update(changed)
        store.append(changed, model)
    other = {k: _state(s.package, 500 + (s.last_serial or 0)) for k, s in model.items() if k != state_key("PyPI", "p3")}
    store.save(other)
    packages = _reference_json([other[k] for k in sorted(other)])
    assert (tmp_path / FILENAME).read_bytes() == b'{"format":"qwatch-processor-state/1","packages":' + packages + b"}\n"
    assert FileStateStore(tmp_path, CODEC).load() == other
