"""Imports decided on a row that another writer changed before the save: nothing is written, the path is looked at again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from boards import create_board, drop_board
from mybb_sync.config import Database
from mybb_sync.engine import Decision, Entry, Row
from mybb_sync.importer import ForumCache, RefusalKind, import_stylesheets, import_templates
from mybb_sync.layout import Kind
from mybb_sync.reconcile import Action, content_hash
from mybb_sync.store import Store, TemplateRow, open_store
from mybb_sync.stylesheets import effective_stylesheets
from mybb_sync.synthetic import INSTALL_TIME, Board

from conftest import raw_sql

pytestmark = pytest.mark.anyio


def import_decision(path: str, kind: Kind, owner: int, name: str, row: Row | None, text: str) -> Decision:
    """An import as the rule decides it when the file changed and the row equals the base."""
    entry = Entry(path, kind, owner, name, row)
    db_hash = None if entry.text is None else content_hash(kind, entry.text)
    return Decision(entry, Action.IMPORT, None, db_hash, content_hash(kind, text), None, text)


async def disk_edit_of_a_set_copy(store: Store) -> tuple[TemplateRow, Decision]:
    """A template set 1 has its own copy of, and the import of its edited file as decided now."""
    rows = [r async for batch in store.set_templates(1) for r in batch if r.sid == 1]
    copy = rows[0]
    path = f"template_sets/Default Templates/ungrouped/{copy.title}.html"
    return copy, import_decision(path, Kind.TEMPLATE, 1, copy.title, copy, "edited on disk")


async def test_an_import_decided_on_a_copy_reverted_since_does_not_bring_the_copy_back(
    board: Database, store: Store
) -> None:
    copy, decision = await disk_edit_of_a_set_copy(store)
    await store.revert_templates(1, [copy.title])  # the Admin CP's revert lands first
    done = await import_templates(store, [decision])
    assert (done.states, done.recheck) == ([], [decision.entry.path])
    assert (
        await raw_sql(board, "SELECT tid FROM mybb_templates WHERE sid = 1 AND BINARY title = %s", (copy.title,)) == []
    )


async def test_an_import_decided_on_a_copy_changed_since_keeps_the_other_writers_content(
    board: Database, store: Store
) -> None:
    copy, decision = await disk_edit_of_a_set_copy(store)
    await store.save_templates(1, [(copy.title, "saved in the Admin CP")], INSTALL_TIME + 10)
    done = await import_templates(store, [decision])
    assert (done.states, done.recheck) == ([], [decision.entry.path])
    shown = (await store.templates_by_title(1, [copy.title]))[copy.title]
    assert shown.template == "saved in the Admin CP"


async def test_an_import_decided_on_a_current_copy_is_written(board: Database, store: Store) -> None:
    copy, decision = await disk_edit_of_a_set_copy(store)
    done = await import_templates(store, [decision])
    assert [s.base for s in done.states] == [content_hash(Kind.TEMPLATE, "edited on disk")] and done.recheck == []
    assert (await store.templates_by_title(1, [copy.title]))[copy.title].template == "edited on disk"


async def test_a_stylesheet_import_decided_on_a_row_changed_since_writes_nothing(
    board: Database, store: Store, tmp_path: Path
) -> None:
    sheet = next(s for s in await store.stylesheets() if s.tid == 2)
    path = f"styles/Default/{sheet.name}"
    decision = import_decision(path, Kind.STYLESHEET, 2, sheet.name, sheet, "body { color: red; }\n")
    await raw_sql(
        board, "UPDATE mybb_themestylesheets SET stylesheet = %s, lastmodified = %s WHERE sid = %s",
        ("body { color: blue; }\n", INSTALL_TIME + 10, sheet.sid),
    )  # fmt: skip
    done = await import_stylesheets(store, ForumCache(tmp_path / "forum"), [decision])
    assert (done.states, done.recheck) == ([], [path])
    after = next(s for s in await store.stylesheets() if s.sid == sheet.sid)
    assert after.stylesheet == "body { color: blue; }\n"
    assert not (tmp_path / "forum" / "cache").exists()  # no cache file written either


async def test_a_stylesheet_import_decided_on_an_inherited_row_overridden_since_writes_nothing(
    board: Database, store: Store, tmp_path: Path
) -> None:
    """The file showed the parent's row; meanwhile the Admin CP saved the sheet in the theme
    (a copy in the theme, with other text). The parent's row is unchanged, yet the theme now
    shows another: writing would overwrite that save."""
    themes, sheets = await store.themes(), await store.stylesheets()
    child = next(t for t in themes if t.pid > 1)
    name, inherited = next(
        (n, r) for n, r in effective_stylesheets(themes, sheets, child.tid).items() if r.tid != child.tid
    )
    path = f"styles/{child.name}/{name}"
    decision = import_decision(path, Kind.STYLESHEET, child.tid, name, inherited, "body { color: red; }\n")
    await raw_sql(
        board, "INSERT INTO mybb_themestylesheets (name, tid, attachedto, stylesheet, cachefile, lastmodified) "
        "VALUES (%s, %s, '', %s, %s, %s)", (name, child.tid, "/* saved in the Admin CP */", name, INSTALL_TIME + 10),
    )  # fmt: skip
    done = await import_stylesheets(store, ForumCache(tmp_path / "forum"), [decision])
    assert (done.states, done.recheck) == ([], [path])
    shown = effective_stylesheets(await store.themes(), await store.stylesheets(), child.tid)[name]
    assert shown.stylesheet == "/* saved in the Admin CP */"


async def test_an_import_decided_on_a_copy_whose_text_changed_within_its_second_writes_nothing(
    board: Database, store: Store
) -> None:
    """find_replace_templatesets (plugins) rewrites the text and keeps tid and dateline."""
    copy, decision = await disk_edit_of_a_set_copy(store)
    await raw_sql(board, "UPDATE mybb_templates SET template = %s WHERE tid = %s", ("<p>plugin</p>", copy.tid))
    done = await import_templates(store, [decision])
    assert (done.states, done.recheck) == ([], [decision.entry.path])
    assert (await store.templates_by_title(1, [copy.title]))[copy.title].template == "<p>plugin</p>"


async def refused_beside_an_edit(tables: Database, connection: str, text: str) -> list[str]:
    """On a board whose tables are in ``tables.charset``, over a ``connection`` charset: import
    ``text`` into one set copy and a plain edit into another, in one batch. Returns why the
    first was refused, once checked that the edit landed and the first copy kept its row."""
    board = await create_board(tables, Board(masters=40))
    try:
        async with open_store(replace(board, charset=connection), "mybb_") as store:
            copy, kept = await disk_edit_of_a_set_copy(store)
            other = next(
                r for r in [r async for batch in store.set_templates(1) for r in batch] if r.sid == 1 and r != copy
            )
            path = f"template_sets/Default Templates/ungrouped/{other.title}.html"
            done = await import_templates(
                store, [kept, import_decision(path, Kind.TEMPLATE, 1, other.title, other, text)]
            )
            shown = await store.templates_by_title(1, [copy.title, other.title])
            assert (shown[copy.title].template, shown[other.title]) == ("edited on disk", other)
            assert [d.entry.path for d, _ in done.refused] == [path]
            assert {r.kind for _, r in done.refused} == {RefusalKind.CHARSET}
            return [r.why for _, r in done.refused]
    finally:
        await drop_board(board)


async def test_text_the_boards_charset_cannot_store_is_refused_and_the_rest_of_the_batch_lands(
    server_db: Database,
) -> None:
    """An old board's utf8 (3-byte) tables would cut a save off at its first emoji."""
    assert await refused_beside_an_edit(replace(server_db, charset="utf8"), "utf8", "<p>before 🙂 after</p>") == [
        "holds '🙂' (U+1F642), which the database's charset utf8 cannot store"
    ]


async def test_text_its_columns_cannot_store_is_refused_over_a_wider_connection(server_db: Database) -> None:
    """Tables made latin1 long ago, config.php later set to utf8mb4: the connection carries 中,
    the column cannot (MySQL would refuse the batch's statement, or store '?' when not strict)."""
    assert await refused_beside_an_edit(replace(server_db, charset="latin1"), "utf8mb4", "<p>中</p>") == [
        "holds '中' (U+4E2D), which the database's charset latin1 cannot store"
    ]


async def test_a_name_the_boards_charset_cannot_store_is_refused(server_db: Database) -> None:
    board = await create_board(replace(server_db, charset="latin1"), Board(masters=40))
    try:
        async with open_store(board, "mybb_") as store:
            path = "template_sets/Default Templates/ungrouped/footer_中.html"
            rows = await raw_sql(board, "SELECT COUNT(*) FROM mybb_templates")
            done = await import_templates(store, [import_decision(path, Kind.TEMPLATE, 1, "footer_中", None, "<p/>")])
            assert [(r.kind, r.why) for _, r in done.refused] == [
                (RefusalKind.CHARSET, "name holds '中' (U+4E2D), which the database's charset latin1 cannot store")
            ]
            assert await raw_sql(board, "SELECT COUNT(*) FROM mybb_templates") == rows
    finally:
        await drop_board(board)
