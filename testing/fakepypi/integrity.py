"""PEP 740 provenance for the local PyPI: the Integrity API and the Simple API's ``provenance`` links.

Shapes follow Warehouse (``warehouse/api/integrity.py``): ``GET /integrity/<project>/<version>/<filename>/provenance``
answers the provenance object as ``application/vnd.pypi.integrity.v1+json`` (or ``application/json``), a 404 with
``{"message": "No provenance available for <filename>"}`` when the file has none, a 404 when there is no such
file, and 406 when the ``Accept`` header allows neither type. The Simple JSON page names the URL in each file's
``provenance`` key (``null`` without one) and the HTML page in ``data-provenance``.

Two kinds of bodies: real ones recorded from PyPI (``tests/fixtures/provenance``), served for a file whose bytes
are those of the real distribution (``FakePyPI.use_real_file``), which verify against Sigstore; and synthetic
ones (``synthetic_provenance``) in the same shape, whose subject is the announced file but whose certificate and
signature are placeholders that no verifier accepts. Synthetic ones exercise digest checks and publisher drift.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from urllib.parse import quote

from .render import CORS_HEADERS, Response

INTEGRITY_JSON = "application/vnd.pypi.integrity.v1+json"
APPLICATION_JSON = "application/json"
PUBLISH_PREDICATE = "https://docs.pypi.org/attestations/publish/v1"


def github_publisher(
    repository: str, workflow: str = "release.yml", environment: str | None = None
) -> dict[str, object]:
    """A GitHub Trusted Publisher claim set as PyPI renders it in provenance."""
    return {"kind": "GitHub", "repository": repository, "workflow": workflow, "environment": environment}


def synthetic_provenance(filename: str, sha256: str, publisher: dict[str, object]) -> bytes:
    """A provenance object attesting ``filename`` with digest ``sha256``; placeholders where Sigstore signs."""
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": filename, "digest": {"sha256": sha256}}],
        "predicateType": PUBLISH_PREDICATE,
        "predicate": None,
    }
    raw = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    attestation = {
        "version": 1,
        "verification_material": {
            "certificate": base64.b64encode(b"qwatch-fakepypi: synthetic, not a certificate").decode(),
            "transparency_entries": [],
        },
        "envelope": {
            "statement": base64.b64encode(raw).decode(),
            "signature": base64.b64encode(hashlib.sha256(raw).digest()).decode(),
        },
    }
    doc = {"version": 1, "attestation_bundles": [{"publisher": publisher, "attestations": [attestation]}]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class ProvenanceStore:
    """Provenance bodies by filename, and sha256 overrides for files served with real bytes' digests."""

    def __init__(self) -> None:
        self.base_url = ""
        self._lock = threading.Lock()
        self._bodies: dict[str, bytes] = {}
        self._sha256: dict[str, str] = {}

    def set_body(self, filename: str, body: bytes) -> None:
        """Serve ``body`` as the file's provenance."""
        with self._lock:
            self._bodies[filename] = body

    def set_sha256(self, filename: str, sha256: str) -> None:
        """Announce ``sha256`` for the file (a real distribution's digest)."""
        with self._lock:
            self._sha256[filename] = sha256

    def sha256(self, filename: str) -> str | None:
        """The overriding digest, if any."""
        with self._lock:
            return self._sha256.get(filename)

    def body(self, filename: str) -> bytes | None:
        """The provenance body, or None."""
        with self._lock:
            return self._bodies.get(filename)

    def url(self, project: str, version: str, filename: str) -> str | None:
        """The Integrity API URL the Simple API names for a file with provenance (None without)."""
        if self.body(filename) is None:
            return None
        parts = "/".join(quote(p, safe="") for p in (project, version, filename))
        return f"{self.base_url}/integrity/{parts}/provenance"


def _accepts(accept: str | None) -> str | None:
    if not accept:
        return INTEGRITY_JSON
    offered = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for kind in (INTEGRITY_JSON, APPLICATION_JSON):
        if kind in offered:
            return kind
    if "*/*" in offered or "application/*" in offered:
        return INTEGRITY_JSON
    return None


def _json(status: int, content_type: str, payload: object) -> Response:
    body = json.dumps(payload).encode()
    return Response(status, (("Content-Type", content_type), *CORS_HEADERS), body)


def provenance_response(store: ProvenanceStore, filename: str, known_file: bool, accept: str | None) -> Response:
    """The Integrity API's answer for one file (``known_file``: the project, release and file exist and show)."""
    if not known_file:
        return Response(404, (("Content-Type", "text/plain"), *CORS_HEADERS), b"404 Not Found")
    content_type = _accepts(accept)
    if content_type is None:
        return _json(406, APPLICATION_JSON, {"message": "Request not acceptable"})
    body = store.body(filename)
    if body is None:
        return _json(404, content_type, {"message": f"No provenance available for {filename}"})
    headers = (
        ("Content-Type", content_type),
        ("Vary", "Accept"),
        ("Cache-Control", "max-age=600, public"),
        *CORS_HEADERS,
    )
    return Response(200, headers, body)
