"""What a command or the service covers: sets and themes by name, paths, globs, the ignore file.

A :class:`Selection` is what the user asked for (``--set``, ``--theme``,
``PATH...``, ``--only``, ``--ignore``); a :class:`Filter` is that selection
compiled together with the root's ``.mybb-syncignore``. Whatever a filter does
not admit is never imported, exported, deleted or reported. Patterns use
gitignore syntax (:mod:`pathspec`) and match paths relative to the sync root.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pathspec

from . import layout
from .errors import ConfigError
from .layout import Kind
from .themefile import theme_of

log = logging.getLogger(__name__)

IGNORE_FILE = ".mybb-syncignore"
MAX_IGNORE_FILE = 1024 * 1024


@dataclass(frozen=True)
class Selection:
    """What the user asked to cover; empty fields mean "no restriction"."""

    sets: tuple[str, ...] = ()  # template set titles (their global templates come with them)
    themes: tuple[str, ...] = ()  # theme names
    paths: tuple[str, ...] = ()  # root-relative files or folders
    only: tuple[str, ...] = ()  # gitignore-syntax patterns a path must match
    ignore: tuple[str, ...] = ()  # gitignore-syntax patterns a path must not match

    def as_json(self) -> dict[str, list[str]]:
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Selection:
        """The selection a client sent over the control socket (lists of strings, nothing else)."""
        values: dict[str, tuple[str, ...]] = {}
        for key in ("sets", "themes", "paths", "only", "ignore"):
            items = data.get(key, [])
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ConfigError(f"selection field {key!r} must be a list of strings")
            values[key] = tuple(items)
        return cls(**values)

    @property
    def everything(self) -> bool:
        return self == EVERYTHING


EVERYTHING = Selection()


def _spec(lines: Iterable[str], origin: str) -> pathspec.GitIgnoreSpec | None:
    lines = list(lines)
    if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
        return None
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid pattern in {origin}: {exc}") from None


def read_ignore_file(root: Path) -> list[str]:
    """The lines of ``<root>/.mybb-syncignore`` (none when it is absent); never follows a symlink."""
    path = root / IGNORE_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_IGNORE_FILE + 1)
    if len(data) > MAX_IGNORE_FILE:
        raise ConfigError(f"{path} is over {MAX_IGNORE_FILE} bytes")
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid UTF-8 (byte {exc.start})") from None


class Filter:
    """A selection compiled with the ignore file's patterns: :meth:`admits` says yes or no per path."""

    def __init__(self, selection: Selection = EVERYTHING, ignore_lines: Iterable[str] = ()) -> None:
        self.selection = selection
        self._only = _spec(selection.only, "--only")
        self._ignore = _spec([*ignore_lines, *selection.ignore], f"{IGNORE_FILE} or --ignore")
        self._paths = tuple(p.strip("/") for p in selection.paths)
        self._sets = frozenset(selection.sets)
        self._themes = frozenset(selection.themes)

    @classmethod
    def of_root(cls, root: Path, selection: Selection = EVERYTHING) -> Filter:
        return cls(selection, read_ignore_file(root))

    @property
    def admits_all(self) -> bool:
        return self._only is None and self._ignore is None and not self._paths and not (self._sets or self._themes)

    def admits(self, path: str) -> bool:
        """Whether ``path`` (relative to the root) is covered (pure)."""
        if self._paths and not any(path == p or path.startswith(p + "/") or not p for p in self._paths):
            return False
        if (self._sets or self._themes) and not self._in_scope(path):
            return False
        if self._only is not None and not self._only.match_file(path):
            return False
        return self._ignore is None or not self._ignore.match_file(path)

    def _in_scope(self, path: str) -> bool:
        if (theme := theme_of(path)) is not None:
            return theme in self._themes
        ref = layout.parse(path)
        if ref is None:
            return False
        if ref.kind is Kind.STYLESHEET:
            return ref.scope in self._themes
        return bool(self._sets) and (ref.scope is None or ref.scope in self._sets)
