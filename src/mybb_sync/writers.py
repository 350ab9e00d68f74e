"""Files still being written: never imported half-written.

A program that rewrites a file in place (open, write a part, pause, write
the rest, close) leaves half a file on disk for a while. inotify alone is
safe (the service acts on ``IN_CLOSE_WRITE``), but anything that compares the
whole root meanwhile - a rescan asked for by SIGHUP or ``mybb-sync rescan``,
``--rescan-interval``, an inotify overflow, the rescans of a network
filesystem - would find the half and import it. :class:`Writers` is what
those passes ask (:func:`engine.plan`'s ``hold``) before reading a file that
changed:

* a file the watcher knows is being written (``IN_MODIFY``, no
  ``IN_CLOSE_WRITE`` yet: :attr:`Watcher.writing`) is left alone; its close
  brings it back. A writer that holds the file open for ever keeps it from
  being imported until it closes it (a delete of the file, or a rename over
  it, ends the wait too); so does ``truncate(2)`` by name, which brings an
  ``IN_MODIFY`` and never a close, until the file is next saved.
* a writer that opens the file between a pass's question and its read is
  not known yet when the pass reads (its ``IN_MODIFY`` still queued in the
  kernel): before importing what it read, a pass asks :meth:`Writers.written`,
  which waits until the watcher has handled every event queued so far
  (:meth:`.watch.Watcher.caught_up`) and leaves out what is being written
  then. If the watcher cannot tell in time, a file must hold still, as below.
* where inotify cannot see the writers - on a network filesystem (NFS, SMB,
  FUSE: writes made on other machines bring no event), and after events were
  lost (an inotify overflow) for the pass that follows - a file is only
  imported once it has held still: its mtime is older than the window (by
  this machine's clock, with the filesystem's timestamp tick on top), or the
  same size, mtime and inode were seen at least a window ago. A file that
  does not qualify yet is looked at again by a timer when it would, not in a
  polling loop. After an overflow, a close seen since ends the wait; on a
  network filesystem it does not (it says nothing of writers elsewhere), so
  local saves there land a window later too. A file a writer pauses in for
  longer than the window, unseen by inotify, is imported as it is: the window
  is a guess about writers that cannot be seen, not a proof; and a server
  clock behind this one by more than the margin makes a fresh write look old.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio.from_thread
import anyio.to_thread

from .files import Root, stat_files
from .state import FileStat

log = logging.getLogger(__name__)

SETTLE_SECONDS = 2.0  # how long a file must hold still where writers cannot be seen
FEW = 8  # files stat'ed on the event loop rather than in a worker thread
CATCH_UP_SECONDS = 1.0  # how long an import waits for the watcher to handle the events queued before it


async def _no_watcher() -> bool:
    """Nothing watches the root (a one-shot command): no event is waiting to be handled."""
    return True


@dataclass(slots=True)
class _Sighting:
    key: tuple[int, int, int]  # size, mtime, inode
    since: float  # monotonic time of the first look that found them
    timer: float = 0.0  # monotonic time the last armed timer looks again


class Writers:
    """Which changed files a pass must leave alone for now.

    ``wake(path, delay)`` (called on the event loop) must have ``path`` looked at
    again after ``delay`` seconds. :meth:`hold` runs in the planning threads.
    """

    def __init__(self, root: Root, wake: Callable[[str, float], None], *, window: float = SETTLE_SECONDS) -> None:
        self.root = root
        self.window = window
        self.writing: set[str] = set()  # the watcher's own set once it runs (Service.read_events)
        self.network = False  # writers on other machines: every changed file must hold still
        self.unsure: Callable[[], bool] = lambda: False  # events were lost: writers are unknown
        # Whether the watcher has handled every event queued before the call (Watcher.caught_up).
        self.catch_up: Callable[[], Awaitable[bool]] = _no_watcher
        self._wake = wake
        self._settling: dict[str, _Sighting] = {}
        self._lock = threading.Lock()

    def hold(self, path: str, stat: FileStat) -> bool:
        """True: leave the changed file ``path`` alone for now (something brings it back)."""
        if path in self.writing:
            log.debug("left %s alone: it is being written (its close brings it back)", path)
            return True
        if not (self.network or path in self._settling or self.unsure()):
            return False
        delay = self._settle(path, stat)
        if delay is None:
            return False
        log.debug("left %s alone: it changed less than %.1fs ago; looking again when it held still", path, self.window)
        if delay > 0:
            anyio.from_thread.run_sync(self._wake, path, delay)
        return True

    async def written(self, files: Mapping[str, FileStat]) -> set[str]:
        """Of the files a pass read and is about to import (with the stat it read), those to
        leave alone after all (on the event loop). Once the watcher has caught up: those being
        written, and those written on since the read (a writer that finished meanwhile: its
        close brings them back). If it could not: those that have not held still (a timer
        brings them back)."""
        if not files:
            return set()
        caught = await self.catch_up()
        now: dict[str, FileStat | None] = {}
        if caught and len(files) <= FEW:  # an lstat or two: cheaper on the loop than a thread hop
            now = stat_files(self.root, list(files))
        elif caught:
            now = await anyio.to_thread.run_sync(stat_files, self.root, list(files))
        out = set()
        for path, stat in files.items():
            if path in self.writing or (caught and now[path] != stat):
                out.add(path)
            elif not caught and (delay := self._settle(path, stat)) is not None:
                out.add(path)
                if delay > 0:
                    self._wake(path, delay)
        if out:
            log.debug("not imported, still being written: %s", ", ".join(sorted(out)[:5]))
        return out

    def closed(self, paths: frozenset[str]) -> None:
        """inotify saw these closed, deleted or renamed: after lost events, that ends the wait.
        On a network filesystem it does not: it says nothing about writers elsewhere."""
        if self._settling and not self.network:
            with self._lock:
                for path in paths:
                    self._settling.pop(path, None)

    def _settle(self, path: str, stat: FileStat) -> float | None:
        """None if ``path`` held still long enough; else seconds until a timer must look again
        (0: the one armed already will)."""
        key = (stat.size, stat.mtime_ns, stat.ino)
        now = time.monotonic()
        margin_ns = int(self.window * 1e9) + self.root.racy_ns
        with self._lock:
            seen = self._settling.get(path)
            if time.time_ns() - stat.mtime_ns >= margin_ns or (
                seen is not None and seen.key == key and now - seen.since >= self.window
            ):
                self._settling.pop(path, None)
                return None
            if seen is None or seen.key != key:
                self._prune(now)
                seen = self._settling[path] = _Sighting(key, now)
            due = seen.since + self.window + 0.01
            if seen.timer >= due:
                return 0.0
            seen.timer = due
            return due - now

    def _prune(self, now: float) -> None:
        """Forget sightings nobody looked at again (the file was deleted, or agreed otherwise)."""
        if len(self._settling) > 256:
            stale = now - 10 * self.window
            for path in [p for p, s in self._settling.items() if s.timer < stale]:
                del self._settling[path]
