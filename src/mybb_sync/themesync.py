"""Each theme's ``theme.json`` against the forum: the three-way rule, the Admin CP's writes.

The decisions are :mod:`.themefile`'s and :func:`.reconcile.decide`'s; this shell reads the
files and rows, keeps the base (the hash of the text last agreed) in the state store's meta
under ``theme.json:<tid>``, writes a file atomically when the database moved, and applies a
file's change as the Admin CP's forms would (rows, rebuilt lists, datacache) when the file
moved. A file it cannot take (no JSON, an unknown key, what the Admin CP refuses) is said
once, listed by ``status`` as invalid, and nothing is written.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from .atomic import ABSENT, Expect, Write, Written, write_files
from .catalog import Catalog
from .errors import MybbSyncError
from .files import FileRead, Root, read_files, stat_files
from .importer import ForumCache
from .layout import Kind
from .reconcile import Action, content_hash, decide
from .report import ExportReport
from .rows import Stylesheet, Theme
from .state import FileStat, Problem, ProblemKind, State, proves_unchanged
from .store import Store
from .themefile import editable, parse_meta, plan_meta, read_meta, render_meta, theme_file_path

log = logging.getLogger(__name__)

MAX_BYTES = 1 << 20  # a theme's settings are a few KB; anything near this is no settings file
CONFLICT = "changed in the file and in the database since they last agreed; delete the file to take the database's"


def base_key(tid: int) -> str:
    return f"theme.json:{tid}"


def _hash(text: str | None) -> str | None:
    return None if text is None else content_hash(Kind.STYLESHEET, text)


def editor_theme_check(forum: ForumCache) -> Callable[[str], bool]:
    """Edit Theme's test: ``jscripts/sceditor/themes/<name>`` is a file of the forum."""
    folder: Path = forum.root.path.parent.parent / "jscripts" / "sceditor" / "themes"
    return lambda name: (folder / name).is_file()


@dataclass(frozen=True)
class Base:
    """The hash of the text last agreed, and the file's stat when it was known to hold it."""

    hash: str | None
    stat: FileStat | None = None
    checked_ns: int | None = None

    @classmethod
    def load(cls, value: str | None) -> Base:
        if value is None:
            return cls(None)
        data = json.loads(value)
        stat = data.get("stat")
        return cls(data["hash"], FileStat(*stat) if stat else None, data.get("checked_ns"))

    def dump(self) -> str:
        stat = None if self.stat is None else [self.stat.size, self.stat.mtime_ns, self.stat.ino]
        return json.dumps({"hash": self.hash, "stat": stat, "checked_ns": self.checked_ns})

    def proves(self, current: FileStat | None, racy_ns: int) -> bool:
        """Whether the file's stat now proves it still holds the base (no need to read it)."""
        return proves_unchanged(self.stat, self.checked_ns, current, racy_ns)


def settings_files(catalog: Catalog, tids: Sequence[int]) -> dict[int, str]:
    """The settings file of each editable theme among ``tids``."""
    return {tid: theme_file_path(catalog.themes[tid].name) for tid in tids if tid in catalog.themes and editable(tid)}


class ThemeFiles:
    """The settings files of the themes a pass covers; remembers what it said, so each
    refusal and conflict is logged once (``status`` lists them all the while)."""

    def __init__(self, root: Root, state: State, limiter: anyio.CapacityLimiter, writer: anyio.CapacityLimiter) -> None:
        self.root = root
        self.state = state
        self.limiter = limiter  # reads and state-store calls (the exporter's)
        self.writer = writer  # file writes: one thread at a time (the exporter's, atomic.write_files)
        self._said: dict[str, str] = {}
        self.forum: ForumCache | None = None  # the service's: a file's change rebuilds lists from its cache files

    async def sync(
        self,
        store: Store,
        files: dict[int, str],
        report: ExportReport,
        *,
        two_way: bool,
        force: bool = False,
        take_disk: bool = False,
        outward: bool = True,
        dry_run: bool = False,
    ) -> None:
        """Settle each theme's file (``files``: tid -> path). Without ``two_way`` (an export), a
        file changed on disk is left as it is; ``force`` overwrites it, ``take_disk`` saves it
        whatever the database holds (``resolve``, ``push --force``). Without ``outward``
        (``push``), a file the database moved on from is left as it is (skipped). A ``dry_run``
        fills ``report`` with what would be done and writes nothing, nor logs or records it."""
        if files:
            await self._sync(store, files, report, two_way, force, take_disk, outward, dry_run)

    async def _sync(
        self, store: Store, files: dict[int, str], report: ExportReport,
        two_way: bool, force: bool, take_disk: bool, outward: bool, dry: bool,
    ) -> None:  # fmt: skip
        report.seen.update(files.values())
        bases = await anyio.to_thread.run_sync(
            lambda: {tid: Base.load(self.state.meta(base_key(tid))) for tid in files}
        )
        seen_ns = time.time_ns()
        stats = await anyio.to_thread.run_sync(stat_files, self.root, list(files.values()))
        trusted = not (force or take_disk)
        proven = {p for tid, p in files.items() if trusted and bases[tid].proves(stats[p], self.root.racy_ns)}
        to_read = [p for p in files.values() if p not in proven]
        reads = {r.path: r for r in await anyio.to_thread.run_sync(read_files, self.root, to_read, MAX_BYTES)}
        themes, sheets = await store.themes(), await store.stylesheets()
        for tid, path in files.items():
            db_text = render_meta(read_meta(themes, sheets, tid))
            read = reads.get(path)
            if read is None:  # its stat proves it holds the base: only the rows can have moved
                if _hash(db_text) == bases[tid].hash:
                    report.unchanged += 1
                elif outward:
                    await self._write(tid, path, db_text, stats[path], report, dry)
                else:
                    report.skipped.append(path)
                continue
            if read.error is not None:
                await self._problem(path, ProblemKind.INVALID, read.error, report, dry)
                continue
            try:
                disk = None if read.data is None else read.data.decode("utf-8")
            except UnicodeDecodeError:
                await self._problem(path, ProblemKind.INVALID, "not valid UTF-8; nothing written", report, dry)
                continue
            if (disk is None or force) and not outward:
                report.skipped.append(path)
                continue
            if disk is None or force:
                await self._write(tid, path, db_text, ABSENT if read.stat is None else None, report, dry)
                continue
            action = decide(_hash(disk), _hash(db_text), None if take_disk else bases[tid].hash)
            action = Action.IMPORT if take_disk and action is Action.CONFLICT else action
            if action is Action.IMPORT and two_way:
                if await self._import(store, themes, sheets, tid, read, disk, seen_ns, report, dry):
                    themes, sheets = await store.themes(), await store.stylesheets()
            elif action in (Action.IMPORT, Action.CONFLICT):
                detail = CONFLICT if two_way else "changed on disk: not overwritten (--force takes the database's)"
                await self._problem(path, ProblemKind.CONFLICT, detail, report, dry)
                report.conflicts.append(path)
            elif action is Action.EXPORT and not outward:
                report.skipped.append(path)
            elif action is Action.EXPORT:
                await self._write(tid, path, db_text, read.stat, report, dry)
            else:  # NOTHING or ADOPT: the file and the rows agree
                report.unchanged += action is Action.NOTHING
                report.adopted += action is Action.ADOPT
                await self._agreed(tid, path, Base(_hash(db_text), read.stat, seen_ns), dry)

    async def resolve(self, store: Store, catalog: Catalog, path: str, take: str) -> str:
        """``resolve --take disk|db`` of a theme's settings file: save the file, or rewrite it."""
        tids = [tid for tid, p in settings_files(catalog, list(catalog.themes)).items() if p == path]
        if not tids:
            raise MybbSyncError(f"{path} is no settings file of a theme of this forum")
        report = ExportReport()
        await self.sync(store, {tids[0]: path}, report, two_way=True, force=take == "db", take_disk=take == "disk")
        if problem := (report.refused + report.errors + report.recheck):
            raise MybbSyncError(f"cannot take the {'file' if take == 'disk' else 'database'}'s: {problem[0]}")
        return f"{path}: took the {'file' if take == 'disk' else 'database'} version"

    async def _import(
        self,
        store: Store,
        themes: list[Theme],
        sheets: list[Stylesheet],
        tid: int,
        read: FileRead,
        disk: str,
        seen_ns: int,
        report: ExportReport,
        dry: bool,
    ) -> bool:
        """The file's change as the Admin CP's forms save it; False if refused (nothing written).
        ``dry`` (as for each method below): a dry run, said in ``report``, nothing done."""
        path, forum = read.path, self.forum
        if forum is None:
            why = "theme.json imports need --mybb-root (the theme's lists are rebuilt from its cache files)"
            await self._problem(path, ProblemKind.INVALID, why, report, dry)
            return False
        try:
            plan = plan_meta(
                themes, sheets, tid, parse_meta(disk),
                templatesets={s.sid for s in await store.template_sets()},
                editor_theme_exists=editor_theme_check(forum), cache_file_mtime=forum.mtime,
            )  # fmt: skip
        except ValueError as exc:
            await self._problem(path, ProblemKind.INVALID, f"{exc}; nothing written", report, dry)
            return False
        if dry:
            report.changed.append((path, "import"))
            return False
        if plan.steps:
            await store.set_stylesheet_attachments(plan.attachments)
            await store.save_theme_lists(plan.themes, plan.default_theme)
        report.imported += 1
        report.changed.append((path, "import"))
        log.info(
            "imported %s -> theme %d settings (%s)", path, tid, ", ".join(plan.steps) or "nothing to change",
            extra={"event": "imported", "path": path, "theme": tid},
        )  # fmt: skip
        stored = render_meta(read_meta(await store.themes(), await store.stylesheets(), tid))
        if stored != disk:  # the file shows what was stored (a colour 'none', the order normalised)
            await self._write(tid, path, stored, read.stat, report, dry)
        else:
            await self._agreed(tid, path, Base(_hash(stored), read.stat, seen_ns), dry)
        return bool(plan.steps)

    async def _write(self, tid: int, path: str, text: str, expect: Expect, report: ExportReport, dry: bool) -> None:
        if dry:
            report.changed.append((path, "export"))
            return
        [result] = await write_files(self.root, [Write(path, text.encode("utf-8"), expect)], self.writer)
        if isinstance(result, Written):
            report.written += 1
            report.bytes += result.stat.size
            report.changed.append((path, "export"))
            log.info(
                "exported %s (%d bytes)", path, result.stat.size,
                extra={"event": "exported", "path": path, "bytes": result.stat.size},
            )  # fmt: skip
            await self._agreed(tid, path, Base(_hash(text), result.stat, result.seen_ns), dry)
        elif result.changed:  # the file moved under us: the next look decides again
            report.recheck.append(path)
        else:
            await self._problem(path, ProblemKind.ERROR, result.reason, report, dry)
            report.errors.append(f"{path}: {result.reason}")

    async def _agreed(self, tid: int, path: str, base: Base, dry: bool) -> None:
        """Record the base both sides agree on, and clear what was said about the file."""
        if dry:
            return
        self._said.pop(path, None)

        def record() -> None:
            self.state.set_meta(base_key(tid), base.dump())
            self.state.clear_problems([path])

        await anyio.to_thread.run_sync(record, limiter=self.limiter)

    async def _problem(self, path: str, kind: ProblemKind, detail: str, report: ExportReport, dry: bool) -> None:
        """Say it once (a file event and a poll may both meet it) and list it in ``status``."""
        if kind is ProblemKind.INVALID:
            report.refused.append(f"{path}: {detail}")
        if dry or self._said.get(path) == detail:
            return
        self._said[path] = detail
        said = {ProblemKind.CONFLICT: "conflict:", ProblemKind.INVALID: "refused"}.get(kind, "error:")
        log.warning("%s %s: %s", said, path, detail, extra={"event": kind.value, "path": path})
        problem = Problem(path, kind, detail, time.time())
        await anyio.to_thread.run_sync(self.state.report, [problem], limiter=self.limiter)
