"""The benchmark: ``python -m bench [--quick] [--sizes 1000,10000,100000] [--db URL] [--out DIR]``.

For each board size (``mybb_sync.synthetic.Board(masters=size)``, the
realistic mix of template sizes, a set overriding 5 % of the masters, global
templates and themes), on a fresh database:

export        the same rows written into an empty root by three patterns, on
              the same disk: (a) mybb-sync's ``Exporter``; (b) the replaced
              tool (fetch all rows, then per file ``<name>.tmp`` + rename, no
              fsync); (c) naive durable (per file: temp, fsync, rename; fsync
              the directories at the end). Each timing includes fetching the
              rows through the same store; ``sync`` runs (untimed) between
              patterns so that one pattern's dirty pages do not slow the next.
re-export     ``Exporter`` again over the unchanged root.
service       ``mybb-sync watch`` as a subprocess on an empty root (its
              start-up export: time and peak RSS), stopped, then started again
              on the now unchanged root (start-up reconcile: spawn -> the
              ``watching`` log line), then with that service running: idle CPU,
              single-edit latency (atomic rename of a changed file -> the
              service's ``imported`` log line, stamped on arrival, confirmed in
              the database), burst import (N files renamed in as fast as
              possible; every change confirmed in the database, lost must be
              0; peak RSS), database -> file latency (an Admin CP style
              ``UPDATE`` -> the file holds the new text; "unsupported" when no
              change shows within ``--db-timeout``).

Everything is written to ``--out`` (default ``bench/results/``): results.json,
results.md and, when matplotlib is importable, export_throughput.png and
edit_latency_cdf.png. Progress goes to stderr through ``logging``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from tests.boards import CatalogTarget, PrivateMariaDB, create_board, drop_board

import mybb_sync
from mybb_sync import layout
from mybb_sync.catalog import Catalog, load_catalog
from mybb_sync.config import Database
from mybb_sync.entries import set_entries, stylesheet_entries
from mybb_sync.export import Exporter
from mybb_sync.files import Root
from mybb_sync.layout import GLOBAL_SID
from mybb_sync.poller import Poller
from mybb_sync.report import ExportReport
from mybb_sync.scope import Scope
from mybb_sync.state import RACY_NS, State
from mybb_sync.store import open_store
from mybb_sync.synthetic import Board
from mybb_sync.themefile import read_meta, render_meta
from mybb_sync.themesync import settings_files

from . import engines, procfs, report
from .floor import floor_export
from .service import ServiceProcess

log = logging.getLogger("bench")

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results"
QUICK_SIZES = (1000, 10000)
FULL_SIZES = (1000, 10000, 100000)
PATTERNS = ("mybb_sync", "replaced_tool", "naive_durable")
PATTERN_LABELS = {
    "mybb_sync": "(a) mybb-sync Exporter",
    "replaced_tool": "(b) MyBB_Playground's disk sync: .tmp + rename, no fsync",
    "naive_durable": "(c) naive durable: temp + fsync + rename per file",
}
UNIX_SOCKET_MAX = 100  # sun_path is 108 bytes; keep a margin
SIGNAL_GRACE = 0.5  # seconds between `watching` and a SIGTERM (see service_scenarios)


# -- small helpers ------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (``p`` in 0..100) of a non-empty sample."""
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    k = (len(data) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary_ms(values_ms: Sequence[float]) -> dict[str, Any]:
    if not values_ms:
        return {"count": 0}
    return {
        "count": len(values_ms),
        "min": round(min(values_ms), 3),
        "p50": round(percentile(values_ms, 50), 3),
        "p95": round(percentile(values_ms, 95), 3),
        "p99": round(percentile(values_ms, 99), 3),
        "max": round(max(values_ms), 3),
        "mean": round(statistics.fmean(values_ms), 3),
    }


def full_scope(catalog: Catalog) -> Scope:
    """Every set, the global templates and every theme (``mybb-sync export --all``)."""
    return Scope((*sorted(catalog.sets), GLOBAL_SID), tuple(sorted(catalog.themes)))


def sync_disk() -> None:
    """Flush dirty pages (untimed, between patterns) so that no pattern pays for another's writeback."""
    os.sync()


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Stage:
    """Logs a progress line when a stage starts and how long it took."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> Stage:
        self.started = time.perf_counter()
        log.info("%s ...", self.label)
        return self

    def __exit__(self, *exc: object) -> None:
        log.debug("%s: %.2fs", self.label, time.perf_counter() - self.started)


# -- export patterns ------------------------------------------------------------


async def _fetch_files(store: Any, catalog: Catalog, scope: Scope) -> list[tuple[str, bytes]]:
    """Every file of the scope as (relative path, bytes): the rows as mybb-sync streams them."""
    files: list[tuple[str, bytes]] = []
    report = ExportReport()
    for sid in scope.sets:
        async for batch, _ in set_entries(store, catalog, sid, report):
            files.extend((e.path, e.text.encode("utf-8")) for e in batch if e.text is not None)
    sheets = await stylesheet_entries(store, catalog, scope.themes, report)
    files.extend((e.path, e.text.encode("utf-8")) for e in sheets if e.text is not None)
    return files + await _theme_files(store, catalog, scope)


async def _theme_files(store: Any, catalog: Catalog, scope: Scope) -> list[tuple[str, bytes]]:
    """Each theme's theme.json, as mybb-sync writes it."""
    themes, rows = await store.themes(), await store.stylesheets()
    return [
        (path, render_meta(read_meta(themes, rows, tid)).encode("utf-8"))
        for tid, path in settings_files(catalog, scope.themes).items()
    ]


def write_sequential(root: Path, files: Sequence[tuple[str, bytes]], *, durable: bool) -> None:
    """The two baselines: for each file, sequentially, ``<name>.tmp``, write, rename.

    ``durable=False`` is MyBB_Playground's disk sync (no fsync at all); ``durable=True``
    is naive durability (fsync each file before its rename, then every
    directory at the end).
    """
    made: set[str] = set()
    base = str(root)
    for rel, data in files:
        path = os.path.join(base, rel)
        directory = os.path.dirname(path)
        if directory not in made:
            os.makedirs(directory, exist_ok=True)
            made.add(directory)
        temp = path + ".tmp"
        with open(temp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.rename(temp, path)
    if not durable:
        return
    dirs = set(made)
    for d in made:  # the parents of the folders we created hold their new entries
        while d.startswith(base) and d != base:
            d = os.path.dirname(d)
            dirs.add(d)
    for d in sorted(dirs):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_plain(root: Path, files: Sequence[tuple[str, bytes]]) -> None:
    """The floor: each file opened in place, written and closed (no temp, no rename, no fsync)."""
    made: set[str] = set()
    base = str(root)
    for rel, data in files:
        path = os.path.join(base, rel)
        directory = os.path.dirname(path)
        if directory not in made:
            os.makedirs(directory, exist_ok=True)
            made.add(directory)
        with open(path, "wb") as f:
            f.write(data)


async def export_once(db: Database, prefix: str, pattern: str, root: Path) -> dict[str, Any]:
    """One export of the whole board into the empty ``root`` by ``pattern``; timing excludes connecting."""
    root.mkdir(parents=True, exist_ok=True)
    async with open_store(db, prefix) as store:
        catalog = await load_catalog(store)
        scope = full_scope(catalog)
        if pattern == "mybb_sync":
            state = State(root)
            try:
                started = time.perf_counter()
                rep = await Exporter(Root(root), state).run(store, catalog, scope)
                seconds = time.perf_counter() - started
            finally:
                state.close()
            if rep.errors or rep.conflicts:
                raise RuntimeError(f"mybb-sync export reported problems: {rep.errors[:3]} {rep.conflicts[:3]}")
            return {"seconds": seconds, "files": rep.files, "written": rep.written, "bytes": rep.bytes}
        if pattern == "floor":
            started = time.perf_counter()
            extra = [(path, data, None) for path, data in await _theme_files(store, catalog, scope)]
            written = await floor_export(store, catalog, scope, root, extra)
            return {"seconds": time.perf_counter() - started, "files": written, "written": written}
        started = time.perf_counter()
        files = await _fetch_files(store, catalog, scope)
        fetched = time.perf_counter()
        if pattern == "plain":
            write_plain(root, files)
        else:
            write_sequential(root, files, durable=pattern != "replaced_tool")
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "fetch_seconds": fetched - started,
            "files": len(files),
            "written": len(files),
            "bytes": sum(len(d) for _, d in files),
        }


async def reexport(db: Database, prefix: str, root: Path) -> dict[str, Any]:
    """``Exporter`` over an already exported root; also counts how many files it had to read."""
    import mybb_sync.engine as engine

    read_files = getattr(engine, "read_files", None)
    counted: int | None = 0 if read_files is not None else None

    def counting(root_: Root, paths: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        nonlocal counted
        counted = (counted or 0) + len(paths)
        return read_files(root_, paths, *args, **kwargs)  # type: ignore[misc]

    async with open_store(db, prefix) as store:
        catalog = await load_catalog(store)
        state = State(root)
        if read_files is not None:
            engine.read_files = counting  # observe only: the same function is called
        try:
            started = time.perf_counter()
            rep = await Exporter(Root(root), state).run(store, catalog, full_scope(catalog))
            seconds = time.perf_counter() - started
        finally:
            if read_files is not None:
                engine.read_files = read_files
            state.close()
    return {
        "seconds": seconds,
        "files": rep.files,
        "written": rep.written,
        "unchanged": rep.unchanged + rep.adopted,
        "files_read": counted,
    }


FOLLOWING_POLLS = 4  # polls timed after the one that finds a save (the table's header settles within 2 s)


async def poll_costs(
    db: Database, prefix: str, idle_polls: int, saves: int, interval: float, index: bool
) -> dict[str, Any]:
    """Wall time of the poller's queries at the client (database time plus round trips).

    Idle: polls with nothing changed. After a save: an Admin CP-style UPDATE
    (new text, ``dateline`` = now), then the polls of the next seconds at the
    service's interval, the first of which finds the change. ``index``: with
    the poll index (``mybb-sync index --add``), removed again afterwards.
    """
    conn = await anyio.to_thread.run_sync(engines.connect_sync, db)
    try:
        async with open_store(db, prefix) as store:
            if index:
                await store.add_poll_index()
            try:
                return await _time_polls(store, conn, prefix, idle_polls, saves, interval, index)
            finally:
                if index:
                    await store.drop_poll_index()
    finally:
        conn.close()


async def _time_polls(
    store: Any, conn: Any, prefix: str, idle_polls: int, saves: int, interval: float, index: bool
) -> dict[str, Any]:
    """The polls of :func:`poll_costs` on an open store."""
    target = CatalogTarget(await load_catalog(store))
    poller = Poller(store, interval)
    await poller.baseline()
    while not (await store.change_token())[1]:  # the board was just written: wait until settled
        await anyio.sleep(interval)
    await poller.poll(target)
    idle = []
    for _ in range(idle_polls):
        started = time.perf_counter()
        found = await poller.poll(target)
        idle.append((time.perf_counter() - started) * 1000)
        if found != (set(), set()):
            raise RuntimeError(f"an idle poll reported changes: {found}")
    with conn.cursor() as cur:
        cur.execute(f"SELECT tid FROM `{prefix}templates` WHERE sid = -2 ORDER BY tid LIMIT %s", (saves,))
        tids = [t for (t,) in cur.fetchall()]
    first, following, missed = [], [], 0
    for i, tid in enumerate(tids):
        with conn.cursor() as cur:
            cur.execute(
                f"UPDATE `{prefix}templates` SET template = CONCAT(template, %s), dateline = %s WHERE tid = %s",
                (f"<!-- poll cost {i} -->", int(time.time()), tid),
            )
        for n in range(FOLLOWING_POLLS + 1):
            started = time.perf_counter()
            paths, _ = await poller.poll(target)
            (first if n == 0 else following).append((time.perf_counter() - started) * 1000)
            missed += n == 0 and not paths
            await anyio.sleep(interval)  # the service's polling period
    return {
        "idle_ms": summary_ms(idle),
        "first_after_save_ms": summary_ms(first),
        "following_ms": summary_ms(following),
        "saves": len(first),
        "first_poll_missed": missed,
        "method": "client wall time of Poller.poll: idle polls; after an Admin CP-style UPDATE, the first poll "
        f"(finds it) and the next {FOLLOWING_POLLS} at {interval:g}s" + (", with the poll index" if index else ""),
    }


async def board_files(db: Database, prefix: str) -> tuple[Catalog, list[tuple[str, bytes]]]:
    async with open_store(db, prefix) as store:
        catalog = await load_catalog(store)
        return catalog, await _fetch_files(store, catalog, full_scope(catalog))


# -- the run ------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, server: Database, work: Path, mariadb: engines.Server | None) -> None:
        self.args = args
        self.server = server
        self.work = work
        self.mariadb = mariadb
        self.prefix: str = args.prefix
        self.token = secrets.token_hex(3)
        self.process_overhead_s: float | None = None

    # -- per size --------------------------------------------------------------

    def run_size(self, size: int) -> dict[str, Any]:
        # errors: the harness could not measure something, or a change was lost (exit 1);
        # findings: behaviour worth a look that the figures alone do not show (reported only).
        result: dict[str, Any] = {"size": size, "errors": [], "notes": [], "findings": []}
        tag = f"[{size} masters]"
        with Stage(f"{tag} creating the board"):
            started = time.perf_counter()
            db = anyio.run(create_board, self.server, Board(masters=size), self.prefix)
            result["board_create_seconds"] = round(time.perf_counter() - started, 3)
        try:
            catalog, files = anyio.run(board_files, db, self.prefix)  # also warms the server's caches
            result["files"] = len(files)
            result["bytes"] = sum(len(d) for _, d in files)
            result["templates"] = sum(1 for p, _ in files if not p.startswith(layout.STYLES_DIR + "/"))
            paths = [p for p, _ in files]
            del files  # the contents are not needed any more (100 MB at 100k templates)
            log.info("%s %d files, %.1f MiB", tag, len(paths), result["bytes"] / 2**20)
            self._guard(result, "export", lambda: self.export_scenarios(tag, db, result))
            self._guard(result, "service", lambda: self.service_scenarios(tag, db, catalog, paths, result))
            self._guard(result, "poll", lambda: self.poll_cost(tag, db, result))
        finally:
            if self.mariadb is None or self.mariadb.running:
                anyio.run(drop_board, db)
        return result

    def poll_cost(self, tag: str, db: Database, result: dict[str, Any]) -> None:
        for key, index in (("poll", False), ("poll_indexed", True)):
            label = " with the poll index" if index else ""
            with Stage(
                f"{tag} poll cost{label}: {self.args.idle_polls} idle polls, {self.args.poll_saves} Admin CP style save(s)"
            ):
                cost = anyio.run(poll_costs, db, self.prefix, self.args.idle_polls, self.args.poll_saves, 1.0, index)
            result[key] = cost
            if cost["first_poll_missed"]:
                result["errors"].append(f"{key}: {cost['first_poll_missed']} save(s) not found by the next poll")
            log.info(
                "%s   idle poll p50 %.2f ms; first poll after a save p50 %.1f ms; following polls p50 %.1f ms%s",
                tag, cost["idle_ms"]["p50"], cost["first_after_save_ms"]["p50"], cost["following_ms"]["p50"], label,
            )  # fmt: skip

    def _guard(self, result: dict[str, Any], name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one failed scenario must not lose the others
            log.exception("%s scenarios failed", name)
            result["errors"].append(f"{name}: {type(exc).__name__}: {exc}")

    def export_scenarios(self, tag: str, db: Database, result: dict[str, Any]) -> None:
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PATTERNS}
        base_order = ("replaced_tool", "naive_durable", "mybb_sync")
        orders = []
        last_root: Path | None = None
        exported_at = 0.0
        for attempt in range(self.args.repeat):
            # Rotate the order, so that no pattern always runs first (or right after another).
            order = base_order[attempt % 3 :] + base_order[: attempt % 3]
            orders.append(list(order))
            for pattern in order:
                root = self.work / f"export-{result['size']}-{pattern}-{attempt}"
                sync_disk()
                with Stage(f"{tag} export {PATTERN_LABELS[pattern]} (run {attempt + 1}/{self.args.repeat})"):
                    run = anyio.run(export_once, db, self.prefix, pattern, root)
                run["files_per_s"] = run["files"] / run["seconds"]
                log.info("%s   %d files in %.2fs: %.0f files/s", tag, run["files"], run["seconds"], run["files_per_s"])
                runs[pattern].append(run)
                if pattern == "mybb_sync" and attempt == self.args.repeat - 1:
                    last_root, exported_at = root, time.perf_counter()
                else:
                    rmtree(root)
        sync_disk()
        export: dict[str, Any] = {}
        for pattern in PATTERNS:
            rates = [r["files_per_s"] for r in runs[pattern]]
            seconds = [r["seconds"] for r in runs[pattern]]
            export[pattern] = {
                "label": PATTERN_LABELS[pattern],
                "files": runs[pattern][-1]["files"],
                "bytes": runs[pattern][-1]["bytes"],
                "seconds": round(statistics.median(seconds), 4),
                "files_per_s": round(statistics.median(rates), 1),
                "runs_files_per_s": [round(r, 1) for r in rates],
            }
            if "fetch_seconds" in runs[pattern][-1]:
                export[pattern]["fetch_seconds"] = round(
                    statistics.median(r["fetch_seconds"] for r in runs[pattern]), 4
                )
        counts = {export[p]["files"] for p in PATTERNS}
        if len(counts) != 1:
            result["errors"].append(f"export patterns wrote different file counts: {counts}")
        a = export["mybb_sync"]["files_per_s"]
        export["ratio_a_b"] = round(a / export["replaced_tool"]["files_per_s"], 3)
        export["ratio_a_c"] = round(a / export["naive_durable"]["files_per_s"], 3)
        export["order"] = orders
        result["export"] = export
        log.info("%s   ratios (a)/(b) = %.2f, (a)/(c) = %.2f", tag, export["ratio_a_b"], export["ratio_a_c"])
        assert last_root is not None
        try:
            # A re-export comes later than the export: wait out the racy-clean window (a stat younger
            # than RACY_NS is never trusted). The first pass may still read and re-stamp the files;
            # the second shows the steady state.
            wait = RACY_NS / 1e9 + 0.2 - (time.perf_counter() - exported_at)
            if wait > 0:
                time.sleep(wait)
            with Stage(f"{tag} re-export of the unchanged root (twice)"):
                again = anyio.run(reexport, db, self.prefix, last_root)
                steady = anyio.run(reexport, db, self.prefix, last_root)
            full = export["mybb_sync"]["seconds"]
            again.update(
                ratio_to_full=round(again["seconds"] / full, 4),
                seconds=round(again["seconds"], 4),
                second_pass_seconds=round(steady["seconds"], 4),
                second_pass_ratio_to_full=round(steady["seconds"] / full, 4),
                second_pass_files_read=steady["files_read"],
            )
            for run in (again, steady):
                if run["written"]:
                    result["errors"].append(f"re-export of an unchanged root wrote {run['written']} file(s)")
            result["reexport"] = again
            log.info(
                "%s   %.3fs (%.1f%% of a full export; %d files read), again %.3fs (%.1f%%; %d read), %d written",
                tag, again["seconds"], 100 * again["ratio_to_full"], again["files_read"], steady["seconds"],
                100 * again["second_pass_ratio_to_full"], steady["files_read"], again["written"] + steady["written"],
            )  # fmt: skip
        finally:
            rmtree(last_root)

    def service_scenarios(
        self, tag: str, db: Database, catalog: Catalog, paths: list[str], result: dict[str, Any]
    ) -> None:
        n_files = len(paths)
        root = self.work / f"service-{result['size']}"
        startup_timeout = max(120.0, n_files / 100)
        # 1. the service exports into an empty root at start-up: time and peak RSS.
        svc = ServiceProcess(db, root, self.work, prefix=self.prefix)
        with Stage(f"{tag} service start-up export into an empty root"):
            svc.start()
            try:
                seconds = svc.wait_watching(startup_timeout)
                hwm, rss = svc.peak_rss_kib(), svc.rss_kib()
                # `mybb-sync watch` installs its SIGTERM handler just after logging `watching`:
                # a SIGTERM in that window kills it (exit -15), so give it a moment (untimed).
                time.sleep(SIGNAL_GRACE)
            finally:
                rc = svc.stop()
        exported_at = time.perf_counter()
        result["service_export"] = {
            "seconds": round(seconds, 3),
            "files_per_s": round(n_files / seconds, 1),
            "peak_rss_mib": round((hwm or 0) / 1024, 1),
            "rss_after_mib": round((rss or 0) / 1024, 1),
            "exit_code": rc,
        }
        log.info(
            "%s   watching after %.2fs (%.0f files/s incl. process start), peak RSS %.1f MiB",
            tag,
            seconds,
            n_files / seconds,
            (hwm or 0) / 1024,
        )
        if rc != 0:
            result["errors"].append(f"service exited {rc} on SIGTERM (expected 0)")
        # 2. restart on the unchanged root: start-up reconcile. Wait out the racy-clean window
        #    (stats younger than RACY_NS are never trusted), as a real restart would be later.
        wait = RACY_NS / 1e9 + 0.2 - (time.perf_counter() - exported_at)
        if wait > 0:
            time.sleep(wait)
        sync_disk()
        svc = ServiceProcess(db, root, self.work, prefix=self.prefix)
        try:
            with Stage(f"{tag} service start-up reconcile of the unchanged root"):
                svc.start()
                seconds = svc.wait_watching(startup_timeout)
            startup_imports = svc.import_count()
            result["startup_reconcile"] = {
                "seconds": round(seconds, 3),
                "process_overhead_seconds": self.process_overhead_s,
                "imports_during_startup": startup_imports,
            }
            if self.process_overhead_s is not None:
                result["startup_reconcile"]["minus_process_overhead_seconds"] = round(
                    max(0.0, seconds - self.process_overhead_s), 3
                )
            log.info(
                "%s   watching after %.2fs (interpreter + imports alone: %.2fs)",
                tag,
                seconds,
                self.process_overhead_s or 0,
            )
            if startup_imports:
                result["errors"].append(f"start-up on an unchanged root imported {startup_imports} file(s)")
            self._guard(result, "idle", lambda: self.idle_cpu(tag, svc, result))
            templates = [p for p in paths if p.startswith(layout.SETS_DIR + "/")]
            rng = random.Random(result["size"])
            rng.shuffle(templates)
            edits, burst = self._split(templates, self.args.edits, self.args.burst)
            conn = engines.connect_sync(db)
            try:
                self._guard(result, "edits", lambda: self.single_edits(tag, svc, conn, catalog, root, edits, result))
                self._guard(result, "burst", lambda: self.burst(tag, svc, conn, catalog, root, burst, result))
                used = {layout.parse(p).name for p in edits + burst}  # type: ignore[union-attr]
                self._guard(
                    result, "db_to_file", lambda: self.db_to_file(tag, conn, catalog, root, templates, used, result)
                )
            finally:
                conn.close()
        finally:
            rc = svc.stop()
            result.setdefault("service", {})["exit_code"] = rc
            result["service"]["warnings"] = svc.warnings[-20:]
            if rc != 0:
                result["errors"].append(f"service exited {rc} on SIGTERM (expected 0)")
        try:
            templates = [p for p in paths if p.startswith(layout.SETS_DIR + "/")]
            self._guard(
                result, "backlog", lambda: self.backlog(tag, db, catalog, root, templates, startup_timeout, result)
            )
        finally:
            rmtree(root)

    def backlog(
        self,
        tag: str,
        db: Database,
        catalog: Catalog,
        root: Path,
        templates: list[str],
        timeout: float,
        result: dict[str, Any],
    ) -> None:
        """Files changed while the service was down: found by the start-up rescan and imported in batches.

        Each trial times a start-up on the unchanged root, then one with ``--backlog`` files
        changed (the next ones each trial, wrapping around): the import time is the difference
        of the pair, which cancels the start-up's own cost however the machine drifts between
        trials. The median over ``--backlog-trials`` is reported.
        """
        n = min(len(templates), self.args.backlog)
        trials: list[dict[str, Any]] = []
        lost = 0
        for trial in range(self.args.backlog_trials):
            unchanged, imports = self._timed_start(
                db, root, f"{tag} backlog trial {trial + 1}: start-up on the unchanged root", timeout, result
            )
            offset = (trial * n) % len(templates)
            chosen = (templates[offset:] + templates[:offset])[:n]
            expected: dict[str, tuple[int, str, str]] = {}
            for i, rel in enumerate(chosen):
                data, text = self._edited(root, rel, f"backlog {trial}.{i}")
                (root / rel).write_bytes(data)
                expected[rel] = (*self._sid_title(catalog, rel), text)
            sync_disk()
            seconds, _ = self._timed_start(
                db,
                root,
                f"{tag} backlog trial {trial + 1}: start-up with {n} files changed while down",
                timeout,
                result,
            )
            conn = engines.connect_sync(db)
            try:
                landed = self._in_database(conn, expected)
            finally:
                conn.close()
            lost += n - len(landed)
            importing = max(seconds - unchanged, 1e-3)
            trials.append({
                "unchanged_startup_seconds": round(unchanged, 3),
                "unchanged_startup_imports": imports,
                "startup_seconds": round(seconds, 3),
                "import_seconds": round(importing, 3),
                "files_per_s": round(n / importing, 1),
                "lost": n - len(landed),
            })  # fmt: skip
            log.info(
                "%s   backlog trial %d: %d files in %.2fs (%.0f files/s), lost %d",
                tag,
                trial + 1,
                n,
                importing,
                n / importing,
                n - len(landed),
            )
            if imports:
                result["errors"].append(f"backlog: the start-up on the unchanged root imported {imports} file(s)")
        importing = statistics.median(t["import_seconds"] for t in trials)
        result["backlog"] = {
            "files": n,
            "trials": trials,
            "import_seconds": round(importing, 3),
            "files_per_s": round(n / importing, 1),
            "lost": lost,
            "method": "per trial: start-up time with N files changed offline minus that of a start-up on the unchanged root just before; median over the trials",
        }
        log.info(
            "%s   backlog: median of %d trials %.2fs (%.0f files/s), lost %d",
            tag,
            len(trials),
            importing,
            n / importing,
            lost,
        )
        if lost:
            result["errors"].append(f"backlog: {lost} change(s) lost")

    def _timed_start(
        self, db: Database, root: Path, label: str, timeout: float, result: dict[str, Any]
    ) -> tuple[float, int]:
        """(seconds from spawn to ``watching``, files imported meanwhile) of one service start, then stopped."""
        svc = ServiceProcess(db, root, self.work, prefix=self.prefix)
        try:
            with Stage(label):
                svc.start()
                seconds = svc.wait_watching(timeout)
            time.sleep(SIGNAL_GRACE)  # untimed: see service_scenarios
            return seconds, svc.import_count()
        finally:
            rc = svc.stop()
            if rc != 0:
                result["errors"].append(f"{label}: the service exited {rc} on SIGTERM (expected 0)")

    @staticmethod
    def _split(templates: list[str], edits: int, burst: int) -> tuple[list[str], list[str]]:
        """Templates for the edits, then distinct ones for the burst: the next ones, wrapping around (edited ones last)."""
        if not templates:
            raise RuntimeError("the board has no template files")
        chosen_edits = [templates[i % len(templates)] for i in range(edits)]
        start = edits % len(templates)
        return chosen_edits, (templates[start:] + templates[:start])[:burst]

    def idle_cpu(self, tag: str, svc: ServiceProcess, result: dict[str, Any]) -> None:
        seconds = self.args.idle_seconds
        db_pid = self._mariadb_pid()
        with Stage(f"{tag} idle CPU over {seconds:.0f}s"):
            c0, d0, t0 = svc.cpu_seconds(), self._cpu_or_none(db_pid), time.perf_counter()
            time.sleep(seconds)
            c1, d1, t1 = svc.cpu_seconds(), self._cpu_or_none(db_pid), time.perf_counter()
        idle: dict[str, Any] = {
            "seconds": round(t1 - t0, 2),
            "cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 3),
            "cpu_seconds": round(c1 - c0, 3),
            "clock_tick_s": round(1 / procfs.CLK_TCK, 4),
        }
        if d0 is not None and d1 is not None:
            idle["mariadb_cpu_percent"] = round(100 * (d1 - d0) / (t1 - t0), 3)
        result["idle"] = idle
        log.info("%s   service CPU %.2f%% of one core", tag, idle["cpu_percent"])

    def _mariadb_pid(self) -> int | None:
        return engines.server_pid(self.mariadb)

    @staticmethod
    def _cpu_or_none(pid: int | None) -> float | None:
        if pid is None:
            return None
        try:
            return procfs.cpu_times(pid).total
        except OSError:
            return None

    # -- disk -> database ------------------------------------------------------

    def _table(self) -> str:
        return f"`{self.prefix}templates`"

    @staticmethod
    def _sid_title(catalog: Catalog, rel: str) -> tuple[int, str]:
        ref = layout.parse(rel)
        assert ref is not None
        sid = catalog.owner(ref)
        assert sid is not None
        return sid, ref.name

    def _db_template(self, conn: Any, sid: int, title: str) -> str | None:
        with conn.cursor() as cur:
            cur.execute(f"SELECT template FROM {self._table()} WHERE sid = %s AND title = %s", (sid, title))
            rows = [r[0] for r in cur.fetchall()]
        return rows[-1] if rows else None

    def _db_templates(self, conn: Any, sid: int, titles: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with conn.cursor() as cur:
            for start in range(0, len(titles), 500):
                chunk = list(titles[start : start + 500])
                marks = ", ".join(["%s"] * len(chunk))
                cur.execute(
                    f"SELECT title, template FROM {self._table()} WHERE sid = %s AND title IN ({marks})", (sid, *chunk)
                )
                found.update((t, x) for t, x in cur.fetchall())
        return found

    def _edited(self, root: Path, rel: str, label: str) -> tuple[bytes, str]:
        """New content for a template file: its text plus a marker line (no trailing whitespace: rtrim-stable)."""
        text = (root / rel).read_bytes().decode("utf-8").rstrip()
        text += f"\n<!-- bench {label} {self.token} -->"
        return text.encode("utf-8"), text

    @staticmethod
    def _stage(root: Path, rel: str, data: bytes) -> tuple[Path, Path]:
        """The first half of an editor's atomic save: a dotfile temp beside the file (ignored by the watcher)."""
        final = root / rel
        temp = final.with_name(f".{final.name}.bench.tmp")
        with open(temp, "wb") as f:
            f.write(data)
        return temp, final

    def single_edits(
        self,
        tag: str,
        svc: ServiceProcess,
        conn: Any,
        catalog: Catalog,
        root: Path,
        paths: list[str],
        result: dict[str, Any],
    ) -> None:
        latencies: list[float] = []
        service_ms: list[float] = []  # the service's own "x ms" for the database round trips
        lost: list[str] = []
        mismatched = 0
        with Stage(f"{tag} {len(paths)} single edits (rename -> imported, confirmed in the database)"):
            for i, rel in enumerate(paths):
                data, text = self._edited(root, rel, f"edit {i}")
                sid, title = self._sid_title(catalog, rel)
                # Stamped just before the rename (a syscall of microseconds): a stamp taken after it
                # could be later than the log line's, whose reader thread may win the GIL first.
                temp, final = self._stage(root, rel, data)
                renamed = time.perf_counter()
                os.rename(temp, final)
                seen = svc.wait_imported(rel, renamed, timeout=10.0)
                if seen is None:
                    lost.append(rel)
                    continue
                latencies.append((seen - renamed) * 1000)
                service_ms.append(svc.import_ms[-1] if svc.import_ms else float("nan"))
                # Confirm (untimed): the row holds exactly the new text.
                deadline = time.perf_counter() + 2.0
                while self._db_template(conn, sid, title) != text:
                    if time.perf_counter() > deadline:
                        mismatched += 1
                        lost.append(rel)
                        break
                    time.sleep(0.005)
                time.sleep(self.args.edit_gap)
        stats = summary_ms(latencies)
        result["edits"] = {
            "requested": len(paths),
            "measured": len(latencies),
            "lost": len(lost),
            "not_in_database": mismatched,
            "latency_ms": stats,
            "samples_ms": [round(x, 3) for x in latencies],
            "service_db_ms": summary_ms([x for x in service_ms if x == x]),
            "gap_s": self.args.edit_gap,
            "method": "rename returns -> the service's 'imported <path>' log line arrives on its stderr pipe; the row is then checked in the database",
        }
        if lost:
            result["errors"].append(f"{len(lost)} single edit(s) never reached the database: {lost[:3]}")
        if latencies:
            log.info(
                "%s   latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, lost %d",
                tag,
                stats["p50"],
                stats["p95"],
                stats["p99"],
                len(lost),
            )

    def burst(
        self,
        tag: str,
        svc: ServiceProcess,
        conn: Any,
        catalog: Catalog,
        root: Path,
        paths: list[str],
        result: dict[str, Any],
    ) -> None:
        prepared = []
        for i, rel in enumerate(paths):
            data, text = self._edited(root, rel, f"burst {i}")
            sid, title = self._sid_title(catalog, rel)
            prepared.append((rel, data, text, sid, title))
        n = len(prepared)
        # The temps (dotfiles, ignored by the watcher) are written first, untimed: the burst is
        # the N renames into place, as fast as one process can make them (a checkout, a sync tool).
        staged = [self._stage(root, rel, data) for rel, data, *_ in prepared]
        time.sleep(0.2)  # let the service drain the temps' (ignored) events
        hwm_reset = procfs.reset_peak_rss(svc.pid)
        rss_before = svc.rss_kib()
        with Stage(f"{tag} burst of {n} changed files"):
            first = time.perf_counter()
            for temp, final in staged:
                os.rename(temp, final)
            last = time.perf_counter()
            done_at: dict[str, float] = {}
            pending = {rel for rel, *_ in prepared}
            expected = {rel: (sid, title, text) for rel, _, text, sid, title in prepared}
            deadline = last + max(30.0, n * 0.05)
            polled = last
            while pending and time.perf_counter() < deadline:
                done_at.update(svc.imported_since(pending, first))
                pending -= done_at.keys()
                if not pending:
                    break
                if time.perf_counter() - polled > 1.0:  # a change imported without its log line still counts
                    now = time.perf_counter()
                    for rel in self._in_database(conn, {r: expected[r] for r in pending}):
                        done_at[rel] = now
                    pending -= done_at.keys()
                    polled = now
                svc.wait_change(0.2)
            hwm = svc.peak_rss_kib()
        confirmed = self._in_database(conn, expected)
        lost = n - len(confirmed)
        lost_paths = sorted(set(expected) - confirmed)
        done = max(done_at.values()) if done_at else float("nan")
        burst = {
            "files": n,
            "rename_seconds": round(last - first, 4),
            "drain_seconds": round(done - last, 4),
            "total_seconds": round(done - first, 4),
            "files_per_s": round(n / (done - first), 1) if done_at else 0.0,
            "lost": lost,
            "lost_paths_sample": lost_paths[:20],
            "imported_log_lines": sum(1 for r in expected if svc.imported_since({r}, first)),
            "peak_rss_mib": round((hwm or 0) / 1024, 1),
            "rss_before_mib": round((rss_before or 0) / 1024, 1),
            "peak_rss_reset": hwm_reset,
        }
        if not hwm_reset:
            result["notes"].append(
                "could not reset VmHWM before the burst: its peak RSS is the process's lifetime peak"
            )
        result["burst"] = burst
        if lost:
            result["errors"].append(f"burst: {lost} of {n} change(s) lost")
        log.info(
            "%s   %d files: renamed in %.3fs, all in the database %.3fs after the last rename (%.0f files/s), lost %d, peak RSS %.1f MiB",
            tag, n, burst["rename_seconds"], burst["drain_seconds"], burst["files_per_s"], lost, burst["peak_rss_mib"],
        )  # fmt: skip

    def _in_database(self, conn: Any, expected: dict[str, tuple[int, str, str]]) -> set[str]:
        """The paths whose row holds the expected text."""
        by_sid: dict[int, dict[str, str]] = {}
        for rel, (sid, title, _) in expected.items():
            by_sid.setdefault(sid, {})[title] = rel
        ok: set[str] = set()
        for sid, titles in by_sid.items():
            rows = self._db_templates(conn, sid, list(titles))
            ok |= {rel for title, rel in titles.items() if rows.get(title) == expected[rel][2]}
        return ok

    # -- database -> disk ------------------------------------------------------

    def db_to_file(
        self,
        tag: str,
        conn: Any,
        catalog: Catalog,
        root: Path,
        templates: list[str],
        used: set[str],
        result: dict[str, Any],
    ) -> None:
        timeout = self.args.db_timeout
        trials = self.args.db_edits
        by_title = {}
        for rel in templates:
            sid, title = self._sid_title(catalog, rel)
            by_title[(sid, title)] = rel
        with conn.cursor() as cur:
            cur.execute(f"SELECT tid, sid, title, template FROM {self._table()} WHERE sid > 0 ORDER BY tid")
            rows = [r for r in cur.fetchall() if (r[1], r[2]) in by_title]
        fresh = [r for r in rows if r[2] not in used] or rows
        latencies: list[float] = []
        status, note = "ok", ""
        last_second = 0

        def admin_cp_save(
            row: tuple[Any, ...], label: str, dateline: int | None = None
        ) -> tuple[Path, bytes, float, int]:
            """UPDATE the row as the Admin CP saves a template: new text, dateline = TIME_NOW (whole seconds)."""
            tid, sid, title, template = row
            text = template.rstrip() + f"\n<!-- bench admin cp {label} {self.token} -->"
            second = int(time.time()) if dateline is None else dateline
            with conn.cursor() as cur:
                cur.execute(
                    f"UPDATE {self._table()} SET template = %s, dateline = %s WHERE tid = %s", (text, second, tid)
                )
            return root / by_title[(sid, title)], text.encode("utf-8"), time.perf_counter(), second

        def wait_file(path: Path, data: bytes, since: float) -> float | None:
            while time.perf_counter() - since < timeout:
                try:
                    if path.read_bytes() == data:
                        return time.perf_counter()
                except OSError:
                    pass
                time.sleep(0.002)
            return None

        with Stage(f"{tag} database -> file: {trials} Admin CP style UPDATE(s), waiting up to {timeout:.0f}s each"):
            for i, row in enumerate(fresh[:trials]):
                # Each save in a later wall-clock second than the previous one (MyBB's dateline has
                # whole seconds): same-second saves are probed separately below.
                while int(time.time()) <= last_second:
                    time.sleep(0.01)
                path, data, updated, last_second = admin_cp_save(row, f"edit {i}")
                seen = wait_file(path, data, updated)
                if seen is None:
                    status = "unsupported" if not latencies else "missed"
                    note = (
                        f"the file did not change within {timeout:.0f}s of an UPDATE of its row (template text "
                        "and dateline, as the Admin CP saves)"
                        + (": the running service has no database poller yet" if not latencies else
                           f" after {len(latencies)} earlier change(s) had reached their files")
                    )  # fmt: skip
                    break
                latencies.append((seen - updated) * 1000)
        result["db_to_file"] = {
            "status": status,
            "note": note,
            "latency_ms": summary_ms(latencies),
            "timeout_s": timeout,
        }
        if status == "unsupported":
            log.info("%s   unsupported: %s", tag, note)
            return
        if latencies:
            log.info(
                "%s   p50 %.1f ms, p95 %.1f ms",
                tag,
                result["db_to_file"]["latency_ms"]["p50"],
                result["db_to_file"]["latency_ms"]["p95"],
            )
        # Rows the trials did not touch first; on a tiny board, any two rows will do.
        spare = fresh[trials:] + [r for r in rows if r not in fresh[trials:]]
        probe_rows = list({r[0]: r for r in reversed(spare)}.values())[::-1][:2]
        result["db_to_file"]["same_second"] = self._same_second_probe(tag, probe_rows, admin_cp_save, wait_file, result)

    def _same_second_probe(
        self,
        tag: str,
        rows: list[tuple[Any, ...]],
        save: Callable[..., Any],
        wait_file: Callable[..., Any],
        result: dict[str, Any],
    ) -> dict[str, Any]:
        """Two Admin CP saves stamped with the same second, the second one after the first reached its file.

        MyBB's ``dateline`` has whole seconds (``TIME_NOW``, taken when the request
        starts), so two saves in one second, or a request that began in that second
        and commits after a poll, leave a set's max dateline where the poller last saw
        it. The second save carries the first one's dateline, which makes the case
        deterministic.
        """
        probe: dict[str, Any] = {"outcome": "not tested"}
        if len(rows) < 2:
            return probe
        with Stage(f"{tag} database -> file: a second save with the same dateline second"):
            started = int(time.time())
            while int(time.time()) <= started:  # the first save in a second of its own
                time.sleep(0.01)
            path, data, updated, second = save(rows[0], "same-second A")
            if wait_file(path, data, updated) is None:
                probe["outcome"] = "first save missed"
            else:
                path, data, updated, _ = save(rows[1], "same-second B", dateline=second)
                probe["wall_clock_still_that_second"] = int(time.time()) == second
                seen = wait_file(path, data, updated)
                probe["outcome"] = "ok" if seen is not None else "missed"
                if seen is not None:
                    probe["latency_ms"] = round((seen - updated) * 1000, 3)
        if probe["outcome"] == "first save missed":
            result["findings"].append(
                "database -> file: a save in a second of its own, right after other saves, never reached its file"
            )
        elif probe["outcome"] != "ok":
            finding = (
                "database -> file: a template saved with the same dateline second as an earlier save that the "
                f"poller had already picked up never reached its file within {self.args.db_timeout:.0f}s "
                "(dateline has whole seconds, so the per-set markers did not move)"
            )
            result["findings"].append(finding)
            log.warning("%s   %s", tag, finding)
        else:
            log.info("%s   ok (%.1f ms)", tag, probe["latency_ms"])
        return probe


def measure_process_overhead(cwd: Path) -> float:
    """Seconds to start the interpreter and import the CLI (``mybb-sync --version``), best of three."""
    best = float("inf")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYBB_SYNC_")}
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mybb_sync.cli", "--version"], cwd=cwd, env=env, check=True, capture_output=True
        )
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


# -- command line -----------------------------------------------------------------


def _start_mariadb(base: Path | None, attempts: int = 2) -> PrivateMariaDB:
    """A private mariadbd; a failed start (install or boot) is retried once in a fresh folder."""
    for attempt in range(1, attempts + 1):
        mariadb = PrivateMariaDB(base=base)
        try:
            with Stage(f"starting a private mariadbd in {mariadb.dir}"):
                mariadb.start()
            return mariadb
        except RuntimeError as exc:
            mariadb.destroy()
            if attempt == attempts:
                raise
            log.warning("%s; trying again", exc)
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: {text!r} is not a comma-separated list of integers") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("--sizes: give positive board sizes, e.g. 1000,10000")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark mybb-sync against MyBB_Playground's disk sync's write pattern and a naive durable one.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {','.join(map(str, QUICK_SIZES))} unless --sizes says otherwise (under 10 minutes on 2 cores)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        help=f"board sizes in master templates (default: {','.join(map(str, FULL_SIZES))}; --quick: {','.join(map(str, QUICK_SIZES))})",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="an existing MySQL/MariaDB server (mysql://user:pass@host:port/any-db or ?unix_socket=); boards are created there as new databases and dropped. Default: a private throwaway mariadbd",
    )
    parser.add_argument(
        "--engine",
        choices=engines.ENGINES,
        default="mariadb",
        help="where the synthetic boards live: a private mariadbd or PostgreSQL cluster, or a SQLite file (default: mariadb)",
    )
    parser.add_argument("--prefix", default="mybb_", help="table prefix of the synthetic boards (default: mybb_)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: bench/results/)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where roots and the private server's data go (default: a temp folder in bench/, on the repository's disk); removed afterwards",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per export pattern, in rotating order; the median is reported (default 3)",
    )
    parser.add_argument("--edits", type=int, default=200, help="single edits to time (default 200)")
    parser.add_argument(
        "--edit-gap", type=float, default=0.02, help="pause between single edits in seconds (default 0.02)"
    )
    parser.add_argument(
        "--burst", type=int, default=10000, help="files in the burst import, at most one per template (default 10000)"
    )
    parser.add_argument(
        "--backlog", type=int, default=10000, help="files changed while the service is down (default 10000)"
    )
    parser.add_argument(
        "--backlog-trials",
        type=int,
        default=3,
        help="backlog trials, each paired with a start-up on the unchanged root; the median is reported (default 3)",
    )
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="window for the idle CPU figure (default 10)")
    parser.add_argument("--db-edits", type=int, default=20, help="database -> file trials (default 20)")
    parser.add_argument("--idle-polls", type=int, default=200, help="idle polls to time (default 200)")
    parser.add_argument(
        "--poll-saves", type=int, default=5, help="Admin CP style saves whose polls are timed (default 5)"
    )
    parser.add_argument(
        "--db-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for a database change to reach its file (default 10)",
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="only the paired export comparisons (bench/paired.py): mybb-sync against (b) and (p), A B A B, "
        "in process, as whole processes and as the service's start-up export; writes paired.json and paired.md",
    )
    parser.add_argument("--pairs", type=int, default=7, help="pairs per comparison with --paired (default 7)")
    parser.add_argument(
        "--strace-up-to",
        type=int,
        default=100000,
        metavar="SIZE",
        help="with --paired, count system calls (strace -c -f) for sizes up to this (default 100000)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs (the service's log lines too)")
    return parser


def _work_dir(args: argparse.Namespace) -> Path:
    """A fresh folder for the roots (default: in bench/, on the repository's disk, not tmpfs).

    The service puts a unix socket in ``<root>/.mybb-sync/``, and a unix socket path
    has at most 107 bytes: a folder too deep for that is replaced by one in the
    system temp folder, with a warning.
    """
    parent = args.work_dir if args.work_dir is not None else BENCH_DIR
    longest = len("/.work-xxxxxxxx/service-10000000/.mybb-sync/control.sock")
    if len(str(parent.resolve())) + longest > UNIX_SOCKET_MAX:
        fallback = Path(tempfile.gettempdir())
        log.warning(
            "%s is too deep for the service's control socket (unix socket paths are short): using %s (%s) instead",
            parent, fallback, procfs.filesystem_of(fallback)["type"],
        )  # fmt: skip
        parent = fallback
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".work-", dir=parent))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("mybb_sync").setLevel(logging.WARNING)
    sizes = args.sizes or list(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.repeat < 1 or args.backlog_trials < 1:
        raise SystemExit("--repeat and --backlog-trials must be at least 1")
    if args.quick and max(sizes) > 10_000:
        log.warning("--quick with sizes over 10000: expect more than 10 minutes")
    started = time.perf_counter()
    work = _work_dir(args)
    fs = procfs.filesystem_of(work)
    if fs["type"] in ("tmpfs", "ramfs"):
        log.warning("the work folder %s is on %s: the disk figures will not be representative", work, fs["type"])
    log.info("work folder %s (%s on %s)", work, fs["type"], fs["device"])

    mariadb: engines.Server | None = None
    results: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    try:
        if args.db:
            server = Database.parse(args.db)
            log.info("using the server at %s", server.redacted())
        else:
            base = work if len(str(work)) + 60 < UNIX_SOCKET_MAX else None  # unix socket paths are short
            if args.engine == "mariadb":
                mariadb = _start_mariadb(base)
            else:  # PostgreSQL's cluster in the system temp folder: its server user may not enter ours
                with Stage(f"starting a private {args.engine} server"):
                    mariadb = engines.start_server(args.engine, None)
            server = engines.server_database(args.engine, mariadb, work)
        facts = procfs.machine_facts(work)
        facts["engine"] = args.engine if not args.db else server.scheme
        facts["mariadb"] = engines.server_version(server)
        facts["mariadb_private"] = mariadb is not None
        facts["mariadb_filesystem"] = procfs.filesystem_of(mariadb.dir)["type"] if mariadb is not None else None
        facts["mybb_sync"] = mybb_sync.__version__
        if args.paired:
            from . import paired  # it builds on this module

            return paired.main(args, server, work, sizes)
        bench = Bench(args, server, work, mariadb)
        bench.process_overhead_s = measure_process_overhead(work)
        for size in sizes:
            results.append(bench.run_size(size))
    finally:
        if mariadb is not None:
            mariadb.destroy()
        if args.keep:
            log.info("kept %s", work)
        else:
            rmtree(work)
    total = time.perf_counter() - started
    if facts:
        facts["loadavg_at_end"] = procfs.loadavg()
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "total_seconds": round(total, 1),
        "config": {
            "quick": args.quick,
            "sizes": sizes,
            "repeat": args.repeat,
            "edits": args.edits,
            "edit_gap_s": args.edit_gap,
            "burst": args.burst,
            "backlog": args.backlog,
            "backlog_trials": args.backlog_trials,
            "idle_seconds": args.idle_seconds,
            "db_edits": args.db_edits,
            "db_timeout_s": args.db_timeout,
            "idle_polls": args.idle_polls,
            "poll_saves": args.poll_saves,
            "prefix": args.prefix,
            "engine": args.engine,
        },
        "machine": facts,
        "results": results,
    }
    problems = report.check(document)
    document["problems"] = problems
    paths = report.write_all(document, args.out)
    for path in paths:
        log.info("wrote %s", path)
    for problem in problems:
        log.error("problem: %s", problem)
    log.info("total %.1fs", total)
    sys.stdout.write(report.markdown(document))
    return 1 if problems else 0
