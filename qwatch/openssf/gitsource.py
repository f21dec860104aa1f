"""The git adapter: a bare mirror (or a local repository used in place), tree diffs and blob reads.

Nothing here checks out a work tree: upstream has more than 200k files, so every read goes through the object
database. Diffs run with rename detection off because pairing happens by report id after parsing (git's 50 %
threshold is barely cleared by "Assign IDs" renames). Blobs are read through one persistent
``git cat-file --batch`` process, pipelined a batch at a time, which is what makes a 250k-file snapshot fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import git

from qwatch.errors import QwatchError
from qwatch.logs import safe
from qwatch.metrics import Metrics
from qwatch.openssf.osv import SCOPE_DIRS, in_scope
from qwatch.retry import backoff_delay

logger = logging.getLogger(__name__)
T = TypeVar("T")

SCOPE_PATHSPECS = tuple(d.rstrip("/") for d in SCOPE_DIRS)
_NULL_SHA = "0" * 40
_REGULAR = ("100644", "100755")
_REGULAR_BYTES = (b"100644", b"100755")
_READ_BUFFER = 1 << 16
_PIPE_BYTES = 1 << 20
"""How much ``cat-file`` may write ahead of the reader (Linux ``F_SETPIPE_SZ``; the default pipe is 64 KiB, about
fifty reports, so git stalled and woke once per few dozen objects while Python parsed)."""
_SHA = re.compile(r"[0-9a-f]{40}\Z")
_BATCH_LIMIT = 1000
"""Shas written to cat-file before reading answers: 41 KB, under the 64 KB pipe buffer, so writes never block."""
_STREAM_WINDOW = 4
"""Batches of shas a streaming read lets git work ahead on (a writer thread feeds them; memory stays bounded)."""


class GitSourceError(QwatchError):
    """git could not do what a poll needs (fetch, resolve, diff); the poll fails and the cursor stays."""


@dataclass(frozen=True, slots=True)
class PathChange:
    """One in-scope path whose blob differs between two trees; None means absent on that side."""

    path: str
    old_blob: str | None
    new_blob: str | None


def _is_local(spec: str) -> bool:
    return Path(spec).expanduser().is_dir()


def mirror_dir(workdir: Path, url: str) -> Path:
    """Where the bare mirror of ``url`` lives: readable name plus a hash, so two URLs never share one."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", url)[-60:].strip("_.") or "repo"
    return workdir / f"{slug}-{hashlib.sha256(url.encode()).hexdigest()[:12]}.git"


class GitSource:
    """Reads one branch of one repository; ``fetch`` is a no-op for a local path, which is read in place."""

    def __init__(self, repo: git.Repo, branch: str, retry: _Retry, remote: bool) -> None:
        self.repo = repo
        self.branch = branch
        self.remote = remote
        self._retry = retry
        self._cat: Any = None

    @classmethod
    def open(
        cls,
        spec: str,
        branch: str,
        workdir: Path,
        metrics: Metrics,
        retries: int = 4,
        backoff: float = 2.0,
        sleep: Callable[[float], object] | None = None,
    ) -> GitSource:
        """Open a local repository in place, or clone ``spec`` bare into ``workdir`` once and reuse it."""
        if spec.startswith("-"):
            raise GitSourceError(f"repository {safe(spec)} looks like an option, not a path or URL")
        retry = _Retry(metrics, retries, backoff, sleep if sleep is not None else time.sleep)
        if _is_local(spec):
            try:
                repo = git.Repo(Path(spec).expanduser())
            except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
                raise GitSourceError(f"{safe(spec)} is not a git repository: {exc}") from None
            return cls(repo, branch, retry, remote=False)
        return cls(_clone_or_open(spec, branch, mirror_dir(workdir, spec), retry), branch, retry, remote=True)

    def fetch(self) -> None:
        """Bring the mirror's branch to the remote's (forced: a force-push must be seen, not refused)."""
        if not self.remote:
            return
        refspec = f"+refs/heads/{self.branch}:refs/heads/{self.branch}"

        def fetch() -> None:
            self.repo.git.fetch("--no-tags", "origin", refspec)

        self._retry("fetch", fetch)

    # -- commits -------------------------------------------------------------------------------------------
    def head(self) -> str:
        """The branch's commit sha."""
        try:
            return str(self.repo.git.rev_parse("--verify", "--end-of-options", f"refs/heads/{self.branch}^{{commit}}"))
        except git.GitCommandError:
            raise GitSourceError(f"branch {safe(self.branch)!s} not found in {self.repo.git_dir}") from None

    def resolve(self, rev: str) -> str:
        """A full commit sha for ``rev`` (e.g. ``--since``), or GitSourceError."""
        try:
            return str(self.repo.git.rev_parse("--verify", "--end-of-options", f"{rev}^{{commit}}"))
        except git.GitCommandError:
            raise GitSourceError(f"commit {safe(rev)!s} not found in {self.repo.git_dir}") from None

    def has_commit(self, sha: str) -> bool:
        """True when the object database still holds this commit (gc or a fresh clone may have dropped it)."""
        if not _SHA.match(sha):
            return False
        try:
            self.repo.git.cat_file("-e", f"{sha}^{{commit}}")
        except git.GitCommandError:
            return False
        return True

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when ``ancestor`` is reachable from ``descendant`` (False after a force-push)."""
        try:
            self.repo.git.merge_base("--is-ancestor", _sha(ancestor), _sha(descendant))
        except git.GitCommandError as exc:
            if exc.status == 1:
                return False
            raise GitSourceError(f"merge-base failed: {_git_error(exc)}") from None
        return True

    def first_parent_path(self, base: str, head: str) -> list[str]:
        """Commits after ``base`` up to ``head`` along first parents, oldest first (for ``--per-commit``)."""
        out = str(self.repo.git.rev_list("--first-parent", "--reverse", f"{_sha(base)}..{_sha(head)}"))
        return out.split()

    def commit_time_ms(self, sha: str) -> int:
        """The committer time (when the change landed upstream), epoch ms; author dates are not monotonic."""
        return int(self.repo.commit(_sha(sha)).committed_date) * 1000

    # -- trees and blobs ------------------------------------------------------------------------------------
    def diff(self, old: str, new: str) -> list[PathChange]:
        """In-scope ``.json`` paths whose content differs between two commits, renames off, no checkout."""
        raw = self.repo.git.diff_tree(
            "-r",
            "-z",
            "--no-renames",
            "--no-commit-id",
            "--full-index",
            _sha(old),
            _sha(new),
            "--",
            *SCOPE_PATHSPECS,
            stdout_as_string=False,
        )
        return list(_parse_raw_diff(raw))

    def list_tree(self, commit: str) -> Generator[tuple[str, str], None, None]:
        """Stream (path, blob) of every in-scope ``.json`` file at ``commit``, in git's path order."""
        proc = self.repo.git.ls_tree("-r", "-z", "--full-tree", _sha(commit), "--", *SCOPE_PATHSPECS, as_process=True)
        stream: IO[bytes] = proc.proc.stdout
        tail = b""
        complete = False
        try:
            while chunk := stream.read(1 << 16):
                records = (tail + chunk).split(b"\0")
                tail = records.pop()
                for rec in records:
                    entry = _parse_ls_tree(rec)
                    if entry is not None:
                        yield entry
            entry = _parse_ls_tree(tail) if tail else None
            if entry is not None:
                yield entry
            complete = True
        finally:
            if not complete:
                proc.proc.kill()  # an abandoned listing would block on a full pipe forever
            try:
                proc.wait()
            except git.GitCommandError as exc:
                if complete:
                    raise GitSourceError(f"ls-tree {commit} failed: {_git_error(exc)}") from None

    def read_blobs(self, shas: Sequence[str], max_bytes: int) -> Generator[tuple[int, bytes] | None, None, None]:
        """(size, content) per sha in order, None for a missing object; content past ``max_bytes`` is dropped."""
        for start in range(0, len(shas), _BATCH_LIMIT):
            yield from self._read_batch(shas[start : start + _BATCH_LIMIT], max_bytes)

    def _read_batch(self, shas: Sequence[str], max_bytes: int) -> Generator[tuple[int, bytes] | None, None, None]:
        cat = self._cat_file()
        stdin: IO[bytes] = cat.proc.stdin
        stdout: IO[bytes] = cat.proc.stdout
        unread = len(shas)
        try:
            stdin.write(b"".join(_sha(s).encode() + b"\n" for s in shas))
            stdin.flush()
            for _ in shas:
                answer = _read_object(stdout, max_bytes)
                unread -= 1  # only once the whole object is read: a half-read one must not be taken for the next
                yield answer
        except OSError as exc:
            raise GitSourceError(f"git cat-file failed: {exc}") from None
        finally:
            if unread:
                # Answers left in the pipe would be read as the next request's: start a fresh process instead.
                self._close_cat(kill=True)

    def stream_blobs(
        self, entries: Iterable[tuple[str, str]], max_bytes: int, batch: int = _BATCH_LIMIT
    ) -> Generator[list[tuple[str, str, tuple[int, bytes] | None]], None, None]:
        """``(path, blob, (size, content) or None)`` for every ``(path, blob)``, ``batch`` at a time, in order.

        Why not ``read_blobs``: a snapshot reads every blob of a 250k-file tree, and asking a batch, then reading
        it, leaves git idle while Python parses and Python idle while git inflates. Here a writer thread keeps
        git's stdin up to ``_STREAM_WINDOW`` batches ahead of the reader (its own ``cat-file --batch`` process,
        so a re-read through ``read_blobs`` in between cannot interleave answers), and both sides work at once.
        Nothing but the window is held: entries are consumed lazily from ``entries`` (a streamed ``ls-tree``).
        """
        cat = self.repo.git.cat_file("--batch", as_process=True, istream=subprocess.PIPE)
        stdin: IO[bytes] = cat.proc.stdin
        _widen_pipe(cat.proc.stdout)
        # A bigger read buffer than the default 8 KiB: a snapshot reads 250k small objects, a syscall per few.
        stdout: IO[bytes] = open(cat.proc.stdout.fileno(), "rb", buffering=_READ_BUFFER, closefd=False)  # noqa: SIM115
        todo: queue.Queue[bytes | None] = queue.Queue(maxsize=_STREAM_WINDOW)

        def feed() -> None:
            try:
                while (chunk := todo.get()) is not None:
                    stdin.write(chunk)
                    stdin.flush()
                stdin.close()
            except (OSError, ValueError):  # git died or the reader killed it: the reader reports what it saw
                return

        writer = threading.Thread(target=feed, name="git-cat-file-feed", daemon=True)
        writer.start()
        pending: list[list[tuple[str, str]]] = []
        complete = False
        try:
            it = iter(entries)
            while True:
                chunk_entries = [(path, _sha(blob)) for path, blob in _take(it, batch)]
                if chunk_entries:
                    todo.put(b"".join(blob.encode() + b"\n" for _, blob in chunk_entries))
                    pending.append(chunk_entries)
                if pending and (len(pending) >= _STREAM_WINDOW - 1 or not chunk_entries):
                    asked = pending.pop(0)
                    yield [(path, blob, _read_object(stdout, max_bytes)) for path, blob in asked]
                elif not chunk_entries:
                    break
            complete = True
        except OSError as exc:
            raise GitSourceError(f"git cat-file failed: {exc}") from None
        finally:
            if complete:
                todo.put(None)  # every batch was answered, so the writer is idle on an empty queue
            else:
                cat.proc.kill()  # a writer blocked on the pipe now fails and exits
                with contextlib.suppress(queue.Full):
                    todo.put_nowait(None)  # a writer idle on the queue gets its stop
            writer.join(timeout=5)
            try:
                cat.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                cat.proc.kill()
            stdout.close()

    def _cat_file(self) -> Any:
        if self._cat is None or self._cat.proc.poll() is not None:
            self._cat = self.repo.git.cat_file("--batch", as_process=True, istream=subprocess.PIPE)
        return self._cat

    def _close_cat(self, kill: bool = False) -> None:
        cat, self._cat = self._cat, None
        if cat is None:
            return
        try:
            if kill:
                cat.proc.kill()
            else:
                cat.proc.stdin.close()
            cat.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            cat.proc.kill()

    def close(self) -> None:
        """Stop the cat-file process and release GitPython's own helpers."""
        self._close_cat()
        self.repo.close()


def _git_error(exc: git.GitCommandError) -> str:
    """git's own words, minus GitPython's wrapping: the ``fatal:``/``error:`` lines, sanitized for a log line."""
    text = str(exc.stderr or exc).strip()
    if text.startswith("stderr:"):
        text = text[len("stderr:") :].strip().strip("'")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    chosen = [line for line in lines if line.startswith(("fatal:", "error:"))] or lines[-1:]
    return safe(" ".join(chosen), 300)


def _sha(value: str) -> str:
    """Only full shas reach git as arguments: a cursor file is input too, and must not smuggle in an option."""
    if not _SHA.match(value):
        raise GitSourceError(f"not a commit or blob sha: {safe(value, 80)}")
    return value


def _take(it: Iterator[T], count: int) -> list[T]:
    out = []
    for item in it:
        out.append(item)
        if len(out) == count:
            break
    return out


def _read_object(stdout: IO[bytes], max_bytes: int) -> tuple[int, bytes] | None:
    """One ``cat-file --batch`` answer: None for ``missing``; content past ``max_bytes`` is read and dropped."""
    header = stdout.readline()
    if not header:
        raise GitSourceError("git cat-file ended early")
    parts = header.split()
    if len(parts) == 2 and parts[1] == b"missing":
        return None
    size = int(parts[2])
    if size <= max_bytes:
        data = stdout.read(size)
    else:
        data = stdout.read(max_bytes + 1)
        _discard(stdout, size - max_bytes - 1)
    stdout.read(1)  # the newline after each object
    return size, data


def _widen_pipe(stream: IO[bytes]) -> None:
    """Grow a pipe's kernel buffer to ``_PIPE_BYTES`` where the platform allows it; a refusal (not Linux, or over
    ``/proc/sys/fs/pipe-max-size``) leaves the default, which is only slower."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(stream.fileno(), setpipe, _PIPE_BYTES)


def _discard(stream: IO[bytes], count: int) -> None:
    while count > 0:
        got = stream.read(min(count, 1 << 16))
        if not got:
            return
        count -= len(got)


def _decode_path(raw: bytes) -> str:
    # Upstream paths are UTF-8 (homoglyph NuGet names included); anything else must not crash the poll.
    return raw.decode("utf-8", "replace")


def _parse_ls_tree(rec: bytes) -> tuple[str, str] | None:
    meta, _, raw_path = rec.partition(b"\t")
    fields = meta.split()
    if len(fields) != 3 or fields[1] != b"blob" or fields[0] not in _REGULAR_BYTES:
        return None
    path = _decode_path(raw_path)
    return (path, fields[2].decode()) if in_scope(path) else None


def _parse_raw_diff(raw: bytes) -> Iterator[PathChange]:
    """Parse ``diff-tree -r -z --no-renames`` output: ``:om nm os ns S\\0path\\0`` records."""
    parts = raw.split(b"\0")
    for i in range(0, len(parts) - 1, 2):
        meta, raw_path = parts[i], parts[i + 1]
        fields = meta.lstrip(b":").split()
        if len(fields) < 5:
            continue
        old_mode, new_mode, old_sha, new_sha = (f.decode() for f in fields[:4])
        path = _decode_path(raw_path)
        if not in_scope(path):
            continue
        old = old_sha if old_mode in _REGULAR and old_sha != _NULL_SHA else None
        new = new_sha if new_mode in _REGULAR and new_sha != _NULL_SHA else None
        if old != new:
            yield PathChange(path, old, new)


class _Retry:
    """Retries a git network operation with exponential backoff; every failure is counted in metrics."""

    def __init__(self, metrics: Metrics, attempts: int, backoff: float, sleep: Callable[[float], object]) -> None:
        self._metrics = metrics
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._sleep = sleep

    def __call__(self, what: str, action: Callable[[], T]) -> T:
        for attempt in range(1, self._attempts + 1):
            try:
                return action()
            except git.GitCommandError as exc:
                self._metrics.git_fetch_failures.inc()
                detail = _git_error(exc)
                if attempt == self._attempts:
                    raise GitSourceError(f"git {what} failed after {attempt} attempts: {detail}") from None
                delay = backoff_delay(attempt, self._backoff)
                self._metrics.retries.labels("openssf", f"git-{what}").inc()
                logger.warning(
                    "git %s failed (attempt %d/%d), retrying in %.1fs: %s",
                    what,
                    attempt,
                    self._attempts,
                    delay,
                    detail,
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _clone_or_open(url: str, branch: str, dest: Path, retry: _Retry) -> git.Repo:
    """Reuse the mirror if it exists; else clone bare via a temporary name so a failed clone leaves no husk."""
    if (dest / "HEAD").exists():
        return git.Repo(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")

    def clone() -> git.Repo:
        shutil.rmtree(tmp, ignore_errors=True)
        git.Repo.clone_from(url, tmp, bare=True, branch=branch, single_branch=True)
        tmp.rename(dest)
        return git.Repo(dest)

    logger.info("cloning %s (bare, branch %s) into %s", safe(url), safe(branch), dest)
    return retry("clone", clone)
