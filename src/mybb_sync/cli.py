"""The ``mybb-sync`` command: a thin shell over the library.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error; push, pull and
sync also 3 (refused or in conflict) and, dry, 4 (something would change): :mod:`.args`.
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
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from . import logs
from .answers import differences, outdated
from .args import build_parser
from .config import Settings
from .control import Op, call
from .demo import prepare_demo
from .discovery import remember, settings_for
from .errors import ConfigError, MybbSyncError, reported_error
from .files import Root, sweep_temps
from .handle import ServiceHandle
from .layout import GLOBAL_SID, MASTER_SID
from .offline import offline_service, offline_status
from .once import Direction, OnceReport, run_once
from .progress import ProgressBar
from .security import unsafe_templates
from .selection import EVERYTHING, Selection
from .serve import serve
from .store import open_store
from .theme_cli import cmd_theme

log = logging.getLogger("mybb_sync")


def _settings(args: argparse.Namespace) -> Settings:
    keys = (
        "db", "prefix", "root", "mybb_root", "temp_suffix", "rescan_interval", "log_format", "on_delete", "poll_interval",
        "allow_mass_revert",
        "network_filesystem",
    )  # fmt: skip
    flags = {key: getattr(args, key, None) for key in keys}
    return settings_for(flags, config_path=Path(args.config) if args.config else None)


def _selection(args: argparse.Namespace, root: Path) -> Selection:
    return Selection(
        sets=tuple(getattr(args, "set", ())),
        themes=tuple(getattr(args, "theme", ())),
        paths=tuple(_relative(root, p) for p in getattr(args, "paths", ())),
        only=tuple(getattr(args, "only", ())),
        ignore=tuple(getattr(args, "ignore", ())),
    )


async def cmd_once(args: argparse.Namespace) -> int:
    """push, pull (and export, its alias) and sync: handed to the running service if there is one."""
    settings = _settings(args)
    root = Root(settings.require_root(), settings.temp_suffix)
    direction = Direction.PULL if args.command == "export" else Direction(args.command)
    selection, force, dry = _selection(args, root.path), bool(getattr(args, "force", False)), args.dry_run
    fields = {"direction": direction.value, "selection": selection.as_json(), "force": force, "dry_run": dry}
    reply = await _ask_service(root.path, Op.ONCE, **fields)
    if reply is not None:
        report = OnceReport.from_json(reply["report"])
    else:
        settings.require_db()
        if not dry:
            root.path.mkdir(parents=True, exist_ok=True)
        async with offline_service(settings, dry_run=dry) as service:
            if not dry:
                await anyio.to_thread.run_sync(sweep_temps, root)
            bar = ProgressBar("deciding")
            try:
                report = await run_once(service, direction, selection, force=force, dry_run=dry, progress=bar)
            finally:
                bar.close()
            if not dry:
                await anyio.to_thread.run_sync(remember, service.state, settings)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print("\n".join(report.lines()))
    return report.exit_code


async def cmd_watch(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings.log_format == "json":
        logs.use_json()
    selection = Selection(sets=tuple(args.set), themes=tuple(args.theme))
    await run_until_signalled(settings, selection)
    return 0


async def run_until_signalled(settings: Settings, selection: Selection = EVERYTHING) -> None:
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
            handle = await tg.start(partial(serve, settings, selection=selection))
            await handle.stopped()
            tg.cancel_scope.cancel()


async def cmd_demo(args: argparse.Namespace) -> int:
    """A synthetic board on SQLite, exported, then watched: try mybb-sync with nothing installed."""
    settings, hints = await prepare_demo(Path(args.dir))
    print(hints, flush=True)
    await run_until_signalled(settings)
    return 0


def _relative(root: Path, path: str) -> str:
    """A path argument as the root-relative path the state uses: relative to the working folder
    (as a shell completes it) or to the root (as ``status`` prints it); never outside the root."""
    base = Path(os.path.abspath(root))
    here = Path(os.path.abspath(path))
    candidates = [here] if os.path.isabs(path) else [here, Path(os.path.abspath(base / path))]
    inside = [c.relative_to(base).as_posix() for c in candidates if c == base or base in c.parents]
    existing = [rel for rel in inside if os.path.lexists(base / rel)]
    if existing or inside:
        rel = (existing or inside)[0]
        return "" if rel == "." else rel
    raise ConfigError(f"{path} is not inside the sync root {root}")


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
    root = settings.require_root()
    paths = [_relative(root, p) for p in args.paths]
    reply = await _ask_service(root, Op.DIFF, paths=paths)
    if reply is not None:
        diffs = reply["diffs"]
    else:
        async with offline_service(settings, dry_run=True) as service:
            diffs = await differences(service, paths)
    sys.stdout.write("".join(diffs))
    return 1 if diffs else 0


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
            if key.startswith("last_"):  # --json keeps the epoch (or null)
                value = "never" if value is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
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
    reply = await _ask_service(settings.require_root(), Op.OUTDATED)
    if reply is not None:
        items = reply["outdated"]
    else:
        async with open_store(settings.require_db(), settings.prefix) as store:
            items = await outdated(store)
    if as_json:
        print(json.dumps(items, indent=2))
    else:
        for item in items:
            print(f"{item['set']}: {item['title']} (copy {item['version']}, master {item['master_version']})")
        print(f"{len(items)} outdated template(s)")
    return 0


COMMANDS: dict[str, Any] = {
    "push": cmd_once,
    "pull": cmd_once,
    "sync": cmd_once,
    "export": cmd_once,
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
    "theme": cmd_theme,
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
