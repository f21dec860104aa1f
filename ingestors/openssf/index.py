"""The last known report state: every in-scope file of the cursor's tree, with its id, kept in SQLite.

Why keep it when git already has the trees: after a force-push (or a fresh mirror) the cursor commit may be gone,
and "compare a full snapshot with the last known state" needs that state from somewhere. It also answers "does
this id live at another path too?" for the rare duplicate copy, and lets an unchanged file skip parsing.

SQLite (stdlib) keeps memory bounded at upstream scale: the working sets of a poll (``changed``, ``incoming``,
``before``) are temporary tables, and the whole poll is one transaction that commits only after the cursor was
saved. The ``meta.commit`` row says which commit the table mirrors, so a mismatch is detected, never trusted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from qwatch.frozen import fast_init
from qwatch.openssf.classify import Location, PackageKey

REPORT = "report"
PENDING = "pending"
INVALID = "invalid"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    blob TEXT NOT NULL,
    kind TEXT NOT NULL,
    report_id TEXT,
    withdrawn INTEGER NOT NULL DEFAULT 0,
    ecosystem TEXT NOT NULL DEFAULT '',
    package_name TEXT NOT NULL DEFAULT '',
    package TEXT NOT NULL DEFAULT '',
    more_packages TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_BY_ID = "CREATE INDEX IF NOT EXISTS files_by_id ON files(report_id) WHERE report_id IS NOT NULL"
_MORE_PACKAGES = "ALTER TABLE files ADD COLUMN more_packages TEXT NOT NULL DEFAULT ''"
"""An index written before reports could name several packages lacks the column; '' (one package) is right
for all of its rows, because such reports were dead-lettered then."""

_SCRATCH = """
CREATE TEMP TABLE IF NOT EXISTS changed (path TEXT PRIMARY KEY, old_blob TEXT, new_blob TEXT) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS listing (path TEXT PRIMARY KEY, blob TEXT NOT NULL) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS incoming (
    path TEXT PRIMARY KEY, blob TEXT NOT NULL, kind TEXT NOT NULL, report_id TEXT,
    withdrawn INTEGER NOT NULL, ecosystem TEXT NOT NULL, package_name TEXT NOT NULL, package TEXT NOT NULL,
    more_packages TEXT NOT NULL
) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS affected (report_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS before (
    path TEXT PRIMARY KEY, blob TEXT NOT NULL, kind TEXT NOT NULL, report_id TEXT NOT NULL,
    withdrawn INTEGER NOT NULL, ecosystem TEXT NOT NULL, package_name TEXT NOT NULL, package TEXT NOT NULL,
    more_packages TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS temp.before_by_id ON before(report_id);
"""


@fast_init  # one per file of a 250k-file snapshot (see qwatch.frozen)
@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One in-scope file: a report (with the names a ``deleted`` or ``moved`` event needs), a pending file or a
    bad one. ``ecosystem``/``package_name``/``package`` name the report's first package; ``more_packages`` holds
    ``(ecosystem, package_name, package)`` for any further ones."""

    path: str
    blob: str
    kind: str
    report_id: str | None = None
    withdrawn: bool = False
    ecosystem: str = ""
    package_name: str = ""
    package: str = ""
    more_packages: tuple[tuple[str, str, str], ...] = ()

    @property
    def names(self) -> tuple[tuple[str, str, str], ...]:
        """``(ecosystem, package_name, package)`` of every package the report names, first one first."""
        return ((self.ecosystem, self.package_name, self.package), *self.more_packages)

    @property
    def keys(self) -> tuple[PackageKey, ...]:
        """``(ecosystem, package)`` of every package the report names (empty for a pending or a bad file)."""
        if self.kind != REPORT:
            return ()
        return tuple((eco, pkg) for eco, _, pkg in self.names)

    def as_row(self) -> tuple[str, str, str, str | None, int, str, str, str, str]:
        """The column tuple, in table order."""
        return (
            self.path,
            self.blob,
            self.kind,
            self.report_id,
            int(self.withdrawn),
            self.ecosystem,
            self.package_name,
            self.package,
            json.dumps([list(p) for p in self.more_packages], ensure_ascii=False) if self.more_packages else "",
        )


class ReportIndex:
    """A path-keyed table of the tree at ``commit``; every mutation happens inside ``begin``/``commit``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Autocommit mode: transactions are explicit, so nothing is committed behind the service's back.
        # One poll at a time uses it, but not always from the thread that opened it (tests run the loop aside).
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA temp_store=FILE")
        self._db.executescript(_SCHEMA)
        self._db.execute(_BY_ID)
        if not any(row[1] == "more_packages" for row in self._db.execute("PRAGMA table_info(files)")):
            self._db.execute(_MORE_PACKAGES)
        self._db.executescript(_SCRATCH)

    def close(self) -> None:
        """Close the database (an open transaction is rolled back)."""
        self._db.close()

    # -- transactions and identity -------------------------------------------------------------------------
    def begin(self) -> None:
        """Start the poll's transaction and empty the scratch tables."""
        self._db.execute("BEGIN IMMEDIATE")
        for table in ("changed", "listing", "incoming", "affected", "before"):
            self._db.execute(f"DELETE FROM temp.{table}")  # noqa: S608 - fixed table names

    def commit(self) -> None:
        """Make the poll's changes durable (called after the cursor was saved)."""
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        """Forget the poll's changes (the cursor did not move, so neither does the index)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    @property
    def commit_sha(self) -> str | None:
        """The commit this table mirrors, or None when it was never built."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'commit'").fetchone()
        return str(row[0]) if row else None

    def set_commit(self, sha: str) -> None:
        """Record which commit the table now mirrors."""
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('commit', ?)", (sha,))

    def clear(self) -> None:
        """Drop every file row, before a rebuild or a snapshot."""
        self._db.execute("DELETE FROM files")
        self._db.execute("DELETE FROM meta WHERE key = 'commit'")

    def bulk_start(self) -> None:
        """Before a snapshot fills the cleared table: drop the by-id index, so each insert maintains one b-tree
        instead of two (the snapshot never looks an id up; building the index once at the end is cheaper)."""
        self._db.execute("DROP INDEX IF EXISTS files_by_id")

    def bulk_end(self) -> None:
        """After a snapshot: build the by-id index over the whole table (inside the poll's transaction)."""
        self._db.execute(_BY_ID)

    def file_count(self) -> int:
        """Rows in the table (all kinds)."""
        return int(self._db.execute("SELECT count(*) FROM files").fetchone()[0])

    # -- building the change set ---------------------------------------------------------------------------
    def add_changes(self, rows: Iterable[tuple[str, str | None, str | None]]) -> None:
        """Queue (path, old blob, new blob) rows from a tree diff or a listing (old blob None)."""
        self._db.executemany("INSERT OR REPLACE INTO changed(path, old_blob, new_blob) VALUES (?, ?, ?)", rows)

    def changes_from_listing(self, rows: Iterable[tuple[str, str]]) -> None:
        """Compare a full (path, blob) listing of the new head with the table: the force-push diff."""
        self._db.executemany("INSERT OR REPLACE INTO listing(path, blob) VALUES (?, ?)", rows)
        self._db.execute(
            "INSERT OR REPLACE INTO changed(path, old_blob, new_blob) "
            "SELECT l.path, f.blob, l.blob FROM listing l LEFT JOIN files f ON f.path = l.path "
            "WHERE f.blob IS NULL OR f.blob != l.blob"
        )
        self._db.execute(
            "INSERT OR REPLACE INTO changed(path, old_blob, new_blob) "
            "SELECT f.path, f.blob, NULL FROM files f WHERE NOT EXISTS (SELECT 1 FROM listing l WHERE l.path = f.path)"
        )
        self._db.execute("DELETE FROM listing")

    def changed_count(self) -> tuple[int, int]:
        """(changed paths, paths with new content to read)."""
        row = self._db.execute("SELECT count(*), count(new_blob) FROM changed").fetchone()
        return int(row[0]), int(row[1])

    def new_blobs(self, batch: int) -> Iterator[list[tuple[str, str]]]:
        """Changed paths with new content, in path order, ``batch`` at a time (keyset paging keeps it lazy)."""
        last = ""
        while True:
            rows = self._db.execute(
                "SELECT path, new_blob FROM changed WHERE new_blob IS NOT NULL AND path > ? ORDER BY path LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            yield [(str(p), str(b)) for p, b in rows]
            last = rows[-1][0]

    def add_incoming(self, entries: Iterable[IndexEntry]) -> None:
        """Stage parsed new-side entries; they replace the changed paths on ``apply``."""
        self._db.executemany(
            "INSERT OR REPLACE INTO incoming VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (e.as_row() for e in entries)
        )

    def apply(self, capture_before: bool) -> None:
        """Replace changed paths by the incoming entries; first remember where affected ids lived."""
        if capture_before:
            self._db.execute(
                "INSERT OR IGNORE INTO affected SELECT report_id FROM files "
                "WHERE report_id IS NOT NULL AND path IN (SELECT path FROM changed)"
            )
            self._db.execute(
                "INSERT OR IGNORE INTO affected SELECT report_id FROM incoming WHERE report_id IS NOT NULL"
            )
            self._db.execute(
                # CROSS JOIN pins the small table outside: without statistics SQLite would scan all files.
                "INSERT INTO before SELECT f.* FROM affected a CROSS JOIN files f "
                "ON f.report_id = a.report_id WHERE f.kind = 'report'"
            )
        self._db.execute("DELETE FROM files WHERE path IN (SELECT path FROM changed)")
        self._db.execute("INSERT OR REPLACE INTO files SELECT * FROM incoming")

    def affected_ids(self) -> Iterator[str]:
        """Ids whose locations may have changed, sorted (only after ``apply(capture_before=True)``)."""
        last = ""
        while True:
            rows = self._db.execute(
                "SELECT report_id FROM affected WHERE report_id > ? ORDER BY report_id LIMIT 1000", (last,)
            ).fetchall()
            if not rows:
                return
            for (rid,) in rows:
                yield str(rid)
            last = rows[-1][0]

    def before(self, report_id: str) -> list[Location]:
        """Where the id lived before this poll's changes."""
        rows = self._db.execute(
            "SELECT path, blob, withdrawn, ecosystem, package, more_packages FROM before WHERE report_id = ?",
            (report_id,),
        )
        return [_location(row) for row in rows]

    # -- lookups ---------------------------------------------------------------------------------------------
    def locations(self, report_id: str) -> list[Location]:
        """Where the id lives now (every copy)."""
        rows = self._db.execute(
            "SELECT path, blob, withdrawn, ecosystem, package, more_packages FROM files "
            "WHERE report_id = ? AND kind = 'report'",
            (report_id,),
        )
        return [_location(row) for row in rows]

    def has_report(self, report_id: str) -> bool:
        """True when some file already holds this id."""
        row = self._db.execute("SELECT 1 FROM files WHERE report_id = ? AND kind = 'report' LIMIT 1", (report_id,))
        return row.fetchone() is not None

    def entry(self, path: str) -> IndexEntry | None:
        """The current row of one path, None when the path is not in the tree."""
        row = self._db.execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        return _entry(row) if row else None

    def entry_before(self, path: str) -> IndexEntry | None:
        """The pre-poll row of a report path (a ``deleted`` event whose blob is gone still names its package)."""
        row = self._db.execute("SELECT * FROM before WHERE path = ?", (path,)).fetchone()
        return _entry(row) if row else None

    def insert(self, entries: Iterable[IndexEntry]) -> None:
        """Write rows directly (snapshots and rebuilds, where there is no old state to compare)."""
        self._db.executemany(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (e.as_row() for e in entries)
        )


def _more_packages(raw: object) -> tuple[tuple[str, str, str], ...]:
    if not raw:
        return ()
    return tuple((str(e), str(n), str(p)) for e, n, p in json.loads(str(raw)))


def _location(row: tuple[object, ...]) -> Location:
    path, blob, withdrawn, ecosystem, package, more = row
    keys = ((str(ecosystem), str(package)), *((e, p) for e, _, p in _more_packages(more)))
    return Location(str(path), str(blob), bool(withdrawn), keys)


def _entry(row: tuple[object, ...]) -> IndexEntry:
    rid = row[3]
    return IndexEntry(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        None if rid is None else str(rid),
        bool(row[4]),
        str(row[5]),
        str(row[6]),
        str(row[7]),
        _more_packages(row[8]),
    )
