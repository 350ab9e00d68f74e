"""A theme's Admin CP settings as a file, ``styles/<theme>/theme.json``, as pure functions.

The sync root holds a theme's stylesheets, but the forum also needs what the
Admin CP's "Edit Theme" (template set, editor theme, images folder, logo,
table spacing, border width, colours), "Edit Stylesheet Properties" (what each
stylesheet is attached to) and the stylesheet order hold. This module renders
them from the rows, deterministically (so a file changes only when they do),
reads a file back with a one-line refusal of anything it does not know, and
computes the rows those three Admin CP forms would write for the change.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from . import php
from .layout import STYLES_DIR, escape_part, unescape_part
from .rows import Stylesheet, Theme, ThemeUpdate
from .stylesheets import MASTER_TID, CacheFileMtime, default_theme_cache, effective_stylesheets, rebuild_theme_lists
from .themexml import stored_array

__all__ = [
    "FILE_NAME",
    "MetaPlan",
    "SheetMeta",
    "ThemeMeta",
    "editable",
    "parse_meta",
    "plan_meta",
    "read_meta",
    "render_meta",
    "theme_file_path",
    "theme_of",
]

FILE_NAME = "theme.json"  # never a stylesheet's name: the Admin CP names every stylesheet *.css
_INTS = ("templateset", "tablespace", "borderwidth")
_STRINGS = ("editortheme", "imgdir", "logo")
_TOP_KEYS = frozenset({*_INTS, *_STRINGS, "color", "colors", "stylesheets"})
_SHEET_KEYS = frozenset({"attachedto", "inherited", "order"})
_PHP_INT = range(-(2**63), 2**63)


def theme_file_path(theme_name: str) -> str:
    """Where a theme's settings file lives: beside its stylesheets."""
    return f"{STYLES_DIR}/{escape_part(theme_name)}/{FILE_NAME}"


def theme_of(path: str) -> str | None:
    """The theme name a settings file's path stands for, or None if it is none."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != STYLES_DIR or parts[2] != FILE_NAME:
        return None
    return unescape_part(parts[1])


def editable(tid: int) -> bool:
    """The Admin CP refuses every edit to the master style, so it gets no settings file."""
    return tid != MASTER_TID


@dataclass(frozen=True)
class SheetMeta:
    """One stylesheet the theme shows: its own (``attachedto``) or a parent's (``inherited``)."""

    attachedto: str | None  # as stored: '' (globally), `file.php`, `file.php?a,b`, colour keys; joined by |
    inherited: str | None  # the name of the theme whose row it is, when not the theme's own
    order: int | None  # properties['disporder'][name]; None when the list lacks it


@dataclass(frozen=True)
class ThemeMeta:
    """What ``theme.json`` holds; ``colors`` and ``sheets`` keep their order."""

    templateset: int
    editortheme: str
    imgdir: str
    logo: str
    tablespace: int
    borderwidth: int
    color: str | None
    colors: tuple[tuple[str, str], ...]
    sheets: tuple[tuple[str, SheetMeta], ...]

    def settings(self) -> tuple[object, ...]:
        """What the Edit Theme form holds; the colours' order aside (a file lists them sorted)."""
        return (*(getattr(self, k) for k in (*_INTS, *_STRINGS)), self.color, dict(self.colors))


# --- rows -> file ---------------------------------------------------------------


def _php_int(value: php.PhpValue) -> int:
    """PHP's (int) cast, as the Edit Theme form shows and saves a number."""
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 2**63 else 0
    if isinstance(value, str):
        digits = value.strip(" \t\n\r\v\f")
        sign = -1 if digits.startswith("-") else 1
        digits = digits.lstrip("+-")
        end = next((i for i, ch in enumerate(digits) if not ch.isascii() or not ch.isdigit()), len(digits))
        return sign * int(digits[:end]) if end else 0
    return 0


def read_meta(themes: Sequence[Theme], sheets: Sequence[Stylesheet], tid: int) -> ThemeMeta:
    """The settings of theme ``tid`` as its rows hold them (what the Admin CP's forms show)."""
    by_tid = {t.tid: t for t in themes}
    props = stored_array(by_tid[tid].properties)
    colors = props.get("colors")
    disporder = props.get("disporder")
    order = disporder if isinstance(disporder, dict) else {}
    color = props.get("color")
    shown = effective_stylesheets(themes, sheets, tid)
    return ThemeMeta(
        templateset=_php_int(props.get("templateset")),
        editortheme=str(props.get("editortheme") or ""),
        imgdir=str(props.get("imgdir") or ""),
        logo=str(props.get("logo") or ""),
        tablespace=_php_int(props.get("tablespace")),
        borderwidth=_php_int(props.get("borderwidth")),
        color=None if color is None else str(color),
        colors=tuple((str(k), str(v)) for k, v in colors.items()) if isinstance(colors, dict) else (),
        sheets=tuple(
            (
                name,
                SheetMeta(
                    row.attachedto if row.tid == tid else None,
                    None if row.tid == tid else by_tid[row.tid].name,
                    None if (value := order.get(php.array_key(name))) is None else _php_int(value),
                ),
            )
            for name, row in sorted(shown.items())
        ),
    )


def render_meta(meta: ThemeMeta) -> str:
    """The file's text: sorted keys, two-space indent, a final newline; equal settings, equal bytes."""
    data: dict[str, object] = {k: getattr(meta, k) for k in (*_INTS, *_STRINGS)}
    if meta.color is not None:
        data["color"] = meta.color
    data["colors"] = dict(meta.colors)
    data["stylesheets"] = {
        name: {
            **({"attachedto": s.attachedto} if s.attachedto is not None else {"inherited": s.inherited}),
            "order": s.order,
        }
        for name, s in meta.sheets
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- file -> settings -------------------------------------------------------------


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"key {key!r} appears twice")
    return dict(pairs)


def _only_keys(obj: Mapping[str, object], allowed: Collection[str], where: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in {where} (known: {', '.join(sorted(allowed))})")


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in _PHP_INT:
        raise ValueError(f"{what} must be a whole number")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


def _colour_word(text: str) -> bool:
    """The Edit Theme form's colour rule: letters, decimal digits and _ only (\\p{L}|\\p{Nd}|_)."""
    return bool(text) and all(
        ch == "_" or unicodedata.category(ch)[0] == "L" or unicodedata.category(ch) == "Nd" for ch in text
    )


def _sheet(name: str, value: object) -> SheetMeta:
    where = f"stylesheet {name!r}"
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    _only_keys(value, _SHEET_KEYS, where)
    if ("attachedto" in value) == ("inherited" in value):
        raise ValueError(f"{where} needs one of 'attachedto' (its own) or 'inherited' (a parent's)")
    if "order" not in value:
        raise ValueError(f"{where} has no 'order'")
    order = value["order"]
    return SheetMeta(
        _str(value["attachedto"], f"{where}: attachedto") if "attachedto" in value else None,
        _str(value["inherited"], f"{where}: inherited") if "inherited" in value else None,
        None if order is None else _int(order, f"{where}: order"),
    )


def parse_meta(text: str) -> ThemeMeta:
    """A file's settings; ValueError (one line) for what is no JSON, an unknown key or a wrong type."""
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object")
    _only_keys(data, _TOP_KEYS, "the file")
    missing = sorted(_TOP_KEYS - {"color"} - set(data))
    if missing:
        raise ValueError(f"missing key {missing[0]!r}")
    colors, sheets = data["colors"], data["stylesheets"]
    if not isinstance(colors, dict) or not isinstance(sheets, dict):
        raise ValueError("'colors' and 'stylesheets' must be objects")
    for key, label in colors.items():
        if not isinstance(label, str) or not (_colour_word(key) and _colour_word(label)):
            raise ValueError(f"colour {key}={label} is not letters, digits and _ (as the Admin CP requires)")
    color = data.get("color")
    return ThemeMeta(
        templateset=_int(data["templateset"], "templateset"),
        editortheme=_str(data["editortheme"], "editortheme"),
        imgdir=_str(data["imgdir"], "imgdir"),
        logo=_str(data["logo"], "logo"),
        tablespace=_int(data["tablespace"], "tablespace"),
        borderwidth=_int(data["borderwidth"], "borderwidth"),
        color=None if color is None else _str(color, "color"),
        colors=tuple(colors.items()),
        sheets=tuple((name, _sheet(name, value)) for name, value in sheets.items()),
    )


# --- settings -> rows ---------------------------------------------------------------


@dataclass(frozen=True)
class MetaPlan:
    """What saving the file writes: ``attachedto`` per sid, the themes rows, datacache ``default_theme``.

    ``steps`` names the Admin CP forms it amounts to (empty: nothing to write)."""

    steps: tuple[str, ...]
    attachments: tuple[tuple[int, str], ...]
    themes: tuple[ThemeUpdate, ...]
    default_theme: str | None


def _edited_properties(stored: str, new: ThemeMeta, old: ThemeMeta, tid: int) -> str:
    """Edit Theme's new ``properties``: the form's fields in its order (``inherited`` is dropped,
    numbers become ints), colour ``none`` unset, the colours (kept in their order when only the
    file's sorting differs), then the display order as it was."""
    disporder = stored_array(stored).get("disporder")
    if not isinstance(disporder, dict):
        raise ValueError(f"theme {tid} has no display order (the Admin CP refuses to save it)")
    props: dict[int | str, php.PhpValue] = {
        "templateset": new.templateset,
        "editortheme": new.editortheme,
        "imgdir": new.imgdir,
        "logo": new.logo,
        "tablespace": new.tablespace,
        "borderwidth": new.borderwidth,
    }
    if new.color is not None and new.color != "none":
        props["color"] = new.color
    colors = old.colors if dict(old.colors) == dict(new.colors) else new.colors
    if colors:
        props["colors"] = {php.array_key(k): v for k, v in colors}
    props["disporder"] = disporder
    return php.dumps(props)


def _check_settings(new: ThemeMeta, templatesets: Collection[int], editor_theme_exists: Callable[[str], bool]) -> None:
    """Edit Theme's refusals: a template set that does not exist, an editor theme with no file."""
    if new.templateset <= 0 or new.templateset not in templatesets:
        raise ValueError(f"template set {new.templateset} does not exist (the Admin CP refuses it)")
    if not new.editortheme or not editor_theme_exists(new.editortheme):
        raise ValueError(f"editor theme {new.editortheme!r} is no file in jscripts/sceditor/themes/")


def _check_sheets(old: ThemeMeta, new: ThemeMeta, tid: int) -> None:
    """The file lists exactly the theme's stylesheets, own and inherited as they are."""
    before, after = dict(old.sheets), dict(new.sheets)
    for name in sorted(set(before) ^ set(after)):
        if name in after:
            raise ValueError(f"it lists stylesheet {name!r}, which theme {tid} does not have (add it as a .css file)")
        raise ValueError(f"it lacks stylesheet {name!r} of theme {tid} (stylesheets go as .css files do)")
    for name, sheet in new.sheets:
        if sheet.attachedto is not None and before[name].attachedto is None:
            raise ValueError(
                f"stylesheet {name!r} is inherited from {before[name].inherited!r}: attach it in that theme's "
                "file, or save its .css in this theme first"
            )
        if sheet.attachedto is None and before[name].attachedto is not None:
            raise ValueError(f"stylesheet {name!r} is theme {tid}'s own: give its 'attachedto'")


def plan_meta(
    themes: Sequence[Theme],
    sheets: Sequence[Stylesheet],
    tid: int,
    new: ThemeMeta,
    *,
    templatesets: Collection[int],
    editor_theme_exists: Callable[[str], bool],
    cache_file_mtime: CacheFileMtime,
) -> MetaPlan:
    """The rows the Admin CP's forms write for the settings ``new`` of theme ``tid``, in their order:
    Edit Theme (``properties``, then the lists of the theme and its children rebuilt), Edit
    Stylesheet Properties per changed attachment (``attachedto``; lists rebuilt, display order
    left alone), then the order (``disporder``, normalised by the rebuild). ValueError: refused."""
    if not editable(tid):
        raise ValueError(f"theme {tid} (MyBB Master Style) is read-only, as in the Admin CP")
    old = read_meta(themes, sheets, tid)
    _check_sheets(old, new, tid)
    now_themes = {t.tid: t for t in themes}
    now_sheets = list(sheets)
    steps: list[str] = []

    def rebuild(disporders: bool) -> None:
        updates, _ = rebuild_theme_lists(
            list(now_themes.values()), now_sheets, tid, cache_file_mtime, disporders=disporders
        )
        for u in updates:
            now_themes[u.tid] = replace(now_themes[u.tid], properties=u.properties, stylesheets=u.stylesheets)

    if new.settings() != old.settings():
        _check_settings(new, templatesets, editor_theme_exists)
        theme = now_themes[tid]
        now_themes[tid] = replace(theme, properties=_edited_properties(theme.properties, new, old, tid))
        rebuild(True)
        steps.append("settings")
    own = {s.name: s.sid for s in effective_stylesheets(themes, sheets, tid).values() if s.tid == tid}
    before = dict(old.sheets)
    attached = {
        own[name]: s.attachedto
        for name, s in new.sheets
        if s.attachedto is not None and s.attachedto != before[name].attachedto
    }
    if attached:
        now_sheets = [replace(s, attachedto=attached[s.sid]) if s.sid in attached else s for s in now_sheets]
        rebuild(False)
        steps.append("attachments")
    orders = {name: s.order for name, s in new.sheets}
    if orders != {name: s.order for name, s in old.sheets}:
        props = stored_array(now_themes[tid].properties)
        props["disporder"] = {php.array_key(n): o for n, o in orders.items() if o is not None}
        now_themes[tid] = replace(now_themes[tid], properties=php.dumps(props))
        rebuild(True)
        steps.append("order")
    original = {t.tid: t for t in themes}
    changed = tuple(
        ThemeUpdate(t.tid, t.properties, t.stylesheets) for t in now_themes.values() if t != original[t.tid]
    )
    default = next((t for t in now_themes.values() if t.def_ == 1), None)
    # update_theme_stylesheet_list() ends with update_default_theme(), whatever changed.
    default_theme = default_theme_cache(default) if steps and default is not None else None
    return MetaPlan(tuple(steps), tuple(sorted(attached.items())), changed, default_theme)
