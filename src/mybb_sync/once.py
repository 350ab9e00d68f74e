"""One-shot passes for git and CI: ``push`` (files to database), ``pull`` (database to
files) and ``sync`` (both ways, what ``watch`` does when it starts), then exit.

Each is the service's own full pass: files and rows decided with the same
three-way rule, carried out by the same exporter and importer (refusals,
security check, stylesheet saves and cache files), narrowed to one direction
by :func:`choose`. A dry run decides, says what it would do, and writes
nothing: not the database, not a file, not the state store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.to_thread

from .catalog import load_catalog
from .engine import Decision, Entry, plan
from .entries import BATCH, located_entries, stylesheet_entries
from .importer import import_refusal
from .layout import Kind, under
from .places import moved_away
from .reconcile import Action
from .report import ExportReport
from .scope import scope_folders, select_scope
from .selection import Filter, Selection
from .state import Problem, ProblemKind
from .themesync import settings_files
from .tree import walk_files
from .work import conflict_detail

if TYPE_CHECKING:
    from .service import Service


class Direction(StrEnum):
    PUSH = "push"
    PULL = "pull"
    SYNC = "sync"


class Step(NamedTuple):
    """One line of a plan or report: a path, what is (or would be) done to it, and why."""

    path: str
    action: str  # one of ACTIONS
    detail: str = ""


IMPORT, EXPORT, DELETE, REVERT = "import", "export", "delete", "revert"
CONFLICT, REFUSE, SKIP, MISSING = "conflict", "refuse", "skip", "missing"
CHANGES = frozenset({IMPORT, EXPORT, DELETE, REVERT})  # a database row or a file changes
TROUBLE = frozenset({CONFLICT, REFUSE})  # needs a person: exit 3


def choose(
    decisions: Sequence[Decision], direction: Direction, *, force: bool, revert_deletions: bool
) -> tuple[list[Step], list[Decision]]:
    """What a pass in ``direction`` does with each decision (pure): the plan's steps, and the
    decisions to carry out (those it leaves alone are not carried out, so their files, rows and
    bases stay as they are for a later pass)."""
    steps: list[Step] = []
    chosen: list[Decision] = []
    inward, outward = direction is not Direction.PULL, direction is not Direction.PUSH
    for d in decisions:
        path, action = d.entry.path, d.action
        if action in (Action.NOTHING, Action.ADOPT, Action.FORGET):
            chosen.append(d)
        elif action is Action.IMPORT and inward:
            steps.append(Step(path, REFUSE, d.invalid) if d.invalid else Step(path, IMPORT))
            chosen.append(d)
        elif action is Action.IMPORT and d.entry.row is None:
            steps.append(Step(path, SKIP, "no row: 'mybb-sync push' imports it"))
        elif action is Action.EXPORT or (action is Action.DISK_DELETED and not inward):
            if outward:
                why = "new" if d.state is None else "" if d.disk_stat is not None else "file was deleted"
                steps.append(Step(path, EXPORT, why))
                chosen.append(d)
            else:
                steps.append(Step(path, SKIP, "changed in the database: 'mybb-sync pull' takes it"))
        elif action is Action.DELETE_FILE and not outward:
            steps.append(Step(path, SKIP, "its row was deleted: 'mybb-sync pull' deletes the file"))
        elif action is Action.DELETE_FILE:
            if d.disk_stat is not None:
                steps.append(Step(path, DELETE, "its row was deleted"))
            chosen.append(d)
        elif action is Action.DISK_DELETED:
            steps.append(
                Step(path, REVERT, "file deleted") if revert_deletions else Step(path, MISSING, "file deleted")
            )
            chosen.append(d)
        elif force and direction is Direction.PUSH and d.disk_stat is not None:
            steps.append(Step(path, REFUSE, d.invalid) if d.invalid else Step(path, IMPORT, "--force"))
            chosen.append(replace(d, action=Action.IMPORT))
        elif force and direction is Direction.PULL and d.entry.row is not None:
            steps.append(Step(path, EXPORT, "--force"))
            chosen.append(d)
        else:  # a conflict, or (pull) a file changed on disk only: reported, left alone
            steps.append(Step(path, CONFLICT, _conflict_hint(d, direction)))
            chosen.append(d)
    return steps, chosen


def _conflict_hint(d: Decision, direction: Direction) -> str:
    hint = "--force takes the file" if direction is Direction.PUSH else "--force takes the database's"
    if direction is Direction.SYNC:
        hint = f"mybb-sync resolve --take disk|db {d.entry.path}"
    return f"{conflict_detail(d)}; {hint}"


@dataclass
class OnceReport:
    """What a one-shot pass did (or would do); ``as_json()`` is its ``--json`` document."""

    direction: Direction
    dry_run: bool
    steps: list[Step] = field(default_factory=list)
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    exported: dict[str, Any] = field(default_factory=dict)  # a pull's :class:`ExportReport` (its JSON)

    def count(self, action: str) -> int:
        return sum(1 for s in self.steps if s.action == action)

    @property
    def exit_code(self) -> int:
        """0 done (or, dry, nothing would change), 3 refused or in conflict, 4 (dry) something
        would change, 1 a file or row could not be written."""
        if self.errors:
            return 1
        if any(s.action in TROUBLE for s in self.steps):
            return 3
        return 4 if self.dry_run and any(s.action in CHANGES for s in self.steps) else 0

    def summary(self) -> str:
        if self.exported:
            return str(self.exported["summary"])
        verb = "would" if self.dry_run else "did"
        counts = [f"{self.count(a)} {a}" for a in (IMPORT, EXPORT, DELETE, REVERT, CONFLICT, REFUSE, SKIP, MISSING)]
        done = ", ".join(c for c in counts if not c.startswith("0 ")) or "nothing to do"
        return f"{self.direction.value} {verb}: {done}; {self.unchanged} unchanged in {self.seconds:.2f}s"

    def lines(self, most: int = 100) -> list[str]:
        """The plan (or what was done), a path a line, then the summary: every conflict and
        refusal, and at most ``most`` of the rest (``--json`` lists them all)."""
        trouble = [s for s in self.steps if s.action in TROUBLE]
        rest = [s for s in self.steps if s.action not in TROUBLE]
        shown = sorted(trouble + rest[:most], key=lambda s: s.path)
        out = [f"{s.action:8} {s.path}" + (f"  ({s.detail})" if s.detail else "") for s in shown]
        if len(rest) > most:
            out.append(f"... and {len(rest) - most} more (--json lists them all)")
        out += [f"error    {e}" for e in self.errors]
        return [*out, self.summary()]

    def as_json(self) -> dict[str, Any]:
        return self.exported | {
            "command": self.direction.value,
            "dry_run": self.dry_run,
            "steps": [s._asdict() for s in self.steps],
            "counts": {a: self.count(a) for a in sorted(CHANGES | TROUBLE | {SKIP, MISSING})},
            "unchanged": self.unchanged,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OnceReport:
        return cls(
            Direction(data["command"]),
            bool(data["dry_run"]),
            [Step(**s) for s in data["steps"]],
            int(data["unchanged"]),
            list(data["errors"]),
            float(data["seconds"]),
            {k: data[k] for k in ("summary", *EXPORTED) if k in data},
        )


Progress = Callable[[int, int], None]
EXPORTED = tuple(ExportReport().as_json())  # the keys a pull's report adds (``export --json`` had them first)


async def run_once(
    service: Service,
    direction: Direction,
    selection: Selection,
    *,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> OnceReport:
    """One pass over what ``selection`` covers, in ``direction``; the caller holds the service's
    writer (no other pass runs meanwhile).

    A pull that writes is the exporter's own pass, which reads only the sets whose rows
    moved since they were last agreed; everything else is decided here first, whole.
    """
    started = time.perf_counter()
    if direction is Direction.PULL and not dry_run:
        return await _pull(service, selection, force, progress)
    decisions, doubles, moved = await _decide(service, selection, progress)
    steps, chosen = choose(decisions, direction, force=force, revert_deletions=service.settings.on_delete == "revert")
    report = OnceReport(direction, dry_run, unchanged=len(decisions) - len(steps))
    steps += [Step(path, CONFLICT, detail) for path, detail in sorted(doubles.items())]
    if dry_run:
        by_path = {d.entry.path: d for d in chosen}
        can_write_cache = service.forum_cache is not None
        for i, step in enumerate(steps):
            if step.action == IMPORT and (why := import_refusal(service.store, can_write_cache, by_path[step.path])):
                steps[i] = Step(step.path, REFUSE, str(why))
        steps += await _theme_files(service, selection, direction, force, ExportReport(), dry_run=True)
    else:
        done = await _carry_out(service, direction, chosen, force)
        steps += await _theme_files(service, selection, direction, force, done)
        await anyio.to_thread.run_sync(service.state.report, [_doubled(p, why) for p, why in doubles.items()])
        await anyio.to_thread.run_sync(service.state.move, moved)
        steps = _outcomes(steps, done)
        report.errors = done.errors
    report.steps = sorted(steps, key=lambda s: s.path)
    report.seconds = time.perf_counter() - started
    return report


async def _pull(service: Service, selection: Selection, force: bool, progress: Progress | None) -> OnceReport:
    catalog = service.catalog = await load_catalog(service.store)
    only = await anyio.to_thread.run_sync(Filter.of_root, service.root.path, selection)
    scope = select_scope(catalog, selection)
    done = await service.exporter.run(service.store, catalog, scope, force=force, progress=progress, only=only)
    steps = [Step(path, action) for path, action in done.changed]
    steps += [
        Step(path, CONFLICT, "changed on disk: not overwritten (--force takes the database's)")
        for path in done.conflicts
    ]
    exported = done.as_json() | {"summary": done.summary()}
    return OnceReport(
        Direction.PULL, False, sorted(steps), done.unchanged + done.adopted, done.errors, done.seconds, exported
    )


def _doubled(path: str, detail: str) -> Problem:
    return Problem(path, ProblemKind.CONFLICT, detail, time.time())


async def _decide(
    service: Service, selection: Selection, progress: Progress | None
) -> tuple[list[Decision], dict[str, str], dict[str, str]]:
    """Every file and row the selection covers, decided (read-only: nothing is written); the
    doubles, and the tracked old places of moved files with their new ones (their state moves there)."""
    store, root = service.store, service.root
    catalog = service.catalog = await load_catalog(store)
    scope = select_scope(catalog, selection)
    only = await anyio.to_thread.run_sync(Filter.of_root, root.path, selection)
    decisions: list[Decision] = []
    seen: set[str] = set()

    async def decide(entries: list[Entry]) -> None:
        entries = [e for e in entries if only.admits(e.path)]
        seen.update(e.path for e in entries)
        decisions.extend(await anyio.to_thread.run_sync(lambda: plan(root, service.state, entries)))
        if progress is not None:
            progress(len(decisions), len(decisions))

    skipped = ExportReport()
    for sid in scope.sets:
        async for batch, _ in located_entries(store, root, catalog, sid, skipped):
            await decide(batch)
    if scope.themes:
        await decide(await stylesheet_entries(store, catalog, scope.themes, skipped))

    def others() -> tuple[list[str], dict[str, str]]:
        """Files on disk and tracked files not met with a row; and of the tracked ones, the old
        places of templates whose file moved to another group folder."""
        folders = scope_folders(catalog, scope)
        tracked = {p for folder in folders for p in under(folder, service.state.paths()) if p not in seen}
        moved = moved_away(root, sorted(tracked))
        found = {p for folder in folders for p in walk_files(root, folder)} | tracked.difference(moved)
        return sorted(p for p in found if p not in seen and only.admits(p)), moved

    doubles: dict[str, str] = {}
    rest, moved = await anyio.to_thread.run_sync(others)
    for start in range(0, len(rest), BATCH):
        await decide(await service.entries_for(rest[start : start + BATCH], doubles=doubles))
    return decisions, doubles, moved


async def _carry_out(service: Service, direction: Direction, chosen: list[Decision], force: bool) -> ExportReport:
    """The chosen decisions done, a batch at a time, stylesheets in batches of their own."""
    done = ExportReport()
    # The files as they are now were asked for (decided without Writers.hold: no wait on writers).
    two_way = None if direction is Direction.PULL else replace(service.two_way(), written=None)
    sheets = [d for d in chosen if d.entry.kind is Kind.STYLESHEET]
    templates = [d for d in chosen if d.entry.kind is not Kind.STYLESHEET]
    for group in (templates, sheets):
        for start in range(0, len(group), BATCH):
            await service.exporter.apply(group[start : start + BATCH], done, force=force, two_way=two_way)
    return done


async def _theme_files(
    service: Service,
    selection: Selection,
    direction: Direction,
    force: bool,
    done: ExportReport,
    *,
    dry_run: bool = False,
) -> list[Step]:
    """Each theme's ``theme.json`` settled in ``direction`` by the service's own rule
    (:mod:`.themesync`; ``pull`` has it from the exporter's pass)."""
    catalog = service.catalog or await load_catalog(service.store)
    only = await anyio.to_thread.run_sync(Filter.of_root, service.root.path, selection)
    files = service.exporter.theme_files
    wanted = {
        t: p for t, p in settings_files(catalog, select_scope(catalog, selection).themes).items() if only.admits(p)
    }
    push = direction is Direction.PUSH
    report = ExportReport()
    if dry_run and direction is Direction.PULL:  # a pull's own pass would write what the rows show
        await files.sync(service.store, wanted, report, two_way=False, force=force, dry_run=True)
    else:
        await files.sync(
            service.store, wanted, report, two_way=True, take_disk=force and push, outward=not push, dry_run=dry_run
        )
    done.errors += report.errors
    refused = _refusals(report.refused, set(wanted.values()))
    steps = [Step(path, action) for path, action in report.changed if path not in refused]
    steps += [Step(p, SKIP, "changed in the database: 'mybb-sync pull' takes it") for p in report.skipped]
    steps += [Step(p, REFUSE, why) for p, why in refused.items()]
    hint = "--force takes the file" if push else "mybb-sync resolve --take disk|db"
    return steps + [Step(p, CONFLICT, f"changed on both sides; {hint}") for p in report.conflicts]


def _outcomes(planned: list[Step], done: ExportReport) -> list[Step]:
    """The plan corrected by what happened: imports the importer refused, writes that met a
    file changed meanwhile (a conflict), and files that could not be written."""
    refused = _refusals(done.refused, {s.path for s in planned})
    failed = {line.split(": ", 1)[0] for line in done.errors}
    conflicts = set(done.conflicts)
    out = []
    for step in planned:
        if step.path in refused:
            out.append(Step(step.path, REFUSE, refused[step.path]))
        elif step.action in (EXPORT, IMPORT) and step.path in conflicts:
            out.append(Step(step.path, CONFLICT, "changed while it was being written"))
        elif step.path not in failed:
            out.append(step)
    return out


def _refusals(lines: list[str], paths: set[str]) -> dict[str, str]:
    """Why each of ``paths`` was refused, from a report's "path: why" lines (a path may hold ": ")."""
    refused = {}
    for line in lines:
        at = line.find(": ")
        while at != -1 and line[:at] not in paths:
            at = line.find(": ", at + 1)
        if at != -1:
            refused[line[:at]] = line[at + 2 :]
    return refused
