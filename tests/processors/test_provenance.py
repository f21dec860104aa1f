"""Provenance drift in the processor against an independent reference model, over generated release histories.

The reference reads the rules as the issue states them, with none of the processor's machinery (no draft, no
records, no shared drift module): first sight is a baseline; then each newly seen file is judged against the
three latest releases with files uploaded before its release. Properties on top: a replay adds nothing, the
transitions do not depend on how the new releases were split into snapshots, and the state survives the codec.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core import step
from qwatch import events
from qwatch.events.codec import Codec
from qwatch.events.state import PackageStateRecord
from testing.samples import T0, provenance

P = "demo"
MIN = 60_000
NOW = T0 + 10_000 * MIN

File = tuple[str, "str | None", str] | tuple[str, "str | None", str, int]
Release = tuple[str, int, list[File]]


def _snapshot(releases: Sequence[Release], at: int) -> events.ProvenanceObserved:
    """Minutes after T0 → epoch ms, for releases and for files with an upload time of their own."""
    absolute = [
        (v, T0 + m * MIN, [(*f[:3], T0 + f[3] * MIN) if len(f) > 3 else f for f in files])  # type: ignore[misc]
        for v, m, files in releases
    ]
    return provenance(P, absolute, T0 + at * MIN)


def _feed(
    snapshots: Sequence[events.ProvenanceObserved], state: PackageStateRecord | None = None
) -> tuple[PackageStateRecord | None, list[events.Transition]]:
    out: list[events.Transition] = []
    for obs in snapshots:
        result = step(state, obs, NOW)
        state = result.state
        out.extend(result.transitions)
    return state, out


def _key(t: events.Transition) -> tuple[str, str | None]:
    return (t.kind, t.version)


# ------------------------------------------------------------------ the reference model
def reference(snapshots: Sequence[Sequence[Release]]) -> set[tuple[str, str, str]]:
    """(kind, version, file-or-identity-or-"") for every drift the issue's rules imply."""

    def upload(release_minute: int, file: tuple[object, ...]) -> int:
        return int(file[3]) if len(file) > 3 else release_minute  # type: ignore[call-overload]

    # version -> (release upload minute, {filename: (repo, state, file upload minute)})
    known: dict[str, tuple[int, dict[str, tuple[str | None, str, int]]]] = {}
    since: int | None = None
    found: set[tuple[str, str, str]] = set()
    for snap in snapshots:
        if since is None:
            since = max((upload(m, f) for _, m, files in snap for f in files), default=0)
            for version, minute, files in snap:
                have = known.setdefault(version, (minute, {}))[1]
                have.update({f[0]: (f[1], f[2], upload(minute, f)) for f in files})
            continue
        for version, minute, files in sorted(snap, key=lambda r: (r[1], r[0])):
            have = known.setdefault(version, (minute, {}))[1]
            new = [(f[0], f[1], f[2], upload(minute, f)) for f in files if f[0] not in have]
            have.update({name: (repo, s, up) for name, repo, s, up in new})
            news = [f for f in new if f[3] > since]
            if not news:
                continue
            for name, repo, s, _ in news:
                if repo is not None and s != "ok":
                    found.add(("PROVENANCE_INVALID", version, name))
            for _name, repo, s, at in news:
                # The releases uploaded before this one, as they were when this file was uploaded.
                then = {
                    v: {n: (r, st_) for n, (r, st_, up) in fs.items() if up <= at}
                    for v, (m, fs) in known.items()
                    if v != version and (m, v) < (minute, version)
                }
                prior = sorted((known[v][0], v) for v, fs in then.items() if fs)
                recent = [then[v] for _, v in prior[-3:]]
                if not recent:
                    continue
                if repo is None and all(all(r is not None for r, _ in fs.values()) for fs in recent):
                    found.add(("PROVENANCE_LOST", version, ""))
                before = {r for fs in recent for r, st_ in fs.values() if r is not None and st_ == "ok"}
                if before and repo is not None and s == "ok" and repo not in before:
                    found.add(("PROVENANCE_CHANGED", version, repo))
    return found


def _observed(transitions: list[events.Transition]) -> set[tuple[str, str, str]]:
    out = set()
    for t in transitions:
        assert t.version is not None
        if t.kind == "PROVENANCE_INVALID":
            key = t.summary.split(": ", 1)[0].rsplit("(", 1)[-1]
        elif t.kind == "PROVENANCE_CHANGED":
            key = t.summary.split("attested by GitHub ", 1)[1].split(" ", 1)[0]
        else:
            key = ""
        out.add((t.kind, t.version, key))
    return out


# ------------------------------------------------------------------ generated histories
REPOS = st.sampled_from([None, "org/a", "org/a", "org/b"])
STATES = st.sampled_from(["ok", "ok", "ok", "digest", "signature"])


@st.composite
def histories(draw: st.DrawFn) -> list[list[Release]]:
    """Cumulative snapshots: a baseline prefix, then releases appearing one or two at a time; some second files
    of a release show up only in the last snapshot (a wheel uploaded after the sdist)."""
    count = draw(st.integers(2, 7))
    releases: list[Release] = []
    late: dict[str, File] = {}
    for i in range(count):
        version = f"1.{i}"
        files = [(f"demo-{version}-{j}.tar.gz", draw(REPOS), draw(STATES)) for j in range(draw(st.integers(1, 2)))]
        if len(files) == 2 and draw(st.booleans()):
            late[version] = files.pop()
        releases.append((version, 10 * (i + 1), files))
    base = draw(st.integers(1, count - 1))
    snapshots = [releases[:base]]
    shown = base
    while shown < count:
        shown = min(count, shown + draw(st.integers(1, 2)))
        snapshots.append(releases[:shown])
    if late:
        after = 10 * count + 5  # minutes: uploaded after every release shown so far
        extra = {v: (*f, after) for v, f in late.items()}
        snapshots.append([(v, m, [*files, *([extra[v]] if v in extra else [])]) for v, m, files in releases])
    return snapshots


@settings(max_examples=300, deadline=None)
@given(histories())
def test_the_processor_agrees_with_the_reference(snapshots: list[list[Release]]) -> None:
    obs = [_snapshot(s, 1000 + i) for i, s in enumerate(snapshots)]
    _, transitions = _feed(obs)
    assert _observed(transitions) == reference(snapshots)
    ids = [t.event_id for t in transitions]
    assert len(ids) == len(set(ids)), "a drift was emitted twice"


@settings(max_examples=150, deadline=None)
@given(histories())
def test_replay_adds_nothing_and_the_split_does_not_matter(snapshots: list[list[Release]]) -> None:
    obs = [_snapshot(s, 1000 + i) for i, s in enumerate(snapshots)]
    state, transitions = _feed(obs)
    _, again = _feed(obs, state)
    assert again == []
    # The same releases after the baseline, all in one snapshot: the same transitions, same ids.
    _, together = _feed([obs[0], _snapshot(snapshots[-1], 5000)])
    assert sorted(t.event_id for t in together) == sorted(t.event_id for t in transitions)


def test_a_late_file_of_a_known_release_is_judged_once() -> None:
    one = ("1.0", 1, [("demo-1.0.tar.gz", "org/a", "ok")])
    sdist = ("1.1", 10, [("demo-1.1.tar.gz", "org/a", "ok")])
    both = ("1.1", 10, [("demo-1.1.tar.gz", "org/a", "ok"), ("demo-1.1-py3-none-any.whl", None, "ok")])
    state, first = _feed([_snapshot([one], 100), _snapshot([one, sdist], 101)])
    assert first == []
    _, late = _feed([_snapshot([one, both], 102), _snapshot([one, both], 103)], state)
    assert [(t.kind, t.version, t.severity) for t in late] == [("PROVENANCE_LOST", "1.1", "high")]
    assert "demo-1.1-py3-none-any.whl" in late[0].summary and "org/a" in late[0].summary


def test_state_with_provenance_survives_the_codec() -> None:
    history = [
        [("1.0", 1, [("demo-1.0.tar.gz", "org/a", "ok")])],
        [("1.0", 1, [("demo-1.0.tar.gz", "org/a", "ok")]), ("1.1", 5, [("demo-1.1.tar.gz", None, "ok")])],
    ]
    state, _ = _feed([_snapshot(s, 100 + i) for i, s in enumerate(history)])
    assert state is not None and [r.version for r in state.provenance] == ["1.0", "1.1"]
    codec = Codec()
    assert codec.decode(codec.encode(state)) == state
    assert state.provenance_since == T0 + MIN
