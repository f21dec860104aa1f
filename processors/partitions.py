"""Per-partition bookkeeping of the Kafka processor: committed state, and how much of it the state topic holds.

State is checkpointed, not written on every change: a package's record goes to ``qwatch.state.v1`` when the
partition is flushed (every ``state_flush_interval_s``, or when the un-checkpointed input grows past
``state_max_replay`` records, and at a clean shutdown). Each transaction stores the partition's checkpoint in the
metadata of the input offset it commits, atomically with everything else: "the state topic reflects every input
before offset K". A restore reads the state topic and replays the input from K up to the committed offset through
the same core, discarding the outputs (they were committed with those offsets). Under a backlog this writes each
busy package once per interval instead of once per batch, which is most of the processor's produce cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qwatch.events.state import PackageStateRecord

CHECKPOINT_PREFIX = "qwatch-state-checkpoint="


def checkpoint_metadata(offset: int) -> str:
    """The offset-commit metadata recording a partition's state checkpoint."""
    return f"{CHECKPOINT_PREFIX}{offset}"


def parse_checkpoint(metadata: str | None) -> int | None:
    """The checkpoint in committed-offset metadata; None when absent (offsets committed by something else)."""
    if not metadata or not metadata.startswith(CHECKPOINT_PREFIX):
        return None
    try:
        return int(metadata[len(CHECKPOINT_PREFIX) :])
    except ValueError:
        return None


@dataclass
class Partition:
    """One assigned input partition."""

    number: int
    states: dict[str, PackageStateRecord] = field(default_factory=dict)
    next_offset: int | None = None
    """The committed input position (the next offset to process); None before anything was committed."""
    checkpoint: int | None = None
    """The state topic reflects every input before this offset (None: nothing processed yet)."""
    dirty: set[str] = field(default_factory=set)
    """Packages changed since the checkpoint: in memory and recoverable by replay, not on the state topic yet."""

    @property
    def unflushed(self) -> int:
        """Input records a restore would have to replay."""
        if self.next_offset is None or self.checkpoint is None:
            return 0
        return max(0, self.next_offset - self.checkpoint)
