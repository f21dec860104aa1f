"""Typed events that flow between components, mirrored one-to-one by the ``.avsc`` files in ``schemas/``.

Frozen so an event cannot change after its deterministic id was computed; tuples instead of lists for the same
reason. A parity test (tests/qwatch/events/test_schema_parity.py) keeps these classes and the schemas identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from qwatch.events.outputs import Alert as Alert
from qwatch.events.outputs import InventoryPackage as InventoryPackage
from qwatch.events.outputs import InventoryRecord as InventoryRecord

# The processor's state record lives with the processor; re-exported here so TOP_LEVEL, the codec and the
# schema parity test know it and its nested records.
from qwatch.events.state import FactRecord as FactRecord
from qwatch.events.state import Mark as Mark
from qwatch.events.state import PackageStateRecord as PackageStateRecord
from qwatch.events.state import ProvenanceFileRecord as ProvenanceFileRecord
from qwatch.events.state import ProvenanceRecord as ProvenanceRecord
from qwatch.events.state import ReleaseRecord as ReleaseRecord
from qwatch.events.state import ReportRecord as ReportRecord
from qwatch.events.state import Sighting as Sighting
from qwatch.events.state import StatusPoint as StatusPoint
from qwatch.frozen import fast_init

OBSERVATION_SOURCES = ("openssf", "pypi-simple", "pypi-json", "pypi-journal", "pypi-provenance")
"""Sources whose events are observations, consumed by the processor."""


@fast_init
@dataclass(frozen=True, slots=True)
class ReportObserved:
    """One change to one OpenSSF report; the unit the processor joins with PyPI signals."""

    SCHEMA: ClassVar[str] = "ReportObserved"
    event_id: str
    source: str
    ecosystem: str
    package: str
    observed_at: int
    upstream_time: int | None
    report_id: str
    change: str
    package_name: str
    affected_versions: tuple[str, ...]
    all_versions: bool
    summary: str
    published: str | None
    modified: str | None
    withdrawn: str | None
    aliases: tuple[str, ...]
    origins: tuple[str, ...]
    commit: str
    path: str


@fast_init
@dataclass(frozen=True, slots=True)
class ProjectStatusObserved:
    """A fetched project page: the authoritative PEP 792 status and the installable versions."""

    SCHEMA: ClassVar[str] = "ProjectStatusObserved"
    event_id: str
    source: str
    ecosystem: str
    package: str
    observed_at: int
    upstream_time: int | None
    status: str
    last_serial: int | None
    versions: tuple[str, ...]
    yanked_versions: tuple[str, ...]
    http_status: int


@fast_init
@dataclass(frozen=True, slots=True)
class IndexMembershipObserved:
    """A root-index membership change; only a hint, because CDN copies of the root lag by up to a day."""

    SCHEMA: ClassVar[str] = "IndexMembershipObserved"
    event_id: str
    source: str
    ecosystem: str
    package: str
    observed_at: int
    upstream_time: int | None
    present: bool
    last_serial: int | None
    index_serial: int | None


@fast_init
@dataclass(frozen=True, slots=True)
class JournalEntryObserved:
    """A PyPI journal row: the only timestamped record of quarantine, clearance and removal."""

    SCHEMA: ClassVar[str] = "JournalEntryObserved"
    event_id: str
    source: str
    ecosystem: str
    package: str
    observed_at: int
    upstream_time: int | None
    action: str
    version: str | None
    serial: int
    timestamp: int
    name: str


@fast_init
@dataclass(frozen=True, slots=True)
class ReleaseInfo:
    """One release as the JSON API lists it; first upload time drives the soak window."""

    SCHEMA: ClassVar[str] = "ReleaseInfo"
    version: str
    first_upload: int | None
    yanked: bool
    yanked_reason: str | None


@fast_init
@dataclass(frozen=True, slots=True)
class ReleasesObserved:
    """The JSON API's view of a project's releases; a 404 here is ambiguous on its own."""

    SCHEMA: ClassVar[str] = "ReleasesObserved"
    event_id: str
    source: str
    ecosystem: str
    package: str
    observed_at: int
    upstream_time: int | None
    http_status: int
    last_serial: int | None
    releases: tuple[ReleaseInfo, ...]


@dataclass(frozen=True, slots=True)
class PublisherIdentity:
    """A Trusted Publisher as a provenance object names it (``qwatch.provenance.parse.Publisher``)."""

    SCHEMA: ClassVar[str] = "PublisherIdentity"
    kind: str
    repository: str
    workflow: str
    environment: str = ""


@dataclass(frozen=True, slots=True)
class FileProvenance:
    """One distribution file's PEP 740 provenance as checked by the ingestor."""

    SCHEMA: ClassVar[str] = "FileProvenance"
    filename: str
    sha256: str
    upload_time: int | None
    attested: bool
    publishers: tuple[PublisherIdentity, ...]
    digest_ok: bool | None
    signature: str
    detail: str


@dataclass(frozen=True, slots=True)
class ReleaseProvenance:
    """The provenance of every file of one release, as far as the ingestor looked."""

    SCHEMA: ClassVar[str] = "ReleaseProvenance"
    version: str
    upload_time: int | None
    files: tuple[FileProvenance, ...]


@dataclass(frozen=True, slots=True)
class ProvenanceObserved:
    """A watched project's recent releases and who attested each file (PEP 740): the input of provenance drift."""

    SCHEMA: ClassVar[str] = "ProvenanceObserved"
    event_id: str
    source: str
    ecosystem: str
    package: str
    observed_at: int
    upstream_time: int | None
    last_serial: int | None
    releases: tuple[ReleaseProvenance, ...]


@dataclass(frozen=True, slots=True)
class WatchRequest:
    """Asks the PyPI ingestors to look at a package now; closes the loop from processor back to fetchers."""

    SCHEMA: ClassVar[str] = "WatchRequest"
    event_id: str
    source: str
    ecosystem: str
    package: str
    observed_at: int
    upstream_time: int | None
    reason: str
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Bad input, parked with its reason, so a failure is visible and replayable instead of silent."""

    SCHEMA: ClassVar[str] = "DeadLetter"
    event_id: str
    source: str
    ecosystem: str
    package: str
    observed_at: int
    upstream_time: int | None
    reason: str
    error: str
    pointer: str
    payload: str | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """An ingestor's position upstream, stored only after the events it covers were acknowledged."""

    SCHEMA: ClassVar[str] = "Cursor"
    component: str
    value: str
    updated_at: int
    upstream_time: int | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class PackageState:
    """What a subscriber needs to know about a package at one moment (the before/after of a transition)."""

    SCHEMA: ClassVar[str] = "PackageState"
    status: str
    last_serial: int | None = None
    quarantined_versions: tuple[str, ...] = ()
    removed_versions: tuple[str, ...] = ()
    yanked_versions: tuple[str, ...] = ()
    live_reports: tuple[str, ...] = ()
    withdrawn_reports: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class Evidence:
    """One observation a transition rests on, so an analyst can trace a verdict back to upstream."""

    SCHEMA: ClassVar[str] = "Evidence"
    observation_id: str
    source: str
    observed_at: int


@fast_init
@dataclass(frozen=True, slots=True)
class Transition:
    """A real change of package state, emitted exactly once; the product subscribers pay attention to."""

    SCHEMA: ClassVar[str] = "Transition"
    event_id: str
    kind: str
    ecosystem: str
    package: str
    severity: str
    version: str | None
    report_id: str | None
    before: PackageState | None
    after: PackageState
    evidence: tuple[Evidence, ...]
    upstream_time: int | None
    detected_at: int
    summary: str


Observation = (
    ReportObserved
    | ProjectStatusObserved
    | IndexMembershipObserved
    | JournalEntryObserved
    | ReleasesObserved
    | ProvenanceObserved
)
"""Everything an ingestor emits about upstream, and the processor's input."""

Event = Observation | WatchRequest | DeadLetter | Cursor | Transition
"""Every top-level record that travels on a qwatch topic."""

TOP_LEVEL: tuple[type, ...] = (
    ReportObserved,
    ProjectStatusObserved,
    IndexMembershipObserved,
    JournalEntryObserved,
    ReleasesObserved,
    ProvenanceObserved,
    WatchRequest,
    DeadLetter,
    Cursor,
    Transition,
    PackageStateRecord,
    InventoryRecord,
    Alert,
)
"""Record types with an ``.avsc`` file of their own; later issues append theirs here."""
