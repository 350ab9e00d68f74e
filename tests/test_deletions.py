"""Issue 22: a move is not a deletion. ``on_delete = revert`` reverts a set copy only for a
real deletion of that one file; a folder gone, a file replaced by something else, and mass
deletions revert nothing (the last are held until a person confirms with ``resolve``).

The rules are pure functions, tested first without I/O; then the facts (lstat on real
folders), then real services on SQLite boards (the database engine plays no part here):
real inotify, the real CLI, every write to the templates table recorded by triggers.
Waiting is on log lines and barriers only. Where a test must show that nothing was
reverted, the grace period is set to 0: a revert would then happen in the very batch that
sees the file gone, so the barrier after it proves none did.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from mybb_sync.args import build_parser
from mybb_sync.config import Database, Settings, load_settings
from mybb_sync.deletions import (
    MASS_LIMIT,
    MASS_WINDOW,
    Facts,
    Sighting,
    Verdict,
    explain,
    gather,
    held_detail,
    holds,
    judge,
)
from mybb_sync.engine import Decision, Entry
from mybb_sync.errors import ConfigError
from mybb_sync.files import Root
from mybb_sync.layout import Kind
from mybb_sync.offline import offline_status
from mybb_sync.reconcile import Action
from mybb_sync.reverts import Reverts
from mybb_sync.state import State
from mybb_sync.store import TemplateRow, open_store
from mybb_sync.synthetic import Board

from service_helpers import SET_SID, audit, audit_mark, cli, db_url, install_audit, running_service, template, tpath

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", parametrize=False)]

OWN = 20  # master index with a copy in "Default Templates" (every 20th is overridden)
COPIES = range(0, 300, 20)  # the 15 copies of the synthetic board's set


@pytest.fixture
async def db(board: Database) -> Database:
    """The board, with every write to its templates table recorded."""
    await install_audit(board)
    return board


def problems(root: Path, kind: str = "missing") -> dict[str, str]:
    return {p["path"]: p["detail"] for p in offline_status(root)["problems"] if p["kind"] == kind}


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- the rules, without I/O ------------------------------------------------------------------------

PATH = "template_sets/Default Templates/index/index_boardstats.html"


@pytest.mark.parametrize(
    ("facts", "verdict"),
    [
        (Facts(PATH), Verdict.DELETED),
        (Facts(PATH, entry="file"), Verdict.PRESENT),
        (Facts(PATH, entry="symlink"), Verdict.REPLACED),
        (Facts(PATH, entry="FIFO"), Verdict.REPLACED),
        (Facts(PATH, entry="folder"), Verdict.REPLACED),
        (Facts(PATH, folder="template_sets"), Verdict.FOLDER_GONE),
        (Facts(PATH, folder="template_sets/Default Templates"), Verdict.FOLDER_GONE),
        (Facts(PATH, folder="template_sets/Default Templates/index"), Verdict.FOLDER_GONE),
        (Facts(PATH, folder="template_sets/Default Templates", folder_is="symlink"), Verdict.FOLDER_GONE),
        (Facts(PATH, folder="template_sets", folder_is="file"), Verdict.FOLDER_GONE),
    ],
)
def test_only_a_file_gone_from_folders_still_there_is_deleted(facts: Facts, verdict: Verdict) -> None:
    assert judge(facts) is verdict


def test_what_is_reported_says_nothing_was_reverted_and_why() -> None:
    assert explain(Facts(PATH, folder="template_sets")).startswith("its folder template_sets is gone: nothing reverted")
    assert explain(Facts(PATH, folder="template_sets", folder_is="symlink")).startswith(
        "its folder template_sets is gone (a symlink stands in its place): nothing reverted"
    )
    for what in ("symlink", "FIFO", "folder"):
        text = explain(Facts(PATH, entry=what))
        assert text.startswith(f"replaced by a {what}: nothing reverted; an export reports a conflict")
        assert "restores it" not in text


def sightings(count: int, at: float = 100.0, step: float = 0.01, sid: int = 1) -> list[Sighting]:
    return [Sighting(f"f{i}", at + i * step, sid) for i in range(count)]


def test_up_to_the_limit_of_deletions_at_once_is_no_mass_deletion() -> None:
    gone = sightings(MASS_LIMIT)
    assert holds(gone, gone, [], {1: 100}) == {}


def test_more_than_the_limit_within_a_window_holds_every_one_of_them() -> None:
    gone = sightings(MASS_LIMIT + 1)
    held = holds(gone, gone, [], {1: 100})
    assert held == {s.path: f"{MASS_LIMIT + 1} files deleted at once" for s in gone}
    assert held_detail(held["f0"]) == (
        f"deletion held: {MASS_LIMIT + 1} files deleted at once; "
        "`mybb-sync resolve --take disk PATH` reverts it, `--take db` restores the file"
    )


def test_deletions_seen_further_apart_than_the_window_are_not_one_mass_deletion() -> None:
    gone = sightings(MASS_LIMIT + 1, step=MASS_WINDOW * 1.01)
    assert holds(gone, gone, [], {1: 100}) == {}


def test_files_that_revert_nothing_and_copies_reverted_already_count_towards_the_window() -> None:
    """A mass deletion is one of files, whatever they stand for: a copy deleted with five
    files of inherited templates is held, as is the sixth copy of a window whose five others
    were reverted already (their sightings split over two batches)."""
    copy = Sighting("copy", 100.0, 1)
    others = [Sighting(f"inherited{i}", 100.0, 0) for i in range(MASS_LIMIT)]
    assert set(holds([copy], [copy, *others], [], {1: 100})) == {"copy"}
    assert set(holds([copy], [copy], others, {1: 100})) == {"copy"}


def test_every_copy_of_a_set_deleted_is_held_unless_the_set_has_one() -> None:
    two = sightings(2)
    assert holds(two, two, [], {1: 2}) == {
        "f0": "every copy of its set deleted (2 files)",
        "f1": "every copy of its set deleted (2 files)",
    }
    assert holds(two[:1], two[:1], [], {1: 2}) == {}  # one of two
    assert holds(two[:1], two[:1], [], {1: 1}) == {}  # the only copy: a deletion of that one file
    # a copy already reverted no longer counts as one of the set's (the state dropped it)
    assert holds(two[1:], two[1:], two[:1], {1: 1}) == {}


# -- the facts, on real folders ------------------------------------------------------------------------


def test_facts_are_gathered_with_lstat_and_no_symlink_is_followed(root: Path, tmp_path: Path) -> None:
    group = root / "template_sets" / "Default Templates" / "index"
    group.mkdir(parents=True)
    (group / "present.html").write_text("x")
    (group / "link.html").symlink_to(group / "present.html")
    os.mkfifo(group / "fifo.html")
    (group / "folder.html").mkdir()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "index").mkdir(parents=True)
    (elsewhere / "index" / "present.html").write_text("x")
    (root / "template_sets" / "Linked Set").symlink_to(elsewhere)  # a set folder that is a symlink
    facts = gather(root, [
        "template_sets/Default Templates/index/present.html",
        "template_sets/Default Templates/index/deleted.html",
        "template_sets/Default Templates/index/link.html",
        "template_sets/Default Templates/index/fifo.html",
        "template_sets/Default Templates/index/folder.html",
        "template_sets/Default Templates/gone/x.html",
        "template_sets/Gone Set/index/x.html",
        "template_sets/Linked Set/index/present.html",
        "global_templates/x.html",
    ])  # fmt: skip
    judged = {path.split("/", 1)[1]: (judge(f), f.folder, f.folder_is, f.entry) for path, f in facts.items()}
    assert judged == {
        "Default Templates/index/present.html": (Verdict.PRESENT, None, None, "file"),
        "Default Templates/index/deleted.html": (Verdict.DELETED, None, None, None),
        "Default Templates/index/link.html": (Verdict.REPLACED, None, None, "symlink"),
        "Default Templates/index/fifo.html": (Verdict.REPLACED, None, None, "FIFO"),
        "Default Templates/index/folder.html": (Verdict.REPLACED, None, None, "folder"),
        "Default Templates/gone/x.html": (Verdict.FOLDER_GONE, "template_sets/Default Templates/gone", None, None),
        "Gone Set/index/x.html": (Verdict.FOLDER_GONE, "template_sets/Gone Set", None, None),
        "Linked Set/index/present.html": (Verdict.FOLDER_GONE, "template_sets/Linked Set", "symlink", None),
        "x.html": (Verdict.FOLDER_GONE, "global_templates", None, None),
    }


# -- what the service remembers between looks ------------------------------------------------------


async def test_a_mass_deletion_is_held_whole_once_the_first_of_it_is_due(
    db: Database, board_spec: Board, root: Path
) -> None:
    """Each file's grace period ends in a look of its own. Were only the file due held, a stop
    between two such looks would leave the rest as merely waiting, and a start with fewer than
    the limit gone would revert them: the first one due holds every file of the deletion."""
    titles = [board_spec.master_title(i) for i in COPIES[:8]]
    gone = [
        Decision(
            Entry(tpath(t), Kind.TEMPLATE, SET_SID, t, TemplateRow(i, SET_SID, t, "x", "1837", "", 1)),
            Action.DISK_DELETED, None, None, None, None,
        )
        for i, t in enumerate(titles, 1)
    ]  # fmt: skip
    for d in gone:
        (root / d.entry.path).parent.mkdir(parents=True, exist_ok=True)  # the folders stay, the files are gone
    state, later = State(root), []
    settings = Settings(on_delete="revert", delete_grace=60.0)
    async with open_store(db, settings.prefix) as store:
        reverts = Reverts(settings, Root(root), state, store, anyio.CapacityLimiter(1), lambda p, t: later.append(p))
        waiting = await reverts.on_deleted(gone)
        assert sorted(later) == sorted(d.entry.path for d in gone) and reverts.held == 0
        reverts.settings = Settings(on_delete="revert", delete_grace=0.0)  # the first file's grace is over
        first = await reverts.on_deleted(gone[:1])
    state.close()
    assert all(detail.startswith("file deleted: its copy is reverted") for detail in waiting.details.values())
    assert first.reverted == []
    assert first.details[gone[0].entry.path] == held_detail("8 files deleted at once")
    assert first.held_with == {d.entry.path: held_detail("8 files deleted at once") for d in gone[1:]}
    assert reverts.held == 8


# -- the service -------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["template_sets", "set", "group"])
async def test_a_folder_moved_away_reverts_nothing_and_moving_it_back_changes_nothing(
    db: Database, board_spec: Board, root: Path, tmp_path: Path, level: str
) -> None:
    """``mv template_sets /elsewhere`` took a set from 2,300 rows to 0 in 6 s (issue 22)."""
    copy = tpath(board_spec.master_title(OWN))
    group = copy.rsplit("/", 1)[0]
    folder = {"template_sets": "template_sets", "set": "template_sets/Default Templates", "group": group}[level]
    aside = tmp_path / "elsewhere"
    async with running_service(db, root, on_delete="revert", delete_grace=0.0) as svc:
        before, files = await template(db, SET_SID, board_spec.master_title(OWN)), files_under(root / folder)
        mark, writes = svc.log.mark(), await audit_mark(db)
        os.rename(root / folder, aside)
        line = await svc.log.wait_for(
            lambda text: f"{folder} is gone" in text or text.startswith("reverted "), since=mark
        )
        assert line.startswith(f"{folder} is gone: ")
        await svc.barrier()
        assert await audit(db, writes) == []
        assert await template(db, SET_SID, board_spec.master_title(OWN)) == before
        missing = problems(root)
        assert missing[copy].startswith(f"its folder {folder} is gone: nothing reverted")
        assert set(missing) == {f"{folder}/{name}" for name in files}

        os.rename(aside, root / folder)
        await svc.barrier()
        assert await audit(db, writes) == []
        assert files_under(root / folder) == files
        assert problems(root) == {}  # back in place: no longer missing
    assert await audit(db, writes) == []


@pytest.mark.parametrize("replacement", ["symlink", "FIFO", "folder"])
async def test_a_set_copys_file_replaced_by_something_else_reverts_nothing(
    db: Database, board_spec: Board, root: Path, tmp_path: Path, replacement: str
) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    path = root / rel
    url = ["--db", db_url(db), "--root", str(root)]
    async with running_service(db, root, on_delete="revert", delete_grace=0.0) as svc:
        before = await template(db, SET_SID, title)
        same = tmp_path / "same.html"
        same.write_bytes(path.read_bytes())
        svc.handle.pause()  # the file is never seen absent in between
        path.unlink()
        if replacement == "symlink":
            path.symlink_to(same)
        elif replacement == "FIFO":
            os.mkfifo(path)
        else:
            path.mkdir()
        mark, writes = svc.log.mark(), await audit_mark(db)
        svc.handle.resume()
        line = await svc.log.wait_for(
            lambda text: (rel in text and "replaced" in text) or text.startswith("reverted "), since=mark
        )
        assert line.startswith(f"not reverted: {rel} was replaced by a {replacement}")
        await svc.barrier()
        assert await audit(db, writes) == []
        assert await template(db, SET_SID, title) == before
        detail = problems(root)[rel]
        assert detail.startswith(f"replaced by a {replacement}: nothing reverted; an export reports a conflict")
        refused = await cli("resolve", str(path), "--take", "disk", *url, cwd=root.parent, check=False)
        assert refused.returncode == 1
        assert f"is a {replacement}, not a file" in refused.stderr.decode()
        assert await audit(db, writes) == []
    # What the detail says an export does.
    result = await cli("export", "--json", *url, cwd=root.parent, check=False)
    assert rel in json.loads(result.stdout)["conflicts"] and result.returncode == 3
    mode = os.lstat(path).st_mode
    assert {"symlink": stat.S_ISLNK, "FIFO": stat.S_ISFIFO, "folder": stat.S_ISDIR}[replacement](mode)
    assert await audit(db, writes) == []


async def test_ten_copies_deleted_at_once_are_held_and_resolve_reverts_one_at_a_time(
    db: Database, board_spec: Board, root: Path
) -> None:
    titles = [board_spec.master_title(i) for i in COPIES[:10]]
    rels = [tpath(t) for t in titles]
    url = ["--db", db_url(db), "--root", str(root)]
    async with running_service(db, root, on_delete="revert") as svc:
        mark, writes = svc.log.mark(), await audit_mark(db)

        def delete() -> None:
            for rel in rels:
                (root / rel).unlink()

        await anyio.to_thread.run_sync(delete)
        line = await svc.log.wait_for(lambda text: text.startswith(("held ", "reverted ")), since=mark)
        assert line.startswith("held reverts: 10 files deleted at once: nothing reverted until a person confirms")
        await svc.barrier()
        assert await audit(db, writes) == []
        assert [text for text in svc.log.since(mark) if text.startswith("held ")] == [line]  # one warning
        report = json.loads((await cli("status", "--json", *url, cwd=root.parent)).stdout)
        assert report["held_deletions"] == 10
        held = {p["path"]: p["detail"] for p in report["problems"] if p["kind"] == "missing"}
        assert set(held) == set(rels)
        assert all(d.startswith("deletion held: 10 files deleted at once; ") for d in held.values())
        text = (await cli("status", *url, cwd=root.parent)).stdout.decode()
        assert f"missing: {rels[0]}: deletion held: 10 files deleted at once; " in text

        # Confirmed through the running service: that one copy is reverted, its file shows the master.
        await cli("resolve", str(root / rels[0]), "--take", "disk", *url, cwd=root.parent)
        assert [(w.op, w.sid, w.title) for w in await audit(db, writes)] == [("D", SET_SID, titles[0])]
        assert await template(db, SET_SID, titles[0]) == []
        [master] = await template(db, -2, titles[0])
        assert (root / rels[0]).read_text() == master.template
        await svc.barrier()
        assert set(problems(root)) == set(rels[1:])
        assert [(w.op, w.title) for w in await audit(db, writes)] == [("D", titles[0])]

    # And with no service running: one more reverted, one written back from its copy.
    await cli("resolve", str(root / rels[1]), "--take", "disk", *url, cwd=root.parent)
    await cli("resolve", str(root / rels[2]), "--take", "db", *url, cwd=root.parent)
    assert [(w.op, w.title) for w in await audit(db, writes)] == [("D", titles[0]), ("D", titles[1])]
    [copy] = await template(db, SET_SID, titles[2])
    assert (root / rels[2]).read_text() == copy.template
    assert set(problems(root)) == set(rels[3:])
    for title in titles[3:]:
        assert len(await template(db, SET_SID, title)) == 1


async def test_deletions_held_stay_held_across_a_restart_even_when_fewer_than_the_limit_remain(
    db: Database, board_spec: Board, root: Path
) -> None:
    """A restart is no person's word. With no grace period a revert would happen in the
    start-up pass itself, so its end proves none did."""
    titles = [board_spec.master_title(i) for i in COPIES[:8]]
    rels = [tpath(t) for t in titles]
    url = ["--db", db_url(db), "--root", str(root)]
    async with running_service(db, root, on_delete="revert") as svc:
        mark = svc.log.mark()
        await anyio.to_thread.run_sync(lambda: [(root / rel).unlink() for rel in rels])
        line = await svc.log.wait_for(lambda text: text.startswith(("held ", "reverted ")), since=mark)
        assert line.startswith("held reverts: 8 files deleted at once")
        await svc.barrier()
    for rel in rels[:4]:
        await cli("resolve", str(root / rel), "--take", "db", *url, cwd=root.parent)
    writes = await audit_mark(db)
    async with running_service(db, root, on_delete="revert", delete_grace=0.0) as svc:
        assert await audit(db, writes) == []
        assert not any(text.startswith("reverted ") for text in svc.log.lines)
        assert any(
            text.startswith("4 set-copy deletion(s) held before this start are still held") for text in svc.log.lines
        )
        assert svc.handle.status().held_deletions == 4
        assert set(problems(root)) == set(rels[4:])
        assert all(d.startswith("deletion held: 8 files deleted at once; ") for d in problems(root).values())
        await cli("resolve", str(root / rels[4]), "--take", "disk", *url, cwd=root.parent)
        assert [(w.op, w.title) for w in await audit(db, writes)] == [("D", titles[4])]
        assert svc.handle.status().held_deletions == 3


async def test_allow_mass_revert_reverts_a_mass_deletion_at_once(db: Database, board_spec: Board, root: Path) -> None:
    titles = [board_spec.master_title(i) for i in COPIES[: MASS_LIMIT + 1]]
    async with running_service(db, root, on_delete="revert", allow_mass_revert=True) as svc:
        mark, writes = svc.log.mark(), await audit_mark(db)
        await anyio.to_thread.run_sync(lambda: [(root / tpath(t)).unlink() for t in titles])
        for title in titles:
            await svc.log.wait_for(
                lambda text, t=title: text.startswith(f"reverted {t!r} in set {SET_SID}"), since=mark
            )
        await svc.barrier()
        assert sorted((w.op, w.title) for w in await audit(db, writes)) == sorted(("D", t) for t in titles)
        assert not any(text.startswith("held ") for text in svc.log.since(mark))
        assert problems(root) == {}


def test_allow_mass_revert_is_a_setting_of_every_source(tmp_path: Path) -> None:
    assert load_settings({}, environ={}, cwd=tmp_path).allow_mass_revert is False
    assert load_settings({}, environ={"MYBB_SYNC_ALLOW_MASS_REVERT": "yes"}, cwd=tmp_path).allow_mass_revert is True
    (tmp_path / "mybb-sync.toml").write_text("allow_mass_revert = true\n")
    assert load_settings({}, environ={}, cwd=tmp_path).allow_mass_revert is True
    assert load_settings({}, environ={"MYBB_SYNC_ALLOW_MASS_REVERT": "0"}, cwd=tmp_path).allow_mass_revert is False
    with pytest.raises(ConfigError, match="invalid allow-mass-revert"):
        load_settings({}, environ={"MYBB_SYNC_ALLOW_MASS_REVERT": "maybe"}, cwd=tmp_path)
    args = build_parser().parse_args(["watch", "--allow-mass-revert"])
    assert args.allow_mass_revert is True
    assert build_parser().parse_args(["watch"]).allow_mass_revert is None  # the environment and file decide


async def test_one_copys_file_deleted_still_reverts_the_copy(db: Database, board_spec: Board, root: Path) -> None:
    title = board_spec.master_title(OWN)
    rel = tpath(title)
    async with running_service(db, root, on_delete="revert") as svc:
        mark, writes = svc.log.mark(), await audit_mark(db)
        (root / rel).unlink()
        await svc.log.wait_for(lambda text: text.startswith(f"reverted {title!r} in set {SET_SID}"), since=mark)
        await svc.barrier()
        assert [(w.op, w.sid, w.title) for w in await audit(db, writes)] == [("D", SET_SID, title)]
        [master] = await template(db, -2, title)
        assert (root / rel).read_text() == master.template
        assert problems(root) == {}
