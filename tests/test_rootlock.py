"""Specification of ``rootlock``: one writer per sync root, whoever and however it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mybb_sync.layout import STATE_DIR
from mybb_sync.rootlock import RootLock

HOLDER = """
import sys, time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mybb_sync.rootlock import RootLock
lock = RootLock(Path(sys.argv[1]))
print("locked" if lock.acquire() else "refused", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the root lock of ``tmp_path`` until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_lock_is_acquired_on_a_free_root(tmp_path: Path) -> None:
    lock = RootLock(tmp_path)
    try:
        assert lock.acquire()
        assert not (tmp_path / STATE_DIR).exists()  # the lock is on the root folder itself
    finally:
        lock.release()


def test_a_second_lock_in_the_same_process_is_refused(tmp_path: Path) -> None:
    first, second = RootLock(tmp_path), RootLock(tmp_path)
    try:
        assert first.acquire()
        assert not second.acquire()
    finally:
        first.release()
        second.release()


def test_the_lock_can_be_taken_again_after_release(tmp_path: Path) -> None:
    first, second = RootLock(tmp_path), RootLock(tmp_path)
    assert first.acquire()
    first.release()
    try:
        assert second.acquire()
    finally:
        second.release()


def test_releasing_a_lock_that_is_not_held_is_harmless(tmp_path: Path) -> None:
    lock = RootLock(tmp_path)
    lock.release()
    assert lock.acquire()
    lock.release()
    lock.release()


def test_a_lock_held_by_another_process_is_refused(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    lock = RootLock(tmp_path)
    try:
        assert not lock.acquire()
    finally:
        lock.release()


def test_the_lock_is_freed_when_its_holder_is_killed(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    lock = RootLock(tmp_path)
    try:
        assert lock.acquire()
    finally:
        lock.release()


def test_another_process_is_refused_while_this_one_holds_the_lock(tmp_path: Path) -> None:
    lock = RootLock(tmp_path)
    assert lock.acquire()
    try:
        out = subprocess.run([sys.executable, "-c", HOLDER.replace("time.sleep(120)", ""), str(tmp_path)],
                             capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        assert out.stdout.strip() == "refused"
    finally:
        lock.release()


def test_a_child_process_does_not_inherit_the_lock(tmp_path: Path) -> None:
    lock = RootLock(tmp_path)
    assert lock.acquire()
    sleeper = "import time; print('started', flush=True); time.sleep(120)"
    child = subprocess.Popen([sys.executable, "-c", sleeper], close_fds=False, stdout=subprocess.PIPE, text=True)
    try:
        # Wait until the child runs Python: close-on-exec fds are released during exec.
        assert child.stdout is not None and child.stdout.readline().strip() == "started"
        lock.release()
        again = RootLock(tmp_path)
        try:
            assert again.acquire()
        finally:
            again.release()
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
