"""Real PyPI provenance objects (tests/fixtures/provenance): parsed by us, read by pypi-attestations, verified.

Our reader and ``pypi_attestations``' pydantic models are two readings of the same bytes; they must agree on the
publisher. Every signature must verify offline against the trust root shipped in ``sigstore``, and any tampering
(another digest, one flipped byte of the signature, a publisher claim that is not the certificate's) must not.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pypi_attestations
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwatch.provenance.check import check_file, invalid_reason
from qwatch.provenance.parse import ProvenanceError, parse_provenance, same_distribution
from qwatch.provenance.verify import INVALID, NOT_CHECKED, VERIFIED, NoSignatureCheck, SigstoreOffline

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "provenance"
CASES = sorted(FIXTURES.glob("*.provenance"))

EXPECTED = {
    "pypi_attestations-0.0.19.tar.gz": ("GitHub", "trailofbits/pypi-attestations", "release.yml", ""),
    "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl": (
        "CircleCI",
        "github.com/CircleCI-Public/sign-and-publish-examples",
        "fdd9283f-e619-46af-8f9c-851f7d3e8b2b/8e4f8ab2-8d7c-4827-9f15-de076d6d647f",
        "refs/heads/pypi",
    ),
    "gcb_attestation_test-0.0.0.tar.gz": ("Google", "919436158236-compute@developer.gserviceaccount.com", "", ""),
}


def _dist(provenance: Path) -> tuple[str, str]:
    dist = provenance.with_name(provenance.name.removesuffix(".provenance"))
    return dist.name, hashlib.sha256(dist.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sigstore() -> SigstoreOffline:
    return SigstoreOffline()


def test_the_fixtures_are_there() -> None:
    assert {_dist(p)[0] for p in CASES} == set(EXPECTED)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_publisher_identity_agrees_with_pypi_attestations(path: Path) -> None:
    ours = parse_provenance(path.read_bytes())
    theirs = pypi_attestations.Provenance.model_validate_json(path.read_bytes())
    assert [(p.kind, p.repository, p.workflow, p.environment) for p in ours.publishers] == [EXPECTED[_dist(path)[0]]]
    assert [b.publisher.kind for b in theirs.attestation_bundles] == [p.kind for p in ours.publishers]
    claims = theirs.attestation_bundles[0].publisher.model_dump()
    # Each identity part we keep is a claim pypi-attestations reads too (repository, workflow, e-mail, VCS origin).
    for part in EXPECTED[_dist(path)[0]][1:]:
        for piece in part.split("/") if ours.publishers[0].kind == "CircleCI" else [part]:
            assert not piece or any(piece in str(v) for v in claims.values()), (piece, claims)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_subject_is_the_real_file(path: Path) -> None:
    filename, sha = _dist(path)
    (bundle,) = parse_provenance(path.read_bytes()).bundles
    assert [(a.subject_name, a.subject_sha256) for a in bundle.attestations] == [(filename, sha)]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_signature_verifies_offline_and_tampering_does_not(path: Path, sigstore: SigstoreOffline) -> None:
    filename, sha = _dist(path)
    body = path.read_bytes()
    good = check_file(filename, sha, None, body, sigstore)
    assert (good.attested, good.digest_ok, good.signature) == (True, True, VERIFIED), good.detail
    assert "trust root shipped in sigstore" in good.detail

    other = check_file(filename, "0" * 64, None, body, sigstore)
    assert (other.digest_ok, other.signature) == (False, INVALID)
    assert "the index says 0000000000000000" in other.detail

    doc = json.loads(body)
    att = doc["attestation_bundles"][0]["attestations"][0]
    signature = bytearray(base64.b64decode(att["envelope"]["signature"]))
    signature[len(signature) // 2] ^= 0x01
    att["envelope"]["signature"] = base64.b64encode(bytes(signature)).decode()
    flipped = check_file(filename, sha, None, json.dumps(doc).encode(), sigstore)
    assert (flipped.digest_ok, flipped.signature) == (True, INVALID), flipped.detail


def test_a_publisher_claim_that_is_not_the_certificates_does_not_verify(sigstore: SigstoreOffline) -> None:
    path = FIXTURES / "pypi_attestations-0.0.19.tar.gz.provenance"
    filename, sha = _dist(path)
    doc = json.loads(path.read_bytes())
    doc["attestation_bundles"][0]["publisher"]["repository"] = "attacker/pypi-attestations"
    forged = check_file(filename, sha, None, json.dumps(doc).encode(), sigstore)
    assert forged.publishers[0].repository == "attacker/pypi-attestations"
    assert forged.signature == INVALID, forged.detail


def test_off_says_so_and_still_checks_the_digest() -> None:
    path = CASES[0]
    filename, sha = _dist(path)
    checked = check_file(filename, "f" * 64, None, path.read_bytes(), NoSignatureCheck())
    assert (checked.digest_ok, checked.signature) == (False, NOT_CHECKED)
    assert checked.detail.endswith("signature not checked (signatures: off)")


def test_no_body_is_no_attestation_and_an_unreadable_one_does_not_hold() -> None:
    none = check_file("a-1.0.tar.gz", "a" * 64, None, None, NoSignatureCheck())
    assert (none.attested, none.digest_ok, none.detail) == (False, None, "no attestation")
    broken = check_file("a-1.0.tar.gz", "a" * 64, None, b'{"version": 1}', NoSignatureCheck())
    assert (broken.attested, broken.digest_ok, broken.signature) == (True, False, INVALID)
    assert "attestation_bundles" in broken.detail


def test_distribution_names_compare_normalized() -> None:
    assert same_distribution("Foo_Bar-1.0.tar.gz", "foo_bar-1.0.tar.gz")
    assert same_distribution("foo.bar-1.0-py3-none-any.whl", "foo_bar-1.0-py3-none-any.whl")
    assert not same_distribution("foo-1.0.tar.gz", "foo-1.1.tar.gz")
    assert not same_distribution("foo-1.0-py3-none-any.whl", "foo-1.0.tar.gz")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_any_body_parses_or_says_why(body: bytes) -> None:
    try:
        parse_provenance(body)
    except ProvenanceError as exc:
        assert str(exc)


def test_tail_renders_a_provenance_observation_in_one_safe_line() -> None:
    from app.render import render
    from testing.samples import T0, provenance

    obs = provenance("demo\x1b[31m", [("1.0", T0, [("demo-1.0.tar.gz", "org/demo", "ok")]),
                                      ("1.1", T0 + 1, [("demo-1.1.tar.gz", None, "ok"), ("x.whl", "o/x", "digest")])],
                     T0 + 2)  # fmt: skip
    line = render(obs)
    assert "\x1b" not in line and "\n" not in line
    assert "ProvenanceObserved" in line and "releases=2 newest 1.1 files=3 attested=2 holding=1" in line


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from(CASES),
    st.sampled_from(["statement", "signature"]),
    st.integers(min_value=0),
    st.integers(min_value=1, max_value=255),
)
def test_any_change_to_what_is_signed_never_verifies(path: Path, part: str, where: int, xor: int) -> None:
    """Real attestations, one byte of the signed statement or of the signature changed anywhere: never ``verified``
    with a matching digest, so drift always sees INVALID (fail closed on anything that does not hold)."""
    filename, sha = _dist(path)
    doc = json.loads(path.read_bytes())
    envelope = doc["attestation_bundles"][0]["attestations"][0]["envelope"]
    raw = bytearray(base64.b64decode(envelope[part]))
    raw[where % len(raw)] ^= xor
    envelope[part] = base64.b64encode(bytes(raw)).decode()
    checked = check_file(filename, sha, None, json.dumps(doc).encode(), _SIGSTORE)
    assert checked.attested
    assert invalid_reason(checked), (part, where % len(raw), checked.detail)


_SIGSTORE = SigstoreOffline()
