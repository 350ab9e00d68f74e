"""The walk of the sync root's folders: the one place that lists what is below a folder.

The export's orphan search, the service's rescans, ``mybb-sync diff`` and the
watcher's recursive watches all go through :func:`folders`, so they agree on
what is walked: no symlink is followed, dot-folders (the state folder, ``.git``,
editors' scratch folders) are not entered, and a folder gone or unreadable by
the time it is listed is passed over. (``sweep_temps`` is no walk of synced
folders: it looks for nothing but our temps, in every folder but the state
folder, and keeps its own loop.)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import layout

if TYPE_CHECKING:
    from .files import Root


def skipped_folder(name: str) -> bool:
    """Folders no walk goes into: dot-folders (the state folder among them)."""
    return name.startswith(".")


def _always(rel: str) -> bool:
    return True


def folders(
    base: Path, top: str = "", enter: Callable[[str], bool] = _always
) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
    """Each folder from ``top`` down (paths relative to ``base``, "" for ``base`` itself) with
    what it holds (blocking; depth first). ``enter`` is asked before a folder is listed:
    False leaves it, and what is below it, out."""
    stack = [top]
    while stack:
        rel = stack.pop()
        if not enter(rel):
            continue
        try:
            with os.scandir(base / rel if rel else base) as it:
                items = list(it)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        yield rel, items
        stack += (
            f"{rel}/{entry.name}" if rel else entry.name
            for entry in items
            if entry.is_dir(follow_symlinks=False) and not skipped_folder(entry.name)
        )


@dataclass(slots=True)
class Walk:
    """What a walk of a folder found: the regular files to sync, and what it passes over where a
    file could be, with why (:func:`layout.why_ignored`)."""

    files: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)


def walk_tree(root: Root, folder: str, known: Container[str] = frozenset()) -> Walk:
    """Walk ``folder`` (blocking; no symlink followed, dot-folders skipped).

    ``known``: paths of files that are synced (a pass's rows were met at them): a regular
    file there is taken as it is, not judged by its name again (three quarters of the walk's
    time in a re-export)."""
    walk = Walk()
    for rel, items in folders(root.path, folder):
        for entry in items:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                if skipped_folder(entry.name):
                    continue
                found = layout.Found.DIR
            elif entry.is_file(follow_symlinks=False):
                if child in known:
                    walk.files.append(child)
                    continue
                found = layout.Found.FILE
            else:
                found = layout.Found.SYMLINK if entry.is_symlink() else layout.Found.OTHER
            why = layout.why_ignored(child, found, root.temp_suffix)
            if why is not None:
                walk.ignored[child] = why
            elif found is layout.Found.FILE and not layout.is_ignored_name(entry.name, root.temp_suffix):
                walk.files.append(child)
    return walk


def walk_files(root: Root, folder: str) -> list[str]:
    """Relative paths of the regular files below ``folder`` that are synced or could be."""
    return walk_tree(root, folder).files


def template_files(root: Root, set_folder: str) -> dict[str, list[str]]:
    """A set folder's template files by file name, whatever group folder each is in (blocking).

    The group folder is cosmetic: a file is found where it is (the folder the
    replaced tool wrote, ``Header Templates/``, as well as ours), and a name
    found in two group folders stands for one template twice.
    """
    found: dict[str, list[str]] = {}
    for path in walk_tree(root, set_folder).files:
        if path.count("/") == 3 and path.endswith(layout.TEMPLATE_EXT):
            found.setdefault(path.rsplit("/", 1)[1], []).append(path)
    return found


def placed(
    root: Root, paths: list[str], old_places: Callable[[str], list[str]], may_make: Callable[[str], bool]
) -> tuple[dict[str, str], dict[str, str]]:
    """Where the templates of ``paths`` (set template files never synced) have their file
    (blocking): {path: why} for a file whose name is in another group folder of its set's folder
    too (one template, two files) and {path: ""} for a path with no file while another group
    folder holds its template, or whose missing folder ``may_make`` refuses (no place of it);
    and the old places (``old_places``: the tracked paths of a path's template) whose file is
    gone, for paths found alone: the file moved ({old place: new place})."""
    found: dict[str, str] = {}
    moved: dict[str, str] = {}
    for path in paths:
        others = same_template(root, path)
        present = os.path.lexists(root.path / path)
        if others:
            found[path] = (
                f"one template, two files: also {', '.join(others)} (keep one, delete the other)" if present else ""
            )
        elif present:
            moved.update((p, path) for p in old_places(path) if not os.path.lexists(root.path / p))
        elif not os.path.lexists(root.path / path.rsplit("/", 1)[0]) and not may_make(path):
            found[path] = ""
    return found, moved


def same_template(root: Root, path: str) -> list[str]:
    """Other files of the set folder of ``path`` (a set template's file) with its file name, in
    other group folders (blocking; regular files only, no symlink followed)."""
    set_folder, group, filename = path.rsplit("/", 2)
    others = []
    for rel, items in folders(root.path, set_folder, enter=lambda rel: rel == set_folder):
        for entry in items:
            if entry.name == group or not entry.is_dir(follow_symlinks=False) or skipped_folder(entry.name):
                continue
            candidate = f"{rel}/{entry.name}/{filename}"
            try:
                if stat.S_ISREG(os.lstat(root.path / candidate).st_mode):
                    others.append(candidate)
            except OSError:
                continue
    return sorted(others)
