"""The drivers' private corners we rely on (src/mybb_sync/_compat.py) are still where we use them.

If a new aiomysql or asyncinotify release moves them, these fail first and say which."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiomysql
import anyio
import pytest
from asyncinotify import Inotify, Mask

from mybb_sync._compat import ESCAPE_HOOK, INOTIFY_BUFFER, cursor_with_escaping, take_buffered
from mybb_sync.config import Database

pytestmark = pytest.mark.anyio


async def _connect(db: Database, cursorclass: type[aiomysql.Cursor]) -> aiomysql.Connection:
    kwargs: dict[str, Any] = dict(user=db.user, password=db.password, db=db.name, cursorclass=cursorclass)
    if db.unix_socket:
        kwargs["unix_socket"] = db.unix_socket
    else:
        kwargs.update(host=db.host, port=db.port)
    return await aiomysql.connect(**kwargs)


def test_aiomysql_cursor_still_has_the_escape_hook() -> None:
    assert callable(getattr(aiomysql.Cursor, ESCAPE_HOOK, None)), f"aiomysql.Cursor.{ESCAPE_HOOK} is gone"


async def test_aiomysql_calls_the_escape_hook_for_every_statement_with_parameters(server_db: Database) -> None:
    seen: list[Any] = []

    def escape(cursor: aiomysql.Cursor, args: Any, conn: Any) -> Any | None:
        seen.append(args)
        return ("'from the hook'",) if args == ("x",) else None

    conn = await _connect(server_db, cursor_with_escaping(escape))
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT %s", ("x",))
            assert await cur.fetchone() == ("from the hook",)
            await cur.execute("SELECT %s", (7,))  # None: aiomysql's own escaping
            assert await cur.fetchone() == (7,)
    finally:
        conn.close()
    assert seen == [("x",), (7,)]


async def test_asyncinotify_still_buffers_the_rest_of_a_read(tmp_path: Path) -> None:
    with Inotify() as inotify:
        assert isinstance(getattr(inotify, INOTIFY_BUFFER, None), list), (
            f"asyncinotify.Inotify.{INOTIFY_BUFFER} is gone"
        )
        inotify.add_watch(tmp_path, Mask.CLOSE_WRITE)
        for name in "abc":
            (tmp_path / name).write_text(name)
        with anyio.fail_after(5):
            first = await inotify.get()
        rest = take_buffered(inotify)
        assert [e.name.name for e in [first, *rest] if e.name is not None] == ["a", "b", "c"]
        assert take_buffered(inotify) == []
