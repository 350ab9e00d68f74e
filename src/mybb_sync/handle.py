"""What a program running the service holds: its :class:`ServiceHandle` and :class:`Status`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio


@dataclass
class Status:
    """What ``status`` reports about a running service."""

    root: str
    paused: bool = False
    pending: int = 0
    imports: int = 0
    exports: int = 0
    last_import: float | None = None
    last_export: float | None = None
    last_errors: list[str] = field(default_factory=list)
    database_up: bool = True
    disk_up: bool = True  # False while the root or the state store cannot be written
    held_deletions: int = 0  # set-copy files deleted in a mass deletion: reverted once a person confirms

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Running(Protocol):
    """What a handle asks of the service it steers."""

    finished: anyio.Event

    def status(self) -> Status: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    async def request(self, paths: Sequence[str] = (), prefixes: Sequence[str] = ()) -> None: ...


class ServiceHandle:
    """Operations on a running service (the control socket offers the same)."""

    def __init__(self, service: Running, scope: anyio.CancelScope) -> None:
        self._service = service
        self._scope = scope

    def status(self) -> Status:
        return self._service.status()

    def pause(self) -> None:
        self._service.pause()

    def resume(self) -> None:
        self._service.resume()

    async def rescan(self) -> None:
        """Compare the whole root and database again, and wait until that is done."""
        await self._service.request(prefixes=[""])

    async def wait_idle(self) -> None:
        """Wait until everything noticed so far has been handled."""
        await self._service.request()

    def stop(self) -> None:
        """Finish the chunks of files in hand, then stop (the rest waits for the next start-up)."""
        self._scope.cancel()

    async def stopped(self) -> None:
        """Wait until the service has stopped (after :meth:`stop`, or a failure)."""
        await self._service.finished.wait()
