"""Provenance drift in the processor: ProvenanceObserved → PROVENANCE_LOST / _CHANGED / _INVALID, once each.

The rule itself is ``qwatch.provenance.drift`` (shared with the gate); this module keeps the per-release record
and decides what is news:

* **First sight is a baseline** (S2): the first snapshot of a project's provenance is recorded silently, and the
  newest upload time in it becomes ``provenance_since``. From then on a file is news when it was uploaded after
  that time (or, without an upload time, when its release was not known before). A file is judged once, when it
  first appears: provenance on PyPI is fixed at upload, so a later snapshot cannot change the verdict.
* **Order**: the releases of a snapshot are judged in upload order, each against the releases uploaded before it,
  so two new releases in one snapshot give the same transitions as the same releases in two snapshots.
* **Ids** are ``(kind, version, file or identity)``: one transition per release for LOST, per file for INVALID,
  per new identity for CHANGED.
"""

from __future__ import annotations

from processors.draft import Draft, Pending
from qwatch import events
from qwatch.events import kinds as k
from qwatch.events.state import MAX_PROVENANCE, ProvenanceFileRecord, ProvenanceRecord
from qwatch.provenance.check import identity, invalid_reason
from qwatch.provenance.drift import FileView, ReleaseView, judge, order_key
from qwatch.provenance.verify import VERIFIED


def _file_record(f: events.FileProvenance) -> ProvenanceFileRecord:
    identities = tuple(sorted({identity(p) for p in f.publishers}))
    # The reason is evidence for a person; 300 characters keep a numpy-sized state (16 releases of 60 files) small.
    return ProvenanceFileRecord(f.filename, f.attested, identities, invalid_reason(f)[:300], f.upload_time)


def _view(r: ProvenanceRecord) -> ReleaseView:
    files = tuple(FileView(f.filename, f.attested, frozenset(f.identities), f.invalid, f.upload_time) for f in r.files)
    return ReleaseView(r.version, r.upload_time, files)


def _upload(release: events.ReleaseProvenance) -> int | None:
    times = [f.upload_time for f in release.files if f.upload_time is not None]
    return min(times) if times else release.upload_time


def _signatures(files: list[events.FileProvenance]) -> str:
    """What the evidence says about signatures of the files judged: verified, or why not."""
    attested = [f for f in files if f.attested]
    if not attested:
        return ""
    if all(f.signature == VERIFIED for f in attested):
        return "signatures verified offline against Sigstore's trust root"
    unchecked = sorted({f.detail for f in attested if f.signature != VERIFIED and f.detail})
    return "; ".join(unchecked)[:300]


def on_provenance(d: Draft, obs: events.ProvenanceObserved) -> None:
    """Merge a provenance snapshot into the state and decide drift for the files that are news."""
    known: dict[str, ProvenanceRecord] = {r.version: r for r in d.provenance}
    releases = sorted(obs.releases, key=lambda r: order_key(ReleaseView(r.version, _upload(r), ())))
    baseline = d.provenance_since is None
    if baseline:
        uploads = [f.upload_time for r in obs.releases for f in r.files if f.upload_time is not None]
        d.provenance_since = max(uploads) if uploads else 0
    since = d.provenance_since or 0
    changed = baseline
    for release in releases:
        before = known.get(release.version)
        have = {f.filename for f in before.files} if before is not None else set()
        fresh = [f for f in release.files if f.filename not in have]
        if not fresh:
            continue
        upload = _upload(release)
        if before is not None and before.upload_time is not None:
            upload = before.upload_time if upload is None else min(upload, before.upload_time)
        record = ProvenanceRecord(
            release.version,
            upload,
            tuple(sorted((*(before.files if before else ()), *map(_file_record, fresh)), key=lambda f: f.filename)),
        )
        known[release.version] = record
        changed = True
        if baseline:
            continue
        news = [
            f
            for f in fresh
            if (f.upload_time is not None and f.upload_time > since) or (f.upload_time is None and before is None)
        ]
        if news:
            _decide(d, known, record, news)
    if changed:
        kept = sorted(known.values(), key=lambda r: order_key(_view(r)))
        d.provenance = tuple(kept[-MAX_PROVENANCE:])
        d.note("applied")


def _decide(
    d: Draft, known: dict[str, ProvenanceRecord], record: ProvenanceRecord, news: list[events.FileProvenance]
) -> None:
    this = _view(record)
    mine = order_key(this)
    others = (_view(r) for v, r in known.items() if v != record.version)
    earlier = [view for view in others if order_key(view) < mine]
    times = [f.upload_time for f in news if f.upload_time is not None]
    upstream = max(times) if times else d.obs.upstream_time
    signatures = _signatures(news)
    for drift in judge(earlier, this, [f.filename for f in news]):
        eid = d.transition_id(drift.kind, record.version, drift.key)
        if d.emitted(eid):
            d.add_evidence((eid,), upstream)
            d.note("evidence")
            continue
        detail = drift.detail if not signatures else f"{drift.detail}; {signatures}"
        summary = k.describe(drift.kind, d.base.ecosystem, d.base.package, record.version, None, detail)
        d.decide(Pending(drift.kind, eid, (d.sighting(),), upstream, summary, version=record.version))
