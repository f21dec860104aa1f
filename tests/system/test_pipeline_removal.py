"""The must-show, end to end on the JSONL pipeline: a removal, a 404 poll, a re-registration and a poll.

Everything is real: the local PyPI (``testing.fakepypi``) serves the Simple pages, the JSON API and the XML-RPC
journal on 127.0.0.1, and every step is a ``qwatch`` subprocess, exactly as an operator would run it::

    qwatch ingest pypi-simple  --index-url URL --watch FILE --once --state-dir D --sink jsonl:FILE
    qwatch ingest pypi-json    --index-url URL --watch FILE --once --state-dir D --sink jsonl:FILE
    qwatch ingest pypi-journal --xmlrpc-url URL --since-serial N --once --state-dir D --sink jsonl:FILE
    qwatch process --source jsonl:IN --sink jsonl:OUT --state-dir P

Steps: (a) the project exists; poll simple, journal and json. (b) PyPI removes it; poll simple (a 404) and the
journal. (c) someone re-registers the name with a new release; poll the journal and simple. Every observation
file goes to ``qwatch process`` (one ``--source jsonl:`` file, so the files are concatenated) in several orders
that keep each source's own order. Each order must give exactly one REMOVED and one RESTORED, with the same event
ids, and nothing else; running the processor again on the same input with the same ``--state-dir`` adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testing.fakepypi import FakePyPI
from tests.cli_support import qwatch, read_jsonl

PROJECT = "demo"
ALERTING_EXPECTED = {"REMOVED", "RESTORED"}


def describe(rows: list[dict[str, Any]]) -> str:
    """Transitions as one line each, for failure messages: kind, package, version, id, evidence sources."""
    out = []
    for r in rows:
        sources = ",".join(str(e["source"]) for e in r.get("evidence") or [])
        out.append(f"{r['kind']} {r['package']} {r.get('version')} id={r['event_id']} evidence=[{sources}]")
    return "\n".join(out) or "(none)"


@dataclass
class Polls:
    """The observation files of each poll, named ``<step>-<source>``, in the order they were written."""

    files: dict[str, Path]
    serials: dict[str, int]

    def concat(self, names: list[str], dest: Path) -> Path:
        dest.write_text("".join(self.files[n].read_text(encoding="utf-8") for n in names), encoding="utf-8")
        return dest


POLL_ORDER = ["a-simple", "a-journal", "a-json", "b-simple", "b-journal", "c-journal", "c-simple"]
ORDERS = {
    # As polled: what one JSONL file appended to by every ingestor would hold.
    "as-polled": POLL_ORDER,
    "journal-first": ["a-journal", "b-journal", "c-journal", "a-simple", "a-json", "b-simple", "c-simple"],
    "pages-first": ["a-simple", "a-json", "b-simple", "c-simple", "a-journal", "b-journal", "c-journal"],
}


@pytest.fixture(scope="module")
def polls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Polls]:
    root = tmp_path_factory.mktemp("pipeline")
    ingest_state = root / "ingest-state"
    watch = root / "watch.txt"
    watch.write_text(f"{PROJECT}\n", encoding="utf-8")
    fake = FakePyPI(start_serial=5_000)
    files: dict[str, Path] = {}
    serials: dict[str, int] = {}
    with fake.serve() as base:
        index = base + "/simple/"
        journal_start = fake.last_serial

        def poll(name: str) -> None:
            step, source = name.split("-", 1)
            out = root / f"{name}.jsonl"
            common = ["--once", "--state-dir", str(ingest_state), "--sink", f"jsonl:{out}"]
            if source == "journal":
                args = ["--xmlrpc-url", base + "/pypi", "--since-serial", str(journal_start)]
                qwatch("ingest", "pypi-journal", *args, *common)
            else:
                qwatch("ingest", f"pypi-{source}", "--index-url", index, "--watch", str(watch), *common)
            out.touch()  # an ingestor with nothing to say writes nothing
            files[name] = out

        # (a) the project exists
        fake.add_project(PROJECT, {"1.0": [f"{PROJECT}-1.0.tar.gz"]})
        serials["created"] = fake.last_serial
        for name in ("a-simple", "a-journal", "a-json"):
            poll(name)
        # (b) PyPI removes it: the page 404s, the journal says 'remove project'
        fake.remove_project(PROJECT)
        serials["removed"] = fake.last_serial
        for name in ("b-simple", "b-journal"):
            poll(name)
        # (c) the name is registered again, with a new release
        fake.add_project(PROJECT, {"6.6.6": [f"{PROJECT}-6.6.6.tar.gz"]})
        serials["recreated"] = fake.last_serial
        for name in ("c-journal", "c-simple"):
            poll(name)
    yield Polls(files, serials)


def test_the_ingestors_saw_each_step(polls: Polls) -> None:
    """The pipeline's input is what the scenario says (otherwise the processor assertions prove nothing)."""
    obs = {name: read_jsonl(path) for name, path in polls.files.items()}
    statuses = {
        name: [(o["status"], o["http_status"]) for o in rows if o["type"] == "ProjectStatusObserved"]
        for name, rows in obs.items()
    }
    assert statuses["a-simple"] == [("active", 200)]
    assert statuses["b-simple"] == [("absent", 404)]
    assert statuses["c-simple"] == [("active", 200)]
    journal_rows = [
        (o["action"], o["serial"])
        for name in ("a-journal", "b-journal", "c-journal")
        for o in obs[name]
        if o["type"] == "JournalEntryObserved" and o["version"] is None
    ]
    assert ("remove project", polls.serials["removed"]) in journal_rows
    assert [a for a, _ in journal_rows].count("create") == 2
    releases = [o for o in obs["a-json"] if o["type"] == "ReleasesObserved"]
    assert [(r["http_status"], r["last_serial"]) for r in releases] == [(200, polls.serials["created"])]
    dead = [(name, o) for name, rows in obs.items() for o in rows if o["type"] == "DeadLetter"]
    assert dead == []


@dataclass
class Processed:
    first: list[dict[str, Any]]
    replay: list[dict[str, Any]]
    side: list[dict[str, Any]]


@pytest.fixture(scope="module")
def processed(polls: Polls, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Processed]:
    out: dict[str, Processed] = {}
    for order, names in ORDERS.items():
        d = tmp_path_factory.mktemp(f"process-{order}")
        src = polls.concat(names, d / "observations.jsonl")
        state = d / "state"
        runs = []
        for run in ("first", "replay"):
            sink, side = d / f"transitions-{run}.jsonl", d / f"side-{run}.jsonl"
            qwatch(
                "process",
                "--source",
                f"jsonl:{src}",
                "--sink",
                f"jsonl:{sink}",
                "--side-sink",
                f"jsonl:{side}",
                "--state-dir",
                str(state),
            )
            runs.append((read_jsonl(sink), read_jsonl(side)))
        out[order] = Processed(runs[0][0], runs[1][0], runs[0][1])
    return out


@pytest.mark.parametrize("order", list(ORDERS))
def test_exactly_one_removed_and_one_restored(processed: dict[str, Processed], order: str) -> None:
    rows = processed[order].first
    kinds = sorted(str(r["kind"]) for r in rows)
    assert kinds == ["REMOVED", "RESTORED"], f"{order}: transitions were\n{describe(rows)}"
    assert {r["package"] for r in rows} == {PROJECT}
    assert not {str(r["kind"]) for r in rows} - ALERTING_EXPECTED


def test_same_event_ids_in_every_order(processed: dict[str, Processed]) -> None:
    by_order = {order: sorted((str(r["kind"]), str(r["event_id"])) for r in p.first) for order, p in processed.items()}
    reference = by_order["as-polled"]
    for order, ids in by_order.items():
        assert ids == reference, f"{order} differs from as-polled:\n{describe(processed[order].first)}"


@pytest.mark.parametrize("order", list(ORDERS))
def test_replay_adds_nothing(processed: dict[str, Processed], order: str) -> None:
    assert processed[order].replay == [], f"{order}: the replay emitted\n{describe(processed[order].replay)}"
