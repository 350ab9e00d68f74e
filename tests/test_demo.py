"""The demo: a board made once, and hints a newcomer can paste as printed."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from mybb_sync.demo import prepare_demo

pytestmark = pytest.mark.anyio


async def test_the_demo_makes_its_board_once_and_points_the_service_at_it(tmp_path: Path) -> None:
    settings, _ = await prepare_demo(tmp_path / "demo")
    database = tmp_path / "demo" / "forum.sqlite"
    assert settings.db is not None and settings.db.path == database
    assert settings.root == tmp_path / "demo" / "root" and settings.mybb_root == tmp_path / "demo" / "forum"
    with sqlite3.connect(database) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM mybb_templates WHERE sid = -2").fetchone()
    assert count == 974
    before = database.stat().st_mtime_ns
    await prepare_demo(tmp_path / "demo")  # a second run reuses it
    assert database.stat().st_mtime_ns == before


async def test_the_hints_work_without_editor_or_mybb_sync_on_path(tmp_path: Path) -> None:
    _, hints = await prepare_demo(tmp_path / "demo")
    assert "${EDITOR:-vi} " in hints  # with EDITOR unset, "$EDITOR file" would run the file
    assert "ORDER BY sid" in hints and "sid, title" in hints  # two rows after an edit: say which is which
    if shutil.which("mybb-sync") is None:
        assert " -m mybb_sync status --root " in hints
