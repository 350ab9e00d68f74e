"""The watch service: one anyio task group that keeps disk and database in sync.

::

    serve()
     ├─ state guard      the state folder deleted or moved away: stop with one line
     ├─ timers           second looks (deletion grace, files to hold still) -> Pending
     ├─ inotify reader   Watcher.news() -> Pending (paths, rescans); writers; ignored
     ├─ reconciler       the single decision maker: takes everything pending,
     │                   plans it with the rule, imports, exports, records state
     ├─ control socket   status, pause, resume, rescan, resolve (control.py)
     ├─ systemd          WATCHDOG=1, STATUS=, EXTEND_TIMEOUT_USEC (systemd.py)
     ├─ poller           database saves -> Pending (poller.py), once started
     ├─ unsafe check     one warning if stored templates fail the security check
     └─ periodic rescan  (optional safety net; forced on network filesystems)

Use it from another asyncio program::

    async with anyio.create_task_group() as tg:
        handle = await tg.start(serve, settings)
        ...
        await handle.rescan()
        handle.stop()

The reconciler is :class:`.service.Service`; the other tasks feed it
(:class:`.pending.Pending`) or report on it.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import anyio
import anyio.abc

from .answers import answer
from .config import Settings
from .control import serve_control
from .discovery import remember
from .errors import DatabaseUnavailable, MybbSyncError
from .files import Root, sweep_temps
from .filesystems import remote_filesystem
from .handle import ServiceHandle
from .poller import Poller
from .rootlock import RootLock
from .security import unsafe_templates
from .selection import EVERYTHING, Selection
from .service import DEFAULT_TUNING, Service, Tuning
from .state import State
from .statedir import StateDirGuard
from .store import Store, open_store
from .systemd import Notifier
from .watch import Watcher

log = logging.getLogger(__name__)


async def serve(
    settings: Settings,
    *,
    tuning: Tuning = DEFAULT_TUNING,
    selection: Selection = EVERYTHING,
    task_status: anyio.abc.TaskStatus[ServiceHandle] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the service until cancelled; ``task_status.started()`` hands back a :class:`ServiceHandle`.

    ``selection`` narrows what it syncs (``watch --set/--theme``); the root's ignore file applies anyway.
    """
    root = Root(settings.require_root(), settings.temp_suffix)
    lock = RootLock(root.path)  # makes the root if need be
    if not lock.acquire():
        holder = lock.holder()
        raise MybbSyncError(
            f"another mybb-sync process is already syncing {root.path}"
            + (f" ({holder} holds its lock)" if holder else "")
        )
    finished = anyio.Event()
    try:
        with ExitStack() as cleanup:
            cleanup.callback(lock.release)
            guard = StateDirGuard(root.path)  # before the state folder is checked: no removal goes unseen
            cleanup.callback(guard.close)
            state = State(root.path)
            cleanup.callback(state.close)
            guard.arm()
            async with open_store(settings.require_db(), settings.prefix, wait=True) as store:
                await anyio.to_thread.run_sync(remember, state, settings)
                await _run(settings, tuning, selection, store, root, state, guard, finished, task_status)
    finally:
        # Last, once all is closed: the task that waits in ServiceHandle.stopped() and then cancels
        # this one (the CLI does) must not cut the closing short, nor swallow the error it raises.
        finished.set()


async def _stop_when_removed(guard: StateDirGuard) -> None:
    """The state folder was deleted or moved away: stop with one error. Running on would write
    a state no later start reads (and ``status`` could no longer reach the service)."""
    raise await guard.wait()


async def warn_unsafe_templates(store: Store) -> None:
    """Say once at start which stored templates the Admin CP's security check refuses: a plugin
    or an old edit may have put them there, and the forum runs them through eval()."""
    try:
        found = await unsafe_templates(store.every_template())
    except DatabaseUnavailable as exc:
        log.warning("could not check the stored templates for security problems: %s", exc)
        return
    if found:
        named = ", ".join(f"{row.title!r} (sid {row.sid})" for row, _ in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        log.warning(
            "%d stored template(s) fail MyBB's security check: %s%s (see 'mybb-sync check')", len(found), named, more
        )


def network_filesystem(settings: Settings, path: Path) -> str | None:
    """What the root is on when inotify cannot see all its writers (``--network-filesystem``:
    ``auto`` detects NFS, SMB and FUSE), else None."""
    if settings.network_filesystem == "yes":
        return "a network filesystem (--network-filesystem yes)"
    return remote_filesystem(path) if settings.network_filesystem == "auto" else None


async def _run(
    settings: Settings, tuning: Tuning, selection: Selection, store: Store, root: Root, state: State,
    guard: StateDirGuard, finished: anyio.Event, task_status: anyio.abc.TaskStatus[ServiceHandle],
) -> None:  # fmt: skip
    service = Service(settings, store, root, state, tuning, selection)
    service.finished = finished
    await anyio.to_thread.run_sync(sweep_temps, root)
    interval = settings.rescan_interval
    remote = network_filesystem(settings, root.path)
    if remote is not None:
        interval = interval or 30.0
        service.writers.network = True
        log.warning(
            "%s is on %s: inotify misses changes made elsewhere, rescanning every %.0fs; a file changing "
            "there is imported once it held still for %.0fs", root.path, remote, interval, service.writers.window,
        )  # fmt: skip
    if settings.mybb_root is None:
        log.warning(
            "no --mybb-root: stylesheet edits will not be imported (the forum would keep its old cache files); templates sync as usual"
        )
    watcher = Watcher(root.path, root.temp_suffix)
    poller = Poller(store, settings.poll_interval)
    notifier, ready = Notifier(), anyio.Event()
    try:
        # A first start (nothing tracked yet) exports the whole board before watching: the
        # watch would bring five events per file written, each read and planned again, which
        # made the start-up export three times slower. What changed meanwhile is found by the
        # pass made once the watch is on, as after any time unwatched (the service down).
        # A restart watches before its pass: nothing made during it is missed.
        first = await anyio.to_thread.run_sync(state.count) == 0
        if not first:
            await anyio.to_thread.run_sync(watcher.add_tree)
        await poller.baseline()  # likewise for the database
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(service.timers.run)
                tg.start_soon(_stop_when_removed, guard)
                if not first:
                    tg.start_soon(service.read_events, watcher)
                tg.start_soon(service.reconcile_forever)
                await tg.start(serve_control, root.path, partial(answer, service))
                tg.start_soon(notifier.keep_alive, lambda: service.status_line(starting=not ready.is_set()), ready)
                await service.request(prefixes=[""])  # start-up: reconcile (or export into an empty root)
                if first:
                    await anyio.to_thread.run_sync(watcher.add_tree)
                    tg.start_soon(service.read_events, watcher)
                    await service.request(prefixes=[""])  # what changed during the unwatched export
                tg.start_soon(poller.run, service)
                tg.start_soon(warn_unsafe_templates, store)
                if interval:
                    tg.start_soon(service.rescan_every, interval)
                ready.set()
                line = await service.status_line(starting=False)  # before "watching": nothing waits between
                log.info("watching %s (%d folders)", root.path, watcher.watch_count)
                notifier.send(f"READY=1\nSTATUS={line}")
                task_status.started(ServiceHandle(service, scope))
    finally:
        notifier.send("STOPPING=1")
        watcher.close()
