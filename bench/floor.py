"""(f) the floor: what a durable first export cannot do without, and nothing else.

The rows come through the same store as every other pattern's, each template
and stylesheet gets the two facts its state must keep (the content hash and
the row digest), and the files are written with the exporter's durability by
the same C writer (temps written and backdated, one ``syncfs``, renamed
without replacing, one more ``syncfs``), one writer thread at a time,
pipelined with the fetch as the exporter pipelines it; the states are
recorded through ``State.put``.

Left out is everything that decides or checks: the state, intents and disk
looked up per file, the sync rule, the walk of each set's folder, the
reports, and what the writer checks per file in Python (folders gone, modes,
groups, targets that appeared meanwhile). An export at the floor is as fast as
a durable export of this design can be on the machine: the floor's own ratio
to (b) says how much room a bar leaves at all.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from mybb_sync._writes import create_temps, rename_new
from mybb_sync.atomic import BACKDATE_MARGIN_NS, _flush
from mybb_sync.catalog import Catalog
from mybb_sync.engine import Entry, agreed_state
from mybb_sync.entries import set_entries, stylesheet_entries
from mybb_sync.files import Dirs, Root, split_path
from mybb_sync.modes import FILE_MODE
from mybb_sync.parallel import in_parallel
from mybb_sync.reconcile import content_hash
from mybb_sync.report import ExportReport
from mybb_sync.scope import Scope
from mybb_sync.state import FileStat, FileState, State
from mybb_sync.store import Store

IN_FLIGHT = 3  # batches at once, as the exporter's
Item = tuple[str, bytes, Entry | None]  # a file: its path, its bytes, the entry whose state it gets


async def floor_export(store: Store, catalog: Catalog, scope: Scope, path: Path, extra: Sequence[Item]) -> int:
    """Write every template and stylesheet of ``scope``, then ``extra``, into the empty root
    ``path``; returns the number of files written."""
    root, state = Root(path), State(path)
    dirs = Dirs(root, create=True)
    writer = anyio.CapacityLimiter(1)
    written = 0

    def items(batch: Sequence[Entry]) -> list[Item]:
        return [(e.path, (e.text or "").encode("utf-8"), e) for e in batch]

    async def batches() -> AsyncIterator[list[Item]]:
        for sid in scope.sets:
            async for batch, _ in set_entries(store, catalog, sid, ExportReport()):
                yield items(batch)
        yield items(await stylesheet_entries(store, catalog, scope.themes, ExportReport())) + list(extra)

    def stage(batch: list[Item]) -> tuple[list[int], list[str], list[str], list[int | tuple[int, int, int]]]:
        first = secrets.randbits(32)
        fds, temps, names = [], [], []
        for i, (rel, _, _) in enumerate(batch):
            folder, name = split_path(rel)
            fds.append(dirs.fd(folder))
            temps.append(root.temp_name(name, first + i))
            names.append(name)
        count, backdate = len(batch), root.racy_ns + BACKDATE_MARGIN_NS
        made = create_temps(
            fds, temps, [data for _, data, _ in batch], [FILE_MODE] * count, [-1] * count, False, backdate
        )
        return fds, temps, names, made

    async def handle(batch: list[Item]) -> None:
        nonlocal written
        fds, temps, names, made = await anyio.to_thread.run_sync(stage, batch, limiter=writer)
        await anyio.to_thread.run_sync(_flush, root)
        seen = await anyio.to_thread.run_sync(rename_new, fds, temps, names, limiter=writer)
        await anyio.to_thread.run_sync(_flush, root)
        stats = [FileStat(*st) for st in made if isinstance(st, tuple)]
        if len(stats) != len(batch) or min(seen, default=1) <= 0:
            raise OSError(f"the floor could not write a file of {[rel for rel, _, _ in batch[:3]]} ...")
        states: list[FileState] = [
            agreed_state(e, content_hash(e.kind, e.text or ""), st, ns)
            for (_, _, e), st, ns in zip(batch, stats, seen, strict=True)
            if e is not None
        ]
        await anyio.to_thread.run_sync(state.put, states)
        written += len(batch)

    try:
        await in_parallel(batches(), handle, workers=IN_FLIGHT, ready=0)
    finally:
        dirs.close()
        state.close()
    return written
