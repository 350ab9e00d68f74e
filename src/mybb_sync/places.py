"""Where a set template's file is, when a file is met that was never synced.

The group folder is cosmetic: a template's file may be in any group folder of its
set's folder. A file met in a new place is the template's file if no other group
folder holds one for it (a move: the old place's state is forgotten once its file is
gone); two files are one conflict; and a place with no file while another group
folder holds the template's file is no place of it. Nor is a place with no file in a
group folder that is not there, unless that folder is the template's own group or
still holds tracked files (moved away: the file is written once it is back): such a
path is a name seen for an instant (a folder renamed and renamed back), and writing
the file there would make the folder again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

from . import layout
from .catalog import Catalog
from .files import Root
from .state import Problem, ProblemKind, State
from .tree import placed, same_template

log = logging.getLogger(__name__)


def places(root: Root, state: State, catalog: Catalog, paths: Sequence[str], record: bool) -> dict[str, str]:
    """The set template files never synced among ``paths`` that are no single place of their
    template (blocking): {path: why} for a double, {path: ""} for a place without its file.
    {path: ""} too for the old places of files found moved (when ``record``, their state moves
    to the new place, base and all): a batch may hold both. ``record`` also logs doubles as conflicts."""
    candidates = [p for p in paths if layout.same_set_folder(p, p) and layout.parse(p) is not None]
    tracked = state.get(candidates)

    def old_places(path: str) -> list[str]:
        ref = layout.parse(path)
        sid = catalog.owner(ref) if ref is not None else None
        if ref is None or sid is None:
            return []
        return [p for p in state.paths_of(ref.kind, sid, ref.name) if p != path]

    def may_make(path: str) -> bool:
        """A file never synced, absent, in a folder not there: its own group folder, or one
        moved away (tracked files in it), may be made (or waited for); another may not."""
        return catalog.own_place(path) or state.tracks_under(path.rsplit("/", 1)[0])

    found, moved = placed(root, [p for p in candidates if p not in tracked], old_places, may_make)
    if record:  # the base goes with the file: an edit made as it moved is an edit
        state.move(moved)
    if record and (nowhere := [p for p, why in found.items() if not why]):
        state.clear_problems(nowhere)  # no place of a template: nothing there to be missing
    found.update((p, "") for p in moved if p not in found)  # an old place, maybe in this very batch
    if record and (doubles := {p: why for p, why in found.items() if why}):
        now = time.time()
        for path, detail in doubles.items():
            log.warning("conflict: %s: %s", path, detail, extra={"event": "conflict", "path": path})
        state.report([Problem(path, ProblemKind.CONFLICT, detail, now) for path, detail in doubles.items()])
    return found


def moved_away(root: Root, tracked: Sequence[str]) -> dict[str, str]:
    """The set template files among ``tracked`` that are gone while another group folder of
    their set holds a file of their template (blocking): the file moved, not deleted.
    {old place: new place} (the first, if a name is in two folders: a double, which its
    pass reports)."""
    moved = {}
    for path in tracked:
        gone = layout.same_set_folder(path, path) and not os.path.lexists(root.path / path)
        if gone and (others := same_template(root, path)):
            moved[path] = others[0]
    return moved
