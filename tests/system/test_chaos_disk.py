"""Disk-full on the JSONL paths: a full sink, and a ``--state-dir`` whose writes fail, for every ingestor and for
``qwatch process --source jsonl: --sink jsonl: --state-dir``.

The fault is real: the sink is ``/dev/full``, or the temporary file a cursor/state save writes first is a symlink to
``/dev/full`` (as root, permissions would not stop the write). For each command the promise under test is the
delivery rule of ``docs/DEVELOPING.md`` (emit, flush, then move the cursor): the run fails loudly, its cursor or
state does not move past what was not written, and a rerun after the fault is gone writes exactly what is missing.
When the *state* write is what failed, the events were already flushed; the rerun then writes that unacknowledged
step again, with the same event ids (at-least-once, documented in ``qwatch/cursors.py`` and
``processors/runner.py``), and the test checks it repeats that step and nothing else.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos_support import PYTHON, ChaosWorld, Identity

DEV_FULL = Path("/dev/full")
STATE_SUFFIXES = (".json", ".gz")
"""State files written through a temporary file (cursors, processor state, page-ingestor state)."""


@dataclass(frozen=True)
class Run:
    """One command's outcome."""

    code: int
    stderr: str
    ids: list[str]


@dataclass
class Upstream:
    """A local PyPI and OpenSSF repository after a scripted set of changes, and how to point each command at them."""

    world: ChaosWorld
    root: Path

    def argv(self, component: str, resume: bool = False) -> list[str]:
        """The ``--once`` command line of an ingestor (sink and state dir are added by the caller).

        ``resume``: continue from the saved cursor. The starting points (``--since``/``--since-serial``) are given
        otherwise; OpenSSF's ``--since`` overrides a saved cursor, so a resumed run must leave it out.
        """
        w = self.world
        assert w.ossf is not None
        index = ["--index-url", w.base_url + "/simple/", "--watch", str(w.watch_file)]
        since = [] if resume else ["--since", w.ossf.base]
        return {
            "pypi-journal": ["ingest", "pypi-journal", "--xmlrpc-url", w.base_url + "/pypi", "--since-serial",
                             str(w.start_serial)],
            "pypi-simple": ["ingest", "pypi-simple", *index],
            "pypi-json": ["ingest", "pypi-json", *index],
            "openssf": ["ingest", "openssf", "--repo", w.ossf.url, *since, "--per-commit",
                        "--workdir", str(self.root / "mirror")],
        }[component] + ["--once"]  # fmt: skip


def run(argv: list[str], sink: Path, state: Path | None) -> Run:
    """Run ``qwatch`` with a JSONL sink (and state dir); return its exit code, stderr and the ids it wrote."""
    full = [PYTHON, "-m", "app", *argv, "--sink", f"jsonl:{sink}"]
    if state is not None:
        full += ["--state-dir", str(state)]
    proc = subprocess.run(full, capture_output=True, text=True, timeout=120, check=False)
    return Run(proc.returncode, proc.stderr, read_ids(sink))


def assert_clear_failure(result: Run) -> None:
    """Non-zero, the cause in one line, no traceback: a full disk is an operator's problem, not a crash."""
    assert result.code != 0, result.stderr[-2000:]
    assert "No space left on device" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def read_ids(path: Path) -> list[str]:
    """Event ids of a JSONL file, in order (nothing for /dev/full or a missing file)."""
    if path == DEV_FULL or not path.exists():
        return []
    return [json.loads(line)["event_id"] for line in path.read_text().splitlines() if line.strip()]


def break_state_writes(reference: Path, state: Path) -> list[Path]:
    """Make every state write of the command fail with ENOSPC: the temporary file each atomic save opens first
    becomes a symlink to /dev/full. Which files a command saves is learned from its reference run."""
    state.mkdir(parents=True, exist_ok=True)
    traps = [state / f".{f.name}.tmp" for f in reference.iterdir() if f.name.endswith(STATE_SUFFIXES)]
    for trap in traps:
        trap.symlink_to(DEV_FULL)
    assert traps, f"no state files in {sorted(p.name for p in reference.iterdir())}"
    return traps


def state_files(state: Path) -> set[str]:
    """What the command durably saved (the traps and SQLite's side files aside)."""
    return {p.name for p in state.iterdir() if not p.is_symlink() and p.name.endswith(STATE_SUFFIXES)}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """12 projects and 60 scripted changes (PyPI and OpenSSF), applied before any command runs."""
    root = tmp_path_factory.mktemp("disk")
    world = ChaosWorld(root / "world", 5, "disk", projects=12)
    world.start()
    for _ in range(60):
        world.apply(world.script.next())
    assert not world.errors, world.errors
    try:
        yield Upstream(world, root)
    finally:
        world.close()


INGESTORS = ("pypi-journal", "pypi-simple", "pypi-json", "openssf")


@pytest.fixture(scope="module")
def references(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Each ingestor once, with no fault: its output file and state dir are what every faulty run is judged by."""
    out: dict[str, tuple[Path, Path]] = {}
    base = tmp_path_factory.mktemp("reference")
    for component in INGESTORS:
        sink, state = base / f"{component}.jsonl", base / component
        result = run(upstream.argv(component), sink, state)
        assert result.code == 0 and result.ids, result.stderr[-2000:]
        assert len(set(result.ids)) == len(result.ids), f"{component} repeated an id on a clean run"
        out[component] = (sink, state)
    return out


@pytest.mark.parametrize("component", INGESTORS)
def test_full_sink_fails_the_run_keeps_the_cursor_and_a_rerun_writes_everything(
    upstream: Upstream, references: dict[str, tuple[Path, Path]], component: str, tmp_path: Path
) -> None:
    reference = read_ids(references[component][0])
    state = tmp_path / "state"
    failed = run(upstream.argv(component), DEV_FULL, state)
    assert_clear_failure(failed)
    assert not state.exists() or not state_files(state), "state moved past events that were never written"
    rerun = run(upstream.argv(component), tmp_path / "out.jsonl", state)
    assert rerun.code == 0, rerun.stderr[-2000:]
    assert sorted(rerun.ids) == sorted(reference)  # page fetches run concurrently: order is not part of it


@pytest.mark.parametrize("component", INGESTORS)
def test_failing_state_dir_fails_the_run_and_a_rerun_repeats_only_the_unsaved_step(
    upstream: Upstream, references: dict[str, tuple[Path, Path]], component: str, tmp_path: Path
) -> None:
    sink, reference_state = references[component]
    reference = read_ids(sink)
    state = tmp_path / "state"
    traps = break_state_writes(reference_state, state)
    failed = run(upstream.argv(component), tmp_path / "first.jsonl", state)
    assert_clear_failure(failed)
    assert not state_files(state), "a state file was saved although its write failed"
    for trap in traps:
        trap.unlink()
    rerun = run(upstream.argv(component), tmp_path / "second.jsonl", state)
    assert rerun.code == 0, rerun.stderr[-2000:]
    assert sorted(rerun.ids) == sorted(reference), "the rerun must write the whole unsaved step again, and only it"
    assert set(failed.ids) <= set(reference), "the failed run wrote something the clean run never wrote"
    done = run(upstream.argv(component, resume=True), tmp_path / "third.jsonl", state)
    assert done.code == 0 and not [i for i in done.ids if i in set(reference)], "the saved state was not used"


def _observations(references: dict[str, tuple[Path, Path]], tmp_path: Path) -> Path:
    path = tmp_path / "observations.jsonl"
    path.write_text("".join(references[c][0].read_text() for c in INGESTORS))
    return path


PROCESS = ["process", "--once"]


def _transitions(path: Path) -> Counter[Identity]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return Counter((r["kind"], r["package"], r.get("version") or r.get("report_id")) for r in rows)


def test_processor_jsonl_reconciles_and_survives_a_full_sink_and_a_failing_state_dir(
    upstream: Upstream, references: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    source = ["--source", f"jsonl:{_observations(references, tmp_path)}"]
    clean = run([*PROCESS, *source], tmp_path / "clean.jsonl", tmp_path / "clean-state")
    assert clean.code == 0, clean.stderr[-2000:]
    assert _transitions(tmp_path / "clean.jsonl") == upstream.world.expected(), "JSONL processing did not reconcile"
    assert len(set(clean.ids)) == len(clean.ids)

    state = tmp_path / "state"
    failed = run([*PROCESS, *source], DEV_FULL, state)
    assert_clear_failure(failed)
    assert not state.exists() or not state_files(state), "processor state moved past unwritten transitions"
    rerun = run([*PROCESS, *source], tmp_path / "rerun.jsonl", state)
    assert rerun.code == 0 and rerun.ids == clean.ids, rerun.stderr[-2000:]

    state2 = tmp_path / "state2"
    traps = break_state_writes(tmp_path / "clean-state", state2)
    failed = run([*PROCESS, *source], tmp_path / "first.jsonl", state2)
    assert_clear_failure(failed)
    assert not state_files(state2)
    for trap in traps:
        trap.unlink()
    rerun = run([*PROCESS, *source], tmp_path / "second.jsonl", state2)
    assert rerun.code == 0 and rerun.ids == clean.ids, rerun.stderr[-2000:]
    assert failed.ids == clean.ids[: len(failed.ids)], "the failed run must have written a prefix of the output"
    replay = run([*PROCESS, *source], tmp_path / "replay.jsonl", state2)
    assert replay.code == 0 and replay.ids == [], "a replay after a saved state must emit nothing"
