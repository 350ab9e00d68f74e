"""systemd's notify protocol for a ``Type=notify`` unit: readiness, status, watchdog.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

import anyio

log = logging.getLogger(__name__)

STATUS_PERIOD = 5.0
"""Seconds between ``STATUS=`` updates when no watchdog asks for more often."""


class Notifier:
    """One unit's link to systemd, read from the environment systemd gives the service."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_pid = env.get("WATCHDOG_PID")
        usec = env.get("WATCHDOG_USEC", "")
        mine = watchdog_pid is None or watchdog_pid == str(os.getpid())
        self.watchdog = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, message: str) -> None:
        if not self.address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(message.encode(), self.address)
            except OSError as exc:
                log.debug("sd_notify failed: %s", exc)

    @property
    def period(self) -> float:
        """How often :meth:`keep_alive` speaks: half the watchdog's timeout, as systemd advises."""
        return min(STATUS_PERIOD, self.watchdog / 2) if self.watchdog else STATUS_PERIOD

    async def keep_alive(self, status: Callable[[], Awaitable[str]], ready: anyio.Event) -> None:
        """Until cancelled: ``WATCHDOG=1`` pings, ``STATUS=`` when it changes, and, until
        ``ready``, ``EXTEND_TIMEOUT_USEC`` so that a long start-up export is not taken for a hang."""
        if not self.enabled:
            return
        shown = ""
        while True:
            lines = []
            if not ready.is_set():
                lines.append(f"EXTEND_TIMEOUT_USEC={int(self.period * 3 * 1e6)}")
            if self.watchdog:
                lines.append("WATCHDOG=1")
            line = await status()
            if line != shown:
                lines.append(f"STATUS={line}")
                shown = line
            self.send("\n".join(lines))
            await anyio.sleep(self.period)  # a timer, not synchronisation


def status_line(
    *, starting: bool, files: int, pending: int, conflicts: int, database_up: bool, paused: bool, disk_up: bool = True
) -> str:
    """The one line ``systemctl status`` shows for the service."""
    head = "starting: first reconcile" if starting else f"watching {files} files"
    parts = [head]
    if not database_up:
        parts.append("database unavailable")
    if not disk_up:
        parts.append("cannot write files")
    if paused:
        parts.append("paused")
    if pending:
        parts.append(f"{pending} pending")
    if conflicts:
        parts.append(f"{conflicts} conflicts")
    return "; ".join(parts)
