"""The control socket: ``<root>/.mybb-sync/control.sock`` (mode 0600), one JSON line each way.

A running service answers the same operations its :class:`ServiceHandle`
offers; the CLI's ``status``, ``pause``, ``resume``, ``rescan`` and
``resolve`` talk to it, and fall back to working offline when no service
listens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from .layout import STATE_DIR

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, less the final NUL


def socket_path(root: Path) -> Path:
    """``<root>/.mybb-sync/control.sock``, or, when that path is too long for a unix
    socket, a name derived from the root in ``$XDG_RUNTIME_DIR`` (or the temp dir)."""
    path = root / STATE_DIR / "control.sock"
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return path
    digest = hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:20]
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"mybb-sync-{digest}.sock"


async def serve_control(root: Path, handler: Handler, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Answer requests until cancelled; the socket file is private to the owner."""
    path = socket_path(root)
    path.unlink(missing_ok=True)
    old = os.umask(0o177)
    try:
        listener = await anyio.create_unix_listener(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)

    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                request = json.loads(await _read_line(stream))
                if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                    raise ValueError("a request is a JSON object with an 'op'")
                reply = await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure is answered, never raised into the service
                reply = {"ok": False, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
            await stream.send(json.dumps(reply).encode() + b"\n")

    try:
        async with listener:
            task_status.started()
            await listener.serve(answer)
    finally:
        path.unlink(missing_ok=True)


async def _read_line(stream: anyio.abc.ByteReceiveStream) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive()
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("request too large")
    return data


async def call(root: Path, request: dict[str, Any], timeout: float = 600.0) -> dict[str, Any] | None:
    """Send one request to the service of ``root``; None when no service is listening."""
    path = socket_path(root)
    try:
        stream = await anyio.connect_unix(path)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    async with stream:
        await stream.send(json.dumps(request).encode() + b"\n")
        with anyio.fail_after(timeout):
            try:
                return json.loads(await _read_line(stream))
            except anyio.EndOfStream:
                return None
