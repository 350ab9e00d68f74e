"""``styles/<theme>/theme.json`` through the running service (MariaDB and SQLite): written from
the rows, saved as the Admin CP's forms save (golden against case 3's rows), an Admin CP change
reaching the file, and a file it cannot take refused with nothing written."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mybb_sync import php
from mybb_sync.config import Database
from mybb_sync.offline import offline_status
from mybb_sync.rows import Theme
from mybb_sync.stylesheets import default_theme_cache
from mybb_sync.synthetic import Board
from mybb_sync.themefile import theme_file_path

from conftest import FIXTURES, golden, raw_sql
from service_helpers import cli, db_url, running_service, wait_file, write

pytestmark = pytest.mark.anyio

CASE3 = "case3-add-stylesheets"
STEPS = ("a-fixture-index-only", "b-fixture2-global", "c-fixture3-actions")
PATH = theme_file_path("Default")
FIXTURE3_ATTACHED = "usercp.php?profile,options|index.php"


@pytest.fixture
def board_spec() -> Board:
    return Board(masters=20)


@pytest.fixture
def forum(tmp_path: Path) -> Path:
    """The forum after case 3: the fresh install's cache files, the three new sheets', an editor theme."""
    themes = tmp_path / "forum" / "cache" / "themes"
    shutil.copytree(golden("case6-fresh-install", "cache-themes"), themes)
    for step in STEPS:
        shutil.copytree(golden(CASE3, step, "files-after"), themes, dirs_exist_ok=True)
    editor = tmp_path / "forum" / "jscripts" / "sceditor" / "themes"
    editor.mkdir(parents=True)
    (editor / "mybb.css").write_text("/* editor */\n")
    return tmp_path / "forum"


def after_case3() -> dict[str, Any]:
    return json.loads(golden(CASE3, "c-fixture3-actions", "after.json").read_text())


async def load_case3(db: Database, change: Callable[[dict[str, Any]], None] = lambda rows: None) -> None:
    """Make the board's theme tables hold case 3's rows (after ``change``), ids and all."""
    after = after_case3()
    fresh = json.loads(golden("case6-fresh-install", "themestylesheets.json").read_text())
    rows = {"themes": after["themes"], "themestylesheets": [*fresh, *after["themestylesheets"]]}
    change(rows)
    for table, items in rows.items():
        await raw_sql(db, f"DELETE FROM mybb_{table}")
        for row in items:
            names = ", ".join(row)
            marks = ", ".join(["%s"] * len(row))
            await raw_sql(db, f"INSERT INTO mybb_{table} ({names}) VALUES ({marks})", list(row.values()))
    await raw_sql(
        db, "UPDATE mybb_datacache SET cache = %s WHERE title = 'default_theme'", (after["datacache_default_theme"],)
    )


async def default_row(db: Database) -> tuple[str, str]:
    [(properties, stylesheets)] = await raw_sql(db, "SELECT properties, stylesheets FROM mybb_themes WHERE tid = 2")
    return properties, stylesheets


async def datacache(db: Database) -> str:
    return (await raw_sql(db, "SELECT cache FROM mybb_datacache WHERE title = 'default_theme'"))[0][0]


async def digest(db: Database) -> str:
    h = hashlib.sha256()
    for table, key in (("themes", "tid"), ("themestylesheets", "sid"), ("datacache", "title")):
        h.update(repr(await raw_sql(db, f"SELECT * FROM mybb_{table} ORDER BY {key}")).encode())
    return h.hexdigest()


def edited(root: Path, change: Callable[[dict[str, Any]], None]) -> str:
    data = json.loads((root / PATH).read_text())
    change(data)
    return json.dumps(data, indent=2) + "\n"


def fixture3(rows: dict[str, Any], **values: Any) -> None:
    for row in rows["themestylesheets"]:
        if row["name"] == "fixture3.css":
            row.update(values)


async def test_each_theme_but_the_master_gets_its_settings_file_as_rendered(
    board: Database, root: Path, forum: Path
) -> None:
    await load_case3(board)
    async with running_service(board, root, mybb_root=forum):
        pass
    assert (root / PATH).read_text() == (FIXTURES.parent / "themefile" / "case3-default.json").read_text()
    assert not (root / theme_file_path("MyBB Master Style")).exists()


async def test_attaching_by_file_and_by_action_in_the_file_writes_the_admin_cps_rows(
    board: Database, root: Path, forum: Path
) -> None:
    after = after_case3()
    stale = php.dumps({"global": {"global": ["cache/themes/theme1/global.css"]}})
    await load_case3(board, lambda rows: (fixture3(rows, attachedto=""), rows["themes"][1].update(stylesheets=stale)))
    async with running_service(board, root, mybb_root=forum) as svc:
        mark = svc.log.mark()
        write(
            root / PATH, edited(root, lambda d: d["stylesheets"]["fixture3.css"].update(attachedto=FIXTURE3_ATTACHED))
        )
        await svc.imported([PATH], since=mark)
    assert await default_row(board) == (after["themes"][1]["properties"], after["themes"][1]["stylesheets"])
    assert await datacache(board) == after["datacache_default_theme"]
    [(attached, lastmodified)] = await raw_sql(
        board, "SELECT attachedto, lastmodified FROM mybb_themestylesheets WHERE name = 'fixture3.css'"
    )
    assert (attached, lastmodified) == (FIXTURE3_ATTACHED, after["themestylesheets"][2]["lastmodified"])


async def test_an_order_change_in_the_file_writes_the_admin_cps_disporder(
    board: Database, root: Path, forum: Path
) -> None:
    after = after_case3()
    golden_properties = after["themes"][1]["properties"]
    moved = golden_properties.replace('s:12:"fixture3.css";i:20;', 's:12:"fixture3.css";i:0;')
    await load_case3(board, lambda rows: rows["themes"][1].update(properties=moved))
    async with running_service(board, root, mybb_root=forum) as svc:
        assert json.loads((root / PATH).read_text())["stylesheets"]["fixture3.css"]["order"] == 0
        mark = svc.log.mark()
        write(root / PATH, edited(root, lambda d: d["stylesheets"]["fixture3.css"].update(order=20)))
        await svc.imported([PATH], since=mark)
    assert await default_row(board) == (golden_properties, after["themes"][1]["stylesheets"])
    assert await datacache(board) == after["datacache_default_theme"]


async def test_a_settings_edit_writes_the_edit_theme_forms_properties_and_the_datacache(
    board: Database, root: Path, forum: Path
) -> None:
    await load_case3(board)
    async with running_service(board, root, mybb_root=forum) as svc:
        mark = svc.log.mark()
        write(root / PATH, edited(root, lambda d: d.update(logo="images/new.png", borderwidth=1)))
        await svc.imported([PATH], since=mark)
        properties, stylesheets = await default_row(board)
        props = php.loads(properties)
        assert isinstance(props, dict)
        assert list(props) == [
            "templateset", "editortheme", "imgdir", "logo", "tablespace", "borderwidth", "colors", "disporder"
        ]  # fmt: skip
        assert (props["logo"], props["borderwidth"], props["tablespace"]) == ("images/new.png", 1, 5)
        assert stylesheets == after_case3()["themes"][1]["stylesheets"]
        theme = Theme(2, "Default", 1, 1, properties, stylesheets)
        assert await datacache(board) == default_theme_cache(theme)
        await svc.barrier()
    assert json.loads((root / PATH).read_text())["logo"] == "images/new.png"


async def test_an_admin_cp_change_to_the_theme_row_reaches_the_file(board: Database, root: Path, forum: Path) -> None:
    await load_case3(board)
    async with running_service(board, root, mybb_root=forum, poll_interval=0.2):
        properties, _ = await default_row(board)
        changed = properties.replace('s:4:"logo";s:15:"images/logo.png";', 's:4:"logo";s:12:"images/x.png";')
        await raw_sql(board, "UPDATE mybb_themes SET properties = %s WHERE tid = 2", (changed,))
        await wait_file(root / PATH, lambda data: data is not None and json.loads(data)["logo"] == "images/x.png")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"templateset": 1,', "not valid JSON"),
        (None, "unknown key 'favicon'"),
    ],
)
async def test_a_file_it_cannot_take_is_refused_in_one_line_listed_and_nothing_is_written(
    board: Database, root: Path, forum: Path, text: str | None, reason: str
) -> None:
    await load_case3(board)
    async with running_service(board, root, mybb_root=forum) as svc:
        before = await digest(board)
        mark = svc.log.mark()
        write(root / PATH, text if text is not None else edited(root, lambda d: d.update(favicon="x.ico", logo="y")))
        line = await svc.log.wait_for(lambda line: line.startswith(f"refused {PATH}:"), since=mark)
        await svc.barrier()
        assert reason in line and "\n" not in line
        assert await digest(board) == before
    problems = {p["path"]: p["detail"] for p in offline_status(root)["problems"] if p["kind"] == "invalid"}
    assert reason in problems[PATH]


async def test_both_sides_changed_is_a_conflict_said_once_and_resolve_takes_either(
    board: Database, root: Path, forum: Path
) -> None:
    await load_case3(board)
    url = ["--db", db_url(board), "--root", str(root)]
    async with running_service(board, root, mybb_root=forum) as svc:
        svc.handle.pause()
        properties, _ = await default_row(board)
        admin = properties.replace('s:6:"imgdir";s:6:"images";', 's:6:"imgdir";s:5:"admin";')
        await raw_sql(board, "UPDATE mybb_themes SET properties = %s WHERE tid = 2", (admin,))
        write(root / PATH, edited(root, lambda d: d.update(imgdir="editor")))
        mark, before = svc.log.mark(), await digest(board)
        svc.handle.resume()
        await svc.log.wait_for(lambda line: line.startswith(f"conflict: {PATH}:"), since=mark)
        await svc.barrier()
        assert await digest(board) == before
        assert json.loads((root / PATH).read_text())["imgdir"] == "editor"
        assert PATH in {p["path"] for p in offline_status(root)["problems"] if p["kind"] == "conflict"}
        assert sum(line.startswith(f"conflict: {PATH}:") for line in svc.log.since(mark)) == 1

        await cli("resolve", str(root / PATH), "--take", "db", *url, cwd=root.parent)
        assert json.loads((root / PATH).read_text())["imgdir"] == "admin"
        svc.handle.pause()  # both sides change again, and the file is taken
        write(root / PATH, edited(root, lambda d: d.update(imgdir="editor")))
        await raw_sql(board, "UPDATE mybb_themes SET properties = %s WHERE tid = 2", (properties,))
        await cli("resolve", str(root / PATH), "--take", "disk", *url, cwd=root.parent)
        svc.handle.resume()
        await svc.barrier()
        props = php.loads((await default_row(board))[0])
        assert isinstance(props, dict) and props["imgdir"] == "editor"
    assert not [p for p in offline_status(root)["problems"] if p["path"] == PATH]


async def test_a_deleted_settings_file_is_written_again_from_the_rows(board: Database, root: Path, forum: Path) -> None:
    await load_case3(board)
    async with running_service(board, root, mybb_root=forum):
        text = (root / PATH).read_text()
        (root / PATH).unlink()
        await wait_file(root / PATH, lambda data: data == text.encode())


async def test_push_saves_an_edited_file_and_sync_writes_a_database_change(
    board: Database, root: Path, forum: Path
) -> None:
    after = after_case3()
    golden_properties = after["themes"][1]["properties"]
    moved = golden_properties.replace('s:12:"fixture3.css";i:20;', 's:12:"fixture3.css";i:0;')
    await load_case3(board, lambda rows: rows["themes"][1].update(properties=moved))
    url = ["--db", db_url(board), "--root", str(root), "--mybb-root", str(forum)]
    await cli("pull", *url, cwd=root.parent)
    write(root / PATH, edited(root, lambda d: d["stylesheets"]["fixture3.css"].update(order=20)))
    pushed = json.loads((await cli("push", "--json", *url, cwd=root.parent)).stdout)
    assert {"path": PATH, "action": "import", "detail": ""} in pushed["steps"]
    assert await default_row(board) == (golden_properties, after["themes"][1]["stylesheets"])
    assert await datacache(board) == after["datacache_default_theme"]

    properties, _ = await default_row(board)
    changed = properties.replace('s:4:"logo";s:15:"images/logo.png";', 's:4:"logo";s:12:"images/x.png";')
    await raw_sql(board, "UPDATE mybb_themes SET properties = %s WHERE tid = 2", (changed,))
    pushed = json.loads((await cli("push", "--json", *url, cwd=root.parent, check=False)).stdout)
    assert next(s for s in pushed["steps"] if s["path"] == PATH)["action"] == "skip"
    synced = json.loads((await cli("sync", "--json", *url, cwd=root.parent)).stdout)
    assert {"path": PATH, "action": "export", "detail": ""} in synced["steps"]
    assert json.loads((root / PATH).read_text())["logo"] == "images/x.png"


async def test_a_dry_run_lists_a_settings_file_it_would_save_and_writes_nothing(
    board: Database, root: Path, forum: Path
) -> None:
    await load_case3(board)
    url = ["--db", db_url(board), "--root", str(root), "--mybb-root", str(forum)]
    await cli("pull", *url, cwd=root.parent)
    write(root / PATH, edited(root, lambda d: d["stylesheets"]["fixture3.css"].update(order=99)))
    before, state = await digest(board), (root / ".mybb-sync/state.sqlite").read_bytes()
    for command in ("push", "sync"):
        planned = await cli(command, "--dry-run", "--json", *url, cwd=root.parent, check=False)
        assert planned.returncode == 4
        assert {"path": PATH, "action": "import", "detail": ""} in json.loads(planned.stdout)["steps"]
    write(root / PATH, "{not json")
    planned = await cli("push", "--dry-run", "--json", *url, cwd=root.parent, check=False)
    assert planned.returncode == 3
    assert next(s for s in json.loads(planned.stdout)["steps"] if s["path"] == PATH)["action"] == "refuse"
    assert await digest(board) == before
    assert (root / ".mybb-sync/state.sqlite").read_bytes() == state
