"""A faithful local PyPI for tests, benchmarks and ``qwatch up --demo``.

It serves the Simple API (HTML and PEP 691 JSON), the JSON API and the XML-RPC mirroring methods, and
renders every lifecycle state (active, quarantined, cleared, archived, removed, yanked, release
quarantined) exactly as Warehouse does per ``docs/pypi-signals.md``, with injectable CDN/origin faults.

    from testing.fakepypi import FakePyPI, Fault
    pypi = FakePyPI()
    pypi.add_project("Demo", {"1.0": ["demo-1.0.tar.gz"]})
    with pypi.serve() as base_url:
        ...  # index: base_url + "/simple/", XML-RPC: base_url + "/pypi"
"""

from .fake import FakePyPI
from .faults import Fault, FaultKind
from .model import Lifecycle, ProjectState, ReleaseState, normalize
from .render import Response, fake_sha256
from .synthetic import JournalRow, SyntheticSegment
from .timeline import DEMO_PROJECTS, DEMO_TIMELINE, install_demo

__all__ = [
    "DEMO_PROJECTS",
    "DEMO_TIMELINE",
    "FakePyPI",
    "Fault",
    "FaultKind",
    "JournalRow",
    "Lifecycle",
    "ProjectState",
    "ReleaseState",
    "Response",
    "SyntheticSegment",
    "fake_sha256",
    "install_demo",
    "normalize",
]
