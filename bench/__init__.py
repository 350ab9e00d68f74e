"""The mybb-sync benchmark harness: ``python -m bench --quick`` from the repository root.

Scenarios (see ``bench/harness.py``): export throughput against two baseline
write patterns, re-export and start-up reconcile of an unchanged root,
single-edit latency, burst import, database -> file latency, and the
service's peak RSS and idle CPU. Results go to ``bench/results/`` (JSON,
Markdown, PNG plots when matplotlib is importable).
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark with command-line ``argv`` (without the program name); returns the exit code."""
    from .harness import main as _main

    return _main(argv)
