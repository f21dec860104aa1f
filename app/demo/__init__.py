"""The offline demo world of ``qwatch up --demo``: a local PyPI with a scripted timeline and a replayed OpenSSF repo.

Everything is real: the local PyPI is an HTTP server rendering Warehouse's payloads, and the OpenSSF side is a git
repository whose branch is moved along real recorded history, so the ingestors and processor run unchanged.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import git

from qwatch.logs import screen_line, show
from testing.fakepypi import FakePyPI, Fault
from testing.fakepypi.integrity import github_publisher
from testing.fakepypi.timeline import DEMO_TIMELINE, install_demo

logger = logging.getLogger(__name__)

BUNDLE = "ossf-fastapi-lifecycle.bundle"
EXTRA_PROJECTS = {"fastapi": {"0.136.3": ["fastapi-0.136.3.tar.gz", "fastapi-0.136.3-py3-none-any.whl"]}}
"""The package the replayed OpenSSF report names, so the REPORTED transition is about an installable project."""

OSSF_STEPS = (5.0, 9.0, 26.0)
"""When the replayed repository moves to its next commit: ingest (pending), Assign IDs (report), withdrawal."""

DEMO_LOCKFILE = """\
# A demo application's pip-compile output: the alerts service matches transitions against it.
demo==1.1
    # via -r requirements.in
typo-squat==0.0.1
    # via demo
evil-pkg==0.1
    # via typo-squat
fastapi==0.136.3
    # via -r requirements.in
"""

FAULTS = (
    (3.0, Fault(kind="503", path_prefix="/simple/oldlib/", count=2)),
    (7.0, Fault(kind="truncate", path_prefix="/simple/fastapi/", count=12)),
    (11.0, Fault(kind="429", path_prefix="/pypi", count=1, retry_after=1.0)),
)
"""Upstream misbehaviour the demo shows surviving: retried, counted, dead-lettered, never a false verdict."""

FAULT_NOTES = "two 503s on a project page, a truncated page, a 429 with Retry-After"
"""The faults above in words, for the demo's closing summary."""

DEMO_ATTESTED = ("demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl", "demo-1.1.tar.gz")
"""Demo's files carry (synthetic) attestations by ``example/demo``: its habit, seen as the baseline."""
PROVENANCE_STEPS: tuple[tuple[Any, ...], ...] = ((20.5, "add_release", "Demo", "1.2", ["demo-1.2.tar.gz"]),)
"""Demo 1.2 arrives without attestation: PROVENANCE_LOST (the demo runs the ingestor with ``--signatures off``)."""

EXPECTED_TRANSITIONS = (
    ("YANKED", "demo"),
    ("QUARANTINED", "evil-pkg"),
    ("ARCHIVED", "oldlib"),
    ("RELEASE_QUARANTINED", "demo"),
    ("REPORTED", "fastapi"),
    ("RELEASE_CLEARED", "demo"),
    ("CLEARED", "evil-pkg"),
    ("QUARANTINED", "typo-squat"),
    ("REMOVED", "typo-squat"),
    ("RESTORED", "typo-squat"),
    ("RELEASE_REMOVED", "demo"),
    ("UNARCHIVED", "oldlib"),
    ("REPORT_WITHDRAWN", "fastapi"),
    ("PROVENANCE_LOST", "demo"),
)
"""Every upstream change of the scripted demo, as (kind, package): each must appear exactly once."""

CHURN_PROJECTS = 200
CHURN_STEP_SECONDS = 0.25
"""--churn: one random upstream change every 0.25 s (about 14,000 an hour) over 200 generated projects."""

DEMO_SECONDS = 30.0
"""When the last scripted change has happened (the timelines end by then)."""


@dataclass
class DemoWorld:
    """Owns the demo's local PyPI and OpenSSF repository, and plays their timelines."""

    run_dir: Path
    churn: bool = False
    seed: int = 1
    pypi: FakePyPI = field(default_factory=FakePyPI)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    base_url: str = ""
    repo_path: Path = field(default_factory=Path)
    base_commit: str = ""
    start_serial: int = 0
    watch_file: Path = field(default_factory=Path)
    lockfile: Path = field(default_factory=Path)
    webhook_url: str = ""
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    webhook_received: list[dict[str, Any]] = field(default_factory=list)
    _receiver: ThreadingHTTPServer | None = None
    _commits: list[str] = field(default_factory=list)
    _playing: bool = False

    def start(self) -> None:
        """Serve the local PyPI, lay out the replay repository and the webhook receiver; ``play`` starts the
        timelines (``qwatch up`` calls it once its ingestors are polling, so a slow start never makes them miss the
        beginning of the script, which then arrives as one collapsed change)."""
        install_demo(self.pypi)
        for filename in DEMO_ATTESTED:  # a project that publishes from its CI, until 1.2 (PROVENANCE_STEPS)
            self.pypi.attest(filename, github_publisher("example/demo"))
        for name, releases in EXTRA_PROJECTS.items():
            self.pypi.add_project(name, releases)
        self.start_serial = self.pypi.last_serial
        self.base_url = self.pypi.start()
        self.watch_file = self.run_dir / "watch.txt"
        names = sorted({*(p.lower() for p in ("Demo", "evil-pkg", "oldlib", "typo_squat")), *EXTRA_PROJECTS})
        self.watch_file.write_text("".join(f"{n}\n" for n in names))
        self.lockfile = self.run_dir / "requirements.txt"
        self.lockfile.write_text(DEMO_LOCKFILE)
        self._commits = self._prepare_repo()
        self.base_commit = self._commits[0]
        self._start_receiver()

    def play(self) -> None:
        """Start the scripted timelines (once)."""
        if self._playing:
            return
        self._playing = True
        commits = self._commits
        faults = [(at, "inject", fault) for at, fault in FAULTS]
        steps = sorted([*DEMO_TIMELINE, *PROVENANCE_STEPS, *faults], key=lambda step: step[0])
        self._threads.append(self.pypi.run_timeline(steps))
        self._spawn(self._replay_ossf, commits[1:])
        if self.churn:
            self._spawn(self._churn_forever)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"demo-{target.__name__}")
        thread.start()
        self._threads.append(thread)

    def _start_receiver(self) -> None:
        """A local webhook endpoint, so the demo shows signed alerts arriving where a SOC would receive them."""
        received = self.webhook_received
        secret = self.webhook_secret

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                from subscribers.alerts.webhook import verify_signature

                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify_signature(secret, body, dict(self.headers.items()))
                self.send_response(204 if ok else 401)
                self.end_headers()
                if ok:
                    event = json.loads(body)
                    received.append(event)
                    data = event.get("data", {})
                    show(
                        screen_line(
                            "WEBHOOK",
                            f"signed alert for {data.get('project')}: {data.get('kind')} {data.get('package')} "
                            f"via {' > '.join(data.get('path', []))}",
                        )
                    )

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by http.server
                return

        self._receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        self.webhook_url = f"http://127.0.0.1:{self._receiver.server_address[1]}/hook"
        self._spawn(self._receiver.serve_forever)

    def _prepare_repo(self) -> list[str]:
        bundle = resources.files("app.demo").joinpath(BUNDLE)
        self.repo_path = self.run_dir / "ossf-upstream.git"
        with resources.as_file(bundle) as bundle_path:
            repo = git.Repo.clone_from(str(bundle_path), self.repo_path, bare=True)
        commits = [c.hexsha for c in reversed(list(repo.iter_commits("main")))]
        repo.git.update_ref("refs/heads/main", commits[0])
        return commits

    def _replay_ossf(self, commits: list[str]) -> None:
        repo = git.Repo(self.repo_path)
        elapsed = 0.0
        for at, sha in zip(OSSF_STEPS, commits, strict=False):
            if self._stop.wait(at - elapsed):
                return
            elapsed = at
            repo.git.update_ref("refs/heads/main", sha)
            logger.info("demo: OpenSSF repository moved to %s", sha[:10])

    def _churn_forever(self) -> None:
        """High churn for soak runs: generated projects are quarantined, cleared, removed, re-registered, yanked and
        archived, each change as PyPI would journal (or, for archives, only show) it."""
        rng = random.Random(self.seed)  # noqa: S311 - a repeatable scenario, not security
        while not self._stop.wait(CHURN_STEP_SECONDS):
            name = f"churn-{rng.randrange(CHURN_PROJECTS)}"
            try:
                if self.pypi.project(name) is None:
                    self.pypi.add_project(name, {"1.0": [f"{name}-1.0.tar.gz"]})
                    continue
                action = rng.choice(
                    ("quarantine", "clear_quarantine", "remove_project", "yank", "unyank", "archive", "unarchive")
                )
                if action in ("yank", "unyank"):
                    getattr(self.pypi, action)(name, "1.0", *(("churn",) if action == "yank" else ()))
                else:
                    getattr(self.pypi, action)(name)
            except (ValueError, KeyError):
                continue  # the random action did not apply to the project's current state

    def stop(self) -> None:
        """Stop timelines and the server."""
        self._stop.set()
        if self._receiver is not None:
            self._receiver.shutdown()
        self.pypi.stop()
