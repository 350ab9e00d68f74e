"""Shared fixtures: private MariaDB and PostgreSQL servers, synthetic boards, sync roots.

The database tests never skip: they use a throwaway ``mariadbd`` and a
throwaway PostgreSQL cluster started here (temp datadir, own unix socket), or
the servers ``MYBB_SYNC_TEST_DSN`` and ``MYBB_SYNC_TEST_PG_DSN`` point at. With
neither, the session fails with a message saying so.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiomysql
import aiosqlite
import asyncpg
import pytest

from boards import PrivateMariaDB, PrivatePostgres, create_board, drop_board, postgres_binaries
from mybb_sync.config import Database
from mybb_sync.store import Store, open_store
from mybb_sync.store.postgres import pg_sql
from mybb_sync.synthetic import Board

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mybb"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def golden(*parts: str) -> Path:
    """A path in ``tests/fixtures/mybb``: what the real Admin CP of MyBB 1.8.37 wrote."""
    path = FIXTURES.joinpath(*parts)
    assert path.exists(), f"golden data missing: {path}"
    return path


@pytest.fixture(scope="session")
def mybb_fixtures() -> Path:
    """The golden captures of the real Admin CP, shipped in ``tests/fixtures/mybb``."""
    return golden()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[PrivateMariaDB | None]:
    """The private server (None when MYBB_SYNC_TEST_DSN names an existing one)."""
    if os.environ.get("MYBB_SYNC_TEST_DSN"):
        yield None
        return
    if not (shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()):
        pytest.fail(
            "database tests need MariaDB: install mariadb-server (mariadbd, mariadb-install-db) "
            "or set MYBB_SYNC_TEST_DSN=mysql://user:password@host:port/db",
            pytrace=False,
        )
    server = PrivateMariaDB()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def server_db(mariadb: PrivateMariaDB | None) -> Database:
    if mariadb is None:
        return Database.parse(os.environ["MYBB_SYNC_TEST_DSN"])
    return mariadb.database()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PrivatePostgres | None]:
    """The private PostgreSQL cluster (None when MYBB_SYNC_TEST_PG_DSN names an existing server)."""
    if os.environ.get("MYBB_SYNC_TEST_PG_DSN"):
        yield None
        return
    if postgres_binaries() is None:
        pytest.fail(
            "database tests need PostgreSQL's server: install postgresql (initdb, pg_ctl under "
            "/usr/lib/postgresql/*/bin) or set MYBB_SYNC_TEST_PG_DSN=postgresql://user:password@host:port/db",
            pytrace=False,
        )
    server = PrivatePostgres()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def pg_server_db(postgres: PrivatePostgres | None) -> Database:
    if postgres is None:
        return Database.parse(os.environ["MYBB_SYNC_TEST_PG_DSN"])
    return postgres.database()


@pytest.fixture
def board_spec() -> Board:
    """The board a test gets; override in a module for other sizes."""
    return Board(masters=300)


BACKENDS = ("mysql", "postgresql", "sqlite")  # the engines a board can live in: MariaDB, PostgreSQL, a SQLite file


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backends(*engines, parametrize=True): run only on these engines (of mysql, postgresql, sqlite) "
        "instead of all; parametrize=False runs on the one engine given without adding it to the test id",
    )


def _backends(node: pytest.Item) -> tuple[tuple[str, ...], bool]:
    """The engines the ``backends`` marker closest to ``node`` names (default: all), and whether to parametrise."""
    marker = node.get_closest_marker("backends")
    if marker is None:
        return BACKENDS, True
    engines, parametrize = tuple(marker.args), marker.kwargs.get("parametrize", True)
    unknown = [e for e in engines if e not in BACKENDS]
    if not engines or unknown or set(marker.kwargs) - {"parametrize"}:
        raise pytest.UsageError(
            f"{node.nodeid}: backends() takes engines among {BACKENDS} and parametrize=, not {marker}"
        )
    if not parametrize and len(engines) != 1:
        raise pytest.UsageError(f"{node.nodeid}: backends(..., parametrize=False) takes exactly one engine")
    return engines, parametrize


def _argnames(mark: pytest.Mark) -> list[str]:
    names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
    return [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The backend matrix: every test that uses ``backend`` (through ``board``, ``store``...) runs
    once per engine, its id saying which, unless a ``backends`` marker narrows it."""
    if "backend" not in metafunc.fixturenames or any(
        "backend" in _argnames(mark) for mark in metafunc.definition.iter_markers("parametrize")
    ):
        return  # a test's own parametrize("backend", ...) is left to take precedence
    engines, parametrize = _backends(metafunc.definition)
    if parametrize:
        metafunc.parametrize("backend", engines, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database engine a test's board lives in: by default each of ``BACKENDS`` in turn.

    Narrow it with a marker, on a test or a whole module (``pytestmark``), not by
    redefining this fixture: ``@pytest.mark.backends("sqlite")``.
    """
    if hasattr(request, "param"):
        return str(request.param)
    (engine,) = _backends(request.node)[0]  # backends(engine, parametrize=False)
    return engine


@pytest.fixture
async def board(
    request: pytest.FixtureRequest,
    server_db: Database,
    board_spec: Board,
    mariadb: PrivateMariaDB | None,
    backend: str,
    tmp_path: Path,
) -> AsyncIterator[Database]:
    """A fresh database holding ``board_spec`` (on the MariaDB or PostgreSQL server, or a SQLite
    file), dropped afterwards. PostgreSQL is started only for a test that runs on it."""
    server = server_db
    owner: PrivateMariaDB | PrivatePostgres | None = mariadb
    if backend == "sqlite":
        server = Database(scheme="sqlite", path=tmp_path / "forum.sqlite")
    elif backend == "postgresql":
        server, owner = request.getfixturevalue("pg_server_db"), request.getfixturevalue("postgres")
    db = await create_board(server, board_spec)
    yield db
    if db.scheme == "sqlite" or owner is None or owner.running:
        await drop_board(db)


async def raw_sql(db: Database, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run SQL directly (not through the store under test), on either backend.

    Written for MySQL; for SQLite and PostgreSQL the placeholders and the
    byte-exact comparisons are translated.
    """
    if db.scheme == "sqlite":
        assert db.path is not None
        query = query.replace("%s", "?").replace("BINARY title", "title").replace("AS BINARY", "AS BLOB")
        query = query.replace("SHOW TABLES", "SELECT name FROM sqlite_master WHERE type = 'table'")
        async with aiosqlite.connect(db.path) as conn:
            async with conn.execute(query, tuple(args)) as cur:
                rows = [tuple(r) for r in await cur.fetchall()]
            await conn.commit()
        return rows
    if db.scheme == "postgresql":
        query = re.sub(r"CAST\((\w+) AS BINARY\)", r"convert_to(\1, 'UTF8')", query).replace("BINARY title", "title")
        query = query.replace("SHOW TABLES", "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        pg = await asyncpg.connect(user=db.user, password=db.password, database=db.name, host=db.unix_socket or db.host,
                                   port=db.port)  # fmt: skip
        try:
            return [tuple(r) for r in await pg.fetch(pg_sql(query), *args)]
        finally:
            await pg.close()
    kwargs: dict[str, Any] = dict(user=db.user, password=db.password, db=db.name, charset=db.charset, autocommit=True)
    if db.unix_socket:
        kwargs["unix_socket"] = db.unix_socket
    else:
        kwargs.update(host=db.host, port=db.port)
    conn = await aiomysql.connect(**kwargs)
    try:
        async with conn.cursor() as cur:
            await cur.execute(query, args)
            return list(await cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
async def store(board: Database) -> AsyncIterator[Store]:
    async with open_store(board, "mybb_") as s:
        yield s


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path
