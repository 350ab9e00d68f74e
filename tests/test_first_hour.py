"""What a newcomer meets in the first hour: help screens, a scoped service, sed -i, a conflict.

Each test is one thing a person following the README verbatim tripped over once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mybb_sync.args import build_parser
from mybb_sync.config import Database
from mybb_sync.offline import offline_status
from mybb_sync.selection import Selection
from mybb_sync.synthetic import Board

from conftest import raw_sql
from service_helpers import SET_TITLE, cli, db_url, running_service, set_template, shown, tpath, write

pytestmark = pytest.mark.anyio


@pytest.fixture
def board_spec() -> Board:
    return Board(masters=40, extra_sets=("Second Set",))


def subcommands() -> list[str]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]  # noqa: SLF001 - argparse keeps them here
    return sorted(sub.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", subcommands())
def test_every_command_help_has_a_description_and_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = capsys.readouterr().out
    assert "example:" in text or command == "theme"  # theme's actions have their own help screens
    assert text.split("\n\n")[1].strip(), "no description"


@pytest.mark.backends("sqlite")
async def test_status_says_never_for_an_export_that_never_happened(board: Database, root: Path) -> None:
    await cli("pull", "--db", db_url(board), "--root", str(root), cwd=root.parent)
    done = await cli("status", cwd=root)
    assert b"None" not in done.stdout
    assert json.loads((await cli("status", "--json", cwd=root)).stdout).get("last_import") is None


async def test_watch_with_a_set_leaves_the_other_sets_alone(board: Database, root: Path, board_spec: Board) -> None:
    title = board_spec.master_title(1)
    await cli("pull", "--db", db_url(board), "--root", str(root), cwd=root.parent)
    async with running_service(board, root, selection=Selection(sets=(SET_TITLE,))) as svc:
        mark = svc.log.mark()
        write(root / tpath(title, "Second Set"), "<b>second</b>")
        write(root / tpath(title), "<b>first</b>")
        await svc.imported([tpath(title)], since=mark)
        await svc.barrier()
        assert not any("Second Set" in line for line in svc.log.since(mark))
    assert (await shown(board, title)).template == "<b>first</b>"
    assert (await shown(board, title, 2)).template != "<b>second</b>"


async def test_a_sed_temp_file_in_a_theme_folder_is_no_stylesheet_and_no_problem(
    board: Database, root: Path, tmp_path: Path
) -> None:
    """sed -i writes ``sedXXXXXX`` beside the file, then renames it over: no stylesheet, nothing to say."""
    forum = tmp_path / "forum"
    (forum / "cache" / "themes").mkdir(parents=True)
    async with running_service(board, root, mybb_root=forum) as svc:
        mark = svc.log.mark()
        (root / "styles/Default/sedAb12Cd").write_text("body { color: red }")  # left behind, never renamed
        await svc.handle.rescan()
        await svc.barrier()
        assert not any("sedAb12Cd" in line for line in svc.log.since(mark))
    assert not any("sedAb12Cd" in p["path"] for p in offline_status(root)["problems"])
    rows = await raw_sql(board, "SELECT name FROM mybb_themestylesheets WHERE name LIKE %s", ("sed%",))
    assert rows == []


async def test_a_conflict_is_logged_once_with_how_to_settle_it(board: Database, root: Path, board_spec: Board) -> None:
    title = board_spec.master_title(20)  # the set has its own copy
    rel = tpath(title)
    async with running_service(board, root) as svc:
        svc.handle.pause()
        await set_template(board, 1, title, "<p>admin cp</p>", 1_800_000_001)
        write(root / rel, "<p>editor</p>\n")
        mark = svc.log.mark()
        svc.handle.resume()
        line = await svc.log.wait_for(lambda text: text.startswith(f"conflict: {rel}:"), since=mark)
        await svc.handle.rescan()  # the rescan meets it again
        await svc.barrier()
        said = [text for text in svc.log.since(mark) if text.startswith(f"conflict: {rel}:")]
    assert said == [line]
    assert "mybb-sync resolve --take disk|db" in line
