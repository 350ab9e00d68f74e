"""Decisions sorted into work: the pure step between deciding and doing.

:func:`.engine.plan` decides every path with the rule; :func:`sort` says what
each decision asks for (a file to write, a row to import, a file to remove,
a state to record, a problem to report), and the exporter carries that out.
The service and a one-way export differ here only in ``two_way``: without
it, nothing is imported and a file deleted on disk is written back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .atomic import Write
from .engine import Decision, agreed_state, export_write, row_facts, with_row
from .files import FileStat
from .layout import Kind
from .reconcile import Action
from .state import FileState, Problem, ProblemKind


@dataclass
class Work:
    """What a chunk of decisions asks to be done, by kind."""

    writes: list[Write] = field(default_factory=list)  # database -> file
    imports: list[Decision] = field(default_factory=list)  # file -> database (two-way only)
    deleted: list[Decision] = field(default_factory=list)  # files gone, rows unchanged (two-way only)
    removals: list[tuple[str, FileStat]] = field(default_factory=list)  # files whose row went
    forget: list[str] = field(default_factory=list)  # states to drop
    settled: list[FileState] = field(default_factory=list)  # states to record as they are
    conflicts: list[Decision] = field(default_factory=list)  # both sides changed: reported, left alone
    unchanged: int = 0
    adopted: int = 0
    forced: int = 0


def sort(decisions: Sequence[Decision], *, two_way: bool, force: bool, racy_ns: int) -> Work:
    """What each decision asks for (pure: nothing is read or written here)."""
    work = Work()
    for d in decisions:
        action = d.action
        if action is Action.NOTHING and d.intent_landed and d.db_hash is not None:
            # A stylesheet's row landed, but maybe not the forum's cache files and theme
            # lists written after it: the service does the save again, whole (a one-way
            # export leaves it, and its intent, to the service).
            republish = d.entry.kind is Kind.STYLESHEET and d.disk_text is not None
            if republish and two_way:
                work.imports.append(d)
            else:
                work.unchanged += 1
                if not republish:
                    work.settled.append(agreed_state(d.entry, d.db_hash, d.disk_stat, d.seen_ns))
        elif action is Action.NOTHING:
            work.unchanged += 1
            if (
                d.state is not None
                and d.disk_stat is not None
                and (
                    d.disk_stat != d.state.stat
                    or (d.disk_text is not None and not d.state.unchanged(d.disk_stat, racy_ns))
                )
            ):  # re-stamp a file read and found unchanged, so its stat alone proves it next time
                work.settled.append(agreed_state(d.entry, d.state.base, d.disk_stat, d.seen_ns))
            elif d.state is not None and row_facts(d.entry.row) != d.state.agreed_row:
                # Same content, another row (a save without change, a state written before
                # row digests): record the row, so the set's digest proves it unchanged again.
                work.settled.append(with_row(d.state, d.entry.row))
        elif action is Action.ADOPT:
            work.adopted += 1
            work.settled.append(agreed_state(d.entry, d.db_hash or "", d.disk_stat, d.seen_ns))
        elif action is Action.EXPORT or (action is Action.DISK_DELETED and not two_way):
            work.writes.append(export_write(d))
        elif action is Action.IMPORT and two_way:
            work.imports.append(d)
        elif action is Action.DISK_DELETED and two_way:
            work.deleted.append(d)
        elif action is Action.DELETE_FILE and d.disk_stat is not None:
            work.removals.append((d.entry.path, d.disk_stat))
        elif action in (Action.FORGET, Action.DELETE_FILE):
            work.forget.append(d.entry.path)
        elif force and d.entry.text is not None:
            work.forced += 1
            work.writes.append(export_write(d, force=True))
        else:
            work.conflicts.append(d)
    return work


def conflict_problem(d: Decision, now: float) -> Problem:
    """The problem ``status`` lists for a conflict, saying what changed where."""
    return Problem(d.entry.path, ProblemKind.CONFLICT, conflict_detail(d), now)


def conflict_detail(d: Decision) -> str:
    if d.invalid:
        return f"file is invalid ({d.invalid}) and the database changed"
    if d.state is None:
        return "file differs from the database and was never synced (no base): resolve --take disk|db"
    if d.action is Action.IMPORT:
        return "file changed on disk since the last sync (not overwritten)"
    return "both the file and the database changed since the last sync"
