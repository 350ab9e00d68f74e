"""What the reconciler takes: work queued by the watcher, the poller and requests (no I/O)."""

from __future__ import annotations

import pytest

from mybb_sync.pending import Pending

pytestmark = pytest.mark.anyio


def none(path: str) -> bool:
    return False


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
    assert pending.top_up(batch, 1, none) == ["b.html", "c.html"]
    assert batch.paths == {"a.html", "b.html", "c.html"}
    assert batch.seq == target
    assert not pending


async def test_top_up_takes_nothing_while_a_folder_is_pending() -> None:
    pending = Pending()
    pending.add(["a.html"])
    batch = pending.take()
    pending.add(["b.html"], ["sets/x"])
    assert pending.top_up(batch, 1, none) == []
    assert (pending.paths, pending.prefixes) == ({"b.html"}, {"sets/x"})
    assert batch.paths == {"a.html"}


async def test_top_up_takes_nothing_when_a_path_is_already_in_the_batch() -> None:
    """A path saved again while its first save is being decided waits for the next batch."""
    pending = Pending()
    pending.add(["a.html"])
    batch = pending.take()
    seq = batch.seq
    pending.add(["b.html", "a.html"])
    assert pending.top_up(batch, 1, none) == []
    assert pending.paths == {"a.html", "b.html"}
    assert (batch.paths, batch.seq) == ({"a.html"}, seq)


async def test_top_up_takes_nothing_when_a_path_is_kept_out() -> None:
    pending = Pending()
    pending.add(["a.html"])
    batch = pending.take()
    pending.add(["b.html", "styles/t/global.css"])
    assert pending.top_up(batch, 1, lambda path: path.startswith("styles/")) == []
    assert pending.paths == {"b.html", "styles/t/global.css"}


async def test_top_up_with_nothing_added_takes_nothing() -> None:
    pending = Pending()
    pending.add(["a.html"])
    batch = pending.take()
    assert pending.top_up(batch, 1, none) == []
    assert batch.paths == {"a.html"}


async def test_top_up_takes_nothing_until_enough_paths_are_pending() -> None:
    """A service that keeps up gains nothing by streaming: a few saves wait to be coalesced."""
    pending = Pending()
    pending.add(["a.html"])
    batch = pending.take()
    pending.add(["b.html", "c.html"])
    assert pending.top_up(batch, 3, none) == []
    pending.add(["d.html"])
    assert pending.top_up(batch, 3, none) == ["b.html", "c.html", "d.html"]
