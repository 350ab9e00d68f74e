"""The store on SQLite (a MyBB board installed with its SQLite 3 engine), through aiosqlite.

SQLite has a single writer: the connection waits on a busy timeout rather
than failing, and every write is one short autocommitted statement, so the
forum itself is never locked out for long.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from ..errors import DatabaseUnavailable, MybbSyncError
from . import md5_hex, row_digest
from .sql import SQLStore

BUSY_TIMEOUT_MS = 5000


def _sql(sql: str) -> str:
    """Our statements are written with ``%s`` placeholders; sqlite3 takes ``?``."""
    return sql.replace("%s", "?")


class SQLiteStore(SQLStore):
    """A forum database in one SQLite file."""

    def __init__(self, conn: aiosqlite.Connection, prefix: str) -> None:
        super().__init__(prefix)
        self._conn = conn

    @classmethod
    async def connect(cls, path: Path, prefix: str) -> SQLiteStore:
        if not path.is_file():
            raise DatabaseUnavailable(f"no SQLite database at {path}")
        try:
            conn = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.create_function("mybb_sync_row_digest", 5, row_digest, deterministic=True)
            await conn.create_function("mybb_sync_md5", 1, md5_hex, deterministic=True)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"cannot open {path}: {exc}") from None
        return cls(conn, prefix)

    async def close(self) -> None:
        await self._conn.close()

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            async with self._conn.execute(_sql(sql), tuple(args)) as cur:
                return [tuple(r) for r in await cur.fetchall()]
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> tuple[int, int]:
        try:
            async with self._conn.execute(_sql(sql), tuple(args)) as cur:
                return cur.rowcount, cur.lastrowid or 0
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def next_stylesheet_sid(self) -> int:
        """``INTEGER PRIMARY KEY`` takes max + 1 (or the AUTOINCREMENT sequence, if the table has one)."""
        table = self._t["themestylesheets"].strip("`")
        try:
            seq = await self._fetch("SELECT seq FROM sqlite_sequence WHERE name = %s", (table,))
        except MybbSyncError:
            seq = []  # no AUTOINCREMENT table in this database
        top = await self._fetch(f"SELECT COALESCE(MAX(sid), 0) FROM {self._t['themestylesheets']}")
        return max(int(seq[0][0]) if seq else 0, int(top[0][0])) + 1

    async def change_token(self) -> tuple[object, bool]:
        """``PRAGMA data_version`` changes whenever another connection commits: exact, and cheap."""
        rows = await self._fetch("PRAGMA data_version")
        return int(rows[0][0]), True


def _translate(exc: sqlite3.Error) -> MybbSyncError:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and (
        "locked" in message or "busy" in message or "unable to open" in message
    ):
        return DatabaseUnavailable(f"database unavailable: {message}")
    return MybbSyncError(f"database error: {message}")
