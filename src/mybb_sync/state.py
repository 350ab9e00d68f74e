"""The state store: one SQLite row per synced file, under ``<root>/.mybb-sync/``.

Each row keeps the base (hash of the content disk and database last agreed
on), the database row it was agreed with, and the file's size, mtime and
inode then, so unchanged files are recognised by one ``lstat``. Problems
(conflicts, refused files) live in a second table so ``status`` works
offline. Methods are blocking and thread-safe: callers run them in worker
threads, a batch per transaction.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple, TypeVar

from .errors import DiskUnavailable, MybbSyncError
from .layout import Kind
from .statedir import state_dir, user_name, you
from .store import Digest

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: files.row_digest
# A file whose mtime is this close to the moment its stat was recorded may
# be rewritten within the same timestamp tick without its stat changing
# ("racy clean", as git calls it): such a stat is never trusted. Two seconds
# covers every filesystem (FAT ticks in 2 s); local ones with sub-second
# timestamps tick at the kernel's coarse clock, 10 ms at most (Root.racy_ns).
RACY_NS = 2_000_000_000
FINE_RACY_NS = 50_000_000
CHECKPOINT_PAGES = 10_000  # WAL pages (4 KiB) written before SQLite copies them into the database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    owner INTEGER NOT NULL,
    name TEXT NOT NULL,
    base TEXT NOT NULL,
    row_id INTEGER,
    row_owner INTEGER,
    marker INTEGER,
    row_digest INTEGER,
    size INTEGER,
    mtime_ns INTEGER,
    ino INTEGER,
    checked_ns INTEGER
);
CREATE INDEX IF NOT EXISTS files_entity ON files (kind, owner, name);
CREATE INDEX IF NOT EXISTS files_row ON files (kind, row_id);
CREATE TABLE IF NOT EXISTS problems (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS intents (path TEXT PRIMARY KEY, hash TEXT NOT NULL);
"""

T = TypeVar("T")


def _in_lists(values: Sequence[T]) -> Iterator[tuple[list[T], str]]:
    """``values`` in chunks that fit one ``IN (...)`` list (SQLite caps the parameters of a
    statement), each with its placeholders."""
    for start in range(0, len(values), 900):
        chunk = list(values[start : start + 900])
        yield chunk, ",".join("?" * len(chunk))


@dataclass(frozen=True, slots=True)
class FileStat:
    size: int
    mtime_ns: int
    ino: int


@dataclass(frozen=True, slots=True)
class FileState:
    path: str
    kind: Kind
    owner: int
    name: str
    base: str
    row_id: int | None
    row_owner: int | None
    marker: int | None
    stat: FileStat | None
    checked_ns: int | None = None
    row_digest: int | None = None  # store.row_digest() of the row agreed with (templates)

    @property
    def agreed_row(self) -> tuple[int | None, int | None, int | None, int | None]:
        """(row id, owning sid/tid, change marker, row digest) of the row agreed with."""
        return self.row_id, self.row_owner, self.marker, self.row_digest

    def unchanged(self, current: FileStat | None, racy_ns: int = RACY_NS) -> bool:
        """True if ``current`` proves the file still holds the base content."""
        return proves_unchanged(self.stat, self.checked_ns, current, racy_ns)


class Tracked(NamedTuple):
    """What a scan needs of a file's state: a quarter of the cost of a :class:`FileState`."""

    path: str
    name: str
    stat: FileStat | None
    checked_ns: int | None

    def unchanged(self, current: FileStat | None, racy_ns: int = RACY_NS) -> bool:
        return proves_unchanged(self.stat, self.checked_ns, current, racy_ns)


def proves_unchanged(stat: FileStat | None, checked_ns: int | None, current: FileStat | None, racy_ns: int) -> bool:
    """Whether a file's stat now is the one recorded at ``checked_ns``, with an mtime well
    before that moment: then it still holds what it held then (see ``RACY_NS``)."""
    if stat is None or current is None or checked_ns is None:
        return False
    return current == stat and current.mtime_ns + racy_ns < checked_ns


class ProblemKind(StrEnum):
    CONFLICT = "conflict"
    INVALID = "invalid"
    MISSING = "missing"
    ERROR = "error"
    IGNORED = "ignored"  # not synced: a symlink, a FIFO, a folder or a name mybb-sync never writes


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    kind: ProblemKind
    detail: str
    since: float


_COLUMNS = "path, kind, owner, name, base, row_id, row_owner, marker, size, mtime_ns, ino, checked_ns, row_digest"


def _row(r: tuple) -> FileState:
    stat = FileStat(r[8], r[9], r[10]) if r[8] is not None else None
    return FileState(r[0], Kind(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], stat, r[11], r[12])


_DISK_ERRORS = {3, 8, 10, 13, 14}  # SQLITE_PERM, _READONLY, _IOERR, _FULL, _CANTOPEN


class _Guarded:
    """The state store's lock, which also turns SQLite's disk errors into :class:`DiskUnavailable`:
    a full or read-only disk is an outage the service waits out, not a crash."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._path = path

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._lock.release()
        if isinstance(exc, sqlite3.DatabaseError) and getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DISK_ERRORS:
            raise DiskUnavailable(f"cannot write the state store {self._path}: {exc}") from exc


class State:
    """The per-root state database (SQLite, WAL)."""

    def __init__(self, root: Path) -> None:
        directory = state_dir(root, create=True)  # ours, a real folder, closed to others' writes
        assert directory is not None
        self.path = directory / "state.sqlite"
        self._lock = _Guarded(self.path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        except sqlite3.OperationalError as exc:
            raise MybbSyncError(f"cannot open {self.path}: {exc}{_whose(self.path)}") from None
        try:
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                # A checkpoint fsyncs the database: every 40 MB of changes, not every 4 MB (the
                # default), or a full export of 100,000 files stalls its own writes on a dozen of them.
                self._db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
                self._db.executescript(_SCHEMA)
                self._upgrade()
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.OperationalError):  # not ours to write, a read-only filesystem, ...
                raise MybbSyncError(f"cannot open {self.path}: {exc}{_whose(self.path)}") from None
            raise

    def _up_to_date(self) -> bool:
        recorded = self._db.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema'").fetchone()
        return recorded is not None and recorded[0] >= SCHEMA_VERSION and self._has_row_digest()

    def _has_row_digest(self) -> bool:
        return "row_digest" in {r[1] for r in self._db.execute("PRAGMA table_info(files)")}

    def _upgrade(self) -> None:
        """Bring a state written by an older version up to date (in one transaction, so two
        first opens cannot both alter it): its rows lack a row digest, so their sets are read
        in full once, which fills it in. The recorded version only ever goes up. An open of
        an up-to-date state (every command's) writes nothing and takes no write lock."""
        if self._up_to_date():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if not self._has_row_digest():
                self._db.execute("ALTER TABLE files ADD COLUMN row_digest INTEGER")
                self._db.execute("DELETE FROM meta WHERE key LIKE 'agreed:set:%'")  # version 1's per-set records
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema' AND CAST(value AS INTEGER) < ?",
                (str(SCHEMA_VERSION), SCHEMA_VERSION),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, paths: Sequence[str]) -> dict[str, FileState]:
        found: dict[str, FileState] = {}
        with self._lock:
            for chunk, marks in _in_lists(paths):
                for r in self._db.execute(f"SELECT {_COLUMNS} FROM files WHERE path IN ({marks})", chunk):
                    found[r[0]] = _row(r)
        return found

    def files_of_rows(self, kind: Kind, row_ids: Sequence[int]) -> dict[int, list[tuple[str, tuple[int, str]]]]:
        """Per row id, the files last agreed with that row: (path, (row owner, name) back then)."""
        found: dict[int, list[tuple[str, tuple[int, str]]]] = {}
        with self._lock:
            for chunk, marks in _in_lists(row_ids):
                sql = f"SELECT row_id, path, row_owner, name FROM files WHERE kind = ? AND row_id IN ({marks})"
                for row_id, path, owner, name in self._db.execute(sql, (kind.value, *chunk)):
                    found.setdefault(row_id, []).append((path, (owner, name)))
        return found

    def of_names(self, kind: Kind, owner: int, names: Sequence[str]) -> list[FileState]:
        """The states of these templates or stylesheets of one set or theme, wherever their files are."""
        found: list[FileState] = []
        with self._lock:
            for chunk, marks in _in_lists(names):
                sql = f"SELECT {_COLUMNS} FROM files WHERE kind = ? AND owner = ? AND name IN ({marks})"
                found += map(_row, self._db.execute(sql, (kind.value, owner, *chunk)))
        return found

    def paths_of(self, kind: Kind, owner: int, name: str) -> list[str]:
        """The files tracked for one template or stylesheet (more than one only while a file moves)."""
        with self._lock:
            sql = "SELECT path FROM files WHERE kind = ? AND owner = ? AND name = ? ORDER BY path"
            return [row[0] for row in self._db.execute(sql, (kind.value, owner, name))]

    def all(self) -> Iterator[FileState]:
        """Every row (a snapshot read, streamed)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM files ORDER BY path").fetchall()
        return map(_row, rows)

    def paths(self) -> list[str]:
        """Every tracked path, sorted (far cheaper than :meth:`all` when paths are all that is needed)."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT path FROM files ORDER BY path")]

    def tracks_under(self, folder: str) -> bool:
        """Whether a tracked file lies below ``folder`` (one look in the path index)."""
        with self._lock:
            sql = "SELECT 1 FROM files WHERE path > ? AND path < ? LIMIT 1"
            return self._db.execute(sql, (folder + "/", folder + "0")).fetchone() is not None

    def put(self, states: Iterable[FileState]) -> None:
        rows = [
            (
                s.path, s.kind.value, s.owner, s.name, s.base, s.row_id, s.row_owner, s.marker,
                *((s.stat.size, s.stat.mtime_ns, s.stat.ino) if s.stat else (None, None, None)),
                s.checked_ns if s.checked_ns is not None else time.time_ns(), s.row_digest,
            )
            for s in states
        ]  # fmt: skip
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(f"INSERT OR REPLACE INTO files ({_COLUMNS}) VALUES ({','.join('?' * 13)})", rows)
            # Disk and database agree again: no write of ours is in doubt, nothing is wrong with the file.
            self._forget([r[0] for r in rows], ("intents", "problems"))
            self._db.execute("COMMIT")

    def _forget(self, paths: Sequence[str], tables: Sequence[str]) -> None:
        """Delete the paths' rows from ``tables`` (with the lock held, in a transaction). An empty
        table is not searched path by path: a first export records 10,000 states, and two empty
        lookups per state were a quarter of its cost."""
        keys = [(p,) for p in paths]
        for table in tables:
            if not self._empty(table):
                self._db.executemany(f"DELETE FROM {table} WHERE path = ?", keys)

    def _empty(self, table: str) -> bool:
        """Whether ``table`` has no row at all (one look, with the lock held): intents and
        problems mostly are, and a first export asks after each of its 10,000 paths."""
        return not self._db.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]

    # -- intents: a database write that may have landed ------------------------

    def record_intents(self, intents: dict[str, str]) -> None:
        """Before writing content to the database, note its hash per path.

        MyISAM has no transactions: if the connection dies after the write but
        before the read-back, the next look finds the database equal to the
        intent and knows the row holds our own write, not someone else's.
        """
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO intents (path, hash) VALUES (?, ?)", intents.items())
            self._db.execute("COMMIT")

    def intents(self, paths: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._lock:
            if self._empty("intents"):
                return found
            for chunk, marks in _in_lists(paths):
                found.update(self._db.execute(f"SELECT path, hash FROM intents WHERE path IN ({marks})", chunk))
        return found

    def delete(self, paths: Iterable[str]) -> None:
        gone = list(paths)
        if not gone:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._forget(gone, ("files", "intents", "problems"))
            self._db.execute("COMMIT")

    def move(self, moves: Mapping[str, str]) -> None:
        """Files moved ({old path: new path}): each state goes to the new path, base and all but
        its stat (the file there is read), unless a state is there already; so does a write of
        ours still in doubt (its intent). The old path is forgotten."""
        if not moves:
            return
        with self._lock:
            self._db.execute("BEGIN")
            for old, new in moves.items():
                if self._db.execute("SELECT 1 FROM files WHERE path = ?", (new,)).fetchone():
                    continue  # the new place has a state of its own: it stays, with its own intent
                self._db.execute(
                    f"INSERT INTO files ({_COLUMNS}) SELECT ?, kind, owner, name, base, row_id, row_owner,"
                    " marker, NULL, NULL, NULL, NULL, row_digest FROM files WHERE path = ?",
                    (new, old),
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO intents (path, hash) SELECT ?, hash FROM intents WHERE path = ?", (new, old)
                )
            self._forget(list(moves), ("files", "intents", "problems"))
            self._db.execute("COMMIT")
        for old, new in moves.items():
            log.info("moved: %s -> %s (its state goes with it)", old, new, extra={"event": "moved", "path": new})

    def page_of(self, kind: Kind, owner: int, after: str, limit: int) -> list[Tracked]:
        """The files of one set or theme, by name, the first ``limit`` after ``after``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT path, name, size, mtime_ns, ino, checked_ns FROM files "
                "WHERE kind = ? AND owner = ? AND name > ? ORDER BY name LIMIT ?",
                (kind.value, owner, after, limit),
            ).fetchall()
        return [Tracked(r[0], r[1], None if r[2] is None else FileStat(r[2], r[3], r[4]), r[5]) for r in rows]

    def digest_of(self, kind: Kind, owner: int) -> Digest | None:
        """(files, sum of row ids, sum of row digests) of one set's files: equal to the
        database's ``shown_digest`` when the set still shows every row its files were last
        agreed with and no other (barring a hash collision; None: a file has no row digest)."""
        with self._lock:
            count, digests, ids, total = self._db.execute(
                "SELECT COUNT(*), COUNT(row_digest), COALESCE(SUM(row_id), 0), COALESCE(SUM(row_digest), 0) "
                "FROM files NOT INDEXED WHERE kind = ? AND owner = ?",  # a scan beats the index here (measured)
                (kind.value, owner),
            ).fetchone()
        return (count, ids, total) if digests == count else None

    def names_agreed_with(self, kind: Kind, row_owner: int) -> set[str]:
        """Names of the files last agreed with a row owned by ``row_owner`` (a sid or tid)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name FROM files WHERE kind = ? AND row_owner = ?", (kind.value, row_owner)
            ).fetchall()
        return {r[0] for r in rows}

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM files").fetchone()[0]

    # -- problems ------------------------------------------------------------

    def report(self, problems: Iterable[Problem]) -> None:
        rows = [(p.path, p.kind.value, p.detail, p.since) for p in problems]
        if rows:
            with self._lock:
                self._db.executemany(
                    "INSERT INTO problems (path, kind, detail, since) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET kind = excluded.kind, detail = excluded.detail",
                    rows,
                )

    def clear_problems(self, paths: Iterable[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._forget(list(paths), ("problems",))
            self._db.execute("COMMIT")

    def problems(self, kind: ProblemKind | None = None) -> list[Problem]:
        args: tuple[str, ...]
        sql, args = "SELECT path, kind, detail, since FROM problems", ()
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", (kind.value,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY path", args).fetchall()
        return [Problem(r[0], ProblemKind(r[1]), r[2], r[3]) for r in rows]

    def counts(self) -> tuple[int, dict[ProblemKind, int]]:
        """(files tracked, problems by kind), counted by SQLite rather than read out."""
        with self._lock:
            (tracked,) = self._db.execute("SELECT COUNT(*) FROM files").fetchone()
            rows = self._db.execute("SELECT kind, COUNT(*) FROM problems GROUP BY kind").fetchall()
        return tracked, {ProblemKind(kind): n for kind, n in rows}

    # -- meta ----------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Set ``key`` (None: remove it)."""
        with self._lock:
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _whose(path: Path) -> str:
    """`` (it belongs to user X; you are Y)`` when ``path`` is not ours."""
    try:
        owner = os.stat(path).st_uid
    except OSError:
        return ""
    return "" if owner == os.geteuid() else f" (it belongs to user {user_name(owner)}; you are {you()})"
