"""Paired export benchmark: ``python -m bench --paired [--sizes 1000,10000,100000] [--pairs 7] [--out DIR]``.

On a machine shared with other work, two runs minutes apart differ more
than two patterns do. So mybb-sync's export (A) is timed against a baseline
(B) in pairs, A B A B ..., each run into a fresh folder, and what is
reported is the median of the per-pair ratios A/B with their spread (min,
max, quartiles): a slow spell of the machine slows both halves of a pair.
Roots are only removed at the end, with the work folder: ext4 scans
recently deleted inodes when it creates files, so a root removed just
before a run would slow the run after it.

Baselines: (b) the replaced tool's pattern (fetch every row through the
same store, then per file ``<name>.tmp`` + rename, no fsync), (p) a plain
write (each file opened in place, written, closed) and (f) the floor of a
durable export (``bench/floor.py``: the same fetch, writer, flushes and
state rows, nothing decided or checked). Comparisons:

export        in this process: ``Exporter.run`` against (b), (p) and (f), and
              (f) against (b), each timing including the rows' fetch; wall,
              user and system time (``getrusage``, all threads).
process       ``mybb-sync export --all`` against ``python -m bench.oneshot
              replaced_tool`` (a small script doing (b)), whole processes:
              start-up included; wall, user, system time and peak RSS.
service       ``mybb-sync watch`` on an empty root (spawn -> ``watching``:
              its start-up export) against the same (b) script; peak RSS.
syscalls      one run of each pattern under ``strace -c -f`` (when strace is
              installed): futex, openat, fsync/fdatasync/syncfs and rename
              calls per 1,000 files.
re-export     ``Exporter`` over the last exported root, unchanged: its share
              of the median full export.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from mybb_sync.config import Database
from mybb_sync.state import RACY_NS

from . import procfs
from .harness import Stage, board_files, export_once, reexport, sync_disk
from .service import ServiceProcess, db_url

log = logging.getLogger("bench.paired")

REPO = Path(__file__).resolve().parents[1]  # `python -m bench.oneshot` is found from here
PATTERNS = ("mybb_sync", "replaced_tool", "plain", "floor")
LABELS = {
    "mybb_sync": "(a) mybb-sync",
    "replaced_tool": "(b) replaced tool: .tmp + rename, no fsync",
    "plain": "(p) plain write in place",
    "floor": "(f) the floor: a durable export that decides nothing (bench/floor.py)",
}
COUNTED = {  # syscall groups counted per 1,000 files
    "futex": ("futex",),
    "openat": ("openat", "open"),
    "fsync/syncfs": ("fsync", "fdatasync", "syncfs"),
    "rename": ("rename", "renameat", "renameat2"),
}
Run = dict[str, float]


def spread(ratios: list[float]) -> dict[str, float]:
    """Median and spread of the pair ratios (quartiles by linear interpolation)."""
    data = sorted(ratios)
    q = statistics.quantiles(data, n=4, method="inclusive") if len(data) > 1 else [data[0]] * 3
    return {
        "median": round(statistics.median(data), 3),
        "min": round(data[0], 3),
        "max": round(data[-1], 3),
        "p25": round(q[0], 3),
        "p75": round(q[2], 3),
    }


def medians(runs: list[Run]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}


def paired(pairs: int, run_a: Callable[[int], Run], run_b: Callable[[int], Run]) -> dict[str, Any]:
    """``pairs`` pairs, A then B each time (A B A B ...); the median of the wall-time ratios A/B."""
    a_runs, b_runs = [], []
    for i in range(pairs):
        a_runs.append(run_a(i))
        b_runs.append(run_b(i))
        log.info("    pair %d/%d: %.2fs / %.2fs = %.2f", i + 1, pairs, a_runs[-1]["wall"], b_runs[-1]["wall"],
                 a_runs[-1]["wall"] / b_runs[-1]["wall"])  # fmt: skip
    ratios = [a["wall"] / b["wall"] for a, b in zip(a_runs, b_runs, strict=True)]
    return {
        "ratio": spread(ratios),
        "ratios": [round(r, 3) for r in ratios],
        "a": medians(a_runs),
        "b": medians(b_runs),
    }


class Paired:
    def __init__(self, args: argparse.Namespace, db: Database, work: Path, files: int) -> None:
        self.args = args
        self.db = db
        self.work = work
        self.files = files
        self.roots: list[Path] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MYBB_SYNC_")}
        self.env.update(MYBB_SYNC_DB=db_url(db), MYBB_SYNC_PREFIX=args.prefix)

    def fresh_root(self, label: str) -> Path:
        root = self.work / f"{label}-{len(self.roots)}"
        self.roots.append(root)
        sync_disk()  # untimed: no run pays for the writeback of the one before
        return root

    def in_process(self, pattern: str) -> Callable[[int], Run]:
        def run(_: int) -> Run:
            root = self.fresh_root(pattern)
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            out = anyio.run(export_once, self.db, self.args.prefix, pattern, root)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            if out["files"] != self.files:
                raise RuntimeError(f"{pattern} wrote {out['files']} files, not {self.files}")
            return {"wall": wall, "export_s": out["seconds"], "user": after.ru_utime - before.ru_utime,
                    "sys": after.ru_stime - before.ru_stime}  # fmt: skip

        return run

    def process(self, command: list[str], label: str) -> Callable[[int], Run]:
        """A whole process writing into a fresh root: wall time, and its CPU from ``wait4`` (not its
        peak RSS: the kernel counts the forking parent's in it; the service's is read from /proc)."""

        def run(_: int) -> Run:
            root = self.fresh_root(label)
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, *command, *([str(root)] if label == "script" else [])],
                cwd=REPO if label == "script" else self.work, env={**self.env, "MYBB_SYNC_ROOT": str(root)},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            assert proc.stderr is not None
            with proc.stderr:
                stderr = proc.stderr.read()
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}: {stderr.decode()[-2000:]}")
            return {"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime}

        return run

    def service(self, _: int) -> Run:
        root = self.fresh_root("service")
        svc = ServiceProcess(self.db, root, self.work, prefix=self.args.prefix)
        svc.start()
        try:
            wall = svc.wait_watching(max(120.0, self.files / 100))
            cpu, hwm = procfs.cpu_times(svc.pid), svc.peak_rss_kib()
            time.sleep(0.5)  # `watch` installs its SIGTERM handler just after `watching` (see harness)
        finally:
            svc.stop()
        return {"wall": wall, "user": cpu.user, "sys": cpu.system, "peak_rss_mib": round((hwm or 0) / 1024, 1)}

    def syscalls(self, pattern: str) -> dict[str, float] | None:
        """System calls of one export by ``pattern`` under ``strace -c -f``, per 1,000 files."""
        strace = shutil.which("strace")
        if strace is None:
            return None
        root = self.fresh_root(f"strace-{pattern}")
        table = self.work / f"strace-{pattern}-{len(self.roots)}.txt"
        subprocess.run(
            [strace, "-f", "-c", "-o", str(table), sys.executable, "-m", "bench.oneshot", pattern, str(root)],
            cwd=REPO, env=self.env, check=True, capture_output=True,
        )  # fmt: skip
        calls: dict[str, int] = {}
        for line in table.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                calls[fields[-1]] = int(fields[3])
        return {group: round(1000 * sum(calls.get(n, 0) for n in names) / self.files, 1)
                for group, names in COUNTED.items()}  # fmt: skip


def run_size(args: argparse.Namespace, server: Database, work: Path, size: int) -> dict[str, Any]:
    from tests.boards import create_board, drop_board

    from mybb_sync.synthetic import Board

    tag = f"[{size} masters]"
    with Stage(f"{tag} creating the board"):
        db = anyio.run(create_board, server, Board(masters=size), args.prefix)
    result: dict[str, Any] = {"size": size}
    try:
        _, files = anyio.run(board_files, db, args.prefix)  # also warms the server's caches
        result["files"] = len(files)
        del files
        bench = Paired(args, db, work / f"p{size}", result["files"])
        bench.work.mkdir()
        mybb = bench.in_process("mybb_sync")
        for base in ("replaced_tool", "plain", "floor"):
            with Stage(f"{tag} export: (a) vs {LABELS[base]}, {args.pairs} pairs"):
                result[f"export_vs_{base}"] = paired(args.pairs, mybb, bench.in_process(base))
        with Stage(f"{tag} export: (f) vs (b), {args.pairs} pairs"):
            result["floor_vs_replaced_tool"] = paired(
                args.pairs, bench.in_process("floor"), bench.in_process("replaced_tool")
            )
        cli = ["-m", "mybb_sync.cli", "export", "--all"]
        script = ["-m", "bench.oneshot", "replaced_tool"]
        with Stage(f"{tag} whole processes: mybb-sync export vs the (b) script, {args.pairs} pairs"):
            result["process_vs_replaced_tool"] = paired(
                args.pairs, bench.process(cli, "cli"), bench.process(script, "script")
            )
        with Stage(f"{tag} service start-up export vs the (b) script, {args.pairs} pairs"):
            result["service_vs_replaced_tool"] = paired(args.pairs, bench.service, bench.process(script, "script"))
        result["reexport"] = reexport_share(args, db, bench, result)
        if size <= args.strace_up_to:
            with Stage(f"{tag} syscalls per 1,000 files (strace -c -f)"):
                result["syscalls_per_1000_files"] = {p: bench.syscalls(p) for p in PATTERNS}
    finally:
        anyio.run(drop_board, db)
    return result


def reexport_share(args: argparse.Namespace, db: Database, bench: Paired, result: dict[str, Any]) -> dict[str, Any]:
    """A re-export of an unchanged root (exported by mybb-sync), after the racy window, as a share of a full one."""
    root = bench.work / "reexport"
    bench.roots.append(root)
    sync_disk()
    anyio.run(export_once, db, args.prefix, "mybb_sync", root)
    time.sleep(RACY_NS / 1e9 + 0.2)  # a later pass: stats younger than the racy window are never trusted
    anyio.run(reexport, db, args.prefix, root)  # the first pass may re-stamp files still too fresh to trust
    steady = anyio.run(reexport, db, args.prefix, root)
    full = result["export_vs_replaced_tool"]["a"]["export_s"]
    return {"seconds": round(steady["seconds"], 3), "share_of_full": round(steady["seconds"] / full, 4),
            "files_read": steady["files_read"], "written": steady["written"]}  # fmt: skip


def markdown(document: dict[str, Any]) -> str:
    lines = [
        "# mybb-sync paired export benchmark",
        "",
        f"`{document['command']}` - {document['generated']}; {document['pairs']} pairs A B A B ...; "
        f"load average at start {document['loadavg_at_start']}, at end {document['loadavg_at_end']}.",
        "",
        "| size (files) | comparison | median A/B | min-max | p25-p75 | A wall s | B wall s | A user/sys s | B user/sys s |",
        "|---|---|---:|---|---|---:|---:|---|---|",
    ]
    names = {
        "export_vs_replaced_tool": "export (a) / (b)",
        "export_vs_plain": "export (a) / (p)",
        "export_vs_floor": "export (a) / (f) floor",
        "floor_vs_replaced_tool": "floor (f) / (b)",
        "process_vs_replaced_tool": "`mybb-sync export` / (b) script",
        "service_vs_replaced_tool": "service start-up / (b) script",
    }
    for r in document["results"]:
        for key, name in names.items():
            c = r.get(key)
            if c is None:
                continue
            a, b, q = c["a"], c["b"], c["ratio"]
            lines.append(
                f"| {r['size']:,} ({r['files']:,}) | {name} | {q['median']:.2f} | {q['min']:.2f}-{q['max']:.2f} | "
                f"{q['p25']:.2f}-{q['p75']:.2f} | {a['wall']:.2f} | {b['wall']:.2f} | {a['user']:.2f}/{a['sys']:.2f} "
                f"| {b['user']:.2f}/{b['sys']:.2f} |"
            )
    lines += ["", "| size | peak RSS of the service's start-up export, MiB | re-export unchanged, share of full |",
              "|---|---:|---:|"]  # fmt: skip
    for r in document["results"]:
        rss = r.get("service_vs_replaced_tool", {}).get("a", {}).get("peak_rss_mib")
        share = r.get("reexport", {}).get("share_of_full")
        lines.append(f"| {r['size']:,} | {rss if rss is not None else '-'} | "
                     f"{'-' if share is None else f'{100 * share:.1f}%'} |")  # fmt: skip
    counted = [r for r in document["results"] if r.get("syscalls_per_1000_files")]
    if counted:
        lines += ["", "System calls per 1,000 files (`strace -c -f`, one run each):", "",
                  "| size | pattern | " + " | ".join(COUNTED) + " |", "|---|---|" + "---:|" * len(COUNTED)]  # fmt: skip
        for r in counted:
            for pattern, calls in r["syscalls_per_1000_files"].items():
                if calls is not None:
                    values = " | ".join(f"{calls[g]:,.0f}" for g in COUNTED)
                    lines.append(f"| {r['size']:,} | {LABELS[pattern]} | {values} |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace, server: Database, work: Path, sizes: list[int]) -> int:
    """Run the paired comparisons per size; write ``paired.json`` and ``paired.md`` to ``args.out``."""
    started_load = procfs.loadavg()
    results: list[dict[str, Any]] = []
    for size in sizes:
        results.append(run_size(args, server, work, size))
        write(args.out, document(results, args, work, started_load))  # each size's figures kept as it ends
    sys.stdout.write(markdown(document(results, args, work, started_load)))
    return 0


def document(results: list[dict[str, Any]], args: argparse.Namespace, work: Path, started_load: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "pairs": args.pairs,
        "machine": procfs.machine_facts(work),
        "loadavg_at_start": started_load,
        "loadavg_at_end": procfs.loadavg(),
        "results": results,
    }


def write(out: Path, doc: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "paired.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (out / "paired.md").write_text(markdown(doc), encoding="utf-8")
