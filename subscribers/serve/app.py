"""The web adapter of ``qwatch serve``: Starlette routes over the view, the stream hub, and the guard middleware.

Why Starlette on uvicorn, with Jinja2: it is a small, well-kept ASGI toolkit from the maintainers of httpx (already a
dependency) and uvicorn, with streaming responses (what Server-Sent Events need), static files, CORS and a test
client built in, and nothing we do not use (no ORM, no validation framework: the strict parsing lives in
``query.py`` so the API, the feeds and the HTML page share it). FastAPI would add pydantic and generate the OpenAPI
document from type hints, but our parameters are few and hand-validated, and ``openapi.py`` builds the document
from the same parameter table the parser enforces. uvicorn is the reference ASGI server; Jinja2 autoescapes every
upstream string (package names and summaries come from the internet).

Read-only by construction: every route is GET (HEAD), a request with a body is refused, and the only state is the
view the feeder writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qwatch.events.kinds import ALL_KINDS
from subscribers.serve import cursor as cursormod
from subscribers.serve import present
from subscribers.serve.config import ServeConfig
from subscribers.serve.hub import CHUNK, Hub
from subscribers.serve.metrics import ServeMetrics, route_of
from subscribers.serve.openapi import document
from subscribers.serve.query import (
    FILTER_PARAMS,
    SEVERITIES,
    TAKEDOWN_KINDS,
    BadRequest,
    Query,
    ecosystem_name,
    multi,
    package_name,
    parse,
)
from subscribers.serve.view import Reader, Row

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TRANSITION_PARAMS = (*FILTER_PARAMS, "since", "limit")
STREAM_PARAMS = (*FILTER_PARAMS, "since")
FEED_PARAMS = (*FILTER_PARAMS, "limit")
PAGE_PARAMS = (*FILTER_PARAMS, "limit")
HTML_PREFIXES = ("/packages/", "/search")
FEED_TITLE = "quarantine-watch: PyPI takedowns and reports"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
]


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """The one JSON error shape: ``{"error": {"status", "message", "param"?}}``."""
    err: dict[str, Any] = {"status": status, "message": message}
    if param:
        err["param"] = param
    return {"error": err}


def json_error(
    status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON error response."""
    return JSONResponse(error_body(status, message, param), status_code=status, headers=dict(headers or {}))


def _wants_html(path: str) -> bool:
    return path == "/" or path.startswith(HTML_PREFIXES)


class Guard:
    """Pure ASGI middleware: the limits and the token, before any route runs; security headers and metrics after.

    Checks, in order: method (GET/HEAD only), URL size (414), a request body (413: the API is read-only), the
    per-client rate limit (429 with Retry-After), the bearer token (401). ``/healthz`` skips the last two so
    probes work without the token.
    """

    MAX_CLIENTS = 50_000

    def __init__(self, app: ASGIApp, cfg: ServeConfig, metrics: ServeMetrics) -> None:
        self.app = app
        self.cfg = cfg
        self.metrics = metrics
        self.token = cfg.token.reveal().encode()
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope.get("path", "")
        route = route_of(path)
        recorded = False

        async def send_wrapped(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
                self.metrics.requests.labels(route, str(message["status"])).inc()
                self.metrics.duration.labels(route).observe(time.perf_counter() - started)
            await send(message)

        refusal = self._refuse(scope, path)
        if refusal is not None:
            await refusal(scope, receive, send_wrapped)
            return
        await self.app(scope, receive, send_wrapped)

    def _refuse(self, scope: Scope, path: str) -> Response | None:
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            return json_error(405, "read-only API: only GET and HEAD", headers={"Allow": "GET, HEAD"})
        if len(path) > 1024 or len(scope.get("query_string", b"")) > self.cfg.max_query_bytes:
            return json_error(414, f"URL too long (query at most {self.cfg.max_query_bytes} bytes)")
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"0")
        if b"transfer-encoding" in headers or length.strip() not in (b"", b"0"):
            return json_error(413, "request bodies are not accepted (read-only API)")
        if path == "/healthz":
            return None
        wait = self._rate(scope)
        if wait > 0:
            self.metrics.rate_limited.inc()
            retry = str(max(1, int(wait + 0.999)))
            return json_error(429, "rate limit exceeded; slow down", headers={"Retry-After": retry})
        if self.token:
            given = headers.get(b"authorization", b"")
            scheme, _, value = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(value.strip(), self.token):
                return json_error(
                    401,
                    "a bearer token is required (Authorization: Bearer …)",
                    headers={"WWW-Authenticate": 'Bearer realm="qwatch"'},
                )
        return None

    def _rate(self, scope: Scope) -> float:
        """Token bucket per client address; the seconds to wait, 0 when the request may pass."""
        if self.cfg.rate_limit <= 0:
            return 0.0
        client = scope.get("client")
        key = client[0] if client else "-"
        now = time.monotonic()
        tokens, last = self.buckets.pop(key, (float(self.cfg.rate_burst), now))
        tokens = min(float(self.cfg.rate_burst), tokens + (now - last) * self.cfg.rate_limit)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / self.cfg.rate_limit
        self.buckets[key] = (tokens - 1, now)
        while len(self.buckets) > self.MAX_CLIENTS:
            self.buckets.popitem(last=False)
        return 0.0


class Service:
    """What the routes share: settings, the reader, the hub, links and the feeder's health."""

    def __init__(
        self,
        cfg: ServeConfig,
        reader: Reader,
        metrics: ServeMetrics,
        health: Callable[[], dict[str, Any]] = lambda: {"caught_up": True, "error": None},
    ) -> None:
        self.cfg = cfg
        self.reader = reader
        self.metrics = metrics
        self.health = health
        self.hub = Hub(reader, cfg.stream_queue)
        self.links = present.Links(cfg.pypi_url, cfg.osv_url)
        self.env = Environment(
            loader=FileSystemLoader(str(HERE / "templates")),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(kinds=ALL_KINDS, severities=SEVERITIES)
        self._data: OrderedDict[int, str] = OrderedDict()
        self._packages: OrderedDict[tuple[str, str], tuple[int, bytes]] = OrderedDict()

    def package_json(self, eco: str, name: str) -> bytes | None:
        """The encoded ``/v1/packages`` answer, rendered again only when the package's revision moved: the hot
        path of a status API is the same few packages asked for again and again."""
        rev = self.reader.revision(eco, name)
        if rev is None:
            return None
        hit = self._packages.get((eco, name))
        if hit is not None and hit[0] == rev:
            self._packages.move_to_end((eco, name))
            return hit[1]
        record = self.reader.package(eco, name)
        if record is None:
            return None
        body = json.dumps(present.package(record, self.links), separators=(",", ":")).encode()
        self._packages[(eco, name)] = (record.revision, body)
        if len(self._packages) > 10_000:
            self._packages.popitem(last=False)
        return body

    def event_data(self, row: Row) -> str:
        """A row's SSE ``data`` (its API JSON), made once however many streams send it: 200 clients would otherwise
        render and encode every new transition 200 times."""
        data = self._data.get(row.seq)
        if data is None:
            data = self._data[row.seq] = json.dumps(present.transition(row, self.links), separators=(",", ":"))
            if len(self._data) > 4096:
                self._data.popitem(last=False)
        return data

    def base_url(self, request: Request) -> str:
        """Absolute base for feed links: the configured public URL, else what the request came to."""
        return self.cfg.public_url or str(request.base_url)

    def query(self, request: Request, allowed: tuple[str, ...]) -> Query:
        """Parse and validate the query string (raises BadRequest)."""
        items = parse_qsl(request.url.query, keep_blank_values=True)
        return parse(multi(items), allowed, self.cfg.page_limit, self.cfg.max_limit)

    def html(self, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        """Render a page."""
        return HTMLResponse(self.env.get_template(template).render(**context), status_code=code)


def build_app(service: Service) -> Starlette:
    """The ASGI application (the CLI runs it on uvicorn; the hub runs while the app does)."""
    s = service
    r = s.reader

    async def package_api(request: Request) -> Response:
        s.query(request, ())
        eco = ecosystem_name(request.path_params["ecosystem"])
        name = package_name(request.path_params["name"])
        body = s.package_json(eco, name)
        if body is None:
            return json_error(404, f"no record of {request.path_params['ecosystem']}/{name}", "name")
        return Response(body, media_type="application/json")

    async def transitions_api(request: Request) -> Response:
        q = s.query(request, TRANSITION_PARAMS)
        page = r.page(q.filters, q.since, q.limit)
        body = present.transitions_page(page.rows, page.next, page.more, s.links)
        return JSONResponse(body)

    async def transition_api(request: Request) -> Response:
        s.query(request, ())
        event_id = request.path_params["event_id"]
        row = r.transition(event_id) if len(event_id) <= 128 else None
        if row is None:
            return json_error(404, "no such transition", "event_id")
        return JSONResponse(present.transition(row, s.links))

    async def stream(request: Request) -> Response:
        q = s.query(request, STREAM_PARAMS)
        start: dict[int, int] | None = q.since
        last = request.headers.get("last-event-id")
        if last:
            try:
                start = cursormod.decode(last.strip())
            except cursormod.CursorError as exc:
                return json_error(400, f"Last-Event-ID: {exc}", "Last-Event-ID")
        if len(s.hub.subscribers) >= s.cfg.max_streams:
            return json_error(503, "too many open streams; retry later", headers={"Retry-After": "5"})
        filters = q.filters
        pos: dict[int, int] = {}

        def event(row: Row) -> str:
            return f"id: {cursormod.encode(pos)}\nevent: transition\ndata: {s.event_data(row)}\n\n"

        async def body() -> AsyncIterator[str]:
            # Subscribed when the body starts, not before: a response that is never sent leaves no subscriber.
            sub, mark = s.hub.subscribe()
            pos.update(start if start is not None else r.cursor_at(mark))
            s.metrics.streams.inc()
            try:
                yield f"retry: 2000\n: qwatch stream from {cursormod.encode(pos)}\n\n"
                if start is not None:  # catch up to the hub's mark from the view
                    while True:
                        page = r.page(filters, pos, CHUNK, upto_seq=mark)
                        out = []
                        for row in page.rows:
                            cursormod.advance(pos, [(row.part, row.off)])
                            out.append(event(row))
                        for p, o in page.next.items():
                            pos[p] = max(pos.get(p, 0), o)
                        if out:
                            yield "".join(out)
                        if not page.more:
                            break
                        await asyncio.sleep(0)
                while not sub.overflowed:
                    try:
                        rows = await asyncio.wait_for(sub.queue.get(), s.cfg.keepalive)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    out = []
                    for row in rows:
                        if not cursormod.after(pos, row.part, row.off):
                            continue
                        pos[row.part] = row.off + 1
                        if filters.matches(row.kind, row.ecosystem, row.package, row.severity):
                            out.append(event(row))
                    if out:
                        yield "".join(out)
            finally:
                s.hub.unsubscribe(sub)
                s.metrics.streams.dec()

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def _feed_rows(request: Request) -> tuple[Query, list[Row]]:
        q = s.query(request, FEED_PARAMS)
        filters = q.filters
        if not filters.kinds:
            filters = dataclasses.replace(filters, kinds=frozenset(TAKEDOWN_KINDS))
        return q, r.recent(filters, q.limit)

    async def feed_atom(request: Request) -> Response:
        q, rows = _feed_rows(request)
        explicit = "limit" in request.query_params
        path = "/feed.atom" + present.feed_query(q.filters, q.limit if explicit else None)
        body = present.atom(rows, s.base_url(request), path, s.links, FEED_TITLE)
        return Response(body, media_type="application/atom+xml; charset=utf-8")

    async def feed_json(request: Request) -> Response:
        q, rows = _feed_rows(request)
        explicit = "limit" in request.query_params
        path = "/feed.json" + present.feed_query(q.filters, q.limit if explicit else None)
        body = present.json_feed(rows, s.base_url(request), path, s.links, FEED_TITLE)
        return JSONResponse(body, media_type="application/feed+json")

    async def openapi(request: Request) -> Response:
        s.query(request, ())
        return JSONResponse(document(TRANSITION_PARAMS, STREAM_PARAMS, FEED_PARAMS))

    async def healthz(request: Request) -> Response:
        q = s.query(request, ("ready",))
        h = s.health()
        body = {
            "status": "ok" if h.get("error") is None else "degraded",
            "caught_up": bool(h.get("caught_up")),
            "feeder_error": h.get("error"),
            "view": r.counts(),
            "streams": len(s.hub.subscribers),
            "rebuilt_because": h.get("rebuilt_because"),
        }
        not_ready = "ready" in q.extra and (not body["caught_up"] or body["feeder_error"])
        return JSONResponse(body, status_code=503 if not_ready else 200)

    async def index(request: Request) -> Response:
        q = s.query(request, PAGE_PARAMS)
        rows = r.recent(q.filters, q.limit)
        feed_qs = urlencode(q.filters.as_params())
        return s.html(
            "index.html",
            items=[present.transition(x, s.links) for x in rows],
            filters=q.filters,
            limit=q.limit,
            counts=r.counts(),
            feed_qs=f"?{feed_qs}" if feed_qs else "",
        )

    async def package_page(request: Request) -> Response:
        s.query(request, ())
        raw_eco, raw_name = request.path_params["ecosystem"], request.path_params["name"]
        eco, name = ecosystem_name(raw_eco), package_name(raw_name)
        record = r.package(eco, name)
        if record is None:
            return s.html("missing.html", 404, name=name, ecosystem=raw_eco, matches=r.search(name))
        if raw_name != name or raw_eco != record.ecosystem:
            return RedirectResponse(present.package_path(record.ecosystem, name), status_code=308)
        return s.html("package.html", pkg=present.package(record, s.links))

    async def search(request: Request) -> Response:
        q = s.query(request, ("q",))
        text = q.extra.get("q", "").strip()
        if not text:
            return RedirectResponse("/", status_code=303)
        name = package_name(text)
        matches = r.search(name)
        exact = [m for m in matches if m[1] == name]
        if exact:
            return RedirectResponse(present.package_path(*exact[0]), status_code=303)
        return s.html("missing.html", 404, name=name, ecosystem="PyPI", matches=matches)

    async def on_bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequest)
        if _wants_html(request.url.path):
            return s.html("error.html", exc.status, status=exc.status, message=str(exc))
        return json_error(exc.status, str(exc), exc.param)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: "no such page", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        if _wants_html(request.url.path) and exc.status_code == 404:
            return s.html("error.html", 404, status=404, message=message)
        return json_error(exc.status_code, message, headers=exc.headers)

    async def on_error(request: Request, exc: Exception) -> Response:
        logger.exception("serve: %s %s failed", request.method, request.url.path)
        return json_error(500, "internal error (logged)")

    routes = [
        Route("/", index),
        Route("/search", search),
        Route("/packages/{ecosystem}/{name}", package_page),
        Route("/v1/packages/{ecosystem}/{name}", package_api),
        Route("/v1/transitions", transitions_api),
        Route("/v1/transitions/{event_id}", transition_api),
        Route("/v1/stream", stream),
        Route("/feed.atom", feed_atom),
        Route("/feed.json", feed_json),
        Route("/openapi.json", openapi),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = []
    if s.cfg.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(s.cfg.cors_origins),
                allow_methods=["GET", "HEAD"],
                allow_headers=["Authorization", "Last-Event-ID"],
                max_age=600,
            )
        )
    middleware.append(Middleware(Guard, cfg=s.cfg, metrics=s.metrics))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(s.hub.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        BadRequest: on_bad_request,
        HTTPException: on_http,
        Exception: on_error,
    }
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
