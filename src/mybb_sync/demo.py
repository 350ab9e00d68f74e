"""``mybb-sync demo``: a synthetic board on SQLite and a sync root, to try mybb-sync with nothing installed."""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
from pathlib import Path

from .config import Settings, load_settings
from .synthetic import Board, create_sqlite_board

log = logging.getLogger(__name__)

DEMO_CONFIG_PHP = """<?php
/**
 * Database configuration (written by mybb-sync demo, as MyBB's installer would)
 */

$config['database']['type'] = 'sqlite';
$config['database']['database'] = '{database}';
$config['database']['table_prefix'] = 'mybb_';

$config['database']['hostname'] = 'localhost';
$config['database']['username'] = '';
$config['database']['password'] = '';
"""


async def prepare_demo(base: Path) -> tuple[Settings, str]:
    """Make the board (once) and say what to try; returns the service's settings and the hints."""
    base = base.resolve()
    forum, database, root = base / "forum", base / "forum.sqlite", base / "root"
    if not database.exists():
        base.mkdir(parents=True, exist_ok=True)
        await create_sqlite_board(database, Board(masters=974))
        (forum / "inc").mkdir(parents=True, exist_ok=True)
        (forum / "cache" / "themes").mkdir(parents=True, exist_ok=True)
        (forum / "inc" / "config.php").write_text(DEMO_CONFIG_PHP.format(database=str(database).replace("'", "\\'")))
        log.info("created a synthetic board in %s", database)
    settings = load_settings({"root": str(root), "mybb_root": str(forum)}, environ={}, cwd=base)
    example = root / "template_sets" / "Default Templates" / "index" / "index_thead10.html"
    # The command as it can be typed here: a venv's mybb-sync is often not on PATH.
    command = "mybb-sync" if shutil.which("mybb-sync") else f"{shlex.quote(sys.executable)} -m mybb_sync"
    query = "SELECT sid, title, dateline FROM mybb_templates WHERE title = 'index_thead10' ORDER BY sid"
    hints = f"""mybb-sync demo: a MyBB board on SQLite ({database}), synced with {root}

Try, in another terminal:
  ${{EDITOR:-vi}} {shlex.quote(str(example))}   # save it: set 1 gets its own copy (sid 1) at once
  sqlite3 {shlex.quote(str(database))} "{query}"   # the master (sid -2) and the set's copy
  {command} status --root {shlex.quote(str(root))}
  {command} diff --root {shlex.quote(str(root))} --mybb-root {shlex.quote(str(forum))}

Press Ctrl-C to stop.
"""
    return settings, hints
