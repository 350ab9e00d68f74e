"""The database poller: notices edits made outside mybb-sync (Admin CP, plugins, other tools).

Each poll is one cheap query (the store's change token: MySQL's table
headers, SQLite's data_version). Only when a table may have changed does it
look further, and then only at ranges: the templates table's totals (rows,
highest tid; constant time on MyISAM), the rows saved in the last seconds
(``dateline``; an index scan with the poll index, one table scan without) or
added since (``tid`` above the last highest), and the small tables of sets,
themes and stylesheets. Only when rows left the templates table does it count
rows per set and compare titles. It never decides anything: it hands the
affected paths (or a rescan) to the reconciler, which compares them with the
state like any file event, so our own writes come back as "nothing to do".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

import anyio

from .catalog import Catalog
from .errors import DatabaseUnavailable, UnsafeName
from .layout import GLOBAL_SID, MASTER_SID, STYLES_DIR
from .store import Seen, Store, TableMarker

if TYPE_CHECKING:
    from .service import Pending

log = logging.getLogger(__name__)

LARGE_BOARD = 20_000  # templates from which a poll's table scan is worth an index (about 3 ms)
# Saves stamped up to this long ago are looked at again by every poll that looks: a second save
# within the second of the last one, a request that stamped its rows before writing them, and a
# forum server whose clock lags ours by less than this. Rows older than that are left to rescans.
LOOKBACK_SECONDS = 10
OWN_WRITES_SECONDS = 60  # how long our own writes are remembered (far longer than a poll looks back)


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


def news(before: Mapping[Key, Seen], now: Mapping[Key, Seen]) -> list[Key]:
    """Pure: the rows a poll found that were not exactly so at the last one."""
    return [key for key, seen in now.items() if before.get(key) != seen]


def lost_rows(before: tuple[int, int], now: tuple[int, int], added: int) -> bool:
    """Pure: whether rows left the table between two (rows, highest tid) totals, given how
    many of the rows now there are new (tid above the old highest). A row added and removed
    again in between changes nothing; rows replaced (one gone, another new) do count."""
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

    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._token: object = None
        self._totals: tuple[int, int] | None = None  # templates: rows, highest tid
        self._counts: dict[int, int] = {}  # templates per set
        self._recent: dict[Key, Seen] = {}  # rows within the look-back, as last seen
        self._sheets: dict[int, TableMarker] | None = None
        self._folders: object = None

    async def _folder_names(self) -> object:
        """The sets and themes (ids, names, parents): a change means folders come or go."""
        sets = await self.store.template_sets()
        themes = await self.store.themes()
        return (tuple((s.sid, s.title) for s in sets), tuple((t.tid, t.name, t.pid) for t in themes))

    async def _touched(self, after_tid: int) -> dict[Key, Seen]:
        return await self.store.templates_touched(int(time.time()) - LOOKBACK_SECONDS, after_tid)

    async def baseline(self) -> None:
        """Remember where the database is now (taken before the start-up pass)."""
        self._token, _ = await self.store.change_token()
        self._totals = await self.store.template_totals()
        self._counts = await self.store.template_counts()
        if self._totals[0] >= LARGE_BOARD and not await self.store.poll_index():
            log.info(
                "%d templates and no poll index: each poll that finds a change scans the table; "
                "'mybb-sync index --add' makes it read only the rows saved", self._totals[0],
            )  # fmt: skip
        self._recent = await self._touched(self._totals[1])
        self._sheets = await self.store.stylesheet_markers()
        self._folders = await self._folder_names()

    async def poll(self, service: PollTarget) -> tuple[set[str], set[str]]:
        """One poll: (paths to look at, prefixes to rescan)."""
        token, settled = await self.store.change_token()
        if self._totals is None or (token == self._token and settled):
            return set(), set()
        self._token = token
        prefixes: set[str] = set()
        folders = await self._folder_names()
        if folders != self._folders:
            prefixes.add("")  # a set or theme came, went or moved: compare everything
        self._folders = folders
        sheets = await self.store.stylesheet_markers()
        if sheets != self._sheets:
            prefixes.add(STYLES_DIR)
        self._sheets = sheets
        return await self._template_paths(service), prefixes

    async def _template_paths(self, service: PollTarget) -> set[str]:
        """Saved rows (``dateline`` in the look-back, or a saved MD5 other than the last poll's),
        new rows (``tid`` above the last highest), and, only when rows left the table, the sets
        whose row counts moved, compared title by title with the state."""
        assert self._totals is not None
        before = self._totals
        self._totals = await self.store.template_totals()
        found = await self._touched(before[1])
        changed = news(self._recent, found)
        self._recent = found
        added = [key for key, seen in found.items() if seen[0] > before[1]]
        service.own_writes.expire()
        by_sid: dict[int, list[str]] = {}
        for sid, title in changed:
            if not service.own_writes.ours(sid, title, found[sid, title]):
                by_sid.setdefault(sid, []).append(title)
        for sid, _ in added:
            self._counts[sid] = self._counts.get(sid, 0) + 1
        if lost_rows(before, self._totals, len(added)):
            counts = await self.store.template_counts()
            for sid in counts_moved(self._counts, counts):  # rows gone (beyond those just added)
                titles = await self.store.template_titles(sid)
                by_sid.setdefault(sid, []).extend(titles ^ await service.known_titles(sid))
            self._counts = counts
        if not by_sid:
            return set()
        catalog = await service.current_catalog()
        return {path for sid, titles in by_sid.items() for path in template_paths(catalog, sid, titles)}

    async def run(self, service: PollTarget) -> None:
        """Poll forever; while the database is away, polls are skipped and polling goes on."""
        while True:
            await anyio.sleep(self.interval)  # the polling period, not synchronisation
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

    async def current_catalog(self) -> Catalog: ...

    async def known_titles(self, sid: int) -> set[str]:
        """Titles whose files were last agreed with a row of ``sid``."""
        ...
