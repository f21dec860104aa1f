"""Settings of the OpenSSF ingestor: ``QWATCH_OPENSSF_<FIELD>`` variables, CLI flags and Helm values share them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qwatch.config import require
from qwatch.openssf.osv import MAX_FILE_BYTES

DEFAULT_REPO = "https://github.com/ossf/malicious-packages.git"
PREFIX = "OPENSSF_"


@dataclass(frozen=True)
class OpenSSFConfig:
    """How to reach the repository and how often to look; ``--since``/``--once`` are per-run flags, not config."""

    repo: str = field(default=DEFAULT_REPO, metadata={"help": "git URL or local repository path"})
    branch: str = field(default="main", metadata={"help": "branch to follow"})
    interval: float = field(default=300.0, metadata={"help": "seconds between polls in service mode"})
    per_commit: bool = field(default=False, metadata={"help": "one cursor step per first-parent commit"})
    workdir: Path | None = field(default=None, metadata={"help": "bare mirror (and index) dir; default cache"})
    progress: bool = field(default=False, metadata={"help": "show snapshot progress even when not a TTY"})
    max_file_bytes: int = field(default=MAX_FILE_BYTES, metadata={"help": "larger report files are dead-lettered"})
    fetch_retries: int = field(default=4, metadata={"help": "attempts per git fetch/clone"})
    fetch_backoff: float = field(default=2.0, metadata={"help": "first retry delay in seconds, doubled each time"})
    flush_every: int = field(default=5000, metadata={"help": "events between sink flushes in a snapshot"})

    def __post_init__(self) -> None:
        require(bool(self.repo.strip()), PREFIX, "repo", "expected a git URL or a local path")
        require(not self.repo.startswith("-"), PREFIX, "repo", "must not start with '-'")
        require(
            bool(self.branch.strip()) and not self.branch.startswith("-"),
            PREFIX,
            "branch",
            "expected a branch name",
        )
        require(self.interval > 0, PREFIX, "interval", "expected seconds > 0")
        require(self.max_file_bytes >= 1024, PREFIX, "max_file_bytes", "expected at least 1024")
        require(self.fetch_retries >= 1, PREFIX, "fetch_retries", "expected at least 1")
        require(self.fetch_backoff >= 0, PREFIX, "fetch_backoff", "expected seconds >= 0")
        require(self.flush_every >= 1, PREFIX, "flush_every", "expected at least 1")
