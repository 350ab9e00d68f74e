"""The service on both engines MyBB supports here: MariaDB and a SQLite board (the embedded default).

These are the service behaviours that need no server to stop; the outage tests
are MariaDB's alone (a SQLite file has no server).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mybb_sync import layout
from mybb_sync.config import Database
from mybb_sync.synthetic import Board

from conftest import raw_sql
from service_helpers import running_service, tpath, wait_file, write

pytestmark = pytest.mark.anyio

SPEC = Board(masters=200)
INHERITED = SPEC.master_title(1)  # no set copy
OWN = SPEC.master_title(20)  # every 20th master has one


@pytest.fixture
def board_spec() -> Board:
    return SPEC


async def rows(db: Database, title: str) -> list[tuple[int, str]]:
    return [(int(sid), text) for sid, text in await raw_sql(
        db, "SELECT sid, template FROM mybb_templates WHERE BINARY title = %s ORDER BY sid", (title,)
    )]  # fmt: skip


async def test_saving_an_inherited_template_creates_the_set_copy(board: Database, root: Path) -> None:
    async with running_service(board, root) as svc:
        mark = svc.log.mark()
        write(root / tpath(INHERITED), "<p>mine</p>\n\n")
        await svc.imported([tpath(INHERITED)], since=mark)
    assert [r for r in await rows(board, INHERITED) if r[0] == 1] == [(1, "<p>mine</p>")]


async def test_a_database_edit_reaches_the_file(board: Database, root: Path) -> None:
    async with running_service(board, root, poll_interval=0.2):
        await raw_sql(
            board,
            "UPDATE mybb_templates SET template = %s, dateline = %s WHERE sid = 1 AND BINARY title = %s",
            ("<p>from the Admin CP</p>", int(time.time()), OWN),
        )
        await wait_file(root / tpath(OWN), lambda data: data == b"<p>from the Admin CP</p>")


async def test_an_unchanged_save_writes_nothing(board: Database, root: Path) -> None:
    async with running_service(board, root) as svc:
        before = await raw_sql(board, "SELECT tid, dateline FROM mybb_templates ORDER BY tid")
        path = root / tpath(INHERITED)
        write(path, path.read_bytes())
        await svc.barrier()
        assert await raw_sql(board, "SELECT tid, dateline FROM mybb_templates ORDER BY tid") == before


async def test_an_empty_save_never_reaches_the_database(board: Database, root: Path) -> None:
    async with running_service(board, root) as svc:
        before = await rows(board, OWN)
        write(root / tpath(OWN), b"")
        await svc.barrier()
        assert await rows(board, OWN) == before


async def test_a_stylesheet_edit_writes_the_forums_cache_files(board: Database, root: Path, tmp_path: Path) -> None:
    forum = tmp_path / "forum"
    (forum / "cache" / "themes").mkdir(parents=True)
    async with running_service(board, root, mybb_root=forum) as svc:
        mark = svc.log.mark()
        path = root / layout.stylesheet_path("Default", "usercp.css")
        write(path, ".usercp { color: #FFFFFF; }\n")
        await svc.imported([layout.stylesheet_path("Default", "usercp.css")], since=mark)
    assert (forum / "cache/themes/theme2/usercp.css").read_bytes() == b".usercp { color: #FFFFFF; }\n"
    assert (forum / "cache/themes/theme2/usercp.min.css").read_bytes() == b".usercp{color:#FFF}"
    assert (forum / "cache/themes/theme2/index.html").read_bytes() == b""
    copies = await raw_sql(
        board, "SELECT tid, stylesheet FROM mybb_themestylesheets WHERE name = 'usercp.css' ORDER BY tid"
    )
    assert [(int(t), s) for t, s in copies] == [(1, SPEC.stylesheets()[1][3]), (2, ".usercp { color: #FFFFFF; }\n")]
