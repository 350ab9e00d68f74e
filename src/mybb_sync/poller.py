"""The database poller: notices edits made outside mybb-sync (Admin CP, plugins, other tools).

Each poll is one cheap query (the store's change token: MySQL's table
headers, SQLite's data_version). Only when a table may have changed does it
read per-set markers (count, max id, max dateline, sum of ids) and the lists
of sets and themes, and only for the sets whose markers moved does it fetch
titles. It never decides anything: it hands the
affected paths (or a rescan) to the reconciler, which compares them with the
state like any file event, so our own writes come back as "nothing to do".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import anyio

from .catalog import Catalog
from .errors import DatabaseUnavailable, UnsafeName
from .layout import GLOBAL_SID, MASTER_SID, STYLES_DIR
from .store import Seen, Store, TableMarker

if TYPE_CHECKING:
    from .service import Pending

log = logging.getLogger(__name__)

RECENT_SECONDS = 3  # saves this recent may hide behind an equal dateline
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


@dataclass(frozen=True)
class TemplateChanges:
    """What moved in ``templates`` between two marker snapshots."""

    saved_since: dict[int, int] = field(default_factory=dict)  # sid -> dateline to look from
    membership: frozenset[int] = frozenset()  # sids that gained or lost rows


def diff_markers(old: dict[int, TableMarker], new: dict[int, TableMarker]) -> TemplateChanges:
    """Pure: which sids changed, and which may have gained or lost rows."""
    saved: dict[int, int] = {}
    membership: set[int] = set()
    for sid in old.keys() | new.keys():
        before, after = old.get(sid), new.get(sid)
        if before == after:
            continue
        # Saves in the same second as the old maximum are looked at again.
        saved[sid] = before.max_time if before is not None else 0
        if before is None or after is None or before.rows != after.rows or before.id_sum != after.id_sum:
            membership.add(sid)
    return TemplateChanges(saved, frozenset(membership))


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
        self._templates: dict[int, TableMarker] | None = None
        self._sheets: dict[int, TableMarker] | None = None
        self._folders: object = None

    async def _folder_names(self) -> object:
        """The sets and themes (ids, names, parents): a change means folders come or go."""
        sets = await self.store.template_sets()
        themes = await self.store.themes()
        return (tuple((s.sid, s.title) for s in sets), tuple((t.tid, t.name, t.pid) for t in themes))

    async def baseline(self) -> None:
        """Remember where the database is now (taken before the start-up pass)."""
        self._token, _ = await self.store.change_token()
        self._templates = await self.store.template_markers()
        self._sheets = await self.store.stylesheet_markers()
        self._folders = await self._folder_names()

    async def poll(self, service: PollTarget) -> tuple[set[str], set[str]]:
        """One poll: (paths to look at, prefixes to rescan)."""
        token, settled = await self.store.change_token()
        if self._templates is None or (token == self._token and settled):
            return set(), set()
        self._token = token
        paths: set[str] = set()
        prefixes: set[str] = set()
        folders = await self._folder_names()
        if folders != self._folders:
            prefixes.add("")  # a set or theme came, went or moved: compare everything
        self._folders = folders
        sheets = await self.store.stylesheet_markers()
        if sheets != self._sheets:
            prefixes.add(STYLES_DIR)
        self._sheets = sheets
        templates = await self.store.template_markers()
        changes = diff_markers(self._templates, templates)
        self._templates = templates
        catalog = await service.current_catalog()
        # dateline has whole seconds: a second save within the second of the last
        # one moves no marker, so the newest second of every recently saved set is
        # read again (our own saves then come back as "nothing to do").
        saved_since = dict(changes.saved_since)
        recent = time.time() - RECENT_SECONDS
        for sid, marker in templates.items():
            if marker.max_time >= recent:
                saved_since[sid] = min(saved_since.get(sid, marker.max_time), marker.max_time)
        service.own_writes.expire()
        for sid, since in saved_since.items():
            saved = await self.store.templates_since(sid, since)
            news = [title for title, seen in saved.items() if not service.own_writes.ours(sid, title, seen)]
            paths |= template_paths(catalog, sid, news)
        for sid in changes.membership:
            now_titles = await self.store.template_titles(sid)
            paths |= template_paths(catalog, sid, now_titles ^ await service.known_titles(sid))
        return paths, prefixes

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
