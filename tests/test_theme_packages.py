"""Theme packages against a real forum database (MariaDB and SQLite): the Admin CP's export bytes,
the rows and cache files of its imports, its refusals with nothing written, and a round trip."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mybb_sync import layout
from mybb_sync.config import Database
from mybb_sync.errors import ConfigError, MybbSyncError
from mybb_sync.importer import ForumCache
from mybb_sync.offline import offline_status
from mybb_sync.rows import Theme
from mybb_sync.schema import PGSQL_SERIALS
from mybb_sync.store import Store, open_store
from mybb_sync.synthetic import Board
from mybb_sync.themes import ImportOptions, export_theme, find_theme, import_theme, list_themes
from mybb_sync.themexml import parse_theme_xml

from conftest import golden, raw_sql
from service_helpers import cli, db_url, running_service, tpath

pytestmark = pytest.mark.anyio

EXPORT = "case7-theme-export"
IMPORT = "case8-theme-import"
TABLES = ("themes", "themestylesheets", "templatesets")
# The fresh install's 974 master templates (tid 1-974), so that new rows get the Admin CP's tids.
SPEC = Board(masters=974, globals_count=0, override_ratio=0)


@pytest.fixture
def board_spec() -> Board:
    return SPEC


@pytest.fixture
def forum(tmp_path: Path) -> Path:
    """A forum folder whose cache/themes holds the fresh install's files (theme 1 and 2)."""
    shutil.copytree(golden("case6-fresh-install", "cache-themes"), tmp_path / "forum" / "cache" / "themes")
    return tmp_path / "forum"


def columns(row: dict[str, Any]) -> tuple[str, list[Any]]:
    return ", ".join(row), list(row.values())


async def load_state(db: Database, state: dict[str, Any]) -> None:
    """Make the board hold exactly these rows (a capture's), ids and all."""
    for table in (*TABLES, "templates"):
        where = " WHERE sid <> -2" if table == "templates" else ""
        if db.scheme == "sqlite" or where:
            await raw_sql(db, f"DELETE FROM mybb_{table}{where}")
        else:
            await raw_sql(db, f"TRUNCATE TABLE mybb_{table}")  # MyISAM keeps AUTO_INCREMENT over a DELETE
    rows = [(t, r) for t in TABLES for r in state[t]] + [("templates", r) for r in state["templates_not_master"]]
    for table, row in rows:
        names, values = columns(row)
        await raw_sql(db, f"INSERT INTO mybb_{table} ({names}) VALUES ({', '.join(['%s'] * len(values))})", values)
    for title, cache in state["datacache"].items():
        await raw_sql(db, "UPDATE mybb_datacache SET cache = %s WHERE title = %s", (cache, title))
    if db.scheme == "postgresql":  # rows inserted with their ids: the sequences move on past them, as MyBB's would
        for table, column in PGSQL_SERIALS.items():
            await raw_sql(
                db,
                f"SELECT setval(pg_get_serial_sequence('mybb_{table}', '{column}'), "
                f"(SELECT COALESCE(MAX({column}), 0) + 1 FROM mybb_{table}), false)",
            )


async def read_state(db: Database) -> dict[str, Any]:
    """The rows a capture holds, read back in its shape."""
    state: dict[str, Any] = {}
    for table, key in (("themes", "tid"), ("themestylesheets", "sid"), ("templatesets", "sid")):
        rows = await raw_sql(db, f"SELECT * FROM mybb_{table} ORDER BY {key}")
        state[table] = [dict(zip(COLUMNS[table], r, strict=True)) for r in rows]
    rows = await raw_sql(db, "SELECT * FROM mybb_templates WHERE sid <> -2 ORDER BY tid")
    state["templates_not_master"] = [dict(zip(COLUMNS["templates"], r, strict=True)) for r in rows]
    counts = await raw_sql(db, "SELECT sid, COUNT(*) FROM mybb_templates GROUP BY sid ORDER BY sid")
    state["templates_count_by_sid"] = [{"sid": int(sid), "n": int(n)} for sid, n in counts]
    state["datacache"] = dict(await raw_sql(db, "SELECT title, cache FROM mybb_datacache ORDER BY title"))
    return state


COLUMNS = {
    "themes": ("tid", "name", "pid", "def", "properties", "stylesheets", "allowedgroups"),
    "themestylesheets": ("sid", "name", "tid", "attachedto", "stylesheet", "cachefile", "lastmodified"),
    "templatesets": ("sid", "title"),
    "templates": ("tid", "title", "template", "sid", "version", "status", "dateline"),
}


def timestamps_aside(state: dict[str, Any], since: int) -> dict[str, Any]:
    """The state with the times a save stamps (at or after ``since``) blanked."""
    result = dict(state)
    result["themestylesheets"] = [
        {**r, "lastmodified": None if r["lastmodified"] >= since else r["lastmodified"]}
        for r in state["themestylesheets"]
    ]
    result["templates_not_master"] = [
        {**r, "dateline": None if r["dateline"] >= since else r["dateline"]} for r in state["templates_not_master"]
    ]
    return result


def capture(step: str, name: str) -> dict[str, Any]:
    return json.loads(golden(IMPORT, step, name).read_text())


def request_field(step: str, field: str) -> str:
    fields = capture(step, "request.json")["multipart_fields"]
    return next(f["value"] for f in fields if f["name"] == field)


async def import_step(store: Store, forum: Path, step: str) -> None:
    """One of the captured uploads, with the fields the Admin CP's form sent."""
    options = ImportOptions(name=request_field(step, "name"), parent=request_field(step, "tid"))
    data = golden(IMPORT, step, "input.xml").read_bytes()
    await import_theme(store, ForumCache(forum), data, options)


def cache_files(forum: Path, tid: int) -> dict[str, bytes]:
    folder = forum / "cache" / "themes" / f"theme{tid}"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def captured_files(step: str, tid: int) -> dict[str, bytes]:
    folder = golden(IMPORT, step, "files-after", f"theme{tid}")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


async def digest(db: Database, forum: Path) -> str:
    """Every row of the theme and template tables and every cache file, in one hash."""
    h = hashlib.sha256()
    for table, key in (
        *(("themes", "tid"), ("themestylesheets", "sid"), ("templatesets", "sid")),
        ("templates", "tid"),
    ):
        h.update(repr(await raw_sql(db, f"SELECT * FROM mybb_{table} ORDER BY {key}")).encode())
    h.update(repr(await raw_sql(db, "SELECT * FROM mybb_datacache ORDER BY title")).encode())
    for path in sorted((forum / "cache").rglob("*")):
        h.update(str(path).encode() + (path.read_bytes() if path.is_file() else b""))
    return h.hexdigest()


# --- export ----------------------------------------------------------------------


@pytest.mark.parametrize("options", json.loads(golden(EXPORT, "exports.json").read_text())["exports"])
async def test_export_through_the_store_is_the_file_the_admin_cp_served(
    board: Database, store: Store, options: dict[str, Any]
) -> None:
    await load_state(board, json.loads(golden(EXPORT, "db-state.json").read_text()))
    data = await export_theme(
        store, "Default", custom_only=options["custom_theme"] == 1, include_templates=options["include_templates"] == 1
    )
    assert data == golden(EXPORT, options["file"]).read_bytes()


# --- import ----------------------------------------------------------------------


async def test_importing_the_custom_export_writes_the_admin_cps_rows_and_cache_files(
    board: Database, store: Store, forum: Path
) -> None:
    step = "a-import-custom"
    await load_state(board, capture(step, "before.json"))
    started = capture(step, "request.json")["client_time_before_post"]
    await import_step(store, forum, step)
    assert timestamps_aside(await read_state(board), started) == timestamps_aside(capture(step, "after.json"), started)
    assert cache_files(forum, 3) == captured_files(step, 3)


async def test_importing_the_full_export_under_default_writes_the_admin_cps_rows_and_cache_files(
    board: Database, store: Store, forum: Path
) -> None:
    step = "b-import-all-under-default"
    await load_state(board, capture("a-import-custom", "before.json"))
    await import_step(store, forum, "a-import-custom")
    started = capture("a-import-custom", "request.json")["client_time_before_post"]
    await import_step(store, forum, step)
    assert timestamps_aside(await read_state(board), started) == timestamps_aside(capture(step, "after.json"), started)
    assert cache_files(forum, 4) == captured_files(step, 4)


@pytest.mark.parametrize("step", ["c-same-name-again", "d-unsafe-template"])
async def test_a_refused_import_writes_nothing(board: Database, store: Store, forum: Path, step: str) -> None:
    await load_state(board, capture("a-import-custom", "before.json"))
    await import_step(store, forum, "a-import-custom")
    before = await digest(board, forum)
    shown = json.loads(golden(IMPORT, "results.json").read_text())[step]["error_shown"]
    with pytest.raises(MybbSyncError) as info:
        await import_step(store, forum, step)
    assert shown.removeprefix("The following errors were encountered: ") in str(info.value)
    assert await digest(board, forum) == before


async def test_a_file_that_is_no_theme_is_refused_in_one_line_with_nothing_written(
    board: Database, store: Store, forum: Path
) -> None:
    before = await digest(board, forum)
    with pytest.raises(MybbSyncError, match="not well-formed XML") as info:
        await import_theme(store, ForumCache(forum), b"<theme><properties></theme>", ImportOptions("Broken"))
    assert "\n" not in str(info.value)
    assert await digest(board, forum) == before


async def test_another_version_is_refused_unless_ignored(board: Database, store: Store, forum: Path) -> None:
    data = golden(IMPORT, "a-import-custom", "input.xml").read_bytes().replace(b'version="1837"', b'version="1822"')
    before = await digest(board, forum)
    with pytest.raises(MybbSyncError, match="another version of MyBB"):
        await import_theme(store, ForumCache(forum), data, ImportOptions("Old"))
    assert await digest(board, forum) == before
    await import_theme(store, ForumCache(forum), data, ImportOptions("Old", ignore_version=True))
    assert [t["name"] for t in await list_themes(store)][-1] == "Old"


async def test_a_name_the_themes_table_cannot_hold_is_refused_with_nothing_written(
    board: Database, store: Store, forum: Path
) -> None:
    data = golden(IMPORT, "a-import-custom", "input.xml").read_bytes()
    before = await digest(board, forum)
    with pytest.raises(MybbSyncError, match="the theme name is 101 characters"):
        await import_theme(store, ForumCache(forum), data, ImportOptions("x" * 101))
    assert await digest(board, forum) == before


async def test_without_templates_no_set_is_made_and_the_files_set_stays(
    board: Database, store: Store, forum: Path
) -> None:
    await load_state(board, capture("a-import-custom", "before.json"))
    data = golden(IMPORT, "a-import-custom", "input.xml").read_bytes()
    result = await import_theme(store, ForumCache(forum), data, ImportOptions("Sheets Only", templates=False))
    assert result.templateset is None
    assert [s["title"] for s in (await read_state(board))["templatesets"]] == ["Default Templates"]
    listed = next(t for t in await list_themes(store) if t["tid"] == result.tid)
    assert listed["templateset"] == 1  # the file's value, kept as the Admin CP keeps it


async def test_a_write_the_database_refuses_midway_is_undone_rows_and_cache_files(
    board: Database, store: Store, forum: Path
) -> None:
    """MyISAM has no transactions: a write refused after others (here by a trigger on the last one,
    the theme's rebuilt list; in life a full disk or a crashed table) must not leave half a theme."""
    when = "NEW.stylesheets <> ''"
    if board.scheme == "postgresql":
        await raw_sql(
            board,
            "CREATE FUNCTION mybbsync_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF {when} THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$",
        )
        body = "EXECUTE FUNCTION mybbsync_refuse()"
    elif board.scheme == "sqlite":
        body = f"WHEN {when} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    else:
        body = f"BEGIN IF {when} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF; END"
    await raw_sql(board, f"CREATE TRIGGER mybbsync_refuse BEFORE UPDATE ON mybb_themes FOR EACH ROW {body}")
    before = await digest(board, forum)
    data = golden(IMPORT, "a-import-custom", "input.xml").read_bytes()
    with pytest.raises(MybbSyncError, match=r"failed and was undone: .*refused by the test"):
        await import_theme(store, ForumCache(forum), data, ImportOptions("Half"))
    assert await digest(board, forum) == before


# --- round trip --------------------------------------------------------------------


async def test_export_import_export_keeps_the_stylesheets_and_templates(
    board: Database, store: Store, forum: Path
) -> None:
    await load_state(board, json.loads(golden(EXPORT, "db-state.json").read_text()))
    first = await export_theme(store, "Default", custom_only=False, include_templates=True)
    result = await import_theme(store, ForumCache(forum), first, ImportOptions("Round Trip", parent="Default"))
    second = await export_theme(store, str(result.tid), custom_only=True, include_templates=True)
    a, b = parse_theme_xml(first), parse_theme_xml(second)
    # The file lists stylesheets in the order of the theme's rebuilt list, which follows the rows'
    # sids: the same stylesheets, possibly in another order. MyBB's reader keeps the "\r\n\t\t" its
    # writer puts before </stylesheet> (as "\n\t\t"): each trip adds it, as on the forum.
    assert {s.name: (s.attachedto, s.text) for s in b.stylesheets} == {
        s.name: (s.attachedto, s.text + "\n\t\t") for s in a.stylesheets
    }
    assert len(b.stylesheets) == len(a.stylesheets) == 18
    assert b.templates == a.templates
    assert {k: v for k, v in b.properties.items() if k != "templateset"} == {
        k: v for k, v in a.properties.items() if k != "templateset"
    }


# --- with a running service, and on the command line ----------------------------------


async def test_an_import_while_the_service_runs_is_exported_to_files_not_echoed_back(
    board: Database, root: Path, forum: Path
) -> None:
    data = golden(IMPORT, "a-import-custom", "input.xml").read_bytes()
    async with running_service(board, root, mybb_root=forum, poll_interval=0.2) as svc:
        mark, imports = svc.log.mark(), svc.handle.status().imports
        async with open_store(board, "mybb_") as store:
            await import_theme(store, ForumCache(forum), data, ImportOptions("Imported Custom"))
        after_import = await digest(board, forum)
        await svc.handle.rescan()  # what 'mybb-sync theme import' asks a running service for
        await svc.barrier()
        sheet = root / layout.stylesheet_path("Imported Custom", "fixture.css")
        assert (
            sheet.read_bytes()
            == next(s.text for s in parse_theme_xml(data).stylesheets if s.name == "fixture.css").encode()
        )
        assert (root / tpath("header", "Imported Custom Templates")).is_file()
        assert await digest(board, forum) == after_import
        assert svc.handle.status().imports == imports
        assert not [line for line in svc.log.since(mark) if "conflict" in line]
    assert offline_status(root)["conflicts"] == 0


async def test_the_import_command_has_a_running_service_export_the_new_theme_at_once(
    board: Database, root: Path, tmp_path: Path, forum: Path
) -> None:
    file = golden(IMPORT, "a-import-custom", "input.xml")
    common = ("--db", db_url(board), "--mybb-root", str(forum), "--root", str(root))
    async with running_service(board, root, mybb_root=forum, poll_interval=60) as svc:  # no poll meanwhile
        done = await cli("theme", "import", str(file), "--name", "Fresh", "--json", *common, cwd=tmp_path)
        assert json.loads(done.stdout)["service_refreshed"] is True
        await svc.barrier()
        assert (root / layout.stylesheet_path("Fresh", "fixture.css")).is_file()
        assert (root / tpath("footer", "Fresh Templates")).is_file()
    assert offline_status(root)["conflicts"] == 0


async def test_the_theme_command_exports_imports_and_lists(board: Database, tmp_path: Path, forum: Path) -> None:
    common = ("--db", db_url(board), "--mybb-root", str(forum))
    out = tmp_path / "default.xml"
    await cli("theme", "export", "Default", "--out", str(out), "--custom-only", *common, cwd=tmp_path)
    assert parse_theme_xml(out.read_bytes()).name == "Default"
    file = golden(IMPORT, "a-import-custom", "input.xml")
    done = await cli(
        "theme", "import", str(file), "--name", "Copy", "--parent", "Default", "--json", *common, cwd=tmp_path
    )
    assert json.loads(done.stdout)["name"] == "Copy"
    listed = json.loads((await cli("theme", "list", "--json", *common, cwd=tmp_path)).stdout)
    copy = next(t for t in listed if t["name"] == "Copy")
    assert copy["parent"] == 2 and copy["templateset_title"] == "Copy Templates" and copy["default"] is False


async def test_the_theme_command_writes_the_admin_cps_export_bytes(board: Database, tmp_path: Path) -> None:
    await load_state(board, json.loads(golden(EXPORT, "db-state.json").read_text()))
    out = tmp_path / "custom.xml"
    await cli("theme", "export", "2", "--out", str(out), "--custom-only", "--db", db_url(board), cwd=tmp_path)
    assert out.read_bytes() == golden(EXPORT, "theme2-custom-with-templates.xml").read_bytes()


def test_a_theme_is_found_by_tid_before_a_theme_named_like_that_number() -> None:
    themes = [Theme(2, "3", 1, 1, "", ""), Theme(3, "Other", 1, 0, "", "")]
    assert find_theme(themes, "3").tid == 3 and find_theme(themes, "Other").tid == 3
    with pytest.raises(ConfigError, match="unknown theme 'Nope'; available: 2 '3', 3 'Other'"):
        find_theme(themes, "Nope")


async def test_the_theme_command_says_a_refusal_in_one_line_and_exits_1(
    board: Database, tmp_path: Path, forum: Path
) -> None:
    common = ("--db", db_url(board), "--mybb-root", str(forum))
    file = golden(IMPORT, "d-unsafe-template", "input.xml")
    result = await cli("theme", "import", str(file), "--name", "Unsafe", *common, cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1 and "potential security issue" in result.stderr.decode()
