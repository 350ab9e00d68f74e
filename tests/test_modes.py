"""Modes, groups and hard links beside other users (issue 21): real files, real users, no mocks.

The service may run as www-data with ``UMask=0002`` while people edit as
themselves in a setgid group folder. The umask is process-wide, so every
test that depends on one runs a tiny script calling the atomic write API in
a subprocess started with that umask (and, where it matters, as another user).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from boards import create_board, drop_board
from mybb_sync.atomic import SYNCFS_THRESHOLD, Write, Written, _commit, _stage, write_batch
from mybb_sync.config import Database
from mybb_sync.files import Root, stat_of
from mybb_sync.offline import offline_status
from mybb_sync.synthetic import Board

from service_helpers import (
    SET_SID,
    audit,
    cli,
    db_url,
    install_audit,
    running_service,
    set_template,
    shown,
    template,
    tpath,
)

NOBODY = 65534
MEMBER_GID, OTHER_GID = 54321, 54322  # groups that need no /etc/group entry: the kernel takes any number

WRITER = """
import json, os, sys
from pathlib import Path
from mybb_sync.atomic import Write, Written, write_batch
from mybb_sync.files import Root
root, umask_now, ids, paths = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
if ids:  # become that user here: the interpreter itself may live where that user cannot reach
    uid, gid, *groups = (int(i) for i in ids.split(":"))
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
if umask_now:
    os.umask(int(umask_now, 8))  # what another thread's set-and-restore of the umask looks like to us
results = write_batch(Root(root), [Write(p, b"data of " + p.encode(), None) for p in paths])
print(json.dumps([getattr(r, "reason", None) for r in results if not isinstance(r, Written)]))
"""


def write_in_child(
    root: Path, paths: list[str], umask: int, *, umask_after_import: int | None = None, as_user: tuple[int, ...] = ()
) -> None:
    """``write_batch`` of ``paths`` (forced) in a child started with ``umask``, as ``as_user``
    (uid, gid, supplementary groups...) if given."""
    after = "" if umask_after_import is None else oct(umask_after_import)
    ids = ":".join(str(i) for i in as_user)
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(root), after, ids, *paths], umask=umask, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == []
    for p in paths:
        assert (root / p).read_bytes() == b"data of " + p.encode()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: makes files of other users and groups")


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder in /tmp another user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="mybb-sync-modes-", dir="/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


# -- the umask --------------------------------------------------------------------------------


def test_the_umask_is_read_without_changing_it() -> None:
    script = (
        "import os; from mybb_sync import modes; "
        "print(modes.UMASK, modes.read_umask(), modes.read_umask('/nonexistent/status'), os.umask(0))"
    )
    done = subprocess.run([sys.executable, "-c", script], umask=0o027, capture_output=True, check=True)
    assert [int(v) for v in done.stdout.split()] == [0o027] * 4


@pytest.mark.parametrize("count", [1, SYNCFS_THRESHOLD + 1], ids=["small", "bulk"])
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o007], ids=oct)
def test_new_files_and_folders_get_0666_and_0777_less_the_umask(root: Path, umask: int, count: int) -> None:
    paths = ["top.html"] + [f"new/deeper/t{i}.html" for i in range(count)]
    write_in_child(root, paths, umask)
    assert {p: mode(root / p) for p in paths} == dict.fromkeys(paths, 0o666 & ~umask)
    assert mode(root / "new") == mode(root / "new/deeper") == 0o777 & ~umask


def test_a_umask_changed_by_another_thread_meanwhile_does_not_change_the_modes(root: Path) -> None:
    """Set-and-restore of the umask elsewhere in the process (a private socket, say) lasts a moment;
    a file or folder made in that moment still gets the modes of the umask read at start."""
    write_in_child(root, ["new/t.html", "top.html"], 0o002, umask_after_import=0o177)
    assert mode(root / "new") == 0o775
    assert mode(root / "new/t.html") == mode(root / "top.html") == 0o664


# -- files replaced keep their mode and group ----------------------------------------------


@pytest.mark.parametrize("old_mode", [0o660, 0o600, 0o664, 0o640, 0o755], ids=oct)
def test_a_replaced_file_keeps_its_mode(root: Path, old_mode: int) -> None:
    path = root / "t.html"
    path.write_bytes(b"old")
    os.chmod(path, old_mode)
    (result,) = write_batch(Root(root), [Write("t.html", b"new", stat_of(os.lstat(path)))])
    assert isinstance(result, Written)
    assert path.read_bytes() == b"new" and mode(path) == old_mode


def test_setuid_setgid_and_sticky_bits_are_not_carried_over(root: Path) -> None:
    path = root / "t.html"
    path.write_bytes(b"old")
    os.chmod(path, 0o6775)
    write_batch(Root(root), [Write("t.html", b"new", None)])
    assert mode(path) == 0o775


def test_a_replaced_file_keeps_its_group_as_root(root: Path) -> None:
    needs_root()
    path = root / "t.html"
    path.write_bytes(b"old")
    os.chown(path, -1, OTHER_GID)
    os.chmod(path, 0o660)
    write_in_child(root, ["t.html"], 0o022)
    assert (os.lstat(path).st_gid, mode(path)) == (OTHER_GID, 0o660)


def test_a_replaced_file_keeps_a_group_we_are_in_and_the_rest_still_lands(shared: Path) -> None:
    """As www-data: a file of a group the service is in keeps it; one of a group it is not in
    is still written (mode kept), with the service's own group: the kernel allows no other."""
    needs_root()
    os.chown(shared, NOBODY, NOBODY)
    for name, gid in (("ours.html", MEMBER_GID), ("theirs.html", OTHER_GID)):
        (shared / name).write_bytes(b"old")
        os.chown(shared / name, 0, gid)
        os.chmod(shared / name, 0o664)
    write_in_child(shared, ["ours.html", "theirs.html"], 0o002, as_user=(NOBODY, NOBODY, MEMBER_GID))
    assert (os.lstat(shared / "ours.html").st_gid, mode(shared / "ours.html")) == (MEMBER_GID, 0o664)
    assert (os.lstat(shared / "theirs.html").st_gid, mode(shared / "theirs.html")) == (NOBODY, 0o664)
    assert os.lstat(shared / "ours.html").st_uid == NOBODY


def test_a_mode_changed_while_a_batch_is_in_flight_is_the_one_kept(root: Path) -> None:
    """Between a temp's write and its rename (a bulk batch's syncfs can take seconds) the owner
    may chmod or chgrp the file: the rename keeps what the file has at that moment."""
    needs_root()
    path = root / "t.html"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    sync_root = Root(root)
    staged = _stage(sync_root, [Write("t.html", b"new", None)], fsync_each=True)
    os.chmod(path, 0o660)
    os.chown(path, -1, OTHER_GID)
    (result,) = _commit(sync_root, staged, fsync_dirs=True)
    assert isinstance(result, Written)
    assert path.read_bytes() == b"new" and (mode(path), os.lstat(path).st_gid) == (0o660, OTHER_GID)


# -- setgid group folders -------------------------------------------------------------------


@pytest.mark.parametrize("as_nobody", [False, True], ids=["root", "member"])
def test_a_setgid_folder_gives_new_files_and_folders_its_group(shared: Path, as_nobody: bool) -> None:
    """A group folder (setgid, group-writable) and a service with UMask=0002: what it makes there
    belongs to the folder's group and is writable by the group, new subfolders stay setgid."""
    needs_root()
    group_dir = shared / "styles"
    group_dir.mkdir()
    os.chown(group_dir, 0, MEMBER_GID)
    os.chmod(group_dir, 0o2775)
    if as_nobody:
        os.chown(shared, NOBODY, NOBODY)
    user = (NOBODY, NOBODY, MEMBER_GID) if as_nobody else ()
    write_in_child(shared, ["styles/global.css", "styles/New Theme/a.css"], 0o002, as_user=user)
    for p in ("styles/global.css", "styles/New Theme/a.css"):
        assert (os.lstat(shared / p).st_gid, mode(shared / p)) == (MEMBER_GID, 0o664)
    new_dir = shared / "styles/New Theme"
    assert (os.lstat(new_dir).st_gid, mode(new_dir)) == (MEMBER_GID, 0o2775)


# -- end to end on a SQLite board -------------------------------------------------------------


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A SQLite board (no database server), every write to its templates recorded."""
    board = await create_board(Database(scheme="sqlite", path=tmp_path / "forum.sqlite"), Board(masters=300))
    await install_audit(board)
    yield board
    await drop_board(board)


def problems(root: Path, kind: str) -> dict[str, str]:
    return {p["path"]: p["detail"] for p in offline_status(root)["problems"] if p["kind"] == kind}


@pytest.mark.anyio
async def test_an_export_keeps_a_rewritten_files_mode_and_group(db: Database, root: Path, tmp_path: Path) -> None:
    needs_root()
    title = Board(masters=300).master_title(20)
    await cli("export", "--db", db_url(db), "--root", str(root), cwd=tmp_path)
    path = root / tpath(title)
    os.chmod(path, 0o660)
    os.chown(path, -1, OTHER_GID)
    await set_template(db, SET_SID, title, "<p>changed in the admin cp</p>", 1_800_000_000)
    await cli("export", "--db", db_url(db), "--root", str(root), cwd=tmp_path)
    assert path.read_bytes() == b"<p>changed in the admin cp</p>"
    assert (mode(path), os.lstat(path).st_gid) == (0o660, OTHER_GID)


@pytest.mark.anyio
async def test_the_service_refuses_a_hard_linked_template_file(db: Database, root: Path, tmp_path: Path) -> None:
    """A hard link in the root to a file elsewhere (saved into place, or made where the watcher does
    not look and found by a rescan) is refused, never read: nothing reaches the database, and
    ``status`` lists it as invalid."""
    spec = Board(masters=300)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "config.php"
    secret.write_bytes(b"<?php $config['database']['password'] = 'secret';\n")
    saved, found = tpath(spec.master_title(20)), tpath("footer_linked")
    async with running_service(db, root) as svc:
        before = await shown(db, spec.master_title(20))
        mark = svc.log.mark()
        scratch = (root / saved).parent / ".linked"  # a dotfile: ignored
        os.link(secret, scratch)  # ln, then mv over the template (a MOVED_TO: a save)
        os.rename(scratch, root / saved)
        await svc.log.wait_for(lambda line: line.startswith(f"refused {saved}: has 2 hard links"), since=mark)
        os.link(secret, root / found)  # only an IN_CREATE, which the watcher does not act on
        await svc.handle.rescan()
        await svc.log.wait_for(lambda line: line.startswith(f"refused {found}: has 3 hard links"), since=mark)
        await svc.barrier()
        assert await audit(db) == []
        assert await shown(db, spec.master_title(20)) == before
        assert await template(db, SET_SID, "footer_linked") == []
        invalid = problems(root, "invalid")
        assert "hard links" in invalid[saved] and "hard links" in invalid[found]
    assert secret.read_bytes() == b"<?php $config['database']['password'] = 'secret';\n"
