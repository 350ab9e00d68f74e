"""What changed and waits for the reconciler: paths and folders, taken all at once as a batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio


@dataclass
class Batch:
    """Work the reconciler has in hand; it covers every add to :class:`Pending` up to ``seq``."""

    paths: set[str]
    prefixes: set[str]
    seq: int


@dataclass
class Pending:
    """What changed and has not been handled yet; the reconciler takes it all at once."""

    paths: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)
    seq: int = 0  # bumped by every add; a batch taken at seq N covers every add up to N
    _wake: anyio.Event = field(default_factory=anyio.Event)

    def __bool__(self) -> bool:
        return bool(self.paths or self.prefixes)

    def add(self, paths: Sequence[str] = (), prefixes: Sequence[str] = ()) -> int:
        """Queue work; returns the sequence number a batch must reach to cover it."""
        if paths or prefixes:
            self.paths.update(paths)
            self.prefixes.update(prefixes)
            self.seq += 1
            self._wake.set()
        return self.seq

    def take(self) -> Batch:
        batch = Batch(self.paths, self.prefixes, self.seq)
        self.paths, self.prefixes = set(), set()
        self._wake = anyio.Event()
        return batch

    def top_up(self, batch: Batch, at_least: int, kept_out: Callable[[str], bool]) -> list[str]:
        """Move the paths added since ``batch`` was taken into it, so that a flood of changes
        is handled as one stream, not in rounds that each wait for the slowest part of the
        last. All or none: none while a folder is pending, or when one of them is already
        in the batch (a path gets one decision at a time) or is ``kept_out``, or when
        there are fewer than ``at_least`` (a service keeping up gains nothing by streaming,
        and a next batch coalesces more saves); those wait for the next batch."""
        if (
            len(self.paths) < at_least
            or self.prefixes
            or not self.paths.isdisjoint(batch.paths)
            or any(map(kept_out, self.paths))
        ):
            return []
        more = self.take()
        batch.paths |= more.paths
        batch.seq = more.seq
        return sorted(more.paths)

    async def wait(self) -> None:
        if not self:
            await self._wake.wait()
