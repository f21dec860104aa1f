"""PyPI provenance objects (PEP 740, served by the Integrity API) reduced to the facts drift is judged on.

The object is ``{"version": 1, "attestation_bundles": [{"publisher": {...}, "attestations": [...]}]}``; each
attestation carries a DSSE envelope whose ``statement`` (base64) is an in-toto Statement naming the file and its
sha256. We read those shapes ourselves rather than through ``pypi_attestations``' models so that a body the
library would reject still yields a clear reason (and the tests compare the two readings on real objects).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

from qwatch.errors import QwatchError


class ProvenanceError(QwatchError, ValueError):
    """A provenance body we cannot read; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class Publisher:
    """A Trusted Publisher identity, reduced to the parts that name *where* a release was built.

    ``repository`` and ``workflow`` are the identity drift is judged on (a release "from another repository or
    workflow"; ``qwatch.provenance.check.identity``). The environment is kept for the evidence but is not part of
    the identity: projects rename deployment environments for reasons that say nothing about who holds the keys."""

    kind: str
    repository: str
    workflow: str
    environment: str = ""


@dataclass(frozen=True, slots=True)
class Attestation:
    """One attestation: the subject it signs and the raw object (for signature verification)."""

    subject_name: str
    subject_sha256: str
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Bundle:
    """The attestations one publisher made for a file."""

    publisher: Publisher
    publisher_raw: dict[str, Any]
    attestations: tuple[Attestation, ...]


@dataclass(frozen=True, slots=True)
class Provenance:
    """A parsed provenance object."""

    bundles: tuple[Bundle, ...]

    @property
    def publishers(self) -> tuple[Publisher, ...]:
        """Distinct publishers, in order of appearance."""
        return tuple(dict.fromkeys(b.publisher for b in self.bundles))


def _str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else ""


def publisher_from(raw: object) -> Publisher:
    """The identity of a ``publisher`` claim set, per kind (PyPI's four Trusted Publisher kinds, and any other)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str) or not raw["kind"]:
        raise ProvenanceError("publisher: not an object with a 'kind'")
    kind = raw["kind"]
    if kind == "GitHub":
        return Publisher(kind, _str(raw, "repository"), _str(raw, "workflow"), _str(raw, "environment"))
    if kind == "GitLab":
        return Publisher(kind, _str(raw, "repository"), _str(raw, "workflow_filepath"), _str(raw, "environment"))
    if kind == "Google":
        return Publisher(kind, _str(raw, "email"), "")
    if kind == "CircleCI":
        workflow = "/".join(p for p in (_str(raw, "project_id"), _str(raw, "pipeline_definition_id")) if p)
        return Publisher(kind, _str(raw, "vcs_origin"), workflow, _str(raw, "vcs_ref"))
    # A kind PyPI adds later: every claim but the kind is the identity, so any change of them is still a change.
    claims = {k: v for k, v in raw.items() if k != "kind"}
    return Publisher(kind, json.dumps(claims, sort_keys=True, separators=(",", ":")), "")


def _statement(attestation: dict[str, Any], where: str) -> dict[str, Any]:
    envelope = attestation.get("envelope")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("statement"), str):
        raise ProvenanceError(f"{where}: no envelope statement")
    try:
        decoded = json.loads(base64.b64decode(envelope["statement"], validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ProvenanceError(f"{where}: the envelope statement is not base64 JSON ({exc})") from exc
    if not isinstance(decoded, dict):
        raise ProvenanceError(f"{where}: the statement is not an object")
    return decoded


def _attestation(raw: object, where: str) -> Attestation:
    if not isinstance(raw, dict):
        raise ProvenanceError(f"{where}: not an object")
    statement = _statement(raw, where)
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise ProvenanceError(f"{where}: the statement must have exactly one subject (PEP 740)")
    subject = subjects[0]
    digest = subject.get("digest")
    sha = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(subject.get("name"), str) or not isinstance(sha, str):
        raise ProvenanceError(f"{where}: the subject has no name or no sha256 digest")
    return Attestation(subject["name"], sha.lower(), raw)


def parse_provenance(body: bytes | str) -> Provenance:
    """Parse a provenance object; raise ProvenanceError saying what is wrong with it."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ProvenanceError(f"not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ProvenanceError("not a JSON object")
    if doc.get("version") != 1:
        raise ProvenanceError(f"unknown provenance version {doc.get('version')!r} (this reader knows 1)")
    raw_bundles = doc.get("attestation_bundles")
    if not isinstance(raw_bundles, list) or not raw_bundles:
        raise ProvenanceError("'attestation_bundles' is missing or empty")
    bundles = []
    for i, raw in enumerate(raw_bundles):
        where = f"attestation_bundles[{i}]"
        if not isinstance(raw, dict):
            raise ProvenanceError(f"{where}: not an object")
        atts = raw.get("attestations")
        if not isinstance(atts, list) or not atts:
            raise ProvenanceError(f"{where}: no attestations")
        publisher = publisher_from(raw.get("publisher"))
        parsed = tuple(_attestation(a, f"{where}.attestations[{j}]") for j, a in enumerate(atts))
        bundles.append(Bundle(publisher, dict(raw["publisher"]), parsed))
    return Provenance(tuple(bundles))


def subject_problems(provenance: Provenance, filename: str, sha256: str) -> list[str]:
    """Every attestation whose subject is not this file (another name, or another digest): empty when all match."""
    problems = []
    want = sha256.lower()
    for bundle in provenance.bundles:
        for att in bundle.attestations:
            if not same_distribution(att.subject_name, filename):
                problems.append(f"attests {att.subject_name!r}, not {filename!r}")
            if att.subject_sha256 != want:
                problems.append(f"attests sha256 {att.subject_sha256[:16]}…, the index says {want[:16]}…")
    return problems


def _dist_key(filename: str) -> object:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)
        return parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return filename


def same_distribution(a: str, b: str) -> bool:
    """True when two filenames name the same distribution (PEP 427/625 normalization: ``Foo_Bar-1.0.tar.gz`` is
    ``foo-bar-1.0.tar.gz``), so a spelling difference is never reported as a forged subject."""
    return a == b or _dist_key(a) == _dist_key(b)
