"""The sync root and symlink-safe access to the files below it.

:class:`Root` is the sync root; :class:`Dirs` opens the folders of one batch
below it, and every read, stat, removal and write (:mod:`.atomic`) goes
through one. Every path is opened component by component from the root with
``O_NOFOLLOW``: a symlink anywhere below the root is never followed, so no
read or write can land outside it. A file with more than one hard link is
never read either (the other link may be anywhere); a write replaces its
directory entry, so it never reaches the other link.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .filesystems import remote_filesystem
from .layout import STATE_DIR
from .modes import DIR_MODE, fix_dir_mode
from .state import FINE_RACY_NS, RACY_NS, FileStat

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def stat_of(st: os.stat_result) -> FileStat:
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino)


def split_path(path: str) -> tuple[str, str]:
    """``path`` relative to the root as (its folder, "" for the root; its name)."""
    directory, _, name = path.rpartition("/")
    return directory, name


class Root:
    """The sync root, opened once; every access below it goes through here."""

    def __init__(self, path: Path, temp_suffix: str = ".tmp", *, backdate: bool = True) -> None:
        self.path = path
        self.temp_suffix = temp_suffix
        # Files written here get an mtime one racy window before their write (atomic.py), so that
        # their recorded stat is trusted at once. Not where others read the mtimes: MyBB serves
        # a theme's cached stylesheet only if its mtime is not older than the row (ForumCache).
        self.backdate = backdate
        self._temp_re = re.compile(r"^\..*\.[0-9a-f]{8}" + re.escape(temp_suffix) + "$", re.DOTALL)

    def open_root(self) -> int:
        self.path.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def is_temp(self, name: str) -> bool:
        return bool(self._temp_re.match(name))

    def temp_name(self, name: str, token: int | None = None) -> str:
        """``.<name>.<8 hex digits><suffix>``: random digits, or those of ``token`` (a batch counts
        up from one random number; ``O_EXCL`` refuses a name taken all the same)."""
        stem = name.encode("utf-8")[:120].decode("utf-8", "ignore")
        tag = secrets.token_hex(4) if token is None else f"{token & 0xFFFFFFFF:08x}"
        return f".{stem}.{tag}{self.temp_suffix}"

    @functools.cached_property
    def racy_ns(self) -> int:
        """How recent an mtime must be, against the moment its stat was taken, to be distrusted.

        A file rewritten within one timestamp tick of our stat can keep its
        size and mtime. Local filesystems with sub-second timestamps tick at
        the kernel's coarse clock (at most 10 ms); others (1 s or 2 s
        timestamps, or a server's clock: NFS, SMB, FUSE) get two seconds.
        """
        if remote_filesystem(self.path) is not None:
            return RACY_NS
        dirs = Dirs(self, create=False)
        temp = self.temp_name("timestamp-probe")
        try:
            fd = dirs.fd(STATE_DIR)  # our own folder (the watcher ignores it); it exists once a State is open
            probe = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
            mtime_ns = os.fstat(probe).st_mtime_ns
            os.close(probe)
            os.unlink(temp, dir_fd=fd)
        except OSError:
            return RACY_NS
        finally:
            dirs.close()
        return FINE_RACY_NS if mtime_ns % 1_000_000_000 else RACY_NS


class Dirs:
    """Directory fds for one batch, opened without following symlinks.

    With ``create``, a missing folder is made (mode :data:`.modes.DIR_MODE`).
    """

    def __init__(self, root: Root, create: bool) -> None:
        self._root_fd = root.open_root()
        self._fds: dict[str, int] = {"": self._root_fd}
        self._create = create
        self.created_in: set[str] = set()  # dirs in which we made a new subdirectory

    def fd(self, directory: str, make: bool = True) -> int:
        """``make=False``: a missing folder is not made, even with ``create``."""
        if directory in self._fds:
            return self._fds[directory]
        parent, _, name = directory.rpartition("/")
        parent_fd = self.fd(parent, make)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not (self._create and make):
                raise
            made = False
            try:
                os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
                self.created_in.add(parent)
                made = True
            except FileExistsError:
                pass
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
            if made:
                fix_dir_mode(fd)
        self._fds[directory] = fd
        return fd

    def lstat(self, path: str) -> os.stat_result | None:
        """lstat of ``path`` relative to the root; None if it does not exist."""
        directory, name = split_path(path)
        try:
            return os.stat(name, dir_fd=self.fd(directory), follow_symlinks=False)
        except FileNotFoundError:
            return None

    def fsync(self, directories: Iterable[str]) -> None:
        for d in set(directories) | self.created_in:
            os.fsync(self.fd(d))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _regular(st: os.stat_result | None) -> FileStat | None:
    """The stat of a regular file; None for no file or anything else."""
    return stat_of(st) if st is not None and stat.S_ISREG(st.st_mode) else None


@dataclass(frozen=True, slots=True)
class FileRead:
    """A file as read: its bytes and its stat, or None if it does not exist."""

    path: str
    data: bytes | None
    stat: FileStat | None
    error: str | None = None


def read_files(root: Root, paths: Sequence[str], max_bytes: int) -> list[FileRead]:
    """Read files without following symlinks (blocking; run in a worker thread).

    A file larger than ``max_bytes``, or with more than one hard link, is not
    read: its error says so.
    """
    dirs = Dirs(root, create=False)
    out: list[FileRead] = []
    try:
        for path in paths:
            directory, name = split_path(path)
            try:
                fd = os.open(
                    name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dirs.fd(directory)
                )
            except FileNotFoundError:
                out.append(FileRead(path, None, None))
                continue
            except NotADirectoryError:
                out.append(FileRead(path, None, None, "a parent folder is not a directory"))
                continue
            except OSError as exc:
                reason = "is a symlink (never followed)" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
                out.append(FileRead(path, None, None, reason))
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    out.append(FileRead(path, None, stat_of(st), "not a regular file"))
                    continue
                if st.st_nlink > 1:
                    why = f"has {st.st_nlink} hard links (never read: a hard link can point outside the sync root)"
                    out.append(FileRead(path, None, stat_of(st), why))
                    continue
                if st.st_size > max_bytes:
                    out.append(
                        FileRead(path, None, stat_of(st), f"{st.st_size} bytes is over the {max_bytes}-byte limit")
                    )
                    continue
                chunks = []
                while chunk := os.read(fd, max(65536, st.st_size + 1)):
                    chunks.append(chunk)
                data = b"".join(chunks)
                if len(data) > max_bytes:
                    out.append(FileRead(path, None, stat_of(st), f"over the {max_bytes}-byte limit"))
                    continue
                out.append(FileRead(path, data, stat_of(os.fstat(fd))))
            finally:
                os.close(fd)
    finally:
        dirs.close()
    return out


def stat_files(root: Root, paths: Sequence[str]) -> dict[str, FileStat | None]:
    """lstat of each path (None: absent or not a regular file), symlink-safe."""
    dirs = Dirs(root, create=False)
    out: dict[str, FileStat | None] = {}
    try:
        for path in paths:
            try:
                out[path] = _regular(dirs.lstat(path))
            except OSError:  # a parent folder missing, not a folder, or unreadable
                out[path] = None
    finally:
        dirs.close()
    return out


def missing(root: Root, paths: Sequence[str]) -> set[str]:
    """The paths with nothing there at all (no file, folder or symlink), symlink-safe."""
    dirs = Dirs(root, create=False)
    try:
        out = set()
        for path in paths:
            try:
                if dirs.lstat(path) is None:
                    out.add(path)
            except OSError:  # a parent that is not a folder, or unreadable: something is there
                continue
        return out
    finally:
        dirs.close()


def remove_files(root: Root, removals: Sequence[tuple[str, FileStat]]) -> list[str]:
    """Unlink files that still have the expected stat; returns the paths removed."""
    dirs = Dirs(root, create=False)
    removed: list[str] = []
    try:
        for path, expect in removals:
            directory, name = split_path(path)
            try:
                now = _regular(dirs.lstat(path))
                if now is not None and now == expect:
                    os.unlink(name, dir_fd=dirs.fd(directory))
                    removed.append(path)
            except OSError:
                continue
        dirs.fsync(split_path(p)[0] for p in removed)
    finally:
        dirs.close()
    return removed


COOKIE_PREFIX = ".mybb-sync-cookie-"  # files the watcher makes and removes in the root (Watcher.caught_up)


def sweep_temps(root: Root) -> int:
    """Remove temp files (and the watcher's cookies) a crashed run left behind; returns how many."""
    removed = 0
    stack = [root.path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name != ".mybb-sync":
                    stack.append(Path(entry.path))
            elif (root.is_temp(entry.name) or entry.name.startswith(COOKIE_PREFIX)) and entry.is_file(
                follow_symlinks=False
            ):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    if removed:
        log.info("removed %d temp file(s) left by an interrupted run", removed)
    return removed
