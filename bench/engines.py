"""The database engines the benchmark runs on (``--engine``): a private server, and a blocking connection.

The harness writes its own SQL as for MySQL (``%s`` placeholders, backtick-quoted
tables) through :func:`connect_sync`; for PostgreSQL (psycopg, the ``bench`` extra)
and SQLite the statements are translated as the stores translate theirs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql
from tests.boards import PrivateMariaDB, PrivatePostgres

from mybb_sync.config import Database

ENGINES = ("mariadb", "postgresql", "sqlite")
Server = PrivateMariaDB | PrivatePostgres


class _Cursor:
    """A DB-API cursor whose statements are written for MySQL."""

    def __init__(self, cursor: Any, translate: Any) -> None:
        self._cursor, self._translate = cursor, translate

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._cursor.execute(self._translate(sql), tuple(args))

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._cursor.fetchall()]

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)


class Translating:
    """A connection to PostgreSQL or SQLite that takes the harness's MySQL-written statements."""

    def __init__(self, conn: Any, translate: Any) -> None:
        self._conn, self._translate = conn, translate

    @contextmanager
    def cursor(self) -> Iterator[_Cursor]:
        cursor = self._conn.cursor()
        try:
            yield _Cursor(cursor, self._translate)
        finally:
            cursor.close()

    def close(self) -> None:
        self._conn.close()


def connect_sync(db: Database) -> Any:
    """A blocking, autocommitting connection to ``db``'s database (``cursor()``, ``close()``)."""
    if db.scheme == "postgresql":
        import psycopg
        from psycopg.types.string import StrDumper

        conn = psycopg.connect(
            host=db.unix_socket or db.host, port=db.port, user=db.user, password=db.password, dbname=db.name,
            autocommit=True,
        )  # fmt: skip
        conn.adapters.register_dumper(str, StrDumper)  # text, not "unknown": CONCAT(template, %s) needs a type
        return Translating(conn, lambda sql: sql.replace("`", '"'))
    if db.scheme == "sqlite":
        assert db.path is not None
        return Translating(sqlite3.connect(db.path, isolation_level=None), lambda sql: sql.replace("%s", "?"))
    kwargs: dict[str, Any] = dict(
        user=db.user, password=db.password, database=db.name or None, charset=db.charset, autocommit=True
    )
    if db.unix_socket:
        kwargs["unix_socket"] = db.unix_socket
    else:
        kwargs.update(host=db.host, port=db.port)
    return pymysql.connect(**kwargs)


def start_server(engine: str, base: Path | None) -> Server | None:
    """The private server of ``engine`` (None for SQLite, whose boards are files), started."""
    if engine == "sqlite":
        return None
    server: Server = PrivatePostgres(base=base) if engine == "postgresql" else PrivateMariaDB(base=base)
    server.start()
    return server


def server_database(engine: str, server: Server | None, work: Path) -> Database:
    """Where the harness creates its boards: the server, or (SQLite) a file in the work folder."""
    if server is None:
        return Database(scheme="sqlite", path=work / "forum.sqlite")
    return server.database()


def server_version(db: Database) -> str:
    if db.scheme == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    conn = connect_sync(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version" if db.scheme == "postgresql" else "SELECT VERSION()")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def server_pid(server: Server | None) -> int | None:
    """The server's process, for its CPU figure."""
    if server is None:
        return None
    pid_file = server.datadir / "postmaster.pid" if isinstance(server, PrivatePostgres) else server.dir / "mysqld.pid"
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
