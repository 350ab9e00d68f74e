"""Issue 22, case 2: a file written in place never goes live half-written, whatever looks at it.

The writer opens the file, writes a first half, pauses, writes the rest and
closes. inotify alone waits for the close; these tests make something else
look at the half meanwhile - a rescan (the service handle, the control
socket, SIGHUP), an inotify overflow, the stability window of a network
filesystem - and check that the database never holds the half: the audit
triggers record every write to the templates table, and the only one is the
whole text.

The writer's pause is bounded by events: the second half is written once the
rescan that must leave the file alone has been handled (its log line, the
control socket's answer). The service runs on a SQLite board.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from mybb_sync import php
from mybb_sync.config import Database
from mybb_sync.synthetic import Board
from mybb_sync.writers import SETTLE_SECONDS

from service_helpers import (
    BARRIER,
    SET_SID,
    LogTap,
    Running,
    audit,
    cli,
    cli_service,
    control,
    db_url,
    imported_path,
    install_audit,
    queue_limit,
    running_service,
    shown,
    tpath,
    wait_imported,
    write,
)

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", parametrize=False)]

OWN = 20  # a master the set has its own copy of (every 20th)
HALF = b"<b>HALF2 "
REST = b"of a template written in two goes</b>\n"


@pytest.fixture
async def db(board: Database) -> Database:
    await install_audit(board)
    return board


def stored(data: bytes) -> str:
    return php.rtrim(data.decode("utf-8"))


def left_alone(rel: str) -> Callable[[str], bool]:
    return lambda line: line.startswith(f"left {rel} alone")


def imported(rel: str, lines: list[str]) -> bool:
    return any(imported_path(line) == rel for line in lines)


async def only_the_whole_text_was_written(db: Database, title: str) -> None:
    writes = [w for w in await audit(db) if w.title == title]
    assert [(w.sid, w.template) for w in writes] == [(SET_SID, stored(HALF + REST))]
    assert (await shown(db, title)).template == stored(HALF + REST)


async def cli_barrier(root: Path, log: LogTap) -> None:
    """service_helpers.barrier for a child's log, whose lines start with a timestamp."""
    for _ in range(2):
        mark = log.mark()
        with open(root / BARRIER, "wb"):
            pass
        await log.wait_for(lambda line: f" refused {BARRIER}:" in line, since=mark)


async def rescan_by_handle(svc: Running) -> None:
    await svc.handle.rescan()


async def rescan_by_socket(svc: Running) -> None:
    await control(svc.root, "rescan")  # what `mybb-sync rescan` sends


@pytest.mark.parametrize("rescan", [rescan_by_handle, rescan_by_socket], ids=["handle", "control-socket"])
async def test_a_rescan_leaves_a_file_being_written_for_its_close(
    db: Database, board_spec: Board, root: Path, rescan: Callable[[Running], Awaitable[None]]
) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    async with running_service(db, root) as svc:
        before = await shown(db, title)
        with open(root / rel, "wb", buffering=0) as writer:  # in place: truncated, then two halves
            writer.write(HALF)
            await svc.barrier()  # the service has read the IN_MODIFY of the first half
            mark = svc.log.mark()
            await rescan(svc)
            assert any(map(left_alone(rel), svc.log.since(mark))), svc.log.since(mark)
            assert not imported(rel, svc.log.since(mark))
            assert await shown(db, title) == before
            mark = svc.log.mark()
            writer.write(REST)
        await svc.imported([rel], since=mark)  # its close
        await svc.barrier()
    await only_the_whole_text_was_written(db, title)


async def test_sighup_leaves_a_file_being_written_for_its_close(
    db: Database, board_spec: Board, root: Path, tmp_path: Path
) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    await cli("export", "--db", db_url(db), "--root", str(root), cwd=tmp_path)  # start-up then writes nothing
    async with cli_service(db, root, tmp_path, "--poll-interval", "3600") as svc:
        before = await shown(db, title)
        with open(root / rel, "wb", buffering=0) as writer:
            writer.write(HALF)
            await cli_barrier(root, svc.log)  # the service has read the IN_MODIFY of the first half
            mark = svc.log.mark()
            svc.signal(signal.SIGHUP)
            await svc.log.wait_for(lambda line: "SIGHUP" in line, since=mark)
            await control(root, "rescan")  # queued after the SIGHUP's: once answered, both are done
            assert not imported(rel, svc.log.since(mark))
            assert await shown(db, title) == before
            mark = svc.log.mark()
            writer.write(REST)
        await wait_imported(svc.log, [rel], since=mark)
        svc.signal(signal.SIGTERM)
        assert await svc.wait(timeout=10) == 0
    await only_the_whole_text_was_written(db, title)


async def test_after_an_overflow_a_file_changed_meanwhile_waits_to_hold_still(
    db: Database, board_spec: Board, root: Path, tmp_path: Path
) -> None:
    """The half's IN_MODIFY is lost with the overflow: the rescan that follows cannot know the file
    is being written, and leaves it alone because it changed within the window. The files closed
    while events were lost are imported once they held still."""
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    fillers = [board_spec.master_title(i) for i in range(100, 140)]
    await cli("export", "--db", db_url(db), "--root", str(root), cwd=tmp_path)  # start-up then writes nothing
    async with AsyncExitStack() as stack:
        with queue_limit(20):
            svc = await stack.enter_async_context(running_service(db, root))
        before = await shown(db, title)
        mark = svc.log.mark()
        # Nothing awaits from here to the first half: the service reads no event meanwhile.
        for i, filler in enumerate(fillers):  # more events than the queue holds
            write(root / tpath(filler), f"<s>filler {i}</s>")
        with open(root / rel, "wb", buffering=0) as writer:
            writer.write(HALF)  # its IN_MODIFY is lost
            await svc.log.wait_for(lambda line: "inotify queue overflowed" in line, since=mark)
            # The overflow's rescan meets the half. (A requested rescan would now wait for the
            # window to pass, by which time a writer that paused that long is taken as done.)
            await svc.log.wait_for(left_alone(rel), since=mark)
            assert not imported(rel, svc.log.since(mark))
            assert await shown(db, title) == before
            closing = svc.log.mark()
            writer.write(REST)
        await svc.imported([rel], since=closing)
        await svc.imported([tpath(f) for f in fillers], since=mark)
        await svc.barrier()
    for i, filler in enumerate(fillers):
        assert (await shown(db, filler)).template == f"<s>filler {i}</s>"
    await only_the_whole_text_was_written(db, title)


async def test_on_a_network_filesystem_a_changed_file_is_imported_once_it_held_still(
    db: Database, board_spec: Board, root: Path, tmp_path: Path
) -> None:
    """``network_filesystem="yes"`` on a local disk; the writer stands for one on another machine:
    it writes through a second link outside the root, so no inotify event reaches the service."""
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    async with running_service(db, root, network_filesystem="yes") as svc:
        before = await shown(db, title)
        os.link(root / rel, elsewhere / "writer.html")
        with open(elsewhere / "writer.html", "r+b", buffering=0) as writer:
            os.unlink(elsewhere / "writer.html")  # (a file with two links is never read)
            writer.truncate(0)
            writer.write(HALF)
            mark = svc.log.mark()
            async with anyio.create_task_group() as tg:
                tg.start_soon(svc.handle.rescan)  # returns once the file held still and was imported
                await svc.log.wait_for(left_alone(rel), since=mark)
                assert not imported(rel, svc.log.since(mark))
                assert await shown(db, title) == before
                writer.write(REST)
                last_write = os.fstat(writer.fileno()).st_mtime_ns
        assert imported(rel, svc.log.since(mark))
        assert time.time_ns() >= last_write + SETTLE_SECONDS * 1e9  # it held still for the window first
        await svc.barrier()
    await only_the_whole_text_was_written(db, title)
