"""Import: validated file content into the database, with the Admin CP's semantics.

Decisions to import arrive in batches from the reconciler; they are grouped
per template set (one round trip per group: one ``UPDATE ... CASE`` for the
set's existing copies, one multi-row ``INSERT`` for new copies) and the rows
read back become the new base. Content that failed validation never gets
here: the reconciler reports it instead.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import anyio.to_thread

from .atomic import ABSENT, Write, Written, write_batch
from .engine import Decision, Row, agreed_state
from .errors import DatabaseUnavailable, MybbSyncError
from .files import Root
from .layout import GLOBAL_SID, Kind
from .reconcile import content_hash
from .security import check_template
from .state import FileState
from .store import MASTER_THEME_TID, MAX_TITLE_CHARS, Column, Seen, Store, TemplateRow, seen
from .stylesheets import (
    CacheFile,
    Stylesheet,
    Theme,
    effective_stylesheets,
    plan_add_stylesheet,
    plan_edit_stylesheet,
    rebuild_theme_lists,
)

log = logging.getLogger(__name__)
REFUSED_BY_DATABASE = "the database refused the write"


class RefusalKind(Enum):
    """Why a file was not imported, by kind: what to fix is different for each."""

    CONTENT = "content"  # empty, not UTF-8, a NUL, too long, unreadable
    SECURITY = "security"  # MyBB's check_template() refuses it
    NAME = "name"  # a title MyBB cannot hold
    CHARSET = "charset"  # the database's charset cannot hold the name or text
    THEME = "theme"  # the theme refuses the change (the master style, a theme gone)
    SETUP = "setup"  # this service cannot do the save (no --mybb-root)
    DATABASE = "database"  # the database refused the write


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: RefusalKind
    why: str  # one line for people

    def __str__(self) -> str:
        return self.why


@dataclass(frozen=True, slots=True)
class Imported:
    states: list[FileState]
    refused: list[tuple[Decision, Refusal]]  # content MyBB cannot hold, or a write refused
    recheck: list[str]  # paths whose row changed again right after our write
    errors: list[str] = field(default_factory=list)  # writes the database refused (also in refused)
    stored: list[TemplateRow] = field(default_factory=list)  # template rows holding exactly what was written


def refusal(store: Store, decision: Decision) -> Refusal | None:
    """Why a file may not be imported, or None. Checks MyBB's limits on names, its security
    check on templates, and what the database's charset can hold, too."""
    if decision.invalid is not None:
        return Refusal(RefusalKind.CONTENT, decision.invalid)
    if decision.disk_text is None:
        return Refusal(RefusalKind.CONTENT, "could not be read")
    entry = decision.entry
    if entry.kind is Kind.TEMPLATE and len(entry.name) > MAX_TITLE_CHARS:
        return Refusal(
            RefusalKind.NAME, f"template title is {len(entry.name)} characters (MyBB allows {MAX_TITLE_CHARS})"
        )
    if entry.kind is Kind.TEMPLATE and (unsafe := check_template(decision.disk_text)) is not None:
        return Refusal(RefusalKind.SECURITY, str(unsafe))
    name_column, text_column = Column.of(entry.kind)
    if (why := store.refusal(entry.name, name_column)) is not None:
        return Refusal(RefusalKind.CHARSET, f"name {why}")
    if (why := store.refusal(decision.disk_text, text_column)) is not None:
        return Refusal(RefusalKind.CHARSET, why)
    return None


def import_refusal(store: Store, can_write_cache: bool, decision: Decision) -> Refusal | None:
    """Why an import of ``decision`` would be refused before anything is written, or None:
    :func:`refusal`, and for stylesheets what a save needs besides (what a dry run says)."""
    why = refusal(store, decision)
    if why is not None or decision.entry.kind is not Kind.STYLESHEET:
        return why
    if not can_write_cache:
        return Refusal(
            RefusalKind.SETUP, "stylesheet imports need --mybb-root (the forum would keep serving its old cache file)"
        )
    if decision.entry.owner == MASTER_THEME_TID:
        return Refusal(RefusalKind.THEME, "theme 1 (MyBB Master Style) is read-only, as in the Admin CP")
    return None


async def import_templates(store: Store, decisions: Sequence[Decision]) -> Imported:
    """Save every template decision; sid -1 titles with no row become new global templates."""
    refused: list[tuple[Decision, Refusal]] = []
    groups: dict[int, list[Decision]] = defaultdict(list)
    for d in decisions:
        why = refusal(store, d)
        if why is not None:
            refused.append((d, why))
        else:
            groups[d.entry.owner].append(d)
    states: list[FileState] = []
    recheck: list[str] = []
    stored: list[TemplateRow] = []
    now = int(time.time())
    for sid, group in groups.items():
        started = time.perf_counter()
        try:
            rows = await _save(store, sid, group, now)
        except DatabaseUnavailable:
            raise
        except MybbSyncError:
            # The database refused the batch (a trigger, permissions, a crashed table):
            # one by one, so that only the files it refuses are held back.
            rows, group = await _save_each(store, sid, group, now, refused)
        elapsed_ms = (time.perf_counter() - started) * 1000
        for d in group:
            row = rows.get(d.entry.name)  # a row holding exactly what was written, or None
            assert d.disk_hash is not None
            if row is None:
                # Not written (the row changed after the decision), or another writer's text
                # replaced ours at once: the base stays, so the next look sees both sides
                # changed and reports a conflict rather than overwriting the file.
                recheck.append(d.entry.path)
                continue
            states.append(agreed_state(d.entry, d.disk_hash, d.disk_stat, d.seen_ns, row))
            stored.append(row)
            size, ms = len(row.template.encode("utf-8")), elapsed_ms / len(group)
            log.info(
                "imported %s -> %s %r (%d bytes, %.1f ms)",
                d.entry.path, "global" if sid == GLOBAL_SID else f"set {sid}", d.entry.name, size, ms,
                extra={"event": "imported", "path": d.entry.path, "set": sid, "title": d.entry.name, "bytes": size, "ms": round(ms, 2)},
            )  # fmt: skip
            _note_bom(d)
    return Imported(states, refused, recheck, _database_errors(refused), stored)


def _note_bom(d: Decision) -> None:
    """MyBB stores and serves a byte-order mark as it is: imported, but said."""
    if d.disk_text is not None and d.disk_text.startswith("\ufeff"):
        log.warning(
            "%s starts with a UTF-8 byte-order mark: imported with it (MyBB serves it as is; save without BOM to drop it)",
            d.entry.path,
        )


def _still_shown(row: Row | None, themes: Sequence[Theme], sheets: Sequence[Stylesheet], tid: int, name: str) -> bool:
    """Whether the theme still shows the stylesheet a decision saw (None: none), unchanged:
    not edited, and not overridden since by a copy in the theme or a nearer parent."""
    return effective_stylesheets(themes, sheets, tid).get(name) == row


def _database_errors(refused: list[tuple[Decision, Refusal]]) -> list[str]:
    return [f"{d.entry.path}: {r}" for d, r in refused if r.kind is RefusalKind.DATABASE]


async def _save(store: Store, sid: int, group: Sequence[Decision], now: int) -> dict[str, TemplateRow]:
    """Write the group; a title whose own row changed since its decision is left alone."""
    texts = [(d.entry.name, d.disk_text or "") for d in group]
    expect = {d.entry.name: _seen(d.entry.row, sid) for d in group}
    if sid == GLOBAL_SID:
        return await store.add_global_templates(texts, now, expect=expect)
    return await store.save_templates(sid, texts, now, expect=expect)


def _seen(row: Row | None, sid: int) -> Seen | None:
    """The set's own copy a decision was made on (an inherited master is no copy)."""
    if isinstance(row, TemplateRow) and row.sid == sid:
        return seen(row)
    return None


async def _save_each(
    store: Store, sid: int, group: Sequence[Decision], now: int, refused: list[tuple[Decision, Refusal]]
) -> tuple[dict[str, TemplateRow], list[Decision]]:
    rows: dict[str, TemplateRow] = {}
    saved: list[Decision] = []
    for d in group:
        try:
            rows.update(await _save(store, sid, [d], now))
            saved.append(d)
        except DatabaseUnavailable:
            raise
        except MybbSyncError as exc:
            refused.append((d, Refusal(RefusalKind.DATABASE, f"{REFUSED_BY_DATABASE}: {exc}")))
    return rows, saved


class ForumCache:
    """``<forum root>/cache/themes``: where MyBB serves stylesheets from."""

    def __init__(self, mybb_root: Path) -> None:
        self.root = Root(mybb_root / "cache" / "themes", backdate=False)  # MyBB compares their mtimes

    def mtime(self, tid: int, name: str) -> int | None:
        try:
            st = os.stat(self.root.path / f"theme{tid}" / name, follow_symlinks=False)
        except OSError:
            return None
        return int(st.st_mtime)

    def write(self, files: Sequence[CacheFile]) -> list[str]:
        """Write the cache files atomically (and a new folder's empty index.html); returns failures."""
        tids = {f.tid for f in files}
        writes = [Write(f.path, f.content, None) for f in files]
        writes += [
            Write(f"theme{t}/index.html", b"", ABSENT) for t in tids if not (self.root.path / f"theme{t}").is_dir()
        ]
        results = write_batch(self.root, writes)
        return [
            f"{r.path}: {r.reason}" for r in results if not isinstance(r, Written) and not r.path.endswith("index.html")
        ]


async def import_stylesheets(store: Store, cache: ForumCache | None, decisions: Sequence[Decision]) -> Imported:
    """Save each stylesheet as the Admin CP does: rows, cache files, theme lists, default_theme."""
    states: list[FileState] = []
    refused: list[tuple[Decision, Refusal]] = []
    recheck: list[str] = []
    for d in decisions:
        why = import_refusal(store, cache is not None, d)
        if why is not None:
            refused.append((d, why))
            continue
        assert cache is not None and d.disk_text is not None and d.disk_hash is not None
        started = time.perf_counter()
        themes, sheets = await store.themes(), await store.stylesheets()
        next_sid, now = await store.next_stylesheet_sid(), int(time.time())
        tid, name = d.entry.owner, d.entry.name
        if not _still_shown(d.entry.row, themes, sheets, tid, name):
            recheck.append(d.entry.path)  # decided on a row that changed since: look again
            continue
        try:
            if d.entry.row is None:
                plan = plan_add_stylesheet(
                    themes, sheets, tid, name, d.disk_text, now, next_sid, cache_file_mtime=cache.mtime
                )
            else:
                plan = plan_edit_stylesheet(themes, sheets, tid, name, d.disk_text, now, next_sid, cache.mtime)
        except ValueError as exc:
            refused.append((d, Refusal(RefusalKind.THEME, str(exc))))
            continue
        try:
            await store.save_stylesheet_rows(plan.inserts, plan.updates)
        except DatabaseUnavailable:
            raise
        except MybbSyncError as exc:
            refused.append((d, Refusal(RefusalKind.DATABASE, f"{REFUSED_BY_DATABASE}: {exc}")))
            continue
        sid = plan.inserts[0].sid if plan.inserts else plan.updates[0].sid
        failures = await anyio.to_thread.run_sync(cache.write, plan.cache_files)
        theme_updates, default_theme = plan.themes, plan.default_theme
        if failures:
            # MyBB's fallback: serve the sheet through css.php, and list it so.
            log.error("cannot write the forum's cache file (%s); theme %d serves it via css.php", failures[0], tid)
            await store.set_stylesheet_cachefile(sid, f"css.php?stylesheet={sid}")
            theme_updates, default_theme = rebuild_theme_lists(
                await store.themes(), await store.stylesheets(), tid, cache.mtime
            )
        await store.save_theme_lists(theme_updates, default_theme)
        row = next((r for r in await store.stylesheets() if r.sid == sid), None)
        states.append(agreed_state(d.entry, d.disk_hash, d.disk_stat, d.seen_ns, row))
        if row is None or content_hash(Kind.STYLESHEET, row.stylesheet) != d.disk_hash:
            recheck.append(d.entry.path)
        size, ms = len(d.disk_text.encode("utf-8")), (time.perf_counter() - started) * 1000
        log.info(
            "imported %s -> theme %d %r (%d bytes, %.1f ms)", d.entry.path, tid, name, size, ms,
            extra={"event": "imported", "path": d.entry.path, "theme": tid, "title": name, "bytes": size, "ms": round(ms, 2)},
        )  # fmt: skip
        _note_bom(d)
    return Imported(states, refused, recheck, _database_errors(refused))
