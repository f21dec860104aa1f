"""``qwatch gate --require-provenance``: has a pinned version lost or changed the provenance of its project?

For each pinned ``name==version`` from PyPI: one Simple page, then the provenance of the pinned release's files
and of the ``RECENT`` releases uploaded before it (the project's habit), each checked as the ingestor checks it
(subject digest always, signature offline with Sigstore's shipped trust root), and judged by the processor's own
rule (``qwatch.provenance.drift``). A drift is a finding (exit 1); anything that could not be fetched or read is
unverified (exit 2), never a pass.

The gate judges the pin against the releases before it, not against a first sight: a CI run has no history of
its own, and "the release you are about to install broke its project's habit" is the question it answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from qwatch.http import HttpError, PoliteClient
from qwatch.provenance.check import check_file, view
from qwatch.provenance.drift import RECENT, ReleaseView, habit, judge
from qwatch.provenance.fetch import FetchFailure, fetch_provenance, provenance_location, releases_in_order
from qwatch.provenance.verify import VERIFIED, SignatureVerifier
from qwatch.pypi.model import PageFile, ProjectPage
from qwatch.pypi.pages import parse_page
from subscribers.gate.facts import ProvenanceAnswer, ProvenanceVerdict, Unverified, vkey
from subscribers.gate.pypi_pages import SIMPLE_JSON

logger = logging.getLogger(__name__)

UNVERIFIED_REASON = "provenance"


Pin = tuple[str, str]


class ProvenanceFacts:
    """Looks pins up on one index with bounded concurrency."""

    def __init__(
        self, http: PoliteClient, index_url: str, verifier: SignatureVerifier, *, concurrency: int = 8
    ) -> None:
        self._http = http
        self._index = index_url.rstrip("/") + "/"
        self._verifier = verifier
        self._concurrency = max(1, concurrency)

    def lookup(self, pins: Iterable[Pin], deadline: float | None = None) -> dict[Pin, ProvenanceAnswer]:
        """A verdict or an Unverified per pin; past ``deadline`` every pin not answered is unverified."""
        todo = sorted(set(pins))
        out: dict[Pin, ProvenanceAnswer] = {}
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="qwatch-gate-prov") as pool:
            futures = {pin: pool.submit(self._one, *pin, deadline) for pin in todo}
            for pin, future in futures.items():
                try:
                    out[pin] = future.result()
                except Exception as exc:  # noqa: BLE001 - any failure is "cannot verify", never a pass
                    logger.exception("provenance lookup of %s==%s failed", *pin)
                    out[pin] = Unverified(
                        pin[0], UNVERIFIED_REASON, f"{pin[0]}=={pin[1]}: provenance lookup failed ({exc})"
                    )
        return out

    def _unverified(self, name: str, version: str, why: str) -> Unverified:
        return Unverified(name, UNVERIFIED_REASON, f"{name}=={version}: provenance cannot be checked: {why}")

    def _one(self, name: str, version: str, deadline: float | None) -> ProvenanceAnswer:
        if deadline is not None and time.monotonic() > deadline:
            return self._unverified(name, version, "the gate's deadline passed")
        url = f"{self._index}{name}/"
        try:
            result = self._http.get(url, accept=SIMPLE_JSON)
        except HttpError as exc:
            return self._unverified(name, version, f"GET {url}: {exc}")
        if result.status != 200:
            return self._unverified(name, version, f"GET {url}: HTTP {result.status}")
        try:
            page = parse_page(result.content_type, result.body, name)
        except ValueError as exc:
            return self._unverified(name, version, f"unreadable project page ({exc})")
        if page is None:
            return self._unverified(name, version, f"unreadable project page ({result.content_type})")
        ordered = releases_in_order(page)
        at = next((i for i, (v, _) in enumerate(ordered) if vkey(v) == vkey(version)), None)
        if at is None:
            return self._unverified(name, version, "the index lists no files for this version")
        views: list[ReleaseView] = []
        checked_sigs: list[str] = []
        for v, files in [*ordered[:at][-RECENT:], ordered[at]]:
            release = self._release(page, name, v, files, deadline)
            if isinstance(release, str):
                return self._unverified(name, version, release)
            view_, sigs = release
            views.append(view_)
            checked_sigs.extend(sigs)
        target = views[-1]
        drifts = judge(habit(views[:-1]), target)
        if checked_sigs and all(s == VERIFIED for s in checked_sigs):
            signatures = "signatures verified offline against Sigstore's trust root"
        else:
            signatures = "; ".join(sorted({s for s in checked_sigs if s != VERIFIED})) or "no attestations"
        return ProvenanceVerdict(tuple(drifts), signatures)

    def _release(
        self, page: ProjectPage, name: str, version: str, files: list[PageFile], deadline: float | None
    ) -> tuple[ReleaseView, list[str]] | str:
        views = []
        sigs = []
        for f in sorted(files, key=lambda f: f.filename):
            if deadline is not None and time.monotonic() > deadline:
                return "the gate's deadline passed"
            where = provenance_location(page, self._index, name, version, f)
            body: bytes | None = None
            if where is not None:
                fetched = fetch_provenance(self._http, where)
                if isinstance(fetched, FetchFailure):
                    return fetched.error
                body = fetched
            checked = check_file(f.filename, f.sha256 or "", f.upload_time, body, self._verifier)
            if checked.attested:
                sigs.append(checked.signature if checked.signature == VERIFIED else checked.detail)
            views.append(view(checked))
        times = [f.upload_time for f in files if f.upload_time is not None]
        return ReleaseView(version, min(times) if times else None, tuple(views)), sigs
