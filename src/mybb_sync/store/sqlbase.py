"""What every SQL query of the store stands on, and what each backend supplies.

A backend connects and says how to run a statement (:meth:`SQLBase._fetch`,
:meth:`SQLBase._execute`) and the few words where dialects differ; the query
modules (:mod:`.template_reads`, :mod:`.template_writes`, :mod:`.theme_rows`,
:mod:`.poll_queries`) build on this, and :class:`.sql.SQLStore` composes them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from ..config import validate_prefix
from . import Column

MAX_STATEMENT_BYTES = 4 * 1024 * 1024  # well under MariaDB's default max_allowed_packet (16 MiB)
TABLES = ("templates", "templatesets", "templategroups", "themes", "themestylesheets", "datacache")


def chunks(items: Sequence[Any], size_of: Any, limit: int = MAX_STATEMENT_BYTES, most: int = 900):
    """Split ``items`` so that one statement stays under ``limit`` bytes and ``most`` rows."""
    chunk: list[Any] = []
    total = 0
    for item in items:
        size = size_of(item)
        if chunk and (total + size > limit or len(chunk) >= most):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += size
    if chunk:
        yield chunk


class SQLBase(ABC):
    """A MyBB forum database reached through SQL; subclasses bind it to a driver."""

    _exact = "{}"  # a column compared byte for byte, whatever its collation
    _int = "INTEGER"  # the type CAST(... AS ...) takes for integers
    # row_digest() of each row, computed by the database (40 bits: SUM() over millions of rows fits 64 bits).
    _row_digest = "mybb_sync_row_digest(tid, sid, dateline, title, template)"
    _md5 = "mybb_sync_md5(template)"  # hex MD5 of the template's UTF-8 bytes (the package's md5_hex())
    _index_exists = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND name = %s"
    _drop_index = "DROP INDEX {index}"

    @property
    def _exact_title(self) -> str:
        return self._exact.format("title")

    def __init__(self, prefix: str) -> None:
        p = validate_prefix(prefix)
        self._t = {name: f"`{p}{name}`" for name in TABLES}
        self._poll_index = f"{p}mybb_sync_dateline"
        self._version_code: str | None = None

    def refusal(self, text: str, column: Column) -> str | None:
        """Why ``column`` cannot store ``text`` intact: never on SQLite; MySQL narrows it to charsets."""
        return None

    def _storable(self, titles: Iterable[str]) -> set[str]:
        """The template titles a row can have: one the charsets cannot hold is in no row, and
        could not even be sent in a query."""
        return {t for t in titles if self.refusal(t, Column.TEMPLATE_TITLE) is None}

    @abstractmethod
    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> tuple[int, int]:
        """Run one write; returns (rows affected, last insert id)."""

    async def _insert_ids(self, sql: str, args: Sequence[Any], rows: int, key: str) -> list[int]:
        """Run an INSERT of ``rows`` rows; the ``key`` each got, in order (consecutive on MyISAM and
        SQLite, where the driver reports one of them)."""
        _, last_id = await self._execute(sql, args)
        first = self._first_insert_id(last_id, rows)
        return list(range(first, first + rows))

    def _first_insert_id(self, last_id: int, rows: int) -> int:
        """The id of a multi-row INSERT's first row, from the one the driver reports (SQLite: the last)."""
        return last_id - rows + 1

    @abstractmethod
    async def next_stylesheet_sid(self) -> int:
        """The sid MyBB would give the next new stylesheet row."""

    @abstractmethod
    async def change_token(self) -> tuple[object, bool]:
        """A cheap value that changes when the forum's tables do, and whether it is settled.

        Not settled means an equal token may still hide a change (a clock of
        whole seconds), so the caller should look closer anyway.
        """

    async def interrupt(self) -> None:
        """Nothing on SQLite: a statement there waits at most the busy timeout."""

    @abstractmethod
    async def close(self) -> None: ...
