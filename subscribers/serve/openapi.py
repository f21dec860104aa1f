"""``GET /openapi.json``: the API described in OpenAPI 3.1, built from the parameter table the parser enforces."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qwatch import __version__
from subscribers.serve.query import describe_params

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "bad input: unknown parameter, bad value or malformed cursor",
        401: "missing or wrong bearer token",
        404: "unknown package or path",
        413: "a request body was sent (read-only API)",
        414: "query string too long",
        429: "rate limit exceeded (see Retry-After)",
        503: "too many streams, or not ready",
    }
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def document(
    transition_params: Iterable[str], stream_params: Iterable[str], feed_params: Iterable[str]
) -> dict[str, Any]:
    """The whole document."""
    common = (400, 401, 413, 414, 429)
    transition = {"$ref": "#/components/schemas/Transition"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "quarantine-watch",
            "version": __version__,
            "description": "PyPI quarantines, removals and OpenSSF malicious-package reports: package state, "
            "transitions, a resumable stream and feeds. Read-only.",
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/v1/packages/{ecosystem}/{name}": {
                "get": {
                    "summary": "A package's current state and full transition history with evidence",
                    "parameters": [
                        {
                            "name": "ecosystem",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "e.g. PyPI (case-insensitive)",
                        },
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "project name; normalized as PyPI does",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "the package",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Package"}}},
                        },
                        **_errors(*common, 404),
                    },
                }
            },
            "/v1/transitions": {
                "get": {
                    "summary": "Transitions oldest first after a cursor, with the cursor to continue from",
                    "parameters": describe_params(transition_params),
                    "responses": {
                        "200": {
                            "description": "a page",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["items", "next", "more"],
                                        "properties": {
                                            "items": {"type": "array", "items": transition},
                                            "next": {"type": "string", "description": "pass as since= to continue"},
                                            "more": {"type": "boolean", "description": "true when the page was full"},
                                        },
                                    }
                                }
                            },
                        },
                        **_errors(*common),
                    },
                }
            },
            "/v1/transitions/{event_id}": {
                "get": {
                    "summary": "One transition",
                    "parameters": [{"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {
                            "description": "the transition",
                            "content": {"application/json": {"schema": transition}},
                        },
                        **_errors(*common, 404),
                    },
                }
            },
            "/v1/stream": {
                "get": {
                    "summary": "Server-Sent Events of new transitions (event: transition); each id is a cursor, "
                    "so a reconnect with Last-Event-ID resumes with no gap and no duplicate",
                    "parameters": [
                        *describe_params(stream_params),
                        {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "an event stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_errors(*common, 503),
                    },
                }
            },
            "/feed.atom": {
                "get": {
                    "summary": "Atom feed of takedowns and reports (newest first; kind= overrides the default kinds)",
                    "parameters": describe_params(feed_params),
                    "responses": {
                        "200": {
                            "description": "Atom 1.0",
                            "content": {"application/atom+xml": {"schema": {"type": "string"}}},
                        },
                        **_errors(*common),
                    },
                }
            },
            "/feed.json": {
                "get": {
                    "summary": "JSON Feed 1.1 of takedowns and reports (same parameters as the Atom feed)",
                    "parameters": describe_params(feed_params),
                    "responses": {
                        "200": {
                            "description": "JSON Feed 1.1",
                            "content": {"application/feed+json": {"schema": {"type": "object"}}},
                        },
                        **_errors(*common),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness (always 200 while serving); with ?ready, 503 until the view caught up",
                    "security": [{}],
                    "parameters": [{"name": "ready", "in": "query", "required": False, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "health"}, "503": {"description": "not ready"}},
                }
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "required when the server sets QWATCH_SERVE_TOKEN",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["status", "message"],
                            "properties": {
                                "status": {"type": "integer"},
                                "message": {"type": "string"},
                                "param": {"type": "string"},
                            },
                        }
                    },
                },
                "Transition": {
                    "type": "object",
                    "required": [
                        "event_id",
                        "kind",
                        "ecosystem",
                        "package",
                        "severity",
                        "summary",
                        "detected_at",
                        "after",
                        "evidence",
                        "links",
                    ],
                    "properties": {
                        "event_id": {"type": "string"},
                        "kind": {"type": "string"},
                        "ecosystem": {"type": "string"},
                        "package": {"type": "string"},
                        "version": {"type": ["string", "null"]},
                        "report_id": {"type": ["string", "null"]},
                        "severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
                        "summary": {"type": "string"},
                        "upstream_time": {"type": ["string", "null"], "format": "date-time"},
                        "detected_at": {"type": "string", "format": "date-time"},
                        "before": {"type": ["object", "null"]},
                        "after": {"type": "object"},
                        "evidence": {"type": "array", "items": {"type": "object"}},
                        "links": {"type": "object"},
                    },
                },
                "Package": {
                    "type": "object",
                    "required": ["ecosystem", "package", "status", "transitions"],
                    "properties": {
                        "ecosystem": {"type": "string"},
                        "package": {"type": "string"},
                        "status": {"type": "string"},
                        "severity": {"type": ["string", "null"]},
                        "live_reports": {"type": "array", "items": {"type": "object"}},
                        "withdrawn_reports": {"type": "array", "items": {"type": "object"}},
                        "quarantined_versions": {"type": "array", "items": {"type": "string"}},
                        "removed_versions": {"type": "array", "items": {"type": "string"}},
                        "yanked_versions": {"type": "array", "items": {"type": "string"}},
                        "first_seen": {"type": ["string", "null"], "format": "date-time"},
                        "last_change": {"type": ["string", "null"], "format": "date-time"},
                        "last_transition": {"oneOf": [transition, {"type": "null"}]},
                        "transitions": {"type": "array", "items": transition},
                        "inventories": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    }
