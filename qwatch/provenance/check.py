"""One file's provenance checked: the body PyPI served (or none), against the file the index announces.

The subject digest is compared with the index's sha256 always (no library, no trust root needed); the signature
is checked by the verifier passed in, which says what it did. The result is the ``FileProvenance`` record the
ingestor emits, and ``view`` turns it into what ``drift`` judges, so the ingestor, the processor and the gate
read a file's provenance the same way.
"""

from __future__ import annotations

from qwatch import events
from qwatch.provenance.drift import FileView
from qwatch.provenance.parse import ProvenanceError, parse_provenance, subject_problems
from qwatch.provenance.verify import INVALID, NOT_CHECKED, SignatureVerifier


def check_file(
    filename: str, sha256: str, upload_time: int | None, body: bytes | None, verifier: SignatureVerifier
) -> events.FileProvenance:
    """``body`` None: PyPI has no provenance for the file (the Integrity API's "No provenance available")."""
    if body is None:
        return events.FileProvenance(filename, sha256, upload_time, False, (), None, NOT_CHECKED, "no attestation")
    try:
        provenance = parse_provenance(body)
    except ProvenanceError as exc:
        # PyPI served *something* as provenance that is not one: attested in name only, and that does not hold.
        return events.FileProvenance(
            filename, sha256, upload_time, True, (), False, INVALID, f"provenance unreadable: {exc}"
        )
    publishers = tuple(
        events.PublisherIdentity(p.kind, p.repository, p.workflow, p.environment) for p in provenance.publishers
    )
    # Without an announced digest there is nothing to compare the subject with: say so, never call it a mismatch.
    problems = subject_problems(provenance, filename, sha256) if sha256 else []
    states: list[str] = []
    details: list[str] = []
    for bundle in provenance.bundles:
        for att in bundle.attestations:
            result = verifier.check(bundle.publisher_raw, att.raw, filename, sha256)
            states.append(result.state)
            if result.detail not in details:
                details.append(result.detail)
    signature = INVALID if INVALID in states else (NOT_CHECKED if NOT_CHECKED in states else states[0])
    if not sha256:
        details.insert(0, "the index announces no sha256: subject digest not checked")
    detail = "; ".join([*(f"subject {p}" for p in problems), *details])
    digest_ok = None if not sha256 else not problems
    return events.FileProvenance(filename, sha256, upload_time, True, publishers, digest_ok, signature, detail[:1000])


def invalid_reason(f: events.FileProvenance) -> str:
    """Why a file's attestation does not hold (empty when it holds or there is none)."""
    if not f.attested:
        return ""
    if f.digest_ok is False or f.signature == INVALID:
        return f.detail or "attestation does not hold"
    return ""


def identity(p: events.PublisherIdentity) -> str:
    """``kind|repository|workflow``: the stable key the processor stores and drift compares (the environment is
    evidence, not identity: see ``qwatch.provenance.parse.Publisher``)."""
    return f"{p.kind}|{p.repository}|{p.workflow}"


def view(f: events.FileProvenance) -> FileView:
    """What drift judges of a checked file."""
    return FileView(
        f.filename, f.attested, frozenset(identity(p) for p in f.publishers), invalid_reason(f), f.upload_time
    )
