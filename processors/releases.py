"""Release-level facts: quarantine, removal and yank of single versions.

Each dimension of a release is last-writer-wins by PyPI serial. The journal is the only source of release-level
transitions: each of its release rows is one change and yields one transition keyed by (version, serial), in
either authority (README, S3). Pages and the JSON API only keep the state current with what they can prove without
ambiguity (a version shown with every file yanked is yanked, a version shown at all is not quarantined), which the
gate reads; they never emit: a first look cannot tell an old yank from a new one (S2), and a version that
*disappears* from a page proves nothing (quarantined, removed or its files deleted all look the same).
"""

from __future__ import annotations

from collections.abc import Iterable

from processors.draft import Draft, Pending
from processors.reports import escalate
from qwatch import events
from qwatch.events import kinds as k
from qwatch.events.state import ReleaseRecord

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


def _store(d: Draft, version: str, dim: str, value: bool, serial: int) -> bool:
    """Last-writer-wins by serial for one dimension of one release; True when the stored value changed."""
    rels = d.release_map()
    rel = rels.get(version) or ReleaseRecord(version)
    current_serial: int | None = getattr(rel, _SERIAL_FIELD[dim])
    if current_serial is not None and serial <= current_serial:
        return False
    if getattr(rel, dim) == value and current_serial is not None:
        return False
    rels[version] = _with(rel, dim, value, serial)
    d.note("applied")
    return True


def on_journal(d: Draft, obs: events.JournalEntryObserved, action: str) -> None:
    """A journal row about one release: one change, one transition keyed ``(version, serial)`` (README, S3).

    The row decides even when a page at a higher serial already showed its effect: that page is state, the row
    is the event. (The core has already dropped rows at or below the journal high-water mark as replays.)"""
    dim, value, kind = JOURNAL_ACTIONS[action]
    version = obs.version or ""
    d.see_serial(obs.serial)
    _store(d, version, dim, value, obs.serial)
    d.note("applied")
    if kind is None:
        return
    eid = d.transition_id(kind, version, obs.serial)
    if d.emitted(eid):
        if d.add_evidence([eid], obs.timestamp):
            d.note("evidence")
        return
    summary = k.describe(kind, d.base.ecosystem, d.base.package, version, None, f"serial {obs.serial}, {obs.source}")
    d.decide(Pending(kind, eid, (d.sighting(),), obs.timestamp, summary, version=version))


def on_listing(d: Draft, serial: int, shown: Iterable[str], yanked: Iterable[str]) -> None:
    """What a page or the JSON API shows at ``serial``: the versions it lists and those fully yanked.

    State only, never a transition: a view cannot tell an old yank from a new one (the first look at a popular
    project shows years of yanks), and the journal row that made each change is the change (README, S2 and S3)."""
    yanked_set = set(yanked)
    if not yanked_set and not d.base.releases and d.releases is None:
        return  # nothing yanked now and no release with a state that being listed could change
    rels = d.release_map()
    for version in yanked_set:
        _store(d, version, "yanked", True, serial)
    for version in shown:
        rel = rels.get(version)
        if rel is None or version in yanked_set:
            continue
        if rel.yanked:
            _store(d, version, "yanked", False, serial)
        if rel.quarantined:
            _store(d, version, "quarantined", False, serial)


def on_page_versions(d: Draft, obs: events.ProjectStatusObserved) -> None:
    """Installable versions of a 200 page: remembered (current, and as served for exposure), then the yank and
    quarantine flags they show."""
    serial = obs.last_serial
    if serial is None:
        return
    # Most pages repeat the installable list already remembered (and so already in seen_versions): skip the set
    # work for them on this hot path.
    if (obs.versions != d.visible_versions or not d.seen_versions) and d.see_versions(obs.versions):
        escalate(d)
    if d.visible_serial is None or serial >= d.visible_serial:
        if d.visible_versions != obs.versions or d.visible_serial != serial:
            d.visible_versions, d.visible_serial = obs.versions, serial
            d.note("applied")
    on_listing(d, serial, obs.versions, obs.yanked_versions)


def on_json(d: Draft, obs: events.ReleasesObserved) -> None:
    """The JSON API's releases (a 200): yank flags, presence of a version clears its quarantine, and versions with
    files are versions PyPI serves (exposure)."""
    if d.see_versions([r.version for r in obs.releases if r.first_upload is not None]):
        escalate(d)
    if obs.last_serial is None:
        return
    yanked = [r.version for r in obs.releases if r.yanked]
    if yanked or d.base.releases:
        on_listing(d, obs.last_serial, [r.version for r in obs.releases], yanked)
