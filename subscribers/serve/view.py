"""The materialized view behind ``qwatch serve``: transitions, package state and inventories in one SQLite file.

Why SQLite: the API answers "everything about package X" and "transitions after cursor C matching F" with indexed
lookups, survives restarts without re-reading a year of transitions, and gives readers a consistent snapshot (WAL)
while the feeding thread writes. The positions the view has applied (topic, partition → next offset) are written in
the same SQLite transaction as the rows they produced, so after a crash the view resumes exactly where its data
ends: nothing applied twice, nothing skipped. The view is disposable: a missing file, a different source, a schema
change or a topic that moved backwards (recreated) means it is rebuilt from the topics.

One writer (the feeder thread, :meth:`View.apply`) and readers with their own connections (:meth:`View.reader`),
each used from a single thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwatch import events
from qwatch.events.codec import Codec
from qwatch.events.outputs import InventoryRecord
from qwatch.logs import safe
from qwatch.sinks import Delivery
from subscribers.serve import cursor as cursormod
from subscribers.serve.query import SEVERITY_RANK, Filters

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
FILE_NAME = "serve-view.sqlite3"
MAX_HISTORY = 5000
"""Transitions returned for one package (a package page is for people; no real package comes near this)."""

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (topic TEXT NOT NULL, part INTEGER NOT NULL, next INTEGER NOT NULL,
  PRIMARY KEY (topic, part));
CREATE TABLE IF NOT EXISTS transitions (
  seq INTEGER PRIMARY KEY, part INTEGER NOT NULL, off INTEGER NOT NULL, event_id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL, ecosystem TEXT NOT NULL, eco_key TEXT NOT NULL, package TEXT NOT NULL,
  severity TEXT NOT NULL, severity_rank INTEGER NOT NULL, version TEXT, report_id TEXT,
  upstream_time INTEGER, detected_at INTEGER NOT NULL, summary TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transitions_part ON transitions (part, off);
CREATE INDEX IF NOT EXISTS transitions_part_seq ON transitions (part, seq);
CREATE INDEX IF NOT EXISTS transitions_pkg ON transitions (eco_key, package, seq);
CREATE INDEX IF NOT EXISTS transitions_kind ON transitions (kind, seq);
CREATE TABLE IF NOT EXISTS packages (
  eco_key TEXT NOT NULL, package TEXT NOT NULL, ecosystem TEXT NOT NULL, first_seen INTEGER,
  last_change INTEGER, state TEXT, rev INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (eco_key, package));
CREATE TABLE IF NOT EXISTS inventory (
  project TEXT NOT NULL, lockfile TEXT NOT NULL, package TEXT NOT NULL, version TEXT, path TEXT NOT NULL,
  registered_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS inventory_pkg ON inventory (package);
CREATE INDEX IF NOT EXISTS inventory_project ON inventory (project);
CREATE TABLE IF NOT EXISTS skipped (pointer TEXT PRIMARY KEY, error TEXT NOT NULL);
"""

_COLS = "seq, part, off, kind, ecosystem, package, severity, detected_at, body"


@dataclass(frozen=True, slots=True)
class Row:
    """One stored transition: its place (seq locally; partition and offset everywhere) and its JSON form."""

    seq: int
    part: int
    off: int
    kind: str
    ecosystem: str
    package: str
    severity: str
    detected_at: int
    body: dict[str, Any]

    @classmethod
    def of(cls, r: Sequence[Any]) -> Row:
        """From a ``SELECT {_COLS}`` row."""
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]))


@dataclass(frozen=True)
class Page:
    """A page of transitions and the cursor that continues after it."""

    rows: list[Row]
    next: dict[int, int]
    more: bool
    """True when the page was full: more rows may follow right away."""


@dataclass(frozen=True)
class PackageRecord:
    """Everything stored about one package: its state record (if the state topic had one), history, users."""

    ecosystem: str
    package: str
    first_seen: int | None
    last_change: int | None
    state: dict[str, Any] | None
    history: list[Row]
    inventories: list[dict[str, Any]]
    revision: int = 0
    """The package's revision when read (see :meth:`Reader.revision`)."""


def _connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class View:
    """The writer side; also hands out readers. ``identity`` names the source, so a view of another is rebuilt."""

    def __init__(self, directory: Path, identity: str, transitions_topic: str, codec: Codec | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILE_NAME
        self.identity = identity
        self.transitions_topic = transitions_topic
        self._codec = codec or Codec()
        self.rebuilt_because = self._open()

    def _open(self) -> str | None:
        reason = None
        if not self.path.exists():
            reason = "no view on disk"
        else:
            try:
                conn = _connect(self.path)
                try:
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone()
                    identity = (
                        conn.execute("SELECT value FROM meta WHERE key='identity'").fetchone() if has_meta else None
                    )
                finally:
                    conn.close()
                if version != SCHEMA_VERSION:
                    reason = f"schema version {version} is not {SCHEMA_VERSION}"
                elif identity is None or identity[0] != self.identity:
                    reason = "it was built from another source"
            except sqlite3.DatabaseError as exc:
                reason = f"unreadable ({exc})"
            if reason:
                self._remove()
        self._db = _connect(self.path)
        self._db.executescript(_DDL)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (self.identity,))
        return reason

    def _remove(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def rebuild(self, reason: str) -> None:
        """Throw the view away and start empty (before any reader exists: called at start-up only)."""
        logger.warning("serve: rebuilding the view from the topics: %s", reason)
        self._db.close()
        self._remove()
        self.rebuilt_because = reason
        self._open()

    def close(self) -> None:
        """Close the writer connection."""
        self._db.close()

    def positions(self) -> dict[tuple[str, int], int]:
        """(topic, partition) → the next offset to apply."""
        return {(t, p): n for t, p, n in self._db.execute("SELECT topic, part, next FROM positions")}

    def apply(self, batch: Iterable[Delivery]) -> int:
        """Apply a batch in one SQLite transaction (rows and positions together); returns transitions added."""
        added = 0
        with self._tx():
            for d in batch:
                self._db.execute(
                    "INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (topic, part) DO UPDATE "
                    "SET next = max(next, excluded.next)",
                    (d.topic, d.partition, d.offset + 1),
                )
                event = d.event
                if isinstance(event, events.Transition):
                    added += self._transition(d, event)
                elif isinstance(event, events.PackageStateRecord):
                    self._state(event)
                elif isinstance(event, InventoryRecord):
                    self._inventory(event)
                elif d.error is not None:
                    logger.warning("serve: undecodable record at %s: %s", d.pointer, safe(d.error, 200))
                    self._db.execute("INSERT OR REPLACE INTO skipped VALUES (?, ?)", (d.pointer, d.error[:500]))
                elif d.tombstone and d.key:
                    self._tombstone(d)
        return added

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _touch(self, ecosystem: str, package: str, first_seen: int | None, last_change: int | None) -> None:
        self._db.execute(
            "INSERT INTO packages (eco_key, package, ecosystem, first_seen, last_change) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (eco_key, package) DO UPDATE SET "
            "first_seen = CASE WHEN first_seen IS NULL THEN excluded.first_seen "
            "  WHEN excluded.first_seen IS NULL THEN first_seen ELSE min(first_seen, excluded.first_seen) END, "
            "last_change = CASE WHEN last_change IS NULL THEN excluded.last_change "
            "  WHEN excluded.last_change IS NULL THEN last_change ELSE max(last_change, excluded.last_change) END, "
            "rev = rev + 1",
            (ecosystem.lower(), package, ecosystem, first_seen, last_change),
        )

    def _transition(self, d: Delivery, t: events.Transition) -> int:
        body = json.dumps(self._codec.to_json_dict(t), separators=(",", ":"))
        cur = self._db.execute(
            "INSERT OR IGNORE INTO transitions (part, off, event_id, kind, ecosystem, eco_key, package, severity, "
            "severity_rank, version, report_id, upstream_time, detected_at, summary, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d.partition,
                d.offset,
                t.event_id,
                t.kind,
                t.ecosystem,
                t.ecosystem.lower(),
                t.package,
                t.severity,
                SEVERITY_RANK.get(t.severity, -1),
                t.version,
                t.report_id,
                t.upstream_time,
                t.detected_at,
                t.summary,
                body,
            ),
        )
        if cur.rowcount:
            self._touch(t.ecosystem, t.package, t.detected_at, t.detected_at)
        return cur.rowcount

    def _state(self, s: events.PackageStateRecord) -> None:
        seen = [p.observed_at for p in s.points] + [r.first_seen for r in s.reports]
        self._touch(s.ecosystem, s.package, min(seen) if seen else s.updated_at, None)
        self._db.execute(
            "UPDATE packages SET state = ?, rev = rev + 1 WHERE eco_key = ? AND package = ?",
            (json.dumps(self._codec.to_json_dict(s), separators=(",", ":")), s.ecosystem.lower(), s.package),
        )

    def _bump(self, packages: Iterable[str]) -> None:
        """A package's inventories changed: its cached API answer is stale."""
        self._db.executemany(
            "UPDATE packages SET rev = rev + 1 WHERE eco_key = 'pypi' AND package = ?", [(p,) for p in set(packages)]
        )

    def _inventory(self, record: InventoryRecord) -> None:
        old = [p for (p,) in self._db.execute("SELECT package FROM inventory WHERE project = ?", (record.project,))]
        self._bump([*old, *(p.name for p in record.packages)])
        self._db.execute("DELETE FROM inventory WHERE project = ?", (record.project,))
        if record.removed:
            return
        self._db.executemany(
            "INSERT INTO inventory VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    record.project,
                    record.lockfile,
                    p.name,
                    p.version,
                    " > ".join(record.path_to(p.name)) or p.name,
                    record.registered_at,
                )
                for p in record.packages
                if p.source_kind == "pypi"
            ],
        )

    def _tombstone(self, d: Delivery) -> None:
        key = (d.key or b"").decode("utf-8", "replace")
        eco, sep, pkg = key.partition(":")
        if sep:  # a package-keyed compacted record (state) was deleted
            self._db.execute(
                "UPDATE packages SET state = NULL, rev = rev + 1 WHERE eco_key = ? AND package = ?", (eco.lower(), pkg)
            )
        else:  # the inventory topic is keyed by project
            self._bump(p for (p,) in self._db.execute("SELECT package FROM inventory WHERE project = ?", (key,)))
            self._db.execute("DELETE FROM inventory WHERE project = ?", (key,))

    def reader(self) -> Reader:
        """A read connection for one thread."""
        return Reader(self.path, self.transitions_topic)


class Reader:
    """Read-only queries over a consistent snapshot each (one connection; use it from one thread)."""

    def __init__(self, path: Path, transitions_topic: str) -> None:
        self._db = _connect(path)
        self._db.execute("PRAGMA query_only=1")
        self._topic = transitions_topic

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")

    def head(self) -> dict[int, int]:
        """The view's position in the transitions stream: a cursor after everything applied."""
        return dict(self._db.execute("SELECT part, next FROM positions WHERE topic = ?", (self._topic,)).fetchall())

    def max_seq(self) -> int:
        """The newest local row number (0 when empty)."""
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM transitions").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Rows per table, for /healthz."""
        db = self._db
        return {
            "transitions": int(db.execute("SELECT count(*) FROM transitions").fetchone()[0]),
            "packages": int(db.execute("SELECT count(*) FROM packages").fetchone()[0]),
            "inventories": int(db.execute("SELECT count(DISTINCT project) FROM inventory").fetchone()[0]),
            "skipped": int(db.execute("SELECT count(*) FROM skipped").fetchone()[0]),
        }

    @staticmethod
    def _where(filters: Filters) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, values in (
            ("kind", filters.kinds),
            ("eco_key", filters.ecosystems),
            ("package", filters.packages),
            ("severity", filters.severities),
        ):
            if values:
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(sorted(values))
        if filters.min_severity:
            clauses.append("severity_rank >= ?")
            params.append(SEVERITY_RANK[filters.min_severity])
        return clauses, params

    def _after(self, since: Mapping[int, int]) -> tuple[list[str], list[Any]]:
        """SQL for "at or after the cursor", plus a seq lower bound so the scan starts where it can matter."""
        if not since:
            return [], []
        parts = [p for (p,) in self._db.execute("SELECT DISTINCT part FROM transitions")]
        lows: list[int] = []
        for p in parts:
            first = self._db.execute(
                "SELECT min(seq) FROM transitions WHERE part = ? AND off >= ?", (p, since.get(p, 0))
            ).fetchone()[0]
            if first is not None:
                lows.append(int(first))
        if not lows:
            return ["0"], []
        cases = " ".join(f"WHEN {int(p)} THEN off >= {int(o)}" for p, o in sorted(since.items()))
        return ["seq >= ?", f"(CASE part {cases} ELSE 1 END)"], [min(lows)]

    def page(self, filters: Filters, since: Mapping[int, int] | None, limit: int, upto_seq: int | None = None) -> Page:
        """Transitions at or after ``since`` (oldest first) matching ``filters``; ``next`` continues the scan."""
        since = dict(since or {})
        with self._snapshot() as db:
            clauses, params = self._where(filters)
            after, after_params = self._after(since)
            clauses += after
            params += after_params
            if upto_seq is not None:
                clauses.append("seq <= ?")
                params.append(upto_seq)
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            rows = [
                Row.of(r)
                for r in db.execute(f"SELECT {_COLS} FROM transitions {where} ORDER BY seq LIMIT ?", [*params, limit])  # noqa: S608 - columns and clauses are constants; values are bound
            ]
            if len(rows) < limit:
                # Everything up to the end (or upto_seq) was scanned: continue from there.
                end = self._cursor_at(upto_seq) if upto_seq is not None else self.head()
                return Page(rows, cursormod.merge(since, end), False)
            return Page(rows, cursormod.merge(since, self._cursor_at(rows[-1].seq)), True)

    def _cursor_at(self, seq: int) -> dict[int, int]:
        """The cursor just after local row ``seq``: per partition, the offset after its last row at or before it."""
        out: dict[int, int] = {}
        for (p,) in self._db.execute("SELECT DISTINCT part FROM transitions").fetchall():
            r = self._db.execute(
                "SELECT off FROM transitions WHERE part = ? AND seq <= ? ORDER BY seq DESC LIMIT 1", (p, seq)
            ).fetchone()
            if r is not None:
                out[int(p)] = int(r[0]) + 1
        return out

    def cursor_at(self, seq: int) -> dict[int, int]:
        """Public form of the cursor after row ``seq`` (the SSE stream starts "now" with it)."""
        with self._snapshot():
            return self._cursor_at(seq)

    def recent(self, filters: Filters, limit: int) -> list[Row]:
        """The newest transitions matching ``filters``, newest first (feeds and the HTML page)."""
        clauses, params = self._where(filters)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_COLS} FROM transitions {where} ORDER BY seq DESC LIMIT ?"  # noqa: S608 - columns and clauses are constants; values are bound
        return [Row.of(r) for r in self._db.execute(sql, [*params, limit])]

    def rows_after(self, seq: int, limit: int) -> list[Row]:
        """Rows newer than local row ``seq`` in local order: what the stream hub broadcasts."""
        sql = f"SELECT {_COLS} FROM transitions WHERE seq > ? ORDER BY seq LIMIT ?"  # noqa: S608 - columns and clauses are constants; values are bound
        return [Row.of(r) for r in self._db.execute(sql, (seq, limit))]

    def transition(self, event_id: str) -> Row | None:
        """One transition by its event id."""
        r = self._db.execute(f"SELECT {_COLS} FROM transitions WHERE event_id = ?", (event_id,)).fetchone()  # noqa: S608 - columns and clauses are constants; values are bound
        return Row.of(r) if r else None

    def revision(self, eco_key: str, package: str) -> int | None:
        """A number that changes whenever anything shown for the package changes (None: unknown package), so a
        rendered answer can be reused until then."""
        r = self._db.execute(
            "SELECT rev FROM packages WHERE eco_key = ? AND package = ?", (eco_key, package)
        ).fetchone()
        return None if r is None else int(r[0])

    def package(self, eco_key: str, package: str) -> PackageRecord | None:
        """Everything about one package, or None if the view never heard of it."""
        with self._snapshot() as db:
            r = db.execute(
                "SELECT ecosystem, first_seen, last_change, state, rev FROM packages WHERE eco_key = ? AND package = ?",
                (eco_key, package),
            ).fetchone()
            if r is None:
                return None
            history = [
                Row.of(x)
                for x in db.execute(
                    f"SELECT {_COLS} FROM transitions WHERE eco_key = ? AND package = ? ORDER BY seq LIMIT ?",  # noqa: S608 - columns and clauses are constants; values are bound
                    (eco_key, package, MAX_HISTORY),
                )
            ]
            inventories = (
                [
                    {"project": p, "lockfile": lf, "version": v, "path": path.split(" > ")}
                    for p, lf, v, path in db.execute(
                        "SELECT project, lockfile, version, path FROM inventory WHERE package = ? ORDER BY project",
                        (package,),
                    )
                ]
                if eco_key == "pypi"
                else []
            )
            state = json.loads(r[3]) if r[3] else None
            return PackageRecord(r[0], package, r[1], r[2], state, history, inventories, int(r[4]))

    def search(self, prefix: str, limit: int = 20) -> list[tuple[str, str]]:
        """(ecosystem, package) pairs whose name starts with ``prefix`` (already normalized)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [
            (e, p)
            for e, p in self._db.execute(
                "SELECT ecosystem, package FROM packages WHERE package LIKE ? ESCAPE '\\' ORDER BY package LIMIT ?",
                (escaped + "%", limit),
            )
        ]
