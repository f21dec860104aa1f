"""The OpenSSF malicious-packages feed read directly by the gate (``qwatch gate --feed``): no Kafka, no processor.

``load_feed`` reads one of three sources and returns every live PyPI report, per canonical package name:

* a local repository (a work tree or a bare repository): the tree of ``HEAD`` (for a bare repository, its
  default branch) is read from the object database; uncommitted files in a work tree are not looked at;
* a git URL (``http(s)://``, ``ssh://``, ``file://``, ``git@host:path``): mirrored bare into
  ``<cache_dir>/feeds/`` (cloned once, fetched on every later load) and read like a local repository;
* an OSV export zip as osv.dev publishes it per ecosystem (``PyPI/all.zip``: one ``<ID>.json`` per record).

Git sources reuse the OpenSSF ingestor end to end, so the gate and the ingestor agree on what a report is:
``qwatch.openssf.gitsource.GitSource`` opens or mirrors the repository and streams the in-scope files
(``osv/malicious/**.json`` and ``osv/withdrawn/**.json``) through one ``git cat-file --batch`` process;
``qwatch.openssf.osv.parse_report`` decides report / pending file / unusable file; ``is_withdrawn`` (location or
field) decides withdrawal; ``qwatch.openssf.classify.effective`` picks the copy that speaks for an id found at
two paths. Pending ``MAL-0000`` files are not reports (the ingestor skips them too). The zip goes through the same
parser; there, only malicious-package records count (an ``MAL-`` id, or a ``MAL-`` alias): osv.dev's per-ecosystem
export also carries every ordinary vulnerability (PYSEC, GHSA), and a gate about malicious packages that failed on
every old CVE would be turned off.

What a report covers is decided per version by ``qwatch.osv_ranges`` from the record's PyPI ``affected[]``
entries (explicit versions and ``ECOSYSTEM`` ranges, PEP 440), failing closed. Files that cannot be parsed do not
silently disappear: one under ``osv/malicious/pypi/<dir>/`` becomes an unreadable report (``known=False``) that
affects every version of ``<dir>``; a valid-JSON record that breaks the ingestor's schema but names PyPI packages
is kept with what it says; an undecodable zip member makes the whole zip unusable (``FeedError``).

Only records that could name PyPI are parsed: a file is parsed when its bytes contain ``PyPI`` or it sits under
``osv/*/pypi/`` (upstream has >200k files, nearly all npm; the ecosystem string is plain ASCII in upstream's
output, so an escaped spelling of it would not be seen).

Errors are ``FeedError`` with advice (the gate makes them exit 2); a feed older than ``max_age_ms`` is
``FeedStale``. Age: for git, ``now`` minus the committer time of the commit read; for a zip, ``now`` minus the
newest ``modified`` of its PyPI records (the file's mtime when none has one).
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import git
from packaging.utils import canonicalize_name

from qwatch.errors import QwatchError
from qwatch.ids import parse_rfc3339_ms
from qwatch.logs import safe
from qwatch.metrics import Metrics
from qwatch.openssf.classify import Location, effective
from qwatch.openssf.gitsource import GitSource, GitSourceError, _git_error, mirror_dir
from qwatch.openssf.osv import (
    LIVE_DIR,
    MAX_FILE_BYTES,
    ParsedReport,
    Pending,
    ReportParseError,
    in_withdrawn_dir,
    is_withdrawn,
    parse_report,
)
from qwatch.osv_ranges import MALFORMED, Affected, Verdict, check_all
from subscribers.gate.soak import format_duration

logger = logging.getLogger(__name__)

PYPI = "PyPI"
FEEDS_DIR = "feeds"
"""Under the cache directory: one bare mirror per feed URL."""
OSV_LINK = "https://osv.dev/vulnerability/"
UNPINNED = "unpinned"
"""Verdict reason for a requirement without a pinned version: it counts as affected."""
URL_PREFIXES = ("http://", "https://", "ssh://", "file://", "git@")
ZIP_MAX_RECORD_BYTES = 8 << 20
"""osv.dev records are far below this; a bigger member is not an OSV record."""
PYPI_EXPORT = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"

_PYPI_DIR = LIVE_DIR + "pypi/"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


class FeedError(QwatchError):
    """The feed cannot be read; ``message`` says what happened and what to do (the gate exits 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FeedStale(FeedError):
    """The feed was read but is older than allowed: it cannot vouch for today."""

    def __init__(self, age_ms: int, message: str) -> None:
        super().__init__(message)
        self.age_ms = age_ms


@dataclass(frozen=True, slots=True)
class FeedReport:
    """One live report as it concerns one PyPI package.

    ``affected`` holds the record's PyPI ``affected[]`` entries for ``package``; ``known=False`` marks a file
    that could not be parsed at all, which affects every version. ``path`` is where it was read (repository path
    or zip member).
    """

    report_id: str
    package: str
    summary: str
    affected: tuple[Affected, ...]
    path: str
    known: bool = True

    @property
    def link(self) -> str:
        """The report on osv.dev."""
        return OSV_LINK + quote(self.report_id, safe="")

    def verdict(self, version: str | None) -> Verdict:
        """Whether ``version`` is affected and why (``qwatch.osv_ranges`` reasons, plus ``unpinned``)."""
        if version is None:
            return Verdict(True, UNPINNED)
        if not self.known:
            return Verdict(True, MALFORMED, self.summary)
        return check_all(self.affected, version)

    def affects(self, version: str | None) -> bool:
        """Fail closed: an unpinned version, an unreadable report or an undecidable range counts as affected."""
        return self.verdict(version).affected


class Feed:
    """Live PyPI reports by canonical package name, and what was read.

    ``label``: the source (credentials removed) and the commit sha, or the zip's path; ``age_ms``: see the module
    docstring; ``count``: live report ids; ``skipped``: what was not counted, by kind (``withdrawn``, ``pending``,
    ``other-ecosystem``, ``unreadable``); ``commit``: the sha read, None for a zip.
    """

    def __init__(
        self,
        reports: Mapping[str, tuple[FeedReport, ...]],
        label: str,
        age_ms: int,
        count: int,
        skipped: Mapping[str, int],
        commit: str | None,
    ) -> None:
        self._reports = dict(reports)
        self.label = label
        self.age_ms = age_ms
        self.count = count
        self.skipped = dict(skipped)
        self.commit = commit

    def reports_for(self, name: str) -> tuple[FeedReport, ...]:
        """The live reports naming ``name`` (any spelling; PEP 503-normalised here), by report id."""
        return self._reports.get(canonicalize_name(name), ())

    def packages(self) -> frozenset[str]:
        """Every canonical package name with at least one live report."""
        return frozenset(self._reports)


def load_feed(
    source: str,
    cache_dir: Path,
    now_ms: int,
    max_age_ms: int,
    *,
    retries: int = 2,
    backoff: float = 1.0,
) -> Feed:
    """Read the feed at ``source`` (module docstring); FeedError when it cannot, FeedStale when it is too old.

    ``retries``/``backoff`` apply to cloning and fetching a URL (seconds, doubled per attempt).
    """
    if not source or source.startswith("-"):
        raise FeedError(f"feed {safe(source)!s} is not a path or URL")
    try:
        with _git_noninteractive():
            return _load(source, cache_dir, now_ms, max_age_ms, retries, backoff)
    except OSError as exc:  # a cache directory that cannot be written, a file that vanished or cannot be read
        raise FeedError(f"cannot read feed {_display(source)}: {safe(str(exc))}") from None


def _load(source: str, cache_dir: Path, now_ms: int, max_age_ms: int, retries: int, backoff: float) -> Feed:
    if source.startswith(URL_PREFIXES):
        if urlsplit(source).path.endswith(".zip"):
            raise FeedError(
                f"{_display(source)} looks like a zip download: download it first (e.g. curl -fsSLo PyPI.zip "
                f"{PYPI_EXPORT}) and pass the file"
            )
        return _load_url(source, cache_dir, now_ms, max_age_ms, retries, backoff)
    path = Path(source).expanduser()
    if not path.exists():
        raise FeedError(
            f"feed {safe(source)} does not exist: pass a checkout of ossf/malicious-packages (git clone "
            "https://github.com/ossf/malicious-packages.git), its URL, or an OSV zip such as " + PYPI_EXPORT
        )
    if path.is_dir():
        return _load_local(path, now_ms, max_age_ms)
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        return _load_zip(path, now_ms, max_age_ms)
    raise FeedError(
        f"feed {safe(source)} is neither a directory (a git checkout of ossf/malicious-packages) nor a zip "
        f"(an OSV export such as {PYPI_EXPORT}); if it is a zip, it is damaged: download it again"
    )


# -- git -------------------------------------------------------------------------------------------------------


def _load_local(path: Path, now_ms: int, max_age_ms: int) -> Feed:
    try:
        src = GitSource.open(str(path), "HEAD", path, Metrics())
    except GitSourceError as exc:
        raise FeedError(
            f"{exc}; pass the top directory of a clone of ossf/malicious-packages (a work tree or a bare repository)"
        ) from None
    if src.repo.bare:
        update = f"git -C {path} fetch origin '+refs/heads/*:refs/heads/*'"
    else:
        update = f"git -C {path} pull"
    advice = f"update it ({update}), or pass the feed's URL so the gate keeps its own mirror up to date"
    return _read_git(src, str(path), now_ms, max_age_ms, advice)


def _load_url(url: str, cache_dir: Path, now_ms: int, max_age_ms: int, retries: int, backoff: float) -> Feed:
    shown = _display(url)
    workdir = cache_dir / FEEDS_DIR
    mirror = mirror_dir(workdir, url)
    existed = (mirror / "HEAD").exists()
    branch = _mirror_branch(mirror) if existed else _remote_default_branch(url, shown)
    try:
        src = GitSource.open(url, branch, workdir, Metrics(), retries=retries, backoff=backoff)
        if existed:
            try:
                src.fetch()
            except GitSourceError:
                src.close()
                raise
    except GitSourceError as exc:
        raise FeedError(
            f"cannot mirror {shown}: {_scrub(str(exc), url, shown)}; check the URL, the network and credentials"
        ) from None
    advice = "upstream has not changed for that long (check that the URL is the live feed), or raise the limit"
    return _read_git(src, shown, now_ms, max_age_ms, advice)


def _read_git(src: GitSource, shown: str, now_ms: int, max_age_ms: int, advice: str) -> Feed:
    try:
        try:
            head = src.resolve("HEAD")
        except GitSourceError:
            raise FeedError(
                f"{shown} has no commit at HEAD (empty repository, or HEAD names a missing branch)"
            ) from None
        label = f"{shown}@{head}"
        age = max(0, now_ms - src.commit_time_ms(head))
        _check_age(age, max_age_ms, f"feed {label} (newest commit)", advice)
        entries = list(src.list_tree(head))
        if not entries:
            raise FeedError(
                f"{label} has no .json files under osv/malicious/ or osv/withdrawn/: "
                "is it a clone of ossf/malicious-packages?"
            )
        collector = _Collector(zip_source=False, where=label)
        blobs = src.read_blobs([blob for _, blob in entries], MAX_FILE_BYTES)
        for (path, blob), got in zip(entries, blobs, strict=True):
            if got is None:
                raise FeedError(f"{label}: object {blob} ({safe(path)}) is missing; the clone is damaged: clone again")
            collector.add(path, blob, got[1])
        return collector.feed(label, age, head)
    except GitSourceError as exc:
        raise FeedError(f"cannot read {shown}: {exc}") from None
    finally:
        src.close()


def _remote_default_branch(url: str, shown: str) -> str:
    try:
        out = str(git.cmd.Git().ls_remote("--symref", url, "HEAD"))
    except git.GitCommandError as exc:
        detail = _scrub(_git_error(exc), url, shown)
        raise FeedError(f"cannot reach {shown}: {detail}; check the URL, the network and credentials") from None
    for line in out.splitlines():
        ref, _, name = line.partition("\t")
        if ref.startswith("ref: refs/heads/") and name == "HEAD":
            return ref[len("ref: refs/heads/") :]
    raise FeedError(f"{shown} does not say which branch is its default (no HEAD); is it a git repository?")


def _mirror_branch(mirror: Path) -> str:
    try:
        repo = git.Repo(mirror)
        try:
            return str(repo.git.symbolic_ref("--short", "HEAD"))
        finally:
            repo.close()
    except (git.GitCommandError, git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise FeedError(f"the cached mirror {mirror} is damaged (no default branch): delete it and run again") from None


@contextmanager
def _git_noninteractive() -> Iterator[None]:
    """A CI gate must fail, not wait for a password or a host-key prompt (git started while this is active)."""
    saved = {name: os.environ.get(name) for name in ("GIT_TERMINAL_PROMPT", "GIT_SSH_COMMAND")}
    os.environ["GIT_TERMINAL_PROMPT"] = "0"
    if saved["GIT_SSH_COMMAND"] is None and "GIT_SSH" not in os.environ:
        os.environ["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _display(source: str) -> str:
    """The source as it may be printed: credentials in an http(s) or ssh URL are masked."""
    parts = urlsplit(source)
    if parts.scheme in ("http", "https", "ssh") and "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        if parts.scheme != "ssh" or ":" in userinfo:
            return safe(urlunsplit(parts._replace(netloc=f"***@{host}")))
    return safe(source)


def _scrub(text: str, url: str, shown: str) -> str:
    return text.replace(url, shown)


# -- zip -------------------------------------------------------------------------------------------------------


def _load_zip(path: Path, now_ms: int, max_age_ms: int) -> Feed:
    label = str(path)
    advice = f"download the export again ({PYPI_EXPORT})"
    collector = _Collector(zip_source=True, where=label)
    try:
        with zipfile.ZipFile(path) as zf:
            members = [info for info in zf.infolist() if not info.is_dir() and info.filename.endswith(".json")]
            if not members:
                raise FeedError(f"{label} holds no .json records: is it an OSV export? {advice}")
            for info in members:
                if info.file_size > ZIP_MAX_RECORD_BYTES:
                    raise FeedError(f"{label}: {safe(info.filename)} is {info.file_size} bytes, not an OSV record")
                collector.add(info.filename, f"{info.CRC:08x}", zf.read(info))
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        raise FeedError(f"{label} is damaged ({safe(str(exc))}): {advice}") from None
    newest = collector.newest_modified
    if newest is None:
        newest = path.stat().st_mtime_ns // 1_000_000
    age = max(0, now_ms - newest)
    _check_age(age, max_age_ms, f"feed {label} (newest record)", advice)
    return collector.feed(label, age, None)


# -- records ---------------------------------------------------------------------------------------------------


def _check_age(age_ms: int, max_age_ms: int, what: str, advice: str) -> None:
    if age_ms > max_age_ms:
        raise FeedStale(
            age_ms, f"{what} is {format_duration(age_ms)} old, over the {format_duration(max_age_ms)} limit: {advice}"
        )


def _malicious(report_id: str, doc: Any) -> bool:
    """An OpenSSF malicious-package record as osv.dev exports it: a MAL- id, or a MAL- alias."""
    aliases = doc.get("aliases") if isinstance(doc, dict) else None
    return report_id.startswith("MAL-") or (
        isinstance(aliases, list) and any(isinstance(a, str) and a.startswith("MAL-") for a in aliases)
    )


class _Collector:
    """Turns (path, blob, bytes) into FeedReports; picks one copy per id once everything is read."""

    def __init__(self, zip_source: bool, where: str) -> None:
        self.zip_source = zip_source
        self.where = where
        self.copies: dict[str, dict[Location, tuple[FeedReport, ...]]] = {}
        self.skipped: Counter[str] = Counter()
        self.pypi_records = 0
        self.newest_modified: int | None = None

    def add(self, path: str, blob: str, data: bytes) -> None:
        if b"PyPI" not in data and "/pypi/" not in path:
            self.skipped["other-ecosystem"] += 1
            return
        try:
            outcome = parse_report(data, path, ZIP_MAX_RECORD_BYTES if self.zip_source else MAX_FILE_BYTES)
        except ReportParseError as exc:
            self._unparsed(path, blob, data, exc)
            return
        if isinstance(outcome, Pending):
            self.skipped["pending"] += 1
            return
        doc = json.loads(data)  # parse_report has just decoded it
        if self.zip_source and not _malicious(outcome.report_id, doc):
            self.skipped["not-malicious"] += 1
            return
        reports = _pypi_reports(outcome.report_id, outcome.summary, doc, path)
        if not reports:
            self.skipped["other-ecosystem"] += 1
            return
        self._keep(outcome.report_id, path, blob, is_withdrawn(path, outcome), reports, outcome)

    def _unparsed(self, path: str, blob: str, data: bytes, exc: ReportParseError) -> None:
        """A file the ingestor would dead-letter: keep what it says about PyPI, or fail closed on its folder."""
        doc: Any = None
        if exc.reason not in ("malformed-json", "oversized"):
            doc = json.loads(data)
        elif self.zip_source:
            raise FeedError(
                f"{self.where}: {safe(path)} is not an OSV record ({exc}): the zip is damaged or not an OSV export; "
                f"download it again ({PYPI_EXPORT})"
            )
        if isinstance(doc, dict):
            raw_id = doc.get("id")
            report_id = raw_id if isinstance(raw_id, str) and _ID.match(raw_id) else PurePosixPath(path).stem
            raw_summary = doc.get("summary")
            summary = raw_summary if isinstance(raw_summary, str) else ""
            reports = _pypi_reports(report_id, summary, doc, path)
            if reports:
                withdrawn = in_withdrawn_dir(path) or doc.get("withdrawn") not in (None, "")
                logger.warning("feed: %s breaks the OSV schema (%s); kept for its PyPI packages", safe(path), exc)
                self._keep(report_id, path, blob, withdrawn, reports, None)
                return
        if not self.zip_source and path.startswith(_PYPI_DIR) and len(PurePosixPath(path).parts) >= 5:
            package = canonicalize_name(PurePosixPath(path).parts[3])
            report_id = PurePosixPath(path).stem
            why = f"report file {path} is unreadable ({exc}): every version of {package} counts as affected"
            logger.warning("feed: %s", safe(why))
            unknown = FeedReport(report_id, package, why, (), path, known=False)
            self._keep(report_id, path, blob, False, (unknown,), None)
            return
        logger.warning("feed: skipping %s: %s", safe(path), exc)
        self.skipped["unreadable"] += 1

    def _keep(
        self,
        report_id: str,
        path: str,
        blob: str,
        withdrawn: bool,
        reports: tuple[FeedReport, ...],
        parsed: ParsedReport | None,
    ) -> None:
        self.pypi_records += 1
        if parsed is not None and parsed.modified:
            try:
                modified = parse_rfc3339_ms(parsed.modified)
            except ValueError:
                modified = None
            if modified is not None and (self.newest_modified is None or modified > self.newest_modified):
                self.newest_modified = modified
        packages = tuple((PYPI, r.package) for r in reports)
        self.copies.setdefault(report_id, {})[Location(path, blob, withdrawn, packages)] = reports

    def feed(self, label: str, age_ms: int, commit: str | None) -> Feed:
        if self.pypi_records == 0:
            raise FeedError(f"{label} holds no PyPI reports at all: is it the right feed? (zip: {PYPI_EXPORT})")
        by_package: dict[str, list[FeedReport]] = {}
        live = 0
        for copies in self.copies.values():
            chosen = effective(copies)
            assert chosen is not None  # every id has at least one copy
            if chosen.withdrawn:
                self.skipped["withdrawn"] += 1
                continue
            live += 1
            for report in copies[chosen]:
                by_package.setdefault(report.package, []).append(report)
        reports = {name: tuple(sorted(rs, key=lambda r: r.report_id)) for name, rs in by_package.items()}
        return Feed(reports, label, age_ms, live, self.skipped, commit)


def _pypi_reports(report_id: str, summary: str, doc: dict[str, Any], path: str) -> tuple[FeedReport, ...]:
    """One FeedReport per PyPI package the record names, with that package's ``affected[]`` entries."""
    entries: dict[str, list[Affected]] = {}
    affected = doc.get("affected")
    for entry in affected if isinstance(affected, list) else ():
        package = entry.get("package") if isinstance(entry, dict) else None
        if not isinstance(package, dict) or package.get("ecosystem") != PYPI:
            continue
        name = package.get("name")
        if isinstance(name, str) and name.strip():
            entries.setdefault(canonicalize_name(name), []).append(Affected.from_osv(entry))
    return tuple(FeedReport(report_id, name, summary, tuple(affs), path) for name, affs in entries.items())
