"""What the Admin CP's check_template() refuses never reaches the database, from any path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mybb_sync.config import Database
from mybb_sync.engine import Decision, Entry
from mybb_sync.errors import MybbSyncError
from mybb_sync.importer import RefusalKind, refusal
from mybb_sync.layout import Kind
from mybb_sync.offline import offline_status
from mybb_sync.reconcile import Action
from mybb_sync.store import Store
from mybb_sync.synthetic import INSTALL_TIME, Board

from conftest import raw_sql
from service_helpers import (
    SET_SID,
    audit,
    cli,
    db_url,
    install_audit,
    running_service,
    shown,
    tpath,
    write,
)

pytestmark = pytest.mark.anyio

OWN = 20  # a master the set has its own copy of
INHERITED = 21  # a master the set only inherits

UNSAFE = {
    "database settings": "<div>{$config['database']['password']}</div>",
    "'$' followed by '{'": '<div>{${system("id")}}</div>',
    "complex {$...} syntax": "<div>{$a[$b[0]]}</div>",
}


@pytest.fixture
async def db(board: Database) -> Database:
    await install_audit(board)
    return board


def invalid(root: Path) -> dict[str, str]:
    return {p["path"]: p["detail"] for p in offline_status(root)["problems"] if p["kind"] == "invalid"}


async def test_the_issue_example_is_refused_and_changes_nothing(db: Database, board_spec: Board, root: Path) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    async with running_service(db, root) as svc:
        before = await shown(db, title)
        mark = svc.log.mark()
        write(root / rel, "<div>{${system(\"id\")}} {$config['database']['password']}</div>")
        line = await svc.log.wait_for(lambda line: line.startswith(f"refused {rel}:"), since=mark)
        await svc.barrier()
        assert "security check" in line and "database settings" in line  # test 1 comes first
        assert await audit(db) == []
        assert await shown(db, title) == before


async def test_each_test_of_the_check_refuses_its_file_with_its_reason(
    db: Database, board_spec: Board, root: Path
) -> None:
    titles = {reason: board_spec.master_title(40 + i) for i, reason in enumerate(UNSAFE)}
    async with running_service(db, root) as svc:
        mark = svc.log.mark()
        for reason, text in UNSAFE.items():
            write(root / tpath(titles[reason]), text)
        lines = {
            reason: await svc.log.wait_for(
                lambda line, t=titles[reason]: line.startswith(f"refused {tpath(t)}:"), since=mark
            )
            for reason in UNSAFE
        }
        await svc.barrier()
        assert await audit(db) == []
        for reason, line in lines.items():
            assert reason in line, line
        listed = invalid(root)
        for reason, title in titles.items():
            assert reason in listed[tpath(title)]


async def test_an_unsafe_new_template_creates_no_row(db: Database, root: Path) -> None:
    rel = tpath("brand_new_unsafe")
    async with running_service(db, root) as svc:
        mark = svc.log.mark()
        write(root / rel, "{${phpinfo()}}")
        await svc.log.wait_for(lambda line: line.startswith(f"refused {rel}:"), since=mark)
        await svc.barrier()
        assert await raw_sql(db, "SELECT tid FROM mybb_templates WHERE title = %s", ("brand_new_unsafe",)) == []


async def test_a_fixed_file_is_imported_and_leaves_the_refused_list(
    db: Database, board_spec: Board, root: Path
) -> None:
    title = board_spec.master_title(INHERITED)
    rel = tpath(title)
    async with running_service(db, root) as svc:
        mark = svc.log.mark()
        write(root / rel, "<b>{$config[x][y]}</b>")
        await svc.log.wait_for(lambda line: line.startswith(f"refused {rel}:"), since=mark)
        await svc.barrier()
        assert rel in invalid(root)
        mark = svc.log.mark()
        write(root / rel, "<b>{$mybb->settings['bbname']}</b>")
        await svc.imported([rel], since=mark)
        await svc.barrier()
        assert (await shown(db, title)).template == "<b>{$mybb->settings['bbname']}</b>"
        assert rel not in invalid(root)


async def test_an_unsafe_edit_made_while_stopped_is_refused_at_start(
    db: Database, board_spec: Board, root: Path
) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    async with running_service(db, root):
        pass
    before = await shown(db, title)
    write(root / rel, "<div>{$a[$b[0]]}</div>")
    async with running_service(db, root) as svc:
        await svc.barrier()
        assert any(line.startswith(f"refused {rel}:") for line in svc.log.lines)
    assert await shown(db, title) == before
    assert await audit(db) == []


async def test_the_store_refuses_an_unsafe_template_from_any_caller(db: Database, store: Store) -> None:
    with pytest.raises(MybbSyncError, match="security check"):
        await store.save_templates(SET_SID, [("fine", "<p>ok</p>"), ("evil", "{${`id`}}")], INSTALL_TIME + 5)
    assert await audit(db) == []


async def test_check_lists_stored_unsafe_templates_with_set_and_title(
    db: Database, board_spec: Board, root: Path
) -> None:
    await raw_sql(
        db,
        "UPDATE mybb_templates SET template = %s WHERE sid = -2 AND title = %s",
        ("{${`id`}}", board_spec.master_title(3)),
    )
    await raw_sql(
        db,
        "UPDATE mybb_templates SET template = %s WHERE sid = %s AND title = %s",
        ("{$config[a][b]}", SET_SID, board_spec.master_title(OWN)),
    )
    result = await cli("check", "--db", db_url(db), cwd=root, check=False)
    assert result.returncode == 1
    out = result.stdout.decode()
    assert f"Master Templates: {board_spec.master_title(3)}:" in out
    assert f"Default Templates: {board_spec.master_title(OWN)}:" in out
    assert "2 template(s) fail the security check" in out
    listed = json.loads((await cli("check", "--json", "--db", db_url(db), cwd=root, check=False)).stdout)
    assert {(i["sid"], i["title"], i["threat"]) for i in listed} == {
        (-2, board_spec.master_title(3), "dollar_brace"),
        (SET_SID, board_spec.master_title(OWN), "database_settings"),
    }


async def test_check_of_a_clean_board_exits_0(db: Database, root: Path) -> None:
    result = await cli("check", "--db", db_url(db), cwd=root, check=False)
    assert (result.returncode, result.stdout.decode().strip()) == (0, "no template fails the security check")


async def test_the_service_warns_once_at_start_about_stored_unsafe_templates(
    db: Database, board_spec: Board, root: Path
) -> None:
    title = board_spec.master_title(5)
    await raw_sql(db, "UPDATE mybb_templates SET template = %s WHERE sid = -2 AND title = %s", ("{${`id`}}", title))
    async with running_service(db, root) as svc:
        line = await svc.log.wait_for(lambda line: "fail MyBB's security check" in line)
        await svc.barrier()
        assert repr(title) in line and "mybb-sync check" in line
        assert sum("fail MyBB's security check" in line for line in svc.log.lines) == 1


async def test_the_refusal_says_it_is_a_security_problem(store: Store) -> None:
    entry = Entry(tpath("footer"), Kind.TEMPLATE, SET_SID, "footer", None)
    found = refusal(store, Decision(entry, Action.IMPORT, None, None, "hash", None, "{${`id`}}"))
    assert found is not None and found.kind is RefusalKind.SECURITY and "security check" in found.why
