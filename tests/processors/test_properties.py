"""Order-independence of the processor core, as properties over generated package histories.

These are the older, scenario-shaped properties; tests/simulation/ checks the same rules (processors/README.md,
S1-S7) against an independent reference model. Here, with the journal as authority:

* The journal rows and the report changes keep their own order (one writer each); pages and hints go anywhere,
  with any duplicates. Every such interleaving gives the same set of transition ids (leaving out
  REPORT_ESCALATED, whose presence depends on arrival order by design), the same final status, and the same
  final severity of every report live at the end.
* The weak form adds re-fetches and pages after unrelated serial bumps: no id twice, no change lost.
* Replay: after any order, feeding the whole history again emits nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core import step
from qwatch import events
from qwatch.events.state import PackageStateRecord
from testing.samples import T0, index, journal, json_api, page, report

P = "demo"
NOW = T0 + 400 * 86_400_000
ACTIONS = (
    "quarantine", "clear", "archive", "unarchive", "remove", "register",
    "rel_quarantine", "rel_clear", "rel_remove", "yank", "unyank",
    "report_add", "report_modify", "report_withdraw", "report_reinstate",
    "hint",
)  # fmt: skip
WEAK_ONLY = ("refetch", "release_then_page")


@dataclass
class History:
    """Generates one package's observations from a list of upstream actions, keeping upstream consistent."""

    strong: bool
    serial: int = 1000
    t: int = T0
    status: str = "active"
    release_q: bool = False
    yanked: bool = False
    removed_release: bool = False
    report: str | None = None
    day: int = 0
    obs: list[events.Observation] = field(default_factory=list)
    floors: dict[int, int] = field(default_factory=dict)
    """Page index → index of the status change before the one the page shows (-1: none)."""
    changes: list[int] = field(default_factory=lambda: [-1])
    """Indexes of the status-changing observations so far."""

    def row(self, action: str, version: str | None = None) -> None:
        self.serial += 1
        if version is None:
            self.changes.append(len(self.obs))
        self.obs.append(journal(P, self.serial, action, version, ts=self.t))

    def page(self, status: str, delay: int = 30_000, changes_status: bool = False) -> None:
        if changes_status:
            self.changes.append(len(self.obs))
        self.floors[len(self.obs)] = self.changes[-2] if len(self.changes) > 1 else -1
        self.obs.append(page(P, status, None if status == "absent" else self.serial, self.t + delay))

    def rep(self, change: str, affected: Sequence[str] = ("1.0",)) -> None:
        self.day += 1
        stamp = f"2026-{1 + self.day // 28:02d}-{1 + self.day % 28:02d}T00:00:00Z"
        self.obs.append(report(P, "MAL-2026-7", change, stamp, f"c{self.day}", T0 + self.day * 3_600_000, affected))

    def act(self, action: str, with_page: bool) -> None:  # noqa: C901 - one branch per upstream action
        self.t += 600_000
        s = self.status
        if action == "quarantine" and s in ("active", "archived"):
            self.row("project quarantined")
            self.status = "quarantined"
        elif action == "clear" and s == "quarantined":
            self.row("project quarantine cleared")
            self.status = "active"
        elif action == "archive" and s == "active":
            self.status = "archived"
            self.page("archived", 0, changes_status=True)
            return
        elif action == "unarchive" and s == "archived":
            self.status = "active"
            self.page("active", 0, changes_status=True)
            return
        elif action == "remove" and s != "removed":
            self.row("remove project")
            self.status = "removed"
        elif action == "register" and s == "removed":
            self.row("create")
            self.status = "active"
        elif action == "rel_quarantine" and s in ("active", "archived") and not self.release_q:
            self.row("release quarantined", "2.0")
            self.release_q = True
            return
        elif action == "rel_clear" and self.release_q and s != "removed":
            self.row("release quarantine cleared", "2.0")
            self.release_q = False
            return
        elif action == "rel_remove" and s in ("active", "archived") and not self.removed_release:
            self.row("remove release", "4.0")
            self.removed_release = True
            return
        elif action in ("yank", "unyank") and s in ("active", "archived") and self.yanked != (action == "yank"):
            self.row("yank release" if action == "yank" else "unyank release", "3.0")
            self.yanked = action == "yank"
            return
        elif action.startswith("report_"):
            self._report(action)
            return
        elif action == "hint":
            self.obs.append(index(P, s not in ("quarantined", "removed"), self.t + 1))
            gone = s in ("quarantined", "removed")
            self.obs.append(json_api(P, 404, None, self.t + 2) if gone else index(P, True, self.t + 3))
            return
        elif action == "refetch":
            self.page("absent" if s == "removed" else s, 45_000)
            return
        elif action == "release_then_page" and s in ("active", "archived"):
            self.row("new release", "5.0")
            self.page(s, 10_000)
            return
        else:
            return
        if with_page and (self.status != "removed" or not self.strong):
            self.page("absent" if self.status == "removed" else self.status)

    def _report(self, action: str) -> None:
        if action == "report_add" and self.report is None:
            self.report = "live"
            self.rep("added")
        elif action == "report_modify" and self.report == "live":
            self.rep("modified", ("1.0", f"1.{self.day}"))
        elif action == "report_withdraw" and self.report == "live":
            self.report = "withdrawn"
            self.rep("withdrawn")
        elif action == "report_reinstate" and self.report == "withdrawn":
            self.report = "live"
            self.rep("reinstated")


def build(actions: Sequence[str], pages: Sequence[bool], strong: bool) -> History:
    h = History(strong)
    h.row("create")
    h.page("active")
    for i, action in enumerate(actions):
        h.act(action, pages[i % len(pages)] if pages else True)
    return h


@dataclass
class Outcome:
    ids: list[str]
    kinds: Counter[str]
    status: str
    state: PackageStateRecord | None
    severity: dict[str, str]
    """Final severity of each report: the highest of its REPORTED and REPORT_ESCALATED (S6)."""


LEVELS = ("low", "medium", "high", "critical")


def process(observations: Sequence[events.Observation], state: PackageStateRecord | None = None) -> Outcome:
    """Ids and kinds leave out REPORT_ESCALATED, whose presence depends on arrival order by design (S4); the
    final severity it leads to does not, and is compared instead."""
    ids: list[str] = []
    kinds: Counter[str] = Counter()
    severity: dict[str, str] = {}
    for obs in observations:
        result = step(state, obs, NOW)
        state = result.state
        for t in result.transitions:
            if t.report_id is not None and t.kind in ("REPORTED", "REPORT_ESCALATED"):
                old = severity.get(t.report_id, "low")
                severity[t.report_id] = max(old, t.severity, key=LEVELS.index)
            if t.kind != "REPORT_ESCALATED":
                ids.append(t.event_id)
                kinds[t.kind] += 1
    live = {r.report_id for r in state.reports if r.status == "live"} if state is not None else set()
    severity = {rid: level for rid, level in severity.items() if rid in live}  # S4: reports live at the end
    return Outcome(ids, kinds, state.status if state is not None else "unknown", state, severity)


def _ordered_class(obs: events.Observation, journal_in_order: bool) -> str | None:
    """Observations that keep their relative order: each class has one writer that delivers in order."""
    if isinstance(obs, events.ReportObserved):
        return "report"
    if isinstance(obs, events.JournalEntryObserved):
        return "journal"  # one writer, in serial order: an older row after a newer one is a replay (S3)
    return None


def shuffle(
    history: History,
    priorities: list[int],
    dups: list[tuple[int, int]],
    strong: bool,
) -> list[events.Observation]:
    """Interleave the sources: report changes in commit order and release rows in serial order (one writer each);
    in the strong form also project journal rows in serial order, with no page overtaking more than one status
    change; in the weak form project rows and pages in any order. Then duplicates anywhere after the first copy."""
    observations = history.obs
    n = len(observations)
    prio = [priorities[i % len(priorities)] if priorities else 0 for i in range(n)]
    classes = [_ordered_class(o, strong) for o in observations]
    slots: dict[str, list[int]] = {}
    for i, c in enumerate(classes):
        if c is not None:
            slots.setdefault(c, []).append(prio[i])
    iters = {c: iter(sorted(v)) for c, v in slots.items()}
    keyed = sorted(((next(iters[c]) if c is not None else prio[i], i) for i, c in enumerate(classes)))
    order = [i for _, i in keyed]
    if strong:
        for i in range(n):  # canonical order: a page's floor is repaired before the page
            floor = history.floors.get(i, -1)
            if floor >= 0 and order.index(i) < order.index(floor):
                order.remove(i)
                order.insert(order.index(floor) + 1, i)
    out = [observations[i] for i in order]
    for src, dst in dups:
        obs = observations[src % n]
        first = out.index(obs)
        out.insert(first + 1 + dst % (len(out) - first), obs)
    return out


EXAMPLES = settings(max_examples=max(settings.default.max_examples, 1500))
"""Order bugs hide in rare interleavings: at least 1500 examples even in the quick profile (about 10 s)."""

actions = st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=18)
weak_actions = st.lists(st.sampled_from(ACTIONS + WEAK_ONLY), min_size=1, max_size=18)
pages = st.lists(st.booleans(), min_size=1, max_size=8)
priorities = st.lists(st.integers(0, 60), min_size=1, max_size=40)
dups = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), max_size=6)


@EXAMPLES
@given(actions, pages, priorities, dups)
def test_strong_any_interleaving_yields_the_same_set_of_transition_ids(
    acts: list[str], with_pages: list[bool], prio: list[int], dup: list[tuple[int, int]]
) -> None:
    history = build(acts, with_pages, strong=True)
    canonical = process(history.obs)
    shuffled = process(shuffle(history, prio, dup, strong=True))
    assert len(shuffled.ids) == len(set(shuffled.ids)), "an id was emitted twice"
    assert set(shuffled.ids) == set(canonical.ids)
    assert shuffled.status == canonical.status
    assert shuffled.severity == canonical.severity


@EXAMPLES
@given(weak_actions, pages, priorities, dups)
def test_weak_any_order_loses_no_change_and_repeats_no_id(
    acts: list[str], with_pages: list[bool], prio: list[int], dup: list[tuple[int, int]]
) -> None:
    history = build(acts, with_pages, strong=False)
    canonical = process(history.obs)
    shuffled = process(shuffle(history, prio, dup, strong=False))
    assert len(shuffled.ids) == len(set(shuffled.ids)), "an id was emitted twice"
    assert not canonical.kinds - shuffled.kinds, "a change was lost"
    assert shuffled.status == canonical.status


@given(weak_actions, pages, priorities, dups)
def test_replaying_everything_after_any_order_emits_nothing(
    acts: list[str], with_pages: list[bool], prio: list[int], dup: list[tuple[int, int]]
) -> None:
    history = build(acts, with_pages, strong=False)
    first = process(shuffle(history, prio, dup, strong=False))
    assert process(history.obs, first.state).ids == []


def test_the_generator_produces_every_kind() -> None:
    """Guards the properties against a generator that silently stopped exercising some kinds."""
    everything = [
        "archive", "unarchive", "quarantine", "clear", "rel_quarantine", "rel_clear", "rel_remove", "yank",
        "unyank", "report_add", "report_modify", "report_withdraw", "report_reinstate", "remove", "register",
    ]  # fmt: skip
    kinds = process(build(everything, [True], strong=True).obs).kinds
    assert set(kinds) == {
        "ARCHIVED", "UNARCHIVED", "QUARANTINED", "CLEARED", "RELEASE_QUARANTINED", "RELEASE_CLEARED",
        "RELEASE_REMOVED", "YANKED", "REPORTED", "REPORT_UPDATED", "REPORT_WITHDRAWN", "REMOVED", "RESTORED",
    }  # fmt: skip
