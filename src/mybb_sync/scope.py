"""What a pass covers: template sets and themes, their labels in reports and their folders."""

from __future__ import annotations

from dataclasses import dataclass

from . import layout
from .catalog import Catalog
from .errors import ConfigError
from .layout import GLOBAL_SID, Kind
from .selection import Selection


@dataclass(frozen=True)
class Scope:
    """What to export: template set sids (-1 = global templates) and theme tids."""

    sets: tuple[int, ...]
    themes: tuple[int, ...]


def scope_label(catalog: Catalog, kind: Kind, owner: int) -> str:
    if kind is Kind.STYLESHEET:
        return f"theme:{catalog.themes[owner].name}"
    return "global" if owner == GLOBAL_SID else f"set:{catalog.sets[owner]}"


def scope_folders(catalog: Catalog, scope: Scope) -> list[str]:
    """The top folders of the sync root a scope covers."""
    folders = [
        layout.GLOBAL_DIR if sid == GLOBAL_SID else f"{layout.SETS_DIR}/{layout.escape_part(catalog.sets[sid])}"
        for sid in scope.sets
    ]
    return folders + [f"{layout.STYLES_DIR}/{layout.escape_part(catalog.themes[tid].name)}" for tid in scope.themes]


def select_scope(catalog: Catalog, selection: Selection) -> Scope:
    """The sets and themes a selection names (``--set``/``--theme``; none: everything). An
    unknown name is a usage error listing the choices."""
    if not (selection.sets or selection.themes):
        return Scope((*sorted(catalog.sets), GLOBAL_SID), tuple(sorted(catalog.themes)))
    set_ids = []
    for name in selection.sets:
        sid = catalog.set_sid(name)
        if sid is None:
            choices = ", ".join(repr(t) for t in catalog.sets.values()) or "none"
            raise ConfigError(f"unknown template set {name!r}; available: {choices}")
        set_ids.append(sid)
    theme_ids = []
    for name in selection.themes:
        tid = catalog.theme_tid(name)
        if tid is None:
            choices = ", ".join(repr(t.name) for t in catalog.themes.values()) or "none"
            raise ConfigError(f"unknown theme {name!r}; available: {choices}")
        theme_ids.append(tid)
    return Scope((*set_ids, GLOBAL_SID) if set_ids else (), tuple(theme_ids))
