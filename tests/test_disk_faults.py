"""A full disk and a read-only root are outages the service reports and waits out, not crashes.

Real filesystems: a small tmpfs for the full disk, a read-only bind mount for the read-only
root (both need root, as CI has).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mybb_sync.config import Database
from mybb_sync.offline import offline_status
from mybb_sync.synthetic import Board

from service_helpers import (
    SET_SID,
    cli,
    control,
    db_url,
    running_service,
    set_template,
    shown,
    template,
    tpath,
    wait_file,
)

# The database is not what fails here: the SQLite board lives outside the small disk.
pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite")]

OWN = 20  # a master the set has its own copy of


@pytest.fixture
def board_spec() -> Board:
    return Board(masters=60)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    path.mkdir()
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextmanager
def filled(disk: Path) -> Iterator[None]:
    """Every free byte of ``disk`` taken by one file, freed on exit."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:  # unbuffered: nothing left to flush (and fail) at close
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    try:
        yield
    finally:
        filler.unlink()


@contextmanager
def read_only_view(path: Path) -> Iterator[Path]:
    """``path`` bind-mounted over itself read-only; writable again on exit."""
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def full(line: str) -> bool:
    """A line about a full disk: an export's ENOSPC, or the state store's SQLITE_FULL, whichever
    write meets it first."""
    return "No space left on device" in line or "database or disk is full" in line


def warnings_about(lines: list[str], text: str) -> list[str]:
    return [line for line in lines if text in line and "kept pending" in line]


async def test_a_full_disk_keeps_an_admin_cp_save_pending_and_lands_it_when_space_returns(
    board: Database, board_spec: Board, tmp_path: Path
) -> None:
    title = board_spec.master_title(OWN)
    with small_disk(tmp_path / "disk") as disk:
        root = disk / "root"
        async with running_service(board, root, poll_interval=0.1) as svc:
            with filled(disk):
                mark = svc.log.mark()
                await set_template(board, SET_SID, title, "<p>saved while the disk was full</p>", int(time.time()))
                await svc.log.wait_for(lambda line: full(line) and "kept pending" in line, since=mark)
                status = (await control(root, "status"))["status"]
                assert status["disk_up"] is False and status["pending"] >= 1
            await wait_file(root / tpath(title), lambda data: data == b"<p>saved while the disk was full</p>")
            await svc.log.wait_for(lambda line: "works again" in line, since=mark)
            outage = [line for line in svc.log.lines[mark:] if full(line) and "kept pending" in line]
            assert len(outage) == 1  # said once, whichever write met the full disk first
            assert (await control(root, "status"))["status"]["disk_up"] is True


async def test_a_read_only_root_keeps_an_admin_cp_save_pending_and_lands_it_once_writable(
    board: Database, board_spec: Board, root: Path
) -> None:
    title = board_spec.master_title(OWN)
    async with running_service(board, root, poll_interval=0.1) as svc:
        with read_only_view(root):
            mark = svc.log.mark()
            await set_template(board, SET_SID, title, "<p>saved while read-only</p>", int(time.time()))
            await svc.log.wait_for(lambda line: "Read-only file system" in line and "kept pending" in line, since=mark)
        await wait_file(root / tpath(title), lambda data: data == b"<p>saved while read-only</p>")
        await svc.log.wait_for(lambda line: "works again" in line, since=mark)
        assert len(warnings_about(svc.log.lines[mark:], "Read-only file system")) == 1


async def test_an_edit_the_full_state_store_cannot_record_waits_and_then_lands(
    board: Database, board_spec: Board, root: Path
) -> None:
    """The reported crash: the disk full, one edit, and the state store's write failed with
    sqlite3's "database or disk is full". The state folder is a small disk of its own here, so
    that the edit itself can still be saved."""
    title = board_spec.master_title(OWN)
    state = root / ".mybb-sync"
    state.mkdir(mode=0o700)
    _mount("-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(state))
    try:
        async with running_service(board, root, poll_interval=0.1) as svc:
            with filled(state):
                mark = svc.log.mark()
                (root / tpath(title)).write_text("<p>edited while the disk was full</p>")
                await svc.log.wait_for(
                    lambda line: "cannot write the state store" in line and "kept pending" in line, since=mark
                )
                assert (await shown(board, title)).template != "<p>edited while the disk was full</p>"
                assert (await control(root, "status"))["status"]["disk_up"] is False
            await svc.imported([tpath(title)], since=mark)
            assert (await shown(board, title)).template == "<p>edited while the disk was full</p>"
            await svc.log.wait_for(lambda line: "works again" in line, since=mark)
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


async def test_a_revert_waits_for_the_state_store_and_is_no_conflict_afterwards(
    board: Database, board_spec: Board, root: Path
) -> None:
    """Found by the soak: a copy reverted while the state store was full kept its file's old
    state, and the next look took the service's own revert for an Admin CP edit made while the
    file was gone (a conflict). Its state is forgotten before the revert now: the revert waits."""
    title = board_spec.master_title(OWN)
    state = root / ".mybb-sync"
    state.mkdir(mode=0o700)
    _mount("-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(state))
    try:
        async with running_service(board, root, on_delete="revert", delete_grace=0.0) as svc:
            [master] = await template(board, -2, title)
            with filled(state):
                mark = svc.log.mark()
                (root / tpath(title)).unlink()
                await svc.log.wait_for(
                    lambda line: "cannot write the state store" in line and "kept pending" in line, since=mark
                )
                assert len(await template(board, SET_SID, title)) == 1  # not reverted while it could not be recorded
            await svc.log.wait_for(lambda line: line.startswith(f"reverted {title!r} in set {SET_SID}"), since=mark)
            await wait_file(root / tpath(title), lambda data: data == master.template.encode())
            await svc.barrier()
            assert [p for p in offline_status(root)["problems"] if p["path"] == tpath(title)] == []  # no conflict
            assert await template(board, SET_SID, title) == []
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


async def test_export_into_a_full_disk_exits_1_with_one_line_and_a_json_error(board: Database, tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", size="256k") as disk:
        result = await cli(
            "export", "--json", "--db", db_url(board), "--root", str(disk / "root"), cwd=tmp_path, check=False
        )
    stderr = result.stderr.decode()
    assert result.returncode == 1
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if "error" in line.lower()][:1], stderr
    json.loads(result.stdout)  # one JSON document, whichever way it failed
    assert not any(name.endswith(".tmp") for _, _, files in os.walk(tmp_path) for name in files)
