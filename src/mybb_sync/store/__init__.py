"""One async interface over a MyBB forum's database (``../shared/MYBB.md``).

The rows are plain frozen dataclasses; :func:`open_store` picks the backend
from the configured database URL.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import anyio

from ..config import Database
from ..errors import DatabaseUnavailable
from ..layout import MASTER_SID, Kind
from ..rows import Stylesheet, StylesheetUpdate, Theme, ThemeUpdate

log = logging.getLogger(__name__)
CONNECT_RETRY_MIN, CONNECT_RETRY_MAX = 0.5, 30.0  # seconds between connection attempts at start

MAX_TEMPLATE_BYTES = 65_535  # templates.template is TEXT
MAX_TITLE_CHARS = 120
MAX_STYLESHEET_NAME_CHARS = 30
MASTER_THEME_TID = 1  # "MyBB Master Style": the Admin CP refuses to edit it


class Column(Enum):
    """A text column mybb-sync writes: (table, column). On MySQL each may have a charset of its
    own (MyBB's Admin CP converts tables one at a time)."""

    TEMPLATE_TITLE = ("templates", "title")
    TEMPLATE_TEXT = ("templates", "template")
    STYLESHEET_NAME = ("themestylesheets", "name")
    STYLESHEET_TEXT = ("themestylesheets", "stylesheet")

    @staticmethod
    def of(kind: Kind) -> tuple[Column, Column]:
        """The (name, text) columns of a kind of file."""
        if kind is Kind.TEMPLATE:
            return Column.TEMPLATE_TITLE, Column.TEMPLATE_TEXT
        return Column.STYLESHEET_NAME, Column.STYLESHEET_TEXT


@dataclass(frozen=True, slots=True)
class TemplateSet:
    sid: int
    title: str


@dataclass(frozen=True, slots=True)
class TemplateRow:
    tid: int
    sid: int
    title: str
    template: str
    version: str
    status: str
    dateline: int

    @property
    def is_master(self) -> bool:
        return self.sid == MASTER_SID


Seen = tuple[int, int, str]
"""(tid, dateline, MD5 of the text) of the set's own copy of a title, as a caller saw it (None: no copy).

The MD5 catches what (tid, dateline) cannot: a second save within the same second, and
plugins' ``find_replace_templatesets``, which rewrites the text and keeps ``dateline``."""


def md5_hex(text: object) -> str | None:
    """What the stores' ``_md5`` computes in the database (None for what is no text: never equal to a digest)."""
    if isinstance(text, bytes):
        return hashlib.md5(text).hexdigest()
    return hashlib.md5(text.encode("utf-8")).hexdigest() if isinstance(text, str) else None


Digest = tuple[int, int, int]
"""(rows, sum of their tids, sum of their ``row_digest``): equal digests mean the same rows (barring a collision)."""


def row_digest(tid: int, sid: int, dateline: int, title: str, template: str | bytes) -> int:
    """40 bits of MD5("tid:sid:dateline:title:CRC32:length"), CRC32 and length those of the text's
    UTF-8 bytes: the stores' ``_row_digest`` computes the same in the database (CRC32 costs the
    server far less than an MD5 of every text), and the state keeps it for the row each file
    was agreed with."""
    data = template if isinstance(template, bytes) else template.encode("utf-8")
    key = f"{tid}:{sid}:{dateline}:{title}:{zlib.crc32(data)}:{len(data)}"
    return int.from_bytes(hashlib.md5(key.encode("utf-8")).digest()[:5], "big")  # its first 10 hex digits


def template_digest(row: TemplateRow) -> int:
    return row_digest(row.tid, row.sid, row.dateline, row.title, row.template)


def seen(row: TemplateRow) -> Seen:
    """The ``Seen`` of a row: what a save decided on it expects to find, and what the poller compares."""
    return row.tid, row.dateline, md5_hex(row.template) or ""


@dataclass(frozen=True, slots=True)
class TableMarker:
    """Cheap facts about a table that change whenever a row does."""

    rows: int
    max_id: int
    max_time: int
    id_sum: int  # changes when rows are replaced even if the count does not


class Store(Protocol):
    """What mybb-sync needs from a forum database."""

    def refusal(self, text: str, column: Column) -> str | None:
        """Why ``column`` cannot store ``text`` (a name or content) intact, or None."""
        ...

    async def template_sets(self) -> list[TemplateSet]: ...

    async def template_group_prefixes(self) -> frozenset[str]: ...

    async def version_code(self) -> str: ...

    def set_templates(self, sid: int, batch: int = 500, first: int | None = None) -> AsyncIterator[list[TemplateRow]]:
        """Every template set ``sid`` shows (its copies win over masters), streamed in batches.

        ``sid = -1`` streams the global templates. ``first``: the first batch's size (each
        next one doubles, up to ``batch``).
        """
        ...

    def every_template(self, batch: int = 500) -> AsyncIterator[list[TemplateRow]]:
        """Every stored template row (masters, global templates and every set's copies)."""
        ...

    async def shown_digest(self, sid: int) -> Digest:
        """The digest of the rows set ``sid`` shows (its copies, the masters it does not override)."""
        ...

    async def templates_by_title(self, sid: int, titles: Sequence[str]) -> dict[str, TemplateRow]:
        """The rows set ``sid`` shows for these titles (set copy, else master; sid -1: global only)."""
        ...

    async def save_templates(
        self, sid: int, texts: Sequence[tuple[str, str]], now: int, *, expect: Mapping[str, Seen | None] | None = None
    ) -> dict[str, TemplateRow]:
        """Save like the Admin CP: rtrim, insert a set copy or update it; returns the stored rows.

        With ``expect``, a title whose copy is no longer the one the caller
        saw (changed, deleted, or created since) is not written and is left
        out of the result: the caller decided on a row that is gone.
        """
        ...

    async def add_global_templates(
        self, texts: Sequence[tuple[str, str]], now: int, *, expect: Mapping[str, Seen | None] | None = None
    ) -> dict[str, TemplateRow]: ...

    async def revert_templates(self, sid: int, titles: Sequence[str], *, expect: Seen | None = None) -> int:
        """Delete the set's copies (Admin CP "Revert to original"); returns rows deleted.

        With ``expect`` (one title), only the copy still exactly as the caller saw it is
        deleted: an Admin CP save since is never reverted by a decision made before it."""
        ...

    async def themes(self) -> list[Theme]: ...

    async def stylesheets(self) -> list[Stylesheet]: ...

    async def template_totals(self) -> tuple[int, int]:
        """(rows, highest tid) of the templates table."""
        ...

    async def template_counts(self) -> dict[int, int]:
        """Rows per set."""
        ...

    async def stylesheet_markers(self) -> dict[int, TableMarker]: ...

    async def change_token(self) -> tuple[object, bool]:
        """A cheap value that changes with the tables, and whether an equal one can be trusted."""
        ...

    async def templates_touched(self, since: int, from_tid: int) -> dict[tuple[int, str], Seen]:
        """Rows stamped at or after ``since`` or with a tid from ``from_tid`` up: (sid, title) -> (tid, dateline, MD5)."""
        ...

    async def poll_index(self) -> bool:
        """Whether the templates table has mybb-sync's index on ``dateline``."""
        ...

    async def add_poll_index(self) -> bool: ...

    async def drop_poll_index(self) -> bool: ...

    async def template_titles(self, sid: int) -> set[str]: ...

    async def next_stylesheet_sid(self) -> int: ...

    async def save_stylesheet_rows(
        self, inserts: Sequence[Stylesheet], updates: Sequence[StylesheetUpdate]
    ) -> None: ...

    async def set_stylesheet_cachefile(self, sid: int, cachefile: str) -> None: ...

    async def set_stylesheet_attachments(self, attachments: Sequence[tuple[int, str]]) -> None:
        """(sid, attachedto) pairs: what Edit Stylesheet Properties stores when the name stays."""
        ...

    async def save_theme_lists(self, themes: Sequence[ThemeUpdate], default_theme: str | None) -> None: ...

    async def theme_named(self, name: str) -> int | None:
        """The tid of a theme of that name, as the database compares names (MySQL: case-blind)."""
        ...

    async def set_own_templates(self, sid: int) -> list[TemplateRow]:
        """The set's own rows in the table's order (the Admin CP's export query has no ORDER BY)."""
        ...

    async def add_template_set(self, title: str) -> int: ...

    async def add_set_templates(self, sid: int, templates: Sequence[tuple[str, str, str]], dateline: int) -> None:
        """(title, text, version) rows into set ``sid``, stored as given."""
        ...

    async def add_theme(self, name: str, pid: int) -> int:
        """A new non-default theme row for every group, with empty properties and lists."""
        ...

    async def set_theme_properties(self, tid: int, properties: str) -> None: ...

    async def add_stylesheet(self, row: Stylesheet) -> int:
        """Insert a row (its ``sid`` is ignored); returns the sid the table gave it."""
        ...

    async def remove_theme_rows(self, tid: int | None, templateset: int | None) -> None:
        """Delete a theme's rows (theme, stylesheets) and a set's (set, templates): undo an import."""
        ...

    async def copy_counts(self) -> tuple[int, int]:
        """(set copies of a master, custom templates with no master) over every set."""
        ...

    async def outdated_templates(self) -> list[tuple[int, str, str, str]]:
        """Set copies older than their master: (sid, title, copy version, master version)."""
        ...

    async def interrupt(self) -> None:
        """Abort the statements in flight: a stop must not wait for a lock held elsewhere."""
        ...

    async def close(self) -> None: ...


async def _connect(db: Database, prefix: str) -> Store:
    if db.scheme == "sqlite":
        from .sqlite import SQLiteStore

        assert db.path is not None
        return await SQLiteStore.connect(db.path, prefix)
    if db.scheme == "postgresql":
        from .postgres import PostgresStore

        return await PostgresStore.connect(db, prefix)
    from .mysql import MySQLStore

    return await MySQLStore.connect(db, prefix)


async def _connect_when_up(db: Database, prefix: str) -> Store:
    """Connect, waiting with back-off while the database is unreachable (said once)."""
    delay = CONNECT_RETRY_MIN
    while True:
        try:
            store = await _connect(db, prefix)
        except DatabaseUnavailable as exc:
            if delay == CONNECT_RETRY_MIN:
                log.warning("waiting for the database at %s: %s; retrying", db.redacted(), exc)
            await anyio.sleep(delay)  # back-off between attempts, not synchronisation
            delay = min(delay * 2, CONNECT_RETRY_MAX)
            continue
        if delay != CONNECT_RETRY_MIN:
            log.info("connected to the database at %s", db.redacted())
        return store


@asynccontextmanager
async def open_store(db: Database, prefix: str, *, wait: bool = False) -> AsyncIterator[Store]:
    """Connect to the configured database; closes it on exit. With ``wait``, an unreachable
    database is waited for (the service's start) instead of failing at once (a command's)."""
    store = await (_connect_when_up(db, prefix) if wait else _connect(db, prefix))
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):  # a stop must not leave the driver's thread behind the loop
            await store.close()
