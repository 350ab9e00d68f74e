"""The single-instance lock of a sync root: one writer (a service or a command) at a time."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

from .statedir import permission_error, state_dir, user_name

log = logging.getLogger(__name__)


class RootLock:
    """An exclusive ``flock`` on the root folder itself: one writer per sync root.

    On the folder, not on a file in ``.mybb-sync``: deleting the state folder
    under a running service (which then stops) frees nothing a second one
    could take. The kernel drops it when the holder dies, so a SIGKILLed run
    never leaves a stale lock behind. A filesystem that cannot lock a folder
    (NFS emulates ``flock`` with byte-range locks) gets ``.mybb-sync/lock``.
    """

    def __init__(self, root: Path) -> None:
        self.path = root
        self._fd: int | None = None

    def acquire(self) -> bool:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except PermissionError:
            raise permission_error(self.path, "create") from None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except PermissionError:
            raise permission_error(self.path, "open") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EBADF, errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            return self._acquire_file(exc)
        self._fd = fd
        return True

    def _acquire_file(self, why: OSError) -> bool:
        directory = state_dir(self.path, create=True)
        assert directory is not None
        log.warning("cannot lock the folder %s (%s): locking %s/lock instead", self.path, why.strerror, directory)
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def holder(self) -> str | None:
        """``pid N of user X``: who holds the lock on the root folder (from /proc/locks), if that can
        be told. Anyone who may read the folder can lock it; this names them."""
        try:
            st = os.stat(self.path)
            key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
            with open("/proc/locks") as locks:
                for line in locks:
                    fields = line.split()
                    if "FLOCK" in fields and "->" not in fields and key in fields:
                        pid = int(fields[fields.index(key) - 1])
                        return f"pid {pid} of user {user_name(os.stat(f'/proc/{pid}').st_uid)}"
        except (OSError, ValueError):
            pass
        return None
