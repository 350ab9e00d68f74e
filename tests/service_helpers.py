"""Shared helpers for the service tests: a running service, its log, the database, the CLI.

Everything waits on an event (a log line, a control-socket answer, an inotify
event, a process exit), bounded by ``anyio.fail_after``; nothing sleeps to
synchronise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiomysql
import anyio
import anyio.abc
from anyio.streams.text import TextReceiveStream
from asyncinotify import Inotify, Mask

from mybb_sync import layout
from mybb_sync.config import Database, Settings
from mybb_sync.handle import ServiceHandle
from mybb_sync.selection import EVERYTHING, Selection
from mybb_sync.serve import serve
from mybb_sync.service import DEFAULT_TUNING, Tuning
from mybb_sync.synthetic import GROUP_PREFIXES

from conftest import raw_sql

SET_TITLE = "Default Templates"
SET_SID = 1
TIMEOUT = 30.0
# A global template title no database row has: an empty file there is refused
# (and logged) without a single database write, which makes it a barrier.
BARRIER = "global_templates/zz_barrier.html"


# -- log lines ------------------------------------------------------------------


class LogTap:
    """Lines logged by a service (in-process handler or a child's stderr), awaitable."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = anyio.Event()
        self._loop = asyncio.get_running_loop()

    def add(self, line: str) -> None:
        """Record one line (from any thread)."""
        self.lines.append(line)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake()
        else:
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def mark(self) -> int:
        return len(self.lines)

    def since(self, mark: int) -> list[str]:
        return self.lines[mark:]

    async def wait_for(self, predicate: Callable[[str], bool], since: int = 0, timeout: float = TIMEOUT) -> str:
        """The first line (at index >= ``since``) matching ``predicate``; fails after ``timeout``."""
        index = since
        with anyio.fail_after(timeout):
            while True:
                while index < len(self.lines):
                    if predicate(self.lines[index]):
                        return self.lines[index]
                    index += 1
                await self._changed.wait()


def imported_path(line: str) -> str | None:
    """The path of an ``imported <path> -> ...`` line."""
    if "imported " not in line or " -> " not in line:
        return None
    return line.split("imported ", 1)[1].split(" -> ", 1)[0]


class _TapHandler(logging.Handler):
    def __init__(self, tap: LogTap) -> None:
        super().__init__(logging.DEBUG)
        self.tap = tap

    def emit(self, record: logging.LogRecord) -> None:
        self.tap.add(record.getMessage())


@dataclass
class Running:
    handle: ServiceHandle
    log: LogTap
    root: Path
    db: Database

    async def imported(self, paths: Sequence[str], since: int, timeout: float = TIMEOUT) -> None:
        await wait_imported(self.log, paths, since, timeout)

    async def barrier(self, timeout: float = TIMEOUT) -> None:
        await barrier(self.root, self.log, timeout)


@asynccontextmanager
async def running_service(
    db: Database,
    root: Path,
    *,
    settle: bool = True,
    tuning: Tuning = DEFAULT_TUNING,
    selection: Selection = EVERYTHING,
    **settings: Any,
) -> AsyncIterator[Running]:
    """``serve`` in a task group, its log tapped; stopped on exit.

    With ``settle``, returns only once the echoes of the start-up export (our
    own renames, the folders it made) have been handled.
    """
    tap = LogTap()
    logger = logging.getLogger("mybb_sync")
    handler = _TapHandler(tap)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(TIMEOUT):
                handle = await tg.start(
                    partial(serve, tuning=tuning, selection=selection), Settings(db=db, root=root, **settings)
                )
            running = Running(handle, tap, root, db)
            try:
                if settle:
                    await running.barrier()
                yield running
            finally:
                handle.stop()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


async def wait_imported(log: LogTap, paths: Sequence[str], since: int, timeout: float = TIMEOUT) -> None:
    """Wait for an ``imported <path>`` line (after ``since``) for every path."""
    missing = set(paths)
    index = since
    with anyio.fail_after(timeout):
        while missing:
            while index < len(log.lines):
                missing.discard(imported_path(log.lines[index]) or "")
                index += 1
            if missing:
                await log._changed.wait()  # noqa: SLF001


async def barrier(root: Path, log: LogTap, timeout: float = TIMEOUT) -> None:
    """Return once every file event made before this call has been handled.

    An empty file in its place is read and refused (and logged) without any
    database write. It is written twice: a file saved while a batch is in
    hand may join it and be handled beside chunks taken before it (and a
    rescan pass already running may meet it among its orphans before its
    event is even read), but a file the batch holds already cannot join it
    again: the second save waits for a batch of its own, which starts once
    everything noticed before the first save has been decided and carried out.
    """
    path = root / BARRIER
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        mark = log.mark()
        with open(path, "wb"):
            pass
        await log.wait_for(lambda line: line.startswith(f"refused {BARRIER}:"), since=mark, timeout=timeout)


# -- the inotify queue ---------------------------------------------------------------

QUEUE_LIMIT = Path("/proc/sys/fs/inotify/max_queued_events")


@contextmanager
def queue_limit(events: int) -> Iterator[None]:
    """Lower ``fs.inotify.max_queued_events`` for inotify instances made meanwhile.

    The kernel reads the limit when an instance is created, so the window can
    stay short: the old value is put back on exit, whatever happens.
    """
    import pytest

    try:
        old = QUEUE_LIMIT.read_text().strip()
        QUEUE_LIMIT.write_text(str(events))
    except OSError as exc:  # not root, or a read-only /proc
        pytest.skip(f"cannot change {QUEUE_LIMIT}: {exc}")
    try:
        yield
    finally:
        # Put it back only if nobody changed it meanwhile (another test run lowering it
        # too would otherwise get its lowered value "restored" by us, for good).
        if QUEUE_LIMIT.read_text().strip() == str(events):
            QUEUE_LIMIT.write_text(old)


# -- files ----------------------------------------------------------------------


def tpath(title: str, set_title: str | None = SET_TITLE, groups: Sequence[str] = GROUP_PREFIXES) -> str:
    """The root-relative path of a template of the set (``None``: a global template)."""
    return layout.template_path(set_title, title, layout.group_of(title, groups))


async def wait_file(path: Path, predicate: Callable[[bytes | None], bool], timeout: float = TIMEOUT) -> bytes | None:
    """Wait, on inotify events of its folder, until the file's bytes satisfy ``predicate``."""

    def current() -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    with Inotify() as inotify, anyio.fail_after(timeout):
        inotify.add_watch(path.parent, Mask.CLOSE_WRITE | Mask.MOVED_TO | Mask.CREATE | Mask.DELETE)
        data = current()
        while not predicate(data):
            event = await inotify.get()
            if event.name is not None and event.name.name == path.name:
                data = current()
        return data


# -- the database -----------------------------------------------------------------


def db_url(db: Database) -> str:
    if db.scheme == "sqlite":
        return f"sqlite://{db.path}"
    if db.unix_socket:
        return f"mysql://{db.user}@localhost/{db.name}?unix_socket={db.unix_socket}"
    auth = f"{db.user}:{db.password}" if db.password else db.user
    return f"mysql://{auth}@{db.host}:{db.port}/{db.name}"


async def connect(db: Database) -> aiomysql.Connection:
    kwargs: dict[str, Any] = dict(user=db.user, password=db.password, db=db.name, charset=db.charset, autocommit=True)
    if db.unix_socket:
        kwargs["unix_socket"] = db.unix_socket
    else:
        kwargs.update(host=db.host, port=db.port)
    return await aiomysql.connect(**kwargs)


sql = raw_sql  # direct SQL, not through the store under test


@dataclass(frozen=True)
class Row:
    tid: int
    sid: int
    title: str
    template: str
    dateline: int


async def template_rows(db: Database) -> list[Row]:
    rows = await sql(db, "SELECT tid, sid, title, template, dateline FROM mybb_templates ORDER BY tid")
    return [Row(int(r[0]), int(r[1]), r[2], r[3], int(r[4])) for r in rows]


async def template(db: Database, sid: int, title: str) -> list[Row]:
    """Every row of ``title`` in set ``sid`` (a list: duplicates would be a bug)."""
    rows = await sql(
        db,
        "SELECT tid, sid, title, template, dateline FROM mybb_templates WHERE sid = %s AND BINARY title = %s ORDER BY tid",
        (sid, title),
    )
    return [Row(int(r[0]), int(r[1]), r[2], r[3], int(r[4])) for r in rows]


async def shown(db: Database, title: str, sid: int = SET_SID) -> Row:
    """The row set ``sid`` shows for ``title`` (its own copy, else the master)."""
    rows = await template(db, sid, title) or await template(db, -2, title)
    assert len(rows) == 1, rows
    return rows[0]


async def set_template(db: Database, sid: int, title: str, text: str, dateline: int) -> None:
    """An edit made in the Admin CP (update of an existing row of the set)."""
    await sql(
        db,
        "UPDATE mybb_templates SET template = %s, dateline = %s WHERE sid = %s AND BINARY title = %s",
        (text, dateline, sid, title),
    )


AUDIT_TABLE = "mybbsync_test_audit"


async def install_audit(db: Database) -> None:
    """Triggers recording every write to the templates table, whoever makes it.

    On MySQL the log is MyISAM like MyBB's tables: a transactional one would
    lose the record of a write whose statement was cut off after the (kept)
    row change. SQLite gets the same log with its own trigger syntax.
    """
    if db.scheme == "sqlite":
        await raw_sql(
            db,
            f"CREATE TABLE {AUDIT_TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT, tid INT, sid INT, "
            "title TEXT, template TEXT, dateline INT)",
        )
    else:
        await raw_sql(
            db,
            f"CREATE TABLE {AUDIT_TABLE} (id INT AUTO_INCREMENT PRIMARY KEY, op CHAR(1), tid INT, sid INT, "
            "title VARCHAR(120), template MEDIUMTEXT, dateline INT) ENGINE=MyISAM CHARACTER SET utf8mb4",
        )
    for op, when, ref in (("I", "INSERT", "NEW"), ("U", "UPDATE", "NEW"), ("D", "DELETE", "OLD")):
        insert = (
            f"INSERT INTO {AUDIT_TABLE} (op, tid, sid, title, template, dateline) "
            f"VALUES ('{op}', {ref}.tid, {ref}.sid, {ref}.title, {ref}.template, {ref}.dateline)"
        )
        body = f"BEGIN {insert}; END" if db.scheme == "sqlite" else insert
        await raw_sql(db, f"CREATE TRIGGER mybbsync_audit_{op} AFTER {when} ON mybb_templates FOR EACH ROW {body}")


@dataclass(frozen=True)
class Write:
    id: int
    op: str
    tid: int
    sid: int
    title: str
    template: str
    dateline: int


async def audit(db: Database, after: int = 0) -> list[Write]:
    rows = await sql(
        db, f"SELECT id, op, tid, sid, title, template, dateline FROM {AUDIT_TABLE} WHERE id > %s ORDER BY id", (after,)
    )
    return [Write(int(r[0]), r[1], int(r[2]), int(r[3]), r[4], r[5], int(r[6])) for r in rows]


async def audit_mark(db: Database) -> int:
    rows = await sql(db, f"SELECT COALESCE(MAX(id), 0) FROM {AUDIT_TABLE}")
    return int(rows[0][0])


async def writes_waiting_for_a_lock(db: Database) -> list[str]:
    """The UPDATEs and INSERTs the server has waiting for a table lock (MariaDB has no event
    for "a statement waits": callers look at the process list until one does)."""
    rows = await sql(db, "SHOW FULL PROCESSLIST")
    return [r[7] for r in rows if (r[7] or "").startswith(("UPDATE", "INSERT")) and "Waiting for table" in (r[6] or "")]


# -- the command line ------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYBB_SYNC_") and k != "NOTIFY_SOCKET"}
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mybb_sync.cli", *args]


async def cli(*args: str, cwd: Path, timeout: float = 60.0, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run ``mybb-sync ARGS`` to completion."""
    with anyio.fail_after(timeout):
        result = await anyio.run_process(cli_command(*args), cwd=cwd, env=cli_env(), check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"mybb-sync {' '.join(args)} exited {result.returncode}:\n{result.stderr.decode(errors='replace')}"
        )
    return result


class CliService:
    """``mybb-sync watch`` in a child process, its stderr lines in a :class:`LogTap`."""

    def __init__(self, process: anyio.abc.Process, log: LogTap) -> None:
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait(self, timeout: float) -> int:
        with anyio.fail_after(timeout):
            return await self.process.wait()


@asynccontextmanager
async def cli_service(
    db: Database, root: Path, cwd: Path, *extra: str, env: dict[str, str] | None = None
) -> AsyncIterator[CliService]:
    """Start ``mybb-sync watch`` and return once it logged that it is watching ``root``."""
    log = LogTap()
    command = cli_command("watch", "--db", db_url(db), "--root", str(root), *extra)
    process = await anyio.open_process(
        command, cwd=cwd, env=env or cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    service = CliService(process, log)

    async def pump() -> None:
        assert process.stderr is not None
        buffer = ""
        async for chunk in TextReceiveStream(process.stderr, errors="replace"):
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            for line in lines:
                log.add(line)
        if buffer:
            log.add(buffer)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                await log.wait_for(lambda line: "watching" in line, timeout=TIMEOUT)
            except TimeoutError:
                raise AssertionError("the service never logged 'watching':\n" + "\n".join(log.lines)) from None
            try:
                yield service
            finally:
                if process.returncode is None:
                    with anyio.CancelScope(shield=True):
                        process.send_signal(signal.SIGCONT)
                        process.terminate()
                        with anyio.move_on_after(10):
                            await process.wait()
                        if process.returncode is None:
                            process.kill()
                            await process.wait()
    finally:
        await process.aclose()


async def control(root: Path, op: str, **fields: Any) -> dict[str, Any]:
    """One request on the service's control socket."""
    from mybb_sync.control import call

    reply = await call(root, {"op": op, **fields}, timeout=TIMEOUT)
    assert reply is not None, "no service answered on the control socket"
    assert reply.get("ok"), reply
    return reply


def write(path: Path, data: bytes | str) -> None:
    """An in-place save (``O_TRUNC``), as most editors and tools do."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)
