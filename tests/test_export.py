"""``mybb-sync export`` end to end: the real CLI in a subprocess, a real MariaDB, real files and inotify."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from asyncinotify import Inotify, Mask

from boards import PrivateMariaDB, create_board, drop_board
from mybb_sync.catalog import load_catalog
from mybb_sync.config import Database
from mybb_sync.errors import DatabaseUnavailable
from mybb_sync.export import Exporter
from mybb_sync.files import Root, stat_files
from mybb_sync.layout import Kind
from mybb_sync.report import ExportReport
from mybb_sync.scope import Scope
from mybb_sync.state import RACY_NS, State
from mybb_sync.store import open_store
from mybb_sync.store.sql import SQLStore
from mybb_sync.synthetic import Board
from mybb_sync.themefile import read_meta, render_meta

from conftest import raw_sql

pytestmark = [pytest.mark.anyio, pytest.mark.backends("mysql", parametrize=False)]

SPEC = Board(masters=300, extra_sets=("Second Set",))
BIG = Board(masters=2000, seed=3)
STATE_DIR = ".mybb-sync"


@pytest.fixture
def board_spec() -> Board:
    return SPEC


@pytest.fixture
async def big_board(server_db: Database) -> AsyncIterator[Database]:
    db = await create_board(server_db, BIG)
    try:
        yield db
    finally:
        await drop_board(db)


# --- helpers ----------------------------------------------------------------------------


def url_of(db: Database) -> str:
    auth = quote(db.user, safe="") + (":" + quote(db.password, safe="") if db.password else "")
    if db.unix_socket:
        return f"mysql://{auth}@localhost/{db.name}?unix_socket={quote(db.unix_socket)}"
    return f"mysql://{auth}@{db.host}:{db.port}/{db.name}"


def cli_command(db: Database | str, root: Path, *args: str) -> list[str]:
    url = db if isinstance(db, str) else url_of(db)
    return [sys.executable, "-m", "mybb_sync.cli", "export", "--db", url, "--root", str(root), *args]


def cli_env() -> dict[str, str]:
    """The environment without MYBB_SYNC_* settings that could leak into the command."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MYBB_SYNC_")}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The report; the exit code says 3 exactly when it lists a conflict or a refusal."""
        report = json.loads(self.stdout)
        assert self.returncode == (3 if report["conflicts"] else 0), self.stderr
        return report


async def export(db: Database | str, root: Path, *args: str) -> Run:
    done = await anyio.run_process(
        cli_command(db, root, *args), check=False, env=cli_env(), cwd=root.parent, stdin=subprocess.DEVNULL
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


sql = raw_sql


def _plain(name: str) -> str:
    assert name and not name.startswith(".") and not any(c in name for c in "/\\%\0\n"), name
    return name


async def expected_files(db: Database) -> dict[str, bytes]:
    """What the DESIGN layout must hold for this database, computed from the raw rows."""
    sets = await sql(db, "SELECT sid, title FROM mybb_templatesets")
    prefixes = {p for (p,) in await sql(db, "SELECT prefix FROM mybb_templategroups")}
    templates = await sql(db, "SELECT tid, sid, title, template FROM mybb_templates ORDER BY tid")
    themes = {tid: (name, pid) for tid, name, pid in await sql(db, "SELECT tid, name, pid FROM mybb_themes")}
    sheets = await sql(db, "SELECT sid, name, tid, stylesheet FROM mybb_themestylesheets ORDER BY sid")

    def group(title: str) -> str:
        prefix = title.split("_", 1)[0]
        return prefix if prefix in prefixes else "ungrouped"

    out: dict[str, bytes] = {}
    for sid, set_title in sets:
        shown = {title: text for _tid, s, title, text in templates if s == -2}
        shown |= {title: text for _tid, s, title, text in templates if s == sid}  # the set's copy wins
        for title, text in shown.items():
            out[f"template_sets/{_plain(set_title)}/{group(title)}/{_plain(title)}.html"] = text.encode()
    for _tid, s, title, text in templates:
        if s == -1:
            out[f"global_templates/{_plain(title)}.html"] = text.encode()
    for tid, (name, _pid) in themes.items():
        chain, at = [], tid
        while at in themes:
            chain.append(at)
            at = themes[at][1]
        for theme in reversed(chain):  # farthest first: the nearest theme's row wins
            for _sid, sheet, owner, text in sheets:
                if owner == theme:
                    out[f"styles/{_plain(name)}/{_plain(sheet)}"] = text.encode()
    async with open_store(db, "mybb_") as store:  # each theme's settings, as rendered (golden in test_themefile)
        rows, all_sheets = await store.themes(), await store.stylesheets()
    for tid, (name, _pid) in themes.items():
        if tid != 1:  # the master style is read-only: no settings file
            out[f"styles/{_plain(name)}/theme.json"] = render_meta(read_meta(rows, all_sheets, tid)).encode()
    return out


def final_files(root: Path) -> dict[str, bytes]:
    """Every file under a final name (no dotfiles, nothing under .mybb-sync)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                path = Path(dirpath) / name
                out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def temp_files(root: Path) -> list[str]:
    return [
        str(Path(d, n).relative_to(root))
        for d, _dirs, names in os.walk(root)
        for n in names
        if n.startswith(".") and n.endswith(".tmp")
    ]


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for rel in final_files(root):
        st = os.lstat(root / rel)
        out[rel] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def set_path(title: str, set_title: str = "Default Templates") -> str:
    prefix = title.split("_", 1)[0]
    return f"template_sets/{set_title}/{prefix if prefix in SPEC.groups else 'ungrouped'}/{title}.html"


def a_set_copy(spec: Board = SPEC) -> str:
    return next(t for t, _x, sid, _v, _d in spec.templates() if sid == 1)


def a_master_only(spec: Board = SPEC) -> str:
    copies = {t for t, _x, sid, _v, _d in spec.templates() if sid == 1}
    return next(spec.master_title(i) for i in range(1, spec.masters) if spec.master_title(i) not in copies)


async def change_template(db: Database, sid: int, title: str, text: str) -> None:
    await sql(
        db,
        "UPDATE mybb_templates SET template = %s, dateline = dateline + 60 WHERE sid = %s AND BINARY title = %s",
        (text, sid, title),
    )


# --- layout and summary ---------------------------------------------------------------------


async def test_export_writes_every_set_global_template_and_stylesheet_in_the_layout(
    board: Database, root: Path
) -> None:
    run = await export(board, root)
    assert run.returncode == 0, run.stderr
    expected = await expected_files(board)
    assert final_files(root) == expected
    assert {p.split("/")[0] for p in expected} == {"template_sets", "global_templates", "styles"}
    assert {p.split("/")[1] for p in expected if p.startswith("template_sets/")} == {"Default Templates", "Second Set"}
    assert {p.split("/")[1] for p in expected if p.startswith("styles/")} == {
        "MyBB Master Style",
        "Default",
        "Child Theme",
    }
    css = {(tid, name): text.encode() for name, tid, _attached, text in SPEC.stylesheets()}
    assert (root / "styles/Child Theme/global.css").read_bytes() == css[3, "global.css"]  # its own row
    assert (root / "styles/Child Theme/color_blue.css").read_bytes() == css[2, "color_blue.css"]  # from its parent
    assert (root / "styles/Default/global.css").read_bytes() == css[1, "global.css"]  # from the master style
    assert not (root / "styles/MyBB Master Style/color_blue.css").exists()
    copy = a_set_copy()
    texts = {(sid, title): text.encode() for title, text, sid, _v, _d in SPEC.templates()}
    assert (root / set_path(copy)).read_bytes() == texts[1, copy]
    assert (root / set_path(copy, "Second Set")).read_bytes() == texts[-2, copy]
    assert (root / "global_templates/global_shared0.html").read_bytes() == texts[-1, "global_shared0"]
    assert temp_files(root) == []
    assert "exported" in run.stdout.splitlines()[-1] and "Traceback" not in run.stderr


async def test_export_json_summary_counts_files_bytes_scopes_and_groups(board: Database, root: Path) -> None:
    summary = (await export(board, root, "--json")).json()
    expected = await expected_files(board)
    templates = [p for p in expected if p.startswith("template_sets/")]
    assert summary["written"] == len(expected)
    assert summary["unchanged"] == 0 and summary["forced"] == 0
    assert summary["conflicts"] == summary["errors"] == summary["orphans"] == summary["skipped"] == []
    assert summary["bytes"] == sum(map(len, expected.values()))
    assert summary["seconds"] >= 0
    assert summary["per_scope"] == {
        "set:Default Templates": SPEC.masters,
        "set:Second Set": SPEC.masters,
        "global": SPEC.globals_count,
        "theme:MyBB Master Style": 3,
        "theme:Default": 4,
        "theme:Child Theme": 4,
    }
    groups = Counter(p.split("/")[2] for p in templates)
    groups["global"] += SPEC.globals_count  # global_shared* are in the 'global' group
    assert summary["per_group"] == {g: n for g, n in groups.items() if n}


async def test_reexport_of_an_unchanged_board_writes_nothing(board: Database, root: Path) -> None:
    assert (await export(board, root)).returncode == 0
    before = snapshot(root)
    summary = (await export(board, root, "--json")).json()
    assert summary["written"] == 0 and summary["bytes"] == 0
    assert summary["unchanged"] == len(before)
    assert snapshot(root) == before  # same inodes and mtimes: nothing was rewritten
    assert temp_files(root) == []


async def test_a_reexport_reads_no_file_whose_stat_proves_it_unchanged(board: Database, root: Path) -> None:
    assert (await export(board, root)).returncode == 0
    await anyio.sleep(RACY_NS / 1e9 + 0.2)  # not synchronisation: a stat younger than this is never trusted
    assert (await export(board, root, "--json")).json()["written"] == 0  # reads each file once, re-stamps its stat
    with Inotify(sync_timeout=0) as inotify:
        for dirpath, dirnames, _files in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            inotify.add_watch(dirpath, Mask.OPEN | Mask.ONLYDIR)
        summary = (await export(board, root, "--json")).json()
        opened = [e.path for e in inotify if Mask.ISDIR not in e.mask and e.path is not None]
    assert summary["written"] == 0 and summary["unchanged"] == len(final_files(root))
    assert opened == []


async def test_changing_one_template_row_rewrites_exactly_that_file(board: Database, root: Path) -> None:
    assert (await export(board, root)).returncode == 0
    before = snapshot(root)
    title = a_set_copy()
    await change_template(board, 1, title, "<div>changed in the Admin CP</div>")
    summary = (await export(board, root, "--json")).json()
    assert summary["written"] == 1
    after = snapshot(root)
    assert [p for p in before if after[p] != before[p]] == [set_path(title)]
    assert (root / set_path(title)).read_bytes() == b"<div>changed in the Admin CP</div>"
    assert final_files(root) == await expected_files(board)


async def test_changing_a_master_rewrites_it_in_every_set_that_shows_it(board: Database, root: Path) -> None:
    assert (await export(board, root)).returncode == 0
    before = snapshot(root)
    title = a_master_only()
    await change_template(board, -2, title, "new master text")
    assert (await export(board, root, "--json")).json()["written"] == 2
    after = snapshot(root)
    assert sorted(p for p in before if after[p] != before[p]) == [
        set_path(title), set_path(title, "Second Set")
    ]  # fmt: skip
    assert final_files(root) == await expected_files(board)


async def test_changing_an_inherited_stylesheet_rewrites_it_in_every_theme(board: Database, root: Path) -> None:
    assert (await export(board, root)).returncode == 0
    before = snapshot(root)
    await sql(
        board,
        "UPDATE mybb_themestylesheets SET stylesheet = %s, lastmodified = lastmodified + 60 WHERE tid = 1 AND name = %s",
        (".usercp { color: red; }\n", "usercp.css"),
    )
    assert (await export(board, root, "--json")).json()["written"] == 3
    after = snapshot(root)
    assert sorted(p for p in before if after[p] != before[p]) == [
        f"styles/{theme}/usercp.css" for theme in ("Child Theme", "Default", "MyBB Master Style")
    ]
    assert final_files(root) == await expected_files(board)


# --- sets unchanged since they were last agreed: no rows read ---------------------------------


async def agreed_export(db: Database, root: Path) -> None:
    """An export, then a re-export with nothing left to write."""
    assert (await export(db, root, "--json")).json()["rows_read"] > 0
    assert (await export(db, root, "--json")).json()["written"] == 0


async def test_a_reexport_of_sets_unchanged_since_the_last_agreed_pass_reads_no_row(
    board: Database, root: Path
) -> None:
    await agreed_export(board, root)
    before = snapshot(root)
    summary = (await export(board, root, "--json")).json()
    assert (summary["rows_read"], summary["written"], summary["unchanged"]) == (0, 0, len(before))
    assert summary["per_scope"]["set:Default Templates"] > 0 and sum(summary["per_group"].values()) > 0


async def test_a_row_changed_without_a_new_dateline_is_still_exported(board: Database, root: Path) -> None:
    """Plugins' find_replace_templatesets updates the text and leaves dateline as it was."""
    await agreed_export(board, root)
    title = a_set_copy()
    await sql(
        board, "UPDATE mybb_templates SET template = %s WHERE sid = 1 AND BINARY title = %s", ("<b>plugin</b>", title)
    )
    summary = (await export(board, root, "--json")).json()
    assert summary["written"] == 1 and (root / set_path(title)).read_bytes() == b"<b>plugin</b>"


async def test_a_file_edited_in_an_unchanged_set_is_a_conflict_and_is_read_with_its_row_only(
    board: Database, root: Path
) -> None:
    await agreed_export(board, root)
    title = a_set_copy()
    (root / set_path(title)).write_text("<i>edited on disk</i>")
    summary = (await export(board, root, "--json")).json()
    assert summary["conflicts"] == [set_path(title)] and summary["rows_read"] == 1
    assert (root / set_path(title)).read_text() == "<i>edited on disk</i>"


async def test_a_file_deleted_in_an_unchanged_set_is_restored(board: Database, root: Path) -> None:
    await agreed_export(board, root)
    title = a_master_only()
    (root / set_path(title)).unlink()
    summary = (await export(board, root, "--json")).json()
    assert summary["written"] == 1 and (root / set_path(title)).exists()


async def test_a_set_with_a_conflict_is_read_in_full_until_it_is_settled(board: Database, root: Path) -> None:
    await agreed_export(board, root)
    title = a_set_copy()
    await change_template(board, 1, title, "<p>database side</p>")
    (root / set_path(title)).write_text("<p>disk side</p>")
    assert (await export(board, root, "--json")).json()["conflicts"] == [set_path(title)]
    again = (await export(board, root, "--json")).json()
    assert again["conflicts"] == [set_path(title)] and again["rows_read"] >= SPEC.masters  # the set, read in full


async def test_lost_state_rows_make_the_set_read_in_full(board: Database, root: Path) -> None:
    await agreed_export(board, root)
    title = a_master_only()
    state = State(root)
    state.delete([set_path(title)])
    state.close()
    (root / set_path(title)).unlink()
    summary = (await export(board, root, "--json")).json()
    assert summary["rows_read"] >= SPEC.masters and summary["written"] == 1
    assert (root / set_path(title)).exists()


async def test_a_new_template_group_leaves_files_where_they_are_and_puts_new_templates_in_it(
    board: Database, root: Path
) -> None:
    """The group folder is cosmetic: files are found where they are, only new ones go to their group."""
    await agreed_export(board, root)
    title = next(
        t for t, _x, sid, _v, _d in SPEC.templates() if sid in (-2, 1) and t.split("_", 1)[0] not in SPEC.groups
    )
    prefix = title.split("_", 1)[0]
    await sql(
        board,
        "INSERT INTO mybb_templategroups (prefix, title, isdefault) VALUES (%s, %s, 0)",
        (prefix, f"<lang:{prefix}>"),
    )
    await sql(
        board,
        "INSERT INTO mybb_templates (title, template, sid, version, dateline) VALUES (%s, 'new', 1, '1839', 1)",
        (f"{prefix}_brand_new",),
    )
    summary = (await export(board, root, "--json")).json()
    assert summary["written"] == 1
    assert (root / f"template_sets/Default Templates/ungrouped/{title}.html").exists()
    assert not (root / f"template_sets/Default Templates/{prefix}/{title}.html").exists()
    assert (root / f"template_sets/Default Templates/{prefix}/{prefix}_brand_new.html").read_text() == "new"


async def test_a_database_restored_to_rows_older_than_the_files_makes_the_set_read_in_full(
    board: Database, root: Path
) -> None:
    """A file and its row were synced to new content, then the database was restored from a
    backup: the rows are not the ones the files were last agreed with, so the file gets the
    row back."""
    await agreed_export(board, root)
    title = a_set_copy()
    file = root / set_path(title)
    original = file.read_bytes()
    [(text, dateline)] = await sql(
        board, "SELECT template, dateline FROM mybb_templates WHERE sid = 1 AND BINARY title = %s", (title,)
    )
    file.write_bytes(b"<p>synced, then the database was restored</p>")
    await change_template(board, 1, title, "<p>synced, then the database was restored</p>")
    assert (await export(board, root, "--json")).json()["written"] == 0  # both sides equal: agreed on the new row
    await sql(
        board,
        "UPDATE mybb_templates SET template = %s, dateline = %s WHERE sid = 1 AND BINARY title = %s",
        (text, dateline, title),
    )
    summary = (await export(board, root, "--json")).json()
    assert summary["rows_read"] >= SPEC.masters and summary["written"] == 1
    assert file.read_bytes() == original


async def test_a_set_synced_file_by_file_since_its_full_read_is_still_not_read_again(
    board: Database, root: Path
) -> None:
    """The files were last agreed with exactly the rows the set shows, whichever pass agreed
    them: a row changed and exported is no reason to read the set in full next time."""
    await agreed_export(board, root)
    title = a_set_copy()
    await change_template(board, 1, title, "<p>changed in the Admin CP</p>")
    assert (await export(board, root, "--json")).json()["written"] == 1
    summary = (await export(board, root, "--json")).json()
    # At most the row of the file just written, if its stat is still too young to trust.
    assert summary["rows_read"] <= 1 and summary["written"] == 0


async def test_a_master_added_beside_a_copy_equal_but_for_case_is_exported(board: Database, root: Path) -> None:
    """The database's collation matches 'ZZCASE_PROBE' to 'zzcase_probe'; PHP's cache does not,
    so the set shows both, and the new master must not hide behind the copy."""
    await sql(
        board,
        "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) VALUES ('ZZCASE_PROBE', 'copy', 1, '1837', '', 1)",
    )
    await agreed_export(board, root)
    await sql(
        board,
        "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) VALUES ('zzcase_probe', 'master', -2, '1837', '', 1)",
    )
    summary = (await export(board, root, "--json")).json()
    assert summary["written"] == 2  # in each set
    assert (root / set_path("zzcase_probe")).read_bytes() == b"master"
    assert (root / set_path("zzcase_probe", "Second Set")).read_bytes() == b"master"
    assert (root / set_path("ZZCASE_PROBE")).read_bytes() == b"copy"


async def test_a_save_without_change_costs_one_full_read_then_none(board: Database, root: Path) -> None:
    """The Admin CP stamps a new dateline on an unchanged text: the file's state takes the new
    row, so the set's digest proves it unchanged again."""
    await agreed_export(board, root)
    await sql(
        board, "UPDATE mybb_templates SET dateline = dateline + 60 WHERE sid = 1 AND BINARY title = %s", (a_set_copy(),)
    )
    first = (await export(board, root, "--json")).json()
    assert first["written"] == 0 and first["rows_read"] >= SPEC.masters
    second = (await export(board, root, "--json")).json()
    assert (second["rows_read"], second["written"]) == (0, 0)


async def test_files_moved_on_disk_over_many_pages_are_all_looked_at(
    board: Database, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a set proven unchanged, the files whose stat moved are gathered across pages of the
    state and decided with their rows in batches (here of 7): none is skipped at a page edge.
    (That the batches are full is the next test's.)"""
    titles = await _moved_in_an_agreed_set(board, root)
    report, _ = await _export_recording_lookups(board, root, monkeypatch, batch=7)
    assert sorted(report.conflicts) == sorted(set_path(t) for t in titles)
    assert report.rows_read == len(titles)


async def test_an_agreed_set_is_scanned_to_its_end_before_a_moved_file_is_looked_up(
    board: Database, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every stat of the scan gives up the interpreter lock: run beside imports, the scan would
    crawl and a backlog spread over the set would be imported at its pace. So the scan ends
    first, then the moved files go on in full batches."""
    titles = await _moved_in_an_agreed_set(board, root)
    _, events = await _export_recording_lookups(board, root, monkeypatch, batch=7)
    first_lookup = next(i for i, e in enumerate(events) if e != "page")
    assert "page" not in events[first_lookup:]
    sizes = [e for e in events if e != "page"]
    assert sum(sizes) == len(titles) and all(size == 7 for size in sizes[:-1])


async def _moved_in_an_agreed_set(board: Database, root: Path) -> list[str]:
    """Export, then edit every ninth master's file of set 1 (spread over every page of the state)."""
    await agreed_export(board, root)
    titles = [SPEC.master_title(i) for i in range(1, SPEC.masters, 9)]
    for title in titles:
        (root / set_path(title)).write_text(f"<p>{title} edited on disk</p>")
    return titles


async def _export_recording_lookups(
    board: Database, root: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> tuple[ExportReport, list[Any]]:
    """One pass over set 1; events: "page" per page of the state read, the batch size per row lookup."""
    events: list[Any] = []
    page_of, by_title = State.page_of, SQLStore.templates_by_title

    def recording_page_of(self: State, *args: Any) -> Any:
        events.append("page")
        return page_of(self, *args)

    async def recording_by_title(self: SQLStore, sid: int, titles: Any, **kwargs: Any) -> Any:
        events.append(len(titles))
        return await by_title(self, sid, titles, **kwargs)

    monkeypatch.setattr(State, "page_of", recording_page_of)
    monkeypatch.setattr(SQLStore, "templates_by_title", recording_by_title)
    async with open_store(board, "mybb_") as store:
        catalog = await load_catalog(store)
        state = State(root)
        try:
            report = await Exporter(Root(root), state, batch=batch).run(store, catalog, Scope((1,), ()))
        finally:
            state.close()
    return report, events


async def test_the_state_of_an_exported_set_sums_to_the_databases_digest_of_it(board: Database, root: Path) -> None:
    _, state = await exported_in_process(board, root)
    try:
        async with open_store(board, "mybb_") as store:
            assert state.digest_of(Kind.TEMPLATE, 1) == await store.shown_digest(1)
    finally:
        state.close()


async def exported_in_process(db: Database, root: Path) -> tuple[Exporter, State]:
    async with open_store(db, "mybb_") as store:
        catalog = await load_catalog(store)
        exporter = Exporter(Root(root), State(root))
        await exporter.run(store, catalog, Scope((1,), ()))
    return exporter, exporter.state


async def test_every_exported_file_is_proven_unchanged_by_its_stat_right_away(board: Database, root: Path) -> None:
    """No file needs reading back before the next pass may trust its stat (atomic: its mtime
    is set a racy window before its write)."""
    exporter, state = await exported_in_process(board, root)
    try:
        tracked = state.get([p.relative_to(root).as_posix() for p in root.rglob("*.html")])
        assert len(tracked) > 100
        stats = stat_files(exporter.root, list(tracked))
        assert [p for p, st in tracked.items() if not st.unchanged(stats[p], exporter.root.racy_ns)] == []
    finally:
        state.close()


async def test_a_file_put_in_a_folder_the_pass_created_is_an_orphan_from_the_next_pass(
    board: Database, root: Path
) -> None:
    """A folder the pass created holds only what it wrote (it is not walked again at the end):
    a stray someone adds there meanwhile is reported by the next pass."""
    strays: list[Path] = []

    def drop_stray(done: int, total: int) -> None:
        groups = root / "template_sets/Default Templates"
        if done >= 40 and not strays and groups.is_dir():
            strays.append(next(p for p in groups.iterdir() if p.is_dir()) / "stray.html")
            strays[0].write_bytes(b"added while exporting")

    async with open_store(board, "mybb_") as store:
        catalog = await load_catalog(store)
        exporter = Exporter(Root(root), State(root), batch=20)
        try:
            first = await exporter.run(store, catalog, Scope((1,), ()), progress=drop_stray)
            second = await exporter.run(store, catalog, Scope((1,), ()))
        finally:
            exporter.state.close()
    [stray] = strays
    assert first.orphans == [] and second.orphans == [stray.relative_to(root).as_posix()]


# --- conflicts, adoption, orphans -------------------------------------------------------------


async def test_a_file_edited_on_disk_is_a_conflict_and_is_not_overwritten(board: Database, root: Path) -> None:
    assert (await export(board, root)).returncode == 0
    path = root / set_path(a_set_copy())
    path.write_bytes(b"<div>my local edit</div>")
    summary = (await export(board, root, "--json")).json()
    assert summary["conflicts"] == [set_path(a_set_copy())]
    assert summary["written"] == 0
    assert path.read_bytes() == b"<div>my local edit</div>"


async def test_a_file_edited_on_disk_while_its_row_changed_is_a_conflict(board: Database, root: Path) -> None:
    assert (await export(board, root)).returncode == 0
    title = a_set_copy()
    path = root / set_path(title)
    path.write_bytes(b"<div>my local edit</div>")
    await change_template(board, 1, title, "<div>an Admin CP edit</div>")
    summary = (await export(board, root, "--json")).json()
    assert summary["conflicts"] == [set_path(title)] and summary["written"] == 0
    assert path.read_bytes() == b"<div>my local edit</div>"


async def test_force_overwrites_files_edited_on_disk(board: Database, root: Path) -> None:
    assert (await export(board, root)).returncode == 0
    edited_only, both = a_set_copy(), a_master_only()
    (root / set_path(edited_only)).write_bytes(b"local edit 1")
    (root / set_path(both)).write_bytes(b"local edit 2")
    await change_template(board, -2, both, "db edit 2")
    summary = (await export(board, root, "--force", "--json")).json()
    assert summary["conflicts"] == []
    assert summary["forced"] == 2
    assert final_files(root) == await expected_files(board)
    assert (root / set_path(both)).read_bytes() == b"db edit 2"
    again = (await export(board, root, "--json")).json()
    assert again["written"] == 0 and again["conflicts"] == []


async def test_preexisting_files_equal_to_the_database_are_adopted_not_rewritten(board: Database, root: Path) -> None:
    expected = await expected_files(board)
    mine = [set_path(a_set_copy()), "styles/Child Theme/usercp.css", "global_templates/global_shared0.html"]
    for rel in mine:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(expected[rel])
    trailing = set_path(a_master_only())  # templates compare after PHP's rtrim
    (root / trailing).parent.mkdir(parents=True, exist_ok=True)
    (root / trailing).write_bytes(expected[trailing] + b"\n\n")
    before = snapshot(root)
    summary = (await export(board, root, "--json")).json()
    assert summary["conflicts"] == []
    assert summary["unchanged"] == 4 and summary["written"] == len(expected) - 4
    assert {p: snapshot(root)[p] for p in before} == before  # adopted as they are
    assert (await export(board, root, "--json")).json()["written"] == 0


async def test_a_preexisting_file_that_differs_is_a_conflict_and_kept(board: Database, root: Path) -> None:
    rel = "styles/Default/global.css"
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_bytes(b"/* an old export */\n")
    summary = (await export(board, root, "--json")).json()
    assert summary["conflicts"] == [rel]
    assert (root / rel).read_bytes() == b"/* an old export */\n"
    expected = await expected_files(board)
    assert final_files(root) == expected | {rel: b"/* an old export */\n"}
    forced = (await export(board, root, "--force", "--json")).json()
    assert forced["forced"] == 1 and final_files(root) == expected


async def test_files_without_a_database_row_are_reported_as_orphans_and_never_removed(
    board: Database, root: Path
) -> None:
    assert (await export(board, root)).returncode == 0
    strays = {
        "template_sets/Default Templates/ungrouped/no_such_template.html": b"stray",
        "styles/Default/retired.css": b"/* gone */",
        "global_templates/global_shared4.html": None,  # its row is deleted below
    }
    for rel, data in strays.items():
        if data is not None:
            (root / rel).write_bytes(data)
    kept = (root / "global_templates/global_shared4.html").read_bytes()
    await sql(board, "DELETE FROM mybb_templates WHERE sid = -1 AND title = 'global_shared4'")
    for _ in range(2):
        summary = (await export(board, root, "--json")).json()
        assert summary["orphans"] == sorted(strays)
        assert summary["errors"] == []
    assert (root / "template_sets/Default Templates/ungrouped/no_such_template.html").read_bytes() == b"stray"
    assert (root / "styles/Default/retired.css").read_bytes() == b"/* gone */"
    assert (root / "global_templates/global_shared4.html").read_bytes() == kept


# --- options and failures ---------------------------------------------------------------------


async def test_set_option_exports_that_set_and_the_global_templates_only(board: Database, root: Path) -> None:
    summary = (await export(board, root, "--set", "Second Set", "--json")).json()
    expected = {
        p: x for p, x in (await expected_files(board)).items()
        if p.startswith(("template_sets/Second Set/", "global_templates/"))
    }  # fmt: skip
    assert final_files(root) == expected and summary["written"] == len(expected)


async def test_theme_option_exports_that_theme_only(board: Database, root: Path) -> None:
    assert (await export(board, root, "--theme", "Child Theme")).returncode == 0
    expected = {p: x for p, x in (await expected_files(board)).items() if p.startswith("styles/Child Theme/")}
    assert final_files(root) == expected and len(expected) == 5  # its 4 stylesheets and theme.json


async def test_unknown_set_exits_2_listing_the_available_sets(board: Database, root: Path) -> None:
    run = await export(board, root, "--set", "Nope")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "'Nope'" in run.stderr and "'Default Templates'" in run.stderr and "'Second Set'" in run.stderr
    assert final_files(root) == {}


async def test_unknown_theme_exits_2_listing_the_available_themes(board: Database, root: Path) -> None:
    run = await export(board, root, "--theme", "Nope")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    for name in ("'Nope'", "'MyBB Master Style'", "'Default'", "'Child Theme'"):
        assert name in run.stderr
    assert final_files(root) == {}


@pytest.mark.parametrize("where", ["socket", "tcp"])
async def test_unreachable_database_exits_1_with_one_line_and_no_password(
    board: Database, root: Path, tmp_path: Path, where: str
) -> None:
    secret = "hunter2-s3cret"
    if where == "socket":
        db = replace(board, password=secret, unix_socket=str(tmp_path / "no-server.sock"))
    else:
        with socket_closed_port() as port:
            db = replace(board, password=secret, unix_socket=None, host="127.0.0.1", port=port)
    with anyio.fail_after(30):
        run = await export(db, root)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("mybb-sync: error:"), run.stderr
    assert "Traceback" not in run.stderr and secret not in run.stderr and secret not in run.stdout
    assert final_files(root) == {}


async def test_a_database_lost_in_the_middle_of_an_export_is_one_database_unavailable_error(
    mariadb: PrivateMariaDB | None, server_db: Database, root: Path
) -> None:
    """Regression: an error inside the export's task group escaped as an exception group (a
    traceback from the CLI, and the service's retry-on-outage never caught it)."""
    if mariadb is None:
        pytest.skip("MYBB_SYNC_TEST_DSN names an external server: this test cannot stop it")
    db = await create_board(server_db, Board(masters=5000, seed=11))
    stopped = False

    def stop_the_server_once_files_are_written(done: int, total: int) -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            mariadb.stop()  # more pages are still to be read: 5000 rows in pages of at most 500

    try:
        async with open_store(db, "mybb_") as store:
            catalog = await load_catalog(store)
            state = State(root)
            try:
                with pytest.raises(DatabaseUnavailable):
                    await Exporter(Root(root), state, batch=500).run(
                        store, catalog, Scope((1, -1), ()), progress=stop_the_server_once_files_are_written
                    )
            finally:
                state.close()
    finally:
        if not mariadb.running:
            mariadb.start()
        await drop_board(db)
    assert stopped and 0 < len(final_files(root)) < 5000
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


class socket_closed_port:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        return None


# --- crash safety and concurrent readers (real processes, real inotify) ---------------------------

WATCH = Mask.CREATE | Mask.MOVED_TO | Mask.CLOSE_WRITE | Mask.ONLYDIR | Mask.DONT_FOLLOW


async def change_every_row(db: Database, tag: str) -> None:
    """An Admin CP-like change to every template and stylesheet (its text, and what it is attached
    to, which every theme.json shows): every file must be rewritten."""
    await sql(db, "UPDATE mybb_templates SET template = CONCAT(template, %s), dateline = dateline + 1", (tag,))
    await sql(
        db,
        "UPDATE mybb_themestylesheets SET stylesheet = CONCAT(stylesheet, %s), lastmodified = lastmodified + 1, "
        "attachedto = CONCAT(attachedto, '|changed.php')",
        (tag,),
    )


def watch_dirs(inotify: Inotify, root: Path) -> None:
    """Watch ``root`` and every folder below it except the state folder."""
    inotify.add_watch(root, WATCH)
    for dirpath, dirnames, _files in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for d in dirnames:
            inotify.add_watch(Path(dirpath) / d, WATCH)


async def first_write(inotify: Inotify, root: Path) -> None:
    """Return once the export creates its first folder or temp file under the root."""
    async for event in inotify:
        if event.path is None or not (event.mask & (Mask.CREATE | Mask.MOVED_TO)):
            continue
        if event.path.parent == root and event.path.name == STATE_DIR:
            continue  # the lock and state folder, made before anything is written
        return


async def first_rename(inotify: Inotify) -> None:
    """Return once a file is renamed to its final name: the export is between two renames."""
    async for event in inotify:
        if event.path is not None and Mask.MOVED_TO in event.mask and not event.path.name.startswith("."):
            return


async def export_watched(
    db: Database, root: Path, kill_after: float | None = None, *, kill_at_first_rename: bool = False
) -> tuple[int, float]:
    """Run an export; from its first write on, SIGKILL it after ``kill_after`` seconds (None: let it finish),
    or as soon as it renames its first file into place (only in a root whose folders exist: they are watched).

    Returns its exit status and how long it ran after its first write.
    """
    with Inotify() as inotify:
        watch_dirs(inotify, root)
        process = await anyio.open_process(
            cli_command(db, root), env=cli_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        async with process:
            with anyio.fail_after(60):
                await first_write(inotify, root)
            started = anyio.current_time()
            if kill_at_first_rename:
                with anyio.fail_after(60):
                    await first_rename(inotify)
                process.send_signal(signal.SIGKILL)
            elif kill_after is not None:
                await anyio.sleep(kill_after)  # the deliberate random kill moment
                if process.returncode is None:
                    process.send_signal(signal.SIGKILL)
            with anyio.fail_after(120):
                code = await process.wait()
            return code, anyio.current_time() - started


@pytest.mark.slow
async def test_sigkilled_exports_leave_no_partial_file_and_the_next_run_completes(
    big_board: Database, root: Path
) -> None:
    rng = random.Random(20261125)
    trials, killed, interrupted, mixed = 20, 0, 0, 0
    code, writing = await export_watched(big_board, root)  # also measures how long the writes take here
    assert code == 0
    current = await expected_files(big_board)
    assert final_files(root) == current
    for trial in range(trials):
        if trial % 4 == 0:  # an export into an empty root ...
            shutil.rmtree(root)
            root.mkdir()
            previous: dict[str, bytes] = {}
        else:  # ... or one that must overwrite every file
            await change_every_row(big_board, f"\n<!-- trial {trial} -->")
            previous = current
        current = await expected_files(big_board)
        if trial % 4 == 3:  # at least these kills land between two renames
            code, _ = await export_watched(big_board, root, kill_at_first_rename=True)
        else:
            code, _ = await export_watched(big_board, root, kill_after=rng.uniform(0.0, writing))
        killed += code == -signal.SIGKILL
        # After the kill: every file under a final name is complete, old or new, never empty or partial.
        on_disk = final_files(root)
        assert set(on_disk) <= set(current), sorted(set(on_disk) - set(current))[:5]
        bad = [p for p, data in on_disk.items() if data not in (current[p], previous.get(p))]
        assert bad == [], f"trial {trial}: {len(bad)} partial file(s), e.g. {bad[:3]}"
        assert all(on_disk.values())
        renamed = sum(on_disk.get(p) == x for p, x in current.items())
        mixed += 0 < renamed < len(current)  # killed between two renames: old and new files side by side
        interrupted += renamed < len(current) or bool(temp_files(root))
        # The next run sweeps the leftover temps and completes.
        summary = (await export(big_board, root, "--json")).json()
        assert summary["errors"] == [] and summary["conflicts"] == [], (trial, summary["conflicts"][:5])
        assert temp_files(root) == []
        assert final_files(root) == current
    assert killed >= trials // 2, f"only {killed} of {trials} exports were killed before they finished"
    assert interrupted >= trials // 2, f"only {interrupted} of {trials} kills left unfinished work behind"
    assert mixed >= 1, "no kill landed between two renames"


@dataclass
class InotifyReader:
    """Reads each file the moment inotify says a final name was written (IN_MOVED_TO / IN_CLOSE_WRITE)."""

    root: Path
    expected: dict[str, bytes]
    sentinel: str = ".reader-stop"
    inotify: Inotify = field(default_factory=Inotify)
    reads: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    close_write_on_final: list[str] = field(default_factory=list)
    reads_while_running: int = 0
    running: bool = False

    def watch_tree(self, path: Path, new: bool = True) -> None:
        """Watch a folder and those below it; in a new folder also read what it already holds
        (files renamed into it before its watch existed are not missed)."""
        self.inotify.add_watch(path, WATCH)
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    self.watch_tree(Path(entry.path), new)
                elif new and entry.is_file(follow_symlinks=False):
                    self.check(Path(entry.path))

    def check(self, path: Path) -> None:
        rel = path.relative_to(self.root).as_posix()
        data = path.read_bytes()
        self.reads[rel] += 1
        self.reads_while_running += self.running
        if data != self.expected.get(rel):
            self.mismatches.append(f"{rel}: {len(data)} bytes, expected {len(self.expected.get(rel, b''))}")

    async def run(self) -> None:
        async for event in self.inotify:
            assert Mask.Q_OVERFLOW not in event.mask, "inotify queue overflowed: events were lost"
            path = event.path
            if path is None:
                continue
            if path.parent == self.root and path.name == self.sentinel:
                return
            if path.name.startswith("."):
                continue  # temps, the state folder
            if Mask.ISDIR in event.mask:
                if event.mask & (Mask.CREATE | Mask.MOVED_TO):
                    self.watch_tree(path)
                continue
            if Mask.CLOSE_WRITE in event.mask:
                self.close_write_on_final.append(path.relative_to(self.root).as_posix())
            if event.mask & (Mask.MOVED_TO | Mask.CLOSE_WRITE):
                self.check(path)


async def export_with_reader(db: Database, root: Path) -> InotifyReader:
    reader = InotifyReader(root, await expected_files(db))
    with reader.inotify:
        reader.watch_tree(root, new=False)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader.run)
                reader.running = True
                run = await export(db, root)
                reader.running = False
                (root / reader.sentinel).write_bytes(b"")  # queued after every event of the export
    (root / reader.sentinel).unlink()
    assert run.returncode == 0, run.stderr
    return reader


async def test_a_concurrent_inotify_reader_always_reads_complete_files(big_board: Database, root: Path) -> None:
    for phase in ("into an empty root", "overwriting every file"):
        if phase != "into an empty root":
            await change_every_row(big_board, "\n<!-- changed -->")
        reader = await export_with_reader(big_board, root)
        assert reader.mismatches == [], f"{phase}: {reader.mismatches[:5]}"
        assert reader.close_write_on_final == [], f"{phase}: a final name was written in place"
        assert set(reader.reads) == set(reader.expected), phase  # every file was seen and read
        assert reader.reads_while_running > len(reader.expected) // 2, phase
        assert final_files(root) == reader.expected
