"""Where each template and stylesheet lives under the sync root, and back.

Pure functions only. Database names become path parts through a reversible
escape, so no database value can name a path outside the root and every file
name maps back to exactly one title::

    template_sets/<set title>/<group>/<template title>.html
    global_templates/<template title>.html
    styles/<theme name>/<stylesheet name>

The group folder is cosmetic: a template is identified by its set and file
name, and :func:`parse` accepts it under any group folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from .errors import UnsafeName

SETS_DIR = "template_sets"
GLOBAL_DIR = "global_templates"
STYLES_DIR = "styles"
STATE_DIR = ".mybb-sync"
TEMPLATE_EXT = ".html"
STYLESHEET_EXT = ".css"
UNGROUPED = "ungrouped"
NAME_MAX = 255  # bytes in one path component on Linux filesystems

GLOBAL_SID = -1
MASTER_SID = -2

# Characters that may not appear raw in a path part: the escape character
# itself, both separators, and every control character.
_UNSAFE = re.compile(r"[%/\\\x00-\x1f\x7f]")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # PHP 8 strtolower

_EDITOR_NAMES = ("4913",)
_EDITOR_SUFFIXES = (
    "~", ".swp", ".swx", ".swo", "___jb_tmp___", "___jb_old___", "#", ".orig", ".rej", ".bak",
)  # fmt: skip


class Kind(StrEnum):
    TEMPLATE = "template"
    STYLESHEET = "stylesheet"


@dataclass(frozen=True, slots=True)
class FileRef:
    """What a file in the sync root stands for, by name.

    ``scope`` is the set title for set templates, ``None`` for global
    templates, and the theme name for stylesheets.
    """

    kind: Kind
    scope: str | None
    name: str

    @property
    def is_global(self) -> bool:
        return self.kind is Kind.TEMPLATE and self.scope is None


@lru_cache(maxsize=4096)
def escape_part(name: str) -> str:
    """Turn a database name into one safe path component (reversible)."""
    if not name:
        raise UnsafeName("an empty name cannot be a file name")
    out = _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", name)
    if out.startswith((".", "#")):  # dotfiles and editor autosaves (#x#) are ignored names
        out = f"%{ord(out[0]):02X}" + out[1:]
    try:
        size = len(out.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafeName(f"name {name!r} is not valid Unicode") from None
    if size > NAME_MAX:
        raise UnsafeName(f"name {name[:40]!r}... is {size} bytes once escaped (limit {NAME_MAX})")
    return out


def unescape_part(part: str) -> str | None:
    """The database name of a path component, or None if no name escapes to it."""
    name = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), part)
    try:
        canonical = escape_part(name)
    except UnsafeName:
        return None
    return name if canonical == part else None


def group_of(title: str, prefixes: Iterable[str] | frozenset[str]) -> str:
    """MyBB's group of a template: the part before the first ``_`` if it is a known prefix.

    Like the Admin CP (which lowercases both sides), the match ignores ASCII
    case; the group is returned spelled as in ``templategroups``.
    """
    head = title.split("_", 1)[0]
    known = prefixes if isinstance(prefixes, frozenset) else frozenset(prefixes)
    return head if head in known else _folded_group(head, known)


@lru_cache(maxsize=1024)
def _folded_group(head: str, known: frozenset[str]) -> str:
    """The group of a head that is no prefix as spelled (asked once per head: a pass asks per file)."""
    folded = head.translate(_ASCII_LOWER)
    return next((p for p in known if p.translate(_ASCII_LOWER) == folded), UNGROUPED)


def is_ignored_name(filename: str, temp_suffix: str) -> bool:
    """Names that editors, git and our own writer use for scratch files."""
    return (
        filename.startswith((".", "#"))
        or filename.endswith(temp_suffix)
        or filename in _EDITOR_NAMES
        or filename.endswith(_EDITOR_SUFFIXES)
    )


def template_path(set_title: str | None, title: str, group: str = UNGROUPED) -> str:
    """Relative path of a template of a set (``set_title``) or a global one (``None``)."""
    if not title:  # ".html" would be a dotfile, and no file name parses back to an empty title
        raise UnsafeName("an empty template title cannot be a file name")
    filename = escape_part(title + TEMPLATE_EXT)
    if set_title is None:
        return f"{GLOBAL_DIR}/{filename}"
    return f"{_group_folder(set_title, group)}/{filename}"


@lru_cache(maxsize=4096)
def _group_folder(set_title: str, group: str) -> str:
    """A group folder's path (asked once per folder: a pass asks per file)."""
    return f"{SETS_DIR}/{escape_part(set_title)}/{escape_part(group)}"


def stylesheet_path(theme_name: str, name: str) -> str:
    """Relative path of a stylesheet as a theme shows it."""
    return f"{STYLES_DIR}/{escape_part(theme_name)}/{escape_part(name)}"


def path_of(ref: FileRef, group: str = UNGROUPED) -> str:
    if ref.kind is Kind.STYLESHEET:
        assert ref.scope is not None
        return stylesheet_path(ref.scope, ref.name)
    return template_path(ref.scope, ref.name, group)


def parse(relpath: str) -> FileRef | None:
    """What a relative path stands for, or None if it is no template or stylesheet in its place."""
    parts = relpath.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    head = parts[0]
    if head == SETS_DIR and len(parts) == 4:
        set_title, group, filename = (unescape_part(p) for p in parts[1:])
        if set_title is None or group is None or filename is None:
            return None
        return _template_ref(set_title, filename)
    if head == GLOBAL_DIR and len(parts) == 2:
        filename = unescape_part(parts[1])
        return None if filename is None else _template_ref(None, filename)
    if head == STYLES_DIR and len(parts) == 3:
        theme, name = unescape_part(parts[1]), unescape_part(parts[2])
        if theme is None or name is None or not name.endswith(STYLESHEET_EXT) or name == STYLESHEET_EXT:
            return None  # the Admin CP names every stylesheet *.css (a sed -i temp file is none)
        return FileRef(Kind.STYLESHEET, theme, name)
    return None


def _template_ref(scope: str | None, filename: str) -> FileRef | None:
    if not filename.endswith(TEMPLATE_EXT) or len(filename) == len(TEMPLATE_EXT):
        return None
    return FileRef(Kind.TEMPLATE, scope, filename[: -len(TEMPLATE_EXT)])


class Found(StrEnum):
    """What a walk or an event found at a path (``lstat``, never following a symlink)."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    OTHER = "other"  # a FIFO, socket or device


def at_file_position(relpath: str) -> bool:
    """Whether a template or stylesheet file could stand at ``relpath`` (by depth alone)."""
    parts = relpath.split("/")
    return (parts[0], len(parts)) in ((SETS_DIR, 4), (GLOBAL_DIR, 2), (STYLES_DIR, 3))


def why_ignored(relpath: str, found: Found, temp_suffix: str) -> str | None:
    """Why something where a template or stylesheet file could be is not synced, for the log
    and ``status``; None for what is synced, and for what is quietly no concern of ours
    (scratch files, anything elsewhere, a file in a template folder that is not ``.html``)."""
    if not at_file_position(relpath):
        return None
    parts = relpath.split("/")
    name = parts[-1]
    if is_ignored_name(name, temp_suffix):
        return None
    if found is Found.SYMLINK:
        return "is a symlink (never followed)"
    if found is Found.OTHER:
        return "is not a regular file (a FIFO, socket or device)"
    if found is Found.DIR:
        return "is a folder where a file belongs"
    if parse(relpath) is not None:
        return None
    if any(_has_undecodable(p) for p in parts):
        return "its name is not valid UTF-8"
    if not name.endswith(STYLESHEET_EXT if parts[0] == STYLES_DIR else TEMPLATE_EXT):
        return None  # not a template or stylesheet: a README, say
    try:
        spelt = "/".join([parts[0], *(escape_part(p) for p in parts[1:])])
    except UnsafeName as exc:
        return f"its name cannot be a template's or stylesheet's ({exc})"
    return f"its name is not one mybb-sync writes ('%' is written %25, control characters %XX: {spelt})"


def printable(relpath: str) -> str:
    """``relpath`` as text that can be logged and stored: bytes that are not UTF-8 (kept by
    ``os.fsdecode`` as lone surrogates) shown as ``\\xNN``."""
    return relpath.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _has_undecodable(part: str) -> bool:
    """Whether ``os.fsdecode`` had to escape bytes that are not UTF-8 (lone surrogates)."""
    try:
        part.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def same_set_folder(a: str, b: str) -> bool:
    """Whether two set template paths are in one set's folder (in any group folders)."""
    return a.startswith(SETS_DIR + "/") and a.split("/")[:2] == b.split("/")[:2] and a.count("/") == b.count("/") == 3


def under(prefix: str, paths: Iterable[str]) -> list[str]:
    """The paths equal to or below ``prefix`` ("" matches everything)."""
    if not prefix:
        return list(paths)
    return [p for p in paths if p == prefix or p.startswith(prefix + "/")]
