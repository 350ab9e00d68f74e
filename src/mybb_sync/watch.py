"""The inotify reader: every directory of the sync root, watched directly.

It turns kernel events into two kinds of news for the reconciler, which
re-reads the disk before deciding anything:

* :class:`Touched` - files that may have changed: ``IN_CLOSE_WRITE`` and
  ``IN_MOVED_TO`` (a save), ``IN_DELETE`` and unpaired ``IN_MOVED_FROM``
  (gone). ``IN_MODIFY`` and ``IN_CREATE`` are not news: a file is only read
  once the writer closed it or renamed it into place.
* :class:`Rescan` - a folder (or the whole root) to compare again: a new or
  moved-in directory (watched first, then scanned, so files made before the
  watch existed are not missed), a renamed one (its watches rebased), and
  ``IN_Q_OVERFLOW`` (events were lost: every folder is watched again, then
  the whole root).

Beside the news, :attr:`Watcher.writing` holds the files being written in
place: an ``IN_MODIFY`` came (every ``write()`` brings one) and no
``IN_CLOSE_WRITE`` yet. A rescan leaves them alone; their close brings them
back as news. ``IN_CLOSE_NOWRITE`` does not end a write (a reader closing its
own descriptor says nothing about the writer's); ``IN_DELETE``, a move out of
the root, another file renamed over it and the folder going away do (the path
no longer holds that file), and a rename inside the root takes the write along
to the new name. After
``IN_Q_OVERFLOW`` nobody knows who writes: the set is emptied and the rescan
says so (:attr:`Rescan.lost`).

Symlinks are never followed (``IN_DONT_FOLLOW``, ``lstat``-style scans).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
from asyncinotify import Event, Inotify, Mask, Watch

from ._compat import take_buffered
from .errors import MybbSyncError
from .files import COOKIE_PREFIX
from .layout import STATE_DIR, Found, is_ignored_name, why_ignored
from .tree import folders

log = logging.getLogger(__name__)

DIR_MASK = (
    Mask.CLOSE_WRITE
    | Mask.MODIFY
    | Mask.MOVED_TO
    | Mask.MOVED_FROM
    | Mask.DELETE
    | Mask.CREATE
    | Mask.DELETE_SELF
    | Mask.MOVE_SELF
    | Mask.ONLYDIR
    | Mask.DONT_FOLLOW
    | Mask.EXCL_UNLINK
)
# The event bits as plain ints: a Flag's ``in`` costs ~0.3 us, and a burst brings two events a file.
_OVERFLOW, _IGNORED, _ISDIR = int(Mask.Q_OVERFLOW), int(Mask.IGNORED), int(Mask.ISDIR)
_MOVED_FROM, _MOVED_TO, _CLOSE_WRITE = int(Mask.MOVED_FROM), int(Mask.MOVED_TO), int(Mask.CLOSE_WRITE)
_CREATE, _DELETE, _MODIFY = int(Mask.CREATE), int(Mask.DELETE), int(Mask.MODIFY)


@dataclass(frozen=True, slots=True)
class Touched:
    """Files (relative paths) that may have changed or gone."""

    paths: frozenset[str]


@dataclass(frozen=True, slots=True)
class Rescan:
    """Compare everything below ``prefix`` again ("" = the whole root)."""

    prefix: str
    reason: str
    lost: bool = False  # events were lost (an overflow): who is writing what is not known


@dataclass(frozen=True, slots=True)
class Passed:
    """Things made where a template or stylesheet file could be that are not synced, with why
    (a symlink, a FIFO, a folder): said once, so that nobody waits for them to sync."""

    why: dict[str, str]


News = Touched | Rescan | Passed

READ_EVENTS = 256
WATCH_LIMIT_HINT = (
    "out of inotify watches: raise the limit with "
    "'sysctl fs.inotify.max_user_watches=524288' (and fs.inotify.max_user_instances)"
)


class Watcher:
    """Recursive inotify over the sync root, yielding :data:`News`."""

    def __init__(self, root: Path, temp_suffix: str) -> None:
        self.root = root
        self.temp_suffix = temp_suffix
        # Reads of up to ~300 full-sized events (far more short ones): a 10,000-file checkout
        # arrives in tens of reads, not thousands.
        self._inotify = Inotify(cache_size=READ_EVENTS)
        self._by_rel: dict[str, Watch] = {}
        self._dir_rel: dict[Path, str] = {}  # watched folder -> its path relative to the root
        self._pending_moves: dict[int, str] = {}  # cookie -> relative path moved from
        # Files being written in place (IN_MODIFY, no IN_CLOSE_WRITE yet). The service keeps a
        # reference: the set is only ever changed in place.
        self.writing: set[str] = set()
        self._passed: dict[str, str] = {}  # made since the last news and not synced: path -> why
        # Folders to watch (new ones, or all after an overflow): walked in a worker thread
        # once the read is handled, never on the event loop.
        self._walks: list[Callable[[], None]] = []
        self._cookies: dict[str, anyio.Event] = {}  # cookie name -> set once its event is handled
        self._cookie_count = 0
        self._overflows = 0  # queue overflows handled: the writers known before one are forgotten
        self._reading = False  # news() is being read (until it ends): only then is a cookie's event handled

    async def caught_up(self, within: float) -> bool:
        """Whether every event the kernel queued before this call has been handled, so that
        :attr:`writing` knows every write begun before it (a pass about to import a file it
        read asks: a writer may have opened it just before the read).

        The proof is a cookie, as watchman's: a file made and removed in the root now, whose
        events come after all those queued before (one inotify queue keeps its order).
        False if :meth:`news` is not being read or did not get to it within ``within``
        seconds, if the root could not be written, or if the queue overflowed meanwhile (the
        writers' events may be among those lost).
        """
        if not self._reading:
            return False
        overflows = self._overflows
        self._cookie_count += 1
        name = f"{COOKIE_PREFIX}{os.getpid()}-{self._cookie_count}"
        handled = self._cookies[name] = anyio.Event()
        try:
            _make_cookie(self.root / name)  # on the loop, as _found: a thread hop costs more than the calls
            with anyio.move_on_after(within):
                await handled.wait()
        except OSError as exc:
            log.debug("no cookie in %s: %s", self.root, exc)
        finally:
            del self._cookies[name]
        return handled.is_set() and self._overflows == overflows

    def close(self) -> None:
        self._inotify.close()

    @property
    def watch_count(self) -> int:
        return len(self._by_rel)

    def _rel(self, path: Path) -> str:
        rel = path.relative_to(self.root).as_posix()
        return "" if rel == "." else rel

    def _event_rel(self, watch: Watch, name: str) -> str:
        """The root-relative path of an event's file (its folder's is computed once per folder)."""
        folder = self._dir_rel.get(watch.path)
        if folder is None:
            folder = self._dir_rel[watch.path] = self._rel(watch.path)
        return f"{folder}/{name}" if folder else name

    def _ignored_dir(self, name: str) -> bool:
        return name.startswith(".") or name == STATE_DIR

    def add_tree(self, rel: str = "") -> None:
        """Watch ``rel`` and every directory below it (blocking but cheap: one syscall per dir),
        each watched before it is listed (:func:`.tree.folders`)."""
        for _ in folders(self.root, rel, enter=self._add):
            pass

    def _add(self, rel: str) -> bool:
        path = self.root / rel if rel else self.root
        try:
            watch = self._inotify.add_watch(path, DIR_MASK)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise MybbSyncError(WATCH_LIMIT_HINT) from None
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return False  # gone again, or a symlink: not ours to follow
            raise
        # A directory still watched under another name (renamed, its MOVED_TO
        # read after its MOVED_FROM) gets its existing watch back: fix the path.
        watch.path = path
        self._by_rel[rel] = watch
        return True

    def _forget_tree(self, rel: str, unwatch: bool = False) -> None:
        self._forget_writers(rel)
        for key in [k for k in self._by_rel if k == rel or k.startswith(rel + "/")]:
            watch = self._by_rel.pop(key)
            if unwatch:
                try:
                    self._inotify.rm_watch(watch)
                except OSError:
                    pass  # already gone with its directory

    def _resync(self) -> None:
        """After lost events: watch every folder there is now and drop the watches of folders gone.

        The lost events may have been the IN_CREATE of new folders (never
        watched otherwise) or the moves of watched ones (their paths stale).
        """
        before = self._by_rel
        self._by_rel = {}
        self._dir_rel.clear()
        self._pending_moves.clear()
        self.add_tree()  # a folder still watched gets its watch back, its path set to where it is now
        kept = {id(w) for w in self._by_rel.values()}
        for watch in before.values():
            if id(watch) not in kept:
                try:
                    self._inotify.rm_watch(watch)
                except OSError:
                    pass  # already gone with its directory

    def _forget_writers(self, rel: str) -> None:
        """The folder ``rel`` went away: nothing below it is being written there any more."""
        if self.writing:
            self.writing.difference_update([p for p in self.writing if p.startswith(rel + "/")])

    def _rebase(self, old: str, new: str) -> None:
        """A watched directory was renamed inside the root: fix the paths of its watches (and of
        the files being written in it: their writers write on under the new name)."""
        moving = [p for p in self.writing if p.startswith(old + "/")] if self.writing else []
        self.writing.difference_update(moving)
        self.writing.update(new + p[len(old) :] for p in moving)
        for key in [k for k in self._by_rel if k == old or k.startswith(old + "/")]:
            watch = self._by_rel.pop(key)
            moved = new + key[len(old) :]
            watch.path = self.root / moved
            self._by_rel[moved] = watch

    def news(self) -> AsyncIterator[News]:
        """Kernel events as news, batched per read from the inotify fd."""
        self._reading = True
        return self._news()

    async def _news(self) -> AsyncIterator[News]:
        try:
            while True:
                event = await self._inotify.get()
                touched: set[str] = set()
                rescans: list[Rescan] = []
                self._handle(event, touched, rescans)
                # Drain what the same read() returned before yielding.
                for more in take_buffered(self._inotify):
                    self._handle(more, touched, rescans)
                touched |= self._expire_moves()
                while self._walks:
                    await anyio.to_thread.run_sync(self._walks.pop(0))
                for rescan in rescans:
                    yield rescan
                if touched:
                    yield Touched(frozenset(touched))
                if self._passed:
                    passed, self._passed = self._passed, {}
                    yield Passed(passed)
        finally:
            self._reading = False

    def _expire_moves(self) -> set[str]:
        """A MOVED_FROM whose MOVED_TO did not arrive in the same read was a move out of the root."""
        gone = set()
        for rel in self._pending_moves.values():
            self.writing.discard(rel)  # a file moved out is no longer written here
            # A directory moved out of the root is still watched by the kernel
            # wherever it went: drop those watches, or its events would keep
            # coming back under its old path (and count against the watch limit).
            self._forget_tree(rel, unwatch=True)
            gone.add(rel)
        self._pending_moves.clear()
        return gone

    def _handle(self, event: Event, touched: set[str], rescans: list[Rescan]) -> None:
        mask = int(event.mask)
        if mask & _OVERFLOW:
            log.warning("inotify queue overflowed: rescanning the whole root")
            self._overflows += 1
            self._walks.append(self._resync)
            self.writing.clear()  # closes may be among the lost events: writers are unknown now
            rescans.append(Rescan("", "inotify queue overflow", lost=True))
            return
        if mask & _IGNORED:
            watch = event.watch
            if watch is not None:
                for key, w in list(self._by_rel.items()):
                    if w is watch:
                        del self._by_rel[key]
            return
        watch = event.watch
        if watch is None or event.name is None:
            return  # DELETE_SELF / MOVE_SELF on a watch: the parent's event says what happened
        name = event.name.name
        try:
            rel = self._event_rel(watch, name)
        except ValueError:
            return
        if mask & _ISDIR:
            self._handle_dir(mask, event.cookie, rel, name, rescans)
            return
        if name.startswith(COOKIE_PREFIX):
            if (handled := self._cookies.get(name)) is not None:
                handled.set()
            return
        if is_ignored_name(name, self.temp_suffix):
            return
        if mask & _MODIFY:  # one per write() call: keep this cheap
            self.writing.add(rel)
        elif mask & _CLOSE_WRITE:
            self.writing.discard(rel)
            touched.add(rel)
        elif mask & _MOVED_FROM:
            self._pending_moves[event.cookie] = rel
            touched.add(rel)
        elif mask & _MOVED_TO:
            old = self._pending_moves.pop(event.cookie, None)
            if self.writing:
                self.writing.discard(rel)  # the name holds the file moved in now, not the one written
                if old in self.writing:  # renamed while open for writing: written on under this name
                    self.writing.discard(old)
                    self.writing.add(rel)
            touched.add(rel)
        elif mask & _DELETE:
            self.writing.discard(rel)
            touched.add(rel)
        elif mask & _CREATE:  # a regular file's close comes next; a symlink or FIFO makes no other event
            self._check_made(rel, _found(self.root / rel))

    def _check_made(self, rel: str, found: Found | None) -> None:
        if found is not None and found is not Found.FILE:
            why = why_ignored(rel, found, self.temp_suffix)
            if why is not None:
                self._passed[rel] = why

    def _handle_dir(self, mask: int, cookie: int, rel: str, name: str, rescans: list[Rescan]) -> None:
        if self._ignored_dir(name):
            return
        if mask & _MOVED_FROM:
            self._pending_moves[cookie] = rel
            rescans.append(Rescan(rel, "directory moved away"))
        elif mask & _MOVED_TO:
            old = self._pending_moves.pop(cookie, None)
            if old is not None and old in self._by_rel:
                self._rebase(old, rel)
            self._walks.append(lambda: self.add_tree(rel))
            rescans.append(Rescan(rel, "directory moved in"))
            self._check_made(rel, Found.DIR)
        elif mask & _CREATE:
            self._walks.append(lambda: self.add_tree(rel))
            rescans.append(Rescan(rel, "new directory"))
            self._check_made(rel, Found.DIR)
        elif mask & _DELETE:
            self._forget_tree(rel)
            rescans.append(Rescan(rel, "directory deleted"))


def _make_cookie(path: Path) -> None:
    """Make and remove an empty file in the root: two metadata calls."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    os.unlink(path)


def _found(path: Path) -> Found | None:
    """What stands at ``path`` (``lstat``), None if nothing does any more."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return Found.FILE
    if stat.S_ISDIR(mode):
        return Found.DIR
    return Found.SYMLINK if stat.S_ISLNK(mode) else Found.OTHER
