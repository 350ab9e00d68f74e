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
from collections.abc import Callable, Iterator
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


def walk_tree(root: Root, folder: str) -> Walk:
    """Walk ``folder`` (blocking; no symlink followed, dot-folders skipped)."""
    walk = Walk()
    for rel, items in folders(root.path, folder):
        for entry in items:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                if skipped_folder(entry.name):
                    continue
                found = layout.Found.DIR
            elif entry.is_file(follow_symlinks=False):
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
