"""``mybb-sync theme``: theme packages (export, import, list) on the command line."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import anyio

from .config import Settings
from .control import Op, call
from .discovery import settings_for
from .errors import ConfigError, MybbSyncError
from .importer import ForumCache
from .store import open_store
from .themes import ImportOptions, export_theme, import_theme, list_themes

__all__ = ["add_theme_parser", "cmd_theme"]


def add_theme_parser(subparsers: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``theme`` command and its ``export``/``import``/``list`` subcommands."""
    theme = subparsers.add_parser("theme", help="theme packages: MyBB's theme XML, exported and imported as the ACP")
    actions = theme.add_subparsers(dest="theme_command", metavar="ACTION", required=True)

    export = actions.add_parser(
        "export",
        help="write a theme's XML file, byte for byte what Themes > Export Theme serves",
        description="THEME is a name or a tid. The file holds the theme's properties, stylesheets and "
        "(unless --no-templates) the templates of its template set.",
    )
    export.add_argument("theme", metavar="THEME", help="theme name or tid")
    export.add_argument("--out", required=True, type=Path, metavar="FILE", help="where to write the XML")
    export.add_argument(
        "--custom-only", action="store_true", help="only the theme's own stylesheets, not inherited ones"
    )
    export.add_argument("--no-templates", action="store_true", help="leave the template set's templates out")
    common(export)

    imp = actions.add_parser(
        "import",
        help="add a theme from an XML file, writing what Themes > Import Theme writes",
        description="A new theme (and template set '<NAME> Templates') with the file's properties, "
        "stylesheets and templates, their cache files under <forum>/cache/themes, the rebuilt lists. "
        "Refused with nothing written, as the Admin CP refuses: a file that is no MyBB theme, a theme of "
        "that name, another MyBB version (unless --ignore-version), a template failing the security check.",
    )
    imp.add_argument("file", type=Path, metavar="FILE", help="a MyBB theme XML file")
    imp.add_argument("--name", required=True, help="the new theme's name (empty: the one in the file)")
    imp.add_argument("--parent", default="1", metavar="THEME", help="parent theme, name or tid (default: 1, master)")
    imp.add_argument("--no-stylesheets", action="store_true", help="do not import the stylesheets")
    imp.add_argument("--no-templates", action="store_true", help="do not import the templates (no new set)")
    imp.add_argument("--ignore-version", action="store_true", help="import a theme made for another MyBB version")
    imp.add_argument("--json", action="store_true", help="print a machine-readable summary")
    common(imp)

    listing = actions.add_parser("list", help="themes with tid, parent, template set, and which is the default")
    listing.add_argument("--json", action="store_true", help="print a machine-readable list")
    common(listing)


def _settings(args: argparse.Namespace) -> Settings:
    flags = {key: getattr(args, key, None) for key in ("db", "prefix", "root", "mybb_root", "temp_suffix")}
    return settings_for(flags, config_path=Path(args.config) if args.config else None)


async def cmd_theme(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.theme_command == "export":
        return await _export(settings, args)
    if args.theme_command == "import":
        return await _import(settings, args)
    return await _list(settings, args.json)


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    async with open_store(settings.require_db(), settings.prefix) as store:
        data = await export_theme(
            store, args.theme, custom_only=args.custom_only, include_templates=not args.no_templates
        )
    await anyio.Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data):,} bytes)")
    return 0


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    if settings.mybb_root is None:
        raise ConfigError("theme import needs --mybb-root: it writes the forum's cache/themes files, as the ACP")
    try:
        data = await anyio.Path(args.file).read_bytes()
    except OSError as exc:
        raise MybbSyncError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    options = ImportOptions(args.name, args.parent, not args.no_stylesheets, not args.no_templates, args.ignore_version)
    async with open_store(settings.require_db(), settings.prefix) as store:
        result = await import_theme(store, ForumCache(settings.mybb_root), data, options)
    # A running service exports the new theme and set at once, not at its next poll.
    refreshed = settings.root is not None and await call(settings.root, {"op": Op.RESCAN}) is not None
    if args.json:
        print(json.dumps({**result.as_json(), "service_refreshed": refreshed}, indent=2, sort_keys=True))
    else:
        where = f", template set {result.templateset} '{result.name} Templates'" if result.templateset else ""
        print(
            f"imported theme {result.name!r} as tid {result.tid} (parent {result.parent}): "
            f"{len(result.stylesheets)} stylesheet(s), {result.templates} template(s){where}"
        )
    return 1 if result.cache_failures else 0


async def _list(settings: Settings, as_json: bool) -> int:
    async with open_store(settings.require_db(), settings.prefix) as store:
        items = await list_themes(store)
    if as_json:
        print(json.dumps(items, indent=2))
        return 0
    for item in items:
        templateset = item["templateset_title"] or item["templateset"] or "-"
        default = "  (default)" if item["default"] else ""
        print(f"{item['tid']:>4}  {item['name']}  parent {item['parent']}  set {templateset}{default}")
    return 0
