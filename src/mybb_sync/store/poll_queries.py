"""The cheap queries the poller asks between passes, and the index that keeps them cheap."""

from __future__ import annotations

from . import Seen, TableMarker
from .sqlbase import SQLBase


class PollQueries(SQLBase):
    """Totals, markers and recently touched rows, each one short query; and the poll index."""

    async def template_totals(self) -> tuple[int, int]:
        """(rows, highest tid) of the whole table: constant time on MyISAM, however large the board."""
        rows = await self._fetch(f"SELECT COUNT(*), COALESCE(MAX(tid), 0) FROM {self._t['templates']}")
        return int(rows[0][0]), int(rows[0][1])

    async def template_counts(self) -> dict[int, int]:
        """Rows per set (MySQL counts them from the ``sid`` index alone)."""
        rows = await self._fetch(f"SELECT sid, COUNT(*) FROM {self._t['templates']} GROUP BY sid")
        return {int(sid): int(n) for sid, n in rows}

    async def stylesheet_markers(self) -> dict[int, TableMarker]:
        rows = await self._fetch(
            "SELECT tid, COUNT(*), MAX(sid), MAX(lastmodified), SUM(sid) "
            f"FROM {self._t['themestylesheets']} GROUP BY tid"
        )
        return {int(r[0]): TableMarker(int(r[1]), int(r[2]), int(r[3]), int(r[4] or 0)) for r in rows}

    async def templates_touched(self, since: int, from_tid: int) -> dict[tuple[int, str], Seen]:
        """Rows stamped at or after ``since`` or with a tid from ``from_tid`` up: (sid, title) -> (tid, dateline, MD5).

        Two ranges: ``tid`` is the primary key; ``dateline`` is read from the poll
        index when it exists (:meth:`add_poll_index`), else by one scan of the table.
        """
        t = self._t["templates"]
        cols = f"sid, title, tid, dateline, {self._md5}"
        rows = await self._fetch(
            f"SELECT {cols} FROM {t} WHERE dateline >= %s UNION SELECT {cols} FROM {t} WHERE tid >= %s ORDER BY 3",
            (since, from_tid),
        )
        return {(int(sid), title): (int(tid), int(stamp), digest) for sid, title, tid, stamp, digest in rows}

    async def poll_index(self) -> bool:
        """Whether the templates table has mybb-sync's index on ``dateline``."""
        rows = await self._fetch(self._index_exists, (self._t["templates"].strip("`"), self._poll_index))
        return bool(rows and rows[0][0])

    async def add_poll_index(self) -> bool:
        """Add the index on ``templates.dateline`` that makes polls read only the rows they need;
        False if it was already there. MyBB's own queries neither need nor mind it."""
        if await self.poll_index():
            return False
        await self._execute(f"CREATE INDEX `{self._poll_index}` ON {self._t['templates']} (dateline)")
        return True

    async def drop_poll_index(self) -> bool:
        """Remove the poll index again; False if there was none."""
        if not await self.poll_index():
            return False
        await self._execute(self._drop_index.format(index=f"`{self._poll_index}`", table=self._t["templates"]))
        return True
