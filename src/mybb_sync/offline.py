"""The service's operations while no service runs: ``resolve``, ``diff`` and ``status`` offline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from . import layout
from .config import Settings
from .errors import MybbSyncError
from .files import Root
from .layout import Kind
from .service import Service
from .state import RootLock, State
from .statedir import state_dir
from .store import open_store


@asynccontextmanager
async def offline_service(settings: Settings, *, read_only: bool = False) -> AsyncIterator[Service]:
    """A service object without watcher, for one-off operations while no service runs.

    ``read_only`` (for ``diff``) skips the root lock: nothing will be written.
    """
    root = Root(settings.require_root(), settings.temp_suffix)
    lock = RootLock(root.path)
    if not read_only and not lock.acquire():
        raise MybbSyncError(f"a mybb-sync process holds {root.path} but does not answer on its control socket")
    try:
        state = State(root.path)
        try:
            async with open_store(settings.require_db(), settings.prefix) as store:
                yield Service(settings, store, root, state)
        finally:
            state.close()
    finally:
        lock.release()


def offline_status(root: Path) -> dict[str, Any]:
    """Counts from the state store alone (works with no service and no database)."""
    directory = state_dir(root, create=False)
    if directory is None or not (directory / "state.sqlite").exists():
        raise MybbSyncError(f"{root} has never been synced (no {layout.STATE_DIR}/state.sqlite)")
    state = State(root)
    try:
        rows = list(state.all())
        problems = state.problems()
    finally:
        state.close()
    kinds = [p.kind.value for p in problems]
    return {
        "root": str(root),
        "tracked": len(rows),
        "set_copies": sum(1 for r in rows if r.kind is Kind.TEMPLATE and r.owner > 0 and r.row_owner == r.owner),
        "conflicts": kinds.count("conflict"),
        "invalid": kinds.count("invalid"),
        "missing": kinds.count("missing"),
        "ignored": kinds.count("ignored"),
        "problems": [{"path": p.path, "kind": p.kind.value, "detail": p.detail, "since": p.since} for p in problems],
    }
