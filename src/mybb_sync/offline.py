"""The service's operations while no service runs: ``resolve``, ``diff`` and ``status`` offline."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from . import layout
from .config import Settings
from .errors import MybbSyncError
from .files import Root
from .layout import Kind
from .rootlock import RootLock
from .service import Service
from .state import State
from .statedir import state_dir
from .store import open_store


@asynccontextmanager
async def offline_service(settings: Settings, *, dry_run: bool = False) -> AsyncIterator[Service]:
    """A service object without watcher, for one-off operations while no service runs.

    ``dry_run`` (``diff``, ``--dry-run``) takes no lock and, on a root never synced, reads
    an empty state in a scratch folder: nothing is written, not even a state store.
    """
    root = Root(settings.require_root(), settings.temp_suffix)
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="mybb-sync-dry-") as scratch:
            if not root.path.is_dir():  # a root not made yet is an empty one
                root = Root(Path(scratch) / "root", settings.temp_suffix)
                root.path.mkdir()
            fresh = state_dir(root.path, create=False) is None
            async with _service(settings, root, Path(scratch) if fresh else root.path) as service:
                yield service
        return
    lock = RootLock(root.path)  # makes the root if need be
    if not lock.acquire():
        raise MybbSyncError(f"a mybb-sync process holds {root.path} but does not answer on its control socket")
    try:
        async with _service(settings, root, root.path) as service:
            yield service
    finally:
        lock.release()


@asynccontextmanager
async def _service(settings: Settings, root: Root, state_root: Path) -> AsyncIterator[Service]:
    state = State(state_root)
    try:
        async with open_store(settings.require_db(), settings.prefix) as store:
            yield Service(settings, store, root, state)
    finally:
        state.close()


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
