"""systemd's notify protocol: the status line, the watchdog, readiness of a long start-up."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import anyio
import pytest

from mybb_sync.config import Database
from mybb_sync.systemd import Notifier, status_line

from service_helpers import cli_env, cli_service, control

pytestmark = pytest.mark.anyio


def test_the_status_line_says_what_the_service_is_doing() -> None:
    assert (
        status_line(starting=False, files=1016, pending=0, conflicts=0, database_up=True, paused=False)
        == "watching 1016 files"
    )
    assert (
        status_line(starting=False, files=5, pending=3, conflicts=2, database_up=False, paused=True)
        == "watching 5 files; database unavailable; paused; 3 pending; 2 conflicts"
    )
    assert (
        status_line(starting=True, files=0, pending=1, conflicts=0, database_up=True, paused=False)
        == "starting: first reconcile; 1 pending"
    )
    assert (
        status_line(starting=False, files=5, pending=1, conflicts=0, database_up=True, paused=False, disk_up=False)
        == "watching 5 files; cannot write files; 1 pending"
    )


def test_the_watchdog_is_pinged_at_half_its_timeout() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "2000000"})
    assert (notifier.watchdog, notifier.period) == (2.0, 1.0)


def test_a_watchdog_meant_for_another_process_is_ignored() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert notifier.watchdog is None


def test_outside_systemd_nothing_is_sent() -> None:
    assert not Notifier({}).enabled


async def test_keep_alive_extends_the_start_timeout_until_ready_then_pings(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"})
        ready = anyio.Event()

        async def status() -> str:
            return "ready" if ready.is_set() else "starting"

        async def receive() -> list[str]:
            await anyio.wait_readable(sock)
            return sock.recv(4096).decode().split("\n")

        async with anyio.create_task_group() as tg:
            tg.start_soon(notifier.keep_alive, status, ready)
            first = await receive()
            assert first[0].startswith("EXTEND_TIMEOUT_USEC=") and "WATCHDOG=1" in first and "STATUS=starting" in first
            ready.set()
            with anyio.fail_after(5):
                while "STATUS=ready" not in (message := await receive()):
                    pass
            assert not any(line.startswith("EXTEND_TIMEOUT_USEC") for line in message)
            assert (await receive()) == ["WATCHDOG=1"]  # the status is sent only when it changes
            tg.cancel_scope.cancel()


@pytest.mark.backends("mysql", parametrize=False)
async def test_the_service_pings_the_watchdog_and_reports_its_status(
    board: Database, root: Path, tmp_path: Path
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        env = cli_env(NOTIFY_SOCKET=str(path), WATCHDOG_USEC="200000")
        async with cli_service(board, root, tmp_path, env=env):
            await control(root, "status")
            seen: list[str] = []
            with anyio.fail_after(10):
                while not ("READY=1" in seen and seen.count("WATCHDOG=1") >= 3):
                    await anyio.wait_readable(sock)
                    seen += sock.recv(4096).decode().split("\n")
    assert any(line.startswith("STATUS=watching ") and line.endswith(" files") for line in seen)
