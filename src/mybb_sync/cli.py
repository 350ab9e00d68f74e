"""The ``mybb-sync`` command: a thin shell over the library.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
Errors are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from . import logs
from ._version import __version__
from .catalog import Catalog, load_catalog
from .config import Settings, load_settings
from .control import Op, call
from .demo import prepare_demo
from .errors import ConfigError, MybbSyncError, reported_error
from .export import Exporter
from .files import Root, read_files, sweep_temps
from .handle import ServiceHandle
from .layout import GLOBAL_DIR, GLOBAL_SID, MASTER_SID, SETS_DIR, STYLES_DIR
from .offline import offline_service, offline_status
from .progress import ProgressBar
from .reconcile import unified_diff
from .scope import Scope
from .security import unsafe_templates
from .serve import serve
from .state import RootLock, State
from .store import open_store
from .tree import walk_files

log = logging.getLogger("mybb_sync")
TOP_DIRS = (SETS_DIR, GLOBAL_DIR, STYLES_DIR)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("connection and paths (flags > MYBB_SYNC_* environment > mybb-sync.toml)")
    g.add_argument("--config", type=Path, metavar="PATH", help="TOML settings file (default: ./mybb-sync.toml)")
    g.add_argument(
        "--db",
        metavar="URL",
        help="mysql://user:password@host:port/dbname[?unix_socket=/path], postgresql://... or sqlite:///path",
    )
    g.add_argument("--prefix", metavar="PREFIX", help="table prefix (default: mybb_)")
    g.add_argument("--root", metavar="DIR", help="the sync root folder")
    g.add_argument("--mybb-root", metavar="DIR", help="the forum's install folder (reads inc/config.php)")
    g.add_argument("--temp-suffix", metavar="SUFFIX", help="suffix of temp files (default: .tmp)")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mybb-sync",
        description="Keep a MyBB forum's templates and stylesheets and a folder of files in two-way sync.",
    )
    parser.add_argument("--version", action="version", version=f"mybb-sync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    export = sub.add_parser("export", help="write templates and stylesheets to files (atomic, incremental)")
    export.add_argument("--set", action="append", default=[], metavar="NAME", help="a template set (repeatable)")
    export.add_argument("--theme", action="append", default=[], metavar="NAME", help="a theme (repeatable)")
    export.add_argument("--all", action="store_true", help="every set and theme (the default)")
    export.add_argument("--force", action="store_true", help="overwrite files changed on disk (conflicts)")
    export.add_argument("--json", action="store_true", help="print a machine-readable summary")
    _common(export)

    watch = sub.add_parser("watch", help="run the two-way sync service (inotify + database)")
    watch.add_argument("--rescan-interval", type=float, metavar="SECONDS", help="also rescan everything this often")
    watch.add_argument("--log-format", choices=("text", "json"), help="log lines as text (default) or JSON")
    watch.add_argument(
        "--on-delete",
        choices=("ignore", "revert"),
        help="a deleted set-copy file: ignore it (default) or revert the copy",
    )
    watch.add_argument(
        "--poll-interval", type=float, metavar="SECONDS", help="how often to look for database edits (default 1)"
    )
    watch.add_argument(
        "--allow-mass-revert", action="store_true", default=None,
        help="with --on-delete revert, also revert mass deletions at once: by default more than 5 files deleted "
        "within 2s, or every copy of a set, are held until 'mybb-sync resolve --take disk PATH' confirms each "
        "(a folder gone, or a file replaced by a symlink, FIFO or folder, never reverts anything)",
    )  # fmt: skip
    watch.add_argument(
        "--network-filesystem", choices=("auto", "yes", "no"),
        help="whether the root is on NFS, SMB or FUSE, where inotify misses writers on other machines: rescan "
        "every 30s and import a file only once it held still (default auto: detected)",
    )  # fmt: skip
    _common(watch)

    status = sub.add_parser("status", help="what the service is doing, or what the state store says offline")
    status.add_argument("--json", action="store_true", help="print machine-readable status")
    status.add_argument("--outdated", action="store_true", help="list set copies older than their master template")
    _common(status)
    for name, text in (
        ("pause", "stop applying changes (they are still recorded)"),
        ("resume", "apply what was recorded while paused"),
        ("rescan", "compare the whole root and database again"),
    ):
        _common(sub.add_parser(name, help=text))

    diff = sub.add_parser("diff", help="unified diff between files and the database")
    diff.add_argument("paths", nargs="*", metavar="PATH", help="files to compare (default: everything that differs)")
    _common(diff)

    demo = sub.add_parser("demo", help="try it: a synthetic board on SQLite, exported and watched")
    demo.add_argument("dir", nargs="?", default="mybb-sync-demo", help="where to put the board and files")
    demo.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")

    index = sub.add_parser(
        "index", help="the optional index on templates.dateline that keeps polls cheap on large boards"
    )
    change = index.add_mutually_exclusive_group()
    change.add_argument(
        "--add",
        action="store_true",
        help="add it (MyBB neither needs nor minds it; MyISAM rewrites the table meanwhile, under a second per 100,000 templates)",
    )
    change.add_argument("--drop", action="store_true", help="remove it again")
    index.add_argument("--json", action="store_true", help="print a machine-readable answer")
    _common(index)

    check = sub.add_parser(
        "check",
        help="list stored templates that fail MyBB's security check (exit 1 if any)",
        description="Tools > System Health > Check Templates: every stored template (any set, masters "
        "included) that the Admin CP's check_template() would refuse, with its set and title. "
        "Exit 0 when none, 1 when any.",
    )
    check.add_argument("--json", action="store_true", help="print a machine-readable list")
    _common(check)

    resolve = sub.add_parser("resolve", help="settle a conflict by taking the file's or the database's version")
    resolve.add_argument("path", help="the file, inside the sync root")
    resolve.add_argument("--take", required=True, choices=("disk", "db"), help="which side wins")
    _common(resolve)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    keys = (
        "db", "prefix", "root", "mybb_root", "temp_suffix", "rescan_interval", "log_format", "on_delete", "poll_interval",
        "allow_mass_revert",
        "network_filesystem",
    )  # fmt: skip
    flags = {key: getattr(args, key, None) for key in keys}
    return load_settings(flags, config_path=args.config)


def select_scope(catalog: Catalog, sets: Sequence[str], themes: Sequence[str], everything: bool) -> Scope:
    """Resolve ``--set``/``--theme`` names; unknown names are a usage error listing the choices."""
    if everything or not (sets or themes):
        return Scope((*sorted(catalog.sets), GLOBAL_SID), tuple(sorted(catalog.themes)))
    set_ids = []
    for name in sets:
        sid = catalog.set_sid(name)
        if sid is None:
            choices = ", ".join(repr(t) for t in catalog.sets.values()) or "none"
            raise ConfigError(f"unknown template set {name!r}; available: {choices}")
        set_ids.append(sid)
    theme_ids = []
    for name in themes:
        tid = catalog.theme_tid(name)
        if tid is None:
            choices = ", ".join(repr(t.name) for t in catalog.themes.values()) or "none"
            raise ConfigError(f"unknown theme {name!r}; available: {choices}")
        theme_ids.append(tid)
    return Scope((*set_ids, GLOBAL_SID) if set_ids else (), tuple(theme_ids))


async def cmd_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    root = Root(settings.require_root(), settings.temp_suffix)
    db = settings.require_db()
    root.path.mkdir(parents=True, exist_ok=True)
    if not (args.set or args.theme or args.force) and await _ask_service(root.path, Op.EXPORT) is not None:
        print("exported through the running service (edits on disk were imported, not overwritten)")
        return 0
    lock = RootLock(root.path)
    if not lock.acquire():
        raise MybbSyncError(f"another mybb-sync process is writing {root.path} (see 'mybb-sync status')")
    try:
        await anyio.to_thread.run_sync(sweep_temps, root)
        state = State(root.path)
        async with open_store(db, settings.prefix) as store:
            catalog = await load_catalog(store)
            scope = select_scope(catalog, args.set, args.theme, args.all)
            bar = ProgressBar("exporting")
            try:
                report = await Exporter(root, state).run(store, catalog, scope, force=args.force, progress=bar)
            finally:
                bar.close()
        state.close()
    finally:
        lock.release()
    if args.json:
        print(json.dumps(report.as_json(), indent=2, sort_keys=True))
    else:
        print(report.summary())
    for conflict in report.conflicts[:20]:
        log.warning("conflict, not overwritten: %s", conflict)
    return 1 if report.errors else 0


async def cmd_watch(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.log_format == "json":
        logs.use_json()
    await run_until_signalled(settings)
    return 0


async def run_until_signalled(settings: Settings) -> None:
    """Run the service; SIGTERM/SIGINT stop it cleanly (also during start-up), SIGHUP rescans."""
    handle: ServiceHandle | None = None
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with anyio.create_task_group() as tg:

            async def on_signals() -> None:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        if handle is not None:
                            log.info("SIGHUP: rescanning")
                            tg.start_soon(handle.rescan)
                        continue
                    log.info("%s: finishing in-flight work and stopping", signal.Signals(signum).name)
                    if handle is None:
                        tg.cancel_scope.cancel()  # still starting: the batch in flight is shielded
                    else:
                        handle.stop()
                    return

            tg.start_soon(on_signals)
            handle = await tg.start(serve, settings)
            await handle.stopped()
            tg.cancel_scope.cancel()


async def cmd_demo(args: argparse.Namespace) -> int:
    """A synthetic board on SQLite, exported, then watched: try mybb-sync with nothing installed."""
    settings, hints = await prepare_demo(Path(args.dir))
    print(hints, flush=True)
    await run_until_signalled(settings)
    return 0


def _relative(root: Path, path: str) -> str:
    """A path argument as the root-relative path the state uses; refuses anything outside the root."""
    absolute = Path(os.path.abspath(path))
    base = Path(os.path.abspath(root))
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        raise ConfigError(f"{path} is not inside the sync root {root}") from None


async def _ask_service(root: Path, op: Op, **fields: Any) -> dict[str, Any] | None:
    reply = await call(root, {"op": op, **fields})
    if reply is not None and not reply.get("ok"):
        raise MybbSyncError(reply.get("error", "the service refused"))
    return reply


async def cmd_control(args: argparse.Namespace) -> int:
    """pause / resume / rescan: only meaningful for a running service."""
    root = _settings(args).require_root()
    if await _ask_service(root, Op(args.command)) is None:
        raise MybbSyncError(f"no mybb-sync service is running on {root}")
    print(f"{args.command}: done")
    return 0


async def cmd_resolve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    root = settings.require_root()
    rel = _relative(root, args.path)
    reply = await _ask_service(root, Op.RESOLVE, path=rel, take=args.take)
    if reply is not None:
        print(reply["message"])
        return 0
    async with offline_service(settings) as service:
        print(await service.resolve(rel, args.take))
    return 0


async def cmd_index(args: argparse.Namespace) -> int:
    """Without an index on ``dateline``, a poll that finds a change scans the templates table
    (docs/benchmarks.md has the cost); with it, it reads only the rows saved."""
    settings = _settings(args)
    async with open_store(settings.require_db(), settings.prefix) as store:
        changed = await store.add_poll_index() if args.add else await store.drop_poll_index() if args.drop else False
        present = await store.poll_index()
        rows, _ = await store.template_totals()
    if args.json:
        print(json.dumps({"index": present, "changed": changed, "templates": rows}, sort_keys=True))
    else:
        state = "present" if present else "absent"
        done = " (added)" if args.add and changed else " (dropped)" if args.drop and changed else ""
        print(f"poll index on {settings.prefix}templates.dateline: {state}{done}; {rows:,} templates")
    return 0


async def cmd_diff(args: argparse.Namespace) -> int:
    """Exit 0 when disk and database agree, 1 when something differs (like diff(1))."""
    settings = _settings(args)
    root = Root(settings.require_root(), settings.temp_suffix)
    async with offline_service(settings, read_only=True) as service:
        if args.paths:
            paths = [_relative(root.path, p) for p in args.paths]
        else:
            tracked = set(service.state.paths())
            on_disk = await anyio.to_thread.run_sync(lambda: [p for top in TOP_DIRS for p in walk_files(root, top)])
            paths = sorted(tracked | set(on_disk))
        entries = await service.entries_for(paths)
        reads = await anyio.to_thread.run_sync(read_files, root, [e.path for e in entries], 16 * 1024 * 1024)
    differ = 0
    for entry, read in zip(entries, reads, strict=True):
        disk = None if read.data is None else read.data.decode("utf-8", "replace")
        text = unified_diff(entry.path, entry.kind, entry.text, disk)
        if text:
            differ += 1
            sys.stdout.write(text)
    return 1 if differ else 0


async def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    root = settings.require_root()
    if args.outdated:
        return await _outdated(settings, args.json)
    reply = await _ask_service(root, Op.STATUS)
    report = offline_status(root)
    report["running"] = reply is not None
    if reply is not None:
        report.update(reply["status"])
    if settings.db is not None:
        try:
            async with open_store(settings.db, settings.prefix) as store:
                report["modified_from_master"], report["custom_templates"] = await store.copy_counts()
        except MybbSyncError as exc:  # status works offline: the database is optional here
            report["database"] = f"unavailable: {exc}"
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    state = "running" + (" (paused)" if report.get("paused") else "") if report["running"] else "not running"
    print(f"service: {state}")
    keys = (
        "tracked",
        "set_copies",
        "modified_from_master",
        "custom_templates",
        "conflicts",
        "invalid",
        "missing",
        "ignored",
    )
    for key in (*keys, "held_deletions", "pending", "imports", "exports", "last_import", "last_export", "database"):
        if key in report:
            value = report[key]
            if key.startswith("last_") and isinstance(value, (int, float)):
                value = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))  # --json keeps the epoch
            print(f"{key.replace('_', ' ')}: {value}")
    for problem in report["problems"][:50]:
        print(f"  {problem['kind']}: {problem['path']}: {problem['detail']}")
    for error in report.get("last_errors", []):
        print(f"  error: {error}")
    return 0


def set_name(sets: dict[int, str], sid: int) -> str:
    """A set as the Admin CP names it: masters and global templates have no set row."""
    return {MASTER_SID: "Master Templates", GLOBAL_SID: "Global Templates"}.get(sid) or sets.get(sid, f"set {sid}")


async def cmd_check(args: argparse.Namespace) -> int:
    """Exit 1 when a stored template fails the check, like the Admin CP's list."""
    settings = _settings(args)
    async with open_store(settings.require_db(), settings.prefix) as store:
        sets = {s.sid: s.title for s in await store.template_sets()}
        found = await unsafe_templates(store.every_template())
    items = [
        {"tid": row.tid, "sid": row.sid, "set": set_name(sets, row.sid), "title": row.title,
         "threat": verdict.threat.name.lower(), "reason": str(verdict)}
        for row, verdict in found
    ]  # fmt: skip
    if args.json:
        print(json.dumps(items, indent=2))
    else:
        for item in items:
            print(f"{item['set']}: {item['title']}: {item['reason']}")
        print(f"{len(items)} template(s) fail the security check" if items else "no template fails the security check")
    return 1 if items else 0


async def _outdated(settings: Settings, as_json: bool) -> int:
    async with open_store(settings.require_db(), settings.prefix) as store:
        sets = {s.sid: s.title for s in await store.template_sets()}
        rows = await store.outdated_templates()
    items = [{"set": sets.get(sid, str(sid)), "title": t, "version": v, "master_version": m} for sid, t, v, m in rows]
    if as_json:
        print(json.dumps(items, indent=2))
    else:
        for item in items:
            print(f"{item['set']}: {item['title']} (copy {item['version']}, master {item['master_version']})")
        print(f"{len(items)} outdated template(s)")
    return 0


COMMANDS: dict[str, Any] = {
    "export": cmd_export,
    "watch": cmd_watch,
    "status": cmd_status,
    "pause": cmd_control,
    "resume": cmd_control,
    "rescan": cmd_control,
    "resolve": cmd_resolve,
    "diff": cmd_diff,
    "index": cmd_index,
    "check": cmd_check,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in words
    logs.setup(debug)
    try:
        args = parser.parse_args(words)
        if args.command is None:
            parser.print_help()
            return 2
        return anyio.run(COMMANDS[args.command], args)
    except (MybbSyncError, BaseExceptionGroup) as exc:
        error = reported_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if error is None:
            raise
        return _failed(str(error), error.exit_code, debug, as_json="--json" in words)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout closed early (piped into head): not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, a read-only folder, a permission: one line, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        return _failed(f"{exc.strerror or exc}{where}", 1, debug, as_json="--json" in words)


def _failed(message: str, code: int, debug: bool, *, as_json: bool) -> int:
    """One line on stderr (and, for ``--json``, an error object on stdout); the exit code."""
    if debug:
        log.exception("failed")
    print(f"mybb-sync: error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
