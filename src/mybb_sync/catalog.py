"""Which template sets and themes the forum has, and their folders in the sync root.

Built from the database, then used as a pure lookup: ids to paths and back.
A set or theme whose name cannot be a safe, unique folder is left out with
a warning; the rest goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import layout
from .errors import UnsafeName
from .layout import GLOBAL_SID, FileRef, Kind
from .store import Store, Theme

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Catalog:
    sets: dict[int, str]  # template set sid -> title
    groups: frozenset[str]
    themes: dict[int, Theme]  # tid -> theme
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def set_sid(self, title: str) -> int | None:
        return next((sid for sid, t in self.sets.items() if t == title), None)

    def theme_tid(self, name: str) -> int | None:
        return next((tid for tid, t in self.themes.items() if t.name == name), None)

    def template_path(self, sid: int, title: str) -> str:
        """Path of a template of set ``sid`` (-1: global); raises UnsafeName."""
        if sid == GLOBAL_SID:
            return layout.template_path(None, title)
        return layout.template_path(self.sets[sid], title, layout.group_of(title, self.groups))

    def stylesheet_path(self, tid: int, name: str) -> str:
        return layout.stylesheet_path(self.themes[tid].name, name)

    def owner(self, ref: FileRef) -> int | None:
        """The set sid (-1 for global) or theme tid a parsed path belongs to."""
        if ref.kind is Kind.STYLESHEET:
            return self.theme_tid(ref.scope or "")
        if ref.scope is None:
            return GLOBAL_SID
        return self.set_sid(ref.scope)

    def place(self, paths: Iterable[str], temp_suffix: str) -> Placed:
        """Each file's set or theme and name (pure). A set template's file counts in any group
        folder of its set's folder; anything else out of its place is logged and left out."""
        placed = Placed()
        for path in paths:
            ref = layout.parse(path)
            if ref is None:
                if (why := layout.why_ignored(path, layout.Found.FILE, temp_suffix)) is not None:
                    placed.ignored[path] = why
                continue
            owner, canonical = self.owner(ref), self.canonical(ref)
            if owner is None or canonical is None:
                log.debug("ignored %s: no such template set or theme", path)
            elif canonical != path and not layout.same_set_folder(canonical, path):
                log.warning("ignored %s: not in its place (it belongs at %s)", path, canonical)
            else:
                placed.groups.setdefault((ref.kind, owner), []).append((path, ref.name))
        return placed

    def own_place(self, path: str) -> bool:
        """Whether ``path`` is where a file of what it names belongs (:meth:`canonical`)."""
        ref = layout.parse(path)
        return ref is not None and self.canonical(ref) == path

    def canonical(self, ref: FileRef) -> str | None:
        """Where a file for ``ref`` belongs (templates: in their group's folder)."""
        owner = self.owner(ref)
        if owner is None:
            return None
        try:
            if ref.kind is Kind.STYLESHEET:
                return self.stylesheet_path(owner, ref.name)
            return self.template_path(owner, ref.name)
        except UnsafeName:
            return None


@dataclass
class Placed:
    """Files sorted by what they stand for (:meth:`Catalog.place`)."""

    groups: dict[tuple[Kind, int], list[tuple[str, str]]] = field(default_factory=dict)  # (kind, owner) -> (path, name)
    ignored: dict[str, str] = field(default_factory=dict)  # passed over where a file could be, with why


def _unique(items: list[tuple[int, str]], what: str, warnings: list[str]) -> dict[int, str]:
    seen: dict[str, int] = {}
    out: dict[int, str] = {}
    for ident, name in items:
        try:
            folder = layout.escape_part(name)
        except UnsafeName as exc:
            warnings.append(f"{what} {ident} skipped: {exc}")
            continue
        if folder in seen:
            warnings.append(f"{what} {ident} skipped: its name {name!r} is also {what} {seen[folder]}'s")
            continue
        seen[folder] = ident
        out[ident] = name
    return out


async def load_catalog(store: Store) -> Catalog:
    warnings: list[str] = []
    sets = _unique([(s.sid, s.title) for s in await store.template_sets()], "template set", warnings)
    themes = await store.themes()
    theme_names = _unique([(t.tid, t.name) for t in themes], "theme", warnings)
    for w in warnings:
        log.warning("%s", w)
    return Catalog(
        sets=sets,
        groups=await store.template_group_prefixes(),
        themes={t.tid: t for t in themes if t.tid in theme_names},
        warnings=tuple(warnings),
    )
