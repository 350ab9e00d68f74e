"""What a file gone from disk means, and when a revert needs a person's word.

With ``on_delete = revert`` the deletion of a set copy's file reverts the copy in the
database, which nothing on disk can undo. So a revert follows a real deletion of that one
file only, as Syncthing stops a folder whose marker is missing instead of propagating its
files' deletion (the root's marker is ``.mybb-sync``: the service stops when it goes):

* **deleted**: nothing stands at the path, and every folder from the root down to it is a
  real directory (not a symlink) - the file itself was deleted;
* **folder gone**: a folder on the way is absent, or is no real directory (a symlink, a
  file): ``template_sets/``, a set folder or a group folder was moved or deleted, which is
  never taken for the deletion of the files in it;
* **replaced**: something that is no regular file stands at the path (a symlink, even to
  the same content; a FIFO; a folder): no file was deleted.

And a mass deletion waits for a person (``mybb-sync resolve --take disk|db PATH``): more
than :data:`MASS_LIMIT` files seen deleted within :data:`MASS_WINDOW` seconds of each
other, or every copy a set has (when it has more than one).

The rules are pure functions of facts that :func:`gather` collects with ``lstat`` alone.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from .state import FileState

MASS_LIMIT = 5  # more deletions than this within MASS_WINDOW of each other are held
MASS_WINDOW = 2.0  # seconds between first sightings that make deletions one mass deletion
CONFIRM = "`mybb-sync resolve --take disk PATH` reverts it, `--take db` restores the file"
HELD = "deletion held: "  # how a held deletion's problem begins (a restart holds it again)
DELETED = "file deleted: `mybb-sync resolve --take db PATH` writes it again"
KEPT = "file deleted, its copy kept (on_delete = ignore): `mybb-sync resolve --take db PATH` writes it again, `--take disk` reverts the copy"


class Verdict(StrEnum):
    DELETED = "deleted"
    FOLDER_GONE = "folder-gone"
    REPLACED = "replaced"
    PRESENT = "present"  # a regular file is there (again)


@dataclass(frozen=True, slots=True)
class Facts:
    """What ``lstat`` found on the way from the root to a path, never following a symlink."""

    path: str
    folder: str | None = None  # the first folder on the way that is absent or no real directory
    folder_is: str | None = None  # what stands there instead (None: nothing; "unreadable": not looked into)
    entry: str | None = None  # with every folder real: what stands at the path ("file", "symlink", ...; None: nothing)


@dataclass(frozen=True, slots=True)
class Sighting:
    """A file seen deleted: when first (monotonic seconds), and the set it is a copy of (0: none)."""

    path: str
    first: float
    sid: int = 0


@dataclass(frozen=True, slots=True)
class Held:
    """A deletion waiting for a person: its sighting, why, and the file's state then (another
    state later means the file came back and was synced since: a new deletion).
    ``state_unknown``: held by an earlier run, as its problem says, or held with the rest of
    a mass deletion before its own look; its state is taken at its next look."""

    sighting: Sighting
    detail: str
    state: FileState | None
    state_unknown: bool = False


@dataclass
class Deletions:
    """What became of files found gone with their rows unchanged (``TwoWay.on_deleted``)."""

    reverted: list[str] = field(default_factory=list)  # copies reverted: their state dropped, looked at again
    recheck: list[str] = field(default_factory=list)  # back on disk meanwhile: looked at again, not missing
    details: dict[str, str] = field(default_factory=dict)  # why each other file is missing (status shows it)
    held_with: dict[str, str] = field(default_factory=dict)  # not looked at, held with a mass deletion: why
    moved: dict[str, str] = field(default_factory=dict)  # moved to another group folder: old -> new place


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device file"


def gather(root: Path, paths: Iterable[str]) -> dict[str, Facts]:
    """The facts of each root-relative path (blocking: run it in a worker thread).

    Each folder from the root down is ``lstat``-ed in turn (once per batch), and the walk
    stops at the first that is not a real directory: no symlink is ever followed, and
    nothing is opened. A folder that cannot be looked into counts as gone.
    """
    seen: dict[str, str | None] = {"": "folder"}

    def kind(rel: str) -> str | None:
        if rel not in seen:
            try:
                seen[rel] = kind_of(os.lstat(root / rel).st_mode)
            except OSError as exc:
                seen[rel] = None if exc.errno in (errno.ENOENT, errno.ENOTDIR) else "unreadable"
        return seen[rel]

    out: dict[str, Facts] = {}
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            rel = "/".join(parts[:depth])
            found = kind(rel)
            if found == "unreadable":  # its parent folder may not be searched
                out[path] = Facts(path, "/".join(parts[: depth - 1]), "unreadable")
                break
            if depth == len(parts):
                out[path] = Facts(path, entry=found)
            elif found != "folder":
                out[path] = Facts(path, rel, found)
                break
    return out


def judge(facts: Facts) -> Verdict:
    if facts.folder is not None:
        return Verdict.FOLDER_GONE
    if facts.entry is None:
        return Verdict.DELETED
    return Verdict.PRESENT if facts.entry == "file" else Verdict.REPLACED


def explain(facts: Facts) -> str:
    """Why a file whose folder is gone, or that was replaced, is missing: the problem's detail."""
    if facts.folder is not None:
        where = facts.folder or "the sync root"
        if facts.folder_is == "unreadable":
            return f"its folder {where} cannot be looked into: nothing reverted"
        instead = f" (a {facts.folder_is} stands in its place)" if facts.folder_is else ""
        return f"its folder {where} is gone{instead}: nothing reverted (a folder gone is no deletion of its files)"
    what = facts.entry or "nothing"
    how = "move the folder away" if what == "folder" else "`mybb-sync resolve --take db PATH` puts the file back"
    return f"replaced by a {what}: nothing reverted; an export reports a conflict and leaves it ({how})"


def waiting(grace: float) -> str:
    return f"file deleted: its copy is reverted if the file stays gone {grace:g}s (on_delete = revert)"


def held_detail(reason: str) -> str:
    return f"{HELD}{reason}; {CONFIRM}"


def holds(
    due: Sequence[Sighting],
    gone: Collection[Sighting],
    reverted: Collection[Sighting],
    copies: Mapping[int, int],
    *,
    limit: int = MASS_LIMIT,
    window: float = MASS_WINDOW,
) -> dict[str, str]:
    """Which ``due`` deletions (set copies whose grace period is over) a person must confirm,
    each with why.

    ``gone``: every deletion seen lately whose file is still gone (held ones and ``due``
    included); ``reverted``: those reverted lately; ``copies``: per set, the copies its
    files stand for. A deletion is held when more than ``limit`` of these were first seen
    within ``window`` seconds of it (whatever the files stand for), or when the files still
    gone are every copy of its set and the set has more than one.
    """
    lately = [*gone, *reverted]
    out: dict[str, str] = {}
    for s in due:
        near = {g.path for g in lately if abs(g.first - s.first) <= window} | {s.path}
        if len(near) > limit:
            out[s.path] = f"{len(near)} files deleted at once"
            continue
        total = copies.get(s.sid, 0)
        of_set = {g.path for g in gone if g.sid == s.sid} | {s.path}
        if total > 1 and len(of_set) >= total:
            out[s.path] = f"every copy of its set deleted ({total} files)"
    return out
