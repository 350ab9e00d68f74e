"""The ``mybb-sync watch`` service as a subprocess, with its log lines time-stamped on arrival.

A reader thread stamps every stderr line with ``time.perf_counter()`` the
moment it arrives (the service's logging handler flushes per record), so
"rename -> imported line" latencies need no clock shared with the service
and no parsing of its millisecond-resolution asctime.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from urllib.parse import quote

from mybb_sync.config import Database

from . import procfs

log = logging.getLogger("bench.service")

# "imported <path> -> set 1 'title' (123 bytes, 4.5 ms)"  (mybb_sync.importer)
IMPORTED_RE = re.compile(
    r" imported (?P<path>.+?) -> (?:global|set -?\d+|theme \d+) .*\((?P<bytes>\d+) bytes, (?P<ms>[\d.]+) ms\)\s*$"
)
WATCHING_RE = re.compile(r" watching (?P<root>.+) \((?P<folders>\d+) folders\)")


def db_url(db: Database) -> str:
    """The ``--db`` URL the CLI reads for ``db``."""
    if db.scheme == "sqlite":
        return f"sqlite://{db.path}"
    auth = quote(db.user, safe="")
    if db.password:
        auth += ":" + quote(db.password, safe="")
    key = "host" if db.scheme == "postgresql" else "unix_socket"
    query = f"?{key}={quote(db.unix_socket, safe='/')}" if db.unix_socket else ""
    return f"{db.scheme}://{auth}@{db.host}:{db.port}/{quote(db.name, safe='')}{query}"


class ServiceProcess:
    """``python -m mybb_sync.cli watch`` on one root; settings through the environment (no password in argv)."""

    def __init__(
        self, db: Database, root: Path, cwd: Path, *, prefix: str = "mybb_", profile_to: Path | None = None
    ) -> None:
        self.db = db
        self.root = root
        self.cwd = cwd
        self.prefix = prefix
        self.profile_to = profile_to
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.watching_at: float | None = None
        self.lines: deque[tuple[float, str]] = deque(maxlen=5000)
        self.imported: dict[str, list[float]] = defaultdict(list)
        self.import_ms: list[float] = []
        self.warnings: list[str] = []
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._eof = False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYBB_SYNC_")}
        env.update(
            MYBB_SYNC_DB=db_url(self.db),
            MYBB_SYNC_ROOT=str(self.root),
            MYBB_SYNC_PREFIX=self.prefix,
            PYTHONUNBUFFERED="1",
        )
        env.pop("NOTIFY_SOCKET", None)
        command = [sys.executable, "-u"]
        if self.profile_to is not None:
            command += ["-m", "cProfile", "-o", str(self.profile_to)]
        command += ["-m", "mybb_sync.cli", "watch"]
        self.started_at = time.perf_counter()
        # cwd: a temp folder, so that no stray mybb-sync.toml is picked up.
        self.proc = subprocess.Popen(
            command, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._reader = threading.Thread(target=self._read, name=f"service-log-{self.proc.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            now = time.perf_counter()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append((now, line))
                m = IMPORTED_RE.search(line)
                if m is not None:
                    self.imported[m.group("path")].append(now)
                    self.import_ms.append(float(m.group("ms")))
                elif self.watching_at is None and WATCHING_RE.search(line):
                    self.watching_at = now
                if " WARNING " in line or " ERROR " in line:
                    self.warnings.append(line)
                self._cond.notify_all()
            log.debug("service: %s", line)
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def tail(self, n: int = 15) -> str:
        with self._cond:
            return "\n".join(line for _, line in list(self.lines)[-n:])

    def wait_watching(self, timeout: float) -> float:
        """Seconds from spawn to the ``watching`` line; raises if the service died or took too long."""
        deadline = time.perf_counter() + timeout
        with self._cond:
            while self.watching_at is None:
                left = deadline - time.perf_counter()
                if self._eof or left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
            if self.watching_at is None:
                why = "exited" if self._eof else f"was not watching after {timeout:.0f}s"
                raise RuntimeError(f"the service {why}; its last log lines:\n{self.tail()}")
            return self.watching_at - self.started_at

    def wait_imported(self, path: str, after: float, timeout: float) -> float | None:
        """The arrival time of the first ``imported <path>`` line later than ``after``, or None."""
        deadline = after + timeout
        with self._cond:
            while True:
                stamps = [t for t in self.imported.get(path, ()) if t >= after]
                if stamps:
                    return stamps[0]
                left = deadline - time.perf_counter()
                if self._eof or left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))

    def imported_since(self, paths: set[str], after: float) -> dict[str, float]:
        with self._cond:
            out = {}
            for path in paths:
                stamps = [t for t in self.imported.get(path, ()) if t >= after]
                if stamps:
                    out[path] = stamps[0]
            return out

    def wait_change(self, timeout: float) -> None:
        """Sleep until a new log line arrives (or ``timeout``)."""
        with self._cond:
            if not self._eof:
                self._cond.wait(timeout)

    def import_count(self) -> int:
        with self._cond:
            return sum(len(v) for v in self.imported.values())

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (the service drains and exits 0); SIGKILL if it does not stop in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("service %d did not stop on SIGTERM within %.0fs: killing it", self.proc.pid, timeout)
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.proc.returncode

    # -- /proc ------------------------------------------------------------------

    def peak_rss_kib(self) -> int | None:
        return procfs.status_kib(self.pid, "VmHWM")

    def rss_kib(self) -> int | None:
        return procfs.status_kib(self.pid, "VmRSS")

    def cpu_seconds(self) -> float:
        return procfs.cpu_times(self.pid).total
