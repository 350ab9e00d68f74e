"""Results of a benchmark run: sanity checks, results.json, results.md and PNG plots."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.report")

PATTERNS = ("mybb_sync", "replaced_tool", "naive_durable")
SHORT = {
    "mybb_sync": "(a) mybb-sync",
    "replaced_tool": "(b) MyBB_Playground's disk sync",
    "naive_durable": "(c) naive durable",
}


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def check(document: dict[str, Any]) -> list[str]:
    """Every figure present and sane; the list of what is not (empty: all good)."""
    problems: list[str] = []
    if not document.get("results"):
        return ["no results"]
    for r in document["results"]:
        tag = f"size {r.get('size')}"
        problems += [f"{tag}: {e}" for e in r.get("errors", [])]
        export = r.get("export", {})
        for p in PATTERNS:
            if not _positive(export.get(p, {}).get("files_per_s")):
                problems.append(f"{tag}: export {p} files/s missing or not positive")
        for key in ("ratio_a_b", "ratio_a_c"):
            if not _positive(export.get(key)):
                problems.append(f"{tag}: export {key} missing")
        if not _positive(r.get("reexport", {}).get("seconds")):
            problems.append(f"{tag}: re-export time missing")
        if not _positive(r.get("service_export", {}).get("seconds")):
            problems.append(f"{tag}: service start-up export time missing")
        if not _positive(r.get("startup_reconcile", {}).get("seconds")):
            problems.append(f"{tag}: start-up reconcile time missing")
        lat = r.get("edits", {}).get("latency_ms", {})
        if not all(_positive(lat.get(k)) for k in ("p50", "p95", "p99")):
            problems.append(f"{tag}: single-edit latency percentiles missing")
        elif not lat["p50"] <= lat["p95"] <= lat["p99"]:
            problems.append(f"{tag}: single-edit percentiles out of order")
        if r.get("edits", {}).get("lost", 1) != 0:
            problems.append(f"{tag}: single edits lost")
        burst = r.get("burst", {})
        if not _positive(burst.get("files_per_s")):
            problems.append(f"{tag}: burst files/s missing")
        if burst.get("lost", 1) != 0:
            problems.append(f"{tag}: burst lost {burst.get('lost')}")
        backlog = r.get("backlog", {})
        if backlog.get("lost", 1) != 0 or not backlog.get("files_per_s", 0) > 0:
            problems.append(f"{tag}: backlog lost {backlog.get('lost')} (rate {backlog.get('files_per_s')})")
        d2f = r.get("db_to_file", {})
        if d2f.get("status") == "missed":
            problems.append(f"{tag}: database -> file: {d2f.get('note')}")
        elif d2f.get("status") == "ok":
            dl = d2f.get("latency_ms", {})
            if not (_positive(dl.get("p50")) and dl["p50"] <= dl["p95"] <= dl["p99"]):
                problems.append(f"{tag}: database -> file percentiles missing or out of order")
        elif d2f.get("status") != "unsupported" or not d2f.get("note"):
            problems.append(f"{tag}: database -> file figure missing")
        for key, where in (("service_export", "peak_rss_mib"), ("burst", "peak_rss_mib")):
            if not _positive(r.get(key, {}).get(where)):
                problems.append(f"{tag}: {key} peak RSS missing")
        poll = r.get("poll", {})
        indexed = r.get("poll_indexed", {})
        if not all(
            _positive(p.get(k, {}).get("p50")) for p in (poll, indexed) for k in ("idle_ms", "first_after_save_ms")
        ):
            problems.append(f"{tag}: poll cost missing")
        idle = r.get("idle", {}).get("cpu_percent")
        if not (isinstance(idle, (int, float)) and 0 <= idle <= 200):
            problems.append(f"{tag}: idle CPU missing")
    return problems


def _fmt(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}{suffix}"
    return str(value)


def _get(r: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(r, dict):
            return None
        r = r.get(key)  # type: ignore[assignment]
    return r


_ENGINE_NAMES = {"mariadb": "MariaDB", "mysql": "MariaDB", "postgresql": "PostgreSQL", "sqlite": ""}


def markdown(document: dict[str, Any]) -> str:
    results = document["results"]
    m = document.get("machine", {})
    fs = m.get("filesystem", {})
    lines = [
        "# mybb-sync benchmark",
        "",
        f"`{document['command']}` - {document['generated']}, {document['total_seconds']:.0f}s in total.",
        "",
        f"Machine: {m.get('cores')} cores ({m.get('cpu_model')}), {m.get('memory_gib')} GiB, kernel {m.get('kernel')}, "
        f"Python {m.get('python')}, {_ENGINE_NAMES.get(m.get('engine', 'mariadb'), 'MariaDB')} {m.get('mariadb')}{' (private, throwaway)' if m.get('mariadb_private') else ''}, "
        f"root on {fs.get('type')} ({fs.get('device')}), mybb-sync {m.get('mybb_sync')}. "
        f"Load average (1/5/15 min) at start {m.get('loadavg_at_start')}, at end {m.get('loadavg_at_end')}.",
        "",
    ]
    head = "| | " + " | ".join(f"{r['size']:,} masters" for r in results) + " |"
    lines += [head, "|---|" + "---:|" * len(results)]

    def row(label: str, fn: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in results) + " |")

    row("files (bytes)", lambda r: f"{_fmt(r.get('files'))} ({_fmt((r.get('bytes') or 0) / 2**20, 1)} MiB)")
    for p in PATTERNS:
        row(f"export {SHORT[p]}, files/s", lambda r, p=p: _fmt(_get(r, "export", p, "files_per_s")))
    row("ratio (a)/(b)", lambda r: _fmt(_get(r, "export", "ratio_a_b"), 2))
    row("ratio (a)/(c)", lambda r: _fmt(_get(r, "export", "ratio_a_c"), 2))
    row(
        "re-export unchanged, s (share of full export)",
        lambda r: (
            f"{_fmt(_get(r, 'reexport', 'seconds'), 3)} ({_fmt(100 * (_get(r, 'reexport', 'ratio_to_full') or float('nan')), 1)}%)"
        ),
    )
    row("... files it read", lambda r: _fmt(_get(r, "reexport", "files_read")))
    row(
        "re-export again, s (share of full export)",
        lambda r: (
            f"{_fmt(_get(r, 'reexport', 'second_pass_seconds'), 3)} ({_fmt(100 * (_get(r, 'reexport', 'second_pass_ratio_to_full') or float('nan')), 1)}%)"
        ),
    )
    row("... files it read", lambda r: _fmt(_get(r, "reexport", "second_pass_files_read")))
    row(
        "service start-up export into empty root, s (files/s)",
        lambda r: f"{_fmt(_get(r, 'service_export', 'seconds'), 2)} ({_fmt(_get(r, 'service_export', 'files_per_s'))})",
    )
    row(
        "start-up reconcile, unchanged root, s to `watching`",
        lambda r: _fmt(_get(r, "startup_reconcile", "seconds"), 2),
    )
    row(
        "... of which interpreter + imports, s",
        lambda r: _fmt(_get(r, "startup_reconcile", "process_overhead_seconds"), 2),
    )
    for q in ("p50", "p95", "p99"):
        row(f"single edit -> DB, {q}, ms", lambda r, q=q: _fmt(_get(r, "edits", "latency_ms", q), 1))
    row(
        "... of which the service's database round trips, p50, ms",
        lambda r: _fmt(_get(r, "edits", "service_db_ms", "p50"), 1),
    )
    row(
        "single edits measured / lost",
        lambda r: f"{_fmt(_get(r, 'edits', 'measured'))} / {_fmt(_get(r, 'edits', 'lost'))}",
    )
    row("burst: files", lambda r: _fmt(_get(r, "burst", "files")))
    row("burst: rename all into place, s", lambda r: _fmt(_get(r, "burst", "rename_seconds"), 3))
    row("burst: last rename -> all in DB, s", lambda r: _fmt(_get(r, "burst", "drain_seconds"), 3))
    row("burst: files/s (first rename -> all in DB)", lambda r: _fmt(_get(r, "burst", "files_per_s")))
    row("burst: lost", lambda r: _fmt(_get(r, "burst", "lost")))
    row("backlog found at start-up: files", lambda r: _fmt(_get(r, "backlog", "files")))
    row(
        "backlog: import files/s (median of the trials: start-up minus the unchanged start-up before it)",
        lambda r: _fmt(_get(r, "backlog", "files_per_s")),
    )
    row("backlog: lost", lambda r: _fmt(_get(r, "backlog", "lost")))

    def d2f(r: dict[str, Any], q: str) -> str:
        status = _get(r, "db_to_file", "status")
        if status in ("unsupported", "missed"):
            return status
        return _fmt(_get(r, "db_to_file", "latency_ms", q), 1)

    row("database -> file, p50, ms", lambda r: d2f(r, "p50"))
    row("database -> file, p95, ms", lambda r: d2f(r, "p95"))
    row(
        "database -> file, 2nd save with the same dateline second",
        lambda r: str(_get(r, "db_to_file", "same_second", "outcome") or "-"),
    )
    row(
        "poll, nothing changed, p50 / p99, ms",
        lambda r: f"{_fmt(_get(r, 'poll', 'idle_ms', 'p50'), 2)} / {_fmt(_get(r, 'poll', 'idle_ms', 'p99'), 2)}",
    )
    row("poll that finds a save, p50, ms", lambda r: _fmt(_get(r, "poll", "first_after_save_ms", "p50"), 1))
    row("polls in the seconds after a save, p50, ms", lambda r: _fmt(_get(r, "poll", "following_ms", "p50"), 1))
    row("with the poll index: poll that finds a save / following, p50, ms",
        lambda r: f"{_fmt(_get(r, 'poll_indexed', 'first_after_save_ms', 'p50'), 1)} / "
                  f"{_fmt(_get(r, 'poll_indexed', 'following_ms', 'p50'), 1)}")  # fmt: skip
    row("peak RSS during start-up export, MiB", lambda r: _fmt(_get(r, "service_export", "peak_rss_mib"), 1))
    row("peak RSS during burst, MiB", lambda r: _fmt(_get(r, "burst", "peak_rss_mib"), 1))
    row("idle CPU, % of one core", lambda r: _fmt(_get(r, "idle", "cpu_percent"), 2))
    lines.append("")
    notes = sorted({n for r in results for n in r.get("notes", [])})
    notes += sorted(
        {f"database -> file: {_get(r, 'db_to_file', 'note')}" for r in results if _get(r, "db_to_file", "note")}
    )
    lines += [
        "Notes:",
        "",
        "- Export timings include streaming the rows from the database through the same store; between "
        "patterns `sync` runs untimed. Each pattern runs "
        + str(document.get("config", {}).get("repeat", 1))
        + " time(s) per size in rotating order; the table shows the median.",
        "- Single-edit latency: from the return of `rename()` of the changed file to the arrival of the service's "
        "`imported <path>` log line (logged after the write and its read-back), then confirmed in the database.",
        "- Burst: the changed contents are first written to ignored dotfile temps (untimed), then renamed into "
        "place as fast as possible; every change is confirmed in the database afterwards (lost = not there).",
        "- Re-export runs twice: the first pass after an export may read and re-stamp files still inside the "
        "racy-clean window; the second is the steady state.",
        "- Service figures include starting the Python interpreter (see the interpreter + imports row).",
        "- Idle CPU: utime+stime of the service from /proc/<pid>/stat over the idle window.",
        "- Poll cost: client wall time of one `Poller.poll` (its queries' database time plus round trips): "
        "idle polls, then after each Admin CP style UPDATE the poll that finds it and the polls of the next seconds; "
        "once as MyBB installs the board, once with the poll index (`mybb-sync index --add`).",
    ]
    lines += [f"- {n}" for n in notes]
    findings = sorted({f"{f}" for r in results for f in r.get("findings", [])})
    if findings:
        lines += ["", "Findings (behaviour worth a look; not failures of the run):", ""] + [f"- {f}" for f in findings]
    if document.get("problems"):
        lines += ["", "Problems:", ""] + [f"- {p}" for p in document["problems"]]
    return "\n".join(lines) + "\n"


def plots(document: dict[str, Any], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not importable: no plots (pip install -e '.[bench]')")
        return []
    written: list[Path] = []
    results = [r for r in document["results"] if "export" in r]
    if results:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for p in PATTERNS:
            xs = [r["export"][p]["files"] for r in results]
            ys = [r["export"][p]["files_per_s"] for r in results]
            ax.plot(xs, ys, marker="o", label=SHORT[p])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("files in the board")
        ax.set_ylabel("files/s (higher is better)")
        ax.set_title("Full export throughput by write pattern")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / "export_throughput.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    edits = [r for r in document["results"] if r.get("edits", {}).get("samples_ms")]
    if edits:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in edits:
            samples = sorted(r["edits"]["samples_ms"])
            ys = [(i + 1) / len(samples) for i in range(len(samples))]
            ax.step(samples, ys, where="post", label=f"{r['size']:,} masters")
        ax.set_xscale("log")
        ax.set_xlabel("rename -> row committed (ms)")
        ax.set_ylabel("fraction of edits")
        ax.set_title("Single-edit latency CDF")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / "edit_latency_cdf.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def write_all(document: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    md_path = out / "results.md"
    md_path.write_text(markdown(document), encoding="utf-8")
    paths = [json_path, md_path]
    try:
        paths += plots(document, out)
    except Exception:  # noqa: BLE001 - a plotting failure must not lose the numbers
        log.exception("plotting failed")
    return paths
