"""Processor benchmark: the pure core's observations/s, and end-to-end throughput on a real broker against a raw
kafka-python consume loop over the same topic in the same run (the client's own limit).

    .venv/bin/python bench/processor_bench.py [--observations 200000] [--e2e-observations 60000] [--mix NAME]
                                              [--skip-e2e] [--rounds 3] [--cold-broker]

Prints a summary and writes bench/out/processor.json. Targets: core > 100k observations/s; processor >= 0.5x raw.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from processors.config import ProcessorConfig
from processors.core import step
from processors.service import ProcessorService, _Revocations
from processors.tuning import tune_gc
from qwatch import events
from qwatch.broker import LocalBroker
from qwatch.config import KafkaConfig
from qwatch.events.codec import Codec
from qwatch.events.state import PackageStateRecord, state_key
from qwatch.events.topics import ALL_TOPICS, OBSERVATIONS
from qwatch.kafka.clients import KafkaClients
from qwatch.kafka.io import KafkaSink, create_topics, make_admin, make_consumer, make_producer
from qwatch.metrics import Metrics
from testing.samples import T0, index, journal, json_api, page, report

OUT = Path(__file__).resolve().parent / "out" / "processor.json"
CORE_TARGET = 100_000
RATIO_TARGET = 0.5


@dataclass
class Project:
    """One simulated PyPI project: upstream stays consistent (serials grow, statuses follow PyPI's rules)."""

    name: str
    serial: int
    status: str = "active"
    versions: list[str] = field(default_factory=lambda: ["1.0"])
    yanked: set[str] = field(default_factory=set)
    t: int = T0


MIXES: dict[str, dict[str, float]] = {
    # Derived from published rates (shared/docs): PyPI adds ~3.9M files a year (~11k 'add file' + ~3k 'new
    # release' journal rows a day), quarantines ~1 project a day and removes ~30; OpenSSF allocated ~188k ids in
    # six months (~1000 a day, mostly npm; ~7 PyPI a day); ~700 new projects a day enter the root index.
    "realistic": {
        "routine": 0.60, "page": 0.20, "json": 0.06, "report": 0.05, "hint": 0.03,
        "status": 0.005, "release": 0.02, "redelivery": 0.035,
    },
    # Change-heavy stress: ~5x the status and release changes and more reports than any real day.
    "stress": {
        "routine": 0.45, "page": 0.25, "json": 0.08, "report": 0.08, "hint": 0.05,
        "status": 0.02, "release": 0.02, "redelivery": 0.05,
    },
}  # fmt: skip
"""Share of each event family per generated event (each weight sums to 1)."""


class Workload:
    """A stream of observations with a given mix; upstream stays consistent per project."""

    def __init__(self, seed: int, projects: int, mix: dict[str, float]) -> None:
        self.rnd = random.Random(seed)
        self.kinds = list(mix)
        self.weights = [mix[k] for k in self.kinds]
        self.projects = [Project(f"pkg-{i:05d}", 30_000_000 + i * 1000) for i in range(projects)]
        # The journal counter starts above every project's initial serial, as on PyPI (serials only grow); a fixed
        # 40M start fell below them from 10k projects on, and a page then claimed a future the journal rewrote.
        self.serial = max(40_000_000, 30_000_000 + projects * 1000)
        self.reports = 0
        self.seen: list[events.Observation] = []

    def _next_serial(self, p: Project) -> int:
        self.serial += 1
        p.serial = self.serial
        p.t += 60_000
        return p.serial

    def _page(self, p: Project) -> events.Observation:
        status = "absent" if p.status == "removed" else p.status
        return page(p.name, status, p.serial, p.t + 5_000, tuple(p.versions), tuple(sorted(p.yanked)))

    def _status_change(self, p: Project) -> list[events.Observation]:
        transitions = {
            "active": [("project quarantined", "quarantined"), ("archive", "archived"), ("remove project", "removed")],
            "archived": [("unarchive", "active"), ("project quarantined", "quarantined")],
            "quarantined": [("project quarantine cleared", "active"), ("remove project", "removed")],
            "removed": [("create", "active")],
        }
        action, status = self.rnd.choice(transitions[p.status])
        p.status = status
        if action in ("archive", "unarchive"):
            p.t += 60_000
            return [self._page(p)]
        row = journal(p.name, self._next_serial(p), action, ts=p.t)
        return [row, self._page(p)] if self.rnd.random() < 0.5 else [row]

    def _release_change(self, p: Project) -> list[events.Observation]:
        version = self.rnd.choice(p.versions)
        if version in p.yanked:
            p.yanked.discard(version)
            return [journal(p.name, self._next_serial(p), "unyank release", version, ts=p.t)]
        if self.rnd.random() < 0.7:
            p.yanked.add(version)
            return [journal(p.name, self._next_serial(p), "yank release", version, ts=p.t)]
        return [journal(p.name, self._next_serial(p), "release quarantined", version, ts=p.t)]

    def _report(self) -> events.Observation:
        self.reports += 1
        n = self.reports
        eco = "npm" if self.rnd.random() < 0.8 else "PyPI"
        name = f"npm-{n % 20_000}" if eco == "npm" else self.rnd.choice(self.projects).name
        change = "added" if n % 5 else "modified"
        day = 1 + n % 27
        return report(
            name, f"MAL-2026-{n}", change, f"2026-02-{day:02d}T00:00:00Z", f"c{n}", T0 + n, ("1.0",), ecosystem=eco
        )

    def _one(self, kind: str, p: Project) -> list[events.Observation]:
        if kind == "redelivery" and self.seen:
            return [self.rnd.choice(self.seen[-5000:])]
        if kind == "routine" and p.status != "removed":
            if self.rnd.random() < 0.25:
                p.versions.append(f"1.{len(p.versions)}")
                return [journal(p.name, self._next_serial(p), "new release", p.versions[-1], ts=p.t)]
            return [journal(p.name, self._next_serial(p), "add py3 file x.whl", p.versions[-1], ts=p.t)]
        if kind == "page":
            return [self._page(p)]
        if kind == "json":
            rels = [(v, v in p.yanked) for v in p.versions]
            gone = p.status in ("quarantined", "removed")
            return [json_api(p.name, 404 if gone else 200, p.serial, p.t + 7_000, rels)]
        if kind == "report":
            return [self._report()]
        if kind == "hint":
            return [index(p.name, p.status not in ("quarantined", "removed"), p.t + 9_000, p.serial)]
        if kind == "status":
            return self._status_change(p)
        if kind == "release" and p.status in ("active", "archived"):
            return self._release_change(p)
        return []

    def events(self) -> Iterator[events.Observation]:
        """An endless stream."""
        while True:
            kind = self.rnd.choices(self.kinds, self.weights)[0]
            batch = self._one(kind, self.rnd.choice(self.projects))
            self.seen.extend(batch)
            yield from batch

    def take(self, n: int) -> list[events.Observation]:
        it = self.events()
        return [next(it) for _ in range(n)]


def bench_core(observations: list[events.Observation], rounds: int = 3) -> dict[str, Any]:
    """Best of ``rounds`` passes over the stream, each from empty state."""
    best = float("inf")
    outcomes: dict[str, int] = {}
    transitions = 0
    for _ in range(rounds):
        states: dict[str, PackageStateRecord] = {}
        outcomes = {}
        transitions = 0
        t0 = time.perf_counter()
        for obs in observations:
            key = state_key(obs.ecosystem, obs.package)
            result = step(states.get(key), obs, T0)
            if result.state is not None:
                states[key] = result.state
            transitions += len(result.transitions)
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        best = min(best, time.perf_counter() - t0)
    rate = len(observations) / best
    return {
        "observations": len(observations),
        "seconds": round(best, 3),
        "observations_per_s": round(rate),
        "transitions": transitions,
        "outcomes": outcomes,
        "target_per_s": CORE_TARGET,
        "meets_target": rate > CORE_TARGET,
    }


@dataclass(frozen=True)
class Timing:
    """One timed run: wall-clock seconds, and the CPU seconds this process spent in the same window (all threads).

    The CPU figure does not count time the machine gave to others: on a shared two-core machine the wall time of
    one run can be half as long again as the next one's, its CPU time much less so."""

    wall: float
    cpu: float

    @staticmethod
    def now() -> Timing:
        """Both clocks now; a difference of two readings is the Timing of the window between them."""
        return Timing(time.perf_counter(), time.process_time())

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu)

    def __sub__(self, other: Timing) -> Timing:
        return Timing(self.wall - other.wall, self.cpu - other.cpu)


def raw_consume(cfg: KafkaConfig, expected: int) -> Timing:
    """A plain kafka-python loop consuming the topic, read_committed: from its first poll (partitions assigned,
    positions not yet looked up) to its last record, the same window the processor is timed over."""
    consumer = make_consumer(cfg, None, max_poll_records=2000)
    tps = [TopicPartition(OBSERVATIONS, p) for p in sorted(consumer.partitions_for_topic(OBSERVATIONS) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen = 0
    try:
        started = Timing.now()
        while seen < expected:
            for recs in consumer.poll(timeout_ms=1000).values():
                seen += len(recs)
        return Timing.now() - started
    finally:
        consumer.close()


class _AssignmentClock(_Revocations):
    """Notes when the group handed the processor its partitions: the end of joining, which is start-up."""

    assigned_at: Timing | None = None

    def on_partitions_assigned(self, assigned: Any) -> None:
        if self.assigned_at is None:
            self.assigned_at = Timing.now()


class _TimedService(ProcessorService):
    """Times the processor over the raw loop's window: from the moment its partitions are assigned (the raw loop's
    ``assign``) to the end of its final state checkpoint (a long run writes one every ``state_flush_interval_s``).
    Joining the group and restoring state (an empty state topic here) are start-up, not throughput, and are left
    out; consuming the first batch is not (it happens inside the poll that returns it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = _AssignmentClock()
        self._listener = self.clock
        self.restoring = Timing(0.0, 0.0)
        self.finished = Timing(0.0, 0.0)

    def _restore(self, partitions: set[int]) -> Any:
        started = Timing.now()
        try:
            return super()._restore(partitions)
        finally:
            self.restoring += Timing.now() - started

    def _final_flush(self) -> None:
        super()._final_flush()
        self.finished = Timing.now()


def _processor_run(cfg: KafkaConfig, codec: Codec, group: str, expected: int) -> tuple[Timing, int]:
    """(the run up to its last commit, its state checkpoint included; transitions)."""
    service = _TimedService(
        ProcessorConfig(group_id=group, instance_id=group), KafkaClients(cfg), codec, Metrics(CollectorRegistry())
    )
    processed = service.run(once=True)
    assert processed == expected, (processed, expected)
    assigned = service.clock.assigned_at
    assert assigned is not None
    return service.finished - assigned - service.restoring, service.transitions


def _produce(cfg: KafkaConfig, codec: Codec, observations: list[events.Observation]) -> float:
    sink = KafkaSink(make_producer(cfg, linger_ms=20, batch_size=512 * 1024), codec)
    t0 = time.perf_counter()
    for obs in observations:
        sink.emit(obs)
    sink.close()
    return time.perf_counter() - t0


def _recreate_topics(cfg: KafkaConfig) -> None:
    """Delete every qwatch topic and create it anew (empty): the warm-up leaves nothing behind."""
    admin = make_admin(cfg)
    try:
        names = [spec.name for spec in ALL_TOPICS]
        admin.delete_topics([n for n in names if n in set(admin.list_topics())])
        deadline = time.monotonic() + 60
        while set(admin.list_topics()) & set(names):
            if time.monotonic() > deadline:
                raise TimeoutError("the warm-up topics were not deleted within 60 s")
            time.sleep(0.2)
        while True:  # a topic can be listed as gone a moment before its name is free again
            try:
                create_topics(admin)
                break
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        admin.close()


def _warm_up(broker: LocalBroker, cfg: KafkaConfig, codec: Codec, observations: list[events.Observation]) -> float:
    """A throwaway pass of the processor over other observations, then empty topics again; the broker CPU seconds
    it cost.

    A freshly started broker JIT-compiles its transactional, compressed produce path during the first seconds of
    such load: the same processor run cost the broker 2.7 s of CPU on a fresh JVM and 1.0 s on a warm one, on a
    two-core machine where the processor needs most of the other core. A deployed broker is warm; timing the
    processor against a cold one charged it for the JVM's start-up, which the raw loop (a plain fetch) barely
    pays."""
    started = _broker_cpu_s(broker)
    _produce(cfg, codec, observations)
    _processor_run(cfg, codec, "bench-warm-up", len(observations))
    raw_consume(cfg, len(observations))
    _recreate_topics(cfg)
    return _broker_cpu_s(broker) - started


def _broker_cpu_s(broker: LocalBroker) -> float:
    """CPU seconds the broker JVM has used so far (user + system), from /proc; 0 where that is not readable."""
    if broker.process is None:
        return 0.0
    try:
        fields = Path(f"/proc/{broker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _e2e_round(
    observations: list[events.Observation], codec: Codec, warm_up: list[events.Observation] | None
) -> dict[str, float]:
    """One round on a fresh broker, warmed up first unless ``warm_up`` is None: produce the stream, consume it raw,
    run the processor from empty state (with its default settings), then once more with a new group over the state
    the first run checkpointed (a full replay: everything is a duplicate)."""
    with tempfile.TemporaryDirectory(prefix="qwatch-bench-") as tmp:
        broker = LocalBroker(Path(tmp) / "kafka")
        broker.start()
        try:
            cfg = KafkaConfig(bootstrap=broker.bootstrap)
            admin = make_admin(cfg)
            create_topics(admin)
            admin.close()
            warm_cpu = _warm_up(broker, cfg, codec, warm_up) if warm_up is not None else 0.0
            produce_s = _produce(cfg, codec, observations)
            cpu0 = _broker_cpu_s(broker)
            raw = raw_consume(cfg, len(observations))
            cpu1 = _broker_cpu_s(broker)
            fresh, transitions = _processor_run(cfg, codec, "bench-fresh", len(observations))
            cpu2 = _broker_cpu_s(broker)
            replay, replay_transitions = _processor_run(cfg, codec, "bench-replay", len(observations))
        finally:
            broker.stop()
    assert replay_transitions == 0, "a full replay must emit nothing"
    return {
        "produce": produce_s,
        "raw": raw.wall,
        "fresh": fresh.wall,
        "replay": replay.wall,
        "raw_cpu": raw.cpu,
        "fresh_cpu": fresh.cpu,
        "transitions": transitions,
        "broker_cpu_warm_up": warm_cpu,
        "broker_cpu_raw": cpu1 - cpu0,
        "broker_cpu_fresh": cpu2 - cpu1,
    }


def bench_e2e(
    observations: list[events.Observation], warm_up: list[events.Observation] | None, rounds: int = 3
) -> dict[str, Any]:
    """``rounds`` rounds (``_e2e_round``), each on its own broker; the best time of each side is kept, the same
    number of tries for the raw loop and for the processor, so one hiccup on either side does not decide the
    ratio (on a shared two-core machine a run can take half as long again as the next one)."""
    codec = Codec()
    runs = [_e2e_round(observations, codec, warm_up) for _ in range(rounds)]
    best = {k: min(r[k] for r in runs) for k in ("produce", "raw", "fresh", "replay", "raw_cpu", "fresh_cpu")}
    n = len(observations)
    raw, fresh, replay = best["raw"], best["fresh"], best["replay"]
    return {
        "observations": n,
        "rounds": rounds,
        "produce_per_s": round(n / best["produce"]),
        "raw_consume_per_s": round(n / raw),
        "processor_per_s": round(n / fresh),
        "ratio": round(raw / fresh, 3),
        "ratio_per_round": [round(r["raw"] / r["fresh"], 3) for r in runs],
        "target_ratio": RATIO_TARGET,
        "meets_target": raw / fresh >= RATIO_TARGET,
        "transitions": int(runs[0]["transitions"]),
        "replay_per_s": round(n / replay),
        "replay_ratio": round(raw / replay, 3),
        "cpu_ratio": round(best["raw_cpu"] / best["fresh_cpu"], 3),
        "cpu_ratio_per_round": [round(r["raw_cpu"] / r["fresh_cpu"], 3) for r in runs],
        "cpu_s": {"raw": round(best["raw_cpu"], 3), "processor": round(best["fresh_cpu"], 3)},
        "raw_consume_per_cpu_s": round(n / best["raw_cpu"]),
        "processor_per_cpu_s": round(n / best["fresh_cpu"]),
        "broker": "warmed up" if warm_up is not None else "cold (fresh JVM)",
        "broker_cpu_s_per_round": [
            {k[len("broker_cpu_") :]: round(r[k], 2) for k in r if k.startswith("broker_cpu_")} for r in runs
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--observations", type=int, default=200_000, help="core benchmark stream length")
    parser.add_argument("--e2e-observations", type=int, default=60_000, help="end-to-end stream length")
    parser.add_argument("--projects", type=int, default=5_000)
    parser.add_argument("--mix", action="append", choices=sorted(MIXES), help="default: every mix")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end rounds, each on its own broker")
    parser.add_argument(
        "--cold-broker", action="store_true", help="time against a freshly started broker JVM (no warm-up pass)"
    )
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "mixes": {name: MIXES[name] for name in args.mix or MIXES},
        "notes": [
            "core: step() over the stream with a dict of states, best of 3 passes from empty state, with the GC "
            "thresholds `qwatch process` sets (processors/tuning.py); default_gc is one pass with CPython defaults",
            "e2e: from partitions assigned to the last commit (the processor's group join and state restore left "
            "out); processor = consume + decode + core + encode + transactional produce "
            "of transitions, watch requests and checkpointed states + offsets; raw = a plain read_committed "
            "kafka-python poll loop over the same topic, same run, same client defaults",
            "e2e cpu_ratio: the same ratio from this process's CPU seconds (all its threads) in the same windows, "
            "which leave out what the machine gave to other work",
            "e2e broker: each round starts its own broker and, unless --cold-broker, first runs the processor once "
            "over 20,000 other observations and recreates the topics empty, so that both sides are timed against "
            "a broker whose transactional produce path is compiled (_warm_up)",
        ],
    }
    default_gc: dict[str, int] = {}
    streams = {name: Workload(7, args.projects, MIXES[name]).take(args.observations) for name in args.mix or MIXES}
    for name, stream in streams.items():
        default_gc[name] = bench_core(stream, rounds=1)["observations_per_s"]
    tune_gc()  # as `qwatch process` runs
    for name, stream in streams.items():
        core = bench_core(stream)
        core["observations_per_s_default_gc"] = default_gc[name]
        entry: dict[str, Any] = {"core": core}
        print(
            f"[{name}] core: {core['observations_per_s']:,} observations/s ({default_gc[name]:,} with CPython's "
            f"default GC; target > {CORE_TARGET:,}); transitions {core['transitions']:,}, outcomes {core['outcomes']}"
        )
        if not args.skip_e2e:
            warm_up = None if args.cold_broker else Workload(99, args.projects, MIXES[name]).take(20_000)
            e2e = bench_e2e(stream[: args.e2e_observations], warm_up, args.rounds)
            entry["e2e"] = e2e
            print(
                f"[{name}] e2e: processor {e2e['processor_per_s']:,}/s vs raw consume {e2e['raw_consume_per_s']:,}/s"
                f" = {e2e['ratio']}x (target >= {RATIO_TARGET}x; rounds {e2e['ratio_per_round']}); full replay"
                f" {e2e['replay_per_s']:,}/s ="
                f" {e2e['replay_ratio']}x; produce {e2e['produce_per_s']:,}/s; CPU-time ratio {e2e['cpu_ratio']}x"
                f" (rounds {e2e['cpu_ratio_per_round']}); broker {e2e['broker']}, its CPU s"
                f" {e2e['broker_cpu_s_per_round']}"
            )
        result[name] = entry
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
