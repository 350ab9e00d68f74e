"""The mode and group of each file and folder we write.

Modes are those of any program run under the process umask (read once, at
import): a new file is 0o666 and a new folder 0o777 less the umask. A file
replaced keeps the mode of the file it replaces and, where we may give it
(our own group, or any as root), its group; in a setgid folder a new file
or folder takes the folder's group from the kernel. Each is set on the
temp's fd before its rename: the file never appears with other bits.
"""

from __future__ import annotations

import os
import stat


def read_umask(status: str = "/proc/self/status") -> int:
    """The process umask, read without changing it where the kernel shows it (Linux 4.7+).

    ``os.umask`` can only be read by setting it, and a file another thread
    creates meanwhile gets the stand-in: the fallback is for import time,
    before any worker thread runs.
    """
    try:
        with open(status, "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8) & 0o777
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask & 0o777


UMASK = read_umask()
FILE_MODE = 0o666 & ~UMASK  # a new file's mode (a replaced one keeps its own)
DIR_MODE = 0o777 & ~UMASK  # a new folder's mode (plus the setgid bit the kernel may give it)
Attrs = tuple[int, int | None]  # (permission bits, group or None: as the kernel gave it) of a temp


def fix_dir_mode(fd: int) -> None:
    """A folder we made gets DIR_MODE even if another thread had the umask changed meanwhile
    (the kernel's setgid bit is kept: it is only touched when the bits are wrong)."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o777 != DIR_MODE:
        os.fchmod(fd, (mode & ~0o777) | DIR_MODE)


def attrs_of(st: os.stat_result | None) -> Attrs:
    """What a temp replacing a file with this lstat gets: its permission bits and group;
    for no regular file there, the umask's mode and the kernel's group."""
    if st is None or not stat.S_ISREG(st.st_mode):
        return FILE_MODE, None
    return stat.S_IMODE(st.st_mode) & 0o777, st.st_gid


def apply_attrs(fd: int, attrs: Attrs) -> None:
    """Give the temp at ``fd`` these attributes (the group is left as the kernel gave it
    where we may not give it: a group we are not in, unless we are root)."""
    mode, gid = attrs
    if gid is not None and os.fstat(fd).st_gid != gid:
        try:
            os.fchown(fd, -1, gid)
        except PermissionError:
            pass
    os.fchmod(fd, mode)  # after the chown, which may clear bits
