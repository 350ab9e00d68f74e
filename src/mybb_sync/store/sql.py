"""The store's queries, written once for every SQL backend.

Subclasses connect and say how to run a statement (:meth:`_fetch`,
:meth:`_execute`) and the few words where dialects differ.
Every value is a query parameter (written ``%s``); only the validated table
prefix is interpolated. MyBB's MySQL tables are MyISAM (no transactions), so
each write is followed by a read-back of what was stored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from .. import php
from ..config import validate_prefix
from ..errors import MybbSyncError
from ..layout import GLOBAL_SID, MASTER_SID
from ..security import check_template
from ..stylesheets import Stylesheet, StylesheetUpdate, Theme, ThemeUpdate
from . import Column, Digest, Seen, TableMarker, TemplateRow, TemplateSet, md5_hex

_TEMPLATE_COLS = "tid, sid, title, template, version, status, dateline"
MAX_STATEMENT_BYTES = 4 * 1024 * 1024  # well under MariaDB's default max_allowed_packet (16 MiB)
TABLES = ("templates", "templatesets", "templategroups", "themes", "themestylesheets", "datacache")


def _template_row(r: Sequence[Any]) -> TemplateRow:
    """A row of ``_TEMPLATE_COLS``."""
    return TemplateRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], int(r[6]))


def _chunks(items: Sequence[Any], size_of: Any, limit: int = MAX_STATEMENT_BYTES, most: int = 900):
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


class SQLStore(ABC):
    """A MyBB forum database; subclasses bind it to a driver."""

    _exact = "{}"  # a column compared byte for byte, whatever its collation
    _int = "INTEGER"  # the type CAST(... AS ...) takes for integers
    # row_digest() of each row, computed by the database (40 bits: SUM() over millions of rows fits 64 bits).
    _row_digest = "mybb_sync_row_digest(tid, sid, dateline, title, template)"
    _md5 = "mybb_sync_md5(template)"  # hex MD5 of the template's UTF-8 bytes (md5_hex() below)
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

    # -- reads ---------------------------------------------------------------

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

    async def set_templates(self, sid: int, batch: int = 500) -> AsyncIterator[list[TemplateRow]]:
        """Stream what set ``sid`` shows, one page of ``batch`` rows at a time, in one pass.

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
        last = 0
        while True:
            rows = await self._fetch(
                f"SELECT {_TEMPLATE_COLS} FROM {table} WHERE {where} AND tid > %s AND tid <= %s ORDER BY tid LIMIT %s",
                (*args, last, newest, batch),
            )
            out = [
                _template_row(r)
                for r in rows
                if not (r[1] == MASTER_SID and (r[2] in own or int(r[0]) < twins.get(r[2], -1)))
                and not (r[1] == sid and int(r[0]) < own.get(r[2], -1))
            ]
            if out:
                yield out
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

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
        for chunk in _chunks(sorted(wanted), lambda t: len(t) * 4 + 8):
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

    async def themes(self) -> list[Theme]:
        rows = await self._fetch(
            f"SELECT tid, name, pid, def, properties, stylesheets, allowedgroups FROM {self._t['themes']} ORDER BY tid"
        )
        return [Theme(int(r[0]), r[1], int(r[2]), int(r[3]), r[4], r[5], r[6]) for r in rows]

    async def stylesheets(self) -> list[Stylesheet]:
        rows = await self._fetch(
            "SELECT sid, name, tid, attachedto, stylesheet, cachefile, lastmodified "
            f"FROM {self._t['themestylesheets']} ORDER BY tid, sid"
        )
        return [Stylesheet(int(r[0]), r[1], int(r[2]), r[3], r[4], r[5], int(r[6])) for r in rows]

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

    # -- writes --------------------------------------------------------------

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
        for chunk in _chunks(sorted(rows), lambda t: len(t) * 4 + 80):
            marks = ", ".join(["%s"] * len(chunk))
            still, still_args = self._still_seen([(t, rows[t]) for t in chunk])
            [(count, hits)] = await self._fetch(
                f"SELECT COUNT(*), COALESCE(SUM({still}), 0) "
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
        for chunk in _chunks(updates, lambda u: len(u[2]) * 4 + 80):
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
        """New copies; returns the tid each should have got (a multi-row INSERT's ids are consecutive
        on MyISAM and SQLite: :meth:`_as_written` checks it before anything relies on it)."""
        table = self._t["templates"]
        tids: dict[str, int] = {}
        for chunk in _chunks(inserts, lambda i: len(i[1]) * 4 + len(i[0]) * 4 + 32):
            values = ", ".join(["(%s, %s, %s, %s, '', %s)"] * len(chunk))
            args = [v for title, text in chunk for v in (title, text, sid, version, now)]
            _, last_id = await self._execute(
                f"INSERT INTO {table} (title, template, sid, version, status, dateline) VALUES {values}", args
            )
            first = self._first_insert_id(last_id, len(chunk))
            tids.update((title, first + i) for i, (title, _) in enumerate(chunk))
            await self._drop_shadowed(sid, [title for title, _ in chunk])
        return tids

    def _first_insert_id(self, last_id: int, rows: int) -> int:
        """The id of a multi-row INSERT's first row, from the one the driver reports (SQLite: the last)."""
        return last_id - rows + 1

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

    async def revert_templates(self, sid: int, titles: Sequence[str]) -> int:
        if sid <= 0:
            raise MybbSyncError("only a template set's own copies can be reverted")
        deleted = 0
        for chunk in _chunks(sorted(self._storable(titles)), lambda t: len(t) * 4 + 8):
            marks = ", ".join(["%s"] * len(chunk))
            affected, _ = await self._execute(
                f"DELETE FROM {self._t['templates']} WHERE sid = %s AND {self._exact_title} IN ({marks})", (sid, *chunk)
            )
            deleted += affected
        return deleted

    # -- stylesheets (the Admin CP's save, applied from a SavePlan) -------------

    async def save_stylesheet_rows(self, inserts: Sequence[Stylesheet], updates: Sequence[StylesheetUpdate]) -> None:
        table = self._t["themestylesheets"]
        for row in inserts:
            await self._execute(
                f"INSERT INTO {table} (sid, name, tid, attachedto, stylesheet, cachefile, lastmodified) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (row.sid, row.name, row.tid, row.attachedto, row.stylesheet, row.cachefile, row.lastmodified),
            )
        for update in updates:
            await self._execute(
                f"UPDATE {table} SET stylesheet = %s, cachefile = %s, lastmodified = %s WHERE sid = %s",
                (update.stylesheet, update.cachefile, update.lastmodified, update.sid),
            )

    async def set_stylesheet_cachefile(self, sid: int, cachefile: str) -> None:
        await self._execute(f"UPDATE {self._t['themestylesheets']} SET cachefile = %s WHERE sid = %s", (cachefile, sid))

    async def save_theme_lists(self, themes: Sequence[ThemeUpdate], default_theme: str | None) -> None:
        for theme in themes:
            await self._execute(
                f"UPDATE {self._t['themes']} SET properties = %s, stylesheets = %s WHERE tid = %s",
                (theme.properties, theme.stylesheets, theme.tid),
            )
        if default_theme is not None:
            await self._execute(
                f"UPDATE {self._t['datacache']} SET cache = %s WHERE title = %s", (default_theme, "default_theme")
            )
