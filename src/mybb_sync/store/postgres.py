"""The store on PostgreSQL (a MyBB board installed with its pgsql engine), through an asyncpg pool.

The query modules are written once, with ``%s`` placeholders and backtick-quoted
table names; each statement text is translated to PostgreSQL's ``$n`` and
double quotes once (:func:`pg_sql`). Every statement autocommits, as MyBB's
pgsql driver runs them, so a write holds its row locks only while it runs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from ..config import Database, validate_prefix
from ..errors import DatabaseUnavailable, MybbSyncError
from ..layout import GLOBAL_SID, MASTER_SID
from . import Column, Digest, Seen, md5_hex, row_digest
from .sql import SQLStore

_PLACEHOLDER = re.compile("%s")
# What a server encoding can hold, as a Python codec (None: all of Unicode). asyncpg always
# talks UTF-8; the server converts, and refuses what its encoding lacks.
_ENCODINGS = {"UTF8": None, "SQL_ASCII": None, "LATIN1": "latin-1", "LATIN9": "iso8859_15", "WIN1252": "cp1252"}


@lru_cache(maxsize=4096)
def pg_sql(sql: str) -> str:
    """A statement written for MySQL (``%s``, backticks) as PostgreSQL takes it (``$1``, double quotes)."""
    numbers = iter(range(1, sql.count("%s") + 1))
    return _PLACEHOLDER.sub(lambda _: f"${next(numbers)}", sql).replace("`", '"')


def encoding_refusal(encoding: str, text: str) -> str | None:
    """Why a database in server ``encoding`` cannot store ``text``, or None: PostgreSQL's text
    holds no NUL character, and a narrow encoding (LATIN1 on an old board) lacks the rest; an
    encoding not known here is taken as ASCII (refusing is safe, an error mid-batch is not)."""
    if "\0" in text:
        return "holds a NUL character (U+0000), which PostgreSQL cannot store in text"
    codec = _ENCODINGS.get(encoding, "ascii")
    if codec is None:
        return None
    try:
        text.encode(codec)
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        return f"holds {bad!r} (U+{ord(bad):04X}), which the database's encoding {encoding} cannot store"
    return None


def _unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the server is not there (any more), or ended our statement: an outage
    to wait out, not the file's fault. 08: connection; 57: operator intervention (a cancel by
    our stop or an administrator, a shutdown, a start-up); 53300: too many connections."""
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    if isinstance(exc, asyncpg.InterfaceError):  # also a call the driver refuses: that is no outage
        return "closed" in str(exc)
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # The driver lost track of a connection: a pooled one whose server ended it (a
        # shutdown's FATAL, still being consumed) says "cannot switch to state 11; another
        # operation (2) is in progress" to its next statement. A new connection is the cure.
        return True
    return isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.TooManyConnectionsError,
    )


class PostgresStore(SQLStore):
    """A forum database on PostgreSQL."""

    _exact = "{}"  # text equality is byte for byte under PostgreSQL's deterministic collations
    _md5 = "md5(convert_to(template, 'UTF8'))"  # as Python hashes it, whatever the server encoding
    _index_exists = (
        "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s AND indexname = %s"
    )

    def __init__(self, pool: asyncpg.Pool, prefix: str, connect_args: dict[str, Any], encoding: str) -> None:
        super().__init__(prefix)
        self._pool = pool
        self._connect_args = connect_args  # the pool's, for a connection of its own (interrupt)
        self._busy: set[asyncpg.Connection] = set()  # connections with a statement in flight
        self._encoding = encoding
        self._seen_snapshot: str | None = None  # of the last change_token, and the token then
        self._seen_token: object = None

    @classmethod
    async def connect(cls, db: Database, prefix: str, *, maxsize: int = 4) -> PostgresStore:
        validate_prefix(prefix)
        kwargs: dict[str, Any] = dict(
            user=db.user, password=db.password, database=db.name, port=db.port, timeout=5,
            host=db.unix_socket or db.host, server_settings={"application_name": "mybb-sync"},
        )  # fmt: skip
        try:
            # No floor of open connections: asyncpg (0.31 and later) keeps one with a task of its
            # own, which logged a warning and a traceback every few seconds of an outage that
            # the service already says once; connections are made when a statement needs one.
            pool = await asyncpg.create_pool(min_size=0, max_size=maxsize, reset=_keep_session, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every driver failure becomes one clear line
            raise DatabaseUnavailable(f"cannot connect to {db.redacted()}: {_reason(exc)}") from None
        try:
            (encoding,) = await pool.fetchrow("SHOW server_encoding")
        except Exception as exc:  # noqa: BLE001
            pool.terminate()
            raise DatabaseUnavailable(f"cannot connect to {db.redacted()}: {_reason(exc)}") from None
        return cls(pool, prefix, kwargs, str(encoding).upper())

    async def close(self) -> None:
        await self._pool.close()

    def refusal(self, text: str, column: Column) -> str | None:
        return encoding_refusal(self._encoding, text)

    def _still_seen(self, copies: Sequence[tuple[str, Seen]]) -> tuple[str, list[Any]]:
        """As one text key per copy, ``tid:dateline:MD5 of text:MD5 of title``: a list of text
        constants, which PostgreSQL hashes, where a row list would need each value's type."""
        marks = ", ".join(["%s"] * len(copies))
        key = f"(tid || ':' || dateline || ':' || {self._md5} || ':' || md5(convert_to(title, 'UTF8')))"
        return f"{key} IN ({marks})", [
            f"{tid}:{dateline}:{digest}:{md5_hex(title)}" for title, (tid, dateline, digest) in copies
        ]

    async def interrupt(self) -> None:
        """End each statement in flight with ``pg_cancel_backend``, from a connection of its own
        (the pool's may all be busy): a write waiting for a row lock held by another
        transaction ends at once and is retried like an outage (it rolled back: nothing of
        it was written). A cancel that arrives after the statement ended may end the
        connection's next one, which is retried the same way."""
        try:
            conn = await asyncpg.connect(**self._connect_args)
        except Exception as exc:
            raise _translate(exc) from exc
        try:
            pids = sorted(c.get_server_pid() for c in self._busy)  # once connected: what runs now
            if pids:
                await conn.execute(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = ANY($1::int[]) AND state = 'active'",
                    pids,
                )
        except Exception as exc:
            raise _translate(exc) from exc
        finally:
            await conn.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, known as busy while in use (see :meth:`interrupt`); every driver
        failure leaves it as one of ours."""
        try:
            async with self._pool.acquire() as conn:
                self._busy.add(conn)
                try:
                    yield conn
                finally:
                    self._busy.discard(conn)
        except Exception as exc:
            raise _translate(exc) from exc

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._connection() as conn:
            return [tuple(r) for r in await conn.fetch(pg_sql(sql), *args)]

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> tuple[int, int]:
        """(rows affected, 0): ids come from :meth:`_insert_ids` (``RETURNING``)."""
        async with self._connection() as conn:
            status = await conn.execute(pg_sql(sql), *args)
        tail = status.rsplit(" ", 1)[-1]
        return (int(tail) if tail.isdigit() else 0), 0

    async def _insert_ids(self, sql: str, args: Sequence[Any], rows: int, key: str) -> list[int]:
        """Sequences hand out ids to concurrent inserts interleaved: each row's own, as returned."""
        return [int(r[0]) for r in await self._fetch(f"{sql} RETURNING {key}", args)]

    async def next_stylesheet_sid(self) -> int:
        """Taken from the table's sequence (``nextval``), so that MyBB's next insert, which also
        draws from it, can never get the same sid; one not used is a gap, as a rollback leaves."""
        table = self._t["themestylesheets"].strip("`")
        rows = await self._fetch("SELECT nextval(pg_get_serial_sequence(%s, 'sid'))", (table,))
        return int(rows[0][0])

    async def shown_digest(self, sid: int) -> Digest:
        """PostgreSQL (before 18) has no CRC32 for ``row_digest``: the rows of the set and the
        masters are read by pages and summed here. Still one pass without a write, but it reads
        the texts (the other engines' digest reads none)."""
        t = self._t["templates"]
        sids = (sid, sid) if sid == GLOBAL_SID else (MASTER_SID, sid)
        rows: list[tuple[Any, ...]] = []
        last = 0
        while page := await self._fetch(
            f"SELECT tid, sid, dateline, title, template FROM {t} WHERE sid IN (%s, %s) AND tid > %s ORDER BY tid LIMIT 2000",
            (*sids, last),
        ):
            rows += page
            last = int(page[-1][0])
        copies = {r[3] for r in rows if r[1] == sid}
        shown = [r for r in rows if r[1] == sid or r[3] not in copies]
        digests = sum(row_digest(int(r[0]), int(r[1]), int(r[2]), r[3], r[4]) for r in shown)
        return len(shown), sum(int(r[0]) for r in shown), digests

    async def change_token(self) -> tuple[object, bool]:
        """The cluster's snapshot first: equal to the last one, no transaction has committed
        since (one ended would leave the in-progress list, one begun would move xmax), and the
        tables' token then is still theirs. Else the tables' rows and the sum of their ``xmin``
        (the transaction that wrote each row version: any insert, update or delete moves it),
        one scan of each table, but no row's text. Exact either way: settled."""
        (snapshot,) = (await self._fetch("SELECT pg_current_snapshot()::text"))[0]
        if snapshot == self._seen_snapshot:
            return self._seen_token, True
        parts = [
            f"(SELECT COUNT(*) || ':' || COALESCE(SUM(xmin::text::bigint), 0) FROM {self._t[name]})"
            for name in ("templates", "templatesets", "themes", "themestylesheets")
        ]
        (token,) = await self._fetch(f"SELECT {', '.join(parts)}")
        self._seen_snapshot, self._seen_token = snapshot, token  # read after the snapshot: never older
        return token, True


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset when a connection goes back to the pool: the store never changes session state
    (no SET, LISTEN, advisory lock or cursor), and asyncpg's default reset is one more round trip
    per statement (it doubled a single edit's database time)."""


def _reason(exc: BaseException) -> str:
    """One line about a driver error, never carrying connection secrets."""
    code = getattr(exc, "sqlstate", None)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{message} (SQLSTATE {code})" if code else message


def _translate(exc: BaseException) -> MybbSyncError:
    if isinstance(exc, MybbSyncError):
        return exc
    if _unavailable(exc):
        cancelled = isinstance(exc, asyncpg.QueryCanceledError)
        return DatabaseUnavailable(
            f"{'database statement interrupted' if cancelled else 'database unavailable'}: {_reason(exc)}"
        )
    return MybbSyncError(f"database error: {_reason(exc)}")
