"""Writers.written: the last question before an import, on real files and a real inotify watcher."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import anyio
import pytest

from mybb_sync.files import Root, stat_of
from mybb_sync.watch import News, Watcher
from mybb_sync.writers import SETTLE_SECONDS, Writers

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0


@pytest.fixture
def watcher(root: Path) -> Iterator[Watcher]:
    w = Watcher(root, ".tmp")
    w.add_tree()
    try:
        yield w
    finally:
        w.close()


def writers_of(root: Path, watcher: Watcher, within: float, wakes: list[tuple[str, float]]) -> Writers:
    """Writers as the service wires them to its watcher; a wake is recorded, not acted on."""
    writers = Writers(Root(root), lambda path, delay: wakes.append((path, delay)))
    writers.writing = watcher.writing
    writers.catch_up = partial(watcher.caught_up, within)
    return writers


async def read_all(news: AsyncIterator[News]) -> None:
    async for _ in news:
        pass


async def test_a_file_whose_writer_began_before_the_import_is_left_out(root: Path, watcher: Watcher) -> None:
    """The pass read the half a writer just wrote; the watcher had not read its IN_MODIFY yet."""
    (root / "done.html").write_text("whole")
    writers = writers_of(root, watcher, TIMEOUT, [])
    async with anyio.create_task_group() as tg:
        tg.start_soon(read_all, watcher.news())  # read from now on, as the service's reader
        with open(root / "open.html", "w") as writer:
            writer.write("<b>HALF")
            writer.flush()
            files = {name: stat_of(os.lstat(root / name)) for name in ("open.html", "done.html")}
            assert await writers.written(files) == {"open.html"}
        tg.cancel_scope.cancel()


async def test_a_file_written_on_since_it_was_read_is_left_out(root: Path, watcher: Watcher) -> None:
    """Its writer finished between the pass's read and the import: its close brings it back."""
    target = root / "a.html"
    target.write_text("<b>HALF")
    read = stat_of(os.lstat(target))
    target.write_text("<b>HALF and the rest</b>")
    writers = writers_of(root, watcher, TIMEOUT, [])
    async with anyio.create_task_group() as tg:
        tg.start_soon(read_all, watcher.news())
        assert await writers.written({"a.html": read}) == {"a.html"}
        tg.cancel_scope.cancel()


async def test_when_the_watcher_cannot_tell_a_file_must_have_held_still(root: Path, watcher: Watcher) -> None:
    """Nothing reads the events (a flood, say): a file changed just now waits for a timer, one
    unchanged for longer than the window goes ahead."""
    (root / "young.html").write_text("just written")
    (root / "old.html").write_text("written long ago")
    long_ago = time.time_ns() - 10 * int(SETTLE_SECONDS * 1e9)
    os.utime(root / "old.html", ns=(long_ago, long_ago))
    wakes: list[tuple[str, float]] = []
    writers = writers_of(root, watcher, 0.1, wakes)
    files = {name: stat_of(os.lstat(root / name)) for name in ("young.html", "old.html")}
    assert await writers.written(files) == {"young.html"}
    assert [path for path, delay in wakes if delay > 0] == ["young.html"]
