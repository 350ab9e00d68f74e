"""The service's core: one reconciler that takes what is pending and settles it.

:mod:`.serve` starts it among the service's tasks (the task tree is there).
Nothing but the reconciler writes the database or the state store. It takes
all that is pending at once, and files touched while it works join the batch
in hand, chunk by chunk: a single edit is handled at once, and a burst is
coalesced per path (the disk is re-read, so the last write wins) into few
round trips, as one stream rather than in rounds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import anyio
import anyio.abc
import anyio.to_thread

from . import layout
from .catalog import Catalog, load_catalog
from .config import Settings
from .deletions import Deletions
from .engine import Decision, Entry, plan
from .entries import BATCH
from .errors import DatabaseUnavailable, DiskUnavailable, MybbSyncError
from .export import Exporter, TwoWay
from .files import Root
from .handle import Status
from .importer import ForumCache, Imported, import_stylesheets, import_templates
from .layout import Kind, under
from .parallel import in_parallel
from .pending import Batch, Pending
from .places import moved_away, places
from .poller import RecentWrites
from .reconcile import Action
from .report import ExportReport
from .reverts import Reverts
from .scope import Scope, scope_folders, select_scope
from .selection import EVERYTHING, Filter, Selection
from .state import Problem, ProblemKind, State
from .store import Store, seen
from .stylesheets import effective_stylesheets
from .systemd import status_line
from .themefile import theme_of
from .timers import Timers
from .tree import walk_tree
from .watch import Passed, Rescan, Touched, Watcher
from .writers import CATCH_UP_SECONDS, Writers

log = logging.getLogger(__name__)

RETRY_MIN, RETRY_MAX = 0.5, 30.0  # seconds between attempts while the database is away
STREAM_SECONDS = 2.0  # a batch takes in files touched meanwhile for this long, then ends


@dataclass(frozen=True)
class Tuning:
    """How the reconciler paces its work; the defaults are what the benchmarks were run with.
    Tests pass smaller ones to make a chunk or a window edge happen with a few files."""

    batch: int = BATCH  # files decided, imported and written together (a chunk)
    stream_seconds: float = STREAM_SECONDS  # how long a batch takes in files touched meanwhile


DEFAULT_TUNING = Tuning()


class Service:
    """One sync root and one board: the reconciler, and the operations a handle or the control
    socket asks of it."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        root: Root,
        state: State,
        tuning: Tuning = DEFAULT_TUNING,
        selection: Selection = EVERYTHING,
    ) -> None:
        self.settings = settings
        self.selection = selection  # what this service covers (``watch --set/--theme``)
        self.store = store
        self.root = root
        self.state = state
        self.tuning = tuning
        self.exporter = Exporter(root, state, batch=tuning.batch)
        self.exporter.filter = Filter.of_root(root.path, selection)
        self.forum_cache = ForumCache(settings.mybb_root) if settings.mybb_root is not None else None
        self.exporter.theme_files.forum = self.forum_cache
        self.pending = Pending()
        self.own_writes = RecentWrites()  # what our imports stored: the poller's echo filter
        self.catalog: Catalog | None = None
        self._status = Status(root=str(root.path))
        self._resumed = anyio.Event()
        self._resumed.set()
        self._writer = anyio.Lock()  # held by whoever decides and writes: one at a time
        self._handled = 0  # Pending.seq of the last batch handled
        self.finished = anyio.Event()
        self._progress = anyio.Event()  # set (and replaced) after each handled batch
        self._ignored = {p.path: p.detail for p in state.problems(ProblemKind.IGNORED)}  # said already
        self.timers = Timers(self.pending, self._progressed)  # second looks (grace periods, files to hold still)
        self.writers = Writers(root, self._later)  # files still being written: no pass imports them
        self.reverts = Reverts(settings, root, state, store, self.exporter.limiter, self._later)
        self._unsure_through = 0  # batches up to this Pending.seq meet writers inotify did not report
        self.writers.unsure = lambda: self._handled < self._unsure_through
        self._outage: type[MybbSyncError] | None = None  # the outage the last batch met, if any

    # -- control -------------------------------------------------------------

    def status(self) -> Status:
        self._status.pending = len(self.pending.paths) + len(self.pending.prefixes)
        return self._status

    async def status_line(self, *, starting: bool) -> str:
        """What systemd shows for the service (``STATUS=``)."""
        status = self.status()
        tracked, problems = await anyio.to_thread.run_sync(self.state.counts)
        return status_line(
            starting=starting, files=tracked, pending=status.pending, conflicts=problems.get(ProblemKind.CONFLICT, 0),
            database_up=status.database_up, disk_up=status.disk_up, paused=status.paused,
        )  # fmt: skip

    def pause(self) -> None:
        if not self._status.paused:
            self._status.paused = True
            self._resumed = anyio.Event()
            log.info("paused: changes are recorded and applied on resume")

    def resume(self) -> None:
        if self._status.paused:
            self._status.paused = False
            self._resumed.set()
            log.info("resumed")

    async def request(self, paths: Sequence[str] = (), prefixes: Sequence[str] = ()) -> None:
        """Queue work and wait until the reconciler has handled it, everything before it, and
        the second looks pending (a file held until it stops changing, a deletion in its grace
        period): a rescan is done when what it found is settled, not merely looked at."""
        target = self.pending.add(paths, prefixes)
        while self._handled < max(target, self.timers.last_seq) or self.timers.outstanding:
            await self._progress.wait()

    async def until_idle(self) -> None:
        """Return once nothing is pending and no batch is in hand (the poller waits for this)."""
        while self.pending or self._writer.locked():
            await self._progress.wait()

    # -- the reconciler ------------------------------------------------------

    async def reconcile_forever(self) -> None:
        """Take what is pending and handle it, over and over.

        A batch is not shielded as a whole, only each part of it that writes
        (:meth:`Exporter.apply`): a stop waits for the parts in hand, never for a
        whole backlog, and what was left undone is found by the next start-up's
        reconcile (the state store still holds the old bases).
        """
        delay = RETRY_MIN
        while True:
            await self.pending.wait()
            await self._resumed.wait()
            batch = self.pending.take()
            try:
                async with self._writer:
                    await self.handle(batch)
            except MybbSyncError as exc:
                # The database is away or refused a write (permissions, a crashed MyISAM table,
                # a trigger), or the disk is full or read-only: nothing is dropped, the batch is
                # retried with back-off, and an outage is said once, when it starts.
                self.pending.add(sorted(batch.paths), sorted(batch.prefixes))
                self._note_error(str(exc))
                count = len(batch.paths) + len(batch.prefixes)
                outage = type(exc) if isinstance(exc, DatabaseUnavailable | DiskUnavailable) else None
                if outage is None:
                    log.error("%s; %d change(s) kept pending, retrying", exc, count)
                elif outage is not self._outage:
                    log.warning("%s; %d change(s) kept pending, retrying", exc, count, extra={"pending": count})
                self._outage = outage
                self._status.database_up = outage is not DatabaseUnavailable
                self._status.disk_up = outage is not DiskUnavailable
                await anyio.sleep(delay)  # back-off between attempts, not synchronisation
                delay = min(delay * 2, RETRY_MAX)
                continue
            if self._outage is DatabaseUnavailable:
                log.info("database is back; pending changes applied")
            elif self._outage is DiskUnavailable:
                log.info("writing to %s works again; pending changes applied", self.root.path)
            self._outage = None
            delay = RETRY_MIN
            self._status.database_up = self._status.disk_up = True
            self._handled = batch.seq
            self._progressed()

    def _note_error(self, message: str) -> None:
        self._status.last_errors = (self._status.last_errors + [f"{time.strftime('%H:%M:%S')} {message}"])[-10:]

    async def handle(self, batch: Batch) -> None:
        """One batch: database-driven passes first, then folders and touched paths.

        ``""`` (everything) and ``styles`` (the poller saw stylesheets or themes
        change) are passes over what the database shows; any other prefix is a
        folder that came, went or moved, and only its files need a look (the
        poller covers the database side).
        """
        if any(theme_of(p) is not None for p in batch.paths):  # a theme.json: settled by a pass over the styles
            batch.prefixes.add(layout.STYLES_DIR)
        prefixes = batch.prefixes
        full, styles = "" in prefixes, layout.STYLES_DIR in prefixes
        if full or styles:
            if full:
                self.exporter.filter = await anyio.to_thread.run_sync(Filter.of_root, self.root.path, self.selection)
            self.catalog = await load_catalog(self.store)
            scope = select_scope(self.catalog, self.selection)
            scope = scope if full else Scope((), scope.themes)
            report = await self.exporter.run(self.store, self.catalog, scope, two_way=self.two_way())
            self._account(report)
            await self._note_ignored(report.ignored, walked=scope_folders(self.catalog, scope))
            stale = await anyio.to_thread.run_sync(self._stale_paths, scope, report)
            batch.paths |= set(report.orphans) | stale | set(report.recheck)
        folders = sorted(p for p in prefixes if p not in ("", layout.STYLES_DIR))
        if folders:
            found, ignored = await anyio.to_thread.run_sync(self._under_folders, folders)
            batch.paths |= found
            await self._note_ignored(ignored, walked=folders)
        if batch.paths:
            await self.handle_paths(batch)

    def _under_folders(self, folders: list[str]) -> tuple[set[str], dict[str, str]]:
        """Files on disk, tracked files and files missing (not written while their folder was
        gone) below the folders, and what their walk passed over."""
        walks = [walk_tree(self.root, folder) for folder in folders]
        known = self.state.paths() + [p.path for p in self.state.problems(ProblemKind.MISSING)]
        found = {p for walk in walks for p in walk.files} | {p for folder in folders for p in under(folder, known)}
        return found, {p: why for walk in walks for p, why in walk.ignored.items()}

    async def _note_ignored(self, found: Mapping[str, str], walked: Sequence[str] = ()) -> None:
        """Say once, in the log and in ``status``, what is passed over where a file could be and
        why; what a walk of ``walked`` no longer finds is cleared."""
        found = {layout.printable(p): why for p, why in found.items() if self.filter.admits(p)}
        new = {p: why for p, why in found.items() if self._ignored.get(p) != why}
        gone = [p for p in self._ignored if p not in found and any(f == "" or p.startswith(f + "/") for f in walked)]
        for path, why in new.items():
            log.warning("ignored %s: %s", path, why, extra={"event": "ignored", "path": path})
        if not (new or gone):
            return
        self._ignored.update(new)
        for path in gone:
            del self._ignored[path]
        now = time.time()

        def record() -> None:
            self.state.clear_problems(gone)
            self.state.report([Problem(p, ProblemKind.IGNORED, why, now) for p, why in new.items()])

        await anyio.to_thread.run_sync(record)

    def _stale_paths(self, scope: Scope, report: ExportReport) -> set[str]:
        """Tracked files of the scope that the pass did not meet (their row is gone), but for old
        places of templates whose file the pass met in another group folder: their state moves
        there (:meth:`.state.State.move`)."""
        assert self.catalog is not None
        folders = scope_folders(self.catalog, scope)
        unseen = [p for p in self.state.paths() if p not in report.seen and self.filter.admits(p)]
        stale = {p for folder in folders for p in under(folder, unseen)}
        moved = moved_away(self.root, sorted(stale))
        self.state.move(moved)
        return stale - set(moved)

    @property
    def filter(self) -> Filter:
        return self.exporter.filter

    def _account(self, report: ExportReport) -> None:
        now = time.time()
        if report.imported:
            self._status.imports += report.imported
            self._status.last_import = now
        if report.written:
            self._status.exports += report.written
            self._status.last_export = now

    async def entries_for(self, paths: Sequence[str], *, doubles: dict[str, str] | None = None) -> list[Entry]:
        """Map files to their entities and fetch their rows, one query per set or theme.

        What the filter does not admit is left out, unsaid. A set template's file counts in
        any group folder of its set's folder; one never synced whose name is also in another
        group folder is a conflict (one template, two files), recorded and left out; with
        ``doubles`` given, it goes there instead of being recorded (a dry run records nothing).
        """
        if self.catalog is None:
            self.catalog = await load_catalog(self.store)
        catalog = self.catalog
        paths = [p for p in paths if self.filter.admits(p)]
        doubled = await anyio.to_thread.run_sync(places, self.root, self.state, catalog, paths, doubles is None)
        if doubles is not None:
            doubles.update((p, why) for p, why in doubled.items() if why)
        placed = catalog.place([p for p in paths if p not in doubled], self.root.temp_suffix)
        if placed.ignored:
            await self._note_ignored(placed.ignored)
        entries: list[Entry] = []
        sheets = None
        for (kind, owner), items in placed.groups.items():
            if kind is Kind.TEMPLATE:
                rows = await self.store.templates_by_title(owner, [name for _, name in items])
                entries += [Entry(path, kind, owner, name, rows.get(name)) for path, name in items]
            else:
                sheets = sheets if sheets is not None else await self.store.stylesheets()
                shown = effective_stylesheets(list(catalog.themes.values()), sheets, owner)
                entries += [Entry(path, kind, owner, name, shown.get(name)) for path, name in items]
        return entries

    async def _plan(self, entries: Sequence[Entry], read_all: bool = False) -> list[Decision]:
        """Decide ``entries``; a file still being written is left out (:class:`Writers`), unless
        ``read_all`` (``resolve``: the file as it is now was asked for)."""
        hold = None if read_all else self.writers.hold
        return await anyio.to_thread.run_sync(
            lambda: plan(self.root, self.state, entries, read_all=read_all, hold=hold),
            limiter=self.exporter.limiter,
        )

    async def handle_paths(self, batch: Batch) -> None:
        """The batch's files: decided with the rule and acted on in chunks handled two at a
        time, their rows looked up one chunk ahead (as a pass over a set does). Files
        touched meanwhile join the batch (:meth:`Pending.top_up`) a full chunk at a time,
        for at most ``STREAM_SECONDS``: a flood must not hold up for long those waiting for
        the batch to end (``wait_idle``, ``resolve``, polls).

        Stylesheets go in one chunk of their own, never two at once: their imports
        rebuild theme lists. So they join no batch in hand.
        """
        sheets = sorted(p for p in batch.paths if _is_stylesheet(p))
        others = sorted(p for p in batch.paths if not _is_stylesheet(p))

        streaming_until = time.monotonic() + self.tuning.stream_seconds

        async def chunks() -> AsyncIterator[list[Entry]]:
            if sheets:
                yield await self.entries_for(sheets)
            queue = others
            while queue:
                batch_size = self.tuning.batch
                for start in range(0, len(queue), batch_size):
                    yield await self.entries_for(queue[start : start + batch_size])
                streaming = not self._status.paused and time.monotonic() < streaming_until
                queue = self.pending.top_up(batch, batch_size, _is_stylesheet) if streaming else []

        # Each chunk is made when a worker has taken the last, so that a top-up gathers what
        # came while a chunk was handled, not a few paths at a time.
        await in_parallel(chunks(), self._handle_chunk, ready=0)

    async def _handle_chunk(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        report = ExportReport()
        await self.exporter.apply(await self._plan(entries), report, two_way=self.two_way())
        self._account(report)
        if report.recheck:
            self.pending.add(report.recheck)

    async def resolve(self, path: str, take: str) -> str:
        """Settle a conflict: ``take="disk"`` imports the file, ``"db"`` overwrites the file.

        A set copy's file deleted (held in a mass deletion, or kept by ``on_delete = ignore``):
        ``"disk"`` reverts the copy, ``"db"`` writes the file again.
        """
        if take not in ("disk", "db"):
            raise MybbSyncError("--take is 'disk' or 'db'")
        message = f"{path}: took the {'file' if take == 'disk' else 'database'} version"
        async with self._writer:
            if theme_of(path) is not None:  # a theme's settings file: taken as a whole
                return await self.exporter.theme_files.resolve(self.store, await self.current_catalog(), path, take)
            entries = await self.entries_for([path])
            if not entries:
                raise MybbSyncError(f"{path} is no template or stylesheet of this forum")
            [decision] = await self._plan(entries, read_all=True)
            report = ExportReport()
            if take == "db":
                if decision.entry.row is None:
                    raise MybbSyncError(f"the database has no row for {path}: delete the file instead")
                forced = replace(decision, action=Action.CONFLICT)
                await self.exporter.apply([forced], report, force=True)
            elif decision.disk_stat is None:
                await self._take_deletion(decision, report)
                message = f"{path}: took the file's deletion: reverted the set's copy"
            else:
                forced = replace(decision, action=Action.IMPORT)  # the file as it is now was asked for
                await self.exporter.apply([forced], report, two_way=replace(self.two_way(), written=None))
                if report.refused:
                    raise MybbSyncError(f"cannot take the file: {report.refused[0]}")
            if report.errors:
                raise MybbSyncError(report.errors[0])
            self._account(report)
            await anyio.to_thread.run_sync(self.state.clear_problems, [path])
            self.reverts.forget(path)
            self._status.held_deletions = self.reverts.held
        return message

    def writing(self) -> anyio.Lock:
        """Held by whoever decides and writes (``async with``): one pass at a time."""
        return self._writer

    async def current_catalog(self) -> Catalog:
        if self.catalog is None:
            self.catalog = await load_catalog(self.store)
        return self.catalog

    async def known_titles(self, sid: int) -> set[str]:
        return await anyio.to_thread.run_sync(self.state.names_agreed_with, Kind.TEMPLATE, sid)

    async def files_of_rows(self, tids: Sequence[int]) -> dict[int, list[tuple[str, tuple[int, str]]]]:
        return await anyio.to_thread.run_sync(self.state.files_of_rows, Kind.TEMPLATE, tids)

    async def _take_deletion(self, decision: Decision, report: ExportReport) -> None:
        """``resolve --take disk`` of a file that is gone: :meth:`Reverts.confirm`, then the
        file shows what the set shows now, its master template if there is one."""
        await self.reverts.confirm(decision)
        entries = await self.entries_for([decision.entry.path])
        await self.exporter.apply(await self._plan(entries), report, two_way=self.two_way())

    async def _on_deleted(self, decisions: Sequence[Decision]) -> Deletions:
        """A file gone whose template has a file in another group folder moved: never a deletion."""
        out = await self.reverts.on_deleted(decisions, moved=partial(moved_away, self.root))
        self._status.held_deletions = self.reverts.held
        return out

    def two_way(self) -> TwoWay:
        return TwoWay(
            importer=self._import, on_deleted=self._on_deleted, interrupt=self.store.interrupt,
            hold=self.writers.hold, written=self.writers.written, own_place=lambda path: self.catalog is None or self.catalog.own_place(path),
        )  # fmt: skip

    def _later(self, path: str, delay: float) -> None:
        """Look at ``path`` again after ``delay`` seconds."""
        self.timers.add(path, delay)

    def _progressed(self) -> None:
        """Wake whoever waits in :meth:`request` or :meth:`until_idle` to look again."""
        self._progress.set()
        self._progress = anyio.Event()

    async def _import(self, decisions: Sequence[Decision]) -> Imported:
        templates = await import_templates(self.store, [d for d in decisions if d.entry.kind is Kind.TEMPLATE])
        for row in templates.stored:
            self.own_writes.add(row.sid, row.title, seen(row))
        sheets = await import_stylesheets(
            self.store, self.forum_cache, [d for d in decisions if d.entry.kind is Kind.STYLESHEET]
        )
        for error in templates.errors + sheets.errors:
            self._note_error(error)
        return Imported(
            templates.states + sheets.states,
            templates.refused + sheets.refused,
            templates.recheck + sheets.recheck,
            templates.errors + sheets.errors,
        )

    # -- event intake ---------------------------------------------------------

    async def read_events(self, watcher: Watcher) -> None:
        """The watcher's news into :attr:`pending`; the files it sees being written go to
        :attr:`writers` (a pass leaves them alone until their close comes as news)."""
        self.writers.writing = watcher.writing
        self.writers.catch_up = partial(watcher.caught_up, CATCH_UP_SECONDS)
        async for news in watcher.news():
            if isinstance(news, Touched):
                self.writers.closed(news.paths)
                if paths := sorted(p for p in news.paths if self._concerns(p)):
                    self.pending.add(paths=paths)
            elif isinstance(news, Passed):
                await self._note_ignored(news.why)
            elif isinstance(news, Rescan):
                log.debug("rescan of %r: %s", news.prefix or "the root", news.reason)
                seq = self.pending.add(prefixes=[news.prefix])
                if news.lost:  # the writers of the files it finds are unknown: they must hold still
                    self._unsure_through = seq

    def _concerns(self, path: str) -> bool:
        """Whether a file touched could be synced or is to be said ignored (not ``sed -i``'s temp file)."""
        if not self.filter.admits(path):
            return False
        return (
            layout.parse(path) is not None
            or theme_of(path) is not None
            or layout.why_ignored(path, layout.Found.FILE, self.root.temp_suffix) is not None
        )

    async def rescan_every(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)  # a timer, not synchronisation
            self.pending.add(prefixes=[""])


def _is_stylesheet(path: str) -> bool:
    return path.startswith(layout.STYLES_DIR + "/")
