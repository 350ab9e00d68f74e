"""Smoke test of the benchmark harness: ``python -m bench`` on a tiny board, every figure present and sane.

The harness runs in a subprocess from the repository root, against the
private throwaway MariaDB it starts itself, or the server
``MYBB_SYNC_TEST_DSN`` names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EDITS, BURST = 20, 100


def _server_args() -> list[str]:
    dsn = os.environ.get("MYBB_SYNC_TEST_DSN")
    if dsn:
        return ["--db", dsn]
    if not (shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()):
        pytest.fail(
            "the benchmark needs MariaDB: install mariadb-server (mariadbd, mariadb-install-db) "
            "or set MYBB_SYNC_TEST_DSN=mysql://user:password@host:port/db",
            pytrace=False,
        )
    return []


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    work = REPO / "bench"  # the harness's default: roots on the repository's disk (short enough for unix sockets)
    before = set(work.glob(".work-*"))
    command = [
        sys.executable, "-m", "bench", "--quick", "--sizes", "200", "--edits", str(EDITS), "--burst", str(BURST),
        "--idle-seconds", "2", "--db-edits", "3", "--db-timeout", "3", "--idle-polls", "20", "--poll-saves", "1",
        "--backlog-trials", "2", "--out", str(out),
        *_server_args(),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-6000:]}"
    assert "[200 masters]" in proc.stderr  # progress lines go to stderr

    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["problems"] == []
    machine = doc["machine"]
    assert machine["cores"] >= 1
    assert machine["filesystem"]["type"] not in ("", "unknown")
    assert machine["python"] and machine["kernel"] and machine["mariadb"]
    assert doc["config"]["quick"] is True and doc["config"]["sizes"] == [200]

    [r] = doc["results"]
    assert r["size"] == 200 and r["errors"] == []
    assert r["files"] > 200 and r["bytes"] > 0

    export = r["export"]
    for pattern in ("mybb_sync", "replaced_tool", "naive_durable"):
        assert _positive(export[pattern]["files_per_s"]), pattern
        assert _positive(export[pattern]["seconds"]), pattern
        assert export[pattern]["files"] == r["files"], pattern  # same data for every pattern
    assert export["ratio_a_b"] == pytest.approx(
        export["mybb_sync"]["files_per_s"] / export["replaced_tool"]["files_per_s"], rel=0.01
    )
    assert export["ratio_a_c"] == pytest.approx(
        export["mybb_sync"]["files_per_s"] / export["naive_durable"]["files_per_s"], rel=0.01
    )

    assert _positive(r["reexport"]["seconds"]) and _positive(r["reexport"]["ratio_to_full"])
    assert r["reexport"]["written"] == 0 and r["reexport"]["unchanged"] == r["files"]

    assert _positive(r["service_export"]["seconds"]) and _positive(r["service_export"]["files_per_s"])
    assert r["service_export"]["exit_code"] == 0
    assert _positive(r["startup_reconcile"]["seconds"])
    assert r["startup_reconcile"]["imports_during_startup"] == 0

    edits = r["edits"]
    assert edits["requested"] == EDITS and edits["measured"] == EDITS and edits["lost"] == 0
    lat = edits["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert len(edits["samples_ms"]) == EDITS

    burst = r["burst"]
    assert burst["files"] == BURST and burst["lost"] == 0
    assert _positive(burst["files_per_s"]) and burst["drain_seconds"] >= 0
    backlog = r["backlog"]
    assert backlog["files"] > 0 and backlog["lost"] == 0 and _positive(backlog["files_per_s"])
    assert len(backlog["trials"]) == 2 and all(
        t["lost"] == 0 and t["unchanged_startup_imports"] == 0 for t in backlog["trials"]
    )

    d2f = r["db_to_file"]
    if d2f["status"] == "ok":
        assert 0 < d2f["latency_ms"]["p50"] <= d2f["latency_ms"]["p95"] <= d2f["latency_ms"]["p99"]
    else:
        assert d2f["status"] == "unsupported" and d2f["note"]

    for poll in (r["poll"], r["poll_indexed"]):
        assert poll["saves"] == 1 and poll["first_poll_missed"] == 0
        assert 0 < poll["idle_ms"]["p50"] <= poll["idle_ms"]["p99"]
        assert _positive(poll["first_after_save_ms"]["p50"]) and _positive(poll["following_ms"]["p50"])

    assert _positive(r["service_export"]["peak_rss_mib"]) and _positive(r["burst"]["peak_rss_mib"])
    assert 0 <= r["idle"]["cpu_percent"] <= 100
    assert r["service"]["exit_code"] == 0

    md = (out / "results.md").read_text(encoding="utf-8")
    assert "| export (a) mybb-sync, files/s |" in md and "| burst: lost | 0 |" in md
    assert "200 masters" in md
    assert set(work.glob(".work-*")) <= before, "the harness left its work folder behind"


def test_paired_run_reports_median_ratios_spreads_and_syscalls(tmp_path: Path) -> None:
    out = tmp_path / "out"
    work = REPO / "bench"
    before = set(work.glob(".work-*"))
    command = [sys.executable, "-m", "bench", "--paired", "--sizes", "200", "--pairs", "2", "--out", str(out),
               *_server_args()]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-6000:]}"

    [r] = json.loads((out / "paired.json").read_text(encoding="utf-8"))["results"]
    for key in ("export_vs_replaced_tool", "export_vs_plain", "process_vs_replaced_tool", "service_vs_replaced_tool"):
        c = r[key]
        assert len(c["ratios"]) == 2, key  # A B A B: two pairs
        q = c["ratio"]
        assert 0 < q["min"] <= q["p25"] <= q["median"] <= q["p75"] <= q["max"], key
        assert all(_positive(c[side]["wall"]) and c[side]["user"] >= 0 and c[side]["sys"] >= 0 for side in "ab")
    assert _positive(r["service_vs_replaced_tool"]["a"]["peak_rss_mib"])
    assert r["reexport"]["written"] == 0 and r["reexport"]["share_of_full"] > 0
    if shutil.which("strace"):
        calls = r["syscalls_per_1000_files"]
        assert calls["replaced_tool"]["rename"] >= 1000 and calls["plain"]["rename"] == 0
        assert calls["mybb_sync"]["fsync/syncfs"] > 0 and calls["replaced_tool"]["fsync/syncfs"] == 0
    assert "| export (a) / (b) |" in (out / "paired.md").read_text(encoding="utf-8")
    assert set(work.glob(".work-*")) <= before, "the harness left its work folder behind"
