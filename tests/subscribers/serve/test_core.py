"""``qwatch serve`` without a server: cursors, query validation, the SQLite view's paging, the JSON shapes, and the
stylesheet's contrast. The paging property is checked against a reference model, including the case the cursor
design exists for: a cursor from one replica (one interleaving of the partitions) used on another."""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core import step
from qwatch import events
from qwatch.events.codec import Codec
from qwatch.sinks import Delivery
from subscribers.serve import cursor as cursormod
from subscribers.serve import present
from subscribers.serve.app import FEED_PARAMS, STREAM_PARAMS, TRANSITION_PARAMS
from subscribers.serve.openapi import document
from subscribers.serve.query import BadRequest, Filters, multi, parse
from subscribers.serve.view import View
from testing import samples
from tests.fixture_paths import REPO

TOPIC = "t"
KINDS = ("QUARANTINED", "REPORTED", "YANKED", "CLEARED")
CODEC = Codec()


def transition(i: int, package: str, kind: str, severity: str = "high") -> events.Transition:
    return events.Transition(
        f"id-{i}",
        kind,
        "PyPI",
        package,
        severity,
        None,
        "MAL-2026-1" if kind == "REPORTED" else None,
        events.PackageState("active"),
        events.PackageState("quarantined", 100 + i),
        (events.Evidence(f"obs-{i}", "pypi-journal", 1_700_000_000_000),),
        1_700_000_000_000 + i,
        1_700_000_001_000 + i,
        f"summary {i}",
    )


# --- cursors ------------------------------------------------------------------------------------------------------


@given(st.dictionaries(st.integers(0, 300), st.integers(0, 2**62), max_size=64))
def test_cursor_round_trips(positions: dict[int, int]) -> None:
    assert cursormod.decode(cursormod.encode(positions)) == positions


@given(st.text(max_size=300))
def test_cursor_decode_rejects_garbage_with_cursor_error_only(token: str) -> None:
    try:
        cursormod.decode(token)
    except cursormod.CursorError:
        pass


@pytest.mark.parametrize("token", ["", "q1.", "q1.!!!", "abc", "q1." + "A" * 2000, "q1.MDox,MTox"])
def test_malformed_cursors(token: str) -> None:
    if token == "q1.":
        assert cursormod.decode(token) == {}
        return
    with pytest.raises(cursormod.CursorError):
        cursormod.decode(token)


# --- query parameters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"kinds": ["QUARANTINED"]}, "kinds"),
        ({"kind": ["QUARANTINE"]}, "kind"),
        ({"severity": ["urgent"]}, "severity"),
        ({"min_severity": ["low", "high"]}, "min_severity"),
        ({"limit": ["0"]}, "limit"),
        ({"limit": ["501"]}, "limit"),
        ({"limit": ["-1"]}, "limit"),
        ({"limit": ["1e3"]}, "limit"),
        ({"since": ["not-a-cursor"]}, "since"),
        ({"package": ["../etc/passwd"]}, "package"),
        ({"package": ["x" * 201]}, "package"),
        ({"package": [",".join(f"p{i}" for i in range(21))]}, "package"),
    ],
)
def test_bad_parameters_are_named(params: dict[str, list[str]], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse(params, TRANSITION_PARAMS)
    assert err.value.param == param and err.value.status == 400


def test_parameters_normalize_like_the_ingestors() -> None:
    q = parse(
        multi([("kind", "quarantined,reported"), ("package", "Trig_Guard"), ("ecosystem", "PYPI"), ("limit", "7")]),
        TRANSITION_PARAMS,
    )
    assert q.filters.kinds == {"QUARANTINED", "REPORTED"}
    assert q.filters.packages == {"trig-guard"} and q.filters.ecosystems == {"pypi"}
    assert q.limit == 7 and q.since is None


@given(st.dictionaries(st.text(max_size=12), st.lists(st.text(max_size=40), min_size=1, max_size=3), max_size=5))
def test_parse_raises_only_bad_request(params: dict[str, list[str]]) -> None:
    try:
        parse(params, TRANSITION_PARAMS)
    except BadRequest as exc:
        assert 400 <= exc.status < 500


# --- the view: paging against a reference model ----------------------------------------------------------------------


def build_view(directory: Path, arrival: list[tuple[int, int, events.Transition]], batches: int) -> View:
    view = View(directory, "test", TOPIC, CODEC)
    deliveries = [Delivery(t, TOPIC, p, o) for p, o, t in arrival]
    cut = sorted(random.Random(batches).sample(range(1, len(deliveries)), min(batches, len(deliveries) - 1)))
    for a, b in zip([0, *cut], [*cut, len(deliveries)], strict=True):
        view.apply(deliveries[a:b])
    return view


def interleave(
    parts: dict[int, list[tuple[int, events.Transition]]], rng: random.Random
) -> list[tuple[int, int, events.Transition]]:
    """One arrival order: each partition in offset order, partitions interleaved at random (as a consumer does)."""
    queues = {p: list(v) for p, v in parts.items()}
    out = []
    while any(queues.values()):
        p = rng.choice([p for p, q in queues.items() if q])
        o, t = queues[p].pop(0)
        out.append((p, o, t))
    return out


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    partitions=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    limit=st.integers(1, 9),
    kinds=st.sets(st.sampled_from(KINDS), max_size=2),
    packages=st.sets(st.sampled_from(("a", "b", "c")), max_size=2),
)
def test_paging_is_gapless_and_cursors_work_on_another_replica(
    n: int, partitions: int, seed: int, limit: int, kinds: set[str], packages: set[str]
) -> None:
    rng = random.Random(seed)
    parts: dict[int, list[tuple[int, events.Transition]]] = {p: [] for p in range(partitions)}
    offsets = dict.fromkeys(range(partitions), 0)
    for i in range(n):
        p = rng.randrange(partitions)
        offsets[p] += rng.choice((1, 1, 2))  # gaps: transaction markers, compacted or undecodable records
        parts[p].append((offsets[p], transition(i, rng.choice("abc"), rng.choice(KINDS))))
    filters = Filters(frozenset(kinds), frozenset(), frozenset(packages))
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        a_arrival, b_arrival = interleave(parts, rng), interleave(parts, rng)
        a = build_view(Path(d1), a_arrival, rng.randrange(1, 5)).reader()
        b = build_view(Path(d2), b_arrival, rng.randrange(1, 5)).reader()

        def wanted(arrival: list[tuple[int, int, events.Transition]]) -> list[str]:
            return [t.event_id for _p, _o, t in arrival if filters.matches(t.kind, t.ecosystem, t.package, t.severity)]

        # Paging replica A from the start returns exactly the matching rows, in A's arrival order.
        got, cursors, since = [], [], None
        while True:
            page = a.page(filters, since, limit)
            got += [r.body["event_id"] for r in page.rows]
            cursors.append((len(got), page.next))
            since = page.next
            if not page.more:
                break
        assert got == wanted(a_arrival)
        # The final cursor is A's head: nothing after it.
        assert a.page(filters, since, limit).rows == []
        # Every cursor A handed out, used on replica B, yields exactly the rows A had not returned yet.
        for seen, cur in cursors:
            rest = []
            nxt: dict[int, int] | None = cur
            while True:
                page = b.page(filters, nxt, limit)
                rest += [r.body["event_id"] for r in page.rows]
                nxt = page.next
                if not page.more:
                    break
            assert sorted(rest) == sorted(set(wanted(a_arrival)) - set(got[:seen]))
            assert len(rest) == len(set(rest))


def test_view_resumes_from_its_positions_and_rebuilds_for_another_source(tmp_path: Path) -> None:
    view = View(tmp_path, "source-1", TOPIC, CODEC)
    assert view.rebuilt_because == "no view on disk"
    view.apply([Delivery(transition(0, "a", "QUARANTINED"), TOPIC, 0, 5)])
    view.apply([Delivery(transition(0, "a", "QUARANTINED"), TOPIC, 0, 9)])  # a redelivered event: kept once
    assert view.positions() == {(TOPIC, 0): 10}
    view.close()
    again = View(tmp_path, "source-1", TOPIC, CODEC)
    assert again.rebuilt_because is None and again.positions() == {(TOPIC, 0): 10}
    assert again.reader().counts()["transitions"] == 1
    again.close()
    other = View(tmp_path, "source-2", TOPIC, CODEC)
    assert other.rebuilt_because == "it was built from another source" and other.positions() == {}


# --- what a package looks like ----------------------------------------------------------------------------------------


def test_package_shape_from_the_real_processor_core(tmp_path: Path) -> None:
    """State and transitions as the processor makes them: status from the state record, live report with its
    summary, history with evidence links, first seen and last change."""
    t0 = samples.T0
    observations = [
        samples.page("evil-pkg", "active", 100, t0, ("1.0", "1.1")),
        samples.report("evil-pkg", "MAL-2026-4750", "added", "2026-01-02T00:00:00Z", "15133d99ae23aa", t0 + 10_000),
        samples.journal("evil-pkg", 101, "project quarantined"),
    ]
    view = View(tmp_path, "x", TOPIC, CODEC)
    state = None
    offset = 0
    for obs in observations:
        result = step(state, obs, t0 + 60_000)
        state = result.state if result.state is not None else state
        batch = [Delivery(t, TOPIC, 0, offset + i) for i, t in enumerate(result.transitions)]
        offset += len(batch)
        if state is not None:
            batch.append(Delivery(state, "state", 0, offset))
        view.apply(batch)
    record = view.reader().package("pypi", "evil-pkg")
    assert record is not None
    links = present.Links("https://pypi.example", "https://osv.example")
    pkg = present.package(record, links)
    assert pkg["status"] == "quarantined"
    assert [t["kind"] for t in pkg["transitions"]] == ["REPORTED", "QUARANTINED"]
    assert pkg["last_transition"]["kind"] == "QUARANTINED" and pkg["severity"] == "high"
    assert [r["report_id"] for r in pkg["live_reports"]] == ["MAL-2026-4750"]
    assert "MAL-2026-4750 reports evil-pkg" in pkg["live_reports"][0]["summary"]
    assert pkg["live_reports"][0]["url"] == "https://osv.example/vulnerability/MAL-2026-4750"
    assert pkg["first_seen"] == present.iso(t0)
    evidence = pkg["last_transition"]["links"]["evidence"]
    assert {"label": "PyPI project page of evil-pkg", "url": "https://pypi.example/project/evil-pkg/"} in evidence
    assert any(e.get("serial") == 101 for e in evidence)
    assert view.reader().package("pypi", "nothing") is None


# --- OpenAPI and the stylesheet ---------------------------------------------------------------------------------------


def test_openapi_documents_every_accepted_parameter() -> None:
    doc = document(TRANSITION_PARAMS, STREAM_PARAMS, FEED_PARAMS)
    for path, names in (("/v1/transitions", TRANSITION_PARAMS), ("/feed.atom", FEED_PARAMS)):
        documented = {p["name"] for p in doc["paths"][path]["get"]["parameters"]}
        assert documented == set(names)
    stream = {p["name"] for p in doc["paths"]["/v1/stream"]["get"]["parameters"]}
    assert stream == {*STREAM_PARAMS, "Last-Event-ID"}


def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_every_colour_pair_in_the_stylesheet_meets_wcag_aa() -> None:
    css = (REPO / "subscribers" / "serve" / "static" / "style.css").read_text()
    pairs = []
    for selector, block in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        fg = re.search(r"(?<![-\w])color:\s*(#[0-9a-f]{6})", block)
        bg = re.search(r"background:\s*(#[0-9a-f]{6})", block)
        if fg:
            pairs.append((selector.strip(), fg.group(1), bg.group(1) if bg else "#ffffff"))
    assert len(pairs) >= 10
    for selector, fg, bg in pairs:
        assert contrast(fg, bg) >= 4.5, f"{selector}: {fg} on {bg} is {contrast(fg, bg):.2f}:1"


def test_the_cached_package_answer_follows_every_change(tmp_path: Path) -> None:
    """``/v1/packages`` reuses its rendered answer until the package's revision moves: a new transition, a new state
    record, or an inventory that starts (or stops) locking the package must each show at once."""
    from prometheus_client import CollectorRegistry

    from qwatch.events.outputs import InventoryPackage, InventoryRecord
    from subscribers.serve.app import Service
    from subscribers.serve.config import ServeConfig
    from subscribers.serve.metrics import ServeMetrics

    view = View(tmp_path, "x", TOPIC, CODEC)
    service = Service(ServeConfig(), view.reader(), ServeMetrics(CollectorRegistry()))
    view.apply([Delivery(transition(1, "a", "QUARANTINED"), TOPIC, 0, 0)])
    first = service.package_json("pypi", "a")
    assert first is not None and service.package_json("pypi", "a") is first  # reused while nothing changed
    view.apply([Delivery(transition(2, "a", "CLEARED", "low"), TOPIC, 0, 1)])
    second = service.package_json("pypi", "a")
    assert second is not None and b'"CLEARED"' in second and second != first

    def inventory(removed: bool) -> InventoryRecord:
        return InventoryRecord(
            "proj", "uv.lock", "uv", "proj", "fp", 1, removed, (InventoryPackage("a", "1.0", "pypi", None, True, None),)
        )

    view.apply([Delivery(inventory(False), "inv", 0, 0)])
    with_user = service.package_json("pypi", "a")
    assert with_user is not None and b'"project":"proj"' in with_user
    view.apply([Delivery(inventory(True), "inv", 0, 1)])
    without = service.package_json("pypi", "a")
    assert without is not None and b'"project":"proj"' not in without
    assert service.package_json("pypi", "nothing") is None
