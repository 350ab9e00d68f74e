"""The inotify reader on real directories: what it reports, what it ignores, how it follows folders.

Every test makes real filesystem changes and reads the real kernel events.
A test that expects something *not* to be reported makes a sentinel change
afterwards and reads until the sentinel shows: events arrive in order, so
anything reported for the earlier change would have come first.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from mybb_sync.watch import News, Rescan, Touched, Watcher

from service_helpers import queue_limit

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0


@pytest.fixture
def watcher(root: Path):
    w = Watcher(root, ".tmp")
    try:
        yield w
    finally:
        w.close()


class Reader:
    """Reads a watcher's news, keeping everything reported."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.news: AsyncIterator[News] = watcher.news()
        self.seen: list[News] = []

    async def until(self, predicate: Callable[[News], bool], timeout: float = TIMEOUT) -> list[News]:
        """Read news until one satisfies ``predicate``; returns what was read, that one included."""
        got: list[News] = []
        with anyio.fail_after(timeout):
            async for item in self.news:
                got.append(item)
                self.seen.append(item)
                if predicate(item):
                    return got
        raise AssertionError("the watcher stopped")

    async def touched(self, rel: str) -> list[News]:
        return await self.until(lambda n: isinstance(n, Touched) and rel in n.paths)

    async def sentinel(self, root: Path) -> list[News]:
        """Make a change that must be reported and read up to it."""
        name = f"sentinel-{secrets.token_hex(3)}.html"
        (root / name).write_text("x")
        return await self.touched(name)

    async def rescan(self, prefix: str) -> list[News]:
        return await self.until(lambda n: isinstance(n, Rescan) and n.prefix == prefix)


def touched_paths(news: list[News]) -> set[str]:
    return {p for n in news if isinstance(n, Touched) for p in n.paths}


def rescans(news: list[News]) -> list[Rescan]:
    return [n for n in news if isinstance(n, Rescan)]


# -- files -------------------------------------------------------------------------


async def test_close_write_is_reported(root: Path, watcher: Watcher) -> None:
    (root / "d").mkdir()
    watcher.add_tree()
    reader = Reader(watcher)
    (root / "d" / "a.html").write_text("hello")
    news = await reader.touched("d/a.html")
    assert rescans(news) == []


async def test_moved_to_is_reported(root: Path, watcher: Watcher, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.html").write_text("from elsewhere")
    (root / "d").mkdir()
    watcher.add_tree()
    reader = Reader(watcher)
    os.rename(outside / "b.html", root / "d" / "b.html")
    await reader.touched("d/b.html")


async def test_rename_inside_a_folder_reports_both_names(root: Path, watcher: Watcher) -> None:
    (root / "b.html").write_text("old")
    watcher.add_tree()
    reader = Reader(watcher)
    os.rename(root / "b.html", root / "c.html")
    news = await reader.until(lambda n: isinstance(n, Touched) and {"b.html", "c.html"} <= n.paths)
    assert touched_paths(news) == {"b.html", "c.html"}


async def test_modify_alone_is_not_reported(root: Path, watcher: Watcher) -> None:
    """A file still open for writing is not read: only its close (or a rename) counts."""
    target = root / "open.html"
    target.write_text("before")
    watcher.add_tree()
    reader = Reader(watcher)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"half of an edit")
        os.fsync(fd)
        os.truncate(target, 3)  # IN_MODIFY again
        news = await reader.sentinel(root)
        assert "open.html" not in touched_paths(news)
    finally:
        os.close(fd)
    await reader.touched("open.html")  # the close is reported


async def test_a_file_is_being_written_from_its_first_write_to_its_close(root: Path, watcher: Watcher) -> None:
    """IN_MODIFY puts it in ``writing`` (not in the news); a reader's close does not take it out,
    the writer's IN_CLOSE_WRITE does (and is the news)."""
    target = root / "open.html"
    target.write_text("before")
    watcher.add_tree()
    reader = Reader(watcher)
    fd = os.open(target, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, b"<b>HALF")
        news = await reader.sentinel(root)
        assert "open.html" not in touched_paths(news)
        assert watcher.writing == {"open.html"}
        assert target.read_text() == "<b>HALF"  # a reader opens and closes it (IN_CLOSE_NOWRITE)
        await reader.sentinel(root)
        assert watcher.writing == {"open.html"}
        os.write(fd, b" and the rest</b>")
    finally:
        os.close(fd)
    await reader.touched("open.html")
    assert watcher.writing == set()


@asynccontextmanager
async def writing_half(root: Path, watcher: Watcher) -> AsyncIterator[None]:
    """The watcher's news read in the background (as the service's reader), and ``open.html``
    open with half written: its IN_MODIFY queued, read by nobody yet."""
    watcher.add_tree()
    reader = Reader(watcher)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader.until, lambda _: False)
        with open(root / "open.html", "w") as writer:
            writer.write("<b>HALF")
            writer.flush()
            yield
        tg.cancel_scope.cancel()


async def test_caught_up_knows_a_writer_that_began_just_before_it(root: Path, watcher: Watcher) -> None:
    """The writer's IN_MODIFY is still queued when the call begins; once it returns True the
    watcher has handled it. Its cookie leaves no file behind."""
    async with writing_half(root, watcher):
        assert watcher.writing == set()  # nothing has read the queue since the write
        assert await watcher.caught_up(TIMEOUT)
        assert watcher.writing == {"open.html"}
    assert [p.name for p in root.iterdir()] == ["open.html"]


async def test_caught_up_says_no_when_the_queue_overflowed_meanwhile(root: Path) -> None:
    """The writer's IN_MODIFY may be among the events lost: nobody is known to be writing."""
    (root / "d").mkdir()
    with queue_limit(32):
        w = Watcher(root, ".tmp")
    try:
        async with writing_half(root, w):
            for i in range(200):  # nothing reads meanwhile
                (root / "d" / f"f{i}.html").write_text(str(i))
            assert not await w.caught_up(TIMEOUT)
    finally:
        w.close()


async def test_caught_up_says_no_when_nothing_reads_the_events(root: Path, watcher: Watcher) -> None:
    watcher.add_tree()
    (root / "open.html").write_text("queued")
    assert not await watcher.caught_up(0.2)


async def test_what_ends_a_write_and_what_carries_it_to_another_name(
    root: Path, watcher: Watcher, tmp_path: Path
) -> None:
    """Deleted, moved out (alone or with its folder), replaced by a rename: no longer written
    there. Renamed inside the root, alone or with its folder: written on under the new name."""
    outside = tmp_path / "outside"
    outside.mkdir()
    names = ["deleted", "moved-out", "replaced", "renamed"]
    (root / "dir").mkdir()
    (root / "moving").mkdir()
    paths = {name: root / f"{name}.html" for name in names[:4]}
    paths["in-dir-moved-out"] = root / "dir" / "f.html"
    paths["in-dir-renamed"] = root / "moving" / "g.html"
    for path in paths.values():
        path.write_text("before")
    (root / "newcomer.html").write_text("moved over a file being written")
    watcher.add_tree()
    reader = Reader(watcher)
    fds = [os.open(path, os.O_WRONLY) for path in paths.values()]
    try:
        for fd in fds:
            os.write(fd, b"half")
        await reader.sentinel(root)
        assert watcher.writing == {
            "deleted.html",
            "moved-out.html",
            "replaced.html",
            "renamed.html",
            "dir/f.html",
            "moving/g.html",
        }
        paths["deleted"].unlink()
        os.rename(paths["moved-out"], outside / "moved-out.html")
        os.rename(root / "newcomer.html", paths["replaced"])
        os.rename(paths["renamed"], root / "renamed-to.html")
        os.rename(root / "dir", outside / "dir")
        os.rename(root / "moving", root / "moved")
        await reader.sentinel(root)
        assert watcher.writing == {"renamed-to.html", "moved/g.html"}
    finally:
        for fd in fds:
            os.close(fd)


async def test_deleted_file_is_reported(root: Path, watcher: Watcher) -> None:
    (root / "gone.html").write_text("x")
    watcher.add_tree()
    reader = Reader(watcher)
    (root / "gone.html").unlink()
    await reader.touched("gone.html")


@pytest.mark.parametrize(
    "name",
    [
        ".a.html.x1y2z3w4.tmp",  # our own temp files
        "a.html.tmp",  # the temp suffix alone
        ".hidden.html",  # dotfiles (git's .lock files, editors' backups)
        "a.html~",  # vim / emacs backups
        "4913",  # vim's probe file
        ".a.html.swp",  # vim swap
        "a.html.swp",
        "a.html___jb_tmp___",  # JetBrains safe write
        "a.html___jb_old___",
    ],
)
async def test_scratch_names_are_ignored(root: Path, watcher: Watcher, name: str) -> None:
    (root / "d").mkdir()
    watcher.add_tree()
    reader = Reader(watcher)
    scratch = root / "d" / name
    scratch.write_text("scratch")  # CREATE + CLOSE_WRITE
    os.rename(scratch, root / "d" / (name + "~"))  # MOVED_FROM + MOVED_TO, both scratch names
    (root / "d" / (name + "~")).unlink()  # DELETE
    news = await reader.sentinel(root)
    assert touched_paths(news) == {p for p in touched_paths(news) if p.startswith("sentinel-")}
    assert rescans(news) == []


async def test_custom_temp_suffix_is_ignored(root: Path) -> None:
    w = Watcher(root, ".part")
    try:
        w.add_tree()
        reader = Reader(w)
        (root / "a.html.part").write_text("x")
        news = await reader.sentinel(root)
        assert "a.html.part" not in touched_paths(news)
    finally:
        w.close()


async def test_file_moved_out_of_the_root_counts_as_gone(root: Path, watcher: Watcher, tmp_path: Path) -> None:
    (root / "d").mkdir()
    (root / "d" / "leaving.html").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    watcher.add_tree()
    reader = Reader(watcher)
    os.rename(root / "d" / "leaving.html", outside / "leaving.html")  # MOVED_FROM with no MOVED_TO
    await reader.touched("d/leaving.html")


async def test_vim_backup_rename_save_reports_the_file(root: Path, watcher: Watcher) -> None:
    """rename f -> f~ (MOVED_TO an ignored name), write f, unlink f~: f is reported, f~ never."""
    target = root / "t.html"
    target.write_text("v1")
    watcher.add_tree()
    reader = Reader(watcher)
    os.rename(target, root / "t.html~")
    target.write_text("v2")
    (root / "t.html~").unlink()
    news = await reader.sentinel(root)
    paths = touched_paths(news)
    assert "t.html" in paths
    assert "t.html~" not in paths


# -- directories ----------------------------------------------------------------------


async def test_new_directory_gets_a_watch_and_a_rescan(root: Path, watcher: Watcher) -> None:
    watcher.add_tree()
    before = watcher.watch_count
    reader = Reader(watcher)
    (root / "new").mkdir()
    (root / "new" / "early.html").write_text("made before the watch existed")  # covered by the rescan
    news = await reader.rescan("new")
    assert rescans(news)[-1].reason == "new directory"
    assert watcher.watch_count == before + 1
    (root / "new" / "late.html").write_text("made after")
    await reader.touched("new/late.html")


async def test_nested_new_directories_are_all_watched(root: Path, watcher: Watcher) -> None:
    """mkdir -p a/b/c and files in it at once: one rescan of the top, every level watched."""
    watcher.add_tree()
    before = watcher.watch_count
    reader = Reader(watcher)
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "f.html").write_text("x")
    await reader.rescan("a")
    assert watcher.watch_count == before + 3
    (root / "a" / "b" / "c" / "g.html").write_text("y")
    news = await reader.touched("a/b/c/g.html")
    assert "a/b/c/f.html" not in touched_paths(news)


async def test_directory_rename_rebases_watches(root: Path, watcher: Watcher) -> None:
    (root / "old" / "sub").mkdir(parents=True)
    watcher.add_tree()
    count = watcher.watch_count
    reader = Reader(watcher)
    os.rename(root / "old", root / "renamed")
    news = await reader.rescan("renamed")
    assert {(r.prefix, r.reason) for r in rescans(news)} >= {
        ("old", "directory moved away"),
        ("renamed", "directory moved in"),
    }
    assert watcher.watch_count == count
    (root / "renamed" / "a.html").write_text("x")
    (root / "renamed" / "sub" / "b.html").write_text("y")
    news = await reader.touched("renamed/sub/b.html")
    paths = touched_paths(news)
    assert "renamed/a.html" in paths
    assert not any(p.startswith("old/") for p in paths)


async def test_directory_rename_split_across_reads_rebases_watches(root: Path, watcher: Watcher) -> None:
    """MOVED_FROM and MOVED_TO in different read()s (a full buffer ends between them).

    The reader's buffer is made one long event big (long names: an event of
    224 bytes in a 272-byte read), so the rename is split; in real use that
    happens whenever a burst fills the buffer up to the MOVED_FROM.
    """
    old, new = "o" * 200, "n" * 200
    (root / old / "sub").mkdir(parents=True)
    watcher.add_tree()
    watcher._inotify.cache_size = 1  # noqa: SLF001 - one long event per read()
    reader = Reader(watcher)
    os.rename(root / old, root / new)
    await reader.rescan(new)
    (root / new / "a.html").write_text("x")
    (root / new / "sub" / "b.html").write_text("y")
    news = await reader.touched(f"{new}/sub/b.html")
    paths = touched_paths(news)
    assert f"{new}/a.html" in paths
    assert not any(p.startswith(f"{old}/") for p in paths), paths


async def test_directory_moved_out_of_the_root_is_no_longer_watched(
    root: Path, watcher: Watcher, tmp_path: Path
) -> None:
    (root / "leaving" / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    watcher.add_tree()
    count = watcher.watch_count
    reader = Reader(watcher)
    os.rename(root / "leaving", outside / "leaving")
    news = await reader.rescan("leaving")
    assert rescans(news)[-1].reason == "directory moved away"
    assert watcher.watch_count == count - 2
    # Changes out there are none of the root's business.
    (outside / "leaving" / "a.html").write_text("x")
    (outside / "leaving" / "sub" / "b.html").write_text("y")
    news = await reader.sentinel(root)
    assert not any(p.startswith("leaving/") for p in touched_paths(news)), touched_paths(news)


async def test_directory_moved_in_from_outside_is_watched_and_rescanned(
    root: Path, watcher: Watcher, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / "incoming"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "f.html").write_text("x")
    watcher.add_tree()
    count = watcher.watch_count
    reader = Reader(watcher)
    os.rename(outside, root / "incoming")
    news = await reader.rescan("incoming")
    assert rescans(news)[-1].reason == "directory moved in"
    assert watcher.watch_count == count + 2
    (root / "incoming" / "sub" / "g.html").write_text("y")
    await reader.touched("incoming/sub/g.html")


async def test_deleted_directory_is_forgotten_and_rescanned(root: Path, watcher: Watcher) -> None:
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "sub" / "f.html").write_text("x")
    watcher.add_tree()
    count = watcher.watch_count
    reader = Reader(watcher)
    (root / "d" / "sub" / "f.html").unlink()
    (root / "d" / "sub").rmdir()
    (root / "d").rmdir()
    await reader.rescan("d")
    await reader.sentinel(root)
    assert "d/sub/f.html" in touched_paths(reader.seen)
    assert watcher.watch_count == count - 2


async def test_dot_directories_are_not_watched(root: Path, watcher: Watcher) -> None:
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".mybb-sync").mkdir()
    watcher.add_tree()
    assert watcher.watch_count == 1
    reader = Reader(watcher)
    (root / ".git" / "objects" / "x").write_text("x")
    (root / ".mybb-sync" / "state.sqlite").write_text("x")
    (root / ".cache").mkdir()
    news = await reader.sentinel(root)
    assert rescans(news) == []
    assert touched_paths(news) == {p for p in touched_paths(news) if p.startswith("sentinel-")}


async def test_symlinked_directories_are_never_watched_or_followed(
    root: Path, watcher: Watcher, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    (target / "deep").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "link-before").symlink_to(target, target_is_directory=True)
    (root / "real" / "link-inside").symlink_to(target / "deep", target_is_directory=True)
    watcher.add_tree()
    assert watcher.watch_count == 2  # the root and real/, not the links
    reader = Reader(watcher)
    (root / "link-after").symlink_to(target, target_is_directory=True)  # CREATE of a symlink: no ISDIR
    (target / "a.html").write_text("outside the root")
    (target / "deep" / "b.html").write_text("outside the root")
    news = await reader.sentinel(root)
    assert rescans(news) == []
    assert touched_paths(news) == {p for p in touched_paths(news) if p.startswith("sentinel-")}
    assert watcher.watch_count == 2


async def test_symlink_renamed_into_place_is_not_followed(root: Path, watcher: Watcher, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    watcher.add_tree()
    reader = Reader(watcher)
    os.rename(link, root / "moved-link")
    await reader.touched("moved-link")  # reported as a name to look at (and refused by lstat), not watched
    (target / "a.html").write_text("x")
    news = await reader.sentinel(root)
    assert rescans(news) == []
    assert watcher.watch_count == 1


# -- overflow --------------------------------------------------------------------------


async def test_queue_overflow_yields_a_full_rescan(root: Path) -> None:
    """Lose events for real: a small kernel queue, not read while it fills up."""
    (root / "d").mkdir()
    with queue_limit(32):
        w = Watcher(root, ".tmp")  # the instance keeps the limit it was made with
    try:
        w.add_tree()
        reader = Reader(w)
        for i in range(200):  # one CLOSE_WRITE each, nothing reads meanwhile
            (root / "d" / f"f{i}.html").write_text(str(i))
        news = await reader.until(lambda n: isinstance(n, Rescan) and n.prefix == "")
        assert rescans(news)[-1].reason == "inotify queue overflow"
        assert len(touched_paths(news)) < 200  # events were really lost
        # The watcher goes on after an overflow.
        (root / "d" / "after.html").write_text("x")
        await reader.touched("d/after.html")
    finally:
        w.close()


async def test_an_overflow_forgets_who_was_writing(root: Path) -> None:
    """The writer's close may be among the lost events: after an overflow nobody is known to
    be writing, and the rescan says events were lost."""
    (root / "d").mkdir()
    target = root / "open.html"
    target.write_text("before")
    with queue_limit(32):
        w = Watcher(root, ".tmp")
    try:
        w.add_tree()
        reader = Reader(w)
        fd = os.open(target, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, b"half")
            await reader.sentinel(root)
            assert w.writing == {"open.html"}
            for i in range(200):  # nothing reads meanwhile
                (root / "d" / f"f{i}.html").write_text(str(i))
            news = await reader.until(lambda n: isinstance(n, Rescan) and n.prefix == "")
            assert rescans(news)[-1].lost
            assert w.writing == set()
            os.write(fd, b" and more")  # a write after the overflow is seen again
            await reader.sentinel(root)
            assert w.writing == {"open.html"}
        finally:
            os.close(fd)
        await reader.touched("open.html")
        assert w.writing == set()
    finally:
        w.close()


async def test_folders_made_while_events_were_lost_are_watched_after_the_overflow(root: Path) -> None:
    """Their IN_CREATE was dropped with the overflow: the rescan must come with watches for them."""
    with queue_limit(20):
        w = Watcher(root, ".tmp")
    try:
        w.add_tree()
        reader = Reader(w)
        for i in range(60):  # CREATE (dir) + CREATE + CLOSE_WRITE each: most are lost
            (root / f"new{i}").mkdir()
            (root / f"new{i}" / "f.html").write_text("x")
        await reader.until(lambda n: isinstance(n, Rescan) and n.prefix == "")
        assert w.watch_count == 61
        for i in (0, 30, 59):
            (root / f"new{i}" / "g.html").write_text("y")
            await reader.touched(f"new{i}/g.html")
    finally:
        w.close()


async def test_overflow_forgets_folders_gone_meanwhile_and_fixes_renamed_ones(root: Path, tmp_path: Path) -> None:
    (root / "stays").mkdir()
    (root / "leaves").mkdir()
    (root / "renamed-from").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    with queue_limit(20):
        w = Watcher(root, ".tmp")
    try:
        w.add_tree()
        reader = Reader(w)
        for i in range(40):  # fill the queue: what follows is lost
            (root / "stays" / f"f{i}.html").write_text("x")
        os.rename(root / "leaves", outside / "leaves")
        os.rename(root / "renamed-from", root / "renamed-to")
        await reader.until(lambda n: isinstance(n, Rescan) and n.prefix == "")
        assert w.watch_count == 3  # the root, stays/, renamed-to/
        (outside / "leaves" / "a.html").write_text("x")
        (root / "renamed-to" / "b.html").write_text("y")
        news = await reader.touched("renamed-to/b.html")
        assert not any(p.startswith(("leaves/", "renamed-from/")) for p in touched_paths(news)), touched_paths(news)
    finally:
        w.close()
