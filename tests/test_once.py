"""push, pull and sync: one-shot passes for git and CI, their dry runs, exit codes and scopes.

Each command runs as a real ``mybb-sync`` process against a board on the private MariaDB and
on SQLite (the backend matrix); the files are edited while no service runs, as a ``git pull``
or a deploy would.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mybb_sync.config import Database, Settings
from mybb_sync.discovery import recalled, remember, settings_for
from mybb_sync.state import State
from mybb_sync.synthetic import Board

from conftest import raw_sql
from service_helpers import BARRIER, SET_SID, SET_TITLE, cli, db_url, running_service, shown, template, tpath

pytestmark = pytest.mark.anyio

UNSAFE = "{${system('id')}}"  # MyBB's check_template() refuses it (a complex variable calling a function)


@pytest.fixture
def board_spec() -> Board:
    return Board(masters=40)


def where(board: Database, root: Path) -> list[str]:
    return ["--db", db_url(board), "--root", str(root)]


async def run(board: Database, root: Path, *args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    """``mybb-sync ARGS --json``: the exit code and the report."""
    done = await cli(*args, "--json", *where(board, root), cwd=cwd or root.parent, check=False)
    assert done.returncode in (0, 3, 4), done.stderr.decode()
    return done.returncode, json.loads(done.stdout)


def actions(report: dict[str, Any]) -> dict[str, str]:
    return {s["path"]: s["action"] for s in report["steps"]}


async def pulled(board: Database, root: Path) -> None:
    code, _ = await run(board, root, "pull")
    assert code == 0


async def digests(board: Database, root: Path) -> dict[str, str]:
    """Everything a dry run must leave as it was: every table's rows, every file, the state store."""
    out = {}
    for table in ("templates", "templatesets", "themes", "themestylesheets", "datacache"):
        rows = await raw_sql(board, f"SELECT * FROM mybb_{table}")
        out[table] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if path.is_file() and not path.name.startswith("state.sqlite-"):  # WAL side files come and go
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


async def admin_cp(board: Database, title: str, text: str, sid: int = SET_SID) -> None:
    """A save of ``title`` in set ``sid`` as the Admin CP makes it (a new text and time)."""
    await raw_sql(
        board, "UPDATE mybb_templates SET template = %s, dateline = 5 WHERE sid = %s AND title = %s", (text, sid, title)
    )


async def both_changed(board: Database, root: Path, board_spec: Board, file_text: str) -> str:
    """A set copy synced, then saved in the Admin CP ("admin cp") and in its file: its title."""
    await pulled(board, root)
    title = a_copy(board_spec)
    await admin_cp(board, title, "admin cp")
    (root / tpath(title)).write_text(file_text)
    return title


async def text_of(board: Database, title: str, sid: int = SET_SID) -> str:
    return (await shown(board, title, sid)).template


def a_copy(board_spec: Board) -> str:
    """A title the set has its own copy of (every 20th master is overridden)."""
    return board_spec.master_title(20)


# -- push ------------------------------------------------------------------------------------


async def test_push_imports_a_file_edited_while_nothing_ran(board: Database, root: Path, board_spec: Board) -> None:
    await pulled(board, root)
    title = a_copy(board_spec)
    (root / tpath(title)).write_text("<b>from git</b>")
    code, report = await run(board, root, "push")
    assert (code, actions(report)) == (0, {tpath(title): "import"})
    assert await text_of(board, title) == "<b>from git</b>"


async def test_push_a_second_time_has_nothing_to_do(board: Database, root: Path, board_spec: Board) -> None:
    await pulled(board, root)
    (root / tpath(a_copy(board_spec))).write_text("<b>once</b>")
    await run(board, root, "push")
    code, report = await run(board, root, "push")
    assert (code, report["steps"]) == (0, [])


async def test_push_leaves_a_row_changed_in_the_database_for_pull(
    board: Database, root: Path, board_spec: Board
) -> None:
    await pulled(board, root)
    title = a_copy(board_spec)
    await admin_cp(board, title, "admin cp")
    before = (root / tpath(title)).read_bytes()
    code, report = await run(board, root, "push")
    assert (code, actions(report)) == (0, {tpath(title): "skip"})
    assert (root / tpath(title)).read_bytes() == before
    code, report = await run(board, root, "pull")
    assert (code, actions(report)) == (0, {tpath(title): "export"})
    assert (root / tpath(title)).read_text() == "admin cp"


async def test_push_reports_a_conflict_with_exit_3_and_changes_neither_side(
    board: Database, root: Path, board_spec: Board
) -> None:
    title = await both_changed(board, root, board_spec, "<b>from git</b>")
    code, report = await run(board, root, "push")
    assert (code, actions(report)) == (3, {tpath(title): "conflict"})
    assert await text_of(board, title) == "admin cp"
    assert (root / tpath(title)).read_text() == "<b>from git</b>"


async def test_push_force_takes_the_file_in_a_conflict(board: Database, root: Path, board_spec: Board) -> None:
    title = await both_changed(board, root, board_spec, "<b>from git</b>")
    code, _ = await run(board, root, "push", "--force")
    assert code == 0 and await text_of(board, title) == "<b>from git</b>"


async def test_push_refuses_what_the_admin_cp_refuses_with_exit_3(
    board: Database, root: Path, board_spec: Board
) -> None:
    await pulled(board, root)
    title = a_copy(board_spec)
    before = await text_of(board, title)
    (root / tpath(title)).write_text(UNSAFE)
    code, report = await run(board, root, "push")
    assert code == 3 and actions(report) == {tpath(title): "refuse"}
    assert "security" in report["steps"][0]["detail"] or "function" in report["steps"][0]["detail"]
    assert await text_of(board, title) == before


async def test_push_imports_a_new_file_as_a_new_template(board: Database, root: Path) -> None:
    await pulled(board, root)
    (root / "global_templates/brand_new.html").write_text("<p>new</p>")
    code, report = await run(board, root, "push")
    assert (code, actions(report)) == (0, {"global_templates/brand_new.html": "import"})
    assert [r.template for r in await template(board, -1, "brand_new")] == ["<p>new</p>"]


# -- pull ------------------------------------------------------------------------------------


async def test_pull_into_an_empty_folder_writes_every_file(board: Database, root: Path) -> None:
    code, report = await run(board, root, "pull")
    assert code == 0 and report["written"] == len(report["steps"]) > 40
    assert {s["action"] for s in report["steps"]} == {"export"}


async def test_pull_leaves_a_file_changed_on_disk_and_says_so_with_exit_3(
    board: Database, root: Path, board_spec: Board
) -> None:
    title = await both_changed(board, root, board_spec, "<b>mine</b>")
    code, report = await run(board, root, "pull")
    assert (code, actions(report)) == (3, {tpath(title): "conflict"})
    assert (root / tpath(title)).read_text() == "<b>mine</b>"


async def test_pull_force_takes_the_database_in_a_conflict(board: Database, root: Path, board_spec: Board) -> None:
    title = await both_changed(board, root, board_spec, "<b>mine</b>")
    code, _ = await run(board, root, "pull", "--force")
    assert code == 0 and (root / tpath(title)).read_text() == "admin cp"


# -- sync ------------------------------------------------------------------------------------


async def test_sync_takes_each_side_where_only_it_changed(board: Database, root: Path, board_spec: Board) -> None:
    await pulled(board, root)
    mine, theirs = a_copy(board_spec), board_spec.master_title(1)
    (root / tpath(mine)).write_text("<b>mine</b>")
    await admin_cp(board, theirs, "theirs", sid=-2)
    code, report = await run(board, root, "sync")
    assert (code, actions(report)) == (0, {tpath(mine): "import", tpath(theirs): "export"})
    assert await text_of(board, mine) == "<b>mine</b>"
    assert (root / tpath(theirs)).read_text() == "theirs"


# -- dry runs --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["push", "pull", "sync"])
async def test_a_dry_run_changes_nothing_and_exits_4_when_something_would_change(
    board: Database, root: Path, board_spec: Board, command: str
) -> None:
    await pulled(board, root)
    if command != "pull":
        (root / tpath(a_copy(board_spec))).write_text("<b>mine</b>")
    if command != "push":
        title = board_spec.master_title(1)
        await admin_cp(board, title, "theirs", sid=-2)
    before = await digests(board, root)
    code, report = await run(board, root, command, "--dry-run")
    assert report["dry_run"] is True and report["steps"]
    assert code == 4
    assert await digests(board, root) == before


async def test_a_dry_run_on_a_root_never_synced_creates_nothing(board: Database, tmp_path: Path) -> None:
    root = tmp_path / "not yet"
    code, report = await run(board, root, "pull", "--dry-run")
    assert code == 4 and len(report["steps"]) > 40
    assert not root.exists()


async def test_a_dry_run_with_nothing_to_do_exits_0(board: Database, root: Path) -> None:
    await pulled(board, root)
    code, report = await run(board, root, "sync", "--dry-run")
    assert (code, report["steps"]) == (0, [])


async def test_a_dry_run_says_what_would_be_refused_and_why(board: Database, root: Path, board_spec: Board) -> None:
    await pulled(board, root)
    (root / tpath(a_copy(board_spec))).write_text(UNSAFE)
    before = await digests(board, root)
    code, report = await run(board, root, "push", "--dry-run")
    assert code == 3 and actions(report) == {tpath(a_copy(board_spec)): "refuse"}
    assert await digests(board, root) == before


async def test_a_dry_run_prints_the_plan_a_path_a_line(board: Database, root: Path, board_spec: Board) -> None:
    await pulled(board, root)
    (root / tpath(a_copy(board_spec))).write_text("<b>mine</b>")
    done = await cli("push", "--dry-run", *where(board, root), cwd=root.parent, check=False)
    lines = done.stdout.decode().splitlines()
    assert done.returncode == 4
    assert lines == [f"import   {tpath(a_copy(board_spec))}", lines[-1]] and lines[-1].startswith(
        "push would: 1 import"
    )


# -- what a run covers -----------------------------------------------------------------------


async def test_the_ignore_file_keeps_a_file_out_of_every_command(
    board: Database, root: Path, board_spec: Board
) -> None:
    await pulled(board, root)
    title = a_copy(board_spec)
    (root / ".mybb-syncignore").write_text(f"# local experiments\n{title}.html\n")
    (root / tpath(title)).write_text("<b>experiment</b>")
    await admin_cp(board, title, "admin")
    for command in ("push", "pull", "sync"):
        code, report = await run(board, root, command)
        assert (code, report["steps"]) == (0, []), command
    assert (root / tpath(title)).read_text() == "<b>experiment</b>"
    assert await text_of(board, title) == "admin"


async def test_the_ignore_file_keeps_a_file_out_of_the_service(board: Database, root: Path, board_spec: Board) -> None:
    await pulled(board, root)
    title, other = a_copy(board_spec), board_spec.master_title(1)
    (root / ".mybb-syncignore").write_text(f"{title}.html\n")
    async with running_service(board, root) as svc:
        mark = svc.log.mark()
        (root / tpath(title)).write_text("<b>experiment</b>")
        (root / tpath(other)).write_text("<b>real</b>")
        await svc.imported([tpath(other)], since=mark)
        await svc.barrier()
        assert not any(tpath(title) in line for line in svc.log.since(mark))
    assert await text_of(board, title) != "<b>experiment</b>"


@pytest.mark.parametrize(
    "narrowing",
    [
        lambda title, other: ["--only", f"{title}.html"],
        lambda title, other: ["--ignore", f"{other}.html"],
        lambda title, other: [tpath(title)],
    ],
    ids=["only", "ignore", "path"],
)
async def test_a_run_can_be_narrowed_to_some_files(
    board: Database, root: Path, board_spec: Board, narrowing: Any
) -> None:
    await pulled(board, root)
    title, other = a_copy(board_spec), board_spec.master_title(1)
    (root / tpath(title)).write_text("<b>one</b>")
    (root / tpath(other)).write_text("<b>two</b>")
    code, report = await run(board, root, "push", *narrowing(title, other))
    assert (code, actions(report)) == (0, {tpath(title): "import"})


async def test_a_run_narrowed_to_a_theme_touches_no_template(board: Database, root: Path, board_spec: Board) -> None:
    await pulled(board, root)
    await admin_cp(board, board_spec.master_title(1), "theirs", sid=-2)
    code, report = await run(board, root, "pull", "--theme", "Default")
    assert (code, report["steps"]) == (0, [])
    code, report = await run(board, root, "pull", "--set", SET_TITLE)
    assert actions(report) == {tpath(board_spec.master_title(1)): "export"}


async def test_an_unknown_set_is_a_usage_error_listing_the_sets(board: Database, root: Path) -> None:
    done = await cli("push", "--set", "Nope", *where(board, root), cwd=root.parent, check=False)
    assert done.returncode == 2
    assert done.stderr.decode().strip().endswith(f"unknown template set 'Nope'; available: '{SET_TITLE}'")


# -- a running service ----------------------------------------------------------------------


async def test_a_command_is_handed_to_a_running_service_with_the_same_report(
    board: Database, root: Path, board_spec: Board
) -> None:
    await pulled(board, root)
    title = a_copy(board_spec)
    async with running_service(board, root) as svc:
        svc.handle.pause()  # the edit below waits for the push, not for the service's own watch
        (root / BARRIER).unlink()  # the helper's empty file: a push would refuse it
        (root / tpath(title)).write_text("<b>via the service</b>")
        code, report = await run(board, root, "push")
        assert (code, actions(report)) == (0, {tpath(title): "import"})
        assert await text_of(board, title) == "<b>via the service</b>"
        code, report = await run(board, root, "export", "--set", SET_TITLE)
        assert (code, report["steps"]) == (0, [])
        svc.handle.resume()


@pytest.mark.parametrize("board_spec", [Board(masters=1200)])
async def test_a_report_of_a_thousand_paths_comes_back_from_a_running_service(board: Database, root: Path) -> None:
    async with running_service(board, root) as svc:
        svc.handle.pause()
        (root / "template_sets").rename(root.parent / "aside")
        code, report = await run(board, root, "pull", "--dry-run")
        svc.handle.resume()
        (root.parent / "aside").rename(root / "template_sets")
    assert code == 4 and len(report["steps"]) > 1200 and len(json.dumps(report)) > 64 * 1024


async def test_diff_works_through_a_running_service_without_database_flags(
    board: Database, root: Path, board_spec: Board
) -> None:
    title = a_copy(board_spec)
    async with running_service(board, root) as svc:
        svc.handle.pause()
        (root / tpath(title)).write_text("<b>pending</b>")
        done = await cli("diff", tpath(title), "--root", str(root), cwd=root.parent, check=False)
        assert done.returncode == 1 and b"+<b>pending</b>" in done.stdout
        svc.handle.resume()


async def test_status_outdated_works_through_a_running_service_without_database_flags(
    board: Database, root: Path, board_spec: Board
) -> None:
    title = a_copy(board_spec)
    await raw_sql(board, "UPDATE mybb_templates SET version = '99999' WHERE sid = -2 AND title = %s", (title,))
    async with running_service(board, root):
        done = await cli("status", "--outdated", "--json", "--root", str(root), cwd=root.parent, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert [(i["set"], i["title"]) for i in json.loads(done.stdout)] == [(SET_TITLE, title)]


# -- finding the root and the forum -------------------------------------------------------------


async def test_a_command_run_in_a_subfolder_finds_its_root_and_remembers_the_forum(
    board: Database, root: Path, board_spec: Board
) -> None:
    await pulled(board, root)
    title = a_copy(board_spec)
    (root / tpath(title)).write_text("<b>found</b>")
    here = (root / tpath(title)).parent
    done = await cli("push", "--json", cwd=here, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert actions(json.loads(done.stdout)) == {tpath(title): "import"}


def test_the_state_store_remembers_the_forum_but_never_the_password(tmp_path: Path) -> None:
    db = Database.parse("mysql://mybb:s3cret@db.example:3307/forum?charset=utf8mb4")
    with closing(State(tmp_path)) as state:
        remember(state, Settings(db=db, root=tmp_path, prefix="mb_"))
    remembered = recalled(tmp_path)
    assert "s3cret" not in json.dumps(remembered)
    assert Database.parse(remembered["db"]) == replace(db, password="")
    assert remembered["prefix"] == "mb_"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://mybb:pw@db.example:3307/forum?charset=utf8&unix_socket=/run/mysqld/mysqld.sock",
        "postgresql://mybb:pw@db.example:5433/forum?host=/run/postgresql",
        "postgresql://mybb@localhost/forum",
        "sqlite:///srv/forum%20data/forum.sqlite",
    ],
)
def test_a_remembered_url_reads_back_to_the_same_database_without_its_password(url: str) -> None:
    db = Database.parse(url)
    assert ":pw@" not in db.url() and Database.parse(db.url()) == replace(db, password="")


def test_a_remembered_forum_folder_without_config_php_still_gives_the_remembered_database(tmp_path: Path) -> None:
    """A service started with --db and --mybb-root (a forum folder holding only its cache): a
    later command in the root needs no flags, and one that needs no database never fails."""
    db = Database.parse("sqlite:///srv/forum.sqlite")
    with closing(State(tmp_path)) as state:
        remember(state, Settings(db=db, root=tmp_path, mybb_root=tmp_path / "forum"))
    settings = settings_for({}, cwd=tmp_path, environ={})
    assert settings.db == db and settings.mybb_root == tmp_path / "forum"


def test_a_remembered_database_takes_its_password_from_the_environment(tmp_path: Path) -> None:
    db = Database.parse("mysql://mybb:s3cret@db.example/forum")
    with closing(State(tmp_path)) as state:
        remember(state, Settings(db=db, root=tmp_path))
    settings = settings_for({}, cwd=tmp_path / "deeper", environ={"MYBB_SYNC_DB_PASSWORD": "s3cret"})
    assert settings.root == tmp_path and settings.db == db


async def test_paths_are_read_relative_to_the_root_or_to_the_working_folder(
    board: Database, root: Path, board_spec: Board
) -> None:
    await pulled(board, root)
    title = a_copy(board_spec)
    (root / tpath(title)).write_text("<b>x</b>")
    here = (root / tpath(title)).parent
    for spelt in (tpath(title), f"{title}.html"):  # as status prints it; as the shell completes it here
        done = await cli("diff", spelt, cwd=here, check=False)
        assert done.returncode == 1 and b"+<b>x</b>" in done.stdout, spelt


async def test_options_may_come_before_the_command(board: Database, root: Path) -> None:
    done = await cli("--root", str(root), "--db", db_url(board), "pull", "--json", cwd=root.parent, check=False)
    assert done.returncode == 0 and json.loads(done.stdout)["written"] > 0


async def test_a_usage_error_says_mybb_sync_error_once(tmp_path: Path) -> None:
    done = await cli("resolve", "x", "--take", "neither", cwd=tmp_path, check=False)
    err = done.stderr.decode()
    assert done.returncode == 2 and err.count("mybb-sync: error:") == 1 and err.count("\n") == 1


# -- the replaced tool's folder ----------------------------------------------------------------


def theirs_tree(root: Path, pulled_root: Path) -> dict[str, str]:
    """``pulled_root``'s files, the set templates moved into the replaced tool's group folders
    ("<Group> Templates"), and what moved where."""
    moved = {}
    for path in sorted(p for p in pulled_root.rglob("*") if p.is_file() and ".mybb-sync" not in p.parts):
        rel = path.relative_to(pulled_root).as_posix()
        theirs = rel
        if rel.startswith("template_sets/"):
            set_dir, group, name = rel.rsplit("/", 2)
            theirs = moved[rel] = f"{set_dir}/{group.capitalize()} Templates/{name}"
        target = root / theirs
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return moved


async def test_the_replaced_tools_folder_is_adopted_where_its_files_are(
    board: Database, root: Path, board_spec: Board, tmp_path: Path
) -> None:
    ours = tmp_path / "ours"
    await pulled(board, ours)
    moved = theirs_tree(root, ours)
    code, report = await run(board, root, "sync")  # the first sync adopts every file equal to its row
    assert (code, report["steps"]) == (0, [])
    title = a_copy(board_spec)
    (root / moved[tpath(title)]).write_text("<b>edited in the old folder</b>")
    code, report = await run(board, root, "sync")
    assert (code, actions(report)) == (0, {moved[tpath(title)]: "import"})
    assert await text_of(board, title) == "<b>edited in the old folder</b>"
    assert not any(root.glob("template_sets/*/ungrouped")) and not (root / tpath(title)).exists()
    other = board_spec.master_title(1)
    await admin_cp(board, other, "admin", sid=-2)
    await raw_sql(
        board,
        "INSERT INTO mybb_templates (title, template, sid, version, dateline) VALUES ('header_new', 'n', 1, '1', 1)",
    )
    code, report = await run(board, root, "pull")
    assert actions(report) == {moved[tpath(other)]: "export", tpath("header_new"): "export"}
    assert (root / moved[tpath(other)]).read_text() == "admin"


async def test_two_files_for_one_template_are_one_conflict_and_neither_is_imported(
    board: Database, root: Path, board_spec: Board, tmp_path: Path
) -> None:
    ours = tmp_path / "ours"
    await pulled(board, ours)
    moved = theirs_tree(root, ours)
    title = a_copy(board_spec)
    before = await text_of(board, title)
    (root / moved[tpath(title)]).write_text("<b>old folder</b>")
    (root / tpath(title)).parent.mkdir(parents=True, exist_ok=True)
    (root / tpath(title)).write_text("<b>new folder</b>")
    code, report = await run(board, root, "sync")
    assert code == 3
    assert actions(report) == {moved[tpath(title)]: "conflict", tpath(title): "conflict"}
    assert await text_of(board, title) == before


async def test_a_file_moved_to_another_group_folder_is_the_same_template_and_never_reverted(
    board: Database, root: Path, board_spec: Board
) -> None:
    """git mv between group folders, with deletions reverting set copies: a move, not a deletion."""
    await pulled(board, root)
    title = a_copy(board_spec)
    before = await text_of(board, title)
    moved = root / "template_sets" / SET_TITLE / "Moved Templates" / f"{title}.html"
    moved.parent.mkdir()
    async with running_service(board, root, on_delete="revert", delete_grace=0.0) as svc:
        (root / tpath(title)).rename(moved)
        await svc.handle.rescan()
        await svc.barrier()
        moved.write_text("<b>edited where it moved</b>")
        mark = svc.log.mark()
        await svc.imported([moved.relative_to(root).as_posix()], since=mark)
        await svc.barrier()
        assert not any(line.startswith("reverted") for line in svc.log.lines)
    assert not (root / tpath(title)).exists()
    assert await text_of(board, title) == "<b>edited where it moved</b>" != before


async def moved_while_nothing_ran(board: Database, root: Path, board_spec: Board) -> tuple[str, Path]:
    """A set copy's file, pulled, then moved to a new group folder: (title, where it is now)."""
    await pulled(board, root)
    title = a_copy(board_spec)
    moved = root / "template_sets" / SET_TITLE / "Moved Templates" / f"{title}.html"
    moved.parent.mkdir()
    (root / tpath(title)).rename(moved)
    return title, moved


async def test_a_file_moved_while_nothing_ran_is_found_where_it_went(
    board: Database, root: Path, board_spec: Board
) -> None:
    title, moved = await moved_while_nothing_ran(board, root, board_spec)
    code, report = await run(board, root, "sync")
    assert (code, report["steps"]) == (0, [])
    await admin_cp(board, title, "admin cp")
    code, report = await run(board, root, "pull")
    assert (code, actions(report)) == (0, {moved.relative_to(root).as_posix(): "export"})
    assert not (root / tpath(title)).exists() and moved.read_text() == "admin cp"


async def test_a_file_moved_and_edited_while_nothing_ran_is_imported_from_where_it_went(
    board: Database, root: Path, board_spec: Board
) -> None:
    """Its base goes with it: an edit made as it moved is an edit, not a file never synced."""
    title, moved = await moved_while_nothing_ran(board, root, board_spec)
    moved.write_text("<b>edited as it moved</b>")
    code, report = await run(board, root, "sync")
    assert (code, actions(report)) == (0, {moved.relative_to(root).as_posix(): "import"})
    assert await text_of(board, title) == "<b>edited as it moved</b>"
