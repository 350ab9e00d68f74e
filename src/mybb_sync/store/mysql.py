"""The store on MySQL/MariaDB through an aiomysql pool."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiomysql
import pymysql
from pymysql.constants import SERVER_STATUS

from .._compat import cursor_with_escaping
from ..config import Database, validate_prefix
from ..errors import DatabaseUnavailable, MybbSyncError
from . import Column, Seen, md5_hex
from .sql import SQLStore

log = logging.getLogger(__name__)

# pymysql error codes meaning "the server is not there (any more)".
_GONE = {2002, 2003, 2005, 2006, 2013, 2014, 2045, 2055, 1040, 1053, 1077, 1927}
# A statement KILLed (by our stop, or by an administrator): not the file's fault, so it is
# retried like an outage instead of being reported as refused.
_INTERRUPTED = 1317


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return code is None or code in _GONE or code == _INTERRUPTED
    return False


def escape_string(value: str) -> str:
    """pymysql's ``escape_string`` (backslash-escape NUL, \\, \\n, \\r, ^Z and both quotes), as a few
    ``str.replace`` calls, which beat its ``str.translate`` on template-sized text."""
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    return (
        value.replace("\0", "\\0").replace("\n", "\\n").replace("\r", "\\r").replace("\032", "\\Z")
        .replace("'", "\\'").replace('"', '\\"')
    )  # fmt: skip


def _escape_fast(cursor: aiomysql.Cursor, args: Any, conn: Any) -> Any | None:
    """Faster escaping of text and integer parameters (a bulk import sends megabytes of text and
    thousands of ids); None leaves other shapes, and NO_BACKSLASH_ESCAPES servers, to aiomysql."""
    if isinstance(args, (tuple, list)) and not conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        return tuple(
            "'" + escape_string(a) + "'" if type(a) is str else str(a) if type(a) is int else conn.escape(a)
            for a in args
        )
    return None


Cursor = cursor_with_escaping(_escape_fast)


_FOUR_BYTE = re.compile("[\U00010000-\U0010ffff]")  # what UTF-8 needs 4 bytes for: beyond utf8mb3
_ALL_OF_UNICODE = frozenset({"utf8mb4", "utf16", "utf16le", "utf32", "gb18030", "binary"})
_NO_FOUR_BYTE = frozenset({"utf8", "utf8mb3", "ucs2"})
# A MySQL charset narrower than Unicode: Python's codec for it (MySQL's latin1 is Windows-1252),
# and what that codec takes but MariaDB 10.11 cannot store (tests/test_store.py round-trips each
# on the server). A charset in none of these is taken as ASCII: refusing is safe, a '?' is not.
_CODECS: dict[str, tuple[str, str]] = {
    "ascii": ("ascii", ""), "latin1": ("cp1252", ""), "latin2": ("iso8859_2", ""),
    "latin5": ("iso8859_9", ""), "latin7": ("iso8859_13", ""), "greek": ("iso8859_7", "ͺ‘’€₯"),
    "hebrew": ("iso8859_8", "¯"), "cp1250": ("cp1250", ""), "cp1251": ("cp1251", ""),
    "cp1256": ("cp1256", "ٹڈڑکںھہے"), "cp1257": ("cp1257", ""), "cp850": ("cp850", ""),
    "cp852": ("cp852", ""), "cp866": ("cp866", "¤№"), "koi8r": ("koi8_r", ""), "koi8u": ("koi8_u", "∙"),
    "macroman": ("mac_roman", ""), "tis620": ("tis_620", ""), "sjis": ("shift_jis", "¥‾＼"),
    "cp932": ("cp932", "\x80¢£¬‖−〜\uf8f0\uf8f1\uf8f2\uf8f3"), "ujis": ("euc_jp", "¥‾＼"),
    "eucjpms": ("euc_jp", "¢£¥¦¬‖‾−〜"), "euckr": ("euc_kr", ""), "gb2312": ("gb2312", ""),
    "gbk": ("gbk", ""), "big5": ("big5", "ˍ╴￣"),
}  # fmt: skip


def charset_refusal(charset: str, text: str) -> str | None:
    """Why MySQL's ``charset`` (a connection's or a column's) cannot carry ``text`` intact, or None.

    MySQL's ``utf8`` (utf8mb3) has no 4-byte characters (emoji) and ``latin1``
    is Windows-1252: what a charset cannot hold is cut off or turned into ``?``
    by a non-strict server, so such text must never be sent.
    """
    if charset in _ALL_OF_UNICODE:
        return None
    if charset in _NO_FOUR_BYTE:
        found = _FOUR_BYTE.search(text)  # in C: a Python loop over the characters is paid per file of a backlog
        bad = found.group() if found is not None else None
    else:
        codec, lacking = _CODECS.get(charset, ("ascii", ""))
        try:
            text.encode(codec)
            bad = next((c for c in lacking if c in text), None)
        except UnicodeEncodeError as exc:
            bad = text[exc.start]
    if bad is None:
        return None
    return f"holds {bad!r} (U+{ord(bad):04X}), which the database's charset {charset} cannot store"


class MySQLStore(SQLStore):
    """A forum database on MySQL or MariaDB."""

    _exact = "BINARY {}"
    _int = "UNSIGNED"
    # Hashed as UTF-8 whatever the columns' charset (old boards: utf8, latin1), as Python hashes it.
    _md5 = "MD5(CONVERT(template USING utf8mb4))"
    _row_digest = (
        "CAST(CONV(SUBSTRING(MD5(CONCAT(tid, ':', sid, ':', dateline, ':', CONVERT(title USING utf8mb4), ':', "
        "CRC32(CONVERT(template USING utf8mb4)), ':', LENGTH(CONVERT(template USING utf8mb4)))), 1, 10), 16, 10) AS UNSIGNED)"
    )

    _index_exists = (
        "SELECT COUNT(*) FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND INDEX_NAME = %s"
    )
    _drop_index = "DROP INDEX {index} ON {table}"

    def __init__(self, pool: aiomysql.Pool, prefix: str, connect_args: dict[str, Any]) -> None:
        super().__init__(prefix)
        self._pool = pool
        self._connect_args = connect_args  # the pool's, for a connection of its own (interrupt)
        self._busy: set[aiomysql.Connection] = set()  # connections with a statement in flight
        self._charsets: dict[Column, tuple[str, ...]] = {}  # the connection's, then the column's (connect)

    def refusal(self, text: str, column: Column) -> str | None:
        charsets = self._charsets.get(column, (self._connect_args["charset"],))
        return next((why for charset in charsets if (why := charset_refusal(charset, text))), None)

    async def _learn_column_charsets(self) -> None:
        """Each text column's charset, checked besides the connection's: an old board's tables
        may be narrower than its connection (made latin1, config.php later set to utf8), and
        not all alike (the Admin CP converts them one at a time)."""
        by_name = {(self._t[c.value[0]].strip("`"), c.value[1]): c for c in Column}
        rows = await self._fetch(
            "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s, %s) AND CHARACTER_SET_NAME IS NOT NULL",
            sorted({table for table, _ in by_name}),
        )
        connection = self._connect_args["charset"]
        for table, name, charset in rows:
            if (column := by_name.get((table, name))) is not None:
                self._charsets[column] = tuple(dict.fromkeys([connection, charset]))
        if len(self._charsets) < len(Column):
            log.warning(
                "cannot read the charsets of the forum's text columns; checking text against the connection's only"
            )

    def _still_seen(self, copies: Sequence[tuple[str, Seen]]) -> tuple[str, list[Any]]:
        """As one ASCII string per copy, ``tid:dateline:MD5 of text:MD5 of title``: MariaDB
        binary-searches a list of constant strings, but compares a list of row values one by one
        (about half the query's time for 500 copies). The title goes in as its MD5 of UTF-8,
        like the text: its own bytes would be the connection's charset (latin1 on old boards)."""
        marks = ", ".join(["%s"] * len(copies))
        # CONCAT, not CONCAT_WS: a NULL part makes the key NULL, which matches nothing.
        key = f"BINARY CONCAT(tid, ':', dateline, ':', {self._md5}, ':', MD5(CONVERT(title USING utf8mb4)))"
        return f"{key} IN ({marks})", [
            f"{tid}:{dateline}:{digest}:{md5_hex(title)}" for title, (tid, dateline, digest) in copies
        ]

    @classmethod
    async def connect(cls, db: Database, prefix: str, *, maxsize: int = 4) -> MySQLStore:
        validate_prefix(prefix)
        kwargs: dict[str, Any] = dict(
            user=db.user,
            password=db.password,
            db=db.name,
            charset=db.charset,
            autocommit=True,
            connect_timeout=5,
            cursorclass=Cursor,
        )
        if db.unix_socket:
            kwargs["unix_socket"] = db.unix_socket
        else:
            kwargs.update(host=db.host, port=db.port)
        try:
            pool = await aiomysql.create_pool(minsize=1, maxsize=maxsize, pool_recycle=3600, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every driver failure becomes one clear line
            raise DatabaseUnavailable(f"cannot connect to {db.redacted()}: {_reason(exc)}") from None
        store = cls(pool, prefix, kwargs)
        try:
            await store._learn_column_charsets()
        except Exception:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        self._pool.close()
        await self._pool.wait_closed()

    async def interrupt(self) -> None:
        """End each statement in flight, from a connection of its own (the pool's may all be
        busy). A write waiting for a table lock (MyISAM's wait is a day by default) ends at
        once, and is retried like an outage (one ended while running may have written some
        rows, MyISAM has no rollback: the retry finds those equal)."""
        try:
            conn = await aiomysql.connect(**self._connect_args)
        except Exception as exc:
            raise _translate(exc) from exc
        try:
            ids = sorted(c.thread_id() for c in self._busy)  # once connected: what runs now
            async with conn.cursor() as cur:
                if ids and "MariaDB" in conn.get_server_info():
                    # KILL QUERY ID ends that statement only, never one its connection began since.
                    marks = ", ".join(["%s"] * len(ids))
                    await cur.execute(
                        f"SELECT QUERY_ID FROM information_schema.PROCESSLIST WHERE ID IN ({marks}) AND COMMAND = 'Query'",
                        ids,
                    )
                    kills = [("KILL QUERY ID %s", query_id) for (query_id,) in await cur.fetchall()]
                else:
                    kills = [("KILL QUERY %s", thread_id) for thread_id in ids]
                for statement, ident in kills:
                    try:
                        await cur.execute(statement, (ident,))
                    except pymysql.err.MySQLError as exc:  # it ended meanwhile
                        log.debug("%s: %s", statement % ident, _reason(exc))
        except Exception as exc:
            raise _translate(exc) from exc
        finally:
            await conn.ensure_closed()

    @asynccontextmanager
    async def _cursor(self) -> AsyncIterator[aiomysql.Cursor]:
        """A cursor on a pooled connection, known as busy while in use (see :meth:`interrupt`);
        every driver failure leaves it as one of ours."""
        try:
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                self._busy.add(conn)
                try:
                    yield cur
                finally:
                    self._busy.discard(conn)
        except Exception as exc:
            raise _translate(exc) from exc

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._cursor() as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> tuple[int, int]:
        async with self._cursor() as cur:
            affected = await cur.execute(sql, args)
            return affected, cur.lastrowid

    def _first_insert_id(self, last_id: int, rows: int) -> int:
        """MySQL's LAST_INSERT_ID() is the id of a multi-row INSERT's first row."""
        return last_id

    async def next_stylesheet_sid(self) -> int:
        """The table's AUTO_INCREMENT."""
        rows = await self._fetch(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (self._t["themestylesheets"].strip("`"),),
        )
        if not rows:
            raise MybbSyncError("cannot read the themestylesheets table status")
        return int(rows[0][0] or 1)

    async def change_token(self) -> tuple[object, bool]:
        """The tables' headers (update time, rows, next id): microseconds however large they are.

        MyISAM's update time has whole seconds, so a token read within a
        second of the last update is not settled.
        """
        names = [self._t[n].strip("`") for n in ("templates", "templatesets", "themes", "themestylesheets")]
        rows = await self._fetch(
            "SELECT TABLE_NAME, UNIX_TIMESTAMP(UPDATE_TIME), TABLE_ROWS, AUTO_INCREMENT, UNIX_TIMESTAMP(NOW()) "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s, %s, %s, %s)",
            names,
        )
        now = int(rows[0][4]) if rows else 0
        settled = all(r[1] is not None and int(r[1]) < now - 1 for r in rows)
        return tuple(sorted((r[0], r[1], r[2], r[3]) for r in rows)), settled


def _reason(exc: BaseException) -> str:
    """One line about a driver error, never carrying connection secrets."""
    if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) >= 2:
        return f"{exc.args[1]} (error {exc.args[0]})"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _translate(exc: BaseException) -> MybbSyncError:
    if isinstance(exc, MybbSyncError):
        return exc
    if _unavailable(exc):
        what = "database statement interrupted" if exc.args and exc.args[0] == _INTERRUPTED else "database unavailable"
        return DatabaseUnavailable(f"{what}: {_reason(exc)}")
    return MybbSyncError(f"database error: {_reason(exc)}")
