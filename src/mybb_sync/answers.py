"""What a service, running or offline, answers: the control socket's operations, and the
reports the CLI prints the same whichever of the two produced them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread

from .control import Op
from .errors import MybbSyncError
from .files import read_files
from .layout import GLOBAL_DIR, SETS_DIR, STYLES_DIR
from .once import Direction, run_once
from .reconcile import unified_diff
from .selection import Selection
from .service import Service
from .store import Store
from .tree import walk_files

TOP_DIRS = (SETS_DIR, GLOBAL_DIR, STYLES_DIR)


async def answer(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    """Answer one control-socket request of a running service."""
    try:
        op = Op(request["op"])
    except ValueError:
        raise MybbSyncError(f"unknown operation {request['op']!r}") from None
    match op:
        case Op.STATUS:
            return {"ok": True, "status": service.status().as_json()}
        case Op.PAUSE:
            service.pause()
        case Op.RESUME:
            service.resume()
        case Op.RESCAN:
            await service.request(prefixes=[""])
        case Op.RESOLVE:
            message = await service.resolve(str(request.get("path", "")), str(request.get("take", "")))
            return {"ok": True, "message": message}
        case Op.ONCE:
            direction = Direction(str(request.get("direction")))
            selection = Selection.from_json(request.get("selection", {}))
            async with service.writing():
                report = await run_once(
                    service,
                    direction,
                    selection,
                    force=bool(request.get("force")),
                    dry_run=bool(request.get("dry_run")),
                )
            return {"ok": True, "report": report.as_json()}
        case Op.DIFF:
            paths = request.get("paths", [])
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise MybbSyncError("diff: 'paths' must be a list of strings")
            return {"ok": True, "diffs": await differences(service, paths)}
        case Op.OUTDATED:
            return {"ok": True, "outdated": await outdated(service.store)}
    return {"ok": True}


async def differences(service: Service, paths: Sequence[str]) -> list[str]:
    """A unified diff per file that differs from what the database shows (``paths``: these
    files; none: every file synced or on disk that the service's filter admits)."""
    root = service.root
    if not paths:
        tracked = set(service.state.paths())
        on_disk = await anyio.to_thread.run_sync(lambda: [p for top in TOP_DIRS for p in walk_files(root, top)])
        paths = sorted(p for p in tracked | set(on_disk) if service.filter.admits(p))
    entries = await service.entries_for(paths, doubles={})
    reads = await anyio.to_thread.run_sync(read_files, root, [e.path for e in entries], 16 * 1024 * 1024)
    out = []
    for entry, read in zip(entries, reads, strict=True):
        disk = None if read.data is None else read.data.decode("utf-8", "replace")
        if text := unified_diff(entry.path, entry.kind, entry.text, disk):
            out.append(text)
    return out


async def outdated(store: Store) -> list[dict[str, Any]]:
    """Set copies older than their master template (the Admin CP's "Find Updated Templates")."""
    sets = {s.sid: s.title for s in await store.template_sets()}
    rows = await store.outdated_templates()
    return [{"set": sets.get(sid, str(sid)), "title": t, "version": v, "master_version": m} for sid, t, v, m in rows]
