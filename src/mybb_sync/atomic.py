"""The write protocol: atomic, durable file writes inside the sync root.

Recipe per file: create ``.<name>.<random><temp suffix>`` beside the target
(``O_CREAT|O_EXCL|O_NOFOLLOW``), write every byte, make it durable, rename
over the target, then fsync each touched directory once. A reader therefore
sees the old file or the new one, never a partial one, even across a crash.

Durability is made per batch: a small batch fsyncs each temp file; a large
one calls ``syncfs`` once after all its temps are written, which flushes the
same data before any rename but costs one flush instead of one per file
(fsync here does not parallelise: ~2k files/s however many threads).

Every folder is opened through :class:`.files.Dirs`, so no symlink below the
root is followed; each temp gets the mode and group :mod:`.modes` gives it.

Each temp's mtime is set one racy window (:attr:`.files.Root.racy_ns`) before
the moment it is written (in the sync root; not in the forum's cache folder,
whose mtimes MyBB compares with the rows'). The stat recorded just before its rename is then
trusted at once (:func:`.state.proves_unchanged`): any later write, even within
the same timestamp tick as our rename, gets an mtime after it. Without that, a
file renamed within the window of its write would have to be read back before
the next pass could trust it (a tenth to a quarter of a first export's files).

The decisions are made here; the per-file system calls of a batch (create and
write the temps, rename the new files) run in :mod:`._writes`, a small C
extension that holds no interpreter lock while it works, so that the writer
thread does not queue for the lock once per system call behind the event loop.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.to_thread

from ._writes import create_temps, rename_new
from .files import Dirs, Root, split_path, stat_of
from .modes import Attrs, apply_attrs, attrs_of
from .state import FileStat

SYNCFS_THRESHOLD = 32  # files in a batch from which one syncfs beats an fsync per file
BACKDATE_MARGIN_NS = 1_000_000  # a temp's mtime: this much more than the racy window before its write

_syncfs: Callable[[int], int] | None
_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None
_syncfs = getattr(_libc, "syncfs", None)  # None (not Linux/glibc): fsync per file instead


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


def _write_temps(root: Root, dirs: Dirs, writes: Sequence[Write], fsync_each: bool) -> Staged:
    """Each temp created and written, the batch's system calls in one call without the
    interpreter lock (:mod:`._writes`); a target that must be absent is not looked at here
    (its rename looks: one system call less per file of a first export)."""
    out: Staged = []
    todo: list[tuple[Write, str, Attrs]] = []
    dfds: list[int] = []
    names: list[str] = []
    modes: list[int] = []
    gids: list[int] = []
    first = secrets.randbits(32)  # the batch's temps count up from it: one random draw per batch
    for i, w in enumerate(writes):
        directory, name = split_path(w.path)
        try:
            # A file that must be there is in a folder that is there: never make it (moved away).
            dfd = dirs.fd(directory, make=not isinstance(w.expect, FileStat))
            attrs = attrs_of(None if w.expect is ABSENT else dirs.lstat(w.path))
        except FileNotFoundError:
            out.append(NotWritten(w.path, "its folder is gone", changed=True, errno=errno.ENOENT))
            continue
        except OSError as exc:
            out.append(_unwritten(w.path, exc.errno, exc.strerror or str(exc)))
            continue
        temp = root.temp_name(name, first + i)
        todo.append((w, temp, attrs))
        dfds.append(dfd)
        names.append(temp)
        modes.append(attrs[0])
        gids.append(-1 if attrs[1] is None else attrs[1])
    backdate = root.racy_ns + BACKDATE_MARGIN_NS if root.backdate else 0
    created = create_temps(dfds, names, [w.data for w, _, _ in todo], modes, gids, fsync_each, backdate)
    for (w, temp, attrs), result in zip(todo, created, strict=True):
        if isinstance(result, int):
            out.append(_unwritten(w.path, result, os.strerror(result)))
        else:
            out.append((w, temp, FileStat(*result), attrs))
    return out


def _unwritten(path: str, err: int | None, why: str) -> NotWritten:
    return NotWritten(path, f"cannot write: {why}", changed=False, errno=err)


def _unlink_quietly(dirs: Dirs, directory: str, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dirs.fd(directory))
    except OSError:
        pass


def _judge_target(st: os.stat_result | None) -> FileStat | Absent | str:
    if st is None:
        return ABSENT
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return stat_of(st)


def _reapply(dirs: Dirs, directory: str, temp: str, st: FileStat, attrs: Attrs) -> None:
    """The target's mode or group changed since its temp was made: give the temp the new ones."""
    fd = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirs.fd(directory))
    try:
        if os.fstat(fd).st_ino != st.ino:
            raise OSError(errno.ESTALE, "the temp file was replaced")
        apply_attrs(fd, attrs)
        os.fsync(fd)
    finally:
        os.close(fd)


def _rename_all(dirs: Dirs, staged: Sequence[tuple[Write, str, FileStat, Attrs]]) -> list[Result]:
    """Phase 2: each temp renamed over its target, unless the target changed meanwhile.

    A written file's stat counts as taken just before its rename: until then
    nobody else writes it (it is our temp), and its mtime is a racy window
    older than that, so any later change gets a later mtime. That is what lets
    the next pass trust the stat of a file it wrote without reading it.

    New files (the target must be absent) are renamed in one call without the
    interpreter lock, each checked and renamed in one step (``renameat2`` with
    ``RENAME_NOREPLACE``), which spares an lstat per file of a first export;
    where the filesystem cannot, they are looked at first like the others.
    """
    out: list[Result | None] = [None] * len(staged)  # in the order of ``staged``
    new: list[tuple[int, str, int, str]] = []  # (index, folder, its fd, name) of the new files
    rest: list[int] = []  # and of the others
    for i, (w, temp, _, _) in enumerate(staged):
        if w.expect is not ABSENT:
            rest.append(i)
            continue
        directory, name = split_path(w.path)
        try:
            new.append((i, directory, dirs.fd(directory), name))
        except OSError as exc:
            _unlink_quietly(dirs, directory, temp)
            out[i] = _unrenamed(w.path, exc)
    renamed = rename_new([n[2] for n in new], [staged[n[0]][1] for n in new], [n[3] for n in new])
    for (i, directory, _, _), seen_ns in zip(new, renamed, strict=True):
        w, temp, st, _ = staged[i]
        if seen_ns > 0:
            out[i] = Written(w.path, st, seen_ns)
        elif -seen_ns in NO_RENAMEAT2:
            rest.append(i)
        else:
            _unlink_quietly(dirs, directory, temp)
            out[i] = _unrenamed(w.path, OSError(-seen_ns, os.strerror(-seen_ns)))
    for i in rest:
        out[i] = _rename_looked(dirs, *staged[i])
    return [r for r in out if r is not None]


def _rename_looked(dirs: Dirs, w: Write, temp: str, st: FileStat, attrs: Attrs) -> Result:
    """Rename one temp over its target after a look at the target (an update, or where
    ``renameat2`` cannot refuse an existing target)."""
    directory, name = split_path(w.path)
    target = dirs.lstat(w.path)
    now = _judge_target(target)
    if w.expect is not None and now != w.expect:
        _unlink_quietly(dirs, directory, temp)
        return NotWritten(w.path, "changed on disk while being written", changed=True)
    try:
        if isinstance(now, FileStat) and attrs_of(target) != attrs:
            _reapply(dirs, directory, temp, st, attrs_of(target))
        dfd = dirs.fd(directory)
        seen_ns = time.time_ns()
        os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError as exc:
        _unlink_quietly(dirs, directory, temp)
        return _unrenamed(w.path, exc)
    return Written(w.path, st, seen_ns)


NO_RENAMEAT2 = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})
"""What ``renameat2`` says where the filesystem (or kernel) has no ``RENAME_NOREPLACE``."""


def _unrenamed(path: str, exc: OSError) -> NotWritten:
    if isinstance(exc, FileExistsError):  # a file appeared where none was to be
        return NotWritten(path, "changed on disk while being written", changed=True)
    return NotWritten(path, f"cannot rename: {exc.strerror or exc}", changed=False, errno=exc.errno)


def _stage(root: Root, writes: Sequence[Write], fsync_each: bool) -> Staged:
    """Phase 1: every temp file written (and fsynced, unless a syncfs follows)."""
    dirs = Dirs(root, create=True)
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
    dirs = Dirs(root, create=False)
    try:
        failed: list[Result] = [s for s in staged if isinstance(s, NotWritten)]
        results = failed + _rename_all(dirs, [s for s in staged if not isinstance(s, NotWritten)])
        if fsync_dirs:
            dirs.fsync(split_path(r.path)[0] for r in results if isinstance(r, Written))
        return results
    finally:
        dirs.close()


def _unflushed(path: str, exc: OSError) -> NotWritten:
    return NotWritten(path, f"cannot flush to disk: {exc.strerror or exc}", changed=False, errno=exc.errno)


def _abandon(root: Root, staged: Staged, exc: OSError) -> list[Result]:
    """A flush failed: remove the temps, keep every old file, report each write."""
    dirs = Dirs(root, create=False)
    try:
        out: list[Result] = []
        for s in staged:
            if isinstance(s, NotWritten):
                out.append(s)
                continue
            write, temp = s[0], s[1]
            _unlink_quietly(dirs, split_path(write.path)[0], temp)
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
    """Write many files durably: each phase of the batch in one worker thread.

    The temps, and then the renames, are written by one thread holding a
    token of ``limiter`` (give it one: one thread writes at a time); the
    waits for the disk (a bulk batch's two ``syncfs``) hold none, so another
    batch is written meanwhile. One thread, not several: threads creating
    files side by side queue on the lock of the folder they create them in.
    """
    if not writes:
        return []
    # Shielded: a batch cancelled between its phases would leave its temps behind.
    with anyio.CancelScope(shield=True):
        results = await _write_files(root, writes, limiter)
    return results


async def _write_files(root: Root, writes: Sequence[Write], limiter: anyio.CapacityLimiter) -> list[Result]:
    if not _bulk(writes):
        return await anyio.to_thread.run_sync(write_batch, root, writes, limiter=limiter)
    staged = await anyio.to_thread.run_sync(_stage, root, writes, False, limiter=limiter)
    try:
        await anyio.to_thread.run_sync(_flush, root)
    except OSError as exc:
        return await anyio.to_thread.run_sync(_abandon, root, staged, exc, limiter=limiter)
    results = await anyio.to_thread.run_sync(_commit, root, staged, False, limiter=limiter)
    return await anyio.to_thread.run_sync(_settle, root, results)
