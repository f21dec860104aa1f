"""Release-level facts: quarantine, removal and yank of single versions.

Each dimension of a release is last-writer-wins by PyPI serial. The journal is the authority: each of its
release rows is one change and yields one transition keyed by (version, serial). Pages and the JSON API add what
they can prove without ambiguity: a version shown with every file yanked is yanked, a version shown at all is not
quarantined. A version that *disappears* from a page proves nothing (quarantined, removed or its files deleted
all look the same), so it yields no transition.
"""

from __future__ import annotations

from collections.abc import Iterable

from processors import kinds as k
from processors.draft import Draft, Pending
from processors.state import ReleaseRecord
from qwatch import events

JOURNAL_ACTIONS: dict[str, tuple[str, bool, str | None]] = {
    "release quarantined": ("quarantined", True, k.K_RELEASE_QUARANTINED),
    "release quarantine cleared": ("quarantined", False, k.K_RELEASE_CLEARED),
    "remove release": ("removed", True, k.K_RELEASE_REMOVED),
    "yank release": ("yanked", True, k.K_YANKED),
    "unyank release": ("yanked", False, None),
}
"""Journal action → (dimension, new value, transition kind or None)."""

_SERIAL_FIELD = {"quarantined": "quarantine_serial", "removed": "removed_serial", "yanked": "yank_serial"}


def _with(rel: ReleaseRecord, dim: str, value: bool, serial: int) -> ReleaseRecord:
    r = rel  # positional construction: dataclasses.replace costs several times as much
    if dim == "quarantined":
        return ReleaseRecord(r.version, value, serial, r.removed, r.removed_serial, r.yanked, r.yank_serial)
    if dim == "removed":
        return ReleaseRecord(r.version, r.quarantined, r.quarantine_serial, value, serial, r.yanked, r.yank_serial)
    return ReleaseRecord(r.version, r.quarantined, r.quarantine_serial, r.removed, r.removed_serial, value, serial)


def _set(
    d: Draft,
    version: str,
    dim: str,
    value: bool,
    serial: int,
    kind: str | None,
    explicit: bool,
    upstream_time: int | None,
) -> None:
    """Apply one release fact; ``explicit`` facts (journal rows) are changes even when the value looks the same."""
    rels = d.release_map()
    rel = rels.get(version) or ReleaseRecord(version)
    serial_field = _SERIAL_FIELD[dim]
    current_serial: int | None = getattr(rel, serial_field)
    current: bool = getattr(rel, dim)
    if current_serial is not None and serial <= current_serial:
        if current == value and kind is not None:
            # The same episode seen again or by another source (a page behind the journal row, or vice versa).
            if d.add_evidence([d.transition_id(kind, version, current_serial)], upstream_time):
                d.note("evidence")
            else:
                d.note("duplicate")
        else:
            d.note("stale")
        return
    if not explicit and current == value:
        return
    rels[version] = _with(rel, dim, value, serial)
    d.note("applied")
    if kind is None:
        return
    eid = d.transition_id(kind, version, serial)
    if d.emitted(eid):
        d.add_evidence([eid], upstream_time)
        return
    summary = k.describe(kind, d.base.ecosystem, d.base.package, version, None, f"serial {serial}, {d.obs.source}")
    d.decide(Pending(kind, eid, (d.sighting(),), upstream_time, summary, version=version))


def on_journal(d: Draft, obs: events.JournalEntryObserved, action: str) -> None:
    """A journal row about one release."""
    dim, value, kind = JOURNAL_ACTIONS[action]
    d.see_serial(obs.serial)
    _set(d, obs.version or "", dim, value, obs.serial, kind, True, obs.timestamp)


def on_listing(d: Draft, serial: int, shown: Iterable[str], yanked: Iterable[str], upstream_time: int | None) -> None:
    """What a page or the JSON API shows at ``serial``: the versions it lists and those fully yanked."""
    yanked_set = set(yanked)
    if not yanked_set and not d.base.releases and d.releases is None:
        return  # nothing yanked now and no release with a state that being listed could change
    rels = d.release_map()
    for version in yanked_set:
        _set(d, version, "yanked", True, serial, k.K_YANKED, False, upstream_time)
    for version in shown:
        rel = rels.get(version)
        if rel is None or version in yanked_set:
            continue
        if rel.yanked and (rel.yank_serial is None or serial > rel.yank_serial):
            _set(d, version, "yanked", False, serial, None, False, upstream_time)
        if rel.quarantined and (rel.quarantine_serial is None or serial > rel.quarantine_serial):
            _set(d, version, "quarantined", False, serial, k.K_RELEASE_CLEARED, False, upstream_time)


def on_page_versions(d: Draft, obs: events.ProjectStatusObserved) -> None:
    """Installable versions of a 200 page: remembered for severity, then checked for yanks and clearances."""
    serial = obs.last_serial
    if serial is None:
        return
    if d.visible_serial is None or serial >= d.visible_serial:
        if d.visible_versions != obs.versions or d.visible_serial != serial:
            d.visible_versions, d.visible_serial = obs.versions, serial
            d.note("applied")
    on_listing(d, serial, obs.versions, obs.yanked_versions, obs.upstream_time)


def on_json(d: Draft, obs: events.ReleasesObserved) -> None:
    """The JSON API's releases (a 200): yank flags, and presence of a version clears its quarantine."""
    if obs.last_serial is None:
        return
    yanked = [r.version for r in obs.releases if r.yanked]
    if yanked or d.base.releases:
        on_listing(d, obs.last_serial, [r.version for r in obs.releases], yanked, None)
