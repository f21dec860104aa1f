"""Rebuilding a partition's state: the compacted state topic, then a replay of the input since the checkpoint.

Both reads use ``read_committed`` and stop at the last stable offset, so an open transaction of a fenced
predecessor is never read; ``init_transactions`` has already aborted our own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from processors.batch import Batch
from processors.draft import JOURNAL
from processors.prefilter import JournalPrefilter
from qwatch.events.codec import Codec, SchemaError
from qwatch.events.state import PackageStateRecord, state_key
from qwatch.events.topics import OBSERVATIONS, STATE
from qwatch.kafka.clients import KafkaClients
from qwatch.sinks import Delivery

logger = logging.getLogger(__name__)


def _read(
    clients: KafkaClients, topic: str, starts: dict[int, int | None], ends: dict[int, int] | None, deadline: float
) -> dict[int, list[Any]]:
    """Records of ``topic`` partitions from ``starts`` (None: the beginning) to ``ends`` (None: the LSO)."""
    reader = clients.consumer(None, client_id=f"{clients.cfg.client_id}-processor-restore", max_poll_records=5000)
    out: dict[int, list[Any]] = {p: [] for p in starts}
    try:
        available = reader.partitions_for_topic(topic) or set()
        if not set(starts) <= available:
            raise RuntimeError(
                f"{topic} has partitions {sorted(available)}, {sorted(starts)} are needed: the state topic needs at "
                f"least as many partitions as {OBSERVATIONS}"
            )
        tps = {p: TopicPartition(topic, p) for p in starts}
        reader.assign(list(tps.values()))
        for p, tp in tps.items():
            start = starts[p]
            if start is None:
                reader.seek_to_beginning(tp)
            else:
                reader.seek(tp, start)
        stops = reader.end_offsets(list(tps.values())) if ends is None else {tps[p]: e for p, e in ends.items()}
        while any(reader.position(tp) < stops[tp] for tp in tps.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} partitions {sorted(starts)} took too long")
            for tp, recs in reader.poll(timeout_ms=500).items():
                out[tp.partition].extend(r for r in recs if r.offset < stops[tp])
    finally:
        reader.close()
    return out


def read_states(
    clients: KafkaClients, codec: Codec, partitions: set[int], deadline: float
) -> dict[int, dict[str, PackageStateRecord]]:
    """The last committed state record of every package on these state-topic partitions."""
    out: dict[int, dict[str, PackageStateRecord]] = {p: {} for p in partitions}
    for p, recs in _read(clients, STATE, dict.fromkeys(partitions), None, deadline).items():
        states = out[p]
        for rec in recs:
            key = rec.key.decode() if rec.key else ""
            if rec.value is None:
                states.pop(key, None)  # a tombstone
                continue
            try:
                state = codec.decode(rec.value)
            except SchemaError as exc:
                logger.error("unreadable state record %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, exc)
                continue
            if isinstance(state, PackageStateRecord):
                states[state_key(state.ecosystem, state.package)] = state
    return out


def replay(
    clients: KafkaClients,
    codec: Codec,
    partition: int,
    start: int,
    end: int,
    states: dict[str, PackageStateRecord],
    clock: Callable[[], int],
    deadline: float,
    authority: str = JOURNAL,
) -> set[str]:
    """Re-apply inputs [start, end) of one partition to ``states``; returns the packages changed (now dirty).

    The outputs are discarded: these records were processed and their outputs committed together with the
    offsets that brought the group past them. The core is deterministic, so the state comes out as it was.
    """
    records = _read(clients, OBSERVATIONS, {partition: start}, {partition: end}, deadline)[partition]
    batch = Batch(clock, authority)
    ignorable = JournalPrefilter(codec).ignorable
    for rec in records:
        if ignorable(rec.value):
            continue  # a journal row the core ignores, as when it was first processed
        try:
            event = codec.decode(rec.value) if rec.value is not None else None
        except SchemaError:
            continue  # dead-lettered when it was first processed
        batch.apply(Delivery(event, rec.topic, rec.partition, rec.offset, rec.key), states, partition)
    changed = {key: s for (_, key), s in batch.changed.items()}
    states.update(changed)
    return set(changed)
