"""Atomic, durable writes and symlink-safe reads inside the sync root (real files, real syscalls)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from mybb_sync import atomic
from mybb_sync.atomic import ABSENT, SYNCFS_THRESHOLD, NotWritten, Write, Written, write_batch, write_files
from mybb_sync.files import FileRead, Root, missing, read_files, remove_files, stat_files, stat_of, sweep_temps
from mybb_sync.state import FINE_RACY_NS, RACY_NS, State, proves_unchanged


def files_under(path: Path) -> dict[str, bytes]:
    """Every regular file below ``path`` (relative path -> bytes), symlinks not followed."""
    out = {}
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_file() and not full.is_symlink():
                out[full.relative_to(path).as_posix()] = full.read_bytes()
    return out


def temps_under(root: Root) -> list[str]:
    return [p for p in files_under(root.path) if root.is_temp(p.rpartition("/")[2])]


def content(i: int, size: int) -> bytes:
    """Distinct bytes for file ``i``, not all valid UTF-8."""
    head = f"file {i}\n".encode() + bytes([0xFF, 0x00, 0xC3, 0xA9])
    return (head * (size // len(head) + 1))[:size]


@pytest.fixture
def sync_root(root: Path) -> Root:
    return Root(root)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the root with a secret in it: nothing may read, change or add files there."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.html").write_bytes(b"outside secret")
    (path / ".secret.html.0123abcd.tmp").write_bytes(b"looks like our temp")
    return path


# --- writing ------------------------------------------------------------------------


def test_small_batch_writes_exact_content(sync_root: Root) -> None:
    writes = [Write(f"template_sets/Set/g{i % 3}/t{i}.html", content(i, 100 + i * 37), ABSENT) for i in range(5)]
    writes.append(Write("top.html", b"", ABSENT))
    assert len(writes) < SYNCFS_THRESHOLD
    results = write_batch(sync_root, writes)
    assert all(isinstance(r, Written) for r in results)
    assert files_under(sync_root.path) == {w.path: w.data for w in writes}
    for r in results:
        assert r.stat == stat_of(os.lstat(sync_root.path / r.path))


def test_large_batch_writes_exact_content(sync_root: Root) -> None:
    sizes = [0, 1, 4095, 4096, 65_535, 1_048_577] + [200 + 13 * i for i in range(SYNCFS_THRESHOLD * 3)]
    writes = [Write(f"d{i % 7}/sub/f{i}.html", content(i, size), ABSENT) for i, size in enumerate(sizes)]
    assert len(writes) >= SYNCFS_THRESHOLD
    results = write_batch(sync_root, writes)
    assert [r.path for r in results if isinstance(r, Written)] == [w.path for w in writes]
    assert files_under(sync_root.path) == {w.path: w.data for w in writes}
    assert temps_under(sync_root) == []


def test_write_replaces_an_existing_file_whose_stat_is_as_expected(sync_root: Root) -> None:
    target = sync_root.path / "a.html"
    target.write_bytes(b"old")
    before = os.lstat(target)
    (result,) = write_batch(sync_root, [Write("a.html", b"new content", stat_of(before))])
    assert isinstance(result, Written)
    assert target.read_bytes() == b"new content"
    assert os.lstat(target).st_ino != before.st_ino  # renamed into place, not rewritten in place


def test_a_file_whose_folder_moved_away_is_not_written_and_its_folder_not_made(sync_root: Root) -> None:
    """Decided while its folder was there, written after it was moved aside (the PostgreSQL
    soak of CI, seed 45929, found the set folder made again): a changed file, nothing made."""
    (sync_root.path / "set" / "nav").mkdir(parents=True)
    target = sync_root.path / "set" / "nav" / "a.html"
    target.write_bytes(b"old")
    seen = stat_of(os.lstat(target))
    (sync_root.path / "set").rename(sync_root.path / ".aside")
    (result,) = write_batch(sync_root, [Write("set/nav/a.html", b"new", seen)])
    assert isinstance(result, NotWritten) and result.changed
    assert sorted(os.listdir(sync_root.path)) == [".aside"]


@pytest.mark.anyio
async def test_write_files_writes_a_large_batch_across_many_folders(sync_root: Root) -> None:
    writes = [Write(f"s{i % 11}/g{i % 5}/t{i}.html", content(i, 50 + (i * 131) % 5000), ABSENT) for i in range(1500)]
    results = await write_files(sync_root, writes, anyio.CapacityLimiter(4))
    assert sorted(r.path for r in results) == sorted(w.path for w in writes)
    assert all(isinstance(r, Written) for r in results)
    assert files_under(sync_root.path) == {w.path: w.data for w in writes}
    assert temps_under(sync_root) == []


@pytest.mark.anyio
async def test_write_files_small_batch_writes_exact_content(sync_root: Root) -> None:
    writes = [Write(f"x/t{i}.html", content(i, 10 + i), ABSENT) for i in range(3)]
    results = await write_files(sync_root, writes, anyio.CapacityLimiter(8))
    assert all(isinstance(r, Written) for r in results)
    assert files_under(sync_root.path) == {w.path: w.data for w in writes}


@pytest.mark.anyio
async def test_a_bulk_batch_flushes_every_temp_before_a_rename_and_every_rename_before_returning(
    sync_root: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Durable as the protocol says: at the first syncfs every temp holds all its bytes and no
    target exists; at the second every target holds its bytes and no temp is left; the
    results come after the second."""
    real = atomic._syncfs
    assert real is not None
    seen: list[dict[str, bytes]] = []

    def observed(fd: int) -> int:
        seen.append(files_under(sync_root.path))
        return real(fd)  # the real flush: only observed

    monkeypatch.setattr(atomic, "_syncfs", observed)
    writes = [Write(f"s{i % 3}/g{i % 4}/t{i}.html", content(i, 100 + 37 * i), ABSENT) for i in range(120)]
    results = await write_files(sync_root, writes, anyio.CapacityLimiter(1))
    assert all(isinstance(r, Written) for r in results) and len(seen) == 2
    staged, renamed = seen
    assert all(sync_root.is_temp(rel.rpartition("/")[2]) for rel in staged)
    assert sorted(staged.values()) == sorted(w.data for w in writes)  # every byte written before the flush
    assert renamed == {w.path: w.data for w in writes}


def test_a_batchs_temp_names_count_up_from_one_random_number(sync_root: Root) -> None:
    names = [sync_root.temp_name("t.html", 0xFFFFFFFE + i) for i in range(3)]
    assert names == [".t.html.fffffffe.tmp", ".t.html.ffffffff.tmp", ".t.html.00000000.tmp"]
    assert all(sync_root.is_temp(n) for n in names)


# --- failures leave the old file ----------------------------------------------------------

_FAILING_WRITER = """
import json, resource, signal, sys
from pathlib import Path
from mybb_sync.atomic import Write, write_batch
from mybb_sync.files import Root
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # writes past 4 KiB fail with EFBIG
root, count = Root(Path(sys.argv[1])), int(sys.argv[2])
writes = [Write(f"d/f{i}.html", b"x" * 10_000 if i == 0 else b"new %d" % i, None) for i in range(count)]
print(json.dumps([[r.path, type(r).__name__, getattr(r, "changed", None), getattr(r, "reason", "")] for r in write_batch(root, writes)]))
"""


@pytest.mark.parametrize("count", [3, SYNCFS_THRESHOLD + 8], ids=["fsync-each", "syncfs"])
def test_failed_write_leaves_the_previous_file_intact_and_no_temp(sync_root: Root, count: int) -> None:
    (sync_root.path / "d").mkdir()
    for i in range(count):
        (sync_root.path / f"d/f{i}.html").write_bytes(b"previous %d" % i)
    done = subprocess.run(
        [sys.executable, "-c", _FAILING_WRITER, str(sync_root.path), str(count)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    results = {path: (kind, changed, reason) for path, kind, changed, reason in json.loads(done.stdout)}
    kind, changed, reason = results["d/f0.html"]
    assert (kind, changed) == ("NotWritten", False) and "large" in reason.lower()
    assert all(results[f"d/f{i}.html"][0] == "Written" for i in range(1, count))
    expected = {"d/f0.html": b"previous 0"} | {f"d/f{i}.html": b"new %d" % i for i in range(1, count)}
    assert files_under(sync_root.path) == expected
    assert temps_under(sync_root) == []


_FAILING_BATCH = """
import json, resource, signal, sys
import anyio
from pathlib import Path
from mybb_sync.atomic import Write, write_files
from mybb_sync.files import Root
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # writes past 4 KiB fail with EFBIG
root = Root(Path(sys.argv[1]))
writes = [Write(f"d/f{i}.html", b"x" * 10_000 if i == 50 else b"new %d" % i, None) for i in range(100)]
results = anyio.run(write_files, root, writes, anyio.CapacityLimiter(1))
print(json.dumps([[r.path, type(r).__name__, getattr(r, "reason", ""), getattr(r, "errno", None)] for r in results]))
"""


def test_a_write_failing_mid_batch_leaves_its_old_file_no_temp_and_says_why(sync_root: Root) -> None:
    """One thread writes the whole batch: a failure halfway stops that file only, and is
    reported with its cause, while the files before and after it land."""
    (sync_root.path / "d").mkdir()
    for i in range(100):
        (sync_root.path / f"d/f{i}.html").write_bytes(b"previous %d" % i)
    done = subprocess.run(
        [sys.executable, "-c", _FAILING_BATCH, str(sync_root.path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    results = {path: (kind, reason, err) for path, kind, reason, err in json.loads(done.stdout)}
    assert results.pop("d/f50.html") == ("NotWritten", "cannot write: File too large", errno.EFBIG)
    assert {kind for kind, _, _ in results.values()} == {"Written"} and len(results) == 99
    expected = {f"d/f{i}.html": b"new %d" % i for i in range(100)} | {"d/f50.html": b"previous 50"}
    assert files_under(sync_root.path) == expected
    assert temps_under(sync_root) == []


def test_failed_rename_over_a_directory_keeps_it_and_leaves_no_temp(sync_root: Root) -> None:
    (sync_root.path / "a.html").mkdir()
    (sync_root.path / "a.html" / "inside").write_bytes(b"kept")
    (result, ok) = write_batch(sync_root, [Write("a.html", b"data", None), Write("b.html", b"b", ABSENT)])
    assert isinstance(result, NotWritten) and not result.changed
    assert isinstance(ok, Written)
    assert files_under(sync_root.path) == {"a.html/inside": b"kept", "b.html": b"b"}
    assert temps_under(sync_root) == []


def test_a_parent_that_is_a_file_fails_that_write_only(sync_root: Root) -> None:
    (sync_root.path / "styles").write_bytes(b"a file, not a folder")
    (bad, good) = write_batch(sync_root, [Write("styles/T/x.css", b"x", ABSENT), Write("ok/y.css", b"y", ABSENT)])
    assert isinstance(bad, NotWritten) and not bad.changed
    assert isinstance(good, Written)
    assert files_under(sync_root.path) == {"styles": b"a file, not a folder", "ok/y.css": b"y"}


# --- the expect guard ----------------------------------------------------------------------


def _guarded(sync_root: Root, path: str, expect: object, bulk: bool) -> NotWritten | Written:
    """Write ``path`` with ``expect``, alone or inside a batch large enough for syncfs."""
    writes = [Write(path, b"from the database", expect)]  # type: ignore[arg-type]
    if bulk:
        writes += [Write(f"filler/f{i}", b"f", ABSENT) for i in range(SYNCFS_THRESHOLD)]
    return write_batch(sync_root, writes)[0]


@pytest.mark.parametrize("bulk", [False, True], ids=["small", "large"])
def test_guard_refuses_a_file_rewritten_in_place_since_the_decision(sync_root: Root, bulk: bool) -> None:
    target = sync_root.path / "t.html"
    target.write_bytes(b"as decided")
    decided = stat_of(os.lstat(target))
    with open(target, "r+b") as f:  # same inode, an editor saving in place
        f.write(b"user edit!")
    result = _guarded(sync_root, "t.html", decided, bulk)
    assert isinstance(result, NotWritten) and result.changed
    assert target.read_bytes() == b"user edit!"
    assert temps_under(sync_root) == []


@pytest.mark.parametrize("bulk", [False, True], ids=["small", "large"])
def test_guard_refuses_a_file_replaced_with_the_same_size_and_mtime(sync_root: Root, bulk: bool) -> None:
    target = sync_root.path / "t.html"
    target.write_bytes(b"as decided")
    before = os.lstat(target)
    decided = stat_of(before)
    replacement = sync_root.path / "editor-save"
    replacement.write_bytes(b"user edit!")
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.rename(replacement, target)  # an editor's atomic save: new inode
    result = _guarded(sync_root, "t.html", decided, bulk)
    assert isinstance(result, NotWritten) and result.changed
    assert target.read_bytes() == b"user edit!"


@pytest.mark.parametrize("noreplace", [True, False], ids=["renameat2", "lstat-then-rename"])
@pytest.mark.parametrize("bulk", [False, True], ids=["small", "large"])
def test_guard_refuses_to_overwrite_a_file_created_where_none_was_expected(
    sync_root: Root, monkeypatch: pytest.MonkeyPatch, noreplace: bool, bulk: bool
) -> None:
    """Refused in one step by ``renameat2(RENAME_NOREPLACE)``, or where a system has none, by
    a look before the rename."""
    if not noreplace:  # the kernel's answer where the filesystem has no RENAME_NOREPLACE
        monkeypatch.setattr(atomic, "rename_new", lambda dfds, temps, names: [-errno.EINVAL] * len(names))
    (sync_root.path / "new.html").write_bytes(b"made by the user meanwhile")
    result = _guarded(sync_root, "new.html", ABSENT, bulk=bulk)
    assert isinstance(result, NotWritten) and result.changed
    assert (sync_root.path / "new.html").read_bytes() == b"made by the user meanwhile"
    assert temps_under(sync_root) == []


def test_guard_does_not_recreate_a_file_deleted_since_the_decision(sync_root: Root) -> None:
    target = sync_root.path / "gone.html"
    target.write_bytes(b"decided on")
    decided = stat_of(os.lstat(target))
    target.unlink()
    result = _guarded(sync_root, "gone.html", decided, bulk=False)
    assert isinstance(result, NotWritten) and result.changed
    assert not target.exists()


def test_no_expectation_overwrites_whatever_is_there(sync_root: Root) -> None:
    (sync_root.path / "t.html").write_bytes(b"user edit")
    assert isinstance(_guarded(sync_root, "t.html", None, bulk=False), Written)
    assert (sync_root.path / "t.html").read_bytes() == b"from the database"


@pytest.mark.anyio
async def test_write_files_reports_guard_refusals_among_many_writes(sync_root: Root) -> None:
    (sync_root.path / "d").mkdir()
    (sync_root.path / "d/taken.html").write_bytes(b"user file")
    writes = [Write(f"d/f{i}.html", b"%d" % i, ABSENT) for i in range(200)] + [Write("d/taken.html", b"db", ABSENT)]
    results = await write_files(sync_root, writes, anyio.CapacityLimiter(4))
    refused = [r for r in results if isinstance(r, NotWritten)]
    assert [(r.path, r.changed) for r in refused] == [("d/taken.html", True)]
    assert (sync_root.path / "d/taken.html").read_bytes() == b"user file"


# --- symlinks are never followed ------------------------------------------------------------


@pytest.mark.parametrize("count", [1, SYNCFS_THRESHOLD + 1], ids=["small", "large"])
def test_writes_through_a_symlinked_directory_create_nothing_outside(
    sync_root: Root, outside: Path, count: int
) -> None:
    before = files_under(outside)
    os.symlink(outside, sync_root.path / "template_sets")
    (sync_root.path / "styles").mkdir()
    os.symlink(outside, sync_root.path / "styles" / "Theme")
    writes = [Write(f"template_sets/Set/g/t{i}.html", b"x", ABSENT) for i in range(count)]
    writes += [Write("template_sets/direct.html", b"x", None), Write("styles/Theme/global.css", b"x", None)]
    writes += [Write("template_sets/secret.html", b"overwritten?", None)]
    results = write_batch(sync_root, writes)
    assert all(isinstance(r, NotWritten) and not r.changed for r in results)
    assert files_under(outside) == before
    assert sorted(os.listdir(outside)) == sorted(before)
    assert temps_under(sync_root) == []


def test_a_symlink_at_the_final_name_is_replaced_never_written_through(sync_root: Root, outside: Path) -> None:
    link = sync_root.path / "t.html"
    os.symlink(outside / "secret.html", link)
    refused = write_batch(sync_root, [Write("t.html", b"db text", ABSENT)])[0]
    assert isinstance(refused, NotWritten) and refused.changed and link.is_symlink()
    (forced,) = write_batch(sync_root, [Write("t.html", b"db text", None)])
    assert isinstance(forced, Written)
    assert not link.is_symlink() and link.read_bytes() == b"db text"
    assert (outside / "secret.html").read_bytes() == b"outside secret"


def test_reads_never_follow_symlinks(sync_root: Root, outside: Path) -> None:
    os.symlink(outside, sync_root.path / "linked_dir")
    os.symlink(outside / "secret.html", sync_root.path / "linked.html")
    (sync_root.path / "real").mkdir()
    os.symlink("../linked_dir", sync_root.path / "real" / "hop")
    paths = ["linked_dir/secret.html", "linked.html", "real/hop/secret.html"]
    reads = read_files(sync_root, paths, max_bytes=1 << 20)
    assert [r.data for r in reads] == [None, None, None]
    assert all(r.error for r in reads)
    assert "symlink" in reads[1].error  # type: ignore[operator]
    assert stat_files(sync_root, paths) == dict.fromkeys(paths)


def test_a_hard_linked_file_is_never_read(sync_root: Root, outside: Path) -> None:
    """A second name for a file elsewhere is as much a way out of the root as a symlink."""
    os.link(outside / "secret.html", sync_root.path / "linked.html")
    (sync_root.path / "plain.html").write_bytes(b"mine")
    linked, plain = read_files(sync_root, ["linked.html", "plain.html"], max_bytes=1 << 20)
    assert linked.data is None and linked.stat == stat_of(os.lstat(sync_root.path / "linked.html"))
    assert linked.error == "has 2 hard links (never read: a hard link can point outside the sync root)"
    assert plain == FileRead("plain.html", b"mine", stat_of(os.lstat(sync_root.path / "plain.html")))


@pytest.mark.parametrize("count", [1, SYNCFS_THRESHOLD + 1], ids=["small", "large"])
def test_a_write_over_a_hard_linked_name_leaves_the_other_link_untouched(
    sync_root: Root, outside: Path, count: int
) -> None:
    secret = outside / "secret.html"
    os.link(secret, sync_root.path / "linked.html")
    expect = stat_of(os.lstat(sync_root.path / "linked.html"))
    writes = [Write("linked.html", b"db text", expect)] + [Write(f"f{i}.html", b"x", ABSENT) for i in range(count - 1)]
    assert all(isinstance(r, Written) for r in write_batch(sync_root, writes))
    assert (sync_root.path / "linked.html").read_bytes() == b"db text"
    assert os.lstat(sync_root.path / "linked.html").st_nlink == 1
    assert secret.read_bytes() == b"outside secret" and os.lstat(secret).st_nlink == 1


def test_missing_names_only_paths_with_nothing_there(sync_root: Root, outside: Path) -> None:
    """What a pass treats as a folder it creates: a symlink, a file or a folder is something."""
    (sync_root.path / "folder").mkdir()
    (sync_root.path / "file").write_bytes(b"x")
    os.symlink(outside, sync_root.path / "linked")
    paths = ["folder", "file", "linked", "linked/secret.html", "gone", "gone/below"]
    assert missing(sync_root, paths) == {"gone", "gone/below"}


def test_removals_and_sweeps_never_follow_symlinks(sync_root: Root, outside: Path) -> None:
    os.symlink(outside, sync_root.path / "linked_dir")
    secret = stat_of(os.lstat(outside / "secret.html"))
    assert remove_files(sync_root, [("linked_dir/secret.html", secret)]) == []
    assert sweep_temps(sync_root) == 0
    assert sorted(os.listdir(outside)) == [".secret.html.0123abcd.tmp", "secret.html"]


# --- temps ----------------------------------------------------------------------------------


def test_temp_names_match_the_temp_pattern_and_stay_short(sync_root: Root) -> None:
    for name in ("footer.html", "a" * 250 + ".html", "é" * 120 + ".html", "new\nline.html", "global.css"):
        temp = sync_root.temp_name(name)
        assert sync_root.is_temp(temp), temp
        assert temp.startswith(".") and len(temp.encode()) <= 255
        assert not sync_root.is_temp(name)


def test_sweep_removes_only_our_temp_pattern(sync_root: Root) -> None:
    ours = [
        ".footer.html.0123abcd.tmp",
        "template_sets/S/g/.x.html.deadbeef.tmp",
        "styles/T/.global.css.00000000.tmp",
        ".mybb-sync-cookie-4242-7",  # the watcher's, left by a kill between its create and its unlink
    ]
    theirs = [
        "footer.html",
        "notes.tmp",
        ".footer.html.tmp",
        ".footer.html.0123ABCD.tmp",
        ".footer.html.0123abc.tmp",
        ".footer.html.0123abcd.tmpx",
        "footer.html.0123abcd.tmp",
        ".footer.html.0123abcd.part",
        ".mybb-sync/.state.0123abcd.tmp",
        "styles/T/global.css~",
        "styles/T/.global.css.swp",
    ]
    for rel in ours + theirs:
        (sync_root.path / rel).parent.mkdir(parents=True, exist_ok=True)
        (sync_root.path / rel).write_bytes(rel.encode())
    (sync_root.path / "styles/T/.dir.0123abcd.tmp").mkdir()  # a folder named like a temp is kept
    assert sweep_temps(sync_root) == len(ours)
    assert sorted(files_under(sync_root.path)) == sorted(theirs)
    assert (sync_root.path / "styles/T/.dir.0123abcd.tmp").is_dir()
    assert sweep_temps(sync_root) == 0


def test_sweep_uses_the_configured_temp_suffix(root: Path) -> None:
    custom = Root(root, temp_suffix=".part")
    (root / ".a.html.0123abcd.part").write_bytes(b"ours")
    (root / ".b.html.0123abcd.tmp").write_bytes(b"not ours with this suffix")
    assert sweep_temps(custom) == 1
    assert sorted(os.listdir(root)) == [".b.html.0123abcd.tmp"]


# --- reading ---------------------------------------------------------------------------------


def test_read_files_returns_exact_bytes_and_the_stat(sync_root: Root) -> None:
    data = content(3, 70_000)
    (sync_root.path / "a").mkdir()
    (sync_root.path / "a/t.html").write_bytes(data)
    (read,) = read_files(sync_root, ["a/t.html"], max_bytes=len(data))
    assert read == FileRead("a/t.html", data, stat_of(os.lstat(sync_root.path / "a/t.html")))


def test_read_files_refuses_a_file_over_the_limit(sync_root: Root) -> None:
    (sync_root.path / "big.html").write_bytes(b"x" * 1001)
    (read,) = read_files(sync_root, ["big.html"], max_bytes=1000)
    assert read.data is None and read.stat is not None and read.stat.size == 1001
    assert "1000" in (read.error or "")


def test_read_files_reports_a_missing_file_as_absent(sync_root: Root) -> None:
    assert read_files(sync_root, ["nope.html", "no/dir.html"], max_bytes=10) == [
        FileRead("nope.html", None, None),
        FileRead("no/dir.html", None, None),
    ]


def test_read_files_refuses_fifos_sockets_and_folders_without_blocking(sync_root: Root) -> None:
    os.mkfifo(sync_root.path / "fifo.html")  # no writer: a blocking open or read would hang forever
    (sync_root.path / "folder.html").mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sync_root.path / "sock.html"))
    paths = ["fifo.html", "folder.html", "sock.html"]
    found: list[list[FileRead]] = []
    reader = threading.Thread(target=lambda: found.append(read_files(sync_root, paths, max_bytes=1000)), daemon=True)
    try:
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive(), "read_files blocked on a non-regular file"
    finally:
        sock.close()
        if reader.is_alive():  # unblock it so the test run can end
            os.close(os.open(sync_root.path / "fifo.html", os.O_WRONLY | os.O_NONBLOCK))
    (reads,) = found
    assert [r.path for r in reads] == paths
    assert all(r.data is None and r.error for r in reads)
    assert stat_files(sync_root, paths) == dict.fromkeys(paths)


def test_a_local_filesystem_with_sub_second_timestamps_gets_the_fine_racy_window(sync_root: Root) -> None:
    """The test's temp folder is local (ext4, tmpfs, xfs...): stats are distrusted for 50 ms, not 2 s."""
    State(sync_root.path).close()  # the probe runs in the state folder
    assert sync_root.racy_ns == FINE_RACY_NS
    assert [p.name for p in sync_root.path.rglob("*") if p.is_file() and "probe" in p.name] == []


def test_without_a_state_folder_the_racy_window_is_the_safe_one(sync_root: Root) -> None:
    assert sync_root.racy_ns == RACY_NS


@pytest.mark.parametrize("count", [1, SYNCFS_THRESHOLD * 20], ids=["small", "large"])
@pytest.mark.parametrize("state_folder", [True, False], ids=["fine-window", "safe-window"])
def test_a_written_files_stat_is_trusted_at_once(sync_root: Root, count: int, state_folder: bool) -> None:
    """Its mtime is set a racy window before its write: the stat recorded at its rename
    proves the file unchanged to the very next look, which need not read it."""
    if state_folder:
        State(sync_root.path).close()
    writes = [Write(f"g{i % 10}/t{i}.html", b"x", None) for i in range(count)]
    results = write_batch(sync_root, writes)
    assert all(isinstance(r, Written) for r in results)
    for r in results:
        assert isinstance(r, Written)
        now = stat_of(os.lstat(sync_root.path / r.path))
        assert proves_unchanged(r.stat, r.seen_ns, now, sync_root.racy_ns)


def test_a_file_rewritten_in_place_right_after_its_write_no_longer_matches_its_stat(sync_root: Root) -> None:
    """The racy case the backdated mtime rules out: same size, same inode, written within the
    same timestamp tick as our rename. Its mtime is now, never the one we recorded."""
    State(sync_root.path).close()
    (result,) = write_batch(sync_root, [Write("t.html", b"from the database", None)])
    assert isinstance(result, Written)
    with open(sync_root.path / "t.html", "r+b") as f:
        f.write(b"FROM")  # same size, in place
    now = stat_of(os.lstat(sync_root.path / "t.html"))
    assert (now.size, now.ino) == (result.stat.size, result.stat.ino) and now.mtime_ns != result.stat.mtime_ns
    assert not proves_unchanged(result.stat, result.seen_ns, now, sync_root.racy_ns)


def test_a_root_that_is_not_backdated_keeps_each_files_write_time(tmp_path: Path) -> None:
    """The forum's cache folder: MyBB serves a cached stylesheet only if its mtime is not
    older than its row's ``lastmodified``."""
    root = Root(tmp_path, backdate=False)
    before = time.time_ns()
    (result,) = write_batch(root, [Write("theme2/global.css", b"body {}", ABSENT)])
    assert isinstance(result, Written)
    assert before - 20_000_000 <= os.lstat(tmp_path / "theme2/global.css").st_mtime_ns <= time.time_ns()
