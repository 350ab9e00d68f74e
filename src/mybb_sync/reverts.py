"""What the service does with set copies whose files are gone: revert, hold or keep.

The rules are :mod:`.deletions`' (pure); this part keeps what they need to
remember between looks (files seen gone, deletions held for a person,
reverts done lately) and carries their verdicts out: ``on_delete = revert``
reverts a set copy only once its own file has stayed deleted for the grace
period, never for a folder gone or a file replaced, and never in a mass
deletion, which waits for ``resolve``.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

import anyio
import anyio.to_thread

from .config import Settings
from .deletions import (
    DELETED,
    HELD,
    KEPT,
    MASS_WINDOW,
    Deletions,
    Facts,
    Held,
    Sighting,
    Verdict,
    explain,
    gather,
    held_detail,
    holds,
    judge,
    waiting,
)  # fmt: skip
from .engine import Decision
from .errors import MybbSyncError
from .files import Root
from .layout import Kind
from .state import ProblemKind, State
from .store import Store, TemplateRow, seen

log = logging.getLogger(__name__)


def _is_set_copy(d: Decision) -> bool:
    """Whether the file stands for its set's own copy (master and global rows are never reverted)."""
    row = d.entry.row
    return d.entry.kind is Kind.TEMPLATE and d.entry.owner > 0 and row is not None and row.sid == d.entry.owner


class Reverts:
    """Deletions of set copies' files, as ``on_delete`` and a person (``resolve``) decide."""

    def __init__(
        self,
        settings: Settings,
        root: Root,
        state: State,
        store: Store,
        limiter: anyio.CapacityLimiter,
        later: Callable[[str, float], None],
    ) -> None:
        self.settings = settings
        self.root = root
        self.state = state
        self.store = store
        self._limiter = limiter
        self._later = later  # look at a path again after a delay (the service's timers)
        self._sightings: dict[str, Sighting] = {}  # files seen deleted lately, still gone
        self._held: dict[str, Held] = {}  # set-copy deletions waiting for a person (resolve)
        self._reverted: list[Sighting] = []  # deletions reverted lately (they count towards a mass deletion)
        self._held_warned = -float("inf")  # when a mass deletion was last warned of
        self._held_loaded = False  # whether the deletions held by an earlier run were read from the state

    @property
    def held(self) -> int:
        """How many deletions wait for a person."""
        return len(self._held)

    def forget(self, path: str) -> None:
        """A person settled ``path`` (``resolve``): nothing is waited for or held there any more."""
        self._sightings.pop(path, None)
        self._held.pop(path, None)

    async def confirm(self, decision: Decision) -> None:
        """A person confirms the deletion of a file that is gone (``resolve --take disk``): its
        set's copy is reverted, as ``on_delete = revert`` would have done. A file replaced by
        something else, or gone with its folder, is no deletion: refused."""

        path = decision.entry.path
        found = (await anyio.to_thread.run_sync(gather, self.root.path, [path]))[path]
        verdict = judge(found)
        if verdict is Verdict.REPLACED:
            raise MybbSyncError(
                f"{path} is a {found.entry}, not a file: nothing to take (--take db puts the file back)"
            )
        if verdict is Verdict.FOLDER_GONE:
            raise MybbSyncError(f"{path}: {explain(found)}")
        if verdict is Verdict.PRESENT:
            raise MybbSyncError(f"{path} is back on disk: resolve it again")
        if not _is_set_copy(decision):
            raise MybbSyncError(
                f"{path} does not exist on disk and stands for no set's own copy: nothing to revert (--take db writes it again)"
            )
        sid, name = decision.entry.owner, decision.entry.name
        if not await self._revert_as_seen(decision):
            raise MybbSyncError(f"{path}: its copy changed in the database meanwhile: resolve it again")
        log.info("reverted %r in set %d: its file's deletion was confirmed (resolve --take disk)", name, sid)

    async def on_deleted(
        self, decisions: Sequence[Decision], moved: Callable[[list[str]], dict[str, str]] | None = None
    ) -> Deletions:
        """Files found gone with their rows unchanged. What ``lstat`` finds on the way to each
        decides (:mod:`.deletions`): with ``on_delete = revert``, only a real deletion of a set
        copy's file reverts the copy, once the file has stayed gone for ``self.settings.delete_grace`` (an
        editor's rename-and-rewrite save is no delete), and not in a mass deletion, which waits
        for a person (``resolve``). A folder gone or a file replaced reverts nothing, nor a file
        ``moved`` (blocking, asked in the same look) finds moved to another place."""
        revert = self.settings.on_delete == "revert"
        asked = {d.entry.path for d in decisions}
        others = [p for p in {**self._sightings, **self._held} if p not in asked]
        first_look = revert and not self._held_loaded

        def look() -> tuple[dict[str, Facts], list[tuple[str, str]], dict[str, str]]:
            problems = self.state.problems(ProblemKind.MISSING) if first_look else []
            held = [(p.path, p.detail) for p in problems if p.detail.startswith(HELD)]
            return gather(self.root.path, [*asked, *others]), held, moved(sorted(asked)) if moved else {}

        facts, held_before, gone_elsewhere = await anyio.to_thread.run_sync(look, limiter=self._limiter)
        decisions = [d for d in decisions if d.entry.path not in gone_elsewhere]
        if first_look:  # a restart is no person's word: what an earlier run held stays held
            self._held_loaded = True
            for path, detail in held_before:
                self._held.setdefault(path, Held(Sighting(path, -float("inf")), detail, None, state_unknown=True))
            if held_before:
                log.warning(
                    "%d set-copy deletion(s) held before this start are still held ('mybb-sync status' lists them)",
                    len(held_before), extra={"event": "held"},
                )  # fmt: skip
        now = time.monotonic()
        horizon = now - 5 * self.settings.delete_grace - MASS_WINDOW  # older sightings: the file came back since
        for path in others:
            if judge(facts[path]) is not Verdict.DELETED:  # back, or its folder went: no deletion now
                self._sightings.pop(path, None)
                self._held.pop(path, None)
        self._sightings = {p: s for p, s in self._sightings.items() if s.first > horizon}
        self._reverted = [s for s in self._reverted if s.first > horizon]
        out = Deletions(moved=gone_elsewhere)
        due: list[tuple[Decision, Sighting]] = []
        folders_gone: dict[str, int] = defaultdict(int)
        for d in decisions:
            path, found = d.entry.path, facts[d.entry.path]
            verdict, copy = judge(found), _is_set_copy(d)
            if verdict is not Verdict.DELETED:
                self._sightings.pop(path, None)
                self._held.pop(path, None)
                if verdict is Verdict.PRESENT:  # back meanwhile
                    out.recheck.append(path)
                    continue
                out.details[path] = explain(found)
                if revert and verdict is Verdict.FOLDER_GONE:
                    folders_gone[found.folder or ""] += 1
                elif revert and copy:
                    log.warning(
                        "not reverted: %s was replaced by a %s (only the deletion of the file itself reverts its copy)",
                        path, found.entry, extra={"event": "not-reverted", "path": path},
                    )  # fmt: skip
                continue
            if not revert:
                out.details[path] = KEPT if copy else DELETED
                continue
            key = None if d.state is None else replace(d.state, stat=None)  # as the exporter keeps it
            held = self._held.get(path)
            if held is not None and held.state_unknown:
                held = self._held[path] = Held(Sighting(path, held.sighting.first, d.entry.owner), held.detail, key)
            if held is not None and held.state == key:
                out.details[path] = held.detail
                continue
            self._held.pop(path, None)
            sighting = self._sightings.get(path)
            if sighting is None:
                sighting = self._sightings[path] = Sighting(path, now, d.entry.owner if copy else 0)
            if not copy:
                out.details[path] = DELETED
            elif now - sighting.first < self.settings.delete_grace:
                self._later(path, self.settings.delete_grace - (now - sighting.first))
                out.details[path] = waiting(self.settings.delete_grace)
            else:
                due.append((d, sighting))
        for folder, count in sorted(folders_gone.items()):
            log.warning(
                "%s is gone: %d file(s) in it not reverted (a folder gone is no deletion of its files; see 'mybb-sync status')",
                folder or "the sync root", count, extra={"event": "folder-gone", "path": folder},
            )  # fmt: skip
        if due:
            await self._revert_or_hold(due, out, now)
        return out

    async def _revert_or_hold(self, due: Sequence[tuple[Decision, Sighting]], out: Deletions, now: float) -> None:
        """Revert the copies whose files' grace period is over, unless a person must confirm
        (:func:`.deletions.holds`; not with ``--allow-mass-revert``): those are held, with one
        warning per mass deletion."""
        reasons: dict[str, str] = {}
        if not self.settings.allow_mass_revert:
            due_paths = {s.path for _, s in due}
            waiting = [s for s in self._sightings.values() if s.sid and s.path not in due_paths]
            sids = {s.sid for _, s in due} | {s.sid for s in waiting}
            copies = await anyio.to_thread.run_sync(
                lambda: {sid: len(self.state.names_agreed_with(Kind.TEMPLATE, sid)) for sid in sids},
                limiter=self._limiter,
            )
            gone = [*self._sightings.values(), *(h.sighting for h in self._held.values())]
            reasons = holds([s for _, s in due], gone, self._reverted, copies)
            if reasons:  # a mass deletion is held whole: a restart before the rest's grace ends reverts none
                early = holds(waiting, gone, self._reverted, copies)
                for s in waiting:
                    if s.path in early:
                        detail = held_detail(early[s.path])
                        (out.details if s.path in out.details else out.held_with)[s.path] = detail
                        self._held[s.path] = Held(s, detail, None, state_unknown=True)
                        self._sightings.pop(s.path, None)
                reasons |= early
        for d, s in due:
            if s.path in reasons:
                detail = held_detail(reasons[s.path])
                self._held[s.path] = Held(s, detail, None if d.state is None else replace(d.state, stat=None))
                self._sightings.pop(s.path, None)
                out.details[s.path] = detail
        if reasons:
            if now - self._held_warned > MASS_WINDOW + self.settings.delete_grace:
                log.warning(
                    "held reverts: %s: nothing reverted until a person confirms each one "
                    "(`mybb-sync resolve --take disk PATH` reverts a copy, `--take db` restores its file; "
                    "'mybb-sync status' lists them)", max(reasons.values(), key=len), extra={"event": "held"},
                )  # fmt: skip
            else:
                log.info("also held: %s", ", ".join(sorted(reasons)), extra={"event": "held"})
            self._held_warned = now
        by_set: dict[int, list[tuple[Decision, Sighting]]] = defaultdict(list)
        for d, s in due:
            if s.path not in reasons:
                by_set[s.sid].append((d, s))
        for sid, group in by_set.items():
            for d, s in group:
                self._sightings.pop(s.path, None)
                if not await self._revert_as_seen(d):
                    out.recheck.append(s.path)  # its copy changed since the decision: look again
                    continue
                self._reverted.append(s)
                out.reverted.append(s.path)
                log.info("reverted %r in set %d: its file was deleted (on_delete = revert)", d.entry.name, sid)

    async def _revert_as_seen(self, d: Decision) -> bool:
        """Revert the set copy a decision was made on, only if it is still that copy (an Admin CP
        save may land between the decision and the revert: it must not be lost).

        The file's state is forgotten first: kept until after the revert, a state store that
        cannot be written then (a full disk) or a stop in between left the old base, and the
        next look took our own revert for an Admin CP edit made while the file was gone, a
        conflict. Forgotten first, the revert waits for the state store as every write does."""
        row = d.entry.row
        assert isinstance(row, TemplateRow)
        await anyio.to_thread.run_sync(self.state.delete, [d.entry.path], limiter=self._limiter)
        reverted = False
        try:
            reverted = await self.store.revert_templates(d.entry.owner, [d.entry.name], expect=seen(row)) > 0
        finally:
            if not reverted and d.state is not None:  # judged again on its old state
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self.state.put, [d.state], limiter=self._limiter)
        return reverted
