"""Composition of the gate: which facts to fetch from where, merged, then handed to the pure policy.

Broker mode (a Kafka bootstrap is configured) takes status, release removals and OpenSSF reports from the
processor's state; packages the processor does not know, and upload times for the soak window (which the state
does not keep), still come from the index. If any needed source fails, the affected packages are unverified
and the gate exits 2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from qwatch import config as cfgmod
from subscribers.gate.facts import Answer, PackageFacts, Report, Unverified
from subscribers.gate.facts_pypi import PyPIFacts
from subscribers.gate.policy import GateResult, Sources, evaluate, split_sources
from subscribers.gate.provenance import ProvenanceFacts
from subscribers.gate.soak import DEFAULT_SOAK, DEFAULT_SOAK_OTHER, SoakPolicy, load_packages, parse_duration
from subscribers.gate.suppressions import Suppression
from subscribers.inventory.lockfiles import Inventory

logger = logging.getLogger(__name__)

_P = "GATE_"
UNKNOWN = "unknown"
"""The processor's status for a package no PyPI source has shown it yet (it may still carry reports)."""
FACT_MODES = ("auto", "pypi", "kafka")


@cfgmod.component(_P)
@dataclass(frozen=True)
class GateConfig:
    """``qwatch gate`` settings (``QWATCH_GATE_*``); CLI flags override them."""

    index_url: str = field(default="https://pypi.org/simple/", metadata={"help": "index to check, as pip takes it"})
    soak: str = field(default=DEFAULT_SOAK, metadata={"help": "soak window for high-blast-radius packages"})
    soak_other: str = field(default=DEFAULT_SOAK_OTHER, metadata={"help": "soak window for every other package"})
    soak_packages: Path | None = field(default=None, metadata={"help": "file listing the packages that get --soak"})
    cache_dir: Path | None = field(default=None, metadata={"help": "ETag cache directory for index answers"})
    concurrency: int = field(default=16, metadata={"help": "parallel index lookups"})
    facts: str = field(default="auto", metadata={"help": "auto (kafka when a bootstrap is set), pypi or kafka"})
    kafka_timeout: float = field(default=30.0, metadata={"help": "seconds to read processor state from Kafka"})
    timeout: float = field(
        default=300.0,
        metadata={"help": "overall deadline in seconds; past it every unchecked package is unverified (exit 2)"},
    )
    feed: str | None = field(
        default=None,
        metadata={"help": "the OpenSSF malicious-packages repository (checkout or git URL) or an OSV zip to check"},
    )
    feed_max_age: str = field(
        default="24h", metadata={"help": "a feed whose newest commit (or record) is older than this is exit 2"}
    )
    allow_index: tuple[str, ...] = field(
        default=(), metadata={"help": "other indexes whose packages are accepted unchecked (comma-separated URLs)"}
    )
    allow_empty: bool = field(default=False, metadata={"help": "exit 0 when the lockfile has nothing to check"})
    require_provenance: bool = field(
        default=False,
        metadata={"help": "fail pins whose PEP 740 provenance was lost, changed or invalid; unfetchable is exit 2"},
    )
    provenance_signatures: str = field(
        default="sigstore", metadata={"help": "sigstore (verify offline with the shipped trust root) or off"}
    )

    def __post_init__(self) -> None:
        cfgmod.require(
            self.index_url.startswith(("http://", "https://")),
            _P,
            "index_url",
            "expected an http(s) URL such as https://pypi.org/simple/",
        )
        for name in ("soak", "soak_other"):
            try:
                ms = parse_duration(getattr(self, name))
            except ValueError as exc:
                raise cfgmod.ConfigError(f"{cfgmod.env_name(_P, name)}: {exc}") from None
            cfgmod.require(0 <= ms <= 365 * 86400 * 1000, _P, name, "expected 0 to 365 days")
        cfgmod.require(1 <= self.concurrency <= 256, _P, "concurrency", "expected 1-256")
        cfgmod.require(self.facts in FACT_MODES, _P, "facts", f"one of {', '.join(FACT_MODES)}")
        cfgmod.require(
            self.provenance_signatures in ("sigstore", "off"), _P, "provenance_signatures", "sigstore or off"
        )
        cfgmod.require(0 < self.kafka_timeout <= 600, _P, "kafka_timeout", "expected 0 < seconds <= 600")
        cfgmod.require(0 < self.timeout <= 86400, _P, "timeout", "expected 0 < seconds <= 86400")
        try:
            cfgmod.require(parse_duration(self.feed_max_age) > 0, _P, "feed_max_age", "expected a duration > 0")
        except ValueError as exc:
            raise cfgmod.ConfigError(f"{cfgmod.env_name(_P, 'feed_max_age')}: {exc}") from None
        for url in self.allow_index:
            cfgmod.require(url.startswith(("http://", "https://")), _P, "allow_index", "expected http(s) URLs")

    def soak_policy(self) -> SoakPolicy:
        """The windows and the list they apply to."""
        return SoakPolicy(load_packages(self.soak_packages), parse_duration(self.soak), parse_duration(self.soak_other))


KafkaLoader = Callable[[], Mapping[str, PackageFacts]]


class FeedReports(Protocol):
    """The OpenSSF feed read directly (``--feed``): live reports per normalized PyPI name."""

    label: str

    def reports_for(self, name: str) -> Sequence[Report]: ...


@dataclass(frozen=True, slots=True)
class GateRun:
    """The result and a label saying where the facts came from."""

    result: GateResult
    facts_label: str


@dataclass(frozen=True, slots=True)
class GateOptions:
    """How to judge: which indexes count, accepted findings, whether an empty lockfile may pass, the deadline."""

    sources: Sources = field(default_factory=Sources)
    suppressions: tuple[Suppression, ...] = ()
    allow_empty: bool = False
    deadline: float | None = None
    """``time.monotonic()`` value past which nothing more is asked; unasked packages are unverified."""
    provenance: ProvenanceFacts | None = None
    """``--require-provenance``: every pin's provenance is judged too."""


def run_gate(
    inventory: Inventory,
    pypi: PyPIFacts,
    soak: SoakPolicy,
    now_ms: int,
    kafka: KafkaLoader | None = None,
    feed: FeedReports | None = None,
    options: GateOptions | None = None,
) -> GateRun:
    """Fetch what the policy needs and evaluate; never raises for an unreachable source."""
    options = options or GateOptions()
    check, _, _ = split_sources(inventory, options.sources)
    wanted: dict[str, set[str]] = {}
    for package in check:
        versions = wanted.setdefault(package.normalized, set())
        if package.version is not None:
            versions.add(package.version)
    soak_for = {name for name in wanted if soak.window_for(name) > 0}
    known: Mapping[str, PackageFacts] = {}
    labels = ["pypi"]
    if kafka is not None:
        labels = ["processor", "pypi"]
        try:
            known = kafka()
        except Exception as exc:  # noqa: BLE001 - any broker failure means "cannot verify", never a pass
            logger.warning("cannot read processor state from Kafka: %s", exc)
            why = f"processor state unreadable from Kafka ({type(exc).__name__}: {exc})"
            failed: dict[str, Answer] = {n: Unverified(n, "kafka", why) for n in wanted}
            return GateRun(_evaluate(inventory, failed, now_ms, soak, options), "+".join(labels))
    # The index is asked about every package the processor has not established a status for: one it never
    # saw, and one it knows only from a report (status unknown), whose report must not be lost (it is merged).
    ask = {n: v for n, v in wanted.items() if n not in known or known[n].status == UNKNOWN or n in soak_for}
    direct = pypi.lookup(ask, soak_for, deadline=options.deadline) if ask else {}
    answers: dict[str, Answer] = {name: _merge(name, known.get(name), direct.get(name), soak_for) for name in wanted}
    if feed is not None:
        labels.append("openssf-feed")
        answers = {name: _with_feed(a, feed.reports_for(name)) for name, a in answers.items()}
    return GateRun(_evaluate(inventory, answers, now_ms, soak, options), "+".join(labels))


def _evaluate(
    inventory: Inventory, answers: Mapping[str, Answer], now_ms: int, soak: SoakPolicy, options: GateOptions
) -> GateResult:
    provenance = None
    if options.provenance is not None:
        check, _, _ = split_sources(inventory, options.sources)
        pins = {(p.normalized, p.version) for p in check if p.version is not None}
        provenance = options.provenance.lookup(pins, options.deadline)
    return evaluate(
        inventory,
        answers,
        now_ms,
        soak,
        sources=options.sources,
        suppressions=options.suppressions,
        allow_empty=options.allow_empty,
        provenance=provenance,
    )


def _merge(name: str, state: PackageFacts | None, index: Answer | None, soak_for: set[str]) -> Answer:
    if state is None:
        return index or Unverified(name, "no-answer", "no facts were fetched")
    if state.status == UNKNOWN:
        if not isinstance(index, PackageFacts):
            return index or Unverified(name, "no-answer", "no facts were fetched")
        return replace(
            index,
            quarantined_versions=index.quarantined_versions | state.quarantined_versions,
            removed_versions=index.removed_versions | state.removed_versions,
            reports=(*index.reports, *state.reports),
            origin=f"{state.origin}+{index.origin}",
        )
    if name in soak_for and isinstance(index, Unverified):
        return index
    if name in soak_for and isinstance(index, PackageFacts):
        return replace(state, first_upload=index.first_upload)
    return state


def _with_feed(answer: Answer, reports: Sequence[Report]) -> Answer:
    if not reports or not isinstance(answer, PackageFacts):
        return answer
    return replace(answer, reports=(*answer.reports, *reports))
