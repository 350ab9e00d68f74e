"""The watch service end to end (issue 4): real inotify, real MariaDB, the real CLI where it matters.

Every write to ``mybb_templates`` is recorded by triggers (``audit``), whoever
makes it, so "nothing else was written" is checked in the database itself.
Waiting is on events only: the service's log lines (``imported <path>``,
``refused <path>``, ``conflict: <path>``), the barrier of ``service_helpers``,
control-socket answers, inotify events on a file, process exits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from boards import PrivateMariaDB, PrivatePostgres, create_board, drop_board
from mybb_sync import php
from mybb_sync.config import Database, Settings
from mybb_sync.export import IN_FLIGHT, Exporter
from mybb_sync.layout import Kind
from mybb_sync.offline import offline_status
from mybb_sync.pending import Batch
from mybb_sync.poller import Poller
from mybb_sync.reconcile import content_hash
from mybb_sync.serve import serve
from mybb_sync.service import Service, Tuning
from mybb_sync.state import State
from mybb_sync.store import open_store
from mybb_sync.store.sql import SQLStore
from mybb_sync.synthetic import Board

from service_helpers import (
    SET_SID,
    TIMEOUT,
    Running,
    audit,
    audit_mark,
    cli,
    cli_env,
    cli_service,
    control,
    db_url,
    imported_path,
    install_audit,
    queue_limit,
    running_service,
    set_template,
    shown,
    sql,
    template,
    template_rows,
    templates_locked_for_writes,
    tpath,
    wait_file,
    wait_imported,
    write,
    writes_waiting_for_a_lock,
)

pytestmark = pytest.mark.anyio

OWN = 20  # master index with a copy in "Default Templates" (every 20th is overridden)
INHERITED = 21  # master index the set only inherits


@pytest.fixture
async def db(board: Database) -> Database:
    """The board, with every write to its templates table recorded."""
    await install_audit(board)
    return board


def problems(root: Path, kind: str) -> dict[str, str]:
    return {p["path"]: p["detail"] for p in offline_status(root)["problems"] if p["kind"] == kind}


def stored(text: bytes) -> str:
    """What the Admin CP keeps of a saved file."""
    return php.rtrim(text.decode("utf-8"))


async def datelines(db: Database) -> dict[int, tuple[int, int, str, int]]:
    return {r.tid: (r.sid, len(r.template), r.title, r.dateline) for r in await template_rows(db)}


# -- editor save patterns -----------------------------------------------------------------


@dataclass
class Save:
    svc: Running
    rel: str
    path: Path
    final: bytes
    outside: Path


async def in_place(s: Save) -> None:
    write(s.path, s.final)


async def truncate_close_rewrite(s: Save) -> None:
    """VS Code: truncate and close (an empty file, seen by the service), then write the content."""
    mark = s.svc.log.mark()
    with open(s.path, "r+b") as f:
        f.truncate(0)
    await s.svc.log.wait_for(lambda line: line.startswith(f"refused {s.rel}:"), since=mark)
    with open(s.path, "r+b") as f:
        f.write(s.final)


async def vim_backup_rename(s: Save) -> None:
    """vim (backupcopy=no): probe 4913, rename to f~, write a new f, unlink f~."""
    probe = s.path.parent / "4913"
    probe.write_bytes(b"")
    probe.unlink()
    backup = s.path.with_name(s.path.name + "~")
    os.rename(s.path, backup)
    fd = os.open(s.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        os.write(fd, s.final)
        os.fsync(fd)
    finally:
        os.close(fd)
    backup.unlink()


async def jetbrains_safe_write(s: Save) -> None:
    temp = s.path.with_name(s.path.name + "___jb_tmp___")
    old = s.path.with_name(s.path.name + "___jb_old___")
    temp.write_bytes(s.final)
    os.rename(s.path, old)
    os.rename(temp, s.path)
    old.unlink()


async def sed_in_place(s: Save) -> None:
    """The real ``sed -i``: a temp file with a random, non-ignored name, renamed over."""
    await anyio.run_process(["sed", "-i", "1s/^/<!-- sed -->/", str(s.path)])


async def cp_over(s: Save) -> None:
    source = s.outside / "source.html"
    source.write_bytes(s.final)
    await anyio.run_process(["cp", str(source), str(s.path)])


async def mv_in(s: Save) -> None:
    source = s.outside / s.path.name
    source.write_bytes(s.final)
    await anyio.run_process(["mv", str(source), str(s.path)])


async def replace_by_rename(s: Save) -> None:
    """git-style: a dotfile lock/temp beside the file, renamed over it."""
    temp = s.path.with_name(f".{s.path.name}.lock")
    temp.write_bytes(s.final)
    os.rename(temp, s.path)


def new_text(old: bytes) -> bytes:
    return b"<div>edited \xc3\xa9\xe2\x82\xac</div>\n" + old + b"\n\n"


PATTERNS: dict[str, tuple[Callable[[Save], Awaitable[None]], Callable[[bytes], bytes]]] = {
    "in-place": (in_place, new_text),
    "truncate-close-rewrite": (truncate_close_rewrite, new_text),
    "vim": (vim_backup_rename, new_text),
    "jetbrains": (jetbrains_safe_write, new_text),
    "sed-i": (sed_in_place, lambda old: b"<!-- sed -->" + old),
    "cp": (cp_over, new_text),
    "mv-in": (mv_in, new_text),
    "rename-over": (replace_by_rename, new_text),
}


@pytest.mark.parametrize("inherited", [False, True], ids=["own-copy", "inherited-master"])
@pytest.mark.parametrize("pattern", list(PATTERNS))
async def test_editor_save_lands_once_with_the_final_content(
    db: Database, board_spec: Board, root: Path, tmp_path: Path, pattern: str, inherited: bool
) -> None:
    save, final_of = PATTERNS[pattern]
    title = board_spec.master_title(INHERITED if inherited else OWN)
    rel = tpath(title)
    outside = tmp_path / "outside"
    outside.mkdir()
    async with running_service(db, root) as svc:
        before = await shown(db, title)
        assert (before.sid == -2) is inherited
        path = root / rel
        final = final_of(path.read_bytes())
        mark, log_mark, started = await audit_mark(db), svc.log.mark(), int(time.time())
        await save(Save(svc, rel, path, final, outside))
        await svc.imported([rel], since=log_mark)
        await svc.barrier()
        assert path.read_bytes() == final  # never rewritten by the service
        writes = await audit(db, mark)
    rows = await template(db, SET_SID, title)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row.template == stored(final)
    assert started <= row.dateline <= int(time.time())
    # Exactly one write: the final content, as an insert of a set copy or an update of it.
    assert [(w.op, w.sid, w.title, w.template) for w in writes] == [
        ("I" if inherited else "U", SET_SID, title, stored(final))
    ]
    if inherited:
        assert (await template(db, -2, title))[0] == before  # the master is never touched
    else:
        assert row.tid == before.tid


# -- unchanged saves, invalid content -------------------------------------------------------


async def test_unchanged_save_of_inherited_master_writes_nothing(db: Database, board_spec: Board, root: Path) -> None:
    titles = [board_spec.master_title(i) for i in (21, 22, 23, 24)]
    async with running_service(db, root) as svc:
        assert await audit(db) == []  # the start-up export wrote files only
        count = len(await template_rows(db))
        same, touched, trailing, renamed = (root / tpath(t) for t in titles)
        write(same, same.read_bytes())  # saved without a change
        os.utime(touched)  # touch
        with open(touched, "ab"):
            pass  # opened for writing and closed (CLOSE_WRITE), nothing written
        write(trailing, trailing.read_bytes() + b"\n\t \n")  # the Admin CP would rtrim it away
        copy = renamed.with_name("." + renamed.name + ".swp")
        copy.write_bytes(renamed.read_bytes())
        os.rename(copy, renamed)  # replaced by an identical file (new inode)
        await svc.barrier()
        await svc.handle.rescan()
        await svc.barrier()
        assert await audit(db) == []
        assert len(await template_rows(db)) == count
        for title in titles:
            assert await template(db, SET_SID, title) == []


async def test_invalid_content_never_reaches_the_database(db: Database, board_spec: Board, root: Path) -> None:
    cases = {
        board_spec.master_title(OWN): b"",  # 0 bytes
        board_spec.master_title(INHERITED): b"<div>caf\xe9</div>",  # latin-1, not UTF-8
        board_spec.master_title(40): b"x" * 70_000,  # over TEXT's 65,535 bytes
        board_spec.master_title(41): b"<div>\x00</div>",  # NUL
        board_spec.master_title(42): b" \n\t\n",  # only whitespace
    }
    async with running_service(db, root) as svc:
        before = {title: await shown(db, title) for title in cases}
        mark = svc.log.mark()
        for title, data in cases.items():
            write(root / tpath(title), data)
        for title in cases:
            await svc.log.wait_for(lambda line, t=title: line.startswith(f"refused {tpath(t)}:"), since=mark)
        await svc.barrier()
        assert await audit(db) == []
        for title, data in cases.items():
            assert await shown(db, title) == before[title]
            assert (root / tpath(title)).read_bytes() == data  # the file is left for its owner to fix
        invalid = problems(root, "invalid")
        assert set(invalid) >= {tpath(t) for t in cases}
        assert "65535" in invalid[tpath(board_spec.master_title(40))]
        status = await cli("status", "--json", "--root", str(root), cwd=root.parent)
        report = json.loads(status.stdout)
        assert report["running"] is True
        assert report["invalid"] >= len(cases)


async def test_what_a_latin1_boards_charset_cannot_store_is_refused_and_the_rest_lands(
    server_db: Database, board_spec: Board, root: Path
) -> None:
    """A name or text the connection's charset would mangle is refused per file; it does not hold
    up the other files of its batch, nor every batch after it."""
    db = await create_board(replace(server_db, charset="latin1"), board_spec)
    try:
        await install_audit(db)
        fine, mangled = board_spec.master_title(OWN), board_spec.master_title(INHERITED)
        new_name = tpath("footer_中")
        async with running_service(db, root) as svc:
            before = await shown(db, mangled)
            mark = svc.log.mark()
            write(root / new_name, "<p>new</p>")
            write(root / tpath(mangled), "<p>中</p>")
            write(root / tpath(fine), "<p>Grüße, 5 €</p>")
            await svc.imported([tpath(fine)], since=mark)
            for rel in (new_name, tpath(mangled)):
                await svc.log.wait_for(lambda line, r=rel: line.startswith(f"refused {r}:"), since=mark)
            await svc.barrier()
            assert (await shown(db, fine)).template == "<p>Grüße, 5 €</p>"
            assert await shown(db, mangled) == before
            assert [(w.sid, w.title) for w in await audit(db)] == [(SET_SID, fine)]
            assert "latin1 cannot store" in problems(root, "invalid")[new_name]
    finally:
        await drop_board(db)


async def test_a_byte_order_mark_is_imported_with_a_warning(db: Database, board_spec: Board, root: Path) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    async with running_service(db, root) as svc:
        mark = svc.log.mark()
        write(root / rel, b"\xef\xbb\xbf<div>bom</div>")
        await svc.imported([rel], since=mark)
        await svc.log.wait_for(lambda line: line.startswith(f"{rel} starts with a UTF-8 byte-order mark"), since=mark)
        assert (await shown(db, title)).template == "\ufeff<div>bom</div>"


async def test_fixed_invalid_file_is_imported_and_no_longer_listed(db: Database, board_spec: Board, root: Path) -> None:
    """Refused while empty, imported once fixed: its "invalid" problem goes away with it."""
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    async with running_service(db, root) as svc:
        mark = svc.log.mark()
        write(root / rel, b"")
        await svc.log.wait_for(lambda line: line.startswith(f"refused {rel}:"), since=mark)
        await svc.barrier()
        assert rel in problems(root, "invalid")
        mark = svc.log.mark()
        write(root / rel, b"<div>fixed</div>\n")
        await svc.imported([rel], since=mark)
        await svc.barrier()
        assert (await shown(db, title)).template == "<div>fixed</div>"
        assert rel not in problems(root, "invalid")


# -- exports never write the database -------------------------------------------------------


async def test_export_and_rescan_while_watching_write_no_row(db: Database, root: Path) -> None:
    async with running_service(db, root) as svc:
        before = await datelines(db)
        result = await cli("export", "--db", db_url(db), "--root", str(root), cwd=root.parent)
        assert result.stdout.splitlines()[-1].startswith(b"exported ")  # the same report as offline
        assert await datelines(db) == before
        await cli("rescan", "--db", db_url(db), "--root", str(root), cwd=root.parent)
        await svc.handle.rescan()
        await svc.barrier()
        assert await datelines(db) == before
        assert await audit(db) == []
        assert svc.handle.status().imports == 0


# -- echoes of our own writes -------------------------------------------------------------------


async def test_a_poll_does_not_bring_back_our_own_import_but_sees_a_same_second_save_by_another(
    db: Database, board_spec: Board, root: Path
) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    async with running_service(db, root) as svc:
        service = svc.handle._service  # noqa: SLF001 - a poller of our own, with the service's echo filter
        poller = Poller(service.store, 1.0)
        await poller.baseline()
        mark = svc.log.mark()
        write(root / rel, "<p>ours</p>")
        await svc.imported([rel], since=mark)
        await svc.barrier()
        assert rel not in (await poller.poll(service))[0]
        row = await shown(db, title)
        await set_template(db, SET_SID, title, "<p>theirs</p>", row.dateline)  # the same second: no marker moves
        assert rel in (await poller.poll(service))[0]


# -- the inotify queue overflows -------------------------------------------------------------


async def test_overflow_while_stalled_loses_no_change(
    db: Database, board_spec: Board, root: Path, tmp_path: Path
) -> None:
    """SIGSTOP the service, overflow its (small) queue for real, SIGCONT: every change lands."""
    await cli("export", "--db", db_url(db), "--root", str(root), cwd=tmp_path)  # so start-up writes nothing
    titles = [board_spec.master_title(i) for i in range(0, 300, 2)]
    async with AsyncExitStack() as stack:
        with queue_limit(64):
            svc = await stack.enter_async_context(cli_service(db, root, tmp_path))
        await control(root, "status")  # the start-up pass is over, the reader waits
        svc.signal(signal.SIGSTOP)
        try:
            mark = svc.log.mark()
            for i, title in enumerate(titles):  # 150 CLOSE_WRITE events into a 64-event queue
                write(root / tpath(title), f"<div>overflow {i}</div>")
        finally:
            svc.signal(signal.SIGCONT)
        await svc.log.wait_for(lambda line: "inotify queue overflowed" in line, since=mark)
        await wait_imported(svc.log, [tpath(t) for t in titles], since=mark, timeout=60)
        await control(root, "rescan")
    for i, title in enumerate(titles):
        rows = await template(db, SET_SID, title)
        assert [r.template for r in rows] == [f"<div>overflow {i}</div>"], title


async def test_folder_created_during_an_overflow_is_watched(
    db: Database, board_spec: Board, root: Path, tmp_path: Path
) -> None:
    """A group folder made while the queue is full (its IN_CREATE lost): later edits in it still land.

    The test's own task blocks the event loop while it makes the changes, so
    the in-process reader really does not read meanwhile.
    """
    await sql(db, "INSERT INTO mybb_templategroups (prefix, title, isdefault) VALUES ('zzznew', '<lang:zzznew>', 0)")
    await cli("export", "--db", db_url(db), "--root", str(root), cwd=tmp_path)  # start-up then writes nothing
    async with AsyncExitStack() as stack:
        with queue_limit(20):
            svc = await stack.enter_async_context(running_service(db, root))
        mark = filled = svc.log.mark()
        for i in range(40):  # more events than the queue holds, nothing read meanwhile
            write(root / tpath(board_spec.master_title(i)), f"<s>filler {i}</s>")
        folder = root / "template_sets" / "Default Templates" / "zzznew"
        folder.mkdir()  # its IN_CREATE is lost
        await svc.log.wait_for(lambda line: "inotify queue overflowed" in line, since=mark)
        await svc.handle.rescan()  # the overflow's rescan is over too: only a watch can see what follows
        mark = svc.log.mark()
        for i in range(3):
            rel = tpath(f"zzznew_after{i}", groups=("zzznew",))
            write(root / rel, f"<s>after {i}</s>")
            await svc.imported([rel], since=mark, timeout=10)
        assert not any("overflowed" in line for line in svc.log.since(mark))
        # Written while events were lost, the fillers are imported once they held still (writers.py).
        await svc.imported([tpath(board_spec.master_title(i)) for i in range(40)], since=filled)
    for i in range(40):
        assert (await shown(db, board_spec.master_title(i))).template == f"<s>filler {i}</s>"
    for i in range(3):
        assert [r.template for r in await template(db, SET_SID, f"zzznew_after{i}")] == [f"<s>after {i}</s>"]


# -- new and renamed folders -----------------------------------------------------------------


async def test_files_in_a_new_group_folder_all_land(db: Database, root: Path) -> None:
    """mkdir a group folder that did not exist and write files into it at once (a tool, another thread)."""
    await sql(db, "INSERT INTO mybb_templategroups (prefix, title, isdefault) VALUES ('zzznew', '<lang:zzznew>', 0)")
    titles = [f"zzznew_part{i}" for i in range(25)]
    async with running_service(db, root) as svc:
        folder = root / "template_sets" / "Default Templates" / "zzznew"
        assert not folder.exists()

        def make() -> None:
            folder.mkdir()
            for i, title in enumerate(titles):
                write(folder / f"{title}.html", f"<b>new {i}</b>\n")

        mark = svc.log.mark()
        await anyio.to_thread.run_sync(make)
        await svc.imported([tpath(t, groups=("zzznew",)) for t in titles], since=mark)
        await svc.barrier()
    for i, title in enumerate(titles):
        assert [r.template for r in await template(db, SET_SID, title)] == [f"<b>new {i}</b>"]


async def test_group_folder_renamed_away_and_back_loses_no_edit(db: Database, board_spec: Board, root: Path) -> None:
    group = "calendar"
    titles = [board_spec.master_title(i) for i in range(300) if board_spec.master_title(i).startswith(group + "_")][:3]
    folder = root / "template_sets" / "Default Templates" / group
    aside = folder.with_name(group + "-aside")
    async with running_service(db, root) as svc:
        mark = svc.log.mark()
        os.rename(folder, aside)
        await svc.barrier()
        write(aside / f"{titles[0]}.html", "<p>edited while aside</p>")
        # The group folder is cosmetic: a set's template file counts in any folder of the set.
        await svc.imported([f"template_sets/Default Templates/{group}-aside/{titles[0]}.html"], since=mark)
        await svc.barrier()
        os.rename(aside, folder)
        write(folder / f"{titles[1]}.html", "<p>edited after the move back</p>")
        await svc.imported([tpath(titles[1])], since=mark)
        await svc.barrier()
        assert (await shown(db, titles[0])).template == "<p>edited while aside</p>"
        assert (await shown(db, titles[1])).template == "<p>edited after the move back</p>"
        assert (await shown(db, titles[2])).sid == -2  # untouched
        assert not any(w.op == "D" for w in await audit(db))


async def test_a_template_new_while_its_group_folder_is_away_waits_for_the_folder(
    db: Database, root: Path, tmp_path: Path
) -> None:
    """A group folder moved out of the root is gone, not emptied: a template added meanwhile
    is not written into a new folder of that name (the move back would find the name taken),
    but into the folder once it is back."""
    folder = root / "template_sets" / "Default Templates" / "calendar"
    aside = tmp_path / "calendar-aside"
    async with running_service(db, root) as svc:
        mark = svc.log.mark()
        os.rename(folder, aside)
        await svc.barrier()
        await sql(
            db,
            "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) "
            "VALUES ('calendar_brandnew', '<p>new</p>', %s, '1839', '', %s)",
            (SET_SID, int(time.time())),
        )
        await svc.log.wait_for(lambda line: "their folder is gone" in line, since=mark)
        assert not folder.exists()
        os.rename(aside, folder)
        assert await wait_file(folder / "calendar_brandnew.html", lambda data: data == b"<p>new</p>") == b"<p>new</p>"


# -- conflicts and resolve -------------------------------------------------------------------


async def test_conflict_is_reported_and_resolve_settles_it(db: Database, board_spec: Board, root: Path) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    path = root / rel
    url = ["--db", db_url(db), "--root", str(root)]
    async with running_service(db, root) as svc:
        # 1. paused through the library: both sides change differently.
        svc.handle.pause()
        await set_template(db, SET_SID, title, "<p>admin cp 1</p>", 1_800_000_001)
        write(path, "<p>editor 1</p>\n")
        mark, writes = svc.log.mark(), await audit_mark(db)
        svc.handle.resume()
        await svc.log.wait_for(lambda line: line.startswith(f"conflict: {rel}:"), since=mark)
        await svc.barrier()
        assert await audit(db, writes) == []
        assert (await shown(db, title)).template == "<p>admin cp 1</p>"
        assert path.read_bytes() == b"<p>editor 1</p>\n"
        assert rel in problems(root, "conflict")
        await cli("resolve", str(path), "--take", "disk", *url, cwd=root.parent)
        row = await shown(db, title)
        assert (row.sid, row.template) == (SET_SID, "<p>editor 1</p>")
        assert path.read_bytes() == b"<p>editor 1</p>\n"
        assert rel not in problems(root, "conflict")

        # 2. paused through the CLI; this time the database wins.
        await cli("pause", *url, cwd=root.parent)
        assert svc.handle.status().paused
        await set_template(db, SET_SID, title, "<p>admin cp 2</p>", 1_800_000_002)
        write(path, "<p>editor 2</p>\n")
        mark, writes = svc.log.mark(), await audit_mark(db)
        await cli("resume", *url, cwd=root.parent)
        await svc.log.wait_for(lambda line: line.startswith(f"conflict: {rel}:"), since=mark)
        assert (await shown(db, title)).template == "<p>admin cp 2</p>"
        await cli("resolve", str(path), "--take", "db", *url, cwd=root.parent)
        assert path.read_bytes() == b"<p>admin cp 2</p>"
        await svc.barrier()
        assert await audit(db, writes) == []
        assert rel not in problems(root, "conflict")
        row = await shown(db, title)
        assert (row.template, row.dateline) == ("<p>admin cp 2</p>", 1_800_000_002)


# -- while the service was down ---------------------------------------------------------------


async def test_a_first_start_reads_none_of_its_own_export_back(db: Database, board_spec: Board, root: Path) -> None:
    """Nothing tracked yet: the board is exported before the watch, so the folders it makes
    bring no rescans (and its files no events) to be planned all over again."""
    async with running_service(db, root) as svc:
        assert (root / tpath(board_spec.master_title(OWN))).is_file()
        assert [line for line in svc.log.lines if "rescan of" in line] == []


async def test_an_edit_between_a_first_starts_export_and_its_watch_is_imported(
    db: Database, board_spec: Board, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    title = board_spec.master_title(OWN)
    run, passes = Exporter.run, 0

    async def edit_after_the_export(self: Exporter, *args: Any, **kwargs: Any) -> Any:
        nonlocal passes
        report = await run(self, *args, **kwargs)
        passes += 1
        if passes == 1:  # the first start's export is done and nothing is watched yet
            write(root / tpath(title), "<p>edited before the watch</p>\n")
        return report

    monkeypatch.setattr(Exporter, "run", edit_after_the_export)
    async with running_service(db, root):
        assert passes >= 2
        assert (await shown(db, title)).template == "<p>edited before the watch</p>"


async def test_offline_changes_are_handled_at_start(
    db: Database, board_spec: Board, root: Path, tmp_path: Path
) -> None:
    """Killed (SIGKILL: no clean-up), changed on both sides, started again."""
    disk_only, db_only, both = (board_spec.master_title(i) for i in (OWN, 40, 60))
    async with cli_service(db, root, tmp_path) as svc:
        await control(root, "status")
        svc.signal(signal.SIGKILL)
        assert await svc.wait(timeout=10) == -signal.SIGKILL
    write(root / tpath(disk_only), "<p>edited offline</p>\n")
    await set_template(db, SET_SID, db_only, "<p>admin cp offline</p>", 1_800_000_000)
    write(root / tpath(both), "<p>file side</p>\n")
    await set_template(db, SET_SID, both, "<p>database side</p>", 1_800_000_000)
    mark = await audit_mark(db)
    async with running_service(db, root, settle=False) as svc:  # returns once the start-up pass is done
        assert imported_path(next(line for line in svc.log.lines if imported_path(line))) == tpath(disk_only)
        assert (await shown(db, disk_only)).template == "<p>edited offline</p>"
        assert (root / tpath(db_only)).read_bytes() == b"<p>admin cp offline</p>"
        assert (await shown(db, both)).template == "<p>database side</p>"
        assert (root / tpath(both)).read_bytes() == b"<p>file side</p>\n"
        assert tpath(both) in problems(root, "conflict")
        await svc.barrier()
        assert [(w.title, w.template) for w in await audit(db, mark)] == [(disk_only, "<p>edited offline</p>")]


async def test_a_file_moved_to_another_group_folder_and_edited_while_down_is_imported_at_start(
    db: Database, board_spec: Board, root: Path
) -> None:
    """Its state goes with it: the start-up pass imports the edit and tracks the new place only."""
    title = board_spec.master_title(OWN)
    async with running_service(db, root):
        pass
    moved = root / tpath(title).rsplit("/", 2)[0] / "Moved Templates" / f"{title}.html"
    moved.parent.mkdir()
    (root / tpath(title)).rename(moved)
    write(moved, "<p>moved and edited</p>\n")
    async with running_service(db, root) as svc:
        assert (await shown(db, title)).template == "<p>moved and edited</p>"
        assert problems(root, "conflict") == {}
        assert not any("never synced" in line for line in svc.log.lines)
    state = State(root)
    try:
        assert state.paths_of(Kind.TEMPLATE, SET_SID, title) == [moved.relative_to(root).as_posix()]
    finally:
        state.close()


async def test_files_imported_by_the_service_leave_their_set_provably_unchanged(
    db: Database, board_spec: Board, root: Path
) -> None:
    """After imports (a copy updated, a master overridden by a new copy) the state sums to the
    database's digest of the set: the next start-up need not read the set's rows again."""
    titles = [board_spec.master_title(i) for i in (OWN, INHERITED)]
    async with running_service(db, root) as svc:
        since = len(svc.log.lines)
        for title in titles:
            write(root / tpath(title), f"<p>{title}, edited</p>\n")
        await svc.imported([tpath(t) for t in titles], since)
    async with open_store(db, "mybb_") as store:
        state = State(root)
        try:
            assert state.digest_of(Kind.TEMPLATE, SET_SID) == await store.shown_digest(SET_SID)
        finally:
            state.close()


# -- the database goes away --------------------------------------------------------------------


@pytest.mark.backends("mysql", "postgresql")  # a SQLite board has no server to stop
async def test_database_outage_mid_burst_loses_and_duplicates_nothing(
    request: pytest.FixtureRequest, db: Database, board_spec: Board, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server: PrivateMariaDB | PrivatePostgres | None = request.getfixturevalue(
        "mariadb" if db.scheme == "mysql" else "postgres"
    )
    if server is None:
        pytest.skip("needs the private server (MYBB_SYNC_TEST_DSN / _PG_DSN name a server this test cannot stop)")
    first = [board_spec.master_title(i) for i in range(1, 120, 2)]  # inherited: each import inserts a set copy
    second = [board_spec.master_title(i) for i in range(121, 240, 2)]
    # Edited again while the database is away: some of their first writes may have landed
    # unconfirmed (cut off before the read-back), which must not make them conflicts.
    again = first[:10] + second[:10]

    def burst(titles: list[str], tag: str) -> None:
        for title in titles:
            write(root / tpath(title), f"<i>{tag} {title}</i>")

    async with running_service(db, root) as svc:
        mark = svc.log.mark()
        await anyio.to_thread.run_sync(burst, first, "first")
        await anyio.to_thread.run_sync(server.stop)
        try:
            await anyio.to_thread.run_sync(burst, second, "second")
            await anyio.to_thread.run_sync(burst, again, "again")
            await svc.log.wait_for(lambda line: "kept pending, retrying" in line, since=mark)
            assert svc.handle.status().database_up is False
        finally:
            await anyio.to_thread.run_sync(server.start)
        # Everything pending is retried as one batch; "back" is logged once it went through.
        # (No "imported" line per file: a write that landed just before the connection
        # dropped is found equal on the retry and only recorded, not written again.)
        await svc.log.wait_for(lambda line: "database is back" in line, since=mark, timeout=60)
        await svc.barrier()
        assert svc.handle.status().database_up is True
    # The outage is said once, by the service: no driver logs its own retries, tracebacks and all.
    assert [r.getMessage() for r in caplog.records if not r.name.startswith("mybb_sync")] == []
    counts = Counter((r.sid, r.title) for r in await template_rows(db))
    assert [key for key, n in counts.items() if n > 1] == []
    written: dict[str, list[str]] = {}
    for w in await audit(db):
        written.setdefault(w.title, []).append(w.template)
    for title in first + second:
        tag = "again" if title in again else ("first" if title in first else "second")
        assert [r.template for r in await template(db, SET_SID, title)] == [f"<i>{tag} {title}</i>"]
        # (A statement cut off by the shutdown may have kept its row but not its log entry.)
        contents = written.get(title, [])
        assert len(contents) == len(set(contents)), (title, contents)  # no content written twice


async def _held_insert(db: Database, title: str) -> int:
    """The connection id of the service's INSERT of ``title``, kept running after its row was written.

    An AFTER INSERT trigger (installed beforehand by :func:`_hold_inserts_of`)
    sleeps once the (MyISAM, so permanent) row is written.
    """
    with anyio.fail_after(TIMEOUT):
        while True:  # MariaDB has no event for "a statement is running": look at the process list
            held = [int(r[0]) for r in await sql(db, "SHOW FULL PROCESSLIST") if r[7] == "DO SLEEP(31)"]
            if held:
                return held[0]
            await anyio.sleep(0.02)


async def _hold_inserts_of(db: Database, title: str) -> None:
    await sql(
        db,
        "CREATE TRIGGER mybbsync_hold AFTER INSERT ON mybb_templates FOR EACH ROW "
        "BEGIN IF NEW.title = %s THEN DO SLEEP(31); END IF; END",
        (title,),
    )


@pytest.mark.backends("mysql")  # MyISAM keeps a row its cut-off statement wrote; PostgreSQL rolls it back
async def test_unconfirmed_write_then_new_edit_is_no_conflict(db: Database, board_spec: Board, root: Path) -> None:
    """Our write landed but the connection dropped before we heard back; then the file changed again."""
    title = board_spec.master_title(INHERITED)
    rel = tpath(title)
    async with running_service(db, root) as svc:
        await _hold_inserts_of(db, title)
        mark = svc.log.mark()
        write(root / rel, "<p>first</p>")
        connection = await _held_insert(db, title)
        svc.handle.pause()  # the batch in flight goes on; its retry will wait for resume
        await sql(db, f"KILL CONNECTION {connection}")  # the client hears "lost connection"
        await sql(db, "DROP TRIGGER mybbsync_hold")
        await svc.log.wait_for(lambda line: "kept pending, retrying" in line, since=mark)
        assert [r.template for r in await template(db, SET_SID, title)] == ["<p>first</p>"]  # it did land
        write(root / rel, "<p>edited again</p>")
        svc.handle.resume()
        await svc.log.wait_for(lambda line: "database is back" in line, since=mark)
        await svc.barrier()
        assert rel not in problems(root, "conflict")
        assert [r.template for r in await template(db, SET_SID, title)] == ["<p>edited again</p>"]


async def test_a_refused_database_write_does_not_stop_the_service(db: Database, board_spec: Board, root: Path) -> None:
    """A write the database rejects (not an outage: here a trigger, in life 1142 or a crashed MyISAM
    table) is reported, and the service goes on syncing the other files."""
    refused, fine = board_spec.master_title(OWN), board_spec.master_title(INHERITED)
    if db.scheme == "sqlite":  # a trigger's DDL takes no parameters; the title is a plain synthetic one
        await sql(
            db,
            f"CREATE TRIGGER mybbsync_refuse BEFORE UPDATE ON mybb_templates FOR EACH ROW WHEN NEW.title = '{refused}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
    elif db.scheme == "postgresql":
        await sql(
            db,
            "CREATE FUNCTION mybbsync_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.title = '{refused}' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$",
        )
        await sql(
            db,
            "CREATE TRIGGER mybbsync_refuse BEFORE UPDATE ON mybb_templates FOR EACH ROW EXECUTE FUNCTION mybbsync_refuse()",
        )
    else:
        await sql(
            db,
            "CREATE TRIGGER mybbsync_refuse BEFORE UPDATE ON mybb_templates FOR EACH ROW "
            "BEGIN IF NEW.title = %s THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF; END",
            (refused,),
        )
    async with running_service(db, root) as svc:
        mark = svc.log.mark()
        write(root / tpath(refused), "<p>the database says no</p>")
        await svc.barrier()
        write(root / tpath(fine), "<p>still synced</p>")
        await svc.imported([tpath(fine)], since=mark)
        assert (await shown(db, fine)).template == "<p>still synced</p>"
        assert svc.handle.status().last_errors


# -- the process: signals, systemd ------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_stops_cleanly_and_systemd_is_told(db: Database, root: Path, tmp_path: Path, signum: int) -> None:
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(30)
        async with cli_service(db, root, tmp_path, env=cli_env(NOTIFY_SOCKET=str(notify_path))) as svc:
            watching = next(line for line in svc.log.lines if "watching" in line)
            assert str(root) in watching
            messages = [await anyio.to_thread.run_sync(notify.recv, 4096)]
            while b"READY=1" not in messages[-1].split(b"\n"):  # status updates may come first
                messages.append(await anyio.to_thread.run_sync(notify.recv, 4096))
            await control(root, "status")  # the service answers: its signal handlers are in place
            svc.signal(signum)
            assert await svc.wait(timeout=5) == 0
            notify.setblocking(False)
            while True:
                try:
                    messages.append(notify.recv(4096))
                except BlockingIOError:
                    break
            assert messages[-1].split(b"\n") == [b"STOPPING=1"]
            assert sum(b"READY=1" in m.split(b"\n") for m in messages) == 1  # READY was sent once
    assert not (root / ".mybb-sync" / "control.sock").exists()


async def test_sighup_rescans(db: Database, board_spec: Board, root: Path, tmp_path: Path) -> None:
    """A row changed in the database shows in its file after SIGHUP (a full rescan); the poller is off."""
    title = board_spec.master_title(OWN)
    await cli("export", "--db", db_url(db), "--root", str(root), cwd=tmp_path)  # start-up then writes nothing
    async with cli_service(db, root, tmp_path, "--poll-interval", "3600") as svc:
        await control(root, "status")
        await set_template(db, SET_SID, title, "<p>changed in the admin cp</p>", 1_800_000_000)
        mark = svc.log.mark()
        svc.signal(signal.SIGHUP)
        await svc.log.wait_for(lambda line: "SIGHUP" in line, since=mark)
        await wait_file(root / tpath(title), lambda data: data == b"<p>changed in the admin cp</p>")
        await control(root, "rescan")  # queued after the SIGHUP's: once answered, both are done
        svc.signal(signal.SIGTERM)
        assert await svc.wait(timeout=5) == 0


async def test_sigterm_with_a_rescan_still_queued_exits(db: Database, root: Path, tmp_path: Path) -> None:
    """Paused (so the SIGHUP rescan stays queued), then SIGTERM: the service must still exit."""
    await cli("export", "--db", db_url(db), "--root", str(root), cwd=tmp_path)
    async with cli_service(db, root, tmp_path, "--poll-interval", "3600") as svc:
        await control(root, "pause")
        mark = svc.log.mark()
        svc.signal(signal.SIGHUP)
        await svc.log.wait_for(lambda line: "SIGHUP" in line, since=mark)
        svc.signal(signal.SIGTERM)
        await svc.log.wait_for(lambda line: "SIGTERM" in line, since=mark)
        assert await svc.wait(timeout=5) == 0


@pytest.mark.backends("mysql", "postgresql")  # SQLite's writer waits at most its busy timeout
async def test_sigterm_while_a_write_waits_for_a_table_lock_exits_in_time_and_the_next_start_writes_it_once(
    db: Database, board_spec: Board, root: Path, tmp_path: Path
) -> None:
    """MyISAM makes a write wait for a table lock (LOCK TABLES, a long report's SELECT) for up to
    lock_wait_timeout, a day by default, PostgreSQL for another transaction's lock without end:
    a stop interrupts the write (KILL QUERY, pg_cancel_backend) instead."""
    title = board_spec.master_title(OWN)
    before = (await shown(db, title)).template
    async with cli_service(db, root, tmp_path) as svc, templates_locked_for_writes(db):
        mark = svc.log.mark()
        write(root / tpath(title), "<p>saved while the table is locked</p>")
        with anyio.fail_after(TIMEOUT):
            while not await writes_waiting_for_a_lock(db):
                await anyio.sleep(0.02)
        svc.signal(signal.SIGTERM)
        assert await svc.wait(timeout=5) == 0
        assert any("interrupting it" in line for line in svc.log.since(mark))
        assert await writes_waiting_for_a_lock(db) == []  # killed: nothing left to run once the lock goes
    assert (await shown(db, title)).template == before
    mark = await audit_mark(db)
    async with cli_service(db, root, tmp_path):  # its start-up reconcile is done once it is watching
        pass
    assert (await shown(db, title)).template == "<p>saved while the table is locked</p>"
    assert [(w.title, w.template) for w in await audit(db, mark)] == [(title, "<p>saved while the table is locked</p>")]


# -- bursts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("board_spec", [Board(masters=1000)], ids=["1000-masters"])
async def test_burst_of_1000_saves_is_coalesced_and_lands(db: Database, board_spec: Board, root: Path) -> None:
    titles = [board_spec.master_title(i) for i in range(1000)]

    def burst(draft: str, final: str) -> None:
        for title in titles:  # every file saved twice: only the last content matters
            write(root / tpath(title), f"<u>{draft} {title}</u>")
        for title in titles:
            write(root / tpath(title), f"<u>{final} {title}</u>\n")

    async with running_service(db, root) as svc:
        store = svc.handle._service.store  # noqa: SLF001 - count the import round trips
        calls: list[int] = []
        save_templates = store.save_templates

        async def counting(sid, texts, now, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(len(texts))
            return await save_templates(sid, texts, now, **kwargs)

        store.save_templates = counting  # type: ignore[method-assign]

        # 1. The burst lands while the reconciler is held back: one coalesced batch, last write wins.
        svc.handle.pause()
        mark, writes = svc.log.mark(), await audit_mark(db)
        await anyio.to_thread.run_sync(burst, "draft", "final")
        svc.handle.resume()
        await svc.imported([tpath(t) for t in titles], since=mark, timeout=60)
        await svc.barrier(timeout=60)
        first = await audit(db, writes)
        assert sorted((w.title, w.template) for w in first) == sorted((t, f"<u>final {t}</u>") for t in titles)
        assert len(calls) <= 10, f"{len(calls)} import round trips for 1000 files"

        # 2. The same while the reconciler runs alongside the writer: whatever it catches lands
        # in order, nothing but saved contents is written, and the final contents win.
        calls.clear()
        mark, writes = svc.log.mark(), await audit_mark(db)
        started = time.perf_counter()
        await anyio.to_thread.run_sync(burst, "second draft", "second final")
        await svc.imported([tpath(t) for t in titles], since=mark, timeout=60)
        await svc.barrier(timeout=60)
        elapsed = time.perf_counter() - started
        second = await audit(db, writes)
    per_title: dict[str, list[str]] = {}
    for w in second:
        per_title.setdefault(w.title, []).append(w.template)
    for title in titles:
        contents = per_title[title]
        assert contents[-1] == f"<u>second final {title}</u>", title
        assert set(contents) <= {f"<u>second draft {title}</u>", f"<u>second final {title}</u>"}, contents
    shown_rows = {r.title: r.template for r in await template_rows(db) if r.sid == SET_SID}
    assert all(shown_rows[t] == f"<u>second final {t}</u>" for t in titles)
    assert sum(calls) == len(second)
    assert len(calls) < len(second) / 4, f"{len(calls)} round trips for {len(second)} rows: not coalesced"
    assert elapsed < 60


# -- batches in hand: joined by later saves, stopped between chunks ---------------------------------


def _once_pending(service: Service, wanted: set[str]) -> anyio.Event:
    """An event set once the watcher has queued all of ``wanted`` (it wraps the intake)."""
    noticed = anyio.Event()
    add = service.pending.add

    def adding(paths: Sequence[str] = (), prefixes: Sequence[str] = ()) -> int:
        seq = add(paths, prefixes)
        if wanted <= service.pending.paths:
            noticed.set()
        return seq

    service.pending.add = adding  # type: ignore[method-assign]
    return noticed


async def _batches_of_a_flood(
    db: Database, board_spec: Board, root: Path, tuning: Tuning
) -> tuple[list[str], list[str], list[list[str]]]:
    """Five files saved while paused (three chunks of two, two in hand at once), then, once the
    first save of their batch is under way, a full chunk of two more ("late"): the paths of
    each batch the service handled, in order."""
    edited = [tpath(board_spec.master_title(i)) for i in range(1, 11, 2)]
    late = [tpath(board_spec.master_title(i)) for i in (11, 13)]
    async with running_service(db, root, tuning=tuning, poll_interval=3600) as svc:
        service = svc.handle._service  # noqa: SLF001
        batches: list[Batch] = []
        handle, save = service.handle, service.store.save_templates

        async def recording(batch: Batch) -> None:
            batches.append(batch)
            await handle(batch)

        async def save_once_late_ones_are_noticed(*args: Any, **kwargs: Any) -> dict[str, Any]:
            if not late_written:
                late_written.append(True)
                for rel in late:
                    write(root / rel, f"<p>late {rel}</p>")
            with anyio.fail_after(TIMEOUT):
                await late_noticed.wait()  # no chunk of the batch ends before they are queued
            return await save(*args, **kwargs)

        late_written: list[bool] = []
        service.handle = recording  # type: ignore[method-assign]
        service.store.save_templates = save_once_late_ones_are_noticed  # type: ignore[method-assign]
        svc.handle.pause()
        edited_noticed = _once_pending(service, set(edited))
        mark = svc.log.mark()
        for rel in edited:
            write(root / rel, f"<p>edited {rel}</p>")
        with anyio.fail_after(TIMEOUT):
            await edited_noticed.wait()
        late_noticed = _once_pending(service, set(late))
        svc.handle.resume()
        await svc.imported([*edited, *late], since=mark)
    assert (await shown(db, board_spec.master_title(13))).template == f"<p>late {late[1]}</p>"
    return edited, late, [sorted(b.paths) for b in batches]


async def test_files_saved_while_a_batch_is_handled_join_it(db: Database, board_spec: Board, root: Path) -> None:
    """A flood is one stream: a full chunk of files saved while a batch is in hand is taken into it,
    instead of waiting for a next batch that starts only once this one's slowest chunk is done."""
    edited, late, batches = await _batches_of_a_flood(db, board_spec, root, Tuning(batch=2))
    assert batches == [sorted([*edited, *late])]


async def test_a_batch_stops_taking_in_files_after_its_streaming_window(
    db: Database, board_spec: Board, root: Path
) -> None:
    """A flood must not hold up for long those waiting for the batch to end (wait_idle, resolve):
    past its window, files saved meanwhile wait for the next batch."""
    edited, late, batches = await _batches_of_a_flood(db, board_spec, root, Tuning(batch=2, stream_seconds=0.0))
    assert batches == [sorted(edited), sorted(late)]


async def test_a_stop_during_the_start_up_backlog_waits_only_for_the_chunks_in_hand(
    db: Database, board_spec: Board, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM must stop the service within seconds however large the backlog: the chunks in hand
    are finished (rows and bases together), the rest is left on disk for the next start-up."""
    titles = [board_spec.master_title(i) for i in range(1, 17, 2)]
    async with running_service(db, root):
        pass
    for title in titles:
        write(root / tpath(title), f"<p>offline {title}</p>")
    mark = await audit_mark(db)
    save = SQLStore.save_templates
    async with anyio.create_task_group() as tg:

        async def save_then_stop(store: SQLStore, *args: Any, **kwargs: Any) -> dict[str, Any]:
            tg.cancel_scope.cancel()
            return await save(store, *args, **kwargs)

        monkeypatch.setattr(SQLStore, "save_templates", save_then_stop)
        tg.start_soon(
            partial(serve, tuning=Tuning(batch=2)), Settings(db=db, root=root, poll_interval=3600)
        )  # eight files: four chunks
    stopped_with = [w.title for w in await audit(db, mark)]
    assert 0 < len(stopped_with) <= 2 * IN_FLIGHT, stopped_with  # at most the chunks in hand, of two files each
    state = State(root)
    try:  # each row written has its new base recorded; the files not reached keep their old one
        bases = {s.name: s.base for s in state.get([tpath(t) for t in titles]).values()}
    finally:
        state.close()
    assert {t for t in titles if bases[t] == content_hash(Kind.TEMPLATE, f"<p>offline {t}</p>")} == set(stopped_with)
    monkeypatch.setattr(SQLStore, "save_templates", save)
    async with running_service(db, root, settle=False) as svc:
        await svc.barrier()
    assert sorted(w.title for w in await audit(db, mark)) == sorted(titles)  # each written once
    for title in titles:
        assert (await shown(db, title)).template == f"<p>offline {title}</p>"


# -- status over the control socket ----------------------------------------------------------------


async def test_status_reports_running_paused_and_counts(db: Database, board_spec: Board, root: Path) -> None:
    url = ["--db", db_url(db), "--root", str(root)]

    async def status() -> dict:
        result = await cli("status", "--json", *url, cwd=root.parent)
        return json.loads(result.stdout)

    async with running_service(db, root) as svc:
        files = [
            p for p in root.rglob("*") if p.is_file() and ".mybb-sync" not in p.parts and p.name != "zz_barrier.html"
        ]
        report = await status()
        assert report["running"] is True
        assert report["paused"] is False
        assert report["database_up"] is True
        settings = [p for p in files if p.name == "theme.json"]  # their bases are kept apart, in the state's meta
        assert settings and report["tracked"] == len(files) - len(settings)
        assert report["conflicts"] == 0
        assert report["imports"] == 0
        assert report["exports"] == len(files)
        assert report["set_copies"] == len(range(0, 300, 20))

        rel = tpath(board_spec.master_title(INHERITED))
        mark = svc.log.mark()
        write(root / rel, "<p>one more set copy</p>")
        await svc.imported([rel], since=mark)
        await cli("pause", *url, cwd=root.parent)
        report = await status()
        assert report["paused"] is True
        assert report["imports"] == 1
        assert report["set_copies"] == len(range(0, 300, 20)) + 1
        assert report["last_import"] is not None
        text = (await cli("status", *url, cwd=root.parent)).stdout.decode()
        assert "service: running (paused)" in text
        assert time.strftime("last import: %Y-%m-%d %H:%M:%S", time.localtime(report["last_import"])) in text
        await cli("resume", *url, cwd=root.parent)
        assert (await status())["paused"] is False
    report = await status()
    assert report["running"] is False
    assert report["tracked"] == len(files) - len(settings)


# -- library API ------------------------------------------------------------------------------------


async def test_wait_idle_returns_when_nothing_is_pending(db: Database, root: Path) -> None:
    """``wait_idle()`` on an idle service returns at once (it used to wait for some unrelated change)."""
    async with running_service(db, root, poll_interval=3600) as svc:
        for _ in range(2):  # the first call may still be woken by a leftover of the start-up
            with anyio.fail_after(3):
                await svc.handle.wait_idle()


async def test_database_edit_is_exported_while_watching(db: Database, board_spec: Board, root: Path) -> None:
    """An Admin CP save (a row UPDATE with a new dateline) reaches its file through the poller."""
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    async with running_service(db, root, poll_interval=0.2) as svc:
        mark = await audit_mark(db)
        await set_template(db, SET_SID, title, "<p>saved in the admin cp</p>", int(time.time()))
        await wait_file(root / rel, lambda data: data == b"<p>saved in the admin cp</p>", timeout=10)
        await svc.barrier()
        assert len(await audit(db, mark)) == 1  # ours; the export is not echoed back into the database


async def test_an_admin_cp_save_written_to_its_file_gets_an_info_line(
    db: Database, board_spec: Board, root: Path
) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    async with running_service(db, root, poll_interval=0.2) as svc:
        mark = svc.log.mark()
        await set_template(db, SET_SID, title, "<p>saved in the admin cp</p>", int(time.time()))
        await svc.log.wait_for(lambda line: line.startswith(f"exported {rel} ("), since=mark, timeout=10)


async def test_json_logs_carry_fields_and_every_line_is_json(db: Database, board_spec: Board, root: Path) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    async with cli_service(db, root, root.parent, "--log-format", "json") as svc:
        mark = svc.log.mark()
        write(root / rel, "<p>json</p>")
        line = await svc.log.wait_for(lambda line: f'"imported {rel}' in line, since=mark)
    fields = json.loads(line)
    assert (fields["event"], fields["path"], fields["set"], fields["bytes"]) == (
        "imported",
        rel,
        SET_SID,
        len("<p>json</p>"),
    )
    assert all(json.loads(line) for line in svc.log.lines if line.strip())


async def test_index_command_adds_reports_and_drops_the_poll_index(db: Database, root: Path) -> None:
    url = db_url(db)

    async def index(*flags: str) -> dict[str, object]:
        result = await cli("index", "--json", "--db", url, *flags, cwd=root.parent)
        return json.loads(result.stdout)

    assert (await index())["index"] is False
    assert await index("--add") == {"index": True, "changed": True, "templates": (await index())["templates"]}
    assert (await index("--add"))["changed"] is False
    assert (await index("--drop"))["index"] is False
    assert (await index("--drop"))["changed"] is False
