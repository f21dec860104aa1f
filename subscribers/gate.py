"""Composition of the gate: which facts to fetch from where, merged, then handed to the pure policy.

Broker mode (a Kafka bootstrap is configured) takes status, release removals and OpenSSF reports from the
processor's state; packages the processor does not know, and upload times for the soak window (which the state
does not keep), still come from the index. If any needed source fails, the affected packages are unverified
and the gate exits 2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qwatch import config as cfgmod
from subscribers.facts import Answer, PackageFacts, Unverified
from subscribers.lockfiles import Inventory
from subscribers.policy import GateResult, evaluate, split_sources
from subscribers.pypi_facts import PyPIFacts
from subscribers.soak import DEFAULT_SOAK, DEFAULT_SOAK_OTHER, SoakPolicy, load_packages, parse_duration

logger = logging.getLogger(__name__)

_P = "GATE_"
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
        cfgmod.require(0 < self.kafka_timeout <= 600, _P, "kafka_timeout", "expected 0 < seconds <= 600")

    def soak_policy(self) -> SoakPolicy:
        """The windows and the list they apply to."""
        return SoakPolicy(load_packages(self.soak_packages), parse_duration(self.soak), parse_duration(self.soak_other))


KafkaLoader = Callable[[], Mapping[str, PackageFacts]]


@dataclass(frozen=True, slots=True)
class GateRun:
    """The result and a label saying where the facts came from."""

    result: GateResult
    facts_label: str


def run_gate(
    inventory: Inventory, pypi: PyPIFacts, soak: SoakPolicy, now_ms: int, kafka: KafkaLoader | None = None
) -> GateRun:
    """Fetch what the policy needs and evaluate; never raises for an unreachable source."""
    check, _ = split_sources(inventory)
    wanted: dict[str, set[str]] = {}
    for package in check:
        versions = wanted.setdefault(package.normalized, set())
        if package.version is not None:
            versions.add(package.version)
    soak_for = {name for name in wanted if soak.window_for(name) > 0}
    known: Mapping[str, PackageFacts] = {}
    label = "pypi"
    if kafka is not None:
        label = "processor+pypi"
        try:
            known = kafka()
        except Exception as exc:  # noqa: BLE001 - any broker failure means "cannot verify", never a pass
            logger.warning("cannot read processor state from Kafka: %s", exc)
            why = f"processor state unreadable from Kafka ({type(exc).__name__}: {exc})"
            return GateRun(evaluate(inventory, {n: Unverified(n, "kafka", why) for n in wanted}, now_ms, soak), label)
    ask = {n: v for n, v in wanted.items() if n not in known or n in soak_for}
    direct = pypi.lookup(ask, soak_for) if ask else {}
    answers: dict[str, Answer] = {}
    for name in wanted:
        from_kafka, from_pypi = known.get(name), direct.get(name)
        if from_kafka is None:
            answers[name] = from_pypi or Unverified(name, "no-answer", "no facts were fetched")
        elif name in soak_for and isinstance(from_pypi, Unverified):
            answers[name] = from_pypi
        elif name in soak_for and isinstance(from_pypi, PackageFacts):
            answers[name] = _with_uploads(from_kafka, from_pypi)
        else:
            answers[name] = from_kafka
    return GateRun(evaluate(inventory, answers, now_ms, soak), label)


def _with_uploads(state: PackageFacts, index: PackageFacts) -> PackageFacts:
    return PackageFacts(
        state.package,
        state.status,
        state.versions,
        state.origin,
        state.yanked,
        state.quarantined_versions,
        state.removed_versions,
        index.first_upload,
        state.reports,
    )
