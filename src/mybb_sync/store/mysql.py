"""The store on MySQL/MariaDB through an aiomysql pool.

Every value is a query parameter; only the validated table prefix is
interpolated. MyBB's tables are MyISAM (no transactions), so each write is
followed by a read-back of what was stored.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiomysql
import pymysql

from .. import php
from ..config import Database, validate_prefix
from ..errors import DatabaseUnavailable, MybbSyncError
from ..layout import GLOBAL_SID, MASTER_SID
from ..stylesheets import Stylesheet, StylesheetUpdate, Theme, ThemeUpdate
from . import TableMarker, TemplateRow, TemplateSet

log = logging.getLogger(__name__)

# pymysql error codes meaning "the server is not there (any more)".
_GONE = {2002, 2003, 2005, 2006, 2013, 2014, 2045, 2055, 1040, 1053, 1077, 1927}
_TEMPLATE_COLS = "tid, sid, title, template, version, status, dateline"
_MAX_STATEMENT_BYTES = 4 * 1024 * 1024  # well under MariaDB's default max_allowed_packet (16 MiB)


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return code is None or code in _GONE
    return False


def _chunks(items: Sequence[Any], size_of: Any, limit: int = _MAX_STATEMENT_BYTES, most: int = 1000):
    """Split ``items`` so that one statement stays under ``limit`` bytes and ``most`` rows."""
    chunk: list[Any] = []
    total = 0
    for item in items:
        size = size_of(item)
        if chunk and (total + size > limit or len(chunk) >= most):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += size
    if chunk:
        yield chunk


class MySQLStore:
    """A forum database on MySQL or MariaDB."""

    def __init__(self, pool: aiomysql.Pool, prefix: str) -> None:
        self._pool = pool
        p = validate_prefix(prefix)
        self._t = {name: f"`{p}{name}`" for name in ("templates", "templatesets", "templategroups", "themes", "themestylesheets", "datacache")}
        self._version_code: str | None = None

    @classmethod
    async def connect(cls, db: Database, prefix: str, *, maxsize: int = 4) -> MySQLStore:
        validate_prefix(prefix)
        kwargs: dict[str, Any] = dict(
            user=db.user,
            password=db.password,
            db=db.name,
            charset=db.charset,
            autocommit=True,
            minsize=1,
            maxsize=maxsize,
            connect_timeout=5,
            pool_recycle=3600,
        )
        if db.unix_socket:
            kwargs["unix_socket"] = db.unix_socket
        else:
            kwargs.update(host=db.host, port=db.port)
        try:
            pool = await aiomysql.create_pool(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every driver failure becomes one clear line
            raise DatabaseUnavailable(f"cannot connect to {db.redacted()}: {_reason(exc)}") from None
        return cls(pool, prefix)

    async def close(self) -> None:
        self._pool.close()
        await self._pool.wait_closed()

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(sql, args)
                return list(await cur.fetchall())
        except Exception as exc:
            raise _translate(exc) from exc

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> tuple[int, int]:
        """Run one write; returns (rows affected, last insert id)."""
        try:
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                affected = await cur.execute(sql, args)
                return affected, cur.lastrowid
        except Exception as exc:
            raise _translate(exc) from exc

    # -- reads ---------------------------------------------------------------

    async def template_sets(self) -> list[TemplateSet]:
        rows = await self._fetch(f"SELECT sid, title FROM {self._t['templatesets']} ORDER BY sid")
        return [TemplateSet(int(sid), title) for sid, title in rows]

    async def template_group_prefixes(self) -> frozenset[str]:
        rows = await self._fetch(f"SELECT prefix FROM {self._t['templategroups']}")
        return frozenset(prefix for (prefix,) in rows if prefix)

    async def version_code(self) -> str:
        """The board's ``version_code`` (datacache ``version``), stamped on saved templates."""
        if self._version_code is None:
            rows = await self._fetch(f"SELECT cache FROM {self._t['datacache']} WHERE title = %s", ("version",))
            if not rows:
                raise MybbSyncError("the forum's datacache has no 'version' row: is this a MyBB database?")
            value = php.loads(rows[0][0])
            if not isinstance(value, dict) or "version_code" not in value:
                raise MybbSyncError("the forum's datacache 'version' row has no version_code")
            self._version_code = str(value["version_code"])
        return self._version_code

    async def set_templates(self, sid: int, batch: int = 500) -> AsyncIterator[list[TemplateRow]]:
        """Stream what set ``sid`` shows with a server-side cursor, unsorted, one pass.

        The set's own titles are read first (ids and titles only, small) so
        that a master row can be dropped when the set overrides it, comparing
        titles exactly as PHP's template cache does (not by the column's
        collation). The table has no unique key on (sid, title): of duplicate
        copies only the last one (highest tid) is shown, as in PHP's cache and
        :meth:`templates_by_title`, so each title is streamed once.
        """
        table = self._t["templates"]
        own: dict[str, int] = {}  # exact title -> tid of the copy that wins
        for tid, title in await self._fetch(f"SELECT tid, title FROM {table} WHERE sid = %s", (sid,)):
            own[title] = max(int(tid), own.get(title, -1))
        if sid == GLOBAL_SID:
            sql, args = f"SELECT {_TEMPLATE_COLS} FROM {table} WHERE sid = %s", (GLOBAL_SID,)
        else:
            sql, args = f"SELECT {_TEMPLATE_COLS} FROM {table} WHERE sid IN (%s, %s)", (MASTER_SID, sid)
        try:
            async with self._pool.acquire() as conn, conn.cursor(aiomysql.SSCursor) as cur:
                await cur.execute(sql, args)
                while rows := await cur.fetchmany(batch):
                    out = [
                        TemplateRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], int(r[6]))
                        for r in rows
                        if not (r[1] == MASTER_SID and r[2] in own)
                        and not (r[1] == sid and int(r[0]) < own.get(r[2], -1))
                    ]
                    if out:
                        yield out
        except MybbSyncError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    async def templates_by_title(self, sid: int, titles: Sequence[str]) -> dict[str, TemplateRow]:
        wanted = set(titles)
        found: dict[str, TemplateRow] = {}
        sids = (GLOBAL_SID,) if sid == GLOBAL_SID else (MASTER_SID, sid)
        for chunk in _chunks(sorted(wanted), lambda t: len(t) * 4 + 8):
            marks = ", ".join(["%s"] * len(chunk))
            rows = await self._fetch(
                f"SELECT {_TEMPLATE_COLS} FROM {self._t['templates']} "
                f"WHERE sid IN ({', '.join(['%s'] * len(sids))}) AND title IN ({marks}) ORDER BY sid, tid",
                (*sids, *chunk),
            )
            for r in rows:
                row = TemplateRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], int(r[6]))
                # Exact title (the collation is case-insensitive); set copy over master;
                # among duplicate copies the last one read wins, as in PHP's cache.
                if row.title in wanted:
                    found[row.title] = row
        return found

    async def themes(self) -> list[Theme]:
        rows = await self._fetch(
            f"SELECT tid, name, pid, def, properties, stylesheets, allowedgroups FROM {self._t['themes']} ORDER BY tid"
        )
        return [Theme(int(r[0]), r[1], int(r[2]), int(r[3]), r[4], r[5], r[6]) for r in rows]

    async def stylesheets(self) -> list[Stylesheet]:
        rows = await self._fetch(
            "SELECT sid, name, tid, attachedto, stylesheet, cachefile, lastmodified "
            f"FROM {self._t['themestylesheets']} ORDER BY tid, sid"
        )
        return [Stylesheet(int(r[0]), r[1], int(r[2]), r[3], r[4], r[5], int(r[6])) for r in rows]

    async def template_markers(self) -> dict[int, TableMarker]:
        rows = await self._fetch(
            "SELECT sid, COUNT(*), MAX(tid), MAX(dateline), BIT_XOR(tid) "
            f"FROM {self._t['templates']} GROUP BY sid"
        )
        return {int(r[0]): TableMarker(int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}

    async def stylesheet_markers(self) -> dict[int, TableMarker]:
        rows = await self._fetch(
            "SELECT tid, COUNT(*), MAX(sid), MAX(lastmodified), BIT_XOR(sid) "
            f"FROM {self._t['themestylesheets']} GROUP BY tid"
        )
        return {int(r[0]): TableMarker(int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}

    async def table_status(self) -> tuple[dict[str, tuple[int | None, int, int]], int]:
        """(per table: update time, row estimate, next id), and the server's clock: one cheap query.

        MyISAM keeps the update time (whole seconds) and row count in the table
        header, so this costs microseconds however large the table is.
        """
        names = [self._t[n].strip("`") for n in ("templates", "templatesets", "themes", "themestylesheets")]
        rows = await self._fetch(
            "SELECT TABLE_NAME, UNIX_TIMESTAMP(UPDATE_TIME), TABLE_ROWS, AUTO_INCREMENT, UNIX_TIMESTAMP(NOW()) "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s, %s, %s, %s)",
            names,
        )
        now = int(rows[0][4]) if rows else 0
        return {r[0]: (None if r[1] is None else int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows}, now

    async def templates_since(self, sid: int, dateline: int) -> list[str]:
        """Titles of set ``sid`` saved at or after ``dateline``."""
        rows = await self._fetch(
            f"SELECT title FROM {self._t['templates']} WHERE sid = %s AND dateline >= %s", (sid, dateline)
        )
        return [t for (t,) in rows]

    async def template_titles(self, sid: int) -> set[str]:
        rows = await self._fetch(f"SELECT title FROM {self._t['templates']} WHERE sid = %s", (sid,))
        return {t for (t,) in rows}

    async def outdated_templates(self) -> list[tuple[int, str, str, str]]:
        """Set copies older than their master (MyBB's "Find Updated Templates"): (sid, title, copy, master)."""
        t = self._t["templates"]
        rows = await self._fetch(
            f"SELECT s.sid, s.title, s.version, m.version FROM {t} s JOIN {t} m ON m.sid = %s AND m.title = s.title "
            "WHERE s.sid > 0 AND CAST(m.version AS UNSIGNED) > CAST(s.version AS UNSIGNED) ORDER BY s.sid, s.title",
            (MASTER_SID,),
        )
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]

    # -- writes --------------------------------------------------------------

    async def save_templates(self, sid: int, texts: Sequence[tuple[str, str]], now: int) -> dict[str, TemplateRow]:
        """The Admin CP's edit_template for many titles of one set, in few round trips.

        Titles the set already has a copy of are updated with one ``CASE``
        statement; the others get a new row in the set (never for sid -1,
        never touching a master row).
        """
        if sid == MASTER_SID:
            raise MybbSyncError("master templates (sid -2) are never written")
        version = await self.version_code()
        latest = {title: php.rtrim(text) for title, text in texts}
        existing = await self.templates_by_title(sid, list(latest))
        updates = [(existing[t].tid, text) for t, text in latest.items() if t in existing and existing[t].sid == sid]
        inserts = [(t, text) for t, text in latest.items() if t not in existing or existing[t].sid != sid]
        if sid == GLOBAL_SID and inserts:
            raise MybbSyncError(f"no global template named {inserts[0][0]!r} (global templates are only updated)")
        await self._update_templates(updates, version, now)
        await self._insert_templates(sid, inserts, version, now)
        return await self.templates_by_title(sid, list(latest))

    async def add_global_templates(self, texts: Sequence[tuple[str, str]], now: int) -> dict[str, TemplateRow]:
        """A new global template (the Admin CP's add_template with sid -1)."""
        version = await self.version_code()
        latest = {title: php.rtrim(text) for title, text in texts}
        existing = await self.templates_by_title(GLOBAL_SID, list(latest))
        await self._update_templates([(existing[t].tid, x) for t, x in latest.items() if t in existing], version, now)
        await self._insert_templates(GLOBAL_SID, [(t, x) for t, x in latest.items() if t not in existing], version, now)
        return await self.templates_by_title(GLOBAL_SID, list(latest))

    async def _update_templates(self, updates: Sequence[tuple[int, str]], version: str, now: int) -> None:
        table = self._t["templates"]
        for chunk in _chunks(updates, lambda u: len(u[1]) * 4 + 32):
            cases = " ".join(["WHEN %s THEN %s"] * len(chunk))
            marks = ", ".join(["%s"] * len(chunk))
            args: list[Any] = [v for tid, text in chunk for v in (tid, text)]
            args += [version, now, *(tid for tid, _ in chunk)]
            await self._execute(
                f"UPDATE {table} SET template = CASE tid {cases} END, version = %s, status = '', dateline = %s "
                f"WHERE tid IN ({marks})",
                args,
            )

    async def _insert_templates(self, sid: int, inserts: Sequence[tuple[str, str]], version: str, now: int) -> None:
        table = self._t["templates"]
        for chunk in _chunks(inserts, lambda i: len(i[1]) * 4 + len(i[0]) * 4 + 32):
            values = ", ".join(["(%s, %s, %s, %s, '', %s)"] * len(chunk))
            args = [v for title, text in chunk for v in (title, text, sid, version, now)]
            await self._execute(
                f"INSERT INTO {table} (title, template, sid, version, status, dateline) VALUES {values}", args
            )

    async def revert_templates(self, sid: int, titles: Sequence[str]) -> int:
        if sid <= 0:
            raise MybbSyncError("only a template set's own copies can be reverted")
        deleted = 0
        for chunk in _chunks(list(titles), lambda t: len(t) * 4 + 8):
            marks = ", ".join(["%s"] * len(chunk))
            affected, _ = await self._execute(
                f"DELETE FROM {self._t['templates']} WHERE sid = %s AND BINARY title IN ({marks})", (sid, *chunk)
            )
            deleted += affected
        return deleted


    # -- stylesheets (the Admin CP's save, applied from a SavePlan) -------------

    async def next_stylesheet_sid(self) -> int:
        """The table's AUTO_INCREMENT: the sid MyBB would give the next new row."""
        rows = await self._fetch(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (self._t["themestylesheets"].strip("`"),),
        )
        if not rows:
            raise MybbSyncError("cannot read the themestylesheets table status")
        return int(rows[0][0] or 1)

    async def save_stylesheet_rows(self, inserts: Sequence[Stylesheet], updates: Sequence[StylesheetUpdate]) -> None:
        table = self._t["themestylesheets"]
        for row in inserts:
            await self._execute(
                f"INSERT INTO {table} (sid, name, tid, attachedto, stylesheet, cachefile, lastmodified) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (row.sid, row.name, row.tid, row.attachedto, row.stylesheet, row.cachefile, row.lastmodified),
            )
        for update in updates:
            await self._execute(
                f"UPDATE {table} SET stylesheet = %s, cachefile = %s, lastmodified = %s WHERE sid = %s",
                (update.stylesheet, update.cachefile, update.lastmodified, update.sid),
            )

    async def set_stylesheet_cachefile(self, sid: int, cachefile: str) -> None:
        await self._execute(f"UPDATE {self._t['themestylesheets']} SET cachefile = %s WHERE sid = %s", (cachefile, sid))

    async def save_theme_lists(self, themes: Sequence[ThemeUpdate], default_theme: str | None) -> None:
        for theme in themes:
            await self._execute(
                f"UPDATE {self._t['themes']} SET properties = %s, stylesheets = %s WHERE tid = %s",
                (theme.properties, theme.stylesheets, theme.tid),
            )
        if default_theme is not None:
            await self._execute(
                f"UPDATE {self._t['datacache']} SET cache = %s WHERE title = %s", (default_theme, "default_theme")
            )

def _reason(exc: BaseException) -> str:
    """One line about a driver error, never carrying connection secrets."""
    if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) >= 2:
        return f"{exc.args[1]} (error {exc.args[0]})"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _translate(exc: BaseException) -> MybbSyncError:
    if isinstance(exc, MybbSyncError):
        return exc
    if _unavailable(exc):
        return DatabaseUnavailable(f"database unavailable: {_reason(exc)}")
    return MybbSyncError(f"database error: {_reason(exc)}")
