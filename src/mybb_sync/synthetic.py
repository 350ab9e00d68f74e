"""A realistic synthetic MyBB board, deterministic for a seed.

Shared by the tests, the benchmark and the demo: template sizes drawn like a
real board's (most 100 B - 2 KB, a few up to 18 KB), titles spread over
MyBB's group prefixes, a template set overriding some masters, global
templates, and a parent/child theme pair with inherited and own stylesheets.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiosqlite

from . import php
from .config import Database
from .schema import PGSQL_SERIALS, pgsql_ddl, sqlite_ddl
from .stylesheets import Stylesheet, Theme, build_stylesheet_list, default_theme_cache

VERSION_CODE = 1837
INSTALL_TIME = 1_700_000_000

GROUP_PREFIXES = (
    "announcement", "calendar", "editpost", "error", "footer", "forumbit", "forumdisplay", "forumjump",
    "global", "header", "index", "managegroup", "member", "memberlist", "misc", "modcp", "moderation",
    "multipage", "mycode", "nav", "newreply", "newthread", "online", "polls", "portal", "post", "postbit",
    "posticons", "printthread", "private", "report", "reputation", "search", "sendthread", "showteam",
    "showthread", "smilieinsert", "stats", "usercp", "video", "warnings", "xmlhttp",
)  # fmt: skip

_WORDS = (
    "thead", "trow1", "trow2", "tborder", "smalltext", "largetext", "float_right", "pagination",
    "lang", "mybb", "settings", "bburl", "theme", "imgdir", "username", "forum", "thread", "post",
)  # fmt: skip

_CSS = {
    "global.css": "body {\n\tbackground: #fff;\n\tcolor: #333;\n\tfont-family: Tahoma, Verdana, Arial, Sans-Serif;\n}\n\n"
    ".thead {\n\tbackground: #0066a2 url(images/thead.png) top left repeat-x;\n\tcolor: #ffffff;\n}\n",
    "usercp.css": ".usercp_nav_item {\n\tdisplay: block;\n\tpadding: 1px 0 1px 23px;\n}\n",
    "showthread.css": "ul.thread_tools li {\n\tlist-style: none;\n\tpadding-left: 24px;\n}\n",
    "color_blue.css": ".thead {\n\tbackground: #1d4e89 url({theme}/images/colors/blue_thead.png) top left repeat-x;\n}\n",
}


@dataclass(frozen=True)
class Board:
    """The rows of a synthetic board; ``templates()`` streams the template rows."""

    masters: int
    seed: int = 1
    set_title: str = "Default Templates"
    override_ratio: float = 0.05
    globals_count: int = 5
    groups: tuple[str, ...] = GROUP_PREFIXES
    version_code: int = VERSION_CODE
    extra_sets: tuple[str, ...] = field(default_factory=tuple)

    def templatesets(self) -> list[tuple[int, str]]:
        return [(1, self.set_title), *((i + 2, t) for i, t in enumerate(self.extra_sets))]

    def templategroups(self) -> list[tuple[str, str]]:
        return [(p, f"<lang:group_{p}>") for p in self.groups]

    def master_title(self, i: int) -> str:
        if i % 50 == 49:
            return f"custom{i}"  # no known prefix: ungrouped
        return f"{self.groups[i % len(self.groups)]}_{_WORDS[(i // len(self.groups)) % len(_WORDS)]}{i}"

    def templates(self) -> Iterator[tuple[str, str, int, str, int]]:
        """(title, template, sid, version, dateline) for masters, globals and set copies."""
        rng = random.Random(self.seed)
        version = str(self.version_code)
        for i in range(self.masters):
            title = self.master_title(i)
            yield title, template_text(rng, title), -2, version, INSTALL_TIME
        for i in range(self.globals_count):
            title = f"global_shared{i}"
            yield title, template_text(rng, title), -1, version, INSTALL_TIME
        step = round(1 / self.override_ratio) if self.override_ratio else 0
        for i in range(0, self.masters if step else 0, step or 1):
            title = self.master_title(i)
            yield title, template_text(rng, title) + "\n<!-- set copy -->", 1, version, INSTALL_TIME

    def themes(self) -> list[tuple[int, str, int, int, str]]:
        """(tid, name, pid, def, properties) for MyBB Master Style, Default and a child theme."""
        return [
            (1, "MyBB Master Style", 0, 0, _properties(-2, ["global.css", "usercp.css", "showthread.css"])),
            (2, "Default", 1, 1, _properties(1, ["global.css", "usercp.css", "showthread.css", "color_blue.css"])),
            (3, "Child Theme", 2, 0, _properties(1, ["global.css", "usercp.css", "showthread.css", "color_blue.css"])),
        ]

    def stylesheets(self) -> list[tuple[str, int, str, str]]:
        """(name, tid, attachedto, stylesheet): masters on tid 1, own copies below."""
        return [
            ("global.css", 1, "", _CSS["global.css"]),
            ("usercp.css", 1, "usercp.php|private.php", _CSS["usercp.css"]),
            ("showthread.css", 1, "showthread.php", _CSS["showthread.css"]),
            ("color_blue.css", 2, "blue", _CSS["color_blue.css"]),
            ("global.css", 3, "", _CSS["global.css"] + "\n/* child theme */\n"),
        ]

    def datacache_version(self) -> str:
        return php.dumps({"version": "1.8.37", "version_code": self.version_code})


def _properties(templateset: int, order: list[str]) -> str:
    return php.dumps(
        {
            "templateset": templateset,
            "imgdir": "images",
            "logo": "images/logo.png",
            "tablespace": "5",
            "borderwidth": "0",
            "editortheme": "mybb.css",
            "disporder": {name: i + 1 for i, name in enumerate(order)},
        }
    )


def template_text(rng: random.Random, title: str) -> str:
    """HTML with MyBB variables; size drawn like a real board's templates."""
    roll = rng.random()
    if roll < 0.02:
        size = rng.randint(4_000, 18_000)
    elif roll < 0.10:
        size = rng.randint(2_000, 4_000)
    else:
        size = int(rng.lognormvariate(6.0, 0.7)) + 100
    size = min(size, 18_000)
    parts = [f'<div class="{title}">\n']
    total = len(parts[0])
    while total < size:
        word = _WORDS[rng.randrange(len(_WORDS))]
        line = f'\t<span class="{word}">{{$lang->{word}}} {{$mybb->{word}}}</span>\n'
        parts.append(line)
        total += len(line)
    parts.append("</div>")
    return "".join(parts)


Run = Callable[..., Awaitable[Any]]


async def install_board(run: Run, run_many: Run, board: Board, p: str) -> None:
    """Insert every row of ``board`` (``%s`` placeholders; the caller adapts them)."""
    await run_many(f"INSERT INTO `{p}templatesets` (sid, title) VALUES (%s, %s)", board.templatesets())
    await run_many(
        f"INSERT INTO `{p}templategroups` (prefix, title, isdefault) VALUES (%s, %s, 1)", board.templategroups()
    )
    await run(f"INSERT INTO `{p}datacache` (title, cache) VALUES ('version', %s)", (board.datacache_version(),))
    batch: list[tuple[str, str, int, str, int]] = []
    for row in board.templates():
        batch.append(row)
        if len(batch) >= 500:
            await _insert_templates(run, p, batch)
            batch = []
    if batch:
        await _insert_templates(run, p, batch)
    sheets = [
        Stylesheet(sid, name, tid, attached, text, name, 1_700_000_000)
        for sid, (name, tid, attached, text) in enumerate(board.stylesheets(), start=1)
    ]
    await run_many(
        f"INSERT INTO `{p}themestylesheets` (sid, name, tid, attachedto, stylesheet, cachefile, lastmodified) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [(s.sid, s.name, s.tid, s.attachedto, s.stylesheet, s.cachefile, s.lastmodified) for s in sheets],
    )
    themes = [Theme(tid, name, pid, d, props, "") for tid, name, pid, d, props in board.themes()]
    themes = [
        replace(t, stylesheets=build_stylesheet_list(themes, sheets, t.tid, lambda tid, name: None)) for t in themes
    ]
    await run_many(
        f"INSERT INTO `{p}themes` (tid, name, pid, def, properties, stylesheets, allowedgroups) "
        "VALUES (%s, %s, %s, %s, %s, %s, 'all')",
        [(t.tid, t.name, t.pid, t.def_, t.properties, t.stylesheets) for t in themes],
    )
    default = next(t for t in themes if t.def_)
    await run(
        f"INSERT INTO `{p}datacache` (title, cache) VALUES ('default_theme', %s)", (default_theme_cache(default),)
    )


async def _insert_templates(run: Run, p: str, rows: list[tuple[str, str, int, str, int]]) -> None:
    values = ", ".join(["(%s, %s, %s, %s, '', %s)"] * len(rows))
    await run(
        f"INSERT INTO `{p}templates` (title, template, sid, version, status, dateline) VALUES {values}",
        [v for row in rows for v in row],
    )


async def install_postgres_board(conn: Any, board: Board, prefix: str = "mybb_") -> None:
    """``board`` in the current database of ``conn`` (an asyncpg connection), laid out like
    MyBB's pgsql engine; the sequences moved past the ids given, as MyBB's installer does."""
    from .store.postgres import pg_sql

    async def run(sql: str, args: Sequence[Any] = ()) -> None:
        await conn.execute(pg_sql(sql), *args)

    async def run_many(sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await conn.executemany(pg_sql(sql), rows)

    async with conn.transaction():
        for ddl in pgsql_ddl(prefix):
            await conn.execute(ddl)
        await install_board(run, run_many, board, prefix)
        for table, column in PGSQL_SERIALS.items():
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{prefix}{table}', '{column}'), "
                f"(SELECT MAX({column}) FROM {prefix}{table}))"
            )


async def create_sqlite_board(path: Path, board: Board, prefix: str = "mybb_") -> Database:
    """A new SQLite file at ``path`` laid out like MyBB's SQLite engine, holding ``board``."""
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    async with aiosqlite.connect(path) as conn:

        async def run(sql: str, args: Sequence[Any] = ()) -> None:
            await conn.execute(sql.replace("%s", "?"), tuple(args))

        async def run_many(sql: str, rows: Sequence[Sequence[Any]]) -> None:
            await conn.executemany(sql.replace("%s", "?"), rows)

        for ddl in sqlite_ddl(prefix):
            await conn.execute(ddl)
        await install_board(run, run_many, board, prefix)
        await conn.commit()
    return Database(scheme="sqlite", path=path)
