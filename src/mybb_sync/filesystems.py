"""Which kind of filesystem the sync root is on."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

# statfs f_type of filesystems whose changes made elsewhere inotify never sees.
REMOTE_FILESYSTEMS = {0x6969: "NFS", 0xFF534D42: "CIFS/SMB", 0xFE534D42: "SMB2", 0x65735546: "FUSE", 0x517B: "SMB"}


def remote_filesystem(path: Path) -> str | None:
    """The name of a network/FUSE filesystem at ``path`` (inotify misses remote changes), else None."""

    class StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]

    buf = StatFs()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return None
    return REMOTE_FILESYSTEMS.get(buf.f_type & 0xFFFFFFFF)
