"""``qwatch serve`` end to end: the real broker feeds a real ``qwatch serve`` process with transitions and state made
by the real processor core; the API, the cursors, both feeds (parsed by feedparser), the SSE stream (resumed with
Last-Event-ID by httpx-sse), bad input, a restart and a rebuild of the view, and a real browser (Debian's
chromium, headless) reading the analysts' page and a package page."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import feedparser
import httpx
import jsonschema
import pytest
from httpx_sse import connect_sse
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.admin import NewTopic

from processors.core import step
from qwatch import events
from qwatch.config import KafkaConfig
from qwatch.events.codec import Codec
from qwatch.events.outputs import InventoryPackage, InventoryRecord
from qwatch.kafka.io import KafkaSink, make_admin, make_producer
from testing import samples
from tests.serve_support import Served, serve

pytestmark = pytest.mark.kafka

KNOWN = {"/project/evil-pkg/", "/vulnerability/MAL-2026-4750"}


def story(first_serial: int) -> tuple[list[events.Transition], list[events.PackageStateRecord]]:
    """Observations through the real processor core: a reported-then-quarantined package, a removed typo-squat, a
    yanked release, and filler packages quarantined and cleared."""
    t0 = samples.T0
    flows: dict[str, list[events.Observation]] = {
        "evil-pkg": [
            samples.page("evil-pkg", "active", first_serial, t0, ("1.0", "1.1")),
            samples.report(
                "evil-pkg", "MAL-2026-4750", "added", "2026-01-02T00:00:00Z", "15133d99ae23aa", t0 + 9000, ("1.1",)
            ),
            samples.journal("evil-pkg", first_serial + 1, "project quarantined"),
        ],
        "typo-squat": [
            samples.page("typo-squat", "active", first_serial + 2, t0),
            samples.journal("typo-squat", first_serial + 3, "project quarantined"),
            samples.journal("typo-squat", first_serial + 4, "remove project"),
        ],
        "demo": [
            samples.page("demo", "active", first_serial + 5, t0, ("1.0", "1.1")),
            samples.journal("demo", first_serial + 6, "yank release", "1.0"),
        ],
    }
    for i in range(8):
        name, s = f"filler-{i}", first_serial + 10 + 3 * i
        flows[name] = [
            samples.page(name, "active", s, t0),
            samples.journal(name, s + 1, "project quarantined"),
            samples.journal(name, s + 2, "project quarantine cleared"),
        ]
    transitions: list[events.Transition] = []
    states: list[events.PackageStateRecord] = []
    for flow in flows.values():
        state = None
        for obs in flow:
            result = step(state, obs, t0 + 60_000)
            state = result.state if result.state is not None else state
            transitions += result.transitions
            if state is not None:
                states.append(state)
    return transitions, states


def more_transitions(n: int, tag: str) -> list[events.Transition]:
    """Quarantines of fresh packages, produced while streams are open."""
    out = []
    for i in range(n):
        name = f"live-{tag}-{i}"
        state = step(None, samples.page(name, "active", 9000 + i, samples.T0), samples.T0).state
        result = step(state, samples.journal(name, 9500 + i, "project quarantined"), samples.T0 + 1000)
        out += [
            events.Transition(**{**{f: getattr(t, f) for f in t.__slots__}, "detected_at": int(time.time() * 1000)})
            for t in result.transitions
        ]
    return out


class Topics:
    """The three topics of one test module, on the session broker."""

    def __init__(self, cfg: KafkaConfig) -> None:
        tag = uuid.uuid4().hex[:8]
        self.transitions, self.state, self.inventory = (f"serve-{n}-{tag}" for n in ("t", "s", "i"))
        compact = {"cleanup.policy": "compact"}
        admin = make_admin(cfg)
        try:
            admin.create_topics(
                [
                    NewTopic(self.transitions, 3, 1),
                    NewTopic(self.state, 3, 1, topic_configs=compact),
                    NewTopic(self.inventory, 1, 1, topic_configs=compact),
                ]
            )
        finally:
            admin.close()
        self.sink = KafkaSink(make_producer(cfg), Codec())

    def env(self) -> dict[str, str]:
        return {
            "QWATCH_SERVE_TRANSITIONS_TOPIC": self.transitions,
            "QWATCH_SERVE_STATE_TOPIC": self.state,
            "QWATCH_SERVE_INVENTORY_TOPIC": self.inventory,
        }

    def send(self, transitions: list[events.Transition], states: list[events.PackageStateRecord] = ()) -> None:  # type: ignore[assignment]
        for t in transitions:
            self.sink.emit(t, self.transitions)
        for s in states:
            self.sink.emit(s, self.state)
        self.sink.flush(30)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """Stands in for pypi.org and osv.dev (no internet here): 200 for the pages the evidence links should name."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path in KNOWN else 404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>upstream</body></html>")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def world(kafka_cfg: KafkaConfig, upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    topics = Topics(kafka_cfg)
    transitions, states = story(100)
    topics.send(transitions, states)
    inventory = InventoryRecord(
        "acme-app",
        "uv.lock",
        "uv",
        "acme-app",
        "fp1",
        samples.T0,
        False,
        (
            InventoryPackage("alpha", "2.0", "pypi", None, True, "acme-app"),
            InventoryPackage("evil-pkg", "1.1", "pypi", None, False, "alpha"),
        ),
    )
    topics.sink.emit(inventory, topics.inventory)
    topics.sink.flush(30)
    state_dir = tmp_path_factory.mktemp("serve-state")
    env = {
        **topics.env(),
        "QWATCH_SERVE_PYPI_URL": upstream,
        "QWATCH_SERVE_OSV_URL": upstream,
        "QWATCH_SERVE_RATE_LIMIT": "0",
        "QWATCH_SERVE_KEEPALIVE": "1",
    }
    args = ("--bootstrap", kafka_cfg.bootstrap, "--state-dir", str(state_dir))
    with serve(*args, env=env, ready_transitions=len(transitions)) as served:
        yield {
            "served": served,
            "topics": topics,
            "transitions": transitions,
            "env": env,
            "args": args,
            "state_dir": state_dir,
            "upstream": upstream,
        }
    topics.sink.close()


def test_package_api_current_state_history_and_users(world: dict[str, Any]) -> None:
    s: Served = world["served"]
    r = s.get("/v1/packages/pypi/Evil_Pkg")  # ecosystem case and name spelling as users type them
    assert r.status_code == 200, r.text
    pkg = r.json()
    assert pkg["package"] == "evil-pkg" and pkg["ecosystem"] == "PyPI" and pkg["status"] == "quarantined"
    assert [t["kind"] for t in pkg["transitions"]] == ["REPORTED", "QUARANTINED"]
    assert pkg["live_reports"][0]["report_id"] == "MAL-2026-4750"
    assert "reports evil-pkg (PyPI) as malicious" in pkg["live_reports"][0]["summary"]
    assert pkg["inventories"] == [
        {"project": "acme-app", "lockfile": "uv.lock", "version": "1.1", "path": ["acme-app", "alpha", "evil-pkg"]}
    ]
    assert pkg["first_seen"] and pkg["last_change"] == pkg["transitions"][-1]["detected_at"]
    assert s.get("/v1/packages/PyPI/demo").json()["yanked_versions"] == ["1.0"]
    assert s.get("/v1/packages/PyPI/typo-squat").json()["status"] == "removed"
    missing = s.get("/v1/packages/PyPI/never-heard-of")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == 404


def test_transitions_page_with_cursors_and_filters(world: dict[str, Any]) -> None:
    s: Served = world["served"]
    produced = [t.event_id for t in world["transitions"]]
    got, since = [], ""
    while True:
        body = s.get("/v1/transitions", params={"limit": "4", **({"since": since} if since else {})}).json()
        got += [i["event_id"] for i in body["items"]]
        since = body["next"]
        if not body["more"]:
            break
    # Live transitions from other tests may follow; the module's own story comes first, whole and once.
    assert got[: len(produced)] == got[: len(produced)] and sorted(got[: len(produced)]) == sorted(produced)
    assert len(got) == len(set(got))
    quarantines = s.get("/v1/transitions", params={"kind": "quarantined", "package": "Typo_Squat"}).json()["items"]
    assert [(i["kind"], i["package"]) for i in quarantines] == [("QUARANTINED", "typo-squat")]


JSON_FEED_1_1 = {
    # From https://www.jsonfeed.org/version/1.1/ : the fields this server emits, with the spec's types and requirements.
    "type": "object",
    "required": ["version", "title", "items"],
    "properties": {
        "version": {"const": "https://jsonfeed.org/version/1.1"},
        "title": {"type": "string"},
        "home_page_url": {"type": "string", "format": "uri"},
        "feed_url": {"type": "string", "format": "uri"},
        "description": {"type": "string"},
        "authors": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "anyOf": [{"required": ["content_text"]}, {"required": ["content_html"]}],
                "properties": {
                    "id": {"type": "string"},
                    "url": {"type": "string", "format": "uri"},
                    "external_url": {"type": "string", "format": "uri"},
                    "title": {"type": "string"},
                    "content_text": {"type": "string"},
                    "summary": {"type": "string"},
                    "date_published": {"type": "string", "format": "date-time"},
                    "date_modified": {"type": "string", "format": "date-time"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}


def test_feeds_parse_and_link_to_package_pages_and_evidence(world: dict[str, Any]) -> None:
    s: Served = world["served"]
    takedowns = {
        f"urn:qwatch:transition:{t.event_id}"
        for t in world["transitions"]
        if t.kind in ("QUARANTINED", "REMOVED", "REPORTED")
    }
    r = s.get("/feed.atom", params={"ecosystem": "PyPI", "limit": "500"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(r.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10" and feed.feed.title.startswith("quarantine-watch")
    assert takedowns <= {e.id for e in feed.entries}
    assert all(e.id.startswith("urn:qwatch:transition:") for e in feed.entries)
    assert not any("CLEARED" in e.title for e in feed.entries)  # takedowns and reports only, by default
    evil = next(e for e in feed.entries if e.title.startswith("REPORTED evil-pkg"))
    assert evil.link == s.url.rstrip("/") + "/packages/PyPI/evil-pkg"
    assert world["upstream"] + "/vulnerability/MAL-2026-4750" in {link.href for link in evil.links}
    only_removed = feedparser.parse(s.get("/feed.atom", params={"kind": "REMOVED"}).content)
    assert [e.title for e in only_removed.entries if "typo-squat" in e.title] == ["REMOVED typo-squat (medium)"]

    # feedparser (6.0.14, the newest release) reads no JSON Feed: check it against the 1.1 spec's fields instead.
    jf = s.get("/feed.json", params={"ecosystem": "PyPI", "limit": "500"})
    assert jf.headers["content-type"].startswith("application/feed+json")
    doc = jf.json()
    jsonschema.validate(doc, JSON_FEED_1_1, format_checker=jsonschema.FormatChecker())
    assert takedowns <= {i["id"] for i in doc["items"]}
    item = next(i for i in doc["items"] if i["title"].startswith("REPORTED evil-pkg"))
    assert item["url"] == evil.link and item["external_url"] == world["upstream"] + "/vulnerability/MAL-2026-4750"


def _read(events_: Iterator[Any], n: int, timeout: float) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    for sse in events_:
        if sse.event == "transition":
            out.append(sse)
            if len(out) == n:
                return out
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"only {len(out)} of {n} events within {timeout}s")


def test_stream_resumes_with_last_event_id_without_gap_or_duplicate(world: dict[str, Any]) -> None:
    s: Served = world["served"]
    topics: Topics = world["topics"]
    first, second = more_transitions(6, "a"), more_transitions(6, "b")
    url = s.url.rstrip("/") + "/v1/stream"
    with httpx.Client(timeout=httpx.Timeout(10, read=5)) as client:
        with connect_sse(client, "GET", url, params={"kind": "QUARANTINED"}) as src:
            assert src.response.status_code == 200
            topics.send(first)
            head = _read(src.iter_sse(), 4, 20)
        last_id = head[-1].id
        topics.send(second)  # while disconnected
        with connect_sse(client, "GET", url, params={"kind": "QUARANTINED"}, headers={"Last-Event-ID": last_id}) as src:
            stream = src.iter_sse()
            rest = _read(stream, 8, 20)
            # Nothing more may follow (a repeat would show up here): keep-alives arrive every second.
            extra = []
            deadline = time.monotonic() + 1.5
            for sse in stream:
                if sse.event == "transition":
                    extra.append(sse)
                if time.monotonic() > deadline:
                    break
    got = [json.loads(e.data)["event_id"] for e in head + rest]
    assert extra == []
    assert len(got) == len(set(got)) == 12
    assert set(got) == {t.event_id for t in first + second}
    # Each partition's events arrive in offset order, so each package's order is kept; ids are cursors.
    assert all(e.id.startswith("q1.") for e in head + rest)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["kind", "package", "since", "limit", "severity", "min_severity", "ecosystem", "x", "q"]),
            st.text(max_size=60),
        ),
        max_size=4,
    ),
    st.sampled_from(["/v1/transitions", "/feed.atom", "/feed.json", "/v1/packages/PyPI/evil-pkg", "/", "/search"]),
)
def test_bad_input_is_a_4xx_never_a_5xx(world: dict[str, Any], params: list[tuple[str, str]], path: str) -> None:
    client = world.setdefault("client", httpx.Client(base_url=world["served"].url, timeout=10))
    r = client.get(path, params=params)
    assert r.status_code < 500, r.text
    if r.status_code >= 400 and not (path == "/" or path == "/search"):
        assert r.json()["error"]["status"] == r.status_code


def test_oversized_and_malformed_requests(world: dict[str, Any]) -> None:
    s: Served = world["served"]
    cases = [
        (s.get("/v1/transitions", params={"package": "a" * 5000}), 414),
        (s.get("/v1/transitions", params={"since": "q1.!!!"}), 400),
        (s.get("/v1/transitions", params={"kind": "QUARANTINED", "kinds": "X"}), 400),
        (s.get("/v1/stream", headers={"Last-Event-ID": "garbage"}), 400),
        (s.get("/v1/packages/PyPI/" + quote("../../etc")), 404),
        (s.get("/v1/packages/PyPI/bad name!"), 400),
        (s.get("/v1/nothing-here"), 404),
        (httpx.post(s.url + "v1/transitions", content=b"{}"), 405),
        (httpx.request("GET", s.url + "v1/transitions", content=b"x" * 100), 413),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.json()["error"]["status"] == status
    headers = s.get("/").headers
    assert "access-control-allow-origin" not in headers  # CORS is off unless configured
    assert headers["x-content-type-options"] == "nosniff" and "default-src 'none'" in headers["content-security-policy"]
    doc = s.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1") and "/v1/stream" in doc["paths"]


def test_keep_alive_requests_are_not_held_by_nagle(world: dict[str, Any]) -> None:
    """The listening socket says TCP, so asyncio sets TCP_NODELAY on each connection; without it every keep-alive
    response waited for the client's delayed ACK (40 ms) between its headers and its body (bench/serve.py found it)."""
    with httpx.Client(base_url=world["served"].url, timeout=10) as client:
        client.get("/v1/packages/PyPI/evil-pkg")
        times = []
        for _ in range(15):
            started = time.perf_counter()
            assert client.get("/v1/packages/PyPI/evil-pkg").status_code == 200
            times.append(time.perf_counter() - started)
    assert sorted(times)[len(times) // 2] < 0.03, f"median {sorted(times)[len(times) // 2] * 1000:.1f} ms"


def chromium() -> str:
    """The browser installed by scripts/install-chromium (a missing browser fails, with how to install it)."""
    path = os.environ.get("QWATCH_CHROMIUM") or str(
        Path(os.environ.get("QWATCH_CACHE_DIR", Path.home() / ".cache" / "quarantine-watch"))
        / "tools"
        / "bin"
        / "chromium"
    )
    assert Path(path).is_file(), f"no chromium at {path}: run 'bash scripts/install-chromium' (scripts/bootstrap does)"
    return path


def browse(url: str, shot: Path | None = None) -> str:
    """The DOM after load (``--dump-dom``), and a screenshot when ``shot`` names a file (kept as a CI artifact)."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-"))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ]
    dom = subprocess.run([chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0 and "<html" in dom.stdout, dom.stderr[-2000:]
    if shot is None:
        return dom.stdout
    done = subprocess.run([chromium(), *flags, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and shot.stat().st_size > 5000, done.stderr[-2000:]
    return dom.stdout


def test_a_browser_shows_the_package_status_last_transition_and_evidence(world: dict[str, Any], tmp_path: Path) -> None:
    s: Served = world["served"]
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.text: dict[str, str] = {}
            self.links: list[tuple[str, str]] = []
            self.labels: set[str] = set()
            self.controls: set[str] = set()
            self._stack: list[str | None] = []
            self._href: str | None = None
            self._buf: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "label" and a.get("for"):
                self.labels.add(str(a["for"]))
            if tag in ("input", "select") and a.get("type") != "hidden":
                self.controls.add(str(a.get("id")))
            if tag == "a":
                self._href, self._buf = a.get("href"), []
            self._stack.append(a.get("id"))
            if a.get("id"):
                self.text[str(a["id"])] = ""

        def handle_endtag(self, tag: str) -> None:
            if tag == "a" and self._href is not None:
                self.links.append((self._href, "".join(self._buf).strip()))
                self._href = None
            if self._stack:
                self._stack.pop()

        def handle_data(self, data: str) -> None:
            self._buf.append(data)
            for ident in filter(None, self._stack):
                self.text[ident] += data

    index = Page()
    index.feed(browse(s.url))
    assert index.controls and index.controls <= index.labels, "every form control has a label"
    assert ("/packages/PyPI/evil-pkg", "evil-pkg") in index.links

    page = Page()
    page.feed(browse(s.url.rstrip("/") + "/packages/PyPI/evil-pkg", tmp_path / "package.png"))
    assert page.text["status"].strip() == "quarantined"
    assert "QUARANTINED" in page.text["last-transition"] and "PyPI quarantined evil-pkg" in page.text["last-transition"]
    evidence = [href for href, _text in page.links if href.startswith(world["upstream"])]
    assert world["upstream"] + "/project/evil-pkg/" in evidence
    assert world["upstream"] + "/vulnerability/MAL-2026-4750" in evidence
    for href in set(evidence):
        assert httpx.get(href, timeout=5).status_code == 200, f"evidence link {href} does not resolve"
    assert "acme-app" in page.text["users"] or any("acme-app" in t for t in page.text.values())


def test_a_deleted_view_is_rebuilt_from_the_topics(world: dict[str, Any]) -> None:
    """Restart with the SQLite file gone: the same view again, read from the topics (restarting on an intact view
    resumes from its stored positions: tests/subscribers/serve/test_core.py)."""
    before = world["served"].get("/healthz").json()["view"]
    world["served"].proc.terminate()
    assert world["served"].proc.wait(20) == 0
    (world["state_dir"] / "serve" / "serve-view.sqlite3").unlink()
    with serve(*world["args"], env=world["env"], ready_transitions=before["transitions"]) as rebuilt:
        health = rebuilt.get("/healthz").json()
        assert health["rebuilt_because"] == "no view on disk" and health["view"] == before
        assert rebuilt.get("/v1/packages/PyPI/evil-pkg").json()["status"] == "quarantined"


def test_token_rate_limit_and_cors_settings(tmp_path: Path) -> None:
    replay = tmp_path / "replay.jsonl"
    codec = Codec()
    transitions, states = story(5000)
    replay.write_text("".join(json.dumps(codec.to_json_dict(e)) + "\n" for e in [*transitions, *states]))
    env = {
        "QWATCH_SERVE_TOKEN": "s3cret",
        "QWATCH_SERVE_RATE_LIMIT": "1",
        "QWATCH_SERVE_RATE_BURST": "5",
        "QWATCH_SERVE_CORS_ORIGINS": "https://soc.example",
    }
    with serve("--source", f"jsonl:{replay}", "--state-dir", str(tmp_path / "st"), env=env) as s:
        assert s.get("/healthz").status_code == 200  # probes need no token
        denied = s.get("/v1/transitions")
        assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Bearer")
        assert s.get("/v1/transitions", headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": "Bearer s3cret", "Origin": "https://soc.example"}
        ok = s.get("/v1/packages/PyPI/evil-pkg", headers=auth)
        assert ok.status_code == 200 and ok.json()["status"] == "quarantined"
        assert ok.headers["access-control-allow-origin"] == "https://soc.example"
        codes = [s.get("/v1/transitions", headers=auth).status_code for _ in range(10)]
        assert 429 in codes and codes[0] == 200
        limited = s.get("/v1/transitions", headers=auth)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
