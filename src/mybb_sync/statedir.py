"""The folders no other user may choose or write: ``<root>/.mybb-sync`` and the socket folder.

Everything that uses the state folder (the state store, the service, the
control client) goes through :func:`state_dir`: ``.mybb-sync`` must be a real
folder (not a symlink, which would send the state, and the control socket
outside the root), owned by the user running mybb-sync, and not writable by
others. A root whose control socket path is too long for a unix socket keeps
its socket in :func:`socket_folder`, a folder of ours that only we may enter.

:class:`StateDirGuard` tells a running service that its state folder was
deleted or moved away: it must stop then, or a second service could start
beside it.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import tempfile
from pathlib import Path

from asyncinotify import Inotify, Mask

from .errors import MybbSyncError
from .layout import STATE_DIR


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def you() -> str:
    return user_name(os.geteuid())


def not_yours(path: Path, owner: int) -> str:
    """``<path> is owned by user X, not by you (Y)``: the start of a refusal."""
    return f"{path} is owned by user {user_name(owner)}, not by you ({you()})"


def lstat_of(path: Path) -> os.stat_result | None:
    """``lstat`` of ``path``; None when nothing is there; one line when we may not look."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise permission_error(path, "look at") from None


def permission_error(path: Path, doing: str) -> MybbSyncError:
    """One line for a permission denied on ``path`` (or a folder on the way to it), naming the
    owner of the nearest of them that can be looked at."""
    for place in (path, *path.parents):
        try:
            owner = user_name(os.stat(place).st_uid)
        except OSError:
            continue
        return MybbSyncError(f"cannot {doing} {path}: permission denied (you are {you()}; {place} belongs to {owner})")
    return MybbSyncError(f"cannot {doing} {path}: permission denied (you are {you()})")


def _check(path: Path, st: os.stat_result, what: str, others: int, fix: str) -> None:
    """Refuse a folder that is a symlink, not a folder, not ours, or has any of the mode bits ``others``
    (0o002: writable by others; 0o077: open to anyone but us)."""
    if stat.S_ISLNK(st.st_mode):
        raise MybbSyncError(f"{path} is a symlink: {what} must be a real folder; remove the link")
    if not stat.S_ISDIR(st.st_mode):
        raise MybbSyncError(f"{path} is not a folder: {what} must be one; move it away")
    if st.st_uid != os.geteuid():
        owner = user_name(st.st_uid)
        raise MybbSyncError(
            f"{not_yours(path, st.st_uid)}: run mybb-sync as {owner}, or remove it if {owner} did not make it for you"
        )
    if st.st_mode & others:
        mode = stat.S_IMODE(st.st_mode)
        how = "writable by other users" if st.st_mode & others & 0o222 else "open to other users"
        raise MybbSyncError(f"{path} is {how} (mode {mode:o}): {fix}")


def state_dir(root: Path, *, create: bool) -> Path | None:
    """``<root>/.mybb-sync``, checked (see the module's docstring), made with mode 0700 when
    ``create`` (and the root with it); None when it does not exist and ``create`` is false."""
    path = root / STATE_DIR
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except PermissionError:
            raise permission_error(path, "create") from None
    try:
        st = lstat_of(path)
    except NotADirectoryError:
        raise MybbSyncError(f"{root} is not a folder") from None
    if st is None:
        return None
    _check(path, st, "the state folder", 0o002, f"chmod o-w {path}")
    return path


def identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path`` itself, None when it is gone."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _private(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def socket_folder(*, create: bool) -> Path:
    """The folder of the control sockets of roots too deep for a unix socket address:
    ``$XDG_RUNTIME_DIR/mybb-sync`` when that runtime folder is ours and private, else
    ``<temp dir>/mybb-sync-<uid>``; made with mode 0700 when ``create``, and checked to be
    ours, a real folder, and closed to others (if it exists)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _private(Path(runtime)):
        path = Path(runtime) / "mybb-sync"
    else:
        path = Path(tempfile.gettempdir()) / f"mybb-sync-{os.geteuid()}"
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except PermissionError:
            raise permission_error(path, "create") from None
    st = lstat_of(path)
    if st is None:
        return path  # nothing listens in it
    _check(path, st, "the folder of control sockets", 0o077,
           f"chmod 700 {path}, or set XDG_RUNTIME_DIR to a folder of yours with mode 0700")  # fmt: skip
    return path


_GONE = int(Mask.DELETE | Mask.MOVED_FROM)


class StateDirGuard:
    """Notices ``<root>/.mybb-sync`` going away (deleted, or moved anywhere) while a service runs.

    Its own inotify instance watches the root for deletes and moves away
    (the few entries at the top of the root: its queue stays short, and the
    watcher's overflows cannot hide the event). Made before the state folder
    is checked, so nothing in between is missed; if its queue overflows
    anyway, the folder's identity is compared with the one armed.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / STATE_DIR
        self._inotify = Inotify()
        try:
            self._inotify.add_watch(root, Mask.DELETE | Mask.MOVED_FROM | Mask.ONLYDIR)
        except OSError as exc:
            self._inotify.close()
            if exc.errno == errno.ENOSPC:
                raise MybbSyncError(f"out of inotify watches or instances: cannot watch {root}") from None
            raise
        self._identity: tuple[int, int] | None = None

    def arm(self) -> None:
        """Remember which folder is the state folder (call once the state store opened it)."""
        self._identity = identity(self.path)

    async def wait(self) -> MybbSyncError:
        """Return, as the error to stop with, once the state folder is gone."""
        while True:
            event = await self._inotify.get()
            mask = int(event.mask)
            if mask & int(Mask.Q_OVERFLOW):
                if identity(self.path) != self._identity:
                    return MybbSyncError(f"the state folder {self.path} was removed: stopping")
            elif event.name is not None and event.name.name == STATE_DIR and mask & _GONE:
                how = "moved away" if mask & int(Mask.MOVED_FROM) else "removed"
                return MybbSyncError(f"the state folder {self.path} was {how}: stopping")

    def close(self) -> None:
        self._inotify.close()
