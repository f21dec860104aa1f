"""Signature verification of PEP 740 attestations, offline, with ``pypi-attestations`` and ``sigstore``.

Offline means the Sigstore trust root (Fulcio CAs, Rekor and CT log keys) shipped inside the installed
``sigstore`` package, and the inclusion proof and signed checkpoint each attestation carries: no network, so an
ingestor behind a strict egress policy still verifies, and nobody on the path can answer for Sigstore. The
verifier is passed in (``SIGNATURES`` names them), so a deployment states what it checks and the evidence says
so: a signature is ``verified``, ``invalid`` (it does not verify: critical), or ``not-checked`` with the reason;
never a verification claimed that did not happen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

VERIFIED = "verified"
INVALID = "invalid"
NOT_CHECKED = "not-checked"


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The outcome for one attestation, with the reason a person reads in the evidence."""

    state: str
    detail: str


class SignatureVerifier(Protocol):
    """Checks one attestation against the file it claims (its name and the index's sha256) and its publisher."""

    name: str

    def check(
        self, publisher: dict[str, Any], attestation: dict[str, Any], filename: str, sha256: str
    ) -> SignatureCheck:
        """Never raises for a bad attestation: a failure is an ``invalid`` result with the reason."""
        ...


class NoSignatureCheck:
    """Checks subject digests only; every signature is reported ``not-checked`` with this reason."""

    name = "off"

    def __init__(self, reason: str = "signature not checked (signatures: off)") -> None:
        self.reason = reason

    def check(
        self, publisher: dict[str, Any], attestation: dict[str, Any], filename: str, sha256: str
    ) -> SignatureCheck:
        """See the class."""
        return SignatureCheck(NOT_CHECKED, self.reason)


class SigstoreOffline:
    """``pypi_attestations.Attestation.verify(publisher, dist, offline=True)``: certificate chain to the shipped
    Sigstore root, transparency-log inclusion, the DSSE signature over the statement, the statement's subject
    against the file, and the certificate's claims against the publisher PyPI names (the Trusted Publisher
    policy). Imported lazily, so the rest of qwatch works without it and says so."""

    name = "sigstore"

    def __init__(self) -> None:
        try:
            import pypi_attestations
            import sigstore
        except ImportError as exc:  # pragma: no cover - it is a dependency; the message is for broken installs
            self._lib: Any = None
            self._why = f"signature not checked: pypi-attestations is not importable ({exc})"
            return
        self._lib = pypi_attestations
        self._why = ""
        self.trust = f"Sigstore's trust root shipped in sigstore {sigstore.__version__}, offline"
        # Each offline verification logs "TUF repository is loaded in offline mode" at WARNING: true, and ours.
        logging.getLogger("sigstore").setLevel(logging.ERROR)

    def check(
        self, publisher: dict[str, Any], attestation: dict[str, Any], filename: str, sha256: str
    ) -> SignatureCheck:
        """See the class."""
        lib = self._lib
        if lib is None:
            return SignatureCheck(NOT_CHECKED, self._why)
        try:
            identity = _publisher_model(lib, publisher)
        except Exception as exc:  # noqa: BLE001 - a known kind with claims that do not fit it does not hold
            return SignatureCheck(INVALID, f"publisher claims unreadable: {type(exc).__name__}: {_short(exc)}")
        if identity is None:
            return SignatureCheck(
                NOT_CHECKED, f"signature not checked: publisher kind {publisher.get('kind')!r} unknown"
            )
        try:
            # An attestation that is not even well formed (a certificate that is not one) cannot hold: invalid.
            model = lib.Attestation.model_validate(attestation)
            dist = lib.Distribution(name=filename, digest=sha256)
            model.verify(identity, dist, offline=True)
        except Exception as exc:  # noqa: BLE001 - every verification failure is a finding, with its reason
            return SignatureCheck(INVALID, f"signature does not verify: {type(exc).__name__}: {_short(exc)}")
        return SignatureCheck(VERIFIED, f"signature verified ({self.trust})")


def _publisher_model(lib: Any, publisher: dict[str, Any]) -> Any:
    kinds = {
        "GitHub": "GitHubPublisher",
        "GitLab": "GitLabPublisher",
        "Google": "GooglePublisher",
        "CircleCI": "CircleCIPublisher",
    }
    cls_name = kinds.get(str(publisher.get("kind")))
    cls = getattr(lib, cls_name, None) if cls_name else None
    return cls.model_validate(publisher) if cls is not None else None


def _short(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


VERIFIERS = {"sigstore": SigstoreOffline, "off": NoSignatureCheck}
"""``QWATCH_PYPI_PROVENANCE_SIGNATURES`` and ``QWATCH_GATE_PROVENANCE_SIGNATURES`` values → verifier classes."""


def make_verifier(name: str) -> SignatureVerifier:
    """The verifier a config names (``sigstore``, the default, or ``off``)."""
    try:
        cls = VERIFIERS[name]
    except KeyError:
        raise ValueError(f"signatures must be one of {', '.join(VERIFIERS)}, not {name!r}") from None
    verifier: SignatureVerifier = cls()
    return verifier
