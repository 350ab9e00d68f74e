"""Atomic, durable file writes and symlink-safe reads inside the sync root.

Recipe per file: create ``.<name>.<random><temp suffix>`` beside the target
(``O_CREAT|O_EXCL|O_NOFOLLOW``), write every byte, make it durable, rename
over the target, then fsync each touched directory once. A reader therefore
sees the old file or the new one, never a partial one, even across a crash.

Durability is made per batch: a small batch fsyncs each temp file; a large
one calls ``syncfs`` once after all its temps are written, which flushes the
same data before any rename but costs one flush instead of one per file
(fsync here does not parallelise: ~2k files/s however many threads).

Every path is opened component by component from the root with
``O_NOFOLLOW``: a symlink anywhere below the root is never followed, so no
read or write can land outside it. A file with more than one hard link is
never read either (the other link may be anywhere); a write replaces its
directory entry, so it never reaches the other link.

Modes are those of any program run under the process umask (read once, at
import): a new file is 0o666 and a new folder 0o777 less the umask. A file
replaced keeps the mode of the file it replaces and, where we may give it
(our own group, or any as root), its group; in a setgid folder a new file
or folder takes the folder's group from the kernel. Each is set on the
temp's fd before its rename: the file never appears with other bits.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from .layout import STATE_DIR
from .state import FINE_RACY_NS, RACY_NS, FileStat

log = logging.getLogger(__name__)

SYNCFS_THRESHOLD = 32  # files in a batch from which one syncfs beats an fsync per file
CHUNK = 64  # fewest files worth a worker thread of their own
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_syncfs: Callable[[int], int] | None
try:
    _syncfs = ctypes.CDLL(None, use_errno=True).syncfs
except (OSError, AttributeError):  # not Linux/glibc: fall back to fsync per file
    _syncfs = None


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


class Absent:
    """Marker: the target must not exist when we rename over it."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = Absent()
Expect = FileStat | Absent | None  # None: overwrite whatever is there (--force)


@dataclass(frozen=True, slots=True)
class Write:
    """One file to write: ``path`` relative to the root, and what must be there now."""

    path: str
    data: bytes
    expect: Expect


@dataclass(frozen=True, slots=True)
class Written:
    path: str
    stat: FileStat
    seen_ns: int  # the clock just before ``stat`` was taken


@dataclass(frozen=True, slots=True)
class NotWritten:
    path: str
    reason: str
    changed: bool  # True: the target changed under us (a conflict, not an error)
    errno: int | None = None  # the error that stopped the write (a full or read-only disk), if any


Result = Written | NotWritten
Staged = list["tuple[Write, str, FileStat, Attrs] | NotWritten"]


def stat_of(st: os.stat_result) -> FileStat:
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino)


class Root:
    """The sync root, opened once; every access below it goes through here."""

    def __init__(self, path: Path, temp_suffix: str = ".tmp") -> None:
        self.path = path
        self.temp_suffix = temp_suffix
        self._temp_re = re.compile(r"^\..*\.[0-9a-f]{8}" + re.escape(temp_suffix) + "$", re.DOTALL)

    def open_root(self) -> int:
        self.path.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def is_temp(self, name: str) -> bool:
        return bool(self._temp_re.match(name))

    def temp_name(self, name: str) -> str:
        stem = name.encode("utf-8")[:120].decode("utf-8", "ignore")
        return f".{stem}.{secrets.token_hex(4)}{self.temp_suffix}"

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
        dirs = _Dirs(self, create=False)
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


class _Dirs:
    """Directory fds for one batch, opened without following symlinks."""

    def __init__(self, root: Root, create: bool) -> None:
        self._root_fd = root.open_root()
        self._fds: dict[str, int] = {"": self._root_fd}
        self._create = create
        self.created_in: set[str] = set()  # dirs in which we made a new subdirectory

    def fd(self, directory: str) -> int:
        if directory in self._fds:
            return self._fds[directory]
        parent, _, name = directory.rpartition("/")
        parent_fd = self.fd(parent)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not self._create:
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
                _fix_dir_mode(fd)
        self._fds[directory] = fd
        return fd

    def fsync(self, directories: Iterable[str]) -> None:
        for d in set(directories) | self.created_in:
            os.fsync(self.fd(d))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _fix_dir_mode(fd: int) -> None:
    """A folder we made gets DIR_MODE even if another thread had the umask changed meanwhile
    (the kernel's setgid bit is kept: it is only touched when the bits are wrong)."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o777 != DIR_MODE:
        os.fchmod(fd, (mode & ~0o777) | DIR_MODE)


def _split(path: str) -> tuple[str, str]:
    directory, _, name = path.rpartition("/")
    return directory, name


def _attrs_of(st: os.stat_result | None) -> Attrs:
    """What a temp replacing a file with this lstat gets: its permission bits and group;
    for no regular file there, the umask's mode and the kernel's group."""
    if st is None or not stat.S_ISREG(st.st_mode):
        return FILE_MODE, None
    return stat.S_IMODE(st.st_mode) & 0o777, st.st_gid


def _lstat(dirs: _Dirs, path: str) -> os.stat_result | None:
    directory, name = _split(path)
    try:
        return os.stat(name, dir_fd=dirs.fd(directory), follow_symlinks=False)
    except FileNotFoundError:
        return None


def _apply(fd: int, attrs: Attrs) -> None:
    """Give the temp at ``fd`` these attributes (the group is left as the kernel gave it
    where we may not give it: a group we are not in, unless we are root)."""
    mode, gid = attrs
    if gid is not None and os.fstat(fd).st_gid != gid:
        try:
            os.fchown(fd, -1, gid)
        except PermissionError:
            pass
    os.fchmod(fd, mode)  # after the chown, which may clear bits


def _write_temps(root: Root, dirs: _Dirs, writes: Sequence[Write], fsync_each: bool) -> Staged:
    out: Staged = []
    for w in writes:
        directory, name = _split(w.path)
        temp = root.temp_name(name)
        try:
            dfd = dirs.fd(directory)
            attrs = _attrs_of(_lstat(dirs, w.path))
            fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                _apply(fd, attrs)
                view = memoryview(w.data)
                while view:
                    view = view[os.write(fd, view) :]
                if fsync_each:
                    os.fsync(fd)
                st = stat_of(os.fstat(fd))
            finally:
                os.close(fd)
            out.append((w, temp, st, attrs))
        except OSError as exc:
            _unlink_quietly(dirs, directory, temp)
            out.append(NotWritten(w.path, f"cannot write: {exc.strerror or exc}", changed=False, errno=exc.errno))
    return out


def _unlink_quietly(dirs: _Dirs, directory: str, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dirs.fd(directory))
    except OSError:
        pass


def _current(dirs: _Dirs, path: str) -> FileStat | Absent | str:
    """The target's stat now, ABSENT, or a string saying why it is not a plain file."""
    return _judge_target(_lstat(dirs, path))


def _judge_target(st: os.stat_result | None) -> FileStat | Absent | str:
    if st is None:
        return ABSENT
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return stat_of(st)


def _reapply(dirs: _Dirs, directory: str, temp: str, st: FileStat, attrs: Attrs) -> None:
    """The target's mode or group changed since its temp was made: give the temp the new ones."""
    fd = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirs.fd(directory))
    try:
        if os.fstat(fd).st_ino != st.ino:
            raise OSError(errno.ESTALE, "the temp file was replaced")
        _apply(fd, attrs)
        os.fsync(fd)
    finally:
        os.close(fd)


def _rename_all(dirs: _Dirs, staged: Sequence[tuple[Write, str, FileStat, Attrs]]) -> list[Result]:
    """Phase 2: each temp renamed over its target, unless the target changed meanwhile.

    A written file's stat counts as taken just before its rename: until then
    nobody else writes it (it is our temp), so a later change gets a later
    mtime once the stat is older than the racy window. That is what lets the
    next pass trust the stat of a file it wrote without reading it.
    """
    out: list[Result] = []
    for w, temp, st, attrs in staged:
        directory, name = _split(w.path)
        target = _lstat(dirs, w.path)
        now = _judge_target(target)
        if w.expect is not None and now != w.expect:
            _unlink_quietly(dirs, directory, temp)
            out.append(NotWritten(w.path, "changed on disk while being written", changed=True))
            continue
        try:
            if isinstance(now, FileStat) and _attrs_of(target) != attrs:
                _reapply(dirs, directory, temp, st, _attrs_of(target))
            dfd = dirs.fd(directory)
            seen_ns = time.time_ns()
            os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as exc:
            _unlink_quietly(dirs, directory, temp)
            out.append(NotWritten(w.path, f"cannot rename: {exc.strerror or exc}", changed=False, errno=exc.errno))
            continue
        out.append(Written(w.path, st, seen_ns))
    return out


def _stage(root: Root, writes: Sequence[Write], fsync_each: bool) -> Staged:
    """Phase 1: every temp file written (and fsynced, unless a syncfs follows)."""
    dirs = _Dirs(root, create=True)
    try:
        return _write_temps(root, dirs, writes, fsync_each)
    finally:
        dirs.close()


def _flush(root: Root) -> None:
    """Phase 2 of a bulk batch: one syncfs makes every staged temp durable."""
    fd = root.open_root()
    try:
        assert _syncfs is not None  # only bulk batches flush, and only where syncfs exists
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def _commit(root: Root, staged: Staged, fsync_dirs: bool) -> list[Result]:
    """Phase 3: rename each temp over its target, if the target is as expected.

    With ``fsync_dirs`` each touched directory is fsynced; a bulk batch
    instead ends with one more syncfs, which commits every rename at once.
    """
    dirs = _Dirs(root, create=False)
    try:
        failed: list[Result] = [s for s in staged if isinstance(s, NotWritten)]
        results = failed + _rename_all(dirs, [s for s in staged if not isinstance(s, NotWritten)])
        if fsync_dirs:
            dirs.fsync(_split(r.path)[0] for r in results if isinstance(r, Written))
        return results
    finally:
        dirs.close()


def _unflushed(path: str, exc: OSError) -> NotWritten:
    return NotWritten(path, f"cannot flush to disk: {exc.strerror or exc}", changed=False, errno=exc.errno)


def _abandon(root: Root, staged: Staged, exc: OSError) -> list[Result]:
    """A flush failed: remove the temps, keep every old file, report each write."""
    dirs = _Dirs(root, create=False)
    try:
        out: list[Result] = []
        for s in staged:
            if isinstance(s, NotWritten):
                out.append(s)
                continue
            write, temp = s[0], s[1]
            _unlink_quietly(dirs, _split(write.path)[0], temp)
            out.append(_unflushed(write.path, exc))
        return out
    finally:
        dirs.close()


def _bulk(writes: Sequence[Write]) -> bool:
    return len(writes) >= SYNCFS_THRESHOLD and _syncfs is not None


def write_batch(root: Root, writes: Sequence[Write]) -> list[Result]:
    """Write a batch atomically and durably (blocking; run it in a worker thread)."""
    if not writes:
        return []
    bulk = _bulk(writes)
    staged = _stage(root, writes, fsync_each=not bulk)
    if bulk:
        try:
            _flush(root)
        except OSError as exc:
            return _abandon(root, staged, exc)
    results = _commit(root, staged, fsync_dirs=not bulk)
    return _settle(root, results) if bulk else results


def _settle(root: Root, results: list[Result]) -> list[Result]:
    """The second syncfs of a bulk batch; if it fails, no write counts as done (none is recorded)."""
    try:
        _flush(root)
    except OSError as exc:
        return [_unflushed(r.path, exc) if isinstance(r, Written) else r for r in results]
    return results


async def write_files(root: Root, writes: Sequence[Write], limiter: anyio.CapacityLimiter) -> list[Result]:
    """Write many files durably, with parallel worker threads for each phase.

    Temps are written by several threads at once; a bulk batch then costs a
    single ``syncfs`` before the renames (also spread over threads) and one
    after them. A small batch fsyncs each temp and each directory instead.
    """
    if not writes:
        return []
    # Shielded: a batch cancelled between its phases would leave its temps behind.
    with anyio.CancelScope(shield=True):
        results = await _write_files(root, writes, limiter)
    return results


async def _write_files(root: Root, writes: Sequence[Write], limiter: anyio.CapacityLimiter) -> list[Result]:
    parts = max(1, min(int(limiter.total_tokens), -(-len(writes) // CHUNK)))
    size = -(-len(writes) // parts)
    chunks = [writes[i : i + size] for i in range(0, len(writes), size)]
    bulk = _bulk(writes)
    staged: list[Staged] = [[] for _ in chunks]
    results: list[Result] = []

    async def stage(i: int) -> None:
        staged[i] = await anyio.to_thread.run_sync(_stage, root, chunks[i], not bulk, limiter=limiter)

    async def commit(i: int) -> None:
        results.extend(await anyio.to_thread.run_sync(_commit, root, staged[i], not bulk, limiter=limiter))

    async with anyio.create_task_group() as tg:
        for i in range(len(chunks)):
            tg.start_soon(stage, i)
    if bulk:
        try:
            await anyio.to_thread.run_sync(_flush, root, limiter=limiter)
        except OSError as exc:
            return [r for part in staged for r in await anyio.to_thread.run_sync(_abandon, root, part, exc)]
    async with anyio.create_task_group() as tg:
        for i in range(len(chunks)):
            tg.start_soon(commit, i)
    if bulk:
        return await anyio.to_thread.run_sync(_settle, root, results, limiter=limiter)
    return results


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
    dirs = _Dirs(root, create=False)
    out: list[FileRead] = []
    try:
        for path in paths:
            directory, name = _split(path)
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
    dirs = _Dirs(root, create=False)
    out: dict[str, FileStat | None] = {}
    try:
        for path in paths:
            try:
                now = _current(dirs, path)
            except (FileNotFoundError, NotADirectoryError):
                now = ABSENT
            except OSError:
                now = "unreadable"
            out[path] = now if isinstance(now, FileStat) else None
    finally:
        dirs.close()
    return out


def remove_files(root: Root, removals: Sequence[tuple[str, FileStat]]) -> list[str]:
    """Unlink files that still have the expected stat; returns the paths removed."""
    dirs = _Dirs(root, create=False)
    removed: list[str] = []
    try:
        for path, expect in removals:
            directory, name = _split(path)
            try:
                if _current(dirs, path) == expect:
                    os.unlink(name, dir_fd=dirs.fd(directory))
                    removed.append(path)
            except OSError:
                continue
        dirs.fsync(_split(p)[0] for p in removed)
    finally:
        dirs.close()
    return removed


def sweep_temps(root: Root) -> int:
    """Remove temp files a crashed run left behind; returns how many."""
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
            elif root.is_temp(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    if removed:
        log.info("removed %d temp file(s) left by an interrupted run", removed)
    return removed


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
