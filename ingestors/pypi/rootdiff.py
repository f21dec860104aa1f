"""Diff two root-index snapshots: which projects appeared, disappeared, or got a new ``_last-serial``.

Why it is written this way: PyPI has ~800k projects and usually only a few hundred change between polls. The
snapshots hold raw entries (see ``parse_root``), so the heavy part is two C-speed set differences; only the
entries that differ are decoded and normalized. A display-name respelling (``Foo`` → ``foo``) is the same
project, so an added and a removed name that normalize alike fold into one serial change (or nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingestors.pypi.parse_root import RootSnapshot, decode_entry
from qwatch.pypi.names import normalize


@dataclass(frozen=True, slots=True)
class RootDiff:
    """Changes keyed by normalized name: added → new serial, removed → old serial, changed → (old, new).

    ``unreadable`` holds changed entries that could not be decoded (capped), for the adapter to dead-letter.
    """

    added: dict[str, int | None] = field(default_factory=dict)
    removed: dict[str, int | None] = field(default_factory=dict)
    changed: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    unreadable: tuple[bytes, ...] = ()

    def __len__(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)


def _decode_all(entries: frozenset[bytes], bad: list[bytes]) -> dict[str, tuple[str, int | None]]:
    out: dict[str, tuple[str, int | None]] = {}
    for entry in entries:
        decoded = decode_entry(entry)
        if decoded is None:
            if len(bad) < 100:
                bad.append(entry[:300])
            continue
        out[normalize(decoded[0])] = decoded
    return out


def diff_roots(old: RootSnapshot, new: RootSnapshot) -> RootDiff:
    """Compare two snapshots; pure, linear in their size, decoding only what differs."""
    bad: list[bytes] = []
    before = _decode_all(old.entries - new.entries, [])
    after = _decode_all(new.entries - old.entries, bad)
    added: dict[str, int | None] = {}
    removed: dict[str, int | None] = {}
    changed: dict[str, tuple[int | None, int | None]] = {}
    for key, (_, serial) in after.items():
        if key not in before:
            added[key] = serial
        elif before[key][1] != serial:
            changed[key] = (before[key][1], serial)
    for key, (_, serial) in before.items():
        if key not in after:
            removed[key] = serial
    return RootDiff(added, removed, changed, tuple(bad))
