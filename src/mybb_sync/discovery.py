"""Where a command works: the sync root found from the working folder (as git finds
``.git``), and the settings the root was set up with, remembered in its state store so
that later commands need no flags. A password is never remembered: it comes from the
forum's ``inc/config.php``, ``MYBB_SYNC_DB_PASSWORD`` or the TOML file's ``db_password``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import DEFAULT_CONFIG_FILE, Settings, load_settings
from .errors import ConfigError, MybbSyncError
from .layout import STATE_DIR
from .state import State
from .statedir import state_dir

SETUP_KEY = "setup"
log = logging.getLogger(__name__)


def find_root(start: Path) -> Path | None:
    """The nearest folder from ``start`` upwards holding a ``.mybb-sync`` folder (not a symlink)."""
    start = Path(os.path.abspath(start))
    for folder in (start, *start.parents):
        try:
            if stat.S_ISDIR(os.lstat(folder / STATE_DIR).st_mode):
                return folder
        except OSError:
            continue
    return None


def setup_of(settings: Settings) -> dict[str, str]:
    """What a root remembers of the settings it is synced with (no password)."""
    out = {"prefix": settings.prefix, "temp_suffix": settings.temp_suffix}
    if settings.mybb_root is not None:
        out["mybb_root"] = str(Path(os.path.abspath(settings.mybb_root)))
    if settings.db is not None:
        out["db"] = settings.db.url()
    return out


def remember(state: State, settings: Settings) -> None:
    """Record ``settings`` as the root's set-up (blocking); unchanged, nothing is written."""
    value = json.dumps(setup_of(settings), sort_keys=True)
    if state.meta(SETUP_KEY) != value:
        state.set_meta(SETUP_KEY, value)


def recalled(root: Path) -> dict[str, str]:
    """The set-up ``root`` remembers ({} when none), read without writing anything; only from
    a state folder that passes :func:`.statedir.state_dir`'s checks (ours, a real folder)."""
    try:
        directory = state_dir(root, create=False)
        path = directory / "state.sqlite" if directory is not None else None
        if path is None or not path.is_file():
            return {}
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (SETUP_KEY,)).fetchone()
        finally:
            db.close()
        value = json.loads(row[0]) if row else {}
    except (sqlite3.Error, ValueError, OSError, MybbSyncError):
        return {}  # nothing remembered that can be read: the command says what is wrong, if anything
    return (
        {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(value, dict) else {}
    )


def settings_for(
    flags: Mapping[str, Any], config_path: Path | None = None, cwd: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Settings:  # fmt: skip
    """Settings from flags, environment and TOML file, with the root found from ``cwd`` when
    none is given, and what that root remembers under them all."""
    cwd = cwd or Path.cwd()
    settings = load_settings(flags, environ, config_path, cwd)
    root = settings.root or find_root(cwd)
    if root is None:
        return settings
    if config_path is None and not _is_file(cwd / DEFAULT_CONFIG_FILE) and _is_file(root / DEFAULT_CONFIG_FILE):
        config_path = root / DEFAULT_CONFIG_FILE
    remembered = recalled(root)
    if settings.db is not None or settings.mybb_root is not None:  # given: the forum is that one
        remembered = {k: v for k, v in remembered.items() if k not in ("db", "mybb_root", "prefix")}
    elif "mybb_root" in remembered and _is_file(Path(remembered["mybb_root"]) / "inc" / "config.php"):
        remembered.pop("db", None)  # the forum's own config.php says it, password and all
    try:
        return load_settings(flags, environ, config_path, cwd, defaults={**remembered, "root": str(root)})
    except ConfigError as exc:  # what the root remembers is no longer right: commands that need it say so
        log.warning("ignoring the set-up %s remembers: %s", root, exc)
        return load_settings(flags, environ, config_path, cwd, defaults={"root": str(root)})


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file we can see (a folder we may not enter hides it)."""
    try:
        return path.is_file()
    except OSError:
        return False
