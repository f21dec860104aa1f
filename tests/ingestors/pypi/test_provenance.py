"""``pypi-provenance`` against the local PyPI: what it fetches, what it emits, and what it refuses to guess.

Real HTTP on 127.0.0.1; real provenance objects (tests/fixtures/provenance) served for the real distribution
bytes' digest, verified offline against Sigstore's shipped trust root; synthetic ones for digest mismatches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestors.pypi.config import ProvenanceIngestConfig
from ingestors.pypi.provenance_ingest import ProvenanceIngestor, ProvenancePassReport
from ingestors.pypi.watchset import WatchSet
from qwatch.events import DeadLetter, ProvenanceObserved
from qwatch.provenance.verify import NoSignatureCheck, SignatureVerifier, SigstoreOffline
from qwatch.sinks import MemorySink
from testing.fakepypi import Fault
from testing.fakepypi.integrity import github_publisher
from tests.pypi_support import Served, fresh_metrics, of_type, polite, serve_fake

T0 = 1767323045.0
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "provenance"
REAL = "pypi_attestations-0.0.19.tar.gz"


@pytest.fixture
def pypi() -> Iterator[Served]:
    yield from serve_fake()


class Harness:
    def __init__(
        self, base: str, watched: list[str], verifier: SignatureVerifier | None = None, state: Path | None = None
    ) -> None:
        self.metrics = fresh_metrics()
        self.sink = MemorySink()
        self.watch = WatchSet(self.metrics)
        for name in watched:
            self.watch.add(name, "test")
        cfg = ProvenanceIngestConfig(index_url=base + "/simple/", workers=2, releases=3)
        client = polite(self.metrics, "pypi-provenance")
        self.ingestor = ProvenanceIngestor(
            cfg, client, self.sink, self.metrics, self.watch, verifier or NoSignatureCheck(), state
        )

    def run(self) -> tuple[ProvenancePassReport, list[object]]:
        before = len(self.sink.events)
        report = self.ingestor.run_pass()
        return report, self.sink.events[before:]


def _integrity_requests(fake: object) -> list[str]:
    return [path for _, path, _ in fake.requests if path.startswith("/integrity/")]  # type: ignore[attr-defined]


def test_real_provenance_through_the_local_pypi_verifies(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("pypi-attestations", {"0.0.19": [REAL]}, upload_time=T0)
    fake.use_real_file(REAL, (FIXTURES / REAL).read_bytes())
    fake.attest(REAL, body=(FIXTURES / f"{REAL}.provenance").read_bytes())
    h = Harness(base, ["pypi-attestations"], SigstoreOffline())
    report, events = h.run()
    assert report.ok and report.dead_letters == 0
    (obs,) = of_type(events, ProvenanceObserved)
    (release,) = obs.releases
    (f,) = release.files
    assert (f.filename, f.sha256) == (REAL, hashlib.sha256((FIXTURES / REAL).read_bytes()).hexdigest())
    assert (f.attested, f.digest_ok, f.signature) == (True, True, "verified"), f.detail
    assert [(p.kind, p.repository, p.workflow) for p in f.publishers] == [
        ("GitHub", "trailofbits/pypi-attestations", "release.yml")
    ]
    # The page (API 1.4) named the provenance URL; nothing else was guessed.
    assert _integrity_requests(fake) == [f"/integrity/pypi-attestations/0.0.19/{REAL}/provenance"]


def test_files_are_checked_once_and_unchanged_projects_emit_nothing(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("demo", {"1.0": ["demo-1.0.tar.gz"], "1.1": ["demo-1.1.tar.gz"]}, upload_time=T0)
    fake.attest("demo-1.0.tar.gz")
    fake.attest("demo-1.1.tar.gz")
    h = Harness(base, ["demo"])
    _, first = h.run()
    assert len(of_type(first, ProvenanceObserved)) == 1
    assert len(_integrity_requests(fake)) == 2
    _, second = h.run()
    assert second == [] and len(_integrity_requests(fake)) == 2  # a 304 page: no provenance asked again
    fake.add_release("demo", "1.2", ["demo-1.2.tar.gz"], upload_time=T0 + 60)
    _, third = h.run()
    (obs,) = of_type(third, ProvenanceObserved)
    assert [r.version for r in obs.releases] == ["1.0", "1.1", "1.2"]
    assert [f.attested for r in obs.releases for f in r.files] == [True, True, False]
    # Only the new file was asked about (the page said "provenance": null, so not even that).
    assert len(_integrity_requests(fake)) == 2


def test_a_synthetic_attestation_of_another_digest_does_not_hold(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("demo", {"1.0": ["demo-1.0.tar.gz"]}, upload_time=T0)
    fake.attest("demo-1.0.tar.gz", github_publisher("org/demo"), subject_sha256="ab" * 32)
    _, events = Harness(base, ["demo"]).run()
    (f,) = of_type(events, ProvenanceObserved)[0].releases[0].files
    assert (f.attested, f.digest_ok, f.signature) == (True, False, "not-checked")
    assert "the index says" in f.detail and "signature not checked" in f.detail


def test_an_unanswered_provenance_request_emits_nothing_and_is_retried(pypi: Served) -> None:
    fake, base = pypi
    fake.add_project("demo", {"1.0": ["demo-1.0.tar.gz"], "1.1": ["demo-1.1.tar.gz"]}, upload_time=T0)
    fake.attest("demo-1.0.tar.gz")
    fake.attest("demo-1.1.tar.gz")
    fake.inject(Fault("503", path_prefix="/integrity/demo/1.1/", count=10))
    h = Harness(base, ["demo"])
    report, events = h.run()
    # Half a project read as "1.1 has no attestation" would be a false PROVENANCE_LOST: nothing is emitted.
    assert of_type(events, ProvenanceObserved) == []
    (dl,) = of_type(events, DeadLetter)
    assert dl.package == "demo" and "/integrity/demo/1.1/" in dl.pointer
    assert report.pending == ["demo"]
    fake.clear_faults()
    _, events = h.run()
    (obs,) = of_type(events, ProvenanceObserved)
    assert [f.attested for r in obs.releases for f in r.files] == [True, True]


def test_an_older_page_without_provenance_keys_asks_the_integrity_api(pypi: Served) -> None:
    """API 1.1 pages (this machine's PyPI proxy serves those) say nothing: a 404 'No provenance available' means
    none, any other 404 means no answer."""
    fake, base = pypi
    fake.add_project("demo", {"1.0": ["demo-1.0.tar.gz"], "1.1": ["demo-1.1.tar.gz"]}, upload_time=T0)
    fake.attest("demo-1.0.tar.gz")
    h = Harness(base, ["demo"])
    # An old-API page: fetch it once through the ingestor's own parser, then drop the provenance links.
    from qwatch.pypi.model import PageFile, ProjectPage

    page = ProjectPage("demo", "active", None, "1.1", 1, ("1.0", "1.1"), (), (
        PageFile("demo-1.0.tar.gz", "1.0", False, upload_time=int(T0 * 1000), sha256="00" * 32),
        PageFile("demo-1.1.tar.gz", "1.1", False, upload_time=int(T0 * 1000) + 1, sha256="11" * 32),
    ))  # fmt: skip
    look_files = {}
    from qwatch.provenance.fetch import fetch_provenance, provenance_location

    for f in page.files:
        where = provenance_location(page, base + "/simple/", "demo", f.version or "", f)
        assert where is not None and where.startswith(base + "/integrity/demo/")
        look_files[f.filename] = fetch_provenance(h.ingestor.client, where)
    assert isinstance(look_files["demo-1.0.tar.gz"], bytes)
    assert look_files["demo-1.1.tar.gz"] is None
    missing = fetch_provenance(h.ingestor.client, base + "/integrity/demo/9.9/demo-9.9.tar.gz/provenance")
    assert not isinstance(missing, (bytes, type(None))) and missing.reason == "provenance-not-found"


def test_checked_files_survive_a_restart(pypi: Served, tmp_path: Path) -> None:
    fake, base = pypi
    fake.add_project("demo", {"1.0": ["demo-1.0.tar.gz"]}, upload_time=T0)
    fake.attest("demo-1.0.tar.gz")
    state = tmp_path / "prov.state.gz"
    _, first = Harness(base, ["demo"], state=state).run()
    assert len(of_type(first, ProvenanceObserved)) == 1
    fake.add_release("demo", "1.1", ["demo-1.1.tar.gz"], upload_time=T0 + 60)
    _, second = Harness(base, ["demo"], state=state).run()
    (obs,) = of_type(second, ProvenanceObserved)
    assert [r.version for r in obs.releases] == ["1.0", "1.1"]
    assert len(_integrity_requests(fake)) == 1  # 1.0 was not fetched again after the restart
