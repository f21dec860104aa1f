"""What the API, the feeds and the HTML page show: pure functions from stored rows to JSON, Atom and links.

No I/O and no web framework here, so the shapes are tested with plain values and the HTML templates, the JSON API and
the feeds cannot drift apart: the package page renders exactly the dictionary ``GET /v1/packages/…`` returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode
from xml.etree import ElementTree as ET

from qwatch.ids import rfc3339_ms as iso
from subscribers.serve import cursor as cursormod
from subscribers.serve.query import Filters
from subscribers.serve.view import PackageRecord, Row

ATOM = "http://www.w3.org/2005/Atom"
JSONFEED = "https://jsonfeed.org/version/1.1"
JOURNAL = "pypi-journal"


@dataclass(frozen=True)
class Links:
    """Where evidence lives upstream; configurable so a mirror or a local PyPI can stand in."""

    pypi_url: str = "https://pypi.org"
    osv_url: str = "https://osv.dev"

    def project(self, package: str, version: str | None = None) -> str:
        """The PyPI project (or release) page."""
        tail = f"{quote(version, safe='')}/" if version else ""
        return f"{self.pypi_url.rstrip('/')}/project/{quote(package, safe='')}/{tail}"

    def report(self, report_id: str) -> str:
        """The report on osv.dev (``MAL-…`` ids are published there)."""
        return f"{self.osv_url.rstrip('/')}/vulnerability/{quote(report_id, safe='')}"


def package_path(ecosystem: str, package: str) -> str:
    """The HTML package page, relative to the server root."""
    return f"/packages/{quote(ecosystem, safe='')}/{quote(package, safe='')}"


def api_package_path(ecosystem: str, package: str) -> str:
    """The JSON package resource, relative to the server root."""
    return f"/v1/packages/{quote(ecosystem, safe='')}/{quote(package, safe='')}"


def evidence(body: Mapping[str, Any], links: Links) -> list[dict[str, Any]]:
    """The upstream places a transition rests on, each with a label a person understands."""
    package, version, report = body["package"], body.get("version"), body.get("report_id")
    out: list[dict[str, Any]] = []
    if body.get("ecosystem", "").lower() == "pypi":
        out.append({"label": f"PyPI project page of {package}", "url": links.project(package)})
        if version:
            out.append({"label": f"PyPI page of {package} {version}", "url": links.project(package, version)})
    if report:
        out.append({"label": f"{report} on osv.dev", "url": links.report(report)})
    serial = (body.get("after") or {}).get("last_serial")
    if serial is not None and any(e.get("source") == JOURNAL for e in body.get("evidence", ())):
        out.append({"label": f"PyPI journal serial {serial}", "url": None, "serial": serial})
    return out


def transition(row: Row, links: Links, cursor: Mapping[int, int] | None = None) -> dict[str, Any]:
    """One transition as the API returns it: the event with readable times and evidence links."""
    b = row.body
    out: dict[str, Any] = {
        "event_id": b["event_id"],
        "kind": b["kind"],
        "ecosystem": b["ecosystem"],
        "package": b["package"],
        "version": b.get("version"),
        "report_id": b.get("report_id"),
        "severity": b["severity"],
        "summary": b["summary"],
        "upstream_time": iso(b.get("upstream_time")),
        "detected_at": iso(b["detected_at"]),
        "before": b.get("before"),
        "after": b["after"],
        "evidence": [
            {"observation_id": e["observation_id"], "source": e["source"], "observed_at": iso(e["observed_at"])}
            for e in b.get("evidence", ())
        ],
        "links": {
            "package": api_package_path(b["ecosystem"], b["package"]),
            "page": package_path(b["ecosystem"], b["package"]),
            "evidence": evidence(b, links),
        },
    }
    if cursor is not None:
        out["cursor"] = cursormod.encode(cursor)
    return out


def _versions(state: Mapping[str, Any] | None, latest: Mapping[str, Any] | None, flag: str, key: str) -> list[str]:
    if state is not None:
        return sorted(r["version"] for r in state.get("releases", ()) if r.get(flag))
    return list((latest or {}).get(key, ()))


def package(record: PackageRecord, links: Links) -> dict[str, Any]:
    """``GET /v1/packages/{ecosystem}/{name}``: current state from the processor's state record when the state topic
    had one (else from the newest transition's ``after``), and the whole history with evidence."""
    state = record.state
    latest_row = record.history[-1] if record.history else None
    latest_after = latest_row.body["after"] if latest_row else None
    summaries: dict[str, str] = {}
    for row in record.history:
        rid = row.body.get("report_id")
        if rid and row.kind in ("REPORTED", "REPORT_UPDATED", "REPORT_ESCALATED", "REPORT_WITHDRAWN"):
            summaries[rid] = row.body["summary"]
    reports: list[dict[str, Any]] = []
    if state is not None:
        reports += [
            {
                "report_id": r["report_id"],
                "status": r["status"],
                "affected_versions": list(r.get("affected_versions", ())),
                "all_versions": bool(r.get("all_versions")),
                "first_seen": iso(r.get("first_seen")),
                "summary": summaries.get(r["report_id"]),
                "url": links.report(r["report_id"]),
            }
            for r in state.get("reports", ())
        ]
    elif latest_after is not None:
        for status, ids in (("live", "live_reports"), ("withdrawn", "withdrawn_reports")):
            reports += [
                {"report_id": rid, "status": status, "summary": summaries.get(rid), "url": links.report(rid)}
                for rid in latest_after.get(ids, ())
            ]
    status = state["status"] if state is not None else (latest_after or {}).get("status", "unknown")
    history = [transition(r, links) for r in record.history]
    return {
        "ecosystem": record.ecosystem,
        "package": record.package,
        "status": status,
        "severity": latest_row.severity if latest_row else None,
        "live_reports": [r for r in reports if r["status"] == "live"],
        "withdrawn_reports": [r for r in reports if r["status"] != "live"],
        "quarantined_versions": _versions(state, latest_after, "quarantined", "quarantined_versions"),
        "removed_versions": _versions(state, latest_after, "removed", "removed_versions"),
        "yanked_versions": _versions(state, latest_after, "yanked", "yanked_versions"),
        "last_serial": (state or {}).get("last_serial", (latest_after or {}).get("last_serial")),
        "first_seen": iso(record.first_seen),
        "last_change": iso(record.last_change),
        "last_transition": history[-1] if history else None,
        "transitions": history,
        "inventories": record.inventories,
        "links": {
            "page": package_path(record.ecosystem, record.package),
            "pypi": links.project(record.package) if record.ecosystem.lower() == "pypi" else None,
        },
    }


def transitions_page(rows: Iterable[Row], nxt: Mapping[int, int], more: bool, links: Links) -> dict[str, Any]:
    """``GET /v1/transitions``: items oldest first and the cursor to continue with."""
    return {
        "items": [transition(r, links) for r in rows],
        "next": cursormod.encode(nxt),
        "more": more,
    }


def _title(b: Mapping[str, Any]) -> str:
    what = " ".join(x for x in (b["package"], b.get("version"), b.get("report_id")) if x)
    return f"{b['kind']} {what} ({b['severity']})"


def _entry_url(base: str, b: Mapping[str, Any]) -> str:
    return base.rstrip("/") + package_path(b["ecosystem"], b["package"])


def _external(b: Mapping[str, Any], links: Links) -> str | None:
    ev = [e["url"] for e in evidence(b, links) if e.get("url")]
    if b.get("report_id"):
        return links.report(b["report_id"])
    return ev[-1] if ev else None


def feed_query(filters: Filters, limit: int | None) -> str:
    """The query string that reproduces a feed (its self link)."""
    params = filters.as_params() + ([("limit", str(limit))] if limit else [])
    return f"?{urlencode(params)}" if params else ""


def atom(rows: list[Row], base: str, self_path: str, links: Links, title: str) -> bytes:
    """An Atom 1.0 feed (RFC 4287) of ``rows``, newest first; each entry links to its package page and evidence."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    root = base.rstrip("/")
    sub(feed, "id", f"{root}{self_path}")
    sub(feed, "title", title)
    sub(feed, "updated", iso(rows[0].detected_at) if rows else "1970-01-01T00:00:00.000Z")
    sub(feed, "link", rel="self", href=f"{root}{self_path}", type="application/atom+xml")
    sub(feed, "link", rel="alternate", href=f"{root}/", type="text/html")
    author = sub(feed, "author")
    sub(author, "name", "quarantine-watch")
    sub(feed, "generator", "quarantine-watch")
    for row in rows:
        b = row.body
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:qwatch:transition:{b['event_id']}")
        sub(entry, "title", _title(b))
        sub(entry, "updated", iso(b["detected_at"]))
        sub(entry, "published", iso(b.get("upstream_time") or b["detected_at"]))
        sub(entry, "link", rel="alternate", href=_entry_url(base, b), type="text/html")
        for ev in evidence(b, links):
            if ev.get("url"):
                sub(entry, "link", rel="related", href=ev["url"], title=ev["label"])
        sub(entry, "summary", b["summary"])
        sub(entry, "category", term=b["kind"], label=b["kind"])
        sub(entry, "category", term=f"severity:{b['severity']}", label=b["severity"])
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body


def json_feed(rows: list[Row], base: str, self_path: str, links: Links, title: str) -> dict[str, Any]:
    """A JSON Feed 1.1 document of ``rows``, newest first, with the transition itself under ``_qwatch``."""
    root = base.rstrip("/")
    items = []
    for row in rows:
        b = row.body
        item: dict[str, Any] = {
            "id": f"urn:qwatch:transition:{b['event_id']}",
            "url": _entry_url(base, b),
            "title": _title(b),
            "content_text": b["summary"],
            "summary": b["summary"],
            "date_published": iso(b.get("upstream_time") or b["detected_at"]),
            "date_modified": iso(b["detected_at"]),
            "tags": [b["kind"], b["severity"]],
            "_qwatch": transition(row, links),
        }
        external = _external(b, links)
        if external:
            item["external_url"] = external
        items.append(item)
    return {
        "version": JSONFEED,
        "title": title,
        "home_page_url": f"{root}/",
        "feed_url": f"{root}{self_path}",
        "description": "PyPI takedowns and malicious-package reports seen by quarantine-watch",
        "authors": [{"name": "quarantine-watch"}],
        "items": items,
    }
