"""Scripted state changes over wall-clock time, and the demo scenario ``qwatch up --demo`` plays.

Why a timeline: a poller's behaviour only shows over time (a quarantine appearing, then clearing, then a
removal and a malicious re-registration).  Steps are plain tuples ``(seconds, method_name, *args)`` so a
scenario can live in a test, a YAML file or a CLI flag.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .fake import FakePyPI

TIMELINE_METHODS: Final = frozenset(
    {
        "add_project",
        "add_release",
        "add_file",
        "remove_file",
        "quarantine",
        "clear_quarantine",
        "archive",
        "unarchive",
        "remove_project",
        "remove_release",
        "yank",
        "unyank",
        "quarantine_release",
        "clear_release_quarantine",
        "generate",
        "inject",
        "clear_faults",
        "reset_requests",
    }
)

DEMO_PROJECTS: Final[dict[str, dict[str, list[str]]]] = {
    "Demo": {"1.0": ["demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl"], "1.1": ["demo-1.1.tar.gz"]},
    "evil-pkg": {"0.1": ["evil_pkg-0.1.tar.gz"]},
    "oldlib": {"2.0": ["oldlib-2.0.tar.gz", "oldlib-2.0-py2.py3-none-any.whl"]},
    "typo_squat": {"0.0.1": ["typo_squat-0.0.1.tar.gz"]},
}

DEMO_TIMELINE: Final[list[tuple[Any, ...]]] = [
    (2.0, "yank", "Demo", "1.0", "broken build"),
    (4.0, "quarantine", "evil-pkg"),
    (8.0, "quarantine_release", "Demo", "1.1"),
    # Late enough that the Simple ingestor has seen oldlib active first (its first fetch can meet the 503 fault
    # at 3 s): a project already archived at first sight is a baseline, not an ARCHIVED (processors README, S2).
    (9.0, "archive", "oldlib"),
    (10.0, "clear_release_quarantine", "Demo", "1.1"),
    (12.0, "clear_quarantine", "evil-pkg"),
    (14.0, "quarantine", "typo_squat"),
    (16.0, "remove_project", "typo_squat"),
    (18.0, "add_project", "typo_squat", {"6.6.6": ["typo_squat-6.6.6.tar.gz"]}),
    (20.0, "unarchive", "oldlib"),
    (22.0, "remove_release", "Demo", "1.0"),
]


def install_demo(pypi: FakePyPI) -> None:
    """Create the demo projects (call before ``run_timeline(DEMO_TIMELINE)``)."""
    for name, releases in DEMO_PROJECTS.items():
        pypi.add_project(name, releases, requires_python=">=3.9")


def start_timeline(
    target: FakePyPI,
    steps: Sequence[tuple[Any, ...]],
    speed: float,
    stop: threading.Event,
    errors: list[BaseException],
) -> threading.Thread:
    """Validate ``steps`` eagerly (bad names fail now, not minutes later), then play them in a thread."""
    if speed <= 0:
        raise ValueError("speed must be > 0")
    plan: list[tuple[float, str, tuple[Any, ...]]] = []
    for step in steps:
        if len(step) < 2 or not isinstance(step[1], str):
            raise ValueError(f"a step is (seconds, method_name, *args), got {step!r}")
        if step[1] not in TIMELINE_METHODS:
            raise ValueError(f"{step[1]!r} cannot be used in a timeline; allowed: {sorted(TIMELINE_METHODS)}")
        plan.append((float(step[0]), step[1], tuple(step[2:])))
    plan.sort(key=lambda item: item[0])

    def play() -> None:
        started = time.monotonic()
        for at, method, args in plan:
            if stop.wait(max(0.0, started + at / speed - time.monotonic())):
                return
            try:
                getattr(target, method)(*args)
            except Exception as exc:  # noqa: BLE001 - recorded for the test to assert on
                errors.append(exc)

    thread = threading.Thread(target=play, name="fakepypi-timeline", daemon=True)
    thread.start()
    return thread
