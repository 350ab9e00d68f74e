"""What a pass decides on: the entries of a scope, each file with the row it shows.

Rows stream from the database in batches; each becomes an :class:`.engine.Entry`
at the path the catalog gives it (or where the set's folder already holds its
file). Shared by the exporter's passes and the one-shot commands' plans.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence

import anyio
import anyio.to_thread

from .catalog import Catalog
from .engine import Entry
from .errors import UnsafeName
from .files import Root
from .layout import GLOBAL_SID, Kind
from .report import ExportReport
from .scope import Scope, scope_folders, scope_label
from .selection import Filter
from .store import Store
from .stylesheets import effective_stylesheets
from .tree import template_files

log = logging.getLogger(__name__)

# Files a batch holds at most (two syncfs and one state transaction each). The exporter
# has three in flight and one being read: 3,000 rows in memory, as before with six of 500
# (two were made in advance). Batches of 2,000 were faster still, but held 12,000 rows.
BATCH = 750
FIRST_BATCH = 250  # a set's first batch: writing starts without waiting for a whole batch's rows


Batch = tuple[list[Entry], frozenset[str]]  # entries, and the paths of theirs a walk found no file at


async def set_entries(
    store: Store,
    catalog: Catalog,
    sid: int,
    report: ExportReport,
    size: int = BATCH,
    located: Mapping[str, list[str]] | None = None,
) -> AsyncIterator[Batch]:
    """Every template set ``sid`` shows, with its row, in batches of ``size`` (rows streamed from the database).

    ``located`` (:func:`.tree.template_files`) is where the set's files are: a file in
    another group folder than ours is the template's file, where it is; a title with
    two files gets no entry here (each file is then met as a file with no row, where
    the two are one conflict). With ``located``, each batch comes with the paths the
    walk found no file at (without it, with none).
    """
    async for rows in store.set_templates(sid, size, min(FIRST_BATCH, size)):
        report.rows_read += len(rows)
        batch = []
        absent = set()
        for row in rows:
            try:
                path = catalog.template_path(sid, row.title)
            except UnsafeName as exc:
                report.skipped.append(f"template {row.title!r} of {scope_label(catalog, Kind.TEMPLATE, sid)}: {exc}")
                log.warning("skipped template %r: %s", row.title, exc)
                continue
            if located is not None and sid != GLOBAL_SID:
                found = located.get(path.rsplit("/", 1)[1])
                if found is None:
                    absent.add(path)
                elif len(found) > 1:
                    continue
                else:
                    path = found[0]
            batch.append(Entry(path, Kind.TEMPLATE, sid, row.title, row))
        yield batch, frozenset(absent)


async def located_entries(
    store: Store,
    root: Root,
    catalog: Catalog,
    sid: int,
    report: ExportReport,
    size: int = BATCH,
    limiter: anyio.CapacityLimiter | None = None,
) -> AsyncIterator[Batch]:
    """:func:`set_entries` with the set's folder walked first (the global templates have none)."""
    located = None
    if sid != GLOBAL_SID:
        [folder] = scope_folders(catalog, Scope((sid,), ()))
        located = await anyio.to_thread.run_sync(template_files, root, folder, limiter=limiter)
    async for batch in set_entries(store, catalog, sid, report, size, located):
        yield batch


async def stylesheet_entries(store: Store, catalog: Catalog, tids: Sequence[int], report: ExportReport) -> list[Entry]:
    """Every stylesheet the themes show, as one batch: importing stylesheets rebuilds the lists
    of a theme and its children, so two stylesheet batches must never be handled at the same time."""
    themes, sheets = list(catalog.themes.values()), await store.stylesheets()
    batch = []
    for tid in tids:
        for name, row in sorted(effective_stylesheets(themes, sheets, tid).items()):
            try:
                path = catalog.stylesheet_path(tid, name)
            except UnsafeName as exc:
                report.skipped.append(f"stylesheet {name!r} of theme {catalog.themes[tid].name!r}: {exc}")
                log.warning("skipped stylesheet %r: %s", name, exc)
                continue
            batch.append(Entry(path, Kind.STYLESHEET, tid, name, row))
    return batch


def admitted(flt: Filter, batch: list[Entry]) -> list[Entry]:
    """The entries of ``batch`` that ``flt`` admits."""
    return batch if flt.admits_all else [e for e in batch if flt.admits(e.path)]
