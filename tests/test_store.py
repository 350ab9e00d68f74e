"""The store on both backends (a real MariaDB and a SQLite file): reads, Admin CP saves, reverts, markers, outages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import anyio
import asyncpg
import pytest

from boards import PrivateMariaDB, create_board, drop_board
from mybb_sync import php
from mybb_sync.config import Database
from mybb_sync.errors import ConfigError, DatabaseUnavailable, MybbSyncError
from mybb_sync.store import Column, TemplateRow, TemplateSet, md5_hex, open_store, row_digest, seen
from mybb_sync.store.mysql import _CODECS, MySQLStore, charset_refusal
from mybb_sync.store.mysql import escape_string as mysql_escape
from mybb_sync.store.postgres import _translate as translate_error
from mybb_sync.store.postgres import encoding_refusal
from mybb_sync.stylesheets import StylesheetUpdate
from mybb_sync.synthetic import GROUP_PREFIXES, INSTALL_TIME, Board

from conftest import golden, raw_sql
from service_helpers import connect, writes_waiting_for_a_lock

pytestmark = pytest.mark.anyio

SPEC = Board(masters=300, extra_sets=("Second Set",))
NOW = INSTALL_TIME + 86_400
PHP_TRIM = " \t\n\r\0\x0b"


@pytest.fixture
def board_spec() -> Board:
    return SPEC


# --- helpers: raw SQL, independent of the store under test -----------------------


sql = raw_sql


_RAW_COLS = "tid, sid, CAST(title AS BINARY), CAST(template AS BINARY), version, status, dateline"


async def rows_titled(db: Database, title: str) -> list[tuple[Any, ...]]:
    """Every templates row with exactly this title, raw bytes, ordered by tid."""
    return await sql(db, f"SELECT {_RAW_COLS} FROM mybb_templates WHERE BINARY title = %s ORDER BY tid", (title,))


async def add_copy(db: Database, title: str, text: str) -> None:
    """A copy in set 1 written behind the store's back (another writer, a duplicate, a case variant)."""
    await sql(
        db,
        "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) VALUES (%s, %s, 1, '1837', '', %s)",
        (title, text, NOW),
    )


async def row_by_tid(db: Database, tid: int) -> tuple[Any, ...] | None:
    rows = await sql(db, f"SELECT {_RAW_COLS} FROM mybb_templates WHERE tid = %s", (tid,))
    return rows[0] if rows else None


def expected_set(spec: Board, sid: int) -> dict[str, tuple[int, str]]:
    """title -> (sid, text) of what set ``sid`` shows, from the synthetic board itself."""
    shown: dict[str, tuple[int, str]] = {}
    for title, text, row_sid, _version, _dateline in spec.templates():
        if sid == -1:
            if row_sid == -1:
                shown[title] = (row_sid, text)
        elif row_sid == -2:
            shown.setdefault(title, (row_sid, text))
        elif row_sid == sid:
            shown[title] = (row_sid, text)
    return shown


async def stream(store: MySQLStore, sid: int, batch: int = 500) -> tuple[list[TemplateRow], list[int]]:
    rows: list[TemplateRow] = []
    sizes: list[int] = []
    async for chunk in store.set_templates(sid, batch):
        rows.extend(chunk)
        sizes.append(len(chunk))
    return rows, sizes


def master_only_title(spec: Board) -> str:
    """A master title the set has no copy of."""
    copies = {t for t, _x, sid, _v, _d in spec.templates() if sid == 1}
    return next(spec.master_title(i) for i in range(spec.masters) if spec.master_title(i) not in copies)


def overridden_title(spec: Board) -> str:
    return next(t for t, _x, sid, _v, _d in spec.templates() if sid == 1)


# --- listings --------------------------------------------------------------------


async def test_template_sets_lists_every_set_by_sid(store: MySQLStore) -> None:
    assert await store.template_sets() == [TemplateSet(1, "Default Templates"), TemplateSet(2, "Second Set")]


async def test_template_group_prefixes_are_the_templategroups_prefixes(store: MySQLStore) -> None:
    assert await store.template_group_prefixes() == frozenset(GROUP_PREFIXES)


async def test_version_code_comes_from_datacache_version(store: MySQLStore) -> None:
    assert await store.version_code() == "1837"


async def test_version_code_of_a_board_with_another_version(server_db: Database) -> None:
    db = await create_board(server_db, Board(masters=3, version_code=1821))
    try:
        async with open_store(db, "mybb_") as s:
            assert await s.version_code() == "1821"
    finally:
        await drop_board(db)


async def test_themes_and_stylesheets_are_listed(store: MySQLStore) -> None:
    themes = await store.themes()
    assert [(t.tid, t.name, t.pid, t.def_) for t in themes] == [
        (1, "MyBB Master Style", 0, 0),
        (2, "Default", 1, 1),
        (3, "Child Theme", 2, 0),
    ]
    sheets = await store.stylesheets()
    assert [(s.tid, s.name) for s in sheets] == [(t, n) for n, t, _a, _x in SPEC.stylesheets()]
    assert [s.stylesheet for s in sheets] == [x for _n, _t, _a, x in SPEC.stylesheets()]


# --- streaming ---------------------------------------------------------------------


@pytest.fixture
async def large_board(server_db: Database) -> Any:
    spec = Board(masters=5000, seed=7)
    db = await create_board(server_db, spec)
    try:
        async with open_store(db, "mybb_") as s:
            yield spec, db, s
    finally:
        await drop_board(db)


async def test_set_templates_streams_every_title_of_a_large_set_once_with_the_set_copy_winning(
    large_board: Any,
) -> None:
    spec, _db, store = large_board
    rows, sizes = await stream(store, 1, batch=500)
    titles = [r.title for r in rows]
    assert len(titles) == len(set(titles)) == spec.masters
    assert len(sizes) >= spec.masters // 500 and max(sizes) <= 500
    expected = expected_set(spec, 1)
    assert {r.title: (r.sid, r.template) for r in rows} == expected
    copies = [r for r in rows if r.sid == 1]
    assert len(copies) == len({t for t, _x, sid, _v, _d in spec.templates() if sid == 1}) > 0


async def test_a_write_to_the_table_is_not_held_up_while_a_large_set_is_being_streamed(large_board: Any) -> None:
    """Regression: a server-side cursor kept MyISAM's table read lock until the caller had taken
    every row, so an import in the middle of a pass waited for the pass (until net_write_timeout)."""
    spec, db, store = large_board
    pages = store.set_templates(1, 100)
    try:
        first = await anext(pages)
        with anyio.fail_after(10):
            await sql(db, "UPDATE mybb_templates SET dateline = dateline + 1 WHERE tid = %s", (first[0].tid,))
        rest = [row async for page in pages for row in page]
    finally:
        await pages.aclose()
    assert len(first) + len(rest) == spec.masters


async def test_a_copy_inserted_while_a_set_is_being_streamed_does_not_show_its_title_twice(large_board: Any) -> None:
    """Pages are not a snapshot: rows inserted after the pass began are left to the poller."""
    spec, db, store = large_board
    (last_master,) = await sql(db, "SELECT title FROM mybb_templates WHERE sid = -2 ORDER BY tid DESC LIMIT 1")
    pages = store.set_templates(1, 100)
    try:
        first = await anext(pages)
        await sql(
            db,
            "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) VALUES (%s, 'new', 1, '1837', '', 1)",
            (last_master[0],),
        )
        rest = [row async for page in pages for row in page]
    finally:
        await pages.aclose()
    titles = [r.title for r in first + rest]
    assert len(titles) == len(set(titles)) == spec.masters


async def test_set_templates_of_a_set_without_copies_shows_every_master(store: MySQLStore) -> None:
    rows, _ = await stream(store, 2)
    assert {r.title: (r.sid, r.template) for r in rows} == expected_set(SPEC, 2)
    assert all(r.sid == -2 and r.is_master for r in rows)


async def test_set_templates_of_sid_minus_one_streams_only_global_templates(store: MySQLStore) -> None:
    rows, _ = await stream(store, -1)
    assert {r.title: (r.sid, r.template) for r in rows} == expected_set(SPEC, -1)
    assert len(rows) == SPEC.globals_count


async def test_set_templates_overrides_a_master_only_on_the_exact_title(board: Database, store: MySQLStore) -> None:
    """The collation is case-insensitive, PHP's template cache is not: 'HEADER_x' does not hide 'header_x'."""
    master = master_only_title(SPEC)
    await add_copy(board, master.upper(), "shouting")
    rows, _ = await stream(store, 1)
    shown = {r.title: r for r in rows}
    assert shown[master].sid == -2
    assert shown[master.upper()].template == "shouting"


async def test_set_templates_shows_one_row_per_title_when_the_set_has_duplicate_copies(
    board: Database, store: MySQLStore
) -> None:
    """No unique key on (sid, title): two copies can exist; like PHP's cache the last one read (highest tid) wins."""
    title = overridden_title(SPEC)
    await add_copy(board, title, "the duplicate")
    rows, _ = await stream(store, 1)
    assert [r.template for r in rows if r.title == title] == ["the duplicate"]
    by_title = await store.templates_by_title(1, [title])
    assert by_title[title].template == "the duplicate"


async def test_set_templates_shows_one_row_per_title_when_a_global_template_is_duplicated(
    board: Database, store: MySQLStore
) -> None:
    await sql(
        board,
        "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) VALUES (%s, %s, -1, '1837', '', %s)",
        ("global_shared3", "the later global", NOW),
    )
    rows, _ = await stream(store, -1)
    assert len(rows) == SPEC.globals_count
    assert [r.template for r in rows if r.title == "global_shared3"] == ["the later global"]


async def test_set_templates_shows_one_row_per_title_when_a_master_is_duplicated(
    board: Database, store: MySQLStore
) -> None:
    title = master_only_title(SPEC)
    await sql(
        board,
        "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) VALUES (%s, %s, -2, '1837', '', %s)",
        (title, "the later master", NOW),
    )
    rows, _ = await stream(store, 1)
    assert [r.template for r in rows if r.title == title] == ["the later master"]


async def test_templates_by_title_returns_the_set_copy_else_the_master(store: MySQLStore) -> None:
    copy, master = overridden_title(SPEC), master_only_title(SPEC)
    found = await store.templates_by_title(1, [copy, master, "no_such_template"])
    assert set(found) == {copy, master}
    assert found[copy].sid == 1 and found[master].sid == -2
    assert found[copy].template == expected_set(SPEC, 1)[copy][1]


async def test_templates_by_title_of_the_masters_returns_the_masters(store: MySQLStore) -> None:
    title = overridden_title(SPEC)
    assert (await store.templates_by_title(-2, [title]))[title].sid == -2


async def test_templates_by_title_reads_no_master_the_set_overrides(store: MySQLStore) -> None:
    copy, master = overridden_title(SPEC), master_only_title(SPEC)
    read: list[tuple[Any, ...]] = []
    fetch = store._fetch

    async def recording(sql_: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows = await fetch(sql_, args)
        read.extend(rows)
        return rows

    store._fetch = recording  # type: ignore[method-assign]
    await store.templates_by_title(1, [copy, master])
    assert sorted((r[1], r[2]) for r in read) == sorted([(1, copy), (-2, master)])


async def test_templates_by_title_shows_a_master_whose_title_the_copy_matches_only_in_case(
    board: Database, store: MySQLStore
) -> None:
    master = master_only_title(SPEC)
    await add_copy(board, master.upper(), "shouting")
    found = await store.templates_by_title(1, [master, master.upper()])
    assert (found[master].sid, found[master.upper()].template) == (-2, "shouting")


# --- saves (the Admin CP's edit_template) ---------------------------------------------


async def test_save_inserts_a_set_copy_when_only_the_master_exists(board: Database, store: MySQLStore) -> None:
    title = master_only_title(SPEC)
    text = "<div>edited</div>\xa0\x0c \t\n\r\0\x0b"
    saved = await store.save_templates(1, [(title, text)], now=NOW)
    rows = await rows_titled(board, title)
    assert len(rows) == 2
    master, copy = sorted(rows, key=lambda r: r[1])  # sid -2 first
    tid, sid, raw_title, raw_text, version, status, dateline = copy
    assert (sid, raw_title, version, status, dateline) == (1, title.encode(), "1837", "", NOW)
    assert raw_text == "<div>edited</div>\xa0\x0c".encode()  # only " \t\n\r\0\x0B" stripped
    assert saved[title] == TemplateRow(tid, 1, title, "<div>edited</div>\xa0\x0c", "1837", "", NOW)
    assert master[1] == -2


async def test_second_save_updates_the_same_set_copy(board: Database, store: MySQLStore) -> None:
    title = master_only_title(SPEC)
    first = (await store.save_templates(1, [(title, "first\n")], now=NOW))[title]
    second = (await store.save_templates(1, [(title, "second \r\n")], now=NOW + 5))[title]
    assert second.tid == first.tid
    copies = [r for r in await rows_titled(board, title) if r[1] == 1]
    assert copies == [(first.tid, 1, title.encode(), b"second", "1837", "", NOW + 5)]


async def test_save_of_an_existing_set_copy_updates_it_in_place(board: Database, store: MySQLStore) -> None:
    title = overridden_title(SPEC)
    (before,) = [r for r in await rows_titled(board, title) if r[1] == 1]
    saved = (await store.save_templates(1, [(title, "replaced")], now=NOW))[title]
    (after,) = [r for r in await rows_titled(board, title) if r[1] == 1]
    assert saved.tid == before[0] == after[0]
    assert after[3:] == (b"replaced", "1837", "", NOW)


async def test_save_never_modifies_the_master_row(board: Database, store: MySQLStore) -> None:
    title = master_only_title(SPEC)
    (master_before,) = [r for r in await rows_titled(board, title) if r[1] == -2]
    await store.save_templates(1, [(title, "one")], now=NOW)
    await store.save_templates(1, [(title, "two")], now=NOW + 1)
    await store.save_templates(2, [(title, "three")], now=NOW + 2)
    await store.revert_templates(1, [title])
    assert await row_by_tid(board, master_before[0]) == master_before


async def test_save_many_titles_at_once_inserts_and_updates_each(board: Database, store: MySQLStore) -> None:
    masters = [SPEC.master_title(i) for i in range(1, 120) if i % 20]
    copy = overridden_title(SPEC)
    texts = [(t, f"<p>{t}</p>\n") for t in [*masters, copy]]
    saved = await store.save_templates(1, texts, now=NOW)
    assert {t: (r.sid, r.template, r.dateline) for t, r in saved.items()} == {
        t: (1, f"<p>{t}</p>", NOW) for t, _ in texts
    }
    counts = await sql(board, "SELECT COUNT(*), COUNT(DISTINCT title) FROM mybb_templates WHERE sid = 1")
    assert counts[0][0] == counts[0][1]  # no duplicate copies


async def test_global_save_updates_the_global_row(board: Database, store: MySQLStore) -> None:
    (before,) = await rows_titled(board, "global_shared0")
    saved = (await store.save_templates(-1, [("global_shared0", "new global\n\n")], now=NOW))["global_shared0"]
    (after,) = await rows_titled(board, "global_shared0")
    assert saved.tid == before[0] == after[0]
    assert after == (before[0], -1, b"global_shared0", b"new global", "1837", "", NOW)


async def test_global_save_of_a_title_without_a_global_row_raises_and_inserts_nothing(
    board: Database, store: MySQLStore
) -> None:
    count = await sql(board, "SELECT COUNT(*) FROM mybb_templates")
    master = master_only_title(SPEC)
    with pytest.raises(MybbSyncError, match="global"):
        await store.save_templates(-1, [("global_shared1", "fine"), (master, "not a global")], now=NOW)
    assert await sql(board, "SELECT COUNT(*) FROM mybb_templates") == count
    (untouched,) = await rows_titled(board, "global_shared1")
    assert untouched[6] == INSTALL_TIME  # refused before any write


async def test_saving_into_the_master_sid_is_refused(board: Database, store: MySQLStore) -> None:
    title = master_only_title(SPEC)
    before = await rows_titled(board, title)
    with pytest.raises(MybbSyncError):
        await store.save_templates(-2, [(title, "no")], now=NOW)
    assert await rows_titled(board, title) == before


# --- saves decided on a row seen earlier (expect) -------------------------------------


async def test_save_expecting_a_copy_that_was_reverted_meanwhile_writes_nothing(
    board: Database, store: MySQLStore
) -> None:
    title = overridden_title(SPEC)
    before = (await store.templates_by_title(1, [title]))[title]
    await store.revert_templates(1, [title])  # another writer, between the decision and the save
    saved = await store.save_templates(1, [(title, "decided on the old copy")], now=NOW, expect={title: seen(before)})
    assert saved == {}
    assert [r[1] for r in await rows_titled(board, title)] == [-2]  # the copy is not re-created


async def test_save_expecting_a_copy_that_was_changed_meanwhile_writes_nothing(
    board: Database, store: MySQLStore
) -> None:
    title = overridden_title(SPEC)
    before = (await store.templates_by_title(1, [title]))[title]
    await store.save_templates(1, [(title, "the other writer")], now=NOW)
    saved = await store.save_templates(
        1, [(title, "decided on the old copy")], now=NOW + 1, expect={title: seen(before)}
    )
    assert saved == {}
    assert (await store.templates_by_title(1, [title]))[title].template == "the other writer"


async def test_save_expecting_a_copy_that_was_renamed_meanwhile_writes_nothing(
    board: Database, store: MySQLStore
) -> None:
    """Another writer gave the row another title, keeping its id and second: the save is not for it."""
    title = overridden_title(SPEC)
    before = (await store.templates_by_title(1, [title]))[title]
    await sql(board, "UPDATE mybb_templates SET title = %s WHERE tid = %s", ("renamed_elsewhere", before.tid))
    saved = await store.save_templates(1, [(title, "decided on the old title")], now=NOW, expect={title: seen(before)})
    assert saved == {}
    assert (await store.templates_by_title(1, ["renamed_elsewhere"]))["renamed_elsewhere"].template == before.template


async def test_save_expecting_a_copy_renamed_meanwhile_only_in_case_writes_nothing(
    board: Database, store: MySQLStore
) -> None:
    """MySQL's collation matches titles whatever their case; PHP's cache does not: the save is not for it."""
    title = overridden_title(SPEC)
    before = (await store.templates_by_title(1, [title]))[title]
    await sql(board, "UPDATE mybb_templates SET title = %s WHERE tid = %s", (title.upper(), before.tid))
    saved = await store.save_templates(1, [(title, "decided on the old title")], now=NOW, expect={title: seen(before)})
    assert title not in saved
    assert [r[3] for r in await rows_titled(board, title.upper()) if r[1] == 1] == [before.template.encode()]


async def test_save_expecting_a_copy_with_a_non_ascii_title_writes_it(board: Database, store: MySQLStore) -> None:
    title = "footer_grüße"
    await add_copy(board, title, "<p>alt</p>")
    before = (await store.templates_by_title(1, [title]))[title]
    saved = await store.save_templates(1, [(title, "<p>neu</p>")], now=NOW + 1, expect={title: seen(before)})
    assert (saved[title].tid, saved[title].template) == (before.tid, "<p>neu</p>")


async def test_a_latin1_board_saves_a_copy_with_a_non_ascii_title_as_seen(
    server_db: Database, mariadb: PrivateMariaDB | None
) -> None:
    """An old board's latin1 tables, read over a latin1 connection: the 'still as seen' check
    must not compare the title's UTF-8 bytes with the parameter's latin1 bytes."""
    board = await create_board(replace(server_db, charset="latin1"), SPEC)
    try:
        title = "footer_grüße"
        await add_copy(board, title, "<p>alt</p>")
        async with open_store(board, "mybb_") as store:
            before = (await store.templates_by_title(1, [title]))[title]
            saved = await store.save_templates(1, [(title, "<p>neu</p>")], now=NOW + 1, expect={title: seen(before)})
            assert (saved[title].tid, saved[title].template) == (before.tid, "<p>neu</p>")
        assert [r[3] for r in await rows_titled(board, title)] == ["<p>neu</p>".encode("latin1")]
    finally:
        await drop_board(board)


async def test_each_column_is_checked_against_its_own_charset(server_db: Database) -> None:
    """The Admin CP converts tables one at a time: utf8mb4 templates beside latin1 stylesheets.
    A template's title or text in 中 is fine (and its row found), a stylesheet's is refused."""
    board = await create_board(server_db, SPEC)
    try:
        await sql(board, "ALTER TABLE mybb_themestylesheets CONVERT TO CHARACTER SET latin1")
        await add_copy(board, "中_x", "<p>中</p>")
        async with open_store(board, "mybb_") as store:
            assert store.refusal("中_x", Column.TEMPLATE_TITLE) is None
            assert store.refusal("<p>中</p>", Column.TEMPLATE_TEXT) is None
            assert store.refusal("<p>中</p>", Column.STYLESHEET_TEXT) == (
                "holds '中' (U+4E2D), which the database's charset latin1 cannot store"
            )
            assert (await store.templates_by_title(1, ["中_x"]))["中_x"].template == "<p>中</p>"
    finally:
        await drop_board(board)


async def test_save_expecting_no_copy_when_one_was_created_meanwhile_writes_nothing(
    board: Database, store: MySQLStore
) -> None:
    title = master_only_title(SPEC)
    await store.save_templates(1, [(title, "the other writer")], now=NOW)
    saved = await store.save_templates(1, [(title, "decided on the master")], now=NOW + 1, expect={title: None})
    assert saved == {}
    assert [r[3] for r in await rows_titled(board, title) if r[1] == 1] == [b"the other writer"]


async def test_save_expecting_what_is_there_writes_only_those_titles(board: Database, store: MySQLStore) -> None:
    copy, master = overridden_title(SPEC), master_only_title(SPEC)
    copies = {t for t, _x, sid, _v, _d in SPEC.templates() if sid == 1}
    stale = next(t for t in map(SPEC.master_title, range(SPEC.masters)) if t not in copies and t != master)
    before = (await store.templates_by_title(1, [copy]))[copy]
    expect = {copy: seen(before), master: None, stale: (1, 1, md5_hex("") or "")}
    texts = [(copy, "new copy text"), (master, "first copy"), (stale, "not written")]
    saved = await store.save_templates(1, texts, now=NOW, expect=expect)
    assert {t: (r.sid, r.template) for t, r in saved.items()} == {copy: (1, "new copy text"), master: (1, "first copy")}
    assert [r[1] for r in await rows_titled(board, stale)] == [-2]


def masters_only(spec: Board, n: int) -> list[str]:
    copies = {t for t, _x, sid, _v, _d in spec.templates() if sid == 1}
    return [t for t in map(spec.master_title, range(spec.masters)) if t not in copies][:n]


async def test_a_batch_saved_as_meant_is_read_back_as_two_sums(board: Database, store: MySQLStore) -> None:
    copies = [t for t, _x, sid, _v, _d in SPEC.templates() if sid == 1][:3]
    new = masters_only(SPEC, 4)
    shown = await store.templates_by_title(1, copies + new)
    fetched: list[int] = []
    fetch = store._fetch

    async def counting(sql_: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows = await fetch(sql_, args)
        if sql_.startswith("SELECT"):  # not an INSERT's RETURNING of the ids it gave
            fetched.append(len(rows))
        return rows

    store._fetch = counting  # type: ignore[method-assign]
    texts = [(t, f"<p>batch {i}</p>") for i, t in enumerate(copies + new)]
    expect = {t: seen(shown[t]) if t in copies else None for t in copies + new}
    saved = await store.save_templates(1, texts, now=NOW, expect=expect)
    assert max(fetched) == 1  # no row read per title
    in_db = {t: (await rows_titled(board, t))[-1] for t in copies + new}
    assert {t: (r.tid, r.sid, r.template, r.dateline) for t, r in saved.items()} == {
        t: (row[0], 1, row[3].decode(), NOW) for t, row in in_db.items()
    }


async def test_a_title_another_writer_changes_as_it_is_inserted_is_left_out(board: Database, store: MySQLStore) -> None:
    taken, fine = masters_only(SPEC, 2)
    if board.scheme == "sqlite":  # a trigger's DDL takes no parameters; the title is a plain synthetic one
        await sql(
            board,
            f"CREATE TRIGGER mybbsync_quicker AFTER INSERT ON mybb_templates FOR EACH ROW WHEN NEW.title = '{taken}' "
            "BEGIN UPDATE mybb_templates SET template = 'the other writer' WHERE tid = NEW.tid; END",
        )
    elif board.scheme == "postgresql":
        await sql(
            board,
            "CREATE FUNCTION mybbsync_quicker() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.title = '{taken}' THEN NEW.template := 'the other writer'; END IF; RETURN NEW; END $$",
        )
        await sql(
            board,
            "CREATE TRIGGER mybbsync_quicker BEFORE INSERT ON mybb_templates FOR EACH ROW EXECUTE FUNCTION mybbsync_quicker()",
        )
    else:
        await sql(
            board,
            "CREATE TRIGGER mybbsync_quicker BEFORE INSERT ON mybb_templates FOR EACH ROW "
            "BEGIN IF NEW.title = %s THEN SET NEW.template = 'the other writer'; END IF; END",
            (taken,),
        )
    saved = await store.save_templates(
        1, [(taken, "ours"), (fine, "also ours")], now=NOW, expect={taken: None, fine: None}
    )
    assert set(saved) == {fine}
    [row] = [r for r in await rows_titled(board, fine) if r[1] == 1]
    assert (saved[fine].tid, saved[fine].template) == (row[0], "also ours")


# --- the digest of what a set shows ------------------------------------------------------------


async def test_shown_digest_sums_the_sets_copies_and_the_masters_it_does_not_override(
    board: Database, store: MySQLStore
) -> None:
    rows = await sql(board, "SELECT tid, sid, dateline, title, template FROM mybb_templates WHERE sid IN (-2, 1)")
    copies = {r[3] for r in rows if r[1] == 1}
    shown = [r for r in rows if r[1] == 1 or r[3] not in copies]
    assert len(shown) < len(rows)  # the board overrides some masters
    digests = sum(row_digest(*r) for r in shown)
    assert await store.shown_digest(1) == (len(shown), sum(r[0] for r in shown), digests)


def digest_of_rows(rows: list[TemplateRow]) -> tuple[int, int, int]:
    return (
        len(rows),
        sum(r.tid for r in rows),
        sum(row_digest(r.tid, r.sid, r.dateline, r.title, r.template) for r in rows),
    )


async def test_shown_digest_sums_exactly_the_rows_the_set_streams(store: MySQLStore) -> None:
    rows, _ = await stream(store, 1)
    assert await store.shown_digest(1) == digest_of_rows(rows)


async def test_a_copy_equal_to_a_master_title_but_for_case_hides_nothing_in_the_digest(
    board: Database, store: MySQLStore
) -> None:
    """PHP's cache compares titles exactly: a copy 'HEADER_x' leaves the master 'header_x' shown."""
    await add_copy(board, master_only_title(SPEC).upper(), "shouting")
    rows, _ = await stream(store, 1)
    assert await store.shown_digest(1) == digest_of_rows(rows)


async def test_shown_digest_of_the_global_templates_sums_only_them(board: Database, store: MySQLStore) -> None:
    rows = await sql(board, "SELECT tid, sid, dateline, title, template FROM mybb_templates WHERE sid = -1")
    digests = sum(row_digest(*r) for r in rows)
    assert rows and await store.shown_digest(-1) == (len(rows), sum(r[0] for r in rows), digests)


async def test_shown_digest_changes_when_a_master_is_overridden(board: Database, store: MySQLStore) -> None:
    before = await store.shown_digest(1)
    await store.save_templates(1, [(master_only_title(SPEC), "now a copy")], now=NOW)
    assert await store.shown_digest(1) != before


async def test_shown_digest_changes_when_only_the_text_changes_even_to_the_same_length(
    board: Database, store: MySQLStore
) -> None:
    title = overridden_title(SPEC)
    [(text,)] = await sql(board, "SELECT template FROM mybb_templates WHERE sid = 1 AND BINARY title = %s", (title,))
    before = await store.shown_digest(1)
    same_length = ("y" if text[0] == "x" else "x") + text[1:]
    await sql(
        board, "UPDATE mybb_templates SET template = %s WHERE sid = 1 AND BINARY title = %s", (same_length, title)
    )
    assert await store.shown_digest(1) != before


async def test_shown_digest_of_a_set_ignores_other_sets(board: Database, store: MySQLStore) -> None:
    before = await store.shown_digest(1)
    await store.save_templates(2, [(master_only_title(SPEC), "only in the second set")], now=NOW)
    assert await store.shown_digest(1) == before


# --- revert --------------------------------------------------------------------------


async def test_revert_deletes_only_the_set_copy(board: Database, store: MySQLStore) -> None:
    title = overridden_title(SPEC)
    before = await rows_titled(board, title)
    assert sorted(r[1] for r in before) == [-2, 1]
    everything_else = await sql(board, "SELECT tid FROM mybb_templates WHERE BINARY title != %s ORDER BY tid", (title,))
    assert await store.revert_templates(1, [title]) == 1
    assert await rows_titled(board, title) == [r for r in before if r[1] == -2]
    assert (
        await sql(board, "SELECT tid FROM mybb_templates WHERE BINARY title != %s ORDER BY tid", (title,))
        == everything_else
    )
    assert await store.revert_templates(1, [title]) == 0
    shown = await store.templates_by_title(1, [title])
    assert shown[title].sid == -2  # the master shows through again


async def test_revert_matches_the_title_exactly(board: Database, store: MySQLStore) -> None:
    title = overridden_title(SPEC)
    assert await store.revert_templates(1, [title.upper()]) == 0
    assert len(await rows_titled(board, title)) == 2


async def test_a_guarded_revert_deletes_the_copy_only_while_it_is_as_seen(board: Database, store: MySQLStore) -> None:
    """on_delete = revert decides on a copy, then reverts it: an Admin CP save landing between the
    two must not be lost (a 30-minute soak found one)."""
    title = overridden_title(SPEC)
    decided_on = (await store.templates_by_title(1, [title]))[title]
    await store.save_templates(1, [(title, "saved in the Admin CP meanwhile")], NOW + 5)
    assert await store.revert_templates(1, [title], expect=seen(decided_on)) == 0
    assert (await store.templates_by_title(1, [title]))[title].template == "saved in the Admin CP meanwhile"
    current = (await store.templates_by_title(1, [title]))[title]
    assert await store.revert_templates(1, [title], expect=seen(current)) == 1
    assert (await store.templates_by_title(1, [title]))[title].sid == -2


async def test_revert_refuses_global_and_master_sids(store: MySQLStore) -> None:
    for sid in (-1, -2, 0):
        with pytest.raises(MybbSyncError):
            await store.revert_templates(sid, ["global_shared0"])


# --- prefix ---------------------------------------------------------------------------

HOSTILE_PREFIXES = [
    "mybb_`",
    "x`; DROP TABLE mybb_templates; -- ",
    "a b",
    "mybb'",
    "mybb_templates WHERE 1=1 OR ",
    "p" * 31,
    "préfixe_",
    "mybb_\n",
]


@pytest.mark.parametrize("prefix", HOSTILE_PREFIXES)
async def test_hostile_prefix_is_refused_before_any_sql(board: Database, tmp_path: Any, prefix: str) -> None:
    # A server that does not exist: a prefix checked after connecting would raise DatabaseUnavailable.
    nowhere = replace(board, unix_socket=str(tmp_path / "no-server.sock"), host="localhost")
    with pytest.raises(ConfigError, match="prefix"):
        await MySQLStore.connect(nowhere, prefix)
    with pytest.raises(ConfigError, match="prefix"):
        async with open_store(board, prefix):
            pass
    assert len(await sql(board, "SHOW TABLES")) == 6


# --- what polls read -----------------------------------------------------------------


async def test_template_totals_count_the_rows_and_name_the_highest_tid(store: MySQLStore) -> None:
    rows, top = await store.template_totals()
    stored = await store.save_templates(1, [(master_only_title(SPEC), "new copy")], now=NOW)
    assert await store.template_totals() == (rows + 1, stored[master_only_title(SPEC)].tid)
    assert stored[master_only_title(SPEC)].tid > top


async def test_template_counts_drop_in_the_set_a_copy_was_reverted_in(store: MySQLStore) -> None:
    before = await store.template_counts()
    assert await store.revert_templates(1, [overridden_title(SPEC)]) == 1
    after = await store.template_counts()
    assert after[1] == before[1] - 1 and after[-2] == before[-2] and after[-1] == before[-1]


async def test_templates_touched_finds_a_save_in_the_look_back_with_its_md5(store: MySQLStore) -> None:
    _, top = await store.template_totals()
    stored = await store.save_templates(1, [(overridden_title(SPEC), "updated")], now=NOW)
    touched = await store.templates_touched(NOW, top + 1)
    assert touched == {(1, overridden_title(SPEC)): seen(stored[overridden_title(SPEC)])}


async def test_templates_touched_finds_a_row_added_with_an_old_dateline(board: Database, store: MySQLStore) -> None:
    """Plugins insert templates without a dateline (0): the new tid still shows them."""
    _, top = await store.template_totals()
    await sql(board, "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) "
                     "VALUES ('plugin_box', 'p', 1, '1800', '', 0)")  # fmt: skip
    touched = await store.templates_touched(NOW, top + 1)
    assert list(touched) == [(1, "plugin_box")] and touched[1, "plugin_box"][1:] == (0, md5_hex("p"))


async def test_templates_touched_leaves_out_rows_saved_before_the_look_back(store: MySQLStore) -> None:
    _, top = await store.template_totals()
    await store.save_templates(1, [(overridden_title(SPEC), "updated")], now=NOW)
    assert await store.templates_touched(NOW + 1, top + 1) == {}


async def test_the_poll_index_is_added_once_and_dropped_again(store: MySQLStore) -> None:
    assert not await store.poll_index()
    assert await store.add_poll_index() and await store.poll_index()
    assert not await store.add_poll_index()
    _, top = await store.template_totals()
    await store.save_templates(1, [(overridden_title(SPEC), "indexed")], now=NOW)
    assert list(await store.templates_touched(NOW, top + 1)) == [(1, overridden_title(SPEC))]
    assert await store.drop_poll_index() and not await store.poll_index()
    assert not await store.drop_poll_index()


async def test_stylesheet_marker_changes_after_an_update_and_an_insert(store: MySQLStore) -> None:
    before = await store.stylesheet_markers()
    sheet = next(s for s in await store.stylesheets() if s.tid == 3)
    await store.save_stylesheet_rows([], [StylesheetUpdate(sheet.sid, "body{}", sheet.name, NOW)])
    updated = await store.stylesheet_markers()
    assert updated[3] != before[3] and updated[1] == before[1]
    new_sid = await store.next_stylesheet_sid()
    inherited = next(s for s in await store.stylesheets() if s.tid == 1 and s.name == "usercp.css")
    await store.save_stylesheet_rows([replace(inherited, sid=new_sid, tid=3, lastmodified=NOW)], [])
    inserted = await store.stylesheet_markers()
    assert inserted[3].rows == updated[3].rows + 1 and inserted[3].max_id == new_sid


# --- golden: the Admin CP's footer saves (case 5) ------------------------------------------


async def test_golden_footer_saves_store_what_the_admin_cp_stored(board: Database, store: MySQLStore) -> None:
    case = golden("case5-template-footer")
    steps = {name: case / name for name in ("a-first-save", "b-second-save", "c-revert")}

    def load(step: str, name: str) -> Any:
        return json.loads((steps[step] / name).read_text(encoding="utf-8"))

    (master,) = [r for r in load("a-first-save", "before.json")["templates"] if r["sid"] == -2]
    await sql(
        board,
        "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) VALUES (%s, %s, %s, %s, %s, %s)",
        (master["title"], master["template"], master["sid"], master["version"], master["status"], master["dateline"]),
    )
    (master_row,) = await rows_titled(board, "footer")

    def columns(row: tuple[Any, ...]) -> tuple[Any, ...]:
        """(sid, title, template bytes, version, status, dateline) of a raw row."""
        return (row[1], row[2].decode(), row[3], row[4], row[5], row[6])

    def golden_columns(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["sid"], r["title"], r["template"].encode("utf-8"), r["version"], r["status"], r["dateline"])

    tids = []
    for step in ("a-first-save", "b-second-save"):
        posted = (steps[step] / "input-template.html").read_bytes().decode("utf-8")
        (now,) = load(step, "request.json")["time_now_of_save"]
        saved = await store.save_templates(1, [("footer", posted)], now=now)
        after = load(step, "after.json")["templates"]
        (golden_copy,) = [r for r in after if r["sid"] == 1]
        (golden_master,) = [r for r in after if r["sid"] == -2]
        rows = await rows_titled(board, "footer")
        assert sorted(columns(r) for r in rows) == sorted([golden_columns(golden_master), golden_columns(golden_copy)])
        (copy,) = [r for r in rows if r[1] == 1]
        assert copy[3] == php.rtrim(posted).encode() == posted.encode().rstrip(PHP_TRIM.encode())
        assert saved["footer"].tid == copy[0]
        tids.append(copy[0])
    assert tids[0] == tids[1]  # the second save updates the row the first inserted
    assert await store.revert_templates(1, ["footer"]) == 1
    after = load("c-revert", "after.json")["templates"]
    assert [columns(r) for r in await rows_titled(board, "footer")] == [golden_columns(r) for r in after]
    assert await rows_titled(board, "footer") == [master_row]


# --- outage -----------------------------------------------------------------------------


@pytest.mark.backends("mysql", "postgresql")  # a SQLite board has no server to stop (see the missing-file test)
async def test_store_raises_database_unavailable_when_the_server_is_stopped(
    request: pytest.FixtureRequest, board: Database, store: MySQLStore
) -> None:
    server = request.getfixturevalue("mariadb" if board.scheme == "mysql" else "postgres")
    if server is None:
        pytest.skip("MYBB_SYNC_TEST_DSN / _PG_DSN names an external server: this test cannot stop it")
    secret = "pw-s3cret-\u00e9"
    assert await store.template_sets()  # the pool holds a live connection
    server.stop()
    try:
        with pytest.raises(DatabaseUnavailable) as on_query:
            await store.template_sets()
        with pytest.raises(DatabaseUnavailable) as on_stream:
            await stream(store, 1)
        with pytest.raises(DatabaseUnavailable) as on_connect:
            await type(store).connect(replace(board, password=secret), "mybb_")
        for exc in (on_query.value, on_stream.value, on_connect.value):
            message = str(exc)
            assert message and "\n" not in message
            assert secret not in message and "s3cret" not in message
        assert "***" in str(on_connect.value)
    finally:
        server.start()
    assert await store.template_sets()  # and it recovers once the server is back


@pytest.mark.backends("mysql")  # MyISAM's table lock (see the PostgreSQL test); SQLite has none
async def test_interrupt_ends_a_write_waiting_for_a_table_lock_as_an_outage_not_a_refusal(
    board: Database, store: MySQLStore
) -> None:
    """What a stop does to a write that waits for a lock held elsewhere: KILL QUERY. The write
    fails as DatabaseUnavailable (kept pending and retried), not as a refusal of the file."""
    title = SPEC.master_title(0)
    before = await rows_titled(board, title)
    locker = await connect(board)
    failures: list[Exception] = []

    async def save() -> None:
        try:
            await store.save_templates(1, [(title, "<p>never written</p>")], NOW)
        except MybbSyncError as exc:
            failures.append(exc)

    try:
        async with locker.cursor() as cur:
            await cur.execute("LOCK TABLES mybb_templates READ")
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(save)
                while not await writes_waiting_for_a_lock(board):
                    await anyio.sleep(0.02)
                await store.interrupt()
    finally:
        async with locker.cursor() as cur:
            await cur.execute("UNLOCK TABLES")
        locker.close()
    assert [type(e) for e in failures] == [DatabaseUnavailable]
    assert "interrupted" in str(failures[0])
    assert await rows_titled(board, title) == before


@pytest.mark.backends("postgresql")
async def test_interrupt_cancels_a_write_waiting_for_a_lock_on_postgresql_as_an_outage(
    board: Database, store: MySQLStore
) -> None:
    """The same on PostgreSQL, where the lock is another transaction's (``LOCK TABLE`` here, a
    row lock as well) and the stop's ``pg_cancel_backend`` ends the write, rolled back whole."""
    title = SPEC.master_title(0)
    before = await rows_titled(board, title)
    locker = await asyncpg.connect(host=board.unix_socket, port=board.port, user=board.user, database=board.name)
    failures: list[Exception] = []

    async def save() -> None:
        try:
            await store.save_templates(1, [(title, "<p>never written</p>")], NOW)
        except MybbSyncError as exc:
            failures.append(exc)

    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE mybb_templates IN EXCLUSIVE MODE")  # reads go on, writes wait
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(save)
                while not await writes_waiting_for_a_lock(board):
                    await anyio.sleep(0.02)
                await store.interrupt()
        await transaction.rollback()
    finally:
        await locker.close()
    assert [type(e) for e in failures] == [DatabaseUnavailable]
    assert "interrupted" in str(failures[0])
    assert await rows_titled(board, title) == before


@pytest.mark.backends("postgresql")
async def test_the_change_token_sees_a_write_committed_by_a_transaction_open_at_the_last_poll(
    board: Database, store: MySQLStore
) -> None:
    """The cluster snapshot's in-progress list, not only its next xid, keeps the token exact: a
    transaction that had its xid at the last poll and commits after it still changes the token."""
    writer = await asyncpg.connect(host=board.unix_socket, port=board.port, user=board.user, database=board.name)
    try:
        transaction = writer.transaction()
        await transaction.start()
        await writer.execute("UPDATE mybb_templates SET dateline = dateline + 1 WHERE sid = 1")
        before, settled = await store.change_token()
        assert settled
        await transaction.commit()
    finally:
        await writer.close()
    assert (await store.change_token())[0] != before


@pytest.mark.backends("postgresql")
async def test_the_change_token_ignores_writes_to_the_forums_other_tables(board: Database, store: MySQLStore) -> None:
    await sql(board, "CREATE TABLE mybb_sessions (sid varchar(32) PRIMARY KEY, time int NOT NULL)")
    before, _ = await store.change_token()
    await sql(board, "INSERT INTO mybb_sessions VALUES ('a page view', 1)")
    assert (await store.change_token())[0] == before
    await sql(board, "DELETE FROM mybb_templates WHERE tid = (SELECT MAX(tid) FROM mybb_templates)")
    assert (await store.change_token())[0] != before


async def test_a_missing_sqlite_file_is_unavailable_in_one_line(tmp_path: Any) -> None:
    with pytest.raises(DatabaseUnavailable, match="no SQLite database at") as caught:
        async with open_store(Database(scheme="sqlite", path=tmp_path / "gone.sqlite"), "mybb_"):
            pass
    assert "\n" not in str(caught.value)


async def test_a_copy_inserted_by_another_writer_at_the_same_moment_leaves_one_row(
    board: Database, store: MySQLStore
) -> None:
    """Regression (soak): the Admin CP and mybb-sync both found no copy and both inserted one.
    No unique key stops that; after our insert only the row the forum shows (highest tid) stays."""
    title = master_only_title(SPEC)
    await add_copy(board, title, "the Admin CP's copy")
    await store._insert_templates(1, [(title, "our copy")], "1837", NOW)  # noqa: SLF001 - the racing half of a save
    copies = await sql(board, "SELECT template FROM mybb_templates WHERE sid = 1 AND BINARY title = %s", (title,))
    assert copies == [("our copy",)]


async def test_copy_counts_tell_modified_masters_from_custom_templates(store: MySQLStore) -> None:
    modified, custom = await store.copy_counts()
    assert (modified, custom) == (len(range(0, SPEC.masters, 20)), 0)
    await store.save_templates(1, [("soak_custom_only", "<p>custom</p>")], now=NOW)
    assert await store.copy_counts() == (modified, 1)


# --- escaping of text parameters (MySQL) ------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["plain", "quote ' and \" both", "back\\slash \\' \\\\", "nul \0 cr \r lf \n ^Z \x1a", "ünï\u00a0€ 🙂 '\\"]
)
def test_fast_escape_is_pymysqls_escape(text: str) -> None:
    from pymysql.converters import escape_string as pymysql_escape

    assert mysql_escape(text) == pymysql_escape(text)


async def test_fast_escape_of_parameters_is_aiomysqls(server_db: Database) -> None:
    import aiomysql

    args = ("text 'q' \\", 7, -2, 0, True, False, None, 1.5, 2**70)
    store = await MySQLStore.connect(server_db, "mybb_")
    try:
        async with store._pool.acquire() as conn, conn.cursor() as cur:
            assert cur._escape_args(args, conn) == aiomysql.Cursor._escape_args(cur, args, conn)
    finally:
        await store.close()


@pytest.mark.backends("mysql", "sqlite")
async def test_every_special_character_round_trips_through_a_save(board: Database, store: MySQLStore) -> None:
    title = overridden_title(SPEC)
    text = "a'b\"c\\d\\'e\0f\rg\x1ah\ni\\0j ünï 🙂"
    saved = (await store.save_templates(1, [(title, text)], now=NOW))[title]
    assert saved.template == text
    assert (await rows_titled(board, title))[-1][3] == text.encode()


@pytest.mark.backends("postgresql")
async def test_every_special_character_but_nul_round_trips_through_a_save_on_postgresql(
    board: Database, store: MySQLStore
) -> None:
    title = overridden_title(SPEC)
    text = "a'b\"c\\d\\'e$1f\rg\x1ah\ni\\0j ünï 🙂 %s `x`"
    saved = (await store.save_templates(1, [(title, text)], now=NOW))[title]
    assert saved.template == text
    assert (await rows_titled(board, title))[-1][3] == text.encode()


@pytest.mark.backends("postgresql")
async def test_postgresql_refuses_a_nul_character_before_any_write(board: Database, store: MySQLStore) -> None:
    assert store.refusal("a\0b", Column.TEMPLATE_TEXT) == (
        "holds a NUL character (U+0000), which PostgreSQL cannot store in text"
    )
    assert store.refusal("ünï 🙂", Column.TEMPLATE_TEXT) is None


def test_a_utf8_postgresql_database_stores_everything_but_nul() -> None:
    assert encoding_refusal("UTF8", "café 🙂 中") is None
    assert encoding_refusal("SQL_ASCII", "café 🙂") is None


def test_a_latin1_postgresql_database_refuses_what_latin1_lacks_naming_it() -> None:
    assert encoding_refusal("LATIN1", "café") is None
    assert (
        encoding_refusal("LATIN1", "5 € 🙂") == "holds '€' (U+20AC), which the database's encoding LATIN1 cannot store"
    )


def test_an_unknown_postgresql_encoding_is_taken_as_ascii() -> None:
    assert encoding_refusal("EUC_TW", "plain") is None
    assert encoding_refusal("EUC_TW", "é") is not None


# --- what a connection's charset can carry (MySQL) ----------------------------------------


@pytest.mark.parametrize("charset", ["utf8mb4", "utf8", "utf8mb3", "latin1"])
def test_every_charset_carries_plain_text_and_windows_1252(charset: str) -> None:
    assert charset_refusal(charset, "<p>café – 5 €</p>") is None


def test_utf8mb4_carries_emoji() -> None:
    assert charset_refusal("utf8mb4", "<p>🙂</p>") is None


@pytest.mark.parametrize("charset", ["utf8", "utf8mb3"])
def test_mysqls_utf8_refuses_a_four_byte_character_naming_it(charset: str) -> None:
    assert charset_refusal(charset, "<p>ok 中 🙂</p>") == (
        f"holds '🙂' (U+1F642), which the database's charset {charset} cannot store"
    )


def test_latin1_refuses_what_windows_1252_lacks_naming_it() -> None:
    assert (
        charset_refusal("latin1", "<p>€ 中</p>")
        == "holds '中' (U+4E2D), which the database's charset latin1 cannot store"
    )


@pytest.mark.filterwarnings("ignore:Cannot convert")  # the server's word for each '?' it made
@pytest.mark.parametrize("charset", sorted(_CODECS))
async def test_each_charset_lets_through_only_what_mariadb_can_store(server_db: Database, charset: str) -> None:
    """Every character of the Basic Multilingual Plane that charset_refusal lets through for
    ``charset`` survives the server's own conversion (it stores a few more that Python's
    codec lacks: refusing those is the safe side), and each exception listed is needed."""
    text = "".join(chr(cp) for cp in range(1, 0x10000) if not 0xD800 <= cp <= 0xDFFF)
    [(back,)] = await sql(server_db, f"SELECT CONVERT(CONVERT(%s USING {charset}) USING utf8mb4)", (text,))
    assert len(back) == len(text)  # each character that cannot be stored becomes one '?'
    stored = {c for c, b in zip(text, back, strict=True) if c == b}
    allowed = {c for c in text if charset_refusal(charset, c) is None}
    assert allowed - stored == set()
    assert set(_CODECS[charset][1]) & stored == set()


def test_a_cyrillic_boards_cp1251_carries_cyrillic_and_refuses_the_rest() -> None:
    assert charset_refusal("cp1251", "<p>Привет</p>") is None
    assert (
        charset_refusal("cp1251", "<p>Привет é</p>")
        == "holds 'é' (U+00E9), which the database's charset cp1251 cannot store"
    )


@pytest.mark.parametrize("charset", ["utf16", "utf32", "binary"])
def test_unicode_charsets_carry_everything(charset: str) -> None:
    assert charset_refusal(charset, "<p>中 🙂</p>") is None


def test_a_charset_of_unknown_repertoire_carries_only_ascii() -> None:
    assert charset_refusal("armscii8", "<p>plain</p>") is None
    assert (
        charset_refusal("armscii8", "<p>é</p>")
        == "holds 'é' (U+00E9), which the database's charset armscii8 cannot store"
    )


def test_a_postgresql_connection_ended_by_a_shutdown_is_an_outage() -> None:
    """asyncpg's words for a pooled connection whose server sent its shutdown FATAL."""
    exc = asyncpg.exceptions.InternalClientError("cannot switch to state 11; another operation (2) is in progress")
    assert isinstance(translate_error(exc), DatabaseUnavailable)


def test_a_call_the_postgresql_driver_refuses_is_no_outage() -> None:
    exc = asyncpg.InterfaceError("the number of query arguments cannot exceed 32767")
    error = translate_error(exc)
    assert not isinstance(error, DatabaseUnavailable)
    assert str(error) == "database error: the number of query arguments cannot exceed 32767"
