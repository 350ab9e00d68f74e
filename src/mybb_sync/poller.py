"""The database poller: notices edits made outside mybb-sync (Admin CP, plugins, other tools).

Each poll is one cheap query (the store's change token: MySQL's table
headers, PostgreSQL's transaction snapshot, SQLite's data_version). Only when a table may have changed does it
look further, and then only at ranges: the templates table's totals (rows,
highest tid; constant time on MyISAM), the rows stamped since the previous
poll began, less a look-back (``dateline``; an index scan with the poll
index, one table scan without), the rows from the last highest ``tid`` up,
and the small tables of sets, themes and stylesheets. Only when rows left the
templates table, or a saved row changed title or set, does it count rows per
set and compare titles. It never decides anything: it hands the
affected paths (or a rescan) to the reconciler, which compares them with the
state like any file event, so our own writes come back as "nothing to do".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio

from .catalog import Catalog
from .errors import DatabaseUnavailable, UnsafeName
from .layout import GLOBAL_SID, MASTER_SID, STYLES_DIR
from .pending import Pending
from .store import Seen, Store

log = logging.getLogger(__name__)

LARGE_BOARD = 20_000  # templates from which a poll's table scan is worth an index
# A poll reads the rows stamped since the last poll began, less this: a second save within the
# second of the last one, a request that stamped its rows a few seconds before writing them, a
# forum server whose clock lags ours by less than this. Longer costs every poll while a burst of
# imports goes on (each re-reads the rows of the whole window) for rarer cases: left to rescans.
LOOKBACK_SECONDS = 10
OWN_WRITES_SECONDS = 60  # how long our own writes are remembered (far longer than a poll looks back)
# A poll waits while the reconciler has work in hand, at most this long: each poll in a burst of
# imports re-reads every row imported in its window, and the interpreter it takes is the imports'.
# Nothing is missed by waiting (the next poll looks back from where the last one began).
BUSY_WAIT_SECONDS = 5.0


class RecentWrites:
    """What mybb-sync itself stored lately, so that polls do not bring it back as news.

    A row still exactly as we stored it (same id, same second, same MD5 of the
    text) needs no look: the file already holds it. Anything else, another
    writer's save within the same second included, differs and is looked at.
    """

    def __init__(self, keep_seconds: float = OWN_WRITES_SECONDS) -> None:
        self.keep_seconds = keep_seconds
        self._stored: dict[tuple[int, str], tuple[Seen, float]] = {}

    def add(self, sid: int, title: str, seen: Seen) -> None:
        self._stored[(sid, title)] = (seen, time.monotonic())

    def ours(self, sid: int, title: str, seen: Seen) -> bool:
        stored = self._stored.get((sid, title))
        return stored is not None and stored[0] == seen

    def expire(self) -> None:
        cutoff = time.monotonic() - self.keep_seconds
        self._stored = {k: v for k, v in self._stored.items() if v[1] >= cutoff}


Key = tuple[int, str]  # (sid, title)


@dataclass(frozen=True)
class Look:
    """What a poll saw of the templates table, kept only once the whole poll succeeded."""

    started: float  # this machine's clock when the poll began: the next one looks back from here
    totals: tuple[int, int]  # rows, highest tid
    top: Key | None  # the row holding the highest tid (SQLite hands a freed highest tid out again)
    counts: dict[int, int]  # rows per set, as far as known
    recent: dict[Key, Seen]  # the rows in the look-back, as seen


def news(before: Mapping[Key, Seen], now: Mapping[Key, Seen]) -> list[Key]:
    """Pure: the rows a poll found that were not exactly so at the last one."""
    return [key for key, seen in now.items() if before.get(key) != seen]


def added_rows(before: Look, found: Mapping[Key, Seen]) -> list[Key]:
    """Pure: the rows found that were not in the table at the last poll: a tid above the old
    highest, or the old highest tid now holding another row (deleted, then handed out again)."""
    top = before.totals[1]
    return [key for key, seen in found.items() if seen[0] > top or (seen[0] == top and key != before.top)]


def lost_rows(before: tuple[int, int], now: tuple[int, int], added: int) -> bool:
    """Pure: whether rows left the table between two (rows, highest tid) totals, given how
    many rows were added since. A row added and removed again in between changes nothing;
    rows replaced (one gone, another new) do count."""
    return now[0] != before[0] + added


def counts_moved(expected: Mapping[int, int], now: Mapping[int, int]) -> set[int]:
    """Pure: the sets whose number of rows is not the one expected (the last count plus the rows
    seen added since): in those, rows left, whatever was added beside them."""
    return {sid for sid in expected.keys() | now.keys() if expected.get(sid, 0) != now.get(sid, 0)}


def template_paths(catalog: Catalog, sid: int, titles: Iterable[str]) -> set[str]:
    """The files that show templates of ``sid``: a master shows in every set."""
    owners = list(catalog.sets) if sid == MASTER_SID else [sid]
    paths: set[str] = set()
    for owner in owners:
        if owner != GLOBAL_SID and owner not in catalog.sets:
            continue
        for title in titles:
            try:
                paths.add(catalog.template_path(owner, title))
            except UnsafeName:
                continue
    return paths


class Poller:
    """Polls the forum database every ``interval`` seconds and reports what changed."""

    def __init__(self, store: Store, interval: float, *, busy_wait: float = BUSY_WAIT_SECONDS) -> None:
        self.store = store
        self.interval = interval
        self.busy_wait = busy_wait
        self._token: object = None
        self._look: Look | None = None
        self._sheets: object = None
        self._folders: object = None

    async def _folder_names(self) -> object:
        """The sets and themes (ids, names, parents): a change means folders come or go."""
        sets = await self.store.template_sets()
        themes = await self.store.themes()
        return (tuple((s.sid, s.title) for s in sets), tuple((t.tid, t.name, t.pid) for t in themes))

    async def _styles(self) -> object:
        """The stylesheets' markers and the themes' settings and lists: what a styles pass
        (stylesheets and theme.json) looks at; Edit Theme changes only the latter."""
        themes = await self.store.themes()
        return await self.store.stylesheet_markers(), tuple((t.tid, t.properties, t.stylesheets) for t in themes)

    async def _touched(self, since: float, top: int) -> tuple[dict[Key, Seen], tuple[int, int]]:
        """The rows saved since ``since`` (less the look-back) or at or above tid ``top``, then the
        totals (read after them: a row added in between shows as rows gone, never as nothing)."""
        found = await self.store.templates_touched(int(since) - LOOKBACK_SECONDS, top)
        return found, await self.store.template_totals()

    @staticmethod
    def _top(found: Mapping[Key, Seen], totals: tuple[int, int]) -> Key | None:
        return next((key for key, seen in found.items() if seen[0] == totals[1]), None)

    async def baseline(self) -> None:
        """Remember where the database is now (taken before the start-up pass)."""
        started = time.time()
        token, _ = await self.store.change_token()
        _, top = await self.store.template_totals()
        found, totals = await self._touched(started, top)
        counts = await self.store.template_counts()
        if totals[0] >= LARGE_BOARD and not await self.store.poll_index():
            log.info(
                "%d templates and no poll index: each poll that finds a change scans the table; "
                "'mybb-sync index --add' makes it read only the rows saved", totals[0],
            )  # fmt: skip
        self._sheets = await self._styles()
        self._folders = await self._folder_names()
        self._token = token
        self._look = Look(started, totals, self._top(found, totals), counts, found)

    async def poll(self, service: PollTarget) -> tuple[set[str], set[str]]:
        """One poll: (paths to look at, prefixes to rescan). What it saw is kept only when
        every query succeeded, so a poll cut short by the database is done again in full."""
        started = time.time()
        token, settled = await self.store.change_token()
        if self._look is None or (token == self._token and settled):
            return set(), set()
        prefixes: set[str] = set()
        folders = await self._folder_names()
        if folders != self._folders:
            prefixes.add("")  # a set or theme came, went or moved: compare everything
        sheets = await self._styles()
        if sheets != self._sheets:
            prefixes.add(STYLES_DIR)
        paths, look = await self._template_paths(service, self._look, started)
        self._token, self._folders, self._sheets, self._look = token, folders, sheets, look
        return paths, prefixes

    async def _template_paths(self, service: PollTarget, before: Look, started: float) -> tuple[set[str], Look]:
        """Rows saved since the last poll began (less the look-back) whose tid, dateline or MD5
        differ from what it saw; rows added; the files last agreed with a saved row (a row
        moved to another title or set leaves one behind); and, only when rows left the table
        or moved, the sets whose row counts are not as expected, compared title by title."""
        found, totals = await self._touched(before.started, before.totals[1])
        added = added_rows(before, found)
        counts = dict(before.counts)
        for sid, _ in added:
            counts[sid] = counts.get(sid, 0) + 1
        service.own_writes.expire()
        theirs = [key for key in news(before.recent, found) if not service.own_writes.ours(*key, found[key])]
        by_sid: dict[int, set[str]] = {}
        for sid, title in theirs:
            by_sid.setdefault(sid, set()).add(title)
        paths: set[str] = set()
        moved = False
        saved = {found[key][0]: key for key in theirs if key not in added}
        if saved:
            for tid, agreed in (await service.files_of_rows(list(saved))).items():
                for path, key in agreed:
                    paths.add(path)
                    moved = moved or key != saved[tid]
        if moved or lost_rows(before.totals, totals, len(added)):
            now = await self.store.template_counts()
            for sid in counts_moved(counts, now):
                titles = await self.store.template_titles(sid)
                by_sid.setdefault(sid, set()).update(titles ^ await service.known_titles(sid))
            counts = now
        if by_sid:
            catalog = await service.current_catalog()
            paths |= {path for sid, titles in by_sid.items() for path in template_paths(catalog, sid, titles)}
        return paths, Look(started, totals, self._top(found, totals), counts, found)

    async def run(self, service: PollTarget) -> None:
        """Poll forever; while the database is away, polls are skipped and polling goes on."""
        while True:
            await anyio.sleep(self.interval)  # the polling period, not synchronisation
            with anyio.move_on_after(self.busy_wait):
                await service.until_idle()
            try:
                paths, prefixes = await self.poll(service)
            except DatabaseUnavailable as exc:
                log.debug("poll skipped: %s", exc)
                continue
            if paths or prefixes:
                log.debug("database changed: %d path(s), rescan %s", len(paths), sorted(prefixes))
                service.pending.add(sorted(paths), sorted(prefixes))


class PollTarget(Protocol):
    """What the poller needs from the service."""

    pending: Pending
    own_writes: RecentWrites

    async def until_idle(self) -> None:
        """Return once nothing is pending and no batch is in hand."""
        ...

    async def current_catalog(self) -> Catalog: ...

    async def known_titles(self, sid: int) -> set[str]:
        """Titles whose files were last agreed with a row of ``sid``."""
        ...

    async def files_of_rows(self, tids: Sequence[int]) -> dict[int, list[tuple[str, Key]]]:
        """Per tid, the files last agreed with that row: (path, (sid, title) of the row then)."""
        ...
