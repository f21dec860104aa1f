"""``--require-provenance``: the policy's handling of verdicts (pure), and the lookup against the local PyPI.

The lookup judges a pin against the releases uploaded *before it* (a backport is judged against what preceded its
upload, not against the newest release), and anything it cannot fetch or read is unverified, never a pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qwatch.provenance.drift import Drift
from qwatch.provenance.verify import NoSignatureCheck
from subscribers.gate.facts import PackageFacts, ProvenanceVerdict, Unverified, vkey, vkeys
from subscribers.gate.policy import EXIT_CLEAN, EXIT_UNVERIFIED, EXIT_VIOLATION, evaluate
from subscribers.gate.provenance import ProvenanceFacts
from subscribers.gate.soak import SoakPolicy
from subscribers.gate.suppressions import Suppression
from subscribers.inventory.lockfiles import Inventory, LockedPackage, PackageSource
from testing.fakepypi import Fault
from testing.fakepypi.integrity import github_publisher
from tests.pypi_support import Served, fresh_metrics, polite, serve_fake

NOW = 1_800_000_000_000
NO_SOAK = SoakPolicy(frozenset(), 0, 0)
T0 = 1767323045.0
DAY = 86400.0


def _inventory(*pins: tuple[str, str | None]) -> Inventory:
    packages = tuple(
        LockedPackage(n, n, v, PackageSource("pypi", None), (), None, True, ())  # type: ignore[arg-type]
        for n, v in pins
    )
    return Inventory("requirements.txt", "requirements.txt", "app", packages)


def _facts(name: str) -> PackageFacts:
    versions = ("1.0", "1.1", "1.2")
    return PackageFacts(name, "active", vkeys(versions), "pypi", first_upload={vkey(v): 0 for v in versions})


LOST = Drift("PROVENANCE_LOST", "", "no attestation for a-1.2.tar.gz; releases 1.1 were attested by GitHub o/a")


def _run(inv: Inventory, verdicts: dict[tuple[str, str], object], **kw: object) -> object:
    answers = {p.normalized: _facts(p.normalized) for p in inv.packages}
    return evaluate(inv, answers, NOW, NO_SOAK, provenance=verdicts, **kw)  # type: ignore[arg-type]


def test_drift_is_a_finding_and_no_drift_is_clean() -> None:
    inv = _inventory(("a", "1.2"), ("b", "1.1"))
    result = _run(
        inv, {("a", "1.2"): ProvenanceVerdict((LOST,), "no attestations"), ("b", "1.1"): ProvenanceVerdict((), "x")}
    )
    assert result.exit_code == EXIT_VIOLATION  # type: ignore[attr-defined]
    (finding,) = result.findings  # type: ignore[attr-defined]
    assert (finding.package, finding.version, finding.reason) == ("a", "1.2", "provenance-lost")
    assert "maintainers confirm" in finding.message and finding.links == ("https://pypi.org/project/a/1.2/",)
    clean = _run(inv, {("a", "1.2"): ProvenanceVerdict((), "x"), ("b", "1.1"): ProvenanceVerdict((), "x")})
    assert clean.exit_code == EXIT_CLEAN  # type: ignore[attr-defined]


def test_no_verdict_an_unverified_one_or_an_unpinned_package_is_exit_2() -> None:
    for inv, verdicts in (
        (_inventory(("a", "1.2")), {}),
        (_inventory(("a", "1.2")), {("a", "1.2"): Unverified("a", "provenance", "a==1.2: HTTP 503")}),
        (_inventory(("a", None)), {}),
    ):
        result = _run(inv, verdicts)
        assert result.exit_code == EXIT_UNVERIFIED, inv  # type: ignore[attr-defined]
        assert [u.reason for u in result.unverified] == ["provenance"]  # type: ignore[attr-defined]


def test_a_suppression_naming_the_finding_kind_covers_it() -> None:
    inv = _inventory(("a", "1.2"))
    entry = Suppression(
        "a", "1.2", "provenance-lost", "moved to a new CI, confirmed with the maintainers", NOW + 1, "x"
    )
    result = _run(inv, {("a", "1.2"): ProvenanceVerdict((LOST,), "")}, suppressions=(entry,))
    assert result.exit_code == EXIT_CLEAN and len(result.suppressed) == 1  # type: ignore[attr-defined]


@pytest.fixture
def pypi() -> Iterator[Served]:
    yield from serve_fake()


def _lookup(base: str, *pins: tuple[str, str]) -> dict[tuple[str, str], object]:
    metrics = fresh_metrics()
    facts = ProvenanceFacts(polite(metrics, "gate"), base + "/simple/", NoSignatureCheck(), concurrency=2)
    return facts.lookup(pins)  # type: ignore[return-value]


def test_a_pin_is_judged_against_the_releases_uploaded_before_it(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("a", {"1.0": ["a-1.0.tar.gz"]}, upload_time=T0)
    for version, day in (("1.1", 1), ("2.0", 2), ("2.1", 3)):
        fake.add_release("a", version, [f"a-{version}.tar.gz"], upload_time=T0 + day * DAY)
    fake.add_release("a", "1.2", ["a-1.2.tar.gz"], upload_time=T0 + 4 * DAY)  # a backport, after 2.1
    for f in ("a-1.0.tar.gz", "a-1.1.tar.gz", "a-2.0.tar.gz"):
        fake.attest(f, github_publisher("org/a"))
    fake.attest("a-1.2.tar.gz", github_publisher("org/a"))
    got = _lookup(base, ("a", "2.0"), ("a", "2.1"), ("a", "1.2"), ("a", "1.0"))
    kinds = {pin: [d.kind for d in v.drifts] for pin, v in got.items()}  # type: ignore[attr-defined]
    # 2.1 has no attestation after 1.0, 1.1, 2.0 all had: lost. 1.2 came after 2.1 (unattested): no habit broken.
    assert kinds == {("a", "2.0"): [], ("a", "2.1"): ["PROVENANCE_LOST"], ("a", "1.2"): [], ("a", "1.0"): []}


def test_what_cannot_be_fetched_is_unverified(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("a", {"1.0": ["a-1.0.tar.gz"], "1.1": ["a-1.1.tar.gz"]}, upload_time=T0)
    fake.attest("a-1.0.tar.gz", github_publisher("org/a"))
    fake.add_project("gone", {"1.0": ["gone-1.0.tar.gz"]}, upload_time=T0)
    fake.quarantine("gone")
    fake.inject(Fault("503", path_prefix="/integrity/a/1.0/", count=100))
    got = _lookup(base, ("a", "1.1"), ("a", "9.9"), ("gone", "1.0"), ("nope", "1.0"))
    assert all(isinstance(v, Unverified) and v.reason == "provenance" for v in got.values()), got
    assert "HTTP 503" in got[("a", "1.1")].message  # type: ignore[attr-defined]
    assert "no files for this version" in got[("a", "9.9")].message  # type: ignore[attr-defined]


def test_every_finding_reason_can_be_named_by_a_suppression() -> None:
    from subscribers.gate.policy import REASONS
    from subscribers.gate.suppressions import KINDS

    assert tuple(REASONS) == KINDS


@pytest.mark.parametrize("kind", ["429", "500", "503", "truncate"])
def test_a_hostile_or_failing_integrity_api_never_yields_a_clean_verdict(pypi: Served, kind: str) -> None:
    """Whatever goes wrong answering for the pinned release's provenance, the verdict is unverified or a drift,
    never "no drift" (the gate's exit 0)."""
    fake, base = pypi
    fake.add_project("a", {"1.0": ["a-1.0.tar.gz"]}, upload_time=T0)
    fake.add_release("a", "1.1", ["a-1.1.tar.gz"], upload_time=T0 + DAY)
    for f in ("a-1.0.tar.gz", "a-1.1.tar.gz"):
        fake.attest(f, github_publisher("org/a"))
    fake.inject(Fault(kind, path_prefix="/integrity/a/1.1/", count=100, retry_after=0.01))  # type: ignore[arg-type]
    (answer,) = _lookup(base, ("a", "1.1")).values()
    assert isinstance(answer, Unverified) or answer.drifts, answer  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [b"<html>maintenance</html>", b"{}", b'{"version": 1, "attestation_bundles": []}', b"\xff\xfe", b"null"],
)
def test_a_provenance_body_that_is_not_one_is_a_finding(pypi: Served, body: bytes) -> None:
    fake, base = pypi
    fake.add_project("a", {"1.0": ["a-1.0.tar.gz"]}, upload_time=T0)
    fake.add_release("a", "1.1", ["a-1.1.tar.gz"], upload_time=T0 + DAY)
    fake.attest("a-1.0.tar.gz", github_publisher("org/a"))
    fake.attest("a-1.1.tar.gz", body=body)
    (answer,) = _lookup(base, ("a", "1.1")).values()
    assert [d.kind for d in answer.drifts] == ["PROVENANCE_INVALID"]  # type: ignore[attr-defined]
