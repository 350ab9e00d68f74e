"""What a pass covers: template sets and themes, their labels in reports and their folders."""

from __future__ import annotations

from dataclasses import dataclass

from . import layout
from .catalog import Catalog
from .layout import GLOBAL_SID, Kind


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
