"""The control socket: ``<root>/.mybb-sync/control.sock`` (mode 0600), one JSON line each way.

A running service answers the same operations its :class:`ServiceHandle`
offers; the CLI's ``status``, ``pause``, ``resume``, ``rescan`` and
``resolve`` talk to it, and fall back to working offline when no service
listens. The client talks only to a socket of its own user, served by a
process of its own user (or root): another user's answers are never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from .errors import MybbSyncError
from .layout import STATE_DIR
from .statedir import lstat_of, not_yours, permission_error, socket_folder, state_dir, user_name, you


class Op(StrEnum):
    """The requests a running service answers on its socket (a :class:`ServiceHandle`'s, and resolve)."""

    STATUS = "status"
    PAUSE = "pause"
    RESUME = "resume"
    RESCAN = "rescan"
    RESOLVE = "resolve"
    ONCE = "once"  # push, pull or sync (export is pull), dry or not: the report
    DIFF = "diff"  # the unified diff of files that differ from the database
    OUTDATED = "outdated"  # set copies older than their master template


log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024
MAX_REPLY = 512 * 1024 * 1024  # a report lists every path a pass touched: 100,000 files and more
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, less the final NUL
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def socket_path(root: Path, *, create: bool = False) -> Path:
    """``<root>/.mybb-sync/control.sock``, or, when that path is too long for a unix socket,
    ``<digest of the root>.sock`` in our private :func:`~.statedir.socket_folder` (made when
    ``create``). Never a name another user could take first."""
    path = root / STATE_DIR / "control.sock"
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return path
    digest = hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:20]
    path = socket_folder(create=create) / f"{digest}.sock"
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise MybbSyncError(f"{path} is too long for a unix socket: set XDG_RUNTIME_DIR or TMPDIR to a shorter folder")
    return path


async def serve_control(
    root: Path, handler: Handler, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Answer requests until cancelled; the socket file is private to the owner."""
    path = socket_path(root, create=True)
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


async def _read_line(stream: anyio.abc.ByteReceiveStream, limit: int = MAX_REQUEST) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while not chunks or not chunks[-1].endswith(b"\n"):
        chunks.append(await stream.receive())
        size += len(chunks[-1])
        if size > limit:
            raise ValueError("request too large" if limit == MAX_REQUEST else "reply too large")
    return b"".join(chunks)


async def call(root: Path, request: dict[str, Any], timeout: float = 600.0) -> dict[str, Any] | None:
    """Send one request to the service of ``root``; None when no service is listening.

    Refuses (one line) a state folder or socket folder another user could
    have prepared, a socket that is not ours, and a listener that is
    neither us nor root (``SO_PEERCRED``): its answer could be forged.
    """
    if state_dir(root, create=False) is None:
        return None  # never synced here: no service either
    path = socket_path(root)
    st = lstat_of(path)
    if st is None:
        return None
    if st.st_uid != os.geteuid():
        raise MybbSyncError(f"{not_yours(path, st.st_uid)}: refusing to talk to it")
    if not stat.S_ISSOCK(st.st_mode):
        raise MybbSyncError(f"{path} is not a socket: remove it")
    try:
        stream = await anyio.connect_unix(path)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except PermissionError:
        raise permission_error(path, "connect to") from None
    async with stream:
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        pid, uid, _ = _UCRED.unpack(raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        if uid not in (os.geteuid(), 0):
            raise MybbSyncError(
                f"{path} is served by user {user_name(uid)} (pid {pid}), not by you ({you()}): refusing to talk to it"
            )
        await stream.send(json.dumps(request).encode() + b"\n")
        with anyio.fail_after(timeout):
            try:
                return json.loads(await _read_line(stream, MAX_REPLY))
            except anyio.EndOfStream:
                return None
