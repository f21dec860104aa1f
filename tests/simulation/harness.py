"""Run the real core over interleavings of one seed's streams and compare with the reference model.

Per seed, per authority (``journal``: every source; ``pages``: no journal source), per package:

* ``set``: for every interleaving that keeps each source's own order, the set of
  (event id, kind, package, version, report id) emitted, REPORT_ESCALATED left out, equals the reference's (S3-S5);
* ``severity``: the final severity of every report with a REPORTED that is live at the end (highest of REPORTED
  / REPORT_ESCALATED) equals the reference's (S4, S6: a report withdrawn before the fact that would have
  escalated it arrived is not escalated, so its severity is not compared);
* ``duplicate-id``: no event id is emitted twice in one run (S3);
* ``fixed-severity``: every kind but REPORTED has S6's fixed severity;
* ``replay``: feeding a prefix again in the middle of a run, or the whole input again at its end, emits nothing,
  and the run still ends with the same set (S7);
* ``checkpoint``: a state encoded and decoded with ``qwatch.events.codec.Codec`` at a random point equals the original
  and continuing from it emits exactly what the uninterrupted run emitted from there (S7);
* ``exception``: the core raised.

A failure is shrunk (delta debugging over the failing interleaving, the reference recomputed on every subset) to
a short sequence that still fails the same way, and printed with its replay command.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from processors.core import step
from qwatch import events
from qwatch.events.codec import Codec
from qwatch.ids import event_id

from . import reference, streams, upstream
from .reference import FIXED_SEVERITY, LEVELS, Model
from .streams import PackageStreams

AUTHORITIES = (reference.JOURNAL, reference.PAGES)
ESCALATED = "REPORT_ESCALATED"
ALL_KINDS = (
    "QUARANTINED",
    "CLEARED",
    "REMOVED",
    "RESTORED",
    "ARCHIVED",
    "UNARCHIVED",
    "RELEASE_QUARANTINED",
    "RELEASE_CLEARED",
    "RELEASE_REMOVED",
    "YANKED",
    "REPORTED",
    "REPORT_UPDATED",
    "REPORT_WITHDRAWN",
    ESCALATED,
)
REPLAY_HINT = ".venv/bin/python -m tests.simulation.replay {seed}"
PYTEST_HINT = "QWATCH_SIM_SEED={seed} .venv/bin/pytest tests/simulation -k replay"

_CODEC: Codec | None = None


def codec() -> Codec:
    """The production codec, built once."""
    global _CODEC
    if _CODEC is None:
        _CODEC = Codec()
    return _CODEC


Ident = tuple[str, str, str, str | None, str | None]


def ident(t: events.Transition) -> Ident:
    """What S4 compares of a transition."""
    return (t.event_id, t.kind, t.package, t.version, t.report_id)


class CoreCrash(Exception):
    """The core raised on an observation."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(f"step() raised on observation {index}: {error!r}")
        self.index = index
        self.trace = "".join(traceback.format_exception(error))


@dataclass
class Run:
    """One pass of the core over a sequence."""

    transitions: list[events.Transition]
    per_step: list[tuple[events.Transition, ...]]
    states: list[events.PackageStateRecord | None]
    """The state before each observation, and after the last one."""


def run_core(seq: Sequence[events.Observation], authority: str, state: events.PackageStateRecord | None = None) -> Run:
    """Feed ``seq`` to ``step`` one observation at a time, as the batch loop does."""
    now = 0
    out: list[events.Transition] = []
    per_step: list[tuple[events.Transition, ...]] = []
    states: list[events.PackageStateRecord | None] = [state]
    for i, obs in enumerate(seq):
        now = max(now + 1, obs.observed_at + 1000)
        try:
            result = step(state, obs, now, authority=authority)
        except Exception as exc:  # noqa: BLE001 - any crash is a finding
            raise CoreCrash(i, exc) from exc
        state = result.state
        out.extend(result.transitions)
        per_step.append(result.transitions)
        states.append(state)
    return Run(out, per_step, states)


def final_severity(transitions: Iterable[events.Transition]) -> dict[str, str]:
    """Report id → the highest severity of its REPORTED and REPORT_ESCALATED."""
    out: dict[str, str] = {}
    for t in transitions:
        if t.report_id is not None and t.kind in ("REPORTED", ESCALATED):
            old = out.get(t.report_id, "low")
            out[t.report_id] = max(old, t.severity, key=LEVELS.index)
    return out


# -- interleavings ----------------------------------------------------------------------------------------------


def merge_random(rng: random.Random, sources: dict[str, list[events.Observation]]) -> list[events.Observation]:
    """A uniformly random interleaving that keeps each source's order."""
    pos = dict.fromkeys(sources, 0)
    left = {s: len(o) for s, o in sources.items()}
    out: list[events.Observation] = []
    while any(left.values()):
        names = [s for s in sources if left[s]]
        s = rng.choices(names, [left[n] for n in names])[0]
        out.append(sources[s][pos[s]])
        pos[s] += 1
        left[s] -= 1
    return out


def interleavings(ps: PackageStreams, rng: random.Random, randoms: int) -> list[tuple[str, list[events.Observation]]]:
    """Fetch-time order, one source-after-source order, and ``randoms`` random merges."""
    sources = {s: o for s, o in ps.sources.items() if o}
    everything = [o for obs in sources.values() for o in obs]
    out = [("fetch-time", sorted(everything, key=lambda o: o.observed_at))]
    names = list(sources)
    rng.shuffle(names)
    out.append(("sources:" + ">".join(names), [o for n in names for o in sources[n]]))
    out += [(f"random-{i}", merge_random(rng, sources)) for i in range(randoms)]
    return out


# -- failures ---------------------------------------------------------------------------------------------------


@dataclass
class Failure:
    """One check that failed on one package of one seed."""

    seed: int
    authority: str
    package: str
    check: str
    order: str
    items: tuple[str, ...]
    """What went wrong, one short item each ("missing ARCHIVED", "wrong-id RESTORED", ...): the failure class."""
    detail: str
    sequence: list[events.Observation]
    t0: int = upstream.T0
    minimal: list[events.Observation] | None = None
    minimal_detail: str = ""

    def classes(self) -> list[str]:
        """Failure classes: authority, check and item."""
        return [f"{self.authority} {self.check}: {item}" for item in self.items]

    def headline(self) -> str:
        """One line."""
        return (
            f"seed={self.seed} authority={self.authority} package={self.package} check={self.check} "
            f"order={self.order}: {'; '.join(self.items)}"
        )

    def render(self) -> str:
        """The headline, the replay commands, the (minimal) sequence and the diff."""
        seq = self.minimal if self.minimal is not None else self.sequence
        lines = [
            f"FAIL {self.headline()}",
            f"  replay: {REPLAY_HINT.format(seed=self.seed)}",
            f"      or: {PYTEST_HINT.format(seed=self.seed)}",
        ]
        what = "minimal sequence" if self.minimal is not None else "sequence"
        lines.append(f"  {what} ({len(seq)} of {len(self.sequence)} observations, in the failing order):")
        lines += ["    " + line for line in dump(seq, self.t0)]
        lines += ["    " + line for line in (self.minimal_detail or self.detail).splitlines()]
        return "\n".join(lines)


def dump(seq: Sequence[events.Observation], t0: int = upstream.T0) -> list[str]:
    """One readable line per observation."""
    return [f"#{i:<3} {describe(o, t0)}" for i, o in enumerate(seq)]


def describe(o: events.Observation, t0: int = upstream.T0) -> str:
    """An observation, for people."""
    at = f"t=+{(o.observed_at - t0) / 1000:.3f}s"
    if isinstance(o, events.JournalEntryObserved):
        v = f" version={o.version}" if o.version else ""
        return f"journal  {at} serial={o.serial} {o.action!r}{v}"
    if isinstance(o, events.ProjectStatusObserved):
        if o.http_status == 404:
            return f"simple   {at} 404 (absent)"
        yanked = f" yanked=[{','.join(o.yanked_versions)}]" if o.yanked_versions else ""
        return f"simple   {at} 200 {o.status} serial={o.last_serial} versions=[{','.join(o.versions)}]{yanked}"
    if isinstance(o, events.ReleasesObserved):
        if o.http_status != 200:
            return f"json     {at} {o.http_status}"
        rel = ",".join(
            r.version + ("(yanked)" if r.yanked else "") + ("" if r.first_upload is not None else "(no files)")
            for r in o.releases
        )
        return f"json     {at} 200 serial={o.last_serial} releases=[{rel}]"
    if isinstance(o, events.ReportObserved):
        aff = "ALL" if o.all_versions else ",".join(o.affected_versions)
        wd = " (withdrawn copy)" if reference.withdrawn_copy(o) else ""
        return (
            f"openssf  {at} {o.report_id} {o.change} affected=[{aff}] modified={o.modified} commit={o.commit[:8]}{wd}"
        )
    return f"{type(o).__name__} {at}"


def id_names(seq: Sequence[events.Observation], package: str) -> dict[str, str]:
    """Event ids the core might plausibly emit for these observations, named by kind and key (for diffs)."""
    serials: set[int] = {-1}
    pairs: set[tuple[object, ...]] = set()
    for o in seq:
        if isinstance(o, events.JournalEntryObserved):
            serials.add(o.serial)
            if o.version is not None:
                pairs.add((o.version, o.serial))
        elif isinstance(o, events.ProjectStatusObserved):
            if o.last_serial is not None:
                serials.add(o.last_serial)
                pairs.add((o.last_serial, o.observed_at))
            else:
                serials.add(reference.anchor(o, [p for p in seq if isinstance(p, events.ProjectStatusObserved)]))
        elif isinstance(o, events.ReportObserved):
            pairs.add((o.report_id, o.modified or o.commit))
            pairs.add((o.report_id, o.commit))
    keys: set[tuple[object, ...]] = set(pairs)
    for s in serials:
        keys.add((s,))
        keys.add(("after", s))
    names: dict[str, str] = {}
    for kind in ALL_KINDS:
        for key in keys:
            names[event_id("processor", "PyPI", package, kind, *key)] = f"{kind}{key!r}"
    return names


def _diff_text(
    model: Model, got: Sequence[events.Transition], seq: Sequence[events.Observation], package: str
) -> tuple[tuple[str, ...], str]:
    expected = {e.ident(): e for e in model.transitions.values()}
    actual = {ident(t): t for t in got if t.kind != ESCALATED}
    missing = [expected[i] for i in sorted(expected.keys() - actual.keys())]
    extra = [actual[i] for i in sorted(actual.keys() - expected.keys())]
    names = id_names(seq, package)
    index = {o.event_id: n for n, o in enumerate(seq)}
    items: list[str] = []
    lines: list[str] = []
    unmatched = list(extra)
    for e in missing:
        twin = next(
            (t for t in unmatched if (t.kind, t.version, t.report_id) == (e.kind, e.version, e.report_id)), None
        )
        if twin is not None:
            unmatched.remove(twin)
            items.append(f"wrong-id {e.kind}")
            lines.append(
                f"wrong id: {e.kind} expected key {e.key!r} ({e.why}), got {names.get(twin.event_id, twin.event_id)}"
            )
        else:
            items.append(f"missing {e.kind}")
            lines.append(f"expected, not emitted: {e.kind} key={e.key!r} ({e.why})")
    for t in unmatched:
        items.append(f"unexpected {t.kind}")
        ev = ",".join(f"#{index[x.observation_id]}" for x in t.evidence if x.observation_id in index)
        lines.append(
            f"emitted, not expected: {names.get(t.event_id, t.kind + ' id ' + t.event_id)} "
            f"severity={t.severity} version={t.version} report={t.report_id} evidence=[{ev}] summary={t.summary!r}"
        )
    return tuple(sorted(set(items))), "\n".join(lines)


# -- checks on one sequence -------------------------------------------------------------------------------------

Check = Callable[[Sequence[events.Observation], str], "tuple[tuple[str, ...], str] | None"]


def check_set(seq: Sequence[events.Observation], authority: str) -> tuple[tuple[str, ...], str] | None:
    """S3-S5: the emitted set equals the reference's."""
    model = reference.expect(seq, authority)
    got = run_core(seq, authority).transitions
    items, text = _diff_text(model, got, seq, seq[0].package)
    return (items, text) if items else None


Found = tuple[tuple[str, ...], str] | None


def severity_diff(model: Model, got: Sequence[events.Transition]) -> Found:
    """S6: the final severity of every reported report."""
    actual_levels = final_severity(got)
    items: list[str] = []
    lines: list[str] = []
    for rid, level in sorted(model.severity.items()):
        if rid not in model.live_at_end:
            continue
        actual = actual_levels.get(rid)
        if actual is not None and actual != level:
            live = "live at end" if rid in model.live_at_end else "not live at end"
            items.append(f"expected {level} got {actual} ({live})")
            lines.append(f"{rid}: final severity expected {level}, got {actual} ({live})")
    return (tuple(sorted(set(items))), "\n".join(lines)) if items else None


def duplicates(got: Sequence[events.Transition]) -> Found:
    """S3: one id once."""
    seen: set[str] = set()
    items: list[str] = []
    lines: list[str] = []
    for t in got:
        if t.event_id in seen:
            items.append(f"{t.kind} twice")
            lines.append(f"{t.kind} {t.event_id} emitted twice ({t.summary})")
        seen.add(t.event_id)
    return (tuple(sorted(set(items))), "\n".join(lines)) if items else None


def fixed_severity(got: Sequence[events.Transition]) -> Found:
    """S6's table for every kind but REPORTED."""
    bad = [t for t in got if t.kind in FIXED_SEVERITY and t.severity != FIXED_SEVERITY[t.kind]]
    if not bad:
        return None
    items = tuple(sorted({f"{t.kind} {t.severity} (spec {FIXED_SEVERITY[t.kind]})" for t in bad}))
    return items, "\n".join(f"{t.kind} severity {t.severity}: {t.summary}" for t in bad)


def check_severity(seq: Sequence[events.Observation], authority: str) -> Found:
    """S6 on one sequence."""
    return severity_diff(reference.expect(seq, authority), run_core(seq, authority).transitions)


def check_duplicates(seq: Sequence[events.Observation], authority: str) -> Found:
    """S3 (one id once) on one sequence."""
    return duplicates(run_core(seq, authority).transitions)


def check_fixed(seq: Sequence[events.Observation], authority: str) -> Found:
    """S6's fixed severities on one sequence."""
    return fixed_severity(run_core(seq, authority).transitions)


def check_replay_end(seq: Sequence[events.Observation], authority: str) -> tuple[tuple[str, ...], str] | None:
    """S7: the whole input again, after it, emits nothing."""
    first = run_core(seq, authority)
    again = run_core(seq, authority, first.states[-1]).transitions
    if not again:
        return None
    items = tuple(sorted({f"whole input again emits {t.kind}" for t in again}))
    return items, "\n".join(f"replayed: {t.kind} {t.event_id} ({t.summary})" for t in again)


CHECKS: dict[str, Check] = {
    "set": check_set,
    "severity": check_severity,
    "duplicate-id": check_duplicates,
    "fixed-severity": check_fixed,
    "replay": check_replay_end,
}


def shrink(
    seq: list[events.Observation], authority: str, check: Check, item: str, budget_s: float = 5.0
) -> tuple[list[events.Observation], str] | None:
    """Delta debugging: a shorter subsequence on which ``check`` still reports ``item`` (None: ``check`` does not
    report it on ``seq`` alone)."""
    deadline = time.monotonic() + budget_s

    def fails(candidate: list[events.Observation]) -> str | None:
        if not candidate:
            return None
        try:
            found = check(candidate, authority)
        except CoreCrash:
            return None
        except ValueError:
            return None
        return found[1] if found is not None and item in found[0] else None

    first = fails(seq)
    if first is None:
        return None
    detail = first
    n = 2
    while len(seq) >= 2 and time.monotonic() < deadline:
        chunk = max(1, len(seq) // n)
        reduced = False
        for start in range(0, len(seq), chunk):
            candidate = seq[:start] + seq[start + chunk :]
            found = fails(candidate)
            if found is not None:
                seq, detail, reduced = candidate, found, True
                n = max(n - 1, 2)
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(seq), n * 2)
    return seq, detail


def minimize(f: Failure, budget_s: float = 5.0) -> Failure:
    """Shrink ``f``'s sequence (in place) when its check can be re-run on a subsequence alone."""
    check = CHECKS.get(f.check)
    if check is not None and f.minimal is None:
        found = shrink(f.sequence, f.authority, check, f.items[0], budget_s)
        if found is not None:
            f.minimal, f.minimal_detail = found
    return f


# -- one seed ---------------------------------------------------------------------------------------------------


@dataclass
class SeedResult:
    """What one seed did."""

    seed: int
    interleavings: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No check failed."""
        return not self.failures


@dataclass(frozen=True)
class Budget:
    """How hard to look per package; CI, the bench and the replay all use the defaults, so a seed fails the same
    way in each."""

    randoms: int = 3
    """Random interleavings besides fetch-time order and one source-after-source order."""
    deep: int = 2
    """Interleavings that also get the replay and checkpoint checks."""
    shrink: bool = False
    """Shrink every failure as it is found (the replay does; sweeps shrink only what they print)."""
    shrink_s: float = 5.0


def _first_failure(
    seed: int, authority: str, package: str, label: str, seq: list[events.Observation], model: Model
) -> list[Failure]:
    """Every per-sequence check on one interleaving."""
    out: list[Failure] = []
    try:
        run = run_core(seq, authority)
    except CoreCrash as crash:
        return [
            Failure(
                seed,
                authority,
                package,
                "exception",
                label,
                (f"{crash}".split(":")[-1].strip()[:80],),
                crash.trace,
                seq,
            )
        ]
    items, text = _diff_text(model, run.transitions, seq, package)
    if items:
        out.append(Failure(seed, authority, package, "set", label, items, text, seq))
    for name, found in (
        ("severity", severity_diff(model, run.transitions)),
        ("duplicate-id", duplicates(run.transitions)),
        ("fixed-severity", fixed_severity(run.transitions)),
    ):
        if found is not None:
            out.append(Failure(seed, authority, package, name, label, found[0], found[1], seq))
    return out


def _deep_checks(
    seed: int, authority: str, package: str, label: str, seq: list[events.Observation], rng: random.Random
) -> list[Failure]:
    """Replay (a prefix in the middle, everything at the end) and checkpoint round trips on one interleaving."""
    out: list[Failure] = []
    try:
        plain = run_core(seq, authority)
    except CoreCrash:
        return out
    plain_set = {ident(t) for t in plain.transitions if t.kind != ESCALATED}
    # replay a prefix in the middle, then continue
    k = rng.randint(0, len(seq))
    j = rng.randint(0, k)
    try:
        mid = run_core(seq[:k], authority)
        again = run_core(seq[:j], authority, mid.states[-1])
        rest = run_core(seq[k:], authority, again.states[-1])
        at_end = run_core(seq, authority, rest.states[-1])
    except CoreCrash as crash:
        out.append(Failure(seed, authority, package, "exception", label, ("during replay",), crash.trace, seq))
        return out
    if again.transitions:
        out.append(
            Failure(
                seed,
                authority,
                package,
                "replay",
                label,
                tuple(sorted({f"prefix again emits {t.kind}" for t in again.transitions})),
                f"after #{k - 1}, observations #0..#{j - 1} again emitted: "
                + ", ".join(f"{t.kind} {t.event_id}" for t in again.transitions),
                seq,
            )
        )
    if at_end.transitions:
        out.append(
            Failure(
                seed,
                authority,
                package,
                "replay",
                label,
                tuple(sorted({f"whole input again emits {t.kind}" for t in at_end.transitions})),
                "the whole input again emitted: " + ", ".join(f"{t.kind} {t.event_id}" for t in at_end.transitions),
                seq,
            )
        )
    replayed_set = {ident(t) for t in mid.transitions + rest.transitions if t.kind != ESCALATED}
    if replayed_set != plain_set:
        lost = sorted(t[1] for t in plain_set - replayed_set)
        added = sorted(t[1] for t in replayed_set - plain_set)
        items = [f"after prefix replay lost {x}" for x in lost] + [f"after prefix replay added {x}" for x in added]
        out.append(
            Failure(
                seed,
                authority,
                package,
                "replay",
                label,
                tuple(items),
                f"prefix #0..#{j - 1} replayed after #{k - 1}: lost {lost}, added {added}",
                seq,
            )
        )
    # checkpoint: encode and decode the state at a random point, continue
    c = rng.randint(0, len(seq))
    state = plain.states[c]
    if state is not None:
        decoded = codec().decode(codec().encode(state))
        if decoded != state:
            out.append(
                Failure(
                    seed,
                    authority,
                    package,
                    "checkpoint",
                    label,
                    ("state changes in a codec round trip",),
                    f"state after #{c - 1} differs after encode/decode",
                    seq,
                )
            )
        try:
            cont = run_core(seq[c:], authority, decoded)
        except CoreCrash as crash:
            out.append(Failure(seed, authority, package, "exception", label, ("after restore",), crash.trace, seq))
            return out
        want = [(t.event_id, t.kind, t.severity) for t in plain.transitions[sum(len(s) for s in plain.per_step[:c]) :]]
        got = [(t.event_id, t.kind, t.severity) for t in cont.transitions]
        if want != got:
            out.append(
                Failure(
                    seed,
                    authority,
                    package,
                    "checkpoint",
                    label,
                    ("restored run emits differently",),
                    f"restored after #{c - 1}: expected {want}, got {got}",
                    seq,
                )
            )
    return out


def run_seed(seed: int, budget: Budget = Budget(), authorities: Sequence[str] = AUTHORITIES) -> SeedResult:
    """Generate, stream, interleave, run and compare one seed. The outcome depends on the seed and the budget's
    ``randoms`` and ``deep`` only, so the replay command reproduces a failure exactly."""
    tl = upstream.generate(seed)
    per_package = streams.build(tl)
    result = SeedResult(seed)
    for authority in authorities:
        for package in tl.packages:
            rng = random.Random(f"{seed}:{authority}:{package}:orders")
            ps = per_package[package]
            if authority == reference.PAGES:
                ps = ps.without(streams.JOURNAL)
            everything = ps.all()
            if not everything:
                continue
            model = reference.expect(everything, authority)
            seen_classes: set[tuple[str, str]] = set()
            for n, (label, seq) in enumerate(interleavings(ps, rng, budget.randoms)):
                result.interleavings += 1
                found = _first_failure(seed, authority, package, label, seq, model)
                if n < budget.deep:
                    found += _deep_checks(seed, authority, package, label, seq, rng)
                for f in found:
                    key = (f.check, f.items[0])
                    if key in seen_classes:
                        continue
                    seen_classes.add(key)
                    if budget.shrink:
                        minimize(f, budget.shrink_s)
                    result.failures.append(f)
    return result
