"""What the reconciler takes: work queued by the watcher, the poller and requests (no I/O)."""

from __future__ import annotations

import pytest

from mybb_sync.service import Pending

pytestmark = pytest.mark.anyio


def joins_all(path: str) -> bool:
    return True


async def test_take_covers_every_add_so_far() -> None:
    pending = Pending()
    pending.add(["a.html"])
    target = pending.add(["b.html"], ["sets/x"])
    batch = pending.take()
    assert (batch.paths, batch.prefixes, batch.seq) == ({"a.html", "b.html"}, {"sets/x"}, target)
    assert not pending


async def test_top_up_moves_paths_added_since_into_the_batch_and_covers_them() -> None:
    pending = Pending()
    pending.add(["a.html"])
    batch = pending.take()
    target = pending.add(["c.html", "b.html"])
    assert pending.top_up(batch, joins_all) == ["b.html", "c.html"]
    assert batch.paths == {"a.html", "b.html", "c.html"}
    assert batch.seq == target
    assert not pending


async def test_top_up_takes_nothing_while_a_folder_is_pending() -> None:
    pending = Pending()
    pending.add(["a.html"])
    batch = pending.take()
    pending.add(["b.html"], ["sets/x"])
    assert pending.top_up(batch, joins_all) == []
    assert (pending.paths, pending.prefixes) == ({"b.html"}, {"sets/x"})
    assert batch.paths == {"a.html"}


async def test_top_up_takes_nothing_when_a_path_is_already_in_the_batch() -> None:
    """A path saved again while its first save is being decided waits for the next batch."""
    pending = Pending()
    pending.add(["a.html"])
    batch = pending.take()
    seq = batch.seq
    pending.add(["b.html", "a.html"])
    assert pending.top_up(batch, joins_all) == []
    assert pending.paths == {"a.html", "b.html"}
    assert (batch.paths, batch.seq) == ({"a.html"}, seq)


async def test_top_up_takes_nothing_when_a_path_does_not_join() -> None:
    pending = Pending()
    pending.add(["a.html"])
    batch = pending.take()
    pending.add(["b.html", "styles/t/global.css"])
    assert pending.top_up(batch, lambda path: not path.startswith("styles/")) == []
    assert pending.paths == {"b.html", "styles/t/global.css"}


async def test_top_up_with_nothing_added_takes_nothing() -> None:
    pending = Pending()
    pending.add(["a.html"])
    batch = pending.take()
    assert pending.top_up(batch, joins_all) == []
    assert batch.paths == {"a.html"}
