"""Reading templates: the sets, what each set shows (streamed or by title), and its digest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from .. import php
from ..errors import MybbSyncError
from ..layout import GLOBAL_SID, MASTER_SID
from . import Digest, TemplateRow, TemplateSet
from .sqlbase import SQLBase, chunks

_TEMPLATE_COLS = "tid, sid, title, template, version, status, dateline"


def _template_row(r: Sequence[Any]) -> TemplateRow:
    """A row of ``_TEMPLATE_COLS``."""
    return TemplateRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], int(r[6]))


class TemplateReads(SQLBase):
    """The queries that read the templates table (and the sets and groups it refers to)."""

    async def template_sets(self) -> list[TemplateSet]:
        rows = await self._fetch(f"SELECT sid, title FROM {self._t['templatesets']} ORDER BY sid")
        return [TemplateSet(int(sid), title) for sid, title in rows]

    async def template_group_prefixes(self) -> frozenset[str]:
        rows = await self._fetch(f"SELECT prefix FROM {self._t['templategroups']}")
        return frozenset(prefix for (prefix,) in rows if prefix)

    async def version_code(self) -> str:
        """The board's ``version_code`` (datacache ``version``), stamped on saved templates."""
        if self._version_code is None:
            rows = await self._fetch(f"SELECT cache FROM {self._t['datacache']} WHERE title = %s", ("version",))
            if not rows:
                raise MybbSyncError("the forum's datacache has no 'version' row: is this a MyBB database?")
            value = php.loads(rows[0][0])
            if not isinstance(value, dict) or "version_code" not in value:
                raise MybbSyncError("the forum's datacache 'version' row has no version_code")
            self._version_code = str(value["version_code"])
        return self._version_code

    async def set_templates(
        self, sid: int, batch: int = 500, first: int | None = None
    ) -> AsyncIterator[list[TemplateRow]]:
        """Stream what set ``sid`` shows, one page of ``batch`` rows at a time, in one pass.

        With ``first``, the first page is that small and each next one twice the
        one before, up to ``batch``: the caller starts work on the first rows
        without waiting for a whole large page.

        Pages are keyed on ``tid`` (``tid > last ORDER BY tid LIMIT batch``),
        each one short query. A server-side cursor would hold MyISAM's table
        read lock for as long as the caller takes over the rows: every write
        to the table (an Admin CP save, our own imports in the same pass) would
        wait for it, and MyISAM queues page views behind a waiting write.

        The set's own titles are read first (ids and titles only, small) so
        that a master row can be dropped when the set overrides it, comparing
        titles exactly as PHP's template cache does (not by the column's
        collation). The table has no unique key on (sid, title): of duplicate
        copies only the last one (highest tid) is shown, as in PHP's cache and
        :meth:`templates_by_title`, so each title is streamed once (masters too).

        Only rows that existed when the pass began (``tid`` up to the largest
        then) are read, so a copy inserted meanwhile cannot show a title twice;
        the poller reports it like any other database change.
        """
        table = self._t["templates"]
        (newest,) = (await self._fetch(f"SELECT COALESCE(MAX(tid), 0) FROM {table}"))[0]
        own: dict[str, int] = {}  # exact title -> tid of the copy that wins
        for tid, title in await self._fetch(
            f"SELECT tid, title FROM {table} WHERE sid = %s AND tid <= %s", (sid, newest)
        ):
            own[title] = max(int(tid), own.get(title, -1))
        args: tuple[int, ...]
        if sid == GLOBAL_SID:
            where, args = "sid = %s", (GLOBAL_SID,)
            twins: dict[str, int] = {}
        else:
            where, args = "sid IN (%s, %s)", (MASTER_SID, sid)
            # Duplicate masters are rare: only their titles are read up front.
            twins = {
                title: int(top)
                for title, top in await self._fetch(
                    f"SELECT title, MAX(tid) FROM {table} WHERE sid = %s GROUP BY {self._exact_title} "
                    "HAVING COUNT(*) > 1",
                    (MASTER_SID,),
                )
            }
        last, size = 0, min(first or batch, batch)
        while True:
            rows = await self._fetch(
                f"SELECT {_TEMPLATE_COLS} FROM {table} WHERE {where} AND tid > %s AND tid <= %s ORDER BY tid LIMIT %s",
                (*args, last, newest, size),
            )
            out = [
                _template_row(r)
                for r in rows
                if not (r[1] == MASTER_SID and (r[2] in own or int(r[0]) < twins.get(r[2], -1)))
                and not (r[1] == sid and int(r[0]) < own.get(r[2], -1))
            ]
            if out:
                yield out
            if len(rows) < size:
                return
            last, size = int(rows[-1][0]), min(2 * size, batch)

    async def every_template(self, batch: int = 500) -> AsyncIterator[list[TemplateRow]]:
        """Stream every row of the templates table (masters and every set), by ``tid``."""
        table = self._t["templates"]
        last = 0
        while True:
            rows = await self._fetch(
                f"SELECT {_TEMPLATE_COLS} FROM {table} WHERE tid > %s ORDER BY tid LIMIT %s", (last, batch)
            )
            if rows:
                yield [_template_row(r) for r in rows]
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    async def shown_digest(self, sid: int) -> Digest:
        """(rows, sum of tids, sum of row digests) of the rows set ``sid`` shows: its own
        copies and the masters it does not override (-1: the globals).

        Computed by the database, so that a pass can tell in one query that
        the set still shows exactly the rows the state last agreed with
        (:meth:`State.digest_of` sums the same over those), without reading
        any row. Any write to those rows changes it, even one that keeps
        ``dateline`` (plugins' ``find_replace_templatesets``), barring a hash
        collision (the text counts by its CRC32 and length: 1 in 2**32). Where
        the state could differ from this rule (duplicate copies or masters)
        the sums differ too: the set is then read in full, never skipped.
        """
        t = self._t["templates"]
        totals = f"SELECT COUNT(*), COALESCE(SUM(tid), 0), COALESCE(SUM({self._row_digest}), 0) FROM {t}"
        if sid == GLOBAL_SID:
            [shown] = await self._fetch(f"{totals} WHERE sid = %s", (sid,))
            return int(shown[0]), int(shown[1]), int(shown[2])
        # One scan of the set and the masters, less the masters it overrides: those with a copy of
        # exactly their title (the collation's match finds candidates by index; PHP's cache, and
        # set_templates, compare exactly: a copy 'HEADER_x' does not hide the master 'header_x').
        [both] = await self._fetch(f"{totals} WHERE sid IN (%s, %s)", (MASTER_SID, sid))
        [hidden] = await self._fetch(
            f"{totals} m WHERE sid = %s AND title IN (SELECT c.title FROM {t} c WHERE c.sid = %s) AND EXISTS "
            f"(SELECT 1 FROM {t} c WHERE c.sid = %s AND c.title = m.title AND "
            f"{self._exact.format('c.title')} = {self._exact.format('m.title')})",
            (MASTER_SID, sid, sid),
        )
        count, tids, digests = (int(both[i]) - int(hidden[i]) for i in range(3))
        return count, tids, digests

    async def templates_by_title(self, sid: int, titles: Sequence[str], *, own: bool = False) -> dict[str, TemplateRow]:
        """What set ``sid`` shows for these titles; ``own``: only the set's own rows (no masters).

        A master the set overrides (a copy of exactly its title) is not read:
        where a set's files are edited, most are copies, and each row read
        costs the driver more than the query costs the server.
        """
        rows = await self._by_title(
            _TEMPLATE_COLS, sid, titles, masters=not own and sid not in (GLOBAL_SID, MASTER_SID)
        )
        # Among duplicate copies the last one read wins, as in PHP's cache.
        return {r[2]: _template_row(r) for r in rows}

    async def _by_title(
        self, columns: str, sid: int, titles: Sequence[str], *, masters: bool = False
    ) -> list[tuple[Any, ...]]:
        """The set's rows with exactly these titles (the collation ignores case), by tid; with
        ``masters``, first the masters of these titles that the set has no copy of (of exactly
        their title, as PHP's cache compares).

        ``columns`` must start with ``tid, sid, title``.
        """
        wanted = self._storable(titles)
        t = self._t["templates"]
        out: list[tuple[Any, ...]] = []
        for chunk in chunks(sorted(wanted), lambda t: len(t) * 4 + 8):
            marks = ", ".join(["%s"] * len(chunk))
            if masters:
                # One subquery of the set's copies of these titles (MyBB's SQLite schema has no
                # index on (sid, title): a correlated one would scan the table per master).
                where = (
                    f"sid IN (%s, %s) AND NOT (sid = %s AND {self._exact_title} IN "
                    f"(SELECT {self._exact.format('c.title')} FROM {t} c WHERE c.sid = %s AND c.title IN ({marks})))"
                )
                args: tuple[Any, ...] = (MASTER_SID, sid, MASTER_SID, sid, *chunk)
            else:
                where, args = "sid = %s", (sid,)
            rows = await self._fetch(
                f"SELECT {columns} FROM {t} WHERE {where} AND title IN ({marks}) ORDER BY sid, tid", (*args, *chunk)
            )
            out += [r for r in rows if r[2] in wanted]
        return out

    async def template_titles(self, sid: int) -> set[str]:
        rows = await self._fetch(f"SELECT title FROM {self._t['templates']} WHERE sid = %s", (sid,))
        return {t for (t,) in rows}

    async def copy_counts(self) -> tuple[int, int]:
        """(set copies of a master template, custom templates with no master) over every set."""
        t = self._t["templates"]
        rows = await self._fetch(
            f"SELECT COUNT(m.tid), COUNT(*) - COUNT(m.tid) FROM {t} s "
            f"LEFT JOIN {t} m ON m.sid = %s AND m.title = s.title WHERE s.sid > 0",
            (MASTER_SID,),
        )
        return int(rows[0][0] or 0), int(rows[0][1] or 0)

    async def outdated_templates(self) -> list[tuple[int, str, str, str]]:
        """Set copies older than their master (MyBB's "Find Updated Templates"): (sid, title, copy, master)."""
        t = self._t["templates"]
        rows = await self._fetch(
            f"SELECT s.sid, s.title, s.version, m.version FROM {t} s JOIN {t} m ON m.sid = %s AND m.title = s.title "
            f"WHERE s.sid > 0 AND CAST(m.version AS {self._int}) > CAST(s.version AS {self._int}) ORDER BY s.sid, s.title",
            (MASTER_SID,),
        )
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]
