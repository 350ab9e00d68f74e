"""Start-up and shutdown edges and the poller's whole-second clock (regressions found by the benchmark)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import anyio
import anyio.abc
import pytest

from boards import CatalogTarget
from mybb_sync.catalog import load_catalog
from mybb_sync.config import Database
from mybb_sync.control import SUN_PATH_MAX, call, socket_path
from mybb_sync.poller import Poller
from mybb_sync.store import Store
from mybb_sync.synthetic import Board

from service_helpers import db_url, running_service, set_template, tpath

pytestmark = pytest.mark.anyio


CLI = [sys.executable, "-m", "mybb_sync.cli"]


@pytest.fixture
def board_spec() -> Board:
    return Board(masters=3000)


async def test_sigterm_during_the_start_up_export_exits_0_at_once(board: Database, root: Path) -> None:
    """Regression: the signal handler used to be installed only once the service was watching."""
    argv = [*CLI, "watch", "--db", db_url(board), "--root", str(root)]
    async with await anyio.open_process(argv) as proc:
        assert proc.stderr is not None
        async for chunk in proc.stderr:  # the first log line: the start-up pass is under way
            if chunk:
                break
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(5):
            code = await proc.wait()
    assert code == 0
    assert time.monotonic() - started < 5


async def test_a_root_too_deep_for_a_unix_socket_still_gets_a_control_socket(board: Database, tmp_path: Path) -> None:
    """Regression: control.sock under a long root path crashed the service (AF_UNIX path too long)."""
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5, "root")
    deep.mkdir(parents=True)
    assert len(str(deep / ".mybb-sync" / "control.sock").encode()) > SUN_PATH_MAX
    async with running_service(board, deep, settle=False):
        assert len(str(socket_path(deep)).encode()) <= SUN_PATH_MAX
        reply = await call(deep, {"op": "status"})
    assert reply is not None and reply["ok"]


async def test_a_second_save_stamped_with_an_already_seen_second_is_noticed(board: Database, store: Store) -> None:
    """Regression: dateline has whole seconds, so a second save in the same second moved
    no marker and its file was never exported."""
    title = Board(masters=3000).master_title(20)  # every 20th master has a set copy
    target = CatalogTarget(await load_catalog(store))
    poller = Poller(store, interval=1)
    await poller.baseline()
    now = int(time.time())
    await set_template(board, 1, title, "first save", now)
    first, _ = await poller.poll(target)  # type: ignore[arg-type]
    await set_template(board, 1, title, "second save, same second", now)
    second, _ = await poller.poll(target)  # type: ignore[arg-type]
    assert tpath(title) in first
    assert tpath(title) in second


@pytest.mark.backends("sqlite")
async def test_sigterm_on_a_sqlite_board_leaves_no_driver_thread_traceback(board: Database, root: Path) -> None:
    """aiosqlite's worker thread printed "RuntimeError: Event loop is closed" after about one
    SIGTERM in three: a stop during start-up cancelled the store's close, and the loop ended
    with the driver's thread still holding a query's result for it."""
    argv = [*CLI, "watch", "--db", db_url(board), "--root", str(root)]
    for _ in range(6):
        async with await anyio.open_process(argv) as proc:
            assert proc.stderr is not None
            output = b""
            async for chunk in proc.stderr:  # the first log line: the start-up pass is under way
                output += chunk
                break
            proc.send_signal(signal.SIGTERM)
            async for chunk in proc.stderr:
                output += chunk
            with anyio.fail_after(5):
                assert await proc.wait() == 0
        assert b"Traceback" not in output and b"Event loop is closed" not in output, output.decode()


async def _lines_until(proc: anyio.abc.Process, wanted: str, seen: list[str], timeout: float = 30) -> None:
    """Read the child's stderr into ``seen`` until a line contains ``wanted``."""
    assert proc.stderr is not None
    buffer = b""
    with anyio.fail_after(timeout):
        while not any(wanted in line for line in seen):
            buffer += await proc.stderr.receive()
            *lines, rest = buffer.split(b"\n")
            seen += [line.decode(errors="replace") for line in lines]
            buffer = rest


@pytest.mark.backends("sqlite")
async def test_a_database_missing_at_start_is_waited_for_then_synced(
    board: Database, root: Path, tmp_path: Path
) -> None:
    later = tmp_path / "later.sqlite"
    argv = [*CLI, "watch", "--db", f"sqlite:///{later}", "--root", str(root)]
    seen: list[str] = []
    async with await anyio.open_process(argv) as proc:
        await _lines_until(proc, "waiting for the database at", seen)
        assert board.path is not None
        board.path.rename(later)  # the database appears
        await _lines_until(proc, "watching", seen)
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(5):
            assert await proc.wait() == 0
    assert sum("waiting for the database" in line for line in seen) == 1  # said once
    assert (root / "template_sets").is_dir()


async def test_sigterm_while_waiting_for_the_database_stops_at_once(tmp_path: Path, root: Path) -> None:
    argv = [*CLI, "watch", "--db", "mysql://root@127.0.0.1:1/nothing", "--root", str(root)]
    seen: list[str] = []
    async with await anyio.open_process(argv) as proc:
        await _lines_until(proc, "waiting for the database at mysql://root@127.0.0.1:1/nothing", seen)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(5):
            assert await proc.wait() == 0
    assert time.monotonic() - started < 2


async def test_the_control_socket_refuses_an_unknown_operation_with_one_line(board: Database, root: Path) -> None:
    async with running_service(board, root, settle=False):
        reply = await call(root, {"op": "bogus"})
    assert reply == {"ok": False, "error": "unknown operation 'bogus'"}
