"""Private, throwaway MariaDB and PostgreSQL servers, synthetic boards in them, and a poll target.

Used by the test suite and the benchmark (``from tests.boards import ...`` from the
repository root): a server in a temp datadir on its own unix socket (no TCP port),
which a test can stop and start again to inject an outage. Start-up waits on the
server's own ``READY=1`` (sd_notify; PostgreSQL: ``pg_ctl start --wait``), never on a sleep.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import aiomysql
import asyncpg

from mybb_sync.catalog import Catalog
from mybb_sync.config import Database
from mybb_sync.pending import Pending
from mybb_sync.poller import RecentWrites
from mybb_sync.schema import mysql_ddl
from mybb_sync.synthetic import Board, create_sqlite_board, install_board, install_postgres_board

READY_TIMEOUT = 60.0


class PrivateMariaDB:
    """One ``mariadbd`` in a temp directory; ``stop()``/``start()`` for outages."""

    def __init__(self, base: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mybb-sync-mariadb-", dir=base))
        self.datadir = self.dir / "data"
        self.socket = self.dir / "mysqld.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    def _binary(self, name: str) -> str:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
        if found is None:
            raise RuntimeError(f"{name} not found: install MariaDB server or set MYBB_SYNC_TEST_DSN")
        return found

    def _user_args(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def install(self) -> None:
        result = subprocess.run(
            [
                self._binary("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._user_args(),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise RuntimeError(f"mariadb-install-db failed: {' '.join(tail)}")

    def start(self) -> None:
        """Start the server and return once it says READY=1."""
        if not self.datadir.exists():
            self.install()
        notify_path = self.dir / "notify.sock"
        notify_path.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(READY_TIMEOUT)
            self._proc = subprocess.Popen(
                [
                    self._binary("mariadbd"),
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    f"--socket={self.socket}",
                    f"--pid-file={self.dir / 'mysqld.pid'}",
                    f"--log-error={self.dir / 'error.log'}",
                    "--skip-networking",
                    "--max-connections=500",
                    *self._user_args(),
                ],
                env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while b"READY=1" not in notify.recv(4096):
                    pass
            except TimeoutError:
                self.stop()
                raise RuntimeError(f"mariadbd did not become ready; see {self.dir / 'error.log'}") from None

    def stop(self) -> None:
        """Shut the server down (SIGTERM) and wait for it to exit."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=60)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def database(self, name: str = "mysql") -> Database:
        return Database(scheme="mysql", user="root", name=name, unix_socket=str(self.socket))

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` and ``pg_ctl`` (Debian's layout), or
    the directory of those on the PATH."""
    found = sorted(
        (d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").exists() and (d / "pg_ctl").exists()),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class PrivatePostgres:
    """One PostgreSQL cluster in a temp directory (``initdb``, ``pg_ctl``), listening only on a unix
    socket in that directory; ``stop()``/``start()`` for outages. As root, the server runs as the
    ``postgres`` user (it refuses to run as root)."""

    def __init__(self, base: Path | None = None) -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("initdb/pg_ctl not found: install postgresql or set MYBB_SYNC_TEST_PG_DSN")
        self.bin = binaries
        self.dir = Path(tempfile.mkdtemp(prefix="mybb-sync-postgres-", dir=base))
        self.datadir = self.dir / "data"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            shutil.chown(self.dir, self._user, self._user)

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, user=self._user, group=self._user,
            stdin=subprocess.DEVNULL, cwd=self.dir,
        )  # fmt: skip
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise RuntimeError(f"{args[0]} {args[1]} failed: {' '.join(tail)} (see {self.dir / 'server.log'})")

    def start(self) -> None:
        """Start the server; ``pg_ctl --wait`` returns once it accepts connections."""
        if not self.datadir.exists():
            self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--locale=C.UTF-8", "--no-sync")  # fmt: skip
        options = f"-k {self.dir} -c listen_addresses= -c max_connections=300 -c fsync=off"
        self._run("pg_ctl", "start", "-D", str(self.datadir), "-l", str(self.dir / "server.log"), "-o", options,
                  "--wait", "--timeout", str(int(READY_TIMEOUT)))  # fmt: skip

    def stop(self) -> None:
        """Shut the server down (fast: open sessions are ended) and wait for it to exit."""
        if self.running:
            self._run("pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast", "--wait")

    @property
    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def database(self, name: str = "postgres") -> Database:
        return Database(scheme="postgresql", user="postgres", port=5432, name=name, unix_socket=str(self.dir))

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


_counter = itertools.count(1)


async def _pg_connect(db: Database, name: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(
        user=db.user, password=db.password, database=name or db.name, host=db.unix_socket or db.host, port=db.port
    )


async def _connect(db: Database, name: str | None = None) -> aiomysql.Connection:
    kwargs = dict(user=db.user, password=db.password, db=name, charset=db.charset, autocommit=True)
    if db.unix_socket:
        kwargs["unix_socket"] = db.unix_socket
    else:
        kwargs.update(host=db.host, port=db.port)
    return await aiomysql.connect(**kwargs)


async def create_board(server: Database, board: Board, prefix: str = "mybb_", name: str | None = None) -> Database:
    """Create a fresh database holding ``board``: a new database on a MySQL server (its tables in
    ``server.charset``, as an old board's may be latin1), or a new SQLite file."""
    if server.scheme == "sqlite":
        assert server.path is not None
        return await create_sqlite_board(server.path, board, prefix)
    name = name or f"mybbsync_{os.getpid()}_{next(_counter)}"
    if server.scheme == "postgresql":
        pg = await _pg_connect(server)
        try:
            await pg.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
        finally:
            await pg.close()
        pg = await _pg_connect(server, name)
        try:
            await install_postgres_board(pg, board, prefix)
        finally:
            await pg.close()
        return replace(server, name=name)
    conn = await _connect(server)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET {server.charset}")
            await cur.execute(f"USE `{name}`")
            for ddl in mysql_ddl(prefix, server.charset):
                await cur.execute(ddl)
            await install_board(cur.execute, cur.executemany, board, prefix)
    finally:
        conn.close()
    return replace(server, name=name)


async def drop_board(db: Database) -> None:
    if db.scheme == "sqlite":
        assert db.path is not None
        db.path.unlink(missing_ok=True)
        return
    if db.scheme == "postgresql":
        pg = await _pg_connect(db, "postgres")
        try:
            await pg.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
        finally:
            await pg.close()
        return
    conn = await _connect(db)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS `{db.name}`")
    finally:
        conn.close()


class CatalogTarget:
    """What the poller asks of a service, without a service: a fixed catalog, no titles known, no own
    writes, always idle; what polls report is left in ``pending``."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.own_writes = RecentWrites()
        self.pending = Pending()

    async def until_idle(self) -> None:
        return

    async def current_catalog(self) -> Catalog:
        return self.catalog

    async def known_titles(self, sid: int) -> set[str]:
        return set()

    async def files_of_rows(self, tids: Sequence[int]) -> dict[int, list[tuple[str, tuple[int, str]]]]:
        return {}
