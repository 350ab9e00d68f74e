"""Export: database rows to files, atomically, durably, incrementally.

Rows stream from the database in batches (:mod:`.entries`); each batch is
planned against the state store and the disk in one worker-thread hop, and
the files that need writing are written by one thread at a time while the
next batches are planned, flushed or recorded. A bounded stream between
the reader and the writers keeps memory flat however large the board is.
A file changed on disk since its base is never overwritten (unless forced):
it is reported as a conflict.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import anyio
import anyio.to_thread

from . import layout
from ._version import __version__
from .atomic import ABSENT, NotWritten, Write, Written, write_files
from .catalog import Catalog
from .deletions import Deletions
from .engine import (
    Decision,
    Entry,
    Hold,
    agreed_state,
    plan,
    states_after_writes,
)
from .entries import BATCH, Batch, admitted, located_entries, stylesheet_entries
from .errors import DiskUnavailable
from .files import Root, missing, remove_files, split_path, stat_files
from .importer import Imported
from .layout import Kind, under
from .parallel import in_parallel
from .report import ExportReport
from .scope import Scope, scope_folders, scope_label
from .selection import Filter
from .state import FileStat, Problem, ProblemKind, State, Tracked
from .stopping import finish_within
from .store import Store
from .themesync import ThemeFiles, settings_files
from .tree import walk_tree
from .work import conflict_problem
from .work import sort as work_of

log = logging.getLogger(__name__)

IN_FLIGHT = 3  # batches handled at once: while one is written, the others are planned, flushed or recorded
Progress = Callable[[int, int], None]  # (done, total so far)


@dataclass(frozen=True)
class TwoWay:
    """Given to a pass run by the service: disk edits are imported through ``importer``."""

    importer: Callable[[Sequence[Decision]], Awaitable[Imported]]
    on_deleted: Callable[[Sequence[Decision]], Awaitable[Deletions]]  # what became of files found gone
    interrupt: Callable[[], Awaitable[None]]  # aborts their statements in flight (Store.interrupt)
    hold: Hold | None = None  # files still being written: left out of the pass (engine.plan)
    # Of files read and about to be imported, those being written after all (Writers.written).
    written: Callable[[Mapping[str, FileStat]], Awaitable[set[str]]] | None = None
    own_place: Callable[[str], bool] = lambda path: True  # whether a file belongs at this path (Catalog.own_place)


def layout_key(sid: int) -> str:
    """State meta key: the layout a full pass last left all of the set's files in."""
    return f"layout:set:{sid}"


def set_layout(catalog: Catalog, sid: int) -> str:
    """What a set's file paths depend on besides its rows: its folder name, the template groups, this version."""
    return f"{catalog.sets.get(sid, '')}|{','.join(sorted(catalog.groups))}|{__version__}"


class Exporter:
    """Writes what the database shows into the sync root."""

    def __init__(self, root: Root, state: State, *, workers: int = 4, batch: int = BATCH) -> None:
        self.batch = batch  # files decided and written together (a chunk)
        self.root = root
        self.state = state
        self.limiter = anyio.CapacityLimiter(workers)
        self.filter = Filter()  # what the pass covers (the ignore file, a command's selection)
        self._said: dict[str, str] = {}  # conflicts logged, until their file settles: said once
        self.writer = anyio.CapacityLimiter(1)  # files are written by one thread at a time (atomic.write_files)
        self.theme_files = ThemeFiles(root, state, self.limiter, self.writer)  # styles/<theme>/theme.json

    async def run(
        self,
        store: Store,
        catalog: Catalog,
        scope: Scope,
        *,
        force: bool = False,
        progress: Progress | None = None,
        two_way: TwoWay | None = None,
        only: Filter | None = None,
    ) -> ExportReport:
        """One pass over the scope: every file decided against its row, the state and the disk.

        A set that still shows exactly the rows its files were last agreed
        with (a digest on each side says so, whoever synced them since: this
        pass, the service's imports, its exports) is not read from the
        database at all: only the files whose stat moved are looked at.

        ``only`` narrows this pass (a command's selection) instead of :attr:`filter`.
        """
        flt = only or self.filter
        report = ExportReport()
        started = time.perf_counter()
        exported = report.seen
        done = 0
        layouts: dict[int, str] = {}  # sets read in full: their layout,
        unsettled: set[int] = set()  # and those where something was left for later

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(done, len(exported))

        async def batches() -> AsyncIterator[Batch]:
            for sid in scope.sets:
                layout_ = set_layout(catalog, sid)
                if await self._still_agreed(store, sid, layout_):
                    async for batch in self._moved_on_disk(store, catalog, sid, report, advance, flt):
                        yield batch, frozenset()
                    continue
                await anyio.to_thread.run_sync(self.state.set_meta, layout_key(sid), None, limiter=self.limiter)
                layouts[sid] = layout_
                skipped = len(report.skipped)
                async for batch, absent in located_entries(
                    store, self.root, catalog, sid, report, self.batch, self.limiter
                ):
                    batch = admitted(flt, batch)
                    exported.update(e.path for e in batch)
                    yield batch, absent
                if len(report.skipped) != skipped:
                    unsettled.add(sid)
            if scope.themes:
                batch = admitted(flt, await stylesheet_entries(store, catalog, scope.themes, report))
                exported.update(e.path for e in batch)
                yield batch, frozenset()

        async def export_batch(item: Batch) -> None:
            batch, absent = item
            settled = await self._export_batch(catalog, batch, force, report, two_way, absent)
            if not settled and batch and batch[0].kind is Kind.TEMPLATE:
                unsettled.add(batch[0].owner)
            advance(len(batch))

        created = await anyio.to_thread.run_sync(
            missing, self.root, scope_folders(catalog, scope), limiter=self.limiter
        )
        await in_parallel(batches(), export_batch, workers=IN_FLIGHT, ready=0)  # memory: see entries.BATCH
        files = {tid: p for tid, p in settings_files(catalog, scope.themes).items() if flt.admits(p)}
        await self.theme_files.sync(store, files, report, two_way=two_way is not None, force=force)
        report.orphans = await anyio.to_thread.run_sync(
            self._orphans, catalog, scope, exported, report, created, flt, limiter=self.limiter
        )
        for sid, layout_ in layouts.items():
            if sid not in unsettled and not any(
                under(f, report.orphans) for f in scope_folders(catalog, Scope((sid,), ()))
            ):
                await anyio.to_thread.run_sync(self.state.set_meta, layout_key(sid), layout_, limiter=self.limiter)
        report.seconds = time.perf_counter() - started
        return report

    async def _still_agreed(self, store: Store, sid: int, layout_: str) -> bool:
        """Whether the set still shows exactly the rows its files were last agreed with (one
        digest query on each side), in the layout a full pass last left them all in."""
        if await anyio.to_thread.run_sync(self.state.meta, layout_key(sid), limiter=self.limiter) != layout_:
            return False
        tracked = await anyio.to_thread.run_sync(self.state.digest_of, Kind.TEMPLATE, sid, limiter=self.limiter)
        return tracked is not None and tracked == await store.shown_digest(sid)

    async def _moved_on_disk(
        self,
        store: Store,
        catalog: Catalog,
        sid: int,
        report: ExportReport,
        advance: Callable[[int], None],
        flt: Filter,
    ) -> AsyncIterator[list[Entry]]:
        """A set whose rows all still equal the state's bases: each file's stat is checked
        against the state, and only the files it does not prove unchanged are read and
        decided with their rows, looked up by title in full batches.

        The whole set is scanned before the first row is looked up: the scan is a long
        run of small system calls, each giving up the interpreter lock, so beside running
        imports it slows to a crawl, and a backlog spread over the set would be imported
        at the pace of the scan. The lookups then run here, one batch ahead of the
        workers deciding and importing the batches before.
        """
        label = scope_label(catalog, Kind.TEMPLATE, sid)
        after = ""
        pending: list[tuple[str, str]] = []  # (path, title) of the moved files
        while True:
            states, moved = await anyio.to_thread.run_sync(self._page_moved, sid, after, limiter=self.limiter)
            if not states:
                break
            report.seen.update(s.path for s in states)
            still = [s for s in states if s.path not in moved]
            report.unchanged += len(still)
            report.per_scope[label] += len(still)
            for s in still:
                report.per_group[layout.group_of(s.name, catalog.groups)] += 1
            advance(len(still))
            pending += [(s.path, s.name) for s in states if s.path in moved]
            after = states[-1].name
        for start in range(0, len(pending), self.batch):
            chunk = pending[start : start + self.batch]
            rows = await store.templates_by_title(sid, [name for _, name in chunk])
            report.rows_read += len(rows)
            yield admitted(flt, [Entry(path, Kind.TEMPLATE, sid, name, rows.get(name)) for path, name in chunk])

    def _page_moved(self, sid: int, after: str) -> tuple[list[Tracked], set[str]]:
        """A page of the set's state rows, and the paths whose stat does not prove them unchanged."""
        states = self.state.page_of(Kind.TEMPLATE, sid, after, self.batch)
        stats = stat_files(self.root, [s.path for s in states])
        return states, {s.path for s in states if not s.unchanged(stats[s.path], self.root.racy_ns)}

    async def _export_batch(
        self,
        catalog: Catalog,
        batch: Sequence[Entry],
        force: bool,
        report: ExportReport,
        two_way: TwoWay | None,
        absent: frozenset[str],
    ) -> bool:
        """Decide and carry out one batch; True if every file ended agreed with its row (a file
        left to its writer did not). ``absent``: paths this pass's walk found no file at."""
        hold = two_way.hold if two_way is not None else None
        decisions = await anyio.to_thread.run_sync(
            lambda: plan(self.root, self.state, batch, hold=hold, absent=absent), limiter=self.limiter
        )
        for (kind, owner), count in Counter((d.entry.kind, d.entry.owner) for d in decisions).items():
            report.per_scope[scope_label(catalog, kind, owner)] += count  # a label per set, not per file
        report.per_group.update(
            layout.group_of(d.entry.name, catalog.groups) for d in decisions if d.entry.kind is Kind.TEMPLATE
        )
        settled = await self.apply(decisions, report, force=force, two_way=two_way)
        return settled and len(decisions) == len(batch)

    async def apply(
        self, decisions: Sequence[Decision], report: ExportReport, *, force: bool = False, two_way: TwoWay | None = None
    ) -> bool:
        """Carry out decisions: write files, import (two-way only), record state and problems.

        Returns True if every file ended agreed with its row (imports included) and none was
        removed, forgotten or left for later. Shielded (:func:`finish_within`): a cancelled
        pass stops between batches, not inside one, so no row is written without its new
        base recorded, unless the database holds a write past the stop's grace period.
        """
        return await finish_within(
            lambda: self._apply(decisions, report, force, two_way), two_way.interrupt if two_way else None
        )

    async def _apply(
        self, decisions: Sequence[Decision], report: ExportReport, force: bool, two_way: TwoWay | None
    ) -> bool:
        now = time.time()
        work = work_of(decisions, two_way=two_way is not None, force=force, racy_ns=self.root.racy_ns)
        writes, settled, imports, removals = work.writes, work.settled, work.imports, work.removals
        forget, deleted = work.forget, work.deleted
        moves: dict[str, str] = {}  # files moved to another group folder: their state goes with them
        report.unchanged += work.unchanged
        report.adopted += work.adopted
        report.forced += work.forced
        problems = [conflict_problem(d, now) for d in work.conflicts]
        rechecked: list[str] = []
        for problem in problems:
            report.conflicts.append(problem.path)
            self._say_conflict(problem)
        busy: set[str] = set()  # read, then found being written: left for their close
        if imports and two_way is not None and two_way.written is not None:
            busy = await two_way.written({d.entry.path: d.disk_stat for d in imports if d.disk_stat is not None})
            imports = [d for d in imports if d.entry.path not in busy]
        if imports and two_way is not None:
            intents = {d.entry.path: d.disk_hash for d in imports if d.disk_text is not None and d.disk_hash}
            await anyio.to_thread.run_sync(self.state.record_intents, intents, limiter=self.limiter)
            done = await two_way.importer(imports)
            settled += done.states
            report.imported += len(done.states)
            report.recheck += done.recheck
            rechecked += done.recheck
            for d, refusal in done.refused:
                if d.intent_landed and d.db_hash is not None:  # its row is ours already: settled
                    settled.append(agreed_state(d.entry, d.db_hash, d.disk_stat, d.seen_ns))
                    log.warning("cannot finish the save of %s: %s (its row is saved)", d.entry.path, refusal)
                    continue
                report.refused.append(f"{d.entry.path}: {refusal}")
                problems.append(Problem(d.entry.path, ProblemKind.INVALID, refusal.why, now))
                log.warning(
                    "refused %s: %s (the database keeps its content)", d.entry.path, refusal,
                    extra={"event": "refused", "path": d.entry.path, "refusal": refusal.kind.value},
                )  # fmt: skip
        if deleted and two_way is not None:
            gone = await two_way.on_deleted(deleted)
            forget += gone.reverted
            moves.update(gone.moved)
            report.recheck += gone.reverted + gone.recheck
            for d in deleted:
                if d.entry.path in gone.reverted or d.entry.path in gone.recheck or d.entry.path in gone.moved:
                    continue
                detail = gone.details.get(d.entry.path, "file deleted; the next export restores it")
                problems.append(Problem(d.entry.path, ProblemKind.MISSING, detail, now))
                if d.state is not None and d.state.stat is not None and not d.intent_landed:
                    # Seen gone: its old stat proves nothing now. Back in place with that stat
                    # (a folder moved back), it is read once, found unchanged, and no longer missing.
                    settled.append(replace(d.state, stat=None))
            problems += [Problem(path, ProblemKind.MISSING, why, now) for path, why in gone.held_with.items()]
        if two_way is not None and writes:
            away, nowhere = await anyio.to_thread.run_sync(
                self._folders_gone, writes, two_way.own_place, limiter=self.limiter
            )
            if away or nowhere:
                held = [w.path for w in writes if split_path(w.path)[0] in away]
                skipped = set(nowhere)
                writes = [w for w in writes if split_path(w.path)[0] not in away and w.path not in skipped]
                problems += [Problem(path, ProblemKind.MISSING, FOLDER_GONE, now) for path in held]
                for paths, why in ((held, "their folder is gone"), (nowhere, "no place of their templates")):
                    if paths:
                        log.info("not written, %s: %s", why, ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else ""))
        results = await write_files(self.root, writes, self.writer) if writes else []
        ok = [r for r in results if isinstance(r, Written)]
        unwritable: list[NotWritten] = []
        for r in results:
            if isinstance(r, NotWritten):
                if r.changed:
                    report.conflicts.append(r.path)
                    report.recheck.append(r.path)
                    problems.append(Problem(r.path, ProblemKind.CONFLICT, r.reason, now))
                elif two_way is not None and r.errno in DISK_ERRNOS:
                    unwritable.append(r)  # the service waits for the disk: kept pending, not a problem
                else:
                    report.errors.append(f"{r.path}: {r.reason}")
                    problems.append(Problem(r.path, ProblemKind.ERROR, r.reason, now))
        if two_way is not None:
            _log_exported(ok)
        report.written += len(ok)
        report.changed += [(r.path, "export") for r in ok] + [(path, "delete") for path, _ in removals]
        report.bytes += sum(r.stat.size for r in ok)
        settled += states_after_writes({d.entry.path: d for d in decisions}, ok)

        def record() -> None:
            if removals:
                forget.extend(remove_files(self.root, removals))
            self.state.put(settled)
            self.state.move(moves)
            self.state.delete(forget)
            self.state.report(problems)
            for s in settled:
                self._said.pop(s.path, None)

        await anyio.to_thread.run_sync(record, limiter=self.limiter)
        if unwritable:
            first = unwritable[0]
            cause = os.strerror(first.errno) if first.errno is not None else first.reason
            raise DiskUnavailable(
                f"cannot write {self.root.path}: {cause} ({len(unwritable)} file(s) waiting, e.g. {first.path})"
            )
        return not (problems or rechecked or deleted or removals or forget or busy)

    def _folders_gone(self, writes: Sequence[Write], own_place: Callable[[str], bool]) -> tuple[set[str], list[str]]:
        """The folders of new files that would have to be made again though the state still
        tracks files in them: moved or deleted by someone (a folder gone, as :mod:`.deletions`
        calls it). Nothing is written there: the folder's return would meet second copies of
        its templates, and a ``mv`` back would find its name taken. The service writes them
        once the folder is back (:meth:`.service.Service._under_folders`).

        And the new files that would make a folder that is no place of any of them (where
        ``own_place`` puts none of them): a group folder met under another name for an
        instant (a folder renamed and straight back) while this pass walked it. Their files
        are where the folder is now, and its return to its name brings them to the next look."""
        new: dict[str, list[str]] = {}
        for w in writes:
            if w.expect is ABSENT:
                new.setdefault(split_path(w.path)[0], []).append(w.path)
        chains: dict[str, list[str]] = {}
        for folder in new:
            parts = folder.split("/")
            chains[folder] = ["/".join(parts[: i + 1]) for i in range(len(parts))] if folder else []
        absent = missing(self.root, sorted({p for chain in chains.values() for p in chain}))
        gone: set[str] = set()
        nowhere: list[str] = []
        for folder, chain in chains.items():
            first = next((p for p in chain if p in absent), None)
            if first is None:
                continue
            if self.state.tracks_under(first):
                gone.add(folder)
            elif not any(own_place(path) for path in new[folder]):  # one look for a folder that is a place
                nowhere += new[folder]
        return gone, nowhere

    def _say_conflict(self, problem: Problem) -> None:
        """Log a conflict once (a file event and a database poll may both meet it), saying how to settle it."""
        if self._said.get(problem.path) == problem.detail:
            return
        self._said[problem.path] = problem.detail
        hint = "" if "resolve" in problem.detail else f"; settle it: mybb-sync resolve --take disk|db '{problem.path}'"
        log.warning(
            "conflict: %s: %s%s", problem.path, problem.detail, hint, extra={"event": "conflict", "path": problem.path}
        )

    def _orphans(
        self, catalog: Catalog, scope: Scope, exported: set[str], report: ExportReport, created: set[str], flt: Filter
    ) -> list[str]:
        """Files under the exported folders that stand for no database row (reported, never
        removed); what the walk passed over goes to ``report.ignored``. A folder the pass
        created is not walked: it holds only the files just written (a full first export
        would otherwise list them all once more), and what others put there meanwhile is
        reported by the next pass."""
        orphans: list[str] = []
        for folder in scope_folders(catalog, scope):
            if folder in created:
                continue
            walk = walk_tree(self.root, folder, exported)
            orphans += (rel for rel in walk.files if rel not in exported and flt.admits(rel))
            report.ignored.update((rel, why) for rel, why in walk.ignored.items() if flt.admits(rel))
        return sorted(orphans)


FOLDER_GONE = "its folder is gone (moved or deleted): written once the folder is back"
PER_FILE_LINES = 100
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})
"""Write errors of the disk rather than of one file: the service retries them until they pass."""


def _log_exported(written: Sequence[Written]) -> None:
    """The service's database -> file writes, a line each as imports get (a chunk of a full
    start-up export gets one line: a line per file would be 100,000 lines)."""
    if len(written) > PER_FILE_LINES:
        log.info(
            "exported %d files", len(written), extra={"event": "exported", "bytes": sum(w.stat.size for w in written)}
        )
        return
    for w in written:
        log.info(
            "exported %s (%d bytes)",
            w.path,
            w.stat.size,
            extra={"event": "exported", "path": w.path, "bytes": w.stat.size},
        )
