"""Second looks at paths after a delay, all in one task of the service.

A deletion waits out its grace period and a file that changed a moment ago
waits to hold still (:mod:`.writers`); each asks for a look again later.
One heap and one task serve them all, however many there are (an overflow
can defer thousands of files), and :meth:`Service.request` can tell how
many are still to come.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import anyio

from .pending import Pending


class Timers:
    """Paths to add to :class:`Pending` once their delay has passed (while :meth:`run` runs)."""

    def __init__(self, pending: Pending, fired: Callable[[], None]) -> None:
        self._pending = pending
        self._fired = fired  # called after each firing: waiters look at the counts again
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._changed = anyio.Event()
        self._running = False
        self.outstanding = 0  # looks scheduled and not yet queued
        self.last_seq = 0  # Pending.seq of the last look queued

    def add(self, path: str, delay: float) -> None:
        """Look at ``path`` again after ``delay`` seconds (dropped when no service runs)."""
        if not self._running:
            return
        heapq.heappush(self._heap, (anyio.current_time() + delay, next(self._order), path))
        self.outstanding += 1
        self._changed.set()

    async def run(self) -> None:
        """Fire what is due, until cancelled; sleeps until the earliest deadline or a new one."""
        self._running = True
        try:
            while True:
                delay = self._heap[0][0] - anyio.current_time() if self._heap else None
                with anyio.move_on_after(delay if delay is not None else float("inf")):
                    await self._changed.wait()  # a timer, not synchronisation: a new deadline wakes it
                self._changed = anyio.Event()
                now = anyio.current_time()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if due:
                    self.last_seq = self._pending.add(due)
                    self.outstanding -= len(due)
                    self._fired()
        finally:
            self._running = False
