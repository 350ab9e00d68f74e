"""Save a stylesheet exactly as MyBB 1.8's Admin CP does, as pure functions.

The forum only shows an edit when the row, the cache files, every affected
`themes.stylesheets`/`properties` string and datacache `default_theme` all match
what the Admin CP would have written, so this module computes all of them and
leaves the I/O (database and files) to a shell that applies a `SavePlan`.
"""

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from mybb_sync import php

from .rows import Stylesheet, StylesheetUpdate, Theme, ThemeUpdate

__all__ = [
    "CacheFile",
    "CacheFileMtime",
    "SavePlan",
    "Stylesheet",
    "StylesheetUpdate",
    "Theme",
    "ThemeUpdate",
    "build_stylesheet_list",
    "cache_css",
    "default_theme_cache",
    "effective_stylesheets",
    "min_name",
    "minify_css",
    "plan_add_stylesheet",
    "plan_edit_stylesheet",
    "rebuild_theme_lists",
]

MASTER_TID = 1

CacheFileMtime = Callable[[int, str], int | None]
"""`(tid, name) -> mtime of cache/themes/theme<tid>/<name>`, or None if absent."""


@dataclass(frozen=True)
class CacheFile:
    """A file to write under `<forum root>/cache/themes/`."""

    tid: int
    filename: str
    content: bytes

    @property
    def path(self) -> str:
        """Path relative to `cache/themes/`, e.g. `theme2/global.css`."""
        return f"theme{self.tid}/{self.filename}"


@dataclass(frozen=True)
class SavePlan:
    """Everything one Admin CP save writes, in the order a shell should apply it.

    `inserts` carry their final sid (the `next_sid` the plan was given);
    `default_theme` is None when the datacache row would not change.
    """

    inserts: tuple[Stylesheet, ...]
    updates: tuple[StylesheetUpdate, ...]
    cache_files: tuple[CacheFile, ...]
    themes: tuple[ThemeUpdate, ...]
    default_theme: str | None


# --- cache files -------------------------------------------------------------

# MyBB's cache_stylesheet(): url(X), url('X') or url("X"), same quote both sides.
_CSS_URL = re.compile(rb"""url\(("|'|)([^"'\s]*?)\1\)""")
# fix_css_urls(): a scheme or a leading slash means "leave the path alone".
_NOT_RELATIVE = re.compile(rb"[a-z0-9]+:|/", re.IGNORECASE)
_COMMENT = re.compile(rb"/\*.*?\*/", re.DOTALL)
# Bytes patterns: \s is ASCII-only, like PCRE without /u (NBSP survives).
_SPACE_AROUND_SYMBOL = re.compile(rb"\s*([{}:;,])\s*")
_LONG_HEX = re.compile(rb"#([a-f0-9])\1([a-f0-9])\2([a-f0-9])\3", re.IGNORECASE)
_PHP_TRIM = b" \t\n\r\0\x0b"


def _fix_url(match: re.Match[bytes]) -> bytes:
    """fix_css_urls(): the cache file sits three folders below the forum root."""
    url = match.group(2)
    if _NOT_RELATIVE.match(url) or b"../../../" in url:
        return b"url(" + url + b")"
    return b"url(../../../" + url + b")"


def cache_css(text: str, tid: int) -> bytes:
    """The bytes MyBB writes to cache/themes/theme<tid>/<name> for a stylesheet.

    `{theme}` becomes `cache/themes/theme<tid>` everywhere (comments too), then
    relative url()s get `../../../` because the file lives three folders deep.
    """
    css = text.encode("utf-8").replace(b"{theme}", f"cache/themes/theme{tid}".encode())
    return _CSS_URL.sub(_fix_url, css)


def minify_css(css: bytes) -> bytes:
    """MyBB's minify_stylesheet(), byte for byte, on a cache file's bytes."""
    css = _COMMENT.sub(b"", css)
    css = _SPACE_AROUND_SYMBOL.sub(rb"\1", css)
    css = css.replace(b";}", b"}")
    css = _LONG_HEX.sub(rb"#\1\2\3", css)
    return css.strip(_PHP_TRIM)


def min_name(name: str) -> str:
    """The minified file's name: PHP str_replace('.css', '.min.css'), every occurrence."""
    return name.replace(".css", ".min.css")


def _cache_filename(name: str) -> str:
    """cache_stylesheet() drops slashes so a name cannot leave the theme folder."""
    return name.replace("/", "")


# --- themes and stylesheet lists ---------------------------------------------


def _php_append(array: dict[int | str, php.PhpValue], value: php.PhpValue) -> None:
    """PHP's `$array[] = $value`: next integer key after the largest one."""
    int_keys = [key for key in array if isinstance(key, int)]
    array[max(int_keys) + 1 if int_keys else 0] = value


def _subarray(array: dict[int | str, php.PhpValue], key: str) -> dict[int | str, php.PhpValue]:
    """PHP's auto-created nested array `$array[$key]` (every level here is an array)."""
    return cast(dict[int | str, php.PhpValue], array.setdefault(php.array_key(key), {}))


def _theme(themes: Iterable[Theme], tid: int) -> Theme:
    """The row for tid; an unknown tid is a caller error, not an empty theme."""
    for theme in themes:
        if theme.tid == tid:
            return theme
    raise ValueError(f"no theme with tid {tid}")


def _parent_list(themes: Sequence[Theme], tid: int) -> list[int]:
    """make_parent_theme_list(): tid, its parent, ... up to a theme with no parent row."""
    by_tid = {theme.tid: theme for theme in themes}
    if tid not in by_tid:
        raise ValueError(f"no theme with tid {tid}")
    chain: list[int] = []
    current = tid
    while current in by_tid:
        if current in chain:
            raise ValueError(f"theme {tid} has a parent loop through tid {current}")
        chain.append(current)
        current = by_tid[current].pid
    return chain


def _child_list(themes: Sequence[Theme], tid: int) -> list[int]:
    """make_child_theme_list(): every descendant, depth first, in MyBB's (pid, name) order."""
    result: list[int] = []

    def visit(parent: int) -> None:
        for child in sorted((t for t in themes if t.pid == parent), key=lambda t: t.name):
            if child.tid != tid and child.tid not in result:
                result.append(child.tid)
                visit(child.tid)

    visit(tid)
    return result


def effective_stylesheets(themes: Sequence[Theme], sheets: Iterable[Stylesheet], tid: int) -> dict[str, Stylesheet]:
    """Per name, the row the theme uses, in the order MyBB walks them.

    Like MyBB (`tid IN (chain) ORDER BY tid DESC`), the highest tid in the
    parent chain wins; that is the nearest theme unless a theme was re-parented
    under a newer one. Within a tid, rows come in sid order.
    """
    chain = set(_parent_list(themes, tid))
    rows = sorted((s for s in sheets if s.tid in chain), key=lambda s: (-s.tid, s.sid))
    result: dict[str, Stylesheet] = {}
    for row in rows:
        result.setdefault(row.name, row)
    return result


def _css_url(row: Stylesheet, chain: Sequence[int], cache_file_mtime: CacheFileMtime) -> str:
    """The nearest theme's cache file that is at least as new as the row, else css.php."""
    for theme_id in chain:
        mtime = cache_file_mtime(theme_id, row.name)
        if mtime is not None and mtime >= row.lastmodified:
            return f"cache/themes/theme{theme_id}/{row.name}"
    return f"css.php?stylesheet={row.sid}"


def _attachments(attachedto: str) -> list[tuple[str, str]]:
    """(file, action) pairs: `a.php?x,y|b.php` -> (a.php, x), (a.php, y), (b.php, global)."""
    # PHP's `!$attachedto` is also true for "0".
    pairs: list[tuple[str, str]] = []
    for part in (attachedto if attachedto not in ("", "0") else "global").split("|"):
        file, actions = part, ["global"]
        if "?" in part:
            pieces = part.split("?")
            file, actions = pieces[0], pieces[1].split(",")
        pairs.extend((file, action) for action in actions)
    return pairs


def build_stylesheet_list(
    themes: Sequence[Theme],
    sheets: Iterable[Stylesheet],
    tid: int,
    cache_file_mtime: CacheFileMtime,
) -> str:
    """The `themes.stylesheets` value update_theme_stylesheet_list() writes for tid.

    Shape: `[file][action][] = url`, plus `['inherited']["file_action"][url] =
    "<row tid>"` for rows taken from another theme; keys in first-seen order.
    """
    chain = _parent_list(themes, tid)
    result: dict[int | str, php.PhpValue] = {}
    for row in effective_stylesheets(themes, sheets, tid).values():
        url = _css_url(row, chain, cache_file_mtime)
        for file, action in _attachments(row.attachedto):
            _php_append(_subarray(_subarray(result, file), action), url)
            if row.tid != tid:
                _subarray(_subarray(result, "inherited"), f"{file}_{action}")[url] = str(row.tid)
    return php.dumps(result)


def _order_value(value: php.PhpValue) -> float:
    """A disporder value as PHP compares it (ints, or numeric strings from hand edits)."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"stylesheet display order {value!r} is not a number")


def _rebuild_properties(properties: str, names: Iterable[str]) -> str:
    """update_theme_stylesheet_list()'s disporder rebuild for the given sheet names.

    Known names keep their order value, unknown ones get max+1, max+2, ...;
    names no longer present are dropped, then a stable sort by value.
    """
    loaded = php.unserialized(php.loads(properties)) if properties else {}
    props = loaded if isinstance(loaded, dict) else {}
    current = props.get("disporder")
    disporder = current if isinstance(current, dict) else {}
    orders: dict[int | str, php.PhpValue] = {}
    orphans: list[int | str] = []
    highest = 0.0
    for name in names:
        key = php.array_key(name)
        value = disporder.get(key)
        if value is None:
            orphans.append(key)
            continue
        highest = max(highest, _order_value(value))
        orders[key] = value
    for position, key in enumerate(orphans, start=int(highest) + 1):
        orders[key] = position
    props["disporder"] = dict(sorted(orders.items(), key=lambda item: _order_value(item[1])))
    return php.dumps(props)


def default_theme_cache(theme: Theme) -> str:
    """The datacache `default_theme` value: the def=1 row as fetched (tid as a string)."""
    return php.dumps(
        {
            "name": theme.name,
            "tid": str(theme.tid),
            "properties": theme.properties,
            "stylesheets": theme.stylesheets,
        }
    )


# --- save plans --------------------------------------------------------------


def _check_editable(themes: Sequence[Theme], tid: int) -> None:
    """The theme must exist, and the Admin CP refuses every change to the master style."""
    _theme(themes, tid)
    if tid == MASTER_TID:
        raise ValueError("theme 1 (MyBB Master Style) is read-only, as in the Admin CP")


def _check_next_sid(sheets: Sequence[Stylesheet], next_sid: int) -> None:
    """An AUTO_INCREMENT value is above every sid; anything else would collide."""
    if any(sheet.sid >= next_sid for sheet in sheets):
        raise ValueError(f"next_sid {next_sid} is not above every existing stylesheet sid")


def plan_edit_stylesheet(
    themes: Sequence[Theme],
    sheets: Sequence[Stylesheet],
    tid: int,
    name: str,
    text: str,
    now: int,
    next_sid: int,
    cache_file_mtime: CacheFileMtime,
) -> SavePlan:
    """Admin CP edit_stylesheet: save `text` as stylesheet `name` of theme `tid`.

    An inherited sheet is copied down into `tid` as a new row with sid
    `next_sid` (the table's AUTO_INCREMENT); an own row is updated in place.
    The text is stored as given (MyBB does not trim stylesheets).
    """
    _check_editable(themes, tid)
    current = effective_stylesheets(themes, sheets, tid).get(name)
    if current is None:
        raise ValueError(f"theme {tid} has no stylesheet {name!r}, own or inherited")
    inserts: tuple[Stylesheet, ...] = ()
    updates: tuple[StylesheetUpdate, ...] = ()
    if current.tid == tid:
        updates = (StylesheetUpdate(current.sid, text, name, now),)
        after = [
            replace(s, stylesheet=text, cachefile=name, lastmodified=now) if s.sid == current.sid else s for s in sheets
        ]
    else:
        _check_next_sid(sheets, next_sid)
        copy = replace(current, sid=next_sid, tid=tid, stylesheet=text, cachefile=name, lastmodified=now)
        inserts = (copy,)
        after = [*sheets, copy]
    return _finish_plan(themes, after, tid, name, text, now, cache_file_mtime, inserts, updates)


_ADDABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,30}")


def plan_add_stylesheet(
    themes: Sequence[Theme],
    sheets: Sequence[Stylesheet],
    tid: int,
    name: str,
    text: str,
    now: int,
    next_sid: int,
    attachedto: str = "",
    *,
    cache_file_mtime: CacheFileMtime,
) -> SavePlan:
    """Admin CP add_stylesheet ("write my own"): a new row `name` in theme `tid`.

    `attachedto` is the stored form: '' (globally), `file.php`, `file.php?act1,act2`,
    a colour key, joined with `|`. The name must already be one the Admin CP
    keeps unchanged ([A-Za-z0-9_.-], at most 30 characters, ending in .css), and
    the theme must not have its own row of that name (MyBB would add a duplicate).
    """
    _check_editable(themes, tid)
    if not _ADDABLE_NAME.fullmatch(name) or name == ".css" or name.rpartition(".")[2].lower() != "css":
        raise ValueError(f"stylesheet name {name!r} is not one the Admin CP accepts as is")
    if any(s.tid == tid and s.name == name for s in sheets):
        raise ValueError(f"theme {tid} already has its own stylesheet {name!r}")
    _check_next_sid(sheets, next_sid)
    row = Stylesheet(next_sid, name, tid, attachedto, text, _cache_filename(name), now)
    return _finish_plan(themes, [*sheets, row], tid, name, text, now, cache_file_mtime, (row,), ())


def rebuild_theme_lists(
    themes: Sequence[Theme],
    sheets: Sequence[Stylesheet],
    tid: int,
    cache_file_mtime: CacheFileMtime,
    *,
    disporders: bool = True,
) -> tuple[tuple[ThemeUpdate, ...], str | None]:
    """update_theme_stylesheet_list() for tid and its children, then the new default_theme (None: unchanged).

    ``disporders=False`` is its ``$update_disporders = false`` (Edit Stylesheet Properties
    without a rename): the lists are rebuilt, ``properties`` left as they are.
    """
    theme_updates: list[ThemeUpdate] = []
    after: dict[int, Theme] = {}
    for theme_id in [tid, *_child_list(themes, tid)]:
        theme = _theme(themes, theme_id)
        names = effective_stylesheets(themes, sheets, theme_id)
        new = replace(
            theme,
            properties=_rebuild_properties(theme.properties, names) if disporders else theme.properties,
            stylesheets=build_stylesheet_list(themes, sheets, theme_id, cache_file_mtime),
        )
        if new != theme:
            theme_updates.append(ThemeUpdate(theme_id, new.properties, new.stylesheets))
            after[theme_id] = new

    default_theme = None
    default = next((t for t in themes if t.def_ == 1), None)
    if default is not None and default.tid in after:
        value = default_theme_cache(after[default.tid])
        if value != default_theme_cache(default):
            default_theme = value
    return tuple(theme_updates), default_theme


def _finish_plan(
    themes: Sequence[Theme],
    sheets: Sequence[Stylesheet],
    tid: int,
    name: str,
    text: str,
    now: int,
    cache_file_mtime: CacheFileMtime,
    inserts: tuple[Stylesheet, ...],
    updates: tuple[StylesheetUpdate, ...],
) -> SavePlan:
    """Cache files, then the list rebuild of tid and its children, then default_theme."""
    filename = _cache_filename(name)
    css = cache_css(text, tid)
    cache_files = (CacheFile(tid, filename, css), CacheFile(tid, min_name(filename), minify_css(css)))

    def mtime_after_save(theme_id: int, sheet_name: str) -> int | None:
        if theme_id == tid and sheet_name == filename:
            return now
        return cache_file_mtime(theme_id, sheet_name)

    theme_updates, default_theme = rebuild_theme_lists(themes, sheets, tid, mtime_after_save)
    return SavePlan(inserts, updates, cache_files, theme_updates, default_theme)
