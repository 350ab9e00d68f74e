"""Theme packages against a forum: export, import and list, as the Admin CP does them.

The decisions are :mod:`.themexml`'s; this module reads the rows they need,
applies what they decide in the Admin CP's order (template set, templates,
theme, stylesheets and their cache files, then the rebuilt lists and
datacache), and refuses before the first write whatever MyBB would refuse or
the database could not hold.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import anyio.to_thread

from .errors import ConfigError, MybbSyncError
from .importer import ForumCache
from .rows import Theme
from .store import MASTER_THEME_TID, MAX_TEMPLATE_BYTES, MAX_TITLE_CHARS, Column, Store
from .stylesheets import CacheFile, rebuild_theme_lists
from .themexml import (
    ThemePackage,
    build_theme_xml,
    import_refusal,
    new_stylesheets,
    new_theme_properties,
    parse_theme_xml,
    sheet_cache_files,
    stored_array,
    templateset_of,
)

log = logging.getLogger(__name__)

MAX_THEME_NAME_CHARS = 100  # themes.name is varchar(100)
MAX_VERSION_CHARS = 20  # templates.version is varchar(20)


def find_theme(themes: Sequence[Theme], ref: str) -> Theme:
    """A theme by tid (first) or by exact name; an unknown one is a usage error naming the choices."""
    by_tid = [t for t in themes if ref.isdigit() and t.tid == int(ref)]
    for theme in by_tid or [t for t in themes if t.name == ref]:
        return theme
    choices = ", ".join(f"{t.tid} {t.name!r}" for t in themes) or "none"
    raise ConfigError(f"unknown theme {ref!r}; available: {choices}")


async def export_theme(store: Store, ref: str, *, custom_only: bool, include_templates: bool) -> bytes:
    """The bytes Themes > Export Theme serves for the theme ``ref`` (name or tid)."""
    theme = find_theme(await store.themes(), ref)
    templates = await store.set_own_templates(templateset_of(theme)) if include_templates else []
    return build_theme_xml(
        theme,
        await store.stylesheets(),
        templates,
        await store.version_code(),
        custom_only=custom_only,
        include_templates=include_templates,
    )


@dataclass(frozen=True)
class ImportOptions:
    """The Admin CP's Import Theme form: name (empty: the file's), parent theme, what to take."""

    name: str
    parent: str = str(MASTER_THEME_TID)
    stylesheets: bool = True
    templates: bool = True
    ignore_version: bool = False


@dataclass(frozen=True)
class ImportedTheme:
    tid: int
    name: str
    parent: int
    templateset: int | None  # the new set, None when no templates came along
    templates: int
    stylesheets: list[int]  # the new rows' sids
    cache_failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def _unstorable(store: Store, package: ThemePackage, name: str, templates: bool, sheets: bool) -> str | None:
    """What the database could not hold intact (MySQL would cut it short or turn it into '?')."""
    if len(name) > MAX_THEME_NAME_CHARS:
        return f"the theme name is {len(name)} characters (MyBB allows {MAX_THEME_NAME_CHARS})"
    for t in package.templates if templates else ():
        if len(t.title) > MAX_TITLE_CHARS:
            return f"template title {t.title[:40]!r}... is {len(t.title)} characters (MyBB allows {MAX_TITLE_CHARS})"
        if len(t.version) > MAX_VERSION_CHARS:
            return f"template {t.title!r} has a version of {len(t.version)} characters (at most {MAX_VERSION_CHARS})"
        if len(t.text.encode("utf-8")) > MAX_TEMPLATE_BYTES:
            return f"template {t.title!r} is over {MAX_TEMPLATE_BYTES} bytes"
        for text, column in ((t.title, Column.TEMPLATE_TITLE), (t.text, Column.TEMPLATE_TEXT)):
            if (why := store.refusal(text, column)) is not None:
                return f"template {t.title!r} {why}"
    for s in new_stylesheets(package, 0) if sheets else ():
        for text, column in ((s.name, Column.STYLESHEET_NAME), (s.stylesheet, Column.STYLESHEET_TEXT)):
            if (why := store.refusal(text, column)) is not None:
                return f"stylesheet {s.name!r} {why}"
    return None


async def import_theme(store: Store, cache: ForumCache, data: bytes, options: ImportOptions) -> ImportedTheme:
    """Themes > Import Theme: a new theme (and template set) from a theme file's bytes.

    Refused with the Admin CP's reason, before anything is written: a file that
    is no MyBB theme, a theme of that name, another MyBB version (unless
    ``ignore_version``), a template failing MyBB's security check; and also
    what the database could not store intact.
    """
    try:
        package = parse_theme_xml(data)
    except ValueError as exc:
        raise MybbSyncError(f"theme import refused: {exc}") from None
    themes = await store.themes()
    parent = find_theme(themes, options.parent)
    name = options.name or package.name or ""
    with_templates = options.templates and bool(package.templates)
    with_sheets = options.stylesheets and bool(package.stylesheets)
    why = import_refusal(
        package,
        name_taken=await store.theme_named(name) is not None,
        board_version=await store.version_code(),
        ignore_version=options.ignore_version,
        with_templates=with_templates,
    )
    if why is None:
        why = _unstorable(store, package, name, with_templates, with_sheets)
    if why is not None:
        raise MybbSyncError(f"theme import refused: {why}")

    written = _Written()
    try:
        return await _write(store, cache, package, name, parent, with_templates, with_sheets, written)
    except (MybbSyncError, ValueError) as exc:
        # MyISAM has no transactions: take back what got in, so a failed import leaves nothing.
        with anyio.CancelScope(shield=True):
            await _undo(store, cache, written)
        raise MybbSyncError(f"theme import failed and was undone: {exc}") from exc


@dataclass
class _Written:
    """What an import wrote so far: the rows to take back if a later write fails."""

    tid: int | None = None
    templateset: int | None = None
    cache_files: list[CacheFile] = field(default_factory=list)
    new_folder: bool = False


async def _write(
    store: Store,
    cache: ForumCache,
    package: ThemePackage,
    name: str,
    parent: Theme,
    with_templates: bool,
    with_sheets: bool,
    written: _Written,
) -> ImportedTheme:
    """The Admin CP's writes in its order: set and templates, theme, stylesheets and their cache
    files, then the rebuilt lists (the stylesheet list and disporder of the new theme)."""
    now = int(time.time())
    if with_templates:
        written.templateset = await store.add_template_set(f"{name} Templates")
        rows = [(t.title, t.text, t.version) for t in package.templates]
        await store.add_set_templates(written.templateset, rows, now)
    tid = written.tid = await store.add_theme(name, parent.tid)
    properties = new_theme_properties(package.properties, written.templateset, tid, parent)
    await store.set_theme_properties(tid, properties)
    sids: list[int] = []
    failures: list[str] = []
    if with_sheets:
        sheets = new_stylesheets(package, now)
        for sheet in sheets:
            sids.append(await store.add_stylesheet(sheet.row(0, tid)))
        written.cache_files = sheet_cache_files(sheets, tid)
        written.new_folder = not (cache.root.path / f"theme{tid}").exists()
        failures = await anyio.to_thread.run_sync(cache.write, written.cache_files)
        for failure in failures:  # MyBB then lists the sheet through css.php: the rebuild below sees it
            log.error("cannot write the forum's cache file %s; theme %d serves it via css.php", failure, tid)
    updates, default_theme = rebuild_theme_lists(await store.themes(), await store.stylesheets(), tid, cache.mtime)
    await store.save_theme_lists(updates, default_theme)
    count = len(package.templates) if with_templates else 0
    log.info(
        "imported theme %r as tid %d (parent %d): %d stylesheet(s), %d template(s)%s",
        name, tid, parent.tid, len(sids), count,
        f" in new set {written.templateset}" if written.templateset is not None else "",
    )  # fmt: skip
    return ImportedTheme(tid, name, parent.tid, written.templateset, count, sids, failures)


async def _undo(store: Store, cache: ForumCache, written: _Written) -> None:
    """Remove the rows and cache files of an import cut short (best effort: said if it fails too)."""
    try:
        await store.remove_theme_rows(written.tid, written.templateset)
    except MybbSyncError as exc:
        log.error("could not undo the theme import (theme %s, set %s): %s", written.tid, written.templateset, exc)
    if written.tid is None:
        return
    folder = cache.root.path / f"theme{written.tid}"
    if written.new_folder:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))
    else:
        for file in written.cache_files:
            (cache.root.path / file.path).unlink(missing_ok=True)


async def list_themes(store: Store) -> list[dict[str, object]]:
    """Every theme with its parent, template set and whether it is the default."""
    sets = {s.sid: s.title for s in await store.template_sets()}
    items: list[dict[str, object]] = []
    for theme in await store.themes():
        sid = templateset_of(theme)
        has_set = "templateset" in stored_array(theme.properties)
        items.append(
            {
                "tid": theme.tid,
                "name": theme.name,
                "parent": theme.pid,
                "templateset": sid if has_set else None,
                "templateset_title": sets.get(sid, "Master Templates" if sid == -2 else None) if has_set else None,
                "default": theme.def_ == 1,
            }
        )
    return items
