"""Writing templates as the Admin CP does, guarded against other writers and read back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import php
from ..errors import MybbSyncError
from ..layout import GLOBAL_SID, MASTER_SID
from ..security import check_template
from . import Seen, TemplateRow, md5_hex
from .sqlbase import chunks
from .template_reads import TemplateReads


class TemplateWrites(TemplateReads):
    """Saves and reverts of template rows (they read what they wrote back through the reads)."""

    async def save_templates(
        self, sid: int, texts: Sequence[tuple[str, str]], now: int, *, expect: Mapping[str, Seen | None] | None = None
    ) -> dict[str, TemplateRow]:
        """The Admin CP's edit_template for many titles of one set, in few round trips.

        Titles the set has a copy of are updated with one ``CASE`` statement;
        the others get a new row in the set (never for sid -1, never touching
        a master row). Returns the set's own rows for the titles written, as
        read back after the write; a title whose row does not hold what was
        written (another writer was quicker) is left out.

        With ``expect``, a title whose copy is no longer the one the caller saw
        is not written: MyISAM has no transactions, so the ``UPDATE`` itself
        only touches a copy still holding the (tid, dateline, MD5) the caller
        saw, and a title seen without a copy is inserted only if none appeared
        since (looked up one round trip before). Without ``expect``, the set's
        copies are looked up first (id, second and MD5, no text).
        """
        if sid == MASTER_SID:
            raise MybbSyncError("master templates (sid -2) are never written")
        return await self._write_templates(sid, texts, now, expect, may_insert=sid != GLOBAL_SID)

    async def add_global_templates(
        self, texts: Sequence[tuple[str, str]], now: int, *, expect: Mapping[str, Seen | None] | None = None
    ) -> dict[str, TemplateRow]:
        """A new global template (the Admin CP's add_template with sid -1)."""
        return await self._write_templates(GLOBAL_SID, texts, now, expect, may_insert=True)

    async def _write_templates(
        self,
        sid: int,
        texts: Sequence[tuple[str, str]],
        now: int,
        expect: Mapping[str, Seen | None] | None,
        *,
        may_insert: bool,
    ) -> dict[str, TemplateRow]:
        latest = {title: php.rtrim(text) for title, text in texts}
        for title, text in latest.items():  # the last line of defence: callers refuse these first
            if (unsafe := check_template(text)) is not None:
                raise MybbSyncError(f"template {title!r} {unsafe}")
        if expect is None:
            copies = await self._copies(sid, list(latest))
        else:
            unseen = [t for t in latest if expect.get(t) is None]
            appeared = await self._copies(sid, unseen) if unseen else {}
            latest = {t: x for t, x in latest.items() if t not in appeared}
            copies = {t: seen_ for t in latest if (seen_ := expect.get(t)) is not None}
        inserts = [(t, text) for t, text in latest.items() if t not in copies]
        if inserts and not may_insert:
            raise MybbSyncError(f"no global template named {inserts[0][0]!r} (global templates are only updated)")
        if not latest:
            return {}
        version = await self.version_code()
        await self._update_templates(sid, [(t, copies[t], x) for t, x in latest.items() if t in copies], version, now)
        tids = {t: seen_[0] for t, seen_ in copies.items() if t in latest}
        tids |= await self._insert_templates(sid, inserts, version, now)
        digests = {t: md5_hex(x) or "" for t, x in latest.items()}
        if await self._as_written(sid, {t: (tids[t], now, digests[t]) for t in latest}):
            return {t: TemplateRow(tids[t], sid, t, x, version, "", now) for t, x in latest.items()}
        return await self._read_back(sid, latest, digests)

    async def _as_written(self, sid: int, rows: Mapping[str, Seen]) -> bool:
        """Whether each title now has exactly one row in the set, and it is the (tid, dateline,
        MD5) given under that exact title: one row of two sums to read back a whole batch written
        as meant. The collation's case-blind title match can only count more rows, never fewer."""
        found = matching = 0
        for chunk in chunks(sorted(rows), lambda t: len(t) * 4 + 80):
            marks = ", ".join(["%s"] * len(chunk))
            still, still_args = self._still_seen([(t, rows[t]) for t in chunk])
            [(count, hits)] = await self._fetch(
                f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN {still} THEN 1 ELSE 0 END), 0) "
                f"FROM {self._t['templates']} WHERE sid = %s AND title IN ({marks})",
                (*still_args, sid, *chunk),
            )
            found, matching = found + int(count), matching + int(hits)
        return found == matching == len(rows)

    def _still_seen(self, copies: Sequence[tuple[str, Seen]]) -> tuple[str, list[Any]]:
        """The condition (and its parameters) that a row is one of these copies, exactly as seen:
        (tid, dateline, MD5) under that exact title."""
        rows = ", ".join(["(%s, %s, %s, %s)"] * len(copies))
        return (
            f"(tid, dateline, {self._md5}, title) IN (VALUES {rows})",  # SQLite before 3.37 wants VALUES
            [v for title, seen_ in copies for v in (*seen_, title)],
        )

    async def _read_back(self, sid: int, written: dict[str, str], digests: Mapping[str, str]) -> dict[str, TemplateRow]:
        """The set's own rows that hold what was written (``digests``: the MD5s of it), as stored now.

        Rows are compared by an MD5 the database computes, so a bulk save does
        not fetch back every text it just sent. A title whose shown copy (the
        highest tid) holds something else is left out.
        """
        rows: dict[str, TemplateRow] = {}
        for tid, row_sid, title, version, status, dateline, digest in await self._by_title(
            f"tid, sid, title, version, status, dateline, {self._md5}", sid, list(written)
        ):
            if digest == digests[title]:
                rows[title] = TemplateRow(int(tid), int(row_sid), title, written[title], version, status, int(dateline))
            else:
                rows.pop(title, None)  # PHP shows the last copy: another writer's
        return rows

    async def _copies(self, sid: int, titles: Sequence[str]) -> dict[str, Seen]:
        """Exact title -> (tid, dateline, MD5) of the set's own copy that PHP shows (the highest tid)."""
        rows = await self._by_title(f"tid, sid, title, dateline, {self._md5}", sid, titles)
        return {title: (int(tid), int(dateline), digest) for tid, _sid, title, dateline, digest in rows}

    async def _update_templates(
        self, sid: int, updates: Sequence[tuple[str, Seen, str]], version: str, now: int
    ) -> None:
        """(title, copy seen, text): each copy is updated by tid only while it still is as seen,
        and guarded by its set (SQLite reuses the largest rowid after a delete)."""
        table = self._t["templates"]
        for chunk in chunks(updates, lambda u: len(u[2]) * 4 + 80):
            cases = " ".join(["WHEN %s THEN %s"] * len(chunk))
            marks = ", ".join(["%s"] * len(chunk))
            still, still_args = self._still_seen([(title, seen_) for title, seen_, _ in chunk])
            args: list[Any] = [v for _, (tid, _, _), text in chunk for v in (tid, text)]
            args += [version, now, sid, *(tid for _, (tid, _, _), _ in chunk), *still_args]
            await self._execute(
                f"UPDATE {table} SET template = CASE tid {cases} END, version = %s, status = '', dateline = %s "
                f"WHERE sid = %s AND tid IN ({marks}) AND {still}",
                args,
            )

    async def _insert_templates(
        self, sid: int, inserts: Sequence[tuple[str, str]], version: str, now: int
    ) -> dict[str, int]:
        """New copies; returns the tid each should have got (:meth:`_as_written` checks it before
        anything relies on it)."""
        table = self._t["templates"]
        tids: dict[str, int] = {}
        for chunk in chunks(inserts, lambda i: len(i[1]) * 4 + len(i[0]) * 4 + 32):
            values = ", ".join(["(%s, %s, %s, %s, '', %s)"] * len(chunk))
            args = [v for title, text in chunk for v in (title, text, sid, version, now)]
            ids = await self._insert_ids(
                f"INSERT INTO {table} (title, template, sid, version, status, dateline) VALUES {values}",
                args,
                len(chunk),
                "tid",
            )
            tids.update(zip((title for title, _ in chunk), ids, strict=True))
            await self._drop_shadowed(sid, [title for title, _ in chunk])
        return tids

    async def _drop_shadowed(self, sid: int, titles: Sequence[str]) -> None:
        """Remove copies that another writer inserted at the same moment as ours.

        There is no unique key on (sid, title): the Admin CP and we can both
        find no copy and both insert. PHP shows the highest tid, so the lower
        ones are invisible; deleting them keeps one row per title (and the
        read-back then tells the caller whose content won).
        """
        table = self._t["templates"]
        marks = ", ".join(["%s"] * len(titles))
        doubled = await self._fetch(  # title IN first: the index on (sid, title) finds the rows
            f"SELECT title, MAX(tid) FROM {table} WHERE sid = %s AND title IN ({marks}) "
            f"AND {self._exact_title} IN ({marks}) GROUP BY {self._exact_title} HAVING COUNT(*) > 1",
            (sid, *titles, *titles),
        )
        for title, top in doubled:
            await self._execute(
                f"DELETE FROM {table} WHERE sid = %s AND {self._exact_title} = %s AND tid < %s", (sid, title, top)
            )

    async def revert_templates(self, sid: int, titles: Sequence[str], *, expect: Seen | None = None) -> int:
        if sid <= 0:
            raise MybbSyncError("only a template set's own copies can be reverted")
        if expect is not None:
            if len(titles) != 1:
                raise MybbSyncError("a guarded revert names one title")
            still, still_args = self._still_seen([(titles[0], expect)])
            affected, _ = await self._execute(
                f"DELETE FROM {self._t['templates']} WHERE sid = %s AND {still}", (sid, *still_args)
            )
            return affected
        deleted = 0
        for chunk in chunks(sorted(self._storable(titles)), lambda t: len(t) * 4 + 8):
            marks = ", ".join(["%s"] * len(chunk))
            affected, _ = await self._execute(
                f"DELETE FROM {self._t['templates']} WHERE sid = %s AND {self._exact_title} IN ({marks})", (sid, *chunk)
            )
            deleted += affected
        return deleted
