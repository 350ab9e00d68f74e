"""Stylesheet edits through the running service leave the database and the forum's cache folder
exactly as an Admin CP save would (the pure rules are golden-tested in test_stylesheets.py)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from mybb_sync import layout, php
from mybb_sync.config import Database
from mybb_sync.layout import Kind
from mybb_sync.offline import offline_status
from mybb_sync.reconcile import content_hash
from mybb_sync.state import State
from mybb_sync.store import open_store
from mybb_sync.stylesheets import build_stylesheet_list, cache_css, default_theme_cache, minify_css
from mybb_sync.synthetic import Board

from conftest import raw_sql
from service_helpers import cli, db_url, running_service, write

pytestmark = pytest.mark.anyio


SPEC = Board(masters=100)


@pytest.fixture
def board_spec() -> Board:
    return SPEC


@pytest.fixture
def forum(tmp_path: Path) -> Path:
    (tmp_path / "forum" / "cache" / "themes").mkdir(parents=True)
    return tmp_path / "forum"


def sheet_path(theme: str, name: str) -> str:
    return layout.stylesheet_path(theme, name)


async def sheets(db: Database, name: str) -> list[tuple[int, int, str, str, int]]:
    rows = await raw_sql(
        db,
        "SELECT sid, tid, stylesheet, cachefile, lastmodified FROM mybb_themestylesheets WHERE name = %s ORDER BY tid",
        (name,),
    )
    return [(int(a), int(b), c, d, int(e)) for a, b, c, d, e in rows]


async def theme_lists(db: Database) -> dict[int, tuple[str, str]]:
    rows = await raw_sql(db, "SELECT tid, properties, stylesheets FROM mybb_themes ORDER BY tid")
    return {int(t): (p, s) for t, p, s in rows}


async def default_theme(db: Database) -> str:
    return (await raw_sql(db, "SELECT cache FROM mybb_datacache WHERE title = 'default_theme'"))[0][0]


def mtime_of(forum: Path):  # noqa: ANN201 - the CacheFileMtime the Admin CP's rebuild would see
    def mtime(tid: int, name: str) -> int | None:
        path = forum / "cache" / "themes" / f"theme{tid}" / name
        return int(path.stat().st_mtime) if path.exists() else None

    return mtime


async def test_editing_an_inherited_stylesheet_copies_it_down_writes_the_cache_and_rebuilds_the_lists(
    board: Database, root: Path, forum: Path
) -> None:
    text = ".usercp_nav_item {\n\tpadding: 0px 0px 0px 0px;\n\tbackground: url(images/x.png);\n}\n"
    async with running_service(board, root, mybb_root=forum) as svc:
        mark = svc.log.mark()
        write(root / sheet_path("Default", "usercp.css"), text)
        await svc.imported([sheet_path("Default", "usercp.css")], since=mark)
    master, copy = await sheets(board, "usercp.css")
    assert master[1] == 1 and master[2] == SPEC.stylesheets()[1][3]  # the parent row is untouched
    assert copy[1:4] == (2, text, "usercp.css")
    assert (forum / "cache/themes/theme2/usercp.css").read_bytes() == cache_css(text, 2)
    assert (forum / "cache/themes/theme2/usercp.min.css").read_bytes() == minify_css(cache_css(text, 2))
    async with open_store(board, "mybb_") as store:
        themes, rows = await store.themes(), await store.stylesheets()
    for theme in themes:  # the Admin CP's rebuild, from the rows and files as they are now
        assert theme.stylesheets == build_stylesheet_list(themes, rows, theme.tid, mtime_of(forum))
    assert "cache/themes/theme2/usercp.css" in php.loads(themes[1].stylesheets)["usercp.php"]["global"].values()
    assert await default_theme(board) == default_theme_cache(next(t for t in themes if t.def_))


async def test_editing_an_own_stylesheet_rewrites_its_cache_files_and_lastmodified_only(
    board: Database, root: Path, forum: Path
) -> None:
    path = root / sheet_path("Default", "color_blue.css")
    async with running_service(board, root, mybb_root=forum) as svc:
        mark = svc.log.mark()
        write(path, ".thead {\n\tbackground: #1D4E89;\n}\n")  # the first save lists the cache file
        await svc.imported([sheet_path("Default", "color_blue.css")], since=mark)
        before_themes, before_default = await theme_lists(board), await default_theme(board)
        [(sid, tid, _, cachefile, lastmodified)] = await sheets(board, "color_blue.css")
        mark = svc.log.mark()
        write(path, ".thead {\n\tbackground: #FFFFFF;\n}\n")
        await svc.imported([sheet_path("Default", "color_blue.css")], since=mark)
    [after] = await sheets(board, "color_blue.css")
    assert after[:4] == (sid, tid, ".thead {\n\tbackground: #FFFFFF;\n}\n", cachefile)
    assert after[4] >= lastmodified
    assert (forum / "cache/themes/theme2/color_blue.min.css").read_bytes() == b".thead{background:#FFF}"
    # As in the captured Admin CP save of an own sheet: themes and default_theme byte-identical.
    assert await theme_lists(board) == before_themes
    assert await default_theme(board) == before_default


LANDED = sheet_path("Default", "color_blue.css")
LANDED_TEXT = ".thead {\n\tbackground: #123456;\n}\n"


async def a_save_cut_short_after_its_row(board: Database, root: Path, forum: Path) -> None:
    """As if stopped (a SIGKILL, an outage, an abandoned write) between a stylesheet's row and
    its cache file: the file edited, the intent recorded, the row written, nothing else."""
    async with running_service(board, root, mybb_root=forum):
        pass
    write(root / LANDED, LANDED_TEXT)
    with closing(State(root)) as state:
        state.record_intents({LANDED: content_hash(Kind.STYLESHEET, LANDED_TEXT)})
    await raw_sql(
        board,
        "UPDATE mybb_themestylesheets SET stylesheet = %s WHERE tid = 2 AND name = 'color_blue.css'",
        (LANDED_TEXT,),
    )


def intents(root: Path) -> dict[str, str]:
    with closing(State(root)) as state:
        return state.intents([LANDED])


async def test_a_stylesheet_whose_row_landed_but_not_its_cache_file_is_published_at_the_next_start(
    board: Database, root: Path, forum: Path
) -> None:
    """The row equal to the intent recorded before the write proves the row ours; the save
    is finished, once."""
    await a_save_cut_short_after_its_row(board, root, forum)
    async with running_service(board, root, mybb_root=forum):
        pass
    assert (forum / "cache/themes/theme2/color_blue.css").read_bytes() == cache_css(LANDED_TEXT, 2)
    assert (forum / "cache/themes/theme2/color_blue.min.css").read_bytes() == b".thead{background:#123456}"
    assert [s[2] for s in await sheets(board, "color_blue.css")] == [LANDED_TEXT]
    assert intents(root) == {}
    rows = await sheets(board, "color_blue.css")
    async with running_service(board, root, mybb_root=forum):
        pass
    assert await sheets(board, "color_blue.css") == rows  # done once, not at every start


async def test_a_landed_stylesheet_the_service_cannot_publish_is_settled_not_retried(
    board: Database, root: Path
) -> None:
    """Without --mybb-root the save cannot be finished: said once, then settled (its row is ours)."""
    forum = root.parent / "unused-forum"
    (forum / "cache" / "themes").mkdir(parents=True)
    await a_save_cut_short_after_its_row(board, root, forum)
    async with running_service(board, root) as svc:
        assert any("cannot finish the save of " + LANDED in line for line in svc.log.lines)
    assert intents(root) == {}
    assert LANDED not in {p["path"] for p in offline_status(root)["problems"]}
    async with running_service(board, root) as svc:
        assert not any(LANDED in line for line in svc.log.lines)


async def test_a_one_way_export_leaves_a_landed_stylesheet_to_the_service(
    board: Database, root: Path, forum: Path, tmp_path: Path
) -> None:
    await a_save_cut_short_after_its_row(board, root, forum)
    await cli("export", "--db", db_url(board), "--root", str(root), cwd=tmp_path)
    assert intents(root) != {}
    async with running_service(board, root, mybb_root=forum):
        pass
    assert (forum / "cache/themes/theme2/color_blue.css").read_bytes() == cache_css(LANDED_TEXT, 2)


async def test_an_imported_stylesheet_is_not_echoed_back(board: Database, root: Path, forum: Path) -> None:
    async with running_service(board, root, mybb_root=forum, poll_interval=0.2) as svc:
        mark = svc.log.mark()
        write(root / sheet_path("Default", "global.css"), "body { color: #000; }\n")
        await svc.imported([sheet_path("Default", "global.css")], since=mark)
        rows, lists = await sheets(board, "global.css"), await theme_lists(board)
        await svc.handle.rescan()  # a full pass compares everything again
        await svc.barrier()
        assert await sheets(board, "global.css") == rows
        assert await theme_lists(board) == lists
        assert sum("imported" in line for line in svc.log.since(mark)) == 1


async def test_a_new_css_file_in_a_theme_folder_adds_a_stylesheet_for_every_page(
    board: Database, root: Path, forum: Path
) -> None:
    async with running_service(board, root, mybb_root=forum) as svc:
        mark = svc.log.mark()
        write(root / sheet_path("Default", "extra.css"), ".extra { margin: 0; }\n")
        await svc.imported([sheet_path("Default", "extra.css")], since=mark)
    rows = await raw_sql(board, "SELECT tid, attachedto, cachefile FROM mybb_themestylesheets WHERE name = 'extra.css'")
    assert [(int(t), a, c) for t, a, c in rows] == [(2, "", "extra.css")]
    properties = php.loads((await theme_lists(board))[2][0])
    assert list(properties["disporder"])[-1] == "extra.css"


async def test_without_the_forum_root_stylesheets_are_refused_and_the_start_up_says_why(
    board: Database, root: Path
) -> None:
    before = await sheets(board, "global.css")
    async with running_service(board, root) as svc:
        assert any("no --mybb-root" in line for line in svc.log.lines)
        write(root / sheet_path("Default", "global.css"), "body { color: red; }\n")
        await svc.barrier()
        assert any("refused" in line and "global.css" in line for line in svc.log.lines)
    assert await sheets(board, "global.css") == before


async def test_an_unwritable_cache_folder_falls_back_to_css_php_like_mybb(
    board: Database, root: Path, forum: Path
) -> None:
    (forum / "cache" / "themes" / "theme2").write_text("a file where the folder should be")
    async with running_service(board, root, mybb_root=forum) as svc:
        mark = svc.log.mark()
        write(root / sheet_path("Default", "showthread.css"), "ul.thread_tools li { padding: 0; }\n")
        await svc.imported([sheet_path("Default", "showthread.css")], since=mark)
        assert any("css.php" in line for line in svc.log.since(mark))
    [_, copy] = await sheets(board, "showthread.css")
    assert copy[3] == f"css.php?stylesheet={copy[0]}"
    lists = php.loads((await theme_lists(board))[2][1])
    assert f"css.php?stylesheet={copy[0]}" in lists["showthread.php"]["global"].values()
