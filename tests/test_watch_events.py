"""The watcher's translation of kernel events into news, fed synthetic events (no kernel queue).

Each test hands :meth:`Watcher._handle` the events one read would return and looks at what
they became: touched files, rescans, files being written, things passed over.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from asyncinotify import Mask

from mybb_sync.watch import Rescan, Watcher

FOLDER = "template_sets/Default Templates/ungrouped"


@dataclass
class FakeWatch:
    path: Path


@dataclass
class FakeEvent:
    mask: Mask
    watch: FakeWatch | None
    name: Path | None
    cookie: int = 0


@pytest.fixture
def watcher(tmp_path: Path) -> Watcher:
    (tmp_path / FOLDER).mkdir(parents=True)
    w = Watcher(tmp_path, ".tmp")
    yield w
    w.close()


def read(watcher: Watcher, *events: FakeEvent) -> tuple[set[str], list[Rescan]]:
    """What one read of ``events`` becomes: (touched paths, rescans)."""
    touched: set[str] = set()
    rescans: list[Rescan] = []
    for event in events:
        watcher._handle(event, touched, rescans)  # type: ignore[arg-type]
    touched |= watcher._expire_moves()
    return touched, rescans


def on(watcher: Watcher, mask: Mask, name: str, cookie: int = 0, folder: str = FOLDER) -> FakeEvent:
    return FakeEvent(mask, FakeWatch(watcher.root / folder), Path(name), cookie)


def test_a_closed_write_touches_the_file(watcher: Watcher) -> None:
    assert read(watcher, on(watcher, Mask.CLOSE_WRITE, "footer.html")) == ({f"{FOLDER}/footer.html"}, [])


def test_a_write_without_its_close_marks_the_file_as_being_written(watcher: Watcher) -> None:
    touched, _ = read(watcher, on(watcher, Mask.MODIFY, "footer.html"))
    assert touched == set() and watcher.writing == {f"{FOLDER}/footer.html"}
    touched, _ = read(watcher, on(watcher, Mask.CLOSE_WRITE, "footer.html"))
    assert touched == {f"{FOLDER}/footer.html"} and watcher.writing == set()


def test_a_rename_in_one_read_touches_both_names_and_carries_the_writer(watcher: Watcher) -> None:
    read(watcher, on(watcher, Mask.MODIFY, "a.html"))
    touched, _ = read(watcher, on(watcher, Mask.MOVED_FROM, "a.html", 7), on(watcher, Mask.MOVED_TO, "b.html", 7))
    assert touched == {f"{FOLDER}/a.html", f"{FOLDER}/b.html"}
    assert watcher.writing == {f"{FOLDER}/b.html"}


def test_a_file_moved_out_of_the_root_is_touched_and_no_longer_written(watcher: Watcher) -> None:
    read(watcher, on(watcher, Mask.MODIFY, "a.html"))
    touched, _ = read(watcher, on(watcher, Mask.MOVED_FROM, "a.html", 9))
    assert touched == {f"{FOLDER}/a.html"} and watcher.writing == set()


@pytest.mark.parametrize("name", [".footer.html.swp", "footer.html~", "4913", "footer.html.tmp", "#footer.html#"])
def test_scratch_files_of_editors_and_our_own_temps_are_not_news(watcher: Watcher, name: str) -> None:
    assert read(watcher, on(watcher, Mask.CLOSE_WRITE, name), on(watcher, Mask.MODIFY, name)) == (set(), [])
    assert watcher.writing == set()


def test_an_overflow_rescans_everything_and_forgets_the_writers(watcher: Watcher) -> None:
    read(watcher, on(watcher, Mask.MODIFY, "a.html"))
    touched, rescans = read(watcher, FakeEvent(Mask.Q_OVERFLOW, None, None))
    assert touched == set() and [(r.prefix, r.lost) for r in rescans] == [("", True)]
    assert watcher.writing == set()


def test_a_new_symlink_is_passed_over_with_why(watcher: Watcher, tmp_path: Path) -> None:
    os.symlink(tmp_path, watcher.root / FOLDER / "linked.html")
    touched, _ = read(watcher, on(watcher, Mask.CREATE, "linked.html"))
    assert touched == set()
    assert watcher._passed == {f"{FOLDER}/linked.html": "is a symlink (never followed)"}


def test_a_new_regular_file_waits_for_its_close(watcher: Watcher) -> None:
    (watcher.root / FOLDER / "new.html").write_text("")
    assert read(watcher, on(watcher, Mask.CREATE, "new.html")) == (set(), [])
    assert watcher._passed == {}


def test_a_new_folder_is_rescanned_and_one_at_a_file_position_is_passed_over(watcher: Watcher) -> None:
    (watcher.root / FOLDER / "x.html").mkdir()
    _, rescans = read(watcher, on(watcher, Mask.CREATE | Mask.ISDIR, "x.html"))
    assert [r.prefix for r in rescans] == [f"{FOLDER}/x.html"]
    assert watcher._passed == {f"{FOLDER}/x.html": "is a folder where a file belongs"}
