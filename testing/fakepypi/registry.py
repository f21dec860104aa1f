"""The mutable index: projects, synthetic segments, the journal, and the last version of every page.

Every transition follows ``warehouse/utils/project.py`` as summarised in ``docs/pypi-signals.md``:
journaled actions bump the global serial and the project's ``last_serial`` (the DB trigger); archive and
unarchive change the state but write no journal row.  Not thread-safe by itself: ``FakePyPI`` wraps it in
a lock.  No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from .journal import Journal
from .model import FileState, Lifecycle, ProjectState, ReleaseState, normalize, validate_name
from .synthetic import SyntheticSegment
from .versions import dist_kind

RootEntry = tuple[str, str, int, bool]  # (normalized, display name, last serial, listed on /simple/)
_Action = tuple[str | None, str]  # (version, journal action)


@dataclass(frozen=True, slots=True)
class RootSnapshot:
    """What ``/simple/`` and ``list_packages_with_serial`` are rendered from, frozen at one version."""

    version: int
    serial: int
    entries: tuple[RootEntry, ...]
    segments: tuple[tuple[SyntheticSegment, frozenset[int]], ...]


@dataclass(frozen=True, slots=True)
class _RootUndo:
    """How to rebuild the root as it was before the last root-visible change (for the stale fault)."""

    key: str | None
    old: ProjectState | None
    serial: int
    segments: int


class Registry:
    """Projects keyed by normalized name, plus lazily generated synthetic ones."""

    def __init__(self, start_serial: int, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._journal = Journal(start_serial + 1)
        self._projects: dict[str, ProjectState] = {}
        self._segments: list[SyntheticSegment] = []
        self._overrides: list[set[int]] = []  # synthetic indexes now held in _projects, or removed
        self._previous: dict[str, ProjectState | None] = {}
        self._root_version = 0
        self._root_undo: _RootUndo | None = None

    # ----------------------------------------------------------------- reading
    @property
    def last_serial(self) -> int:
        """Global ``max(journals.id)`` (or the start serial before anything happened)."""
        return self._journal.next_serial - 1

    @property
    def journal(self) -> Journal:
        """The live journal (append-only, so handing it out is safe)."""
        return self._journal

    @property
    def root_version(self) -> int:
        """Bumped by every change visible on ``/simple/`` (i.e. every journaled action)."""
        return self._root_version

    @property
    def previous_root_version(self) -> int:
        """The version ``root_snapshot(previous=True)`` returns (the current one if nothing changed yet)."""
        return self._root_version - 1 if self._root_undo is not None else self._root_version

    def get(self, name: str) -> ProjectState | None:
        """Current state of a project under any spelling of its name, or ``None`` if it does not exist."""
        key = normalize(name)
        found = self._projects.get(key)
        if found is not None:
            return found
        for segment, overrides in zip(self._segments, self._overrides, strict=True):
            index = segment.index_of(key)
            if index is not None:
                return None if index in overrides else segment.state(index)
        return None

    def previous(self, name: str) -> ProjectState | None:
        """The project as it was before its last change (what a stale CDN still serves)."""
        key = normalize(name)
        if key in self._previous:
            return self._previous[key]
        return self.get(key)

    def root_snapshot(self, *, previous: bool = False) -> RootSnapshot:
        """Freeze the root index now, or as it was one root-visible change ago."""
        projects: Mapping[str, ProjectState] = self._projects
        version, serial, segment_count = self._root_version, self.last_serial, len(self._segments)
        undo = self._root_undo
        if previous and undo is not None:
            rolled_back = dict(projects)
            if undo.key is not None:
                if undo.old is None:
                    rolled_back.pop(undo.key, None)
                else:
                    rolled_back[undo.key] = undo.old
            projects, version, serial, segment_count = rolled_back, version - 1, undo.serial, undo.segments
        entries = tuple(sorted((key, p.name, p.last_serial, not p.quarantined) for key, p in projects.items()))
        segments = tuple(
            (segment, frozenset(overrides))
            for segment, overrides in zip(self._segments[:segment_count], self._overrides[:segment_count], strict=True)
        )
        return RootSnapshot(version, serial, entries, segments)

    # ----------------------------------------------------------------- bookkeeping
    def _require(self, name: str) -> ProjectState:
        project = self.get(name)
        if project is None:
            raise KeyError(f"no such project: {name!r}")
        return project

    def _require_release(self, project: ProjectState, version: str) -> ReleaseState:
        release = project.release(version)
        if release is None:
            raise KeyError(f"{project.name} has no release {version!r}")
        return release

    def _commit(self, old: ProjectState | None, key: str, new: ProjectState | None, actions: Sequence[_Action]) -> None:
        """Journal ``actions`` under the project's display name, then store ``new`` (``None`` deletes)."""
        before_serial = self.last_serial
        source = new if new is not None else old
        display = source.name if source is not None else key
        timestamp = int(self._clock())
        for version, action in actions:
            self._journal.append(display, version, timestamp, action)
        if new is not None and actions:
            new = replace(new, last_serial=self.last_serial)
        self._previous[key] = old
        if new is None:
            self._projects.pop(key, None)
        else:
            self._projects[key] = new
        for segment, overrides in zip(self._segments, self._overrides, strict=True):
            index = segment.index_of(key)
            if index is not None:
                overrides.add(index)  # the synthetic original must never resurface
        if actions:
            self._root_undo = _RootUndo(key, old, before_serial, len(self._segments))
            self._root_version += 1

    @staticmethod
    def _files(filenames: Sequence[str], upload_time: float) -> tuple[FileState, ...]:
        if isinstance(filenames, str):
            raise TypeError("files must be a sequence of filenames, not a string")
        return tuple(FileState(name, upload_time) for name in filenames)

    @staticmethod
    def _file_actions(version: str, files: Sequence[FileState]) -> list[_Action]:
        return [(version, f"add {dist_kind(f.filename)[1]} file {f.filename}") for f in files]

    def _check_unique_files(self, project: ProjectState, files: Sequence[FileState]) -> None:
        seen = {f.filename for r in project.releases for f in r.files}
        for file in files:
            if file.filename in seen:
                raise ValueError(f"file {file.filename!r} already exists")
            seen.add(file.filename)

    # ----------------------------------------------------------------- uploads
    def add_project(
        self,
        name: str,
        releases: Mapping[str, Sequence[str]] | None,
        upload_time: float | None,
        requires_python: str | None,
    ) -> ProjectState:
        """Create (or re-register) a project: ``create``, then per release ``new release`` + file rows."""
        validate_name(name)
        key = normalize(name)
        if self.get(key) is not None:
            raise ValueError(f"project {name!r} already exists")
        when = self._clock() if upload_time is None else upload_time
        project = ProjectState(name, key, 0)
        actions: list[_Action] = [(None, "create")]
        for version, filenames in (releases or {}).items():
            files = self._files(filenames, when)
            self._check_unique_files(project, files)
            project = project.with_release(ReleaseState(version, files, requires_python))
            actions += [(version, "new release"), *self._file_actions(version, files)]
        self._commit(None, key, project, actions)
        return self._require(key)

    def add_release(
        self,
        name: str,
        version: str,
        filenames: Sequence[str],
        upload_time: float | None,
        requires_python: str | None,
    ) -> None:
        """Upload a new release: ``new release`` plus one ``add <pyver> file <name>`` row per file."""
        project = self._require(name)
        if project.release(version) is not None:
            raise ValueError(f"{project.name} {version} already exists")
        files = self._files(filenames, self._clock() if upload_time is None else upload_time)
        self._check_unique_files(project, files)
        new = project.with_release(ReleaseState(version, files, requires_python))
        self._commit(project, project.normalized, new, [(version, "new release"), *self._file_actions(version, files)])

    def add_file(self, name: str, version: str, filename: str, upload_time: float | None) -> None:
        """Upload one more file to an existing release."""
        project = self._require(name)
        release = self._require_release(project, version)
        files = self._files([filename], self._clock() if upload_time is None else upload_time)
        self._check_unique_files(project, files)
        new = project.with_release(replace(release, files=release.files + files))
        self._commit(project, project.normalized, new, self._file_actions(version, files))

    def remove_file(self, name: str, version: str, filename: str) -> None:
        """``remove file <filename>``; a release left without files drops out of the Simple ``versions``."""
        project = self._require(name)
        release = self._require_release(project, version)
        kept = tuple(f for f in release.files if f.filename != filename)
        if len(kept) == len(release.files):
            raise KeyError(f"{project.name} {version} has no file {filename!r}")
        new = project.with_release(replace(release, files=kept))
        self._commit(project, project.normalized, new, [(version, f"remove file {filename}")])

    # ----------------------------------------------------------------- project lifecycle
    def quarantine(self, name: str) -> None:
        """``quarantine_project()``: unconditional, so an archived project stops being archived."""
        project = self._require(name)
        new = replace(project, lifecycle=Lifecycle.QUARANTINE_ENTER)
        self._commit(project, project.normalized, new, [(None, "project quarantined")])

    def clear_quarantine(self, name: str) -> None:
        """``clear_project_quarantine()``: ``quarantine-exit``, rendered as active (never archived)."""
        project = self._require(name)
        if not project.quarantined:
            raise ValueError(f"{project.name} is not quarantined")
        new = replace(project, lifecycle=Lifecycle.QUARANTINE_EXIT)
        self._commit(project, project.normalized, new, [(None, "project quarantine cleared")])

    def archive(self, name: str) -> None:
        """``archive_project()``: only from no status or ``quarantine-exit``; no journal row, no serial."""
        project = self._require(name)
        if project.lifecycle not in (None, Lifecycle.QUARANTINE_EXIT):
            raise ValueError(f"cannot archive {project.name} from lifecycle {project.lifecycle}")
        self._commit(project, project.normalized, replace(project, lifecycle=Lifecycle.ARCHIVED_NOINDEX), [])

    def unarchive(self, name: str) -> None:
        """``unarchive_project()``: status back to NULL; no journal row, no serial."""
        project = self._require(name)
        if project.status != "archived":
            raise ValueError(f"{project.name} is not archived")
        self._commit(project, project.normalized, replace(project, lifecycle=None), [])

    def remove_project(self, name: str) -> None:
        """``remove_project()``: journal ``remove project``, then delete the row (its serial goes with it)."""
        project = self._require(name)
        self._commit(project, project.normalized, None, [(None, "remove project")])

    # ----------------------------------------------------------------- release lifecycle
    def remove_release(self, name: str, version: str) -> None:
        """``remove release`` with the version; the version vanishes from every endpoint."""
        project = self._require(name)
        self._require_release(project, version)
        self._commit(project, project.normalized, project.without_release(version), [(version, "remove release")])

    def yank(self, name: str, version: str, reason: str | None) -> None:
        """``yank release``; Warehouse stores a missing reason as the empty string."""
        project = self._require(name)
        release = self._require_release(project, version)
        if release.yanked:
            raise ValueError(f"{project.name} {version} is already yanked")
        new = project.with_release(replace(release, yanked=True, yanked_reason=reason or ""))
        self._commit(project, project.normalized, new, [(version, "yank release")])

    def unyank(self, name: str, version: str) -> None:
        """``unyank release``: clears the flag and the reason."""
        project = self._require(name)
        release = self._require_release(project, version)
        if not release.yanked:
            raise ValueError(f"{project.name} {version} is not yanked")
        new = project.with_release(replace(release, yanked=False, yanked_reason=""))
        self._commit(project, project.normalized, new, [(version, "unyank release")])

    def quarantine_release(self, name: str, version: str) -> None:
        """``quarantine_release()``: hides the release; the project stays ``active``."""
        self._set_release_quarantine(name, version, True, "release quarantined")

    def clear_release_quarantine(self, name: str, version: str) -> None:
        """``clear_release_quarantine()``: the release reappears."""
        self._set_release_quarantine(name, version, False, "release quarantine cleared")

    def _set_release_quarantine(self, name: str, version: str, quarantined: bool, action: str) -> None:
        project = self._require(name)
        release = self._require_release(project, version)
        if release.quarantined == quarantined:
            raise ValueError(f"{project.name} {version} quarantined is already {quarantined}")
        new = project.with_release(replace(release, quarantined=quarantined))
        self._commit(project, project.normalized, new, [(version, action)])

    # ----------------------------------------------------------------- bulk
    def generate(self, count: int, prefix: str) -> SyntheticSegment:
        """Append ``count`` synthetic projects (one ``create`` row each) in O(1) time and memory."""
        segment = SyntheticSegment(prefix, count, self._journal.next_serial, self._clock())
        if segment.size == 0:
            return segment
        if any(s.prefix == prefix for s in self._segments):
            raise ValueError(f"prefix {prefix!r} was already generated")
        if any(segment.index_of(key) is not None for key in self._projects):
            raise ValueError(f"a real project already uses a name of the form {prefix}-<n>")
        before_serial = self.last_serial
        self._journal.append_segment(segment)
        self._segments.append(segment)
        self._overrides.append(set())
        self._root_undo = _RootUndo(None, None, before_serial, len(self._segments) - 1)
        self._root_version += 1
        return segment
