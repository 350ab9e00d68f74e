"""The batch system calls of a write (``mybb_sync._writes``), called directly on real folders."""

from __future__ import annotations

import errno
import os
import resource
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mybb_sync import _writes


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path = tmp_path / "d"
    path.mkdir()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield path, fd
    finally:
        os.close(fd)


def test_create_temps_writes_every_byte_and_reports_each_temps_stat(folder: tuple[Path, int]) -> None:
    path, fd = folder
    datas = [b"a" * 70_000, b"", "\u00e9\n".encode()]
    result = _writes.create_temps([fd] * 3, ["t0", "t1", "t2"], datas, [0o640] * 3, [-1] * 3, False, 0)
    for i, data in enumerate(datas):
        st = os.stat(path / f"t{i}")
        assert (path / f"t{i}").read_bytes() == data
        assert result[i] == (st.st_size, st.st_mtime_ns, st.st_ino)
        assert stat.S_IMODE(st.st_mode) == 0o640


def test_create_temps_sets_each_mtime_the_given_time_before_its_write(folder: tuple[Path, int]) -> None:
    path, fd = folder
    before = time.time_ns()
    [result] = _writes.create_temps([fd], ["t"], [b"x"], [0o644], [-1], False, 3_000_000_000)
    after = time.time_ns()
    mtime = os.stat(path / "t").st_mtime_ns
    assert before - 3_000_000_000 <= mtime <= after - 3_000_000_000
    assert result == (1, mtime, os.stat(path / "t").st_ino)


def test_create_temps_gives_the_mode_the_umask_would_take_bits_from(folder: tuple[Path, int]) -> None:
    path, fd = folder
    old = os.umask(0o077)
    try:
        _writes.create_temps([fd], ["t"], [b"x"], [0o664], [-1], True, 0)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path / "t").st_mode) == 0o664


def test_create_temps_gives_a_group_of_our_own(folder: tuple[Path, int]) -> None:
    path, fd = folder
    gid = os.getgroups()[-1] if os.getgroups() else os.getgid()
    _writes.create_temps([fd], ["t"], [b"x"], [0o600], [gid], False, 0)
    st = os.stat(path / "t")
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (gid, 0o600)


def test_create_temps_never_opens_an_existing_name_and_leaves_it_as_it_was(folder: tuple[Path, int]) -> None:
    path, fd = folder
    (path / "taken").write_bytes(b"someone else's")
    os.symlink(path / "taken", path / "link")
    result = _writes.create_temps(
        [fd, fd, fd], ["taken", "link", "ok"], [b"1", b"2", b"3"], [0o644] * 3, [-1] * 3, False, 0
    )
    assert result[:2] == [errno.EEXIST, errno.EEXIST]
    assert (path / "taken").read_bytes() == b"someone else's"
    assert os.readlink(path / "link") == str(path / "taken")
    assert (path / "ok").read_bytes() == b"3"


def test_create_temps_removes_a_temp_it_could_not_finish(tmp_path: Path) -> None:
    """A file over the process's size limit fails in ``write``: the partial temp is removed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    script = (
        "import os, resource, signal, sys\n"
        "from mybb_sync import _writes\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
        "print(_writes.create_temps([fd, fd], ['big', 'small'], [b'x' * 10000, b'y'], [0o644] * 2, [-1] * 2, False, 0))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(f"[{errno.EFBIG}, (1, ")
    assert sorted(os.listdir(tmp_path)) == ["small"]
    assert (soft, hard) == resource.getrlimit(resource.RLIMIT_FSIZE)  # the limit was the child's only


def test_create_temps_runs_without_the_interpreter_lock(folder: tuple[Path, int]) -> None:
    """Python code in another thread keeps running while a large batch is written."""
    path, fd = folder
    n = 3000
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        started = time.perf_counter()
        before = ticks
        _writes.create_temps([fd] * n, [f"t{i}" for i in range(n)], [b"x" * 100] * n, [0o644] * n, [-1] * n, False, 0)
        during = ticks - before
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        counter.join()
    assert len(os.listdir(path)) == n
    assert during > 1000, f"the counting thread ran {during} times in {elapsed:.3f} s"


def test_rename_new_renames_only_where_nothing_is(folder: tuple[Path, int]) -> None:
    path, fd = folder
    for name in ("t1", "t2", "taken"):
        (path / name).write_bytes(name.encode())
    before = time.time_ns()
    result = _writes.rename_new([fd, fd], ["t1", "t2"], ["new", "taken"])
    assert before <= result[0] <= time.time_ns()
    assert result[1] == -errno.EEXIST
    assert (path / "new").read_bytes() == b"t1"
    assert (path / "taken").read_bytes() == b"taken" and (path / "t2").read_bytes() == b"t2"


def test_rename_new_does_not_follow_a_symlink_at_the_target(folder: tuple[Path, int], tmp_path: Path) -> None:
    path, fd = folder
    (path / "t").write_bytes(b"temp")
    os.symlink(tmp_path / "elsewhere", path / "target")
    assert _writes.rename_new([fd], ["t"], ["target"]) == [-errno.EEXIST]
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    "call",
    [
        lambda fd: _writes.create_temps([fd], ["a", "b"], [b"x"], [0o644], [-1], False, 0),
        lambda fd: _writes.create_temps([fd], ["a"], ["text, not bytes"], [0o644], [-1], False, 0),  # type: ignore[list-item]
        lambda fd: _writes.create_temps([fd], ["a\0b"], [b"x"], [0o644], [-1], False, 0),
        lambda fd: _writes.rename_new([fd], ["a"], []),
    ],
    ids=["lengths", "text", "nul", "rename-lengths"],
)
def test_bad_arguments_raise_and_create_nothing(folder: tuple[Path, int], call: object) -> None:
    path, fd = folder
    with pytest.raises((TypeError, ValueError)):
        call(fd)  # type: ignore[operator]
    assert os.listdir(path) == []
