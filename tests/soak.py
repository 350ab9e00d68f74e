"""Soak and fault injection: the real service under random edits and faults.

A seeded, bounded run drives ``mybb-sync watch`` (a real subprocess) against a
private MariaDB with a random mix of file edits in every editor save pattern,
bursts, new files, deletes, directory renames, Admin-CP-style database edits
(often to the same templates: conflicts), full exports, SIGKILL of the
service, SIGTERM (half the time while another session's table lock holds its
writes back), stopping MariaDB, inotify queue overflows, folders moved out of
the root and back (the service runs with ``--on-delete revert``: nothing may
be reverted), slow writers caught half-way by a rescan, a full disk and a
read-only root. Then it drains the service and checks the invariants; a
violation names the seed to replay::

    python tests/soak.py --minutes 30 --seed 7

``--engine postgresql`` runs the same against a private PostgreSQL cluster
(its table lock: ``LOCK TABLE ... IN EXCLUSIVE MODE``; its restarts: ``pg_ctl``).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread

from boards import PrivateMariaDB, PrivatePostgres, create_board
from mybb_sync import php
from mybb_sync.config import Settings
from mybb_sync.layout import Kind
from mybb_sync.offline import offline_service, offline_status
from mybb_sync.store import open_store
from mybb_sync.synthetic import Board

from service_helpers import db_url, templates_locked_for_writes

SET_DIR = "template_sets/Default Templates"
QUEUE_KNOB = Path("/proc/sys/fs/inotify/max_queued_events")
RACE_WINDOW = 3.0  # writes to both sides closer than this may end either way (or in a conflict)
STARTUP_TIMEOUT = 60.0
MOUNTS = os.geteuid() == 0  # the full-disk and read-only faults mount filesystems


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@dataclass
class Side:
    """The last write the harness made to one side of a file."""

    at: float
    content: str | None  # None: deleted (the file, or the row)


@dataclass
class Summary:
    seed: int
    operations: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    violations: list[str] = field(default_factory=list)
    kept: Path | None = None  # the work folder, kept when a violation was found

    def line(self) -> str:
        return (
            f"soak seed={self.seed}: {sum(self.operations.values())} operations {dict(self.operations)}, "
            f"{sum(self.faults.values())} faults {dict(self.faults)}, {self.conflicts} conflicts, "
            f"{len(self.violations)} violations"
        )


def _normal(kind: Kind, text: str) -> str:
    return php.rtrim(text) if kind is Kind.TEMPLATE else text


class Service:
    """The service subprocess: start, wait for 'watching', kill, stop."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self.proc: anyio.abc.Process | None = None
        self.pid = 0

    async def start(self) -> None:
        self.proc = await anyio.open_process(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.pid = self.proc.pid
        assert self.proc.stderr is not None
        ready = anyio.Event()
        buffer = b""

        async def pump() -> None:
            nonlocal buffer
            assert self.proc is not None and self.proc.stderr is not None
            with open(self.log, "ab") as out:
                async for chunk in self.proc.stderr:
                    out.write(chunk)
                    out.flush()
                    buffer = (buffer + chunk)[-4096:]
                    if b" watching " in buffer:
                        ready.set()

        self._tg.start_soon(pump)
        with anyio.fail_after(STARTUP_TIMEOUT):
            await ready.wait()

    def bind(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        with anyio.fail_after(30):
            return await self.proc.wait()


class Soak:
    def __init__(self, seed: int, seconds: float, base: Path, server: PrivateMariaDB | PrivatePostgres) -> None:
        self.rng = random.Random(seed)
        self.seconds = seconds
        self.base = base
        self.server = server
        self.root = base / "root"
        self.forum = base / "forum"
        self.outside = base / "outside"
        self.summary = Summary(seed)
        self.disk: dict[str, Side] = {}
        self.db: dict[str, Side] = {}
        self.written: set[str] = set()
        self.n = 0
        self.db_up = True

    # -- set-up -----------------------------------------------------------------

    async def setup(self) -> None:
        for d in (self.root, self.forum / "cache" / "themes", self.outside):
            d.mkdir(parents=True, exist_ok=True)
        if MOUNTS:  # the root on a disk of its own, so that it can be filled and made read-only
            _mount("-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(self.root))
        (self.outside / "sentinel.html").write_text("outside the root\n")
        self.database = await create_board(self.server.database(), Board(masters=300, seed=self.rng.randrange(1 << 30)))
        url = db_url(self.database)
        self.settings = Settings(db=self.database, root=self.root, mybb_root=self.forum)
        self.cli = [sys.executable, "-m", "mybb_sync.cli"]
        self.common = ["--db", url, "--root", str(self.root), "--mybb-root", str(self.forum)]
        self.service = Service([*self.cli, "watch", "--on-delete", "revert", *self.common], self.base / "service.log")

    def templates(self) -> list[Path]:
        return sorted(p for p in (self.root / SET_DIR).rglob("*.html") if not p.name.startswith("."))

    def stylesheets(self) -> list[Path]:
        return sorted(p for p in (self.root / "styles").glob("[CD]*/*.css"))

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def content(self, what: str) -> str:
        self.n += 1
        body = "".join(
            f'\t<div class="soak{self.rng.randrange(1000)}">{{$lang->x}}</div>\n'
            for _ in range(self.rng.randint(1, 30))
        )
        text = f"<!-- soak {self.summary.seed}:{self.n} {what} -->\n{body}"
        self.written.add(php.rtrim(text))
        self.written.add(text)
        return text

    # -- file operations (every editor save pattern) ----------------------------

    def save(self, path: Path, text: str) -> None:
        data = text.encode()
        pattern = self.rng.choice(["inplace", "vscode", "vim", "sed", "cp", "mv", "git"])
        self.summary.operations[f"save-{pattern}"] += 1
        if pattern == "inplace":
            path.write_bytes(data)
        elif pattern == "vscode":
            with open(path, "wb"):
                pass
            path.write_bytes(data)
        elif pattern == "vim":
            backup = path.with_name(path.name + "~")
            os.rename(path, backup) if path.exists() else None
            path.write_bytes(data)
            backup.unlink(missing_ok=True)
        elif pattern == "sed":
            temp = path.with_name(f"sed{self.rng.randrange(10**6):06d}")
            temp.write_bytes(data)
            os.rename(temp, path)
        elif pattern == "cp":
            source = self.outside / "cp-source"
            source.write_bytes(data)
            shutil.copyfile(source, path)
        elif pattern == "mv":
            source = self.outside / f"mv-{self.n}"
            source.write_bytes(data)
            os.rename(source, path)
        else:
            temp = path.with_name(f".{path.name}.lock")
            temp.write_bytes(data)
            os.rename(temp, path)

    def edit_file(self, path: Path) -> None:
        if not path.parent.is_dir():
            return
        text = self.content("disk")
        try:
            self.save(path, text)
        except OSError:  # the disk is full or read-only: this edit was never made
            return
        self.disk[self.rel(path)] = Side(time.monotonic(), text)

    def burst(self, count: int) -> None:
        for path in self.rng.sample(self.templates(), min(count, len(self.templates()))):
            text = self.content("burst")
            path.write_text(text)
            self.disk[self.rel(path)] = Side(time.monotonic(), text)
        self.summary.operations["burst"] += 1

    def new_file(self) -> None:
        group = self.rng.choice(["index", "header", "ungrouped", "usercp"])
        title = f"{group}_soaknew{self.n}" if group != "ungrouped" else f"soaknew{self.n}"
        path = self.root / SET_DIR / group / f"{title}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.edit_file(path)
        self.summary.operations["new-file"] += 1

    def delete_file(self) -> None:
        path = self.rng.choice(self.templates())
        path.unlink(missing_ok=True)
        self.disk[self.rel(path)] = Side(time.monotonic(), None)
        self.summary.operations["delete"] += 1

    def rename_dir(self) -> None:
        groups = [p for p in (self.root / SET_DIR).iterdir() if p.is_dir() and not p.name.endswith("_moved")]
        group = self.rng.choice(groups)
        moved = group.with_name(group.name + "_moved")
        if moved.exists():  # only ever there for an instant: something wrote into it while it was
            self.summary.violations.append(f"{self.rel(moved)}: made again after the folder was moved back")
            return
        os.rename(group, moved)
        os.rename(moved, group)
        self.summary.operations["dir-rename"] += 1

    # -- database operations (as the Admin CP does them) -----------------------

    async def edit_row(self) -> None:
        if not self.db_up:
            return
        candidates = self.templates()
        if not candidates:
            return
        path = self.rng.choice(candidates)
        title = path.name[: -len(".html")]
        text = self.content("db")
        async with open_store(self.database, "mybb_") as store:
            if self.rng.random() < 0.1:
                await store.revert_templates(1, [title])
                shown = (await store.templates_by_title(1, [title])).get(title)
                # Reverting a custom template (no master) deletes it: its file goes too.
                text = shown.template if shown is not None else None
                self.summary.operations["db-revert"] += 1
            else:
                await store.save_templates(1, [(title, text)], int(time.time()))
                self.summary.operations["db-save"] += 1
        self.db[self.rel(path)] = Side(time.monotonic(), text)

    # -- faults ----------------------------------------------------------------

    async def kill_service(self) -> None:
        if self.service.running:
            await self.service.kill(signal.SIGKILL)
            self.summary.faults["sigkill"] += 1
            for _ in range(self.rng.randint(0, 5)):  # offline edits
                self.edit_file(self.rng.choice(self.templates()))
            await self.service.start()

    async def stop_service(self) -> None:
        """SIGTERM right after some edits, half the time while another session's LOCK TABLES
        holds the service's writes back (MyISAM would let them wait a day): either way it must
        exit 0 within 5 s, and the next start must write what it left."""
        if not self.service.running or not self.db_up:
            return
        locked = self.rng.random() < 0.5
        async with AsyncExitStack() as held:
            if locked:
                await held.enter_async_context(templates_locked_for_writes(self.database))
            for _ in range(self.rng.randint(1, 20)):
                self.edit_file(self.rng.choice(self.templates()))
            await anyio.sleep(self.rng.choice([0, 0.05, 0.2]))  # the deliberate random moment
            started = time.monotonic()
            code = await self.service.kill(signal.SIGTERM)
            took = time.monotonic() - started
            if code != 0 or took > 5:
                self.summary.violations.append(
                    f"SIGTERM{' under a table lock' if locked else ''}: exit {code} after {took:.1f}s"
                )
            self.summary.faults["sigterm-locked" if locked else "sigterm"] += 1
        await self.service.start()

    async def restart_database(self) -> None:
        await anyio.to_thread.run_sync(self.server.stop)
        self.db_up = False
        self.summary.faults["db-restart"] += 1
        for _ in range(self.rng.randint(1, 20)):
            self.edit_file(self.rng.choice(self.templates()))
        await anyio.to_thread.run_sync(self.server.start)
        self.db_up = True

    async def overflow(self) -> None:
        """A real IN_Q_OVERFLOW: restart the service with a tiny queue, stall it, flood it."""
        if not self.service.running or not os.access(QUEUE_KNOB, os.W_OK):
            return
        await self.service.kill(signal.SIGTERM)
        old = QUEUE_KNOB.read_text().strip()
        QUEUE_KNOB.write_text("64\n")  # read by the kernel when the service makes its inotify instance
        try:
            await self.service.start()
        finally:
            if QUEUE_KNOB.read_text().strip() == "64":  # put back only our own value
                QUEUE_KNOB.write_text(old + "\n")
        self.service.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        try:
            self.burst(200)
        finally:
            self.service.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        self.summary.faults["overflow"] += 1

    async def rescan(self) -> None:
        """Ask the service for a full rescan and wait until it is done (a no-op while it is down)."""
        await anyio.run_process([*self.cli, "rescan", "--root", str(self.root)], check=False)

    async def copies(self, titles: list[str]) -> set[str]:
        async with open_store(self.database, "mybb_") as store:
            return {t for t, row in (await store.templates_by_title(1, titles)).items() if row.sid == 1}

    async def move_folder_aside(self) -> None:
        """A group folder (or the whole set folder) moved out of the root and back: with
        ``--on-delete revert`` that is no deletion, and no copy of its templates may be reverted."""
        if not self.service.running or not self.db_up:
            return
        group = self.rng.choice([p for p in (self.root / SET_DIR).iterdir() if p.is_dir()] + [self.root / SET_DIR])
        titles = [p.name[: -len(".html")] for p in group.rglob("*.html")]
        before = await self.copies(titles)
        aside = self.root / f".aside-{self.n}"  # out of the synced tree (a dotfolder), on the same disk
        os.rename(group, aside)
        await self.rescan()
        await anyio.sleep(2.5)  # past the revert's grace period: a revert would have happened now
        await self.rescan()
        lost = before - await self.copies(titles)
        if lost:
            self.summary.violations.append(
                f"moving {self.rel(group)} aside reverted {len(lost)} copies, e.g. {sorted(lost)[0]!r}"
            )
        if group.exists():  # made again while it was away: the files written there go aside too
            self.summary.violations.append(f"{self.rel(group)}: made again while the folder was moved aside")
            os.rename(group, self.root / f".made-again-{self.n}")
        os.rename(aside, group)
        self.summary.faults["folder-moved-aside"] += 1

    async def slow_writer(self) -> None:
        """A writer that rewrites a file in place and pauses half-way while a rescan runs: the
        half must never reach the database."""
        if not self.service.running or not self.db_up:
            return
        path = self.rng.choice(self.templates())
        text = self.content("slow")
        half = text[: len(text) // 2]
        with open(path, "w") as out:
            out.write(half)
            out.flush()
            await self.rescan()
            async with open_store(self.database, "mybb_") as store:
                row = (await store.templates_by_title(1, [path.name[: -len(".html")]])).values()
            if any(r.template == php.rtrim(half) for r in row):
                self.summary.violations.append(f"{self.rel(path)}: a rescan imported a half-written file")
            out.write(text[len(half) :])
        self.disk[self.rel(path)] = Side(time.monotonic(), text)
        self.summary.faults["slow-writer"] += 1

    async def full_disk(self) -> None:
        """The root's disk full for a while: database saves wait, edits that fail are not made."""
        if not MOUNTS or not self.service.running:
            return
        filler = self.root / ".filler"
        with open(filler, "wb", buffering=0) as out:  # unbuffered: closing it flushes nothing
            try:
                while True:
                    out.write(b"\0" * (1 << 20))
            except OSError:
                pass
        try:
            for _ in range(self.rng.randint(1, 5)):
                await self.edit_row()
            await anyio.sleep(self.rng.choice([0.5, 1, 2]))  # how long the disk stays full
        finally:
            filler.unlink()
        self.summary.faults["full-disk"] += 1

    async def read_only_root(self) -> None:
        """The root remounted read-only for a while (a bind mount over it): database saves wait."""
        if not MOUNTS or not self.service.running:
            return
        _mount("--bind", str(self.root), str(self.root))
        try:
            _mount("-o", "remount,bind,ro", str(self.root))
            for _ in range(self.rng.randint(1, 5)):
                await self.edit_row()
            await anyio.sleep(self.rng.choice([0.5, 1, 2]))  # how long the root stays read-only
        finally:
            subprocess.run(["umount", "-l", str(self.root)], check=False)
        self.summary.faults["read-only-root"] += 1

    async def export(self) -> None:
        await anyio.run_process([*self.cli, "export", *self.common], check=False)
        self.summary.operations["export"] += 1

    # -- the run ---------------------------------------------------------------

    async def run(self) -> Summary:
        await self.setup()
        async with anyio.create_task_group() as tg:
            self.service.bind(tg)
            try:
                await self.service.start()
                deadline = time.monotonic() + self.seconds
                while time.monotonic() < deadline:
                    await self.step()
                await self.drain()
            finally:
                if self.service.running:  # interrupted: leave no service behind
                    with anyio.CancelScope(shield=True):
                        await self.service.kill(signal.SIGKILL)
            tg.cancel_scope.cancel()
        await self.check()
        return self.summary

    async def alive(self) -> None:
        """Every exit the harness causes is followed by a start: a service found stopped died by itself."""
        if not self.service.running:
            self.summary.violations.append(f"the service exited by itself (code {self.service.proc.returncode})")  # type: ignore[union-attr]
            await self.service.start()

    async def step(self) -> None:
        await self.alive()
        roll = self.rng.random()
        if roll < 0.40:
            self.edit_file(self.rng.choice(self.templates()))
        elif roll < 0.45:
            self.edit_file(self.rng.choice(self.stylesheets()))
        elif roll < 0.65:
            await self.edit_row()
        elif roll < 0.70:
            self.burst(self.rng.randint(50, 200))
        elif roll < 0.75:
            self.new_file()
        elif roll < 0.78:
            self.delete_file()
        elif roll < 0.80:
            self.rename_dir()
        elif roll < 0.83:
            await self.export()
        elif roll < 0.86:
            await self.kill_service()
        elif roll < 0.88:
            await self.restart_database()
        elif roll < 0.89:
            await self.overflow()
        elif roll < 0.90:
            await self.stop_service()
        elif roll < 0.905:
            await self.move_folder_aside()
        elif roll < 0.915:
            await self.slow_writer()
        elif roll < 0.92:
            await self.full_disk()
        elif roll < 0.925:
            await self.read_only_root()
        # Pacing of the load itself (not synchronisation): a human-ish mix of quick and slow edits.
        await anyio.sleep(self.rng.choice([0, 0, 0.01, 0.05, 0.2]))

    async def drain(self) -> None:
        """Let the service handle everything, then stop it cleanly."""
        await self.alive()
        await anyio.run_process([*self.cli, "rescan", "--root", str(self.root)], check=True)
        code = await self.service.kill(signal.SIGTERM)
        if code != 0:
            self.summary.violations.append(f"service exited {code} on SIGTERM")

    # -- invariants ------------------------------------------------------------

    async def check(self) -> None:
        v = self.summary.violations
        status = offline_status(self.root)
        conflicts = {p["path"] for p in status["problems"] if p["kind"] == "conflict"}
        self.summary.conflicts = len(conflicts)
        async with open_store(self.database, "mybb_") as store:
            rows = [r async for batch in store.set_templates(1) for r in batch]
            rows += [r async for batch in store.set_templates(-1) for r in batch]
            sheets = await store.stylesheets()
            dupes = await store._fetch(  # noqa: SLF001 - a direct check, not part of the store's API
                f"SELECT sid, title, COUNT(*) FROM `mybb_templates` GROUP BY sid, {store._exact_title} HAVING COUNT(*) > 1"  # noqa: SLF001
            )
            everything = await store._fetch("SELECT template FROM `mybb_templates`")  # noqa: SLF001
        for (text,) in everything:
            if not text.strip():
                v.append("an empty template row")
            elif "<!-- soak" in text and php.rtrim(text) not in self.written:
                v.append(f"a row holds content the harness never wrote: {text[:60]!r}")
        for s in sheets:
            if not s.stylesheet.strip():
                v.append(f"stylesheet {s.sid} is empty")
        for sid, title, count in dupes:
            v.append(f"{count} rows for ({sid}, {title!r})")
        async with offline_service(self.settings, dry_run=True) as service:
            paths = sorted(set(self.disk) | set(self.db))
            entries = {e.path: e for e in await service.entries_for(paths)}
        for path in paths:
            entry = entries.get(path)
            if entry is None:
                continue
            file = self.root / path
            disk_text = file.read_text() if file.exists() else None
            db_text = entry.text
            kind = entry.kind
            same = disk_text is not None and db_text is not None and _normal(kind, disk_text) == _normal(kind, db_text)
            last_disk, last_db = self.disk.get(path), self.db.get(path)
            if path in conflicts:
                if last_disk is not None and disk_text != last_disk.content:
                    v.append(f"{path}: in conflict but the file is not the last disk write")
                if (
                    last_db is not None
                    and last_db.content is not None
                    and db_text is not None
                    and _normal(kind, db_text) != _normal(kind, last_db.content)
                ):
                    v.append(f"{path}: in conflict but the row is not the last database write")
                continue
            if disk_text is None:
                deleted = [side for side in (last_disk, last_db) if side is not None and side.content is None]
                if not deleted:
                    v.append(f"{path}: missing on disk although deleted on neither side")
                elif db_text is not None and last_db is not None and last_db.content is None:
                    v.append(f"{path}: the row was deleted but is back, with no file")
                continue
            if not same:
                v.append(
                    f"{path}: file and row differ and no conflict is reported "
                    f"(file {disk_text[:50]!r}, row {(db_text or '')[:50]!r}, last disk write {last_disk}, last row write {last_db})"
                )
                continue
            winner = max((s for s in (last_disk, last_db) if s is not None), key=lambda s: s.at)
            other = last_db if winner is last_disk else last_disk
            if other is not None and winner.at - other.at < RACE_WINDOW:
                continue  # a race: either outcome is right
            if winner.content is not None and _normal(kind, db_text or "") != _normal(kind, winner.content):
                v.append(f"{path}: the last write is lost (expected {winner.content[:40]!r})")
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                if name.endswith(".tmp") and name.startswith("."):
                    v.append(f"temp file left: {dirpath}/{name}")
        if (self.outside / "sentinel.html").read_text() != "outside the root\n":
            v.append("a file outside the root was changed")
        overflows = self.service.log.read_text(errors="replace").count("inotify queue overflowed")
        if overflows:
            self.summary.faults["overflow-seen-by-service"] = overflows


async def soak(seed: int, seconds: float, base: Path | None = None, engine: str = "mariadb") -> Summary:
    work = Path(tempfile.mkdtemp(prefix="mybb-sync-soak-", dir=base))
    # PostgreSQL's cluster in the system temp folder: its server user (not root) must enter it.
    server = PrivatePostgres() if engine == "postgresql" else PrivateMariaDB(work)
    await anyio.to_thread.run_sync(server.start)
    summary: Summary | None = None
    try:
        summary = await Soak(seed, seconds, work, server).run()
        return summary
    finally:
        server.destroy()
        if MOUNTS:
            if summary is not None and summary.violations:  # the root's disk goes with the mount
                shutil.copytree(work / "root", work / "root-kept", symlinks=True)
            subprocess.run(["umount", "-l", str(work / "root")], check=False)
        if summary is not None and summary.violations:
            summary.kept = work  # the service's log, the root and its state, to diagnose
        else:
            shutil.rmtree(work, ignore_errors=True)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--engine", choices=["mariadb", "postgresql"], default="mariadb")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)  # a killed run still stops its service and its database server
    summary = anyio.run(soak, args.seed, args.minutes * 60, None, args.engine)
    print(summary.line())
    for violation in summary.violations:
        print(f"  violation: {violation}")
    if summary.kept is not None:
        print(f"  kept {summary.kept} (service log, root, state) for diagnosis")
    return 1 if summary.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
