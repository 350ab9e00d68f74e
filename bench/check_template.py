"""How long ``mybb_sync.security.check_template`` takes on hostile templates.

``python -m bench.check_template [--json] [--repeat 5] [--bar-ms 50]`` from the repository root.

MyBB's own three patterns backtrack quadratically (test 1's lazy ``.*?``, test 3's
lazy left-over scan) or exponentially (test 3's ``\\s*`` before a key class that
also takes spaces) on the inputs below; the port must not. Each input is at most
65,535 UTF-8 bytes, the most ``templates.template`` (TEXT) holds. The cases are
the golden data's ``big:`` inputs plus adversarial ones, each named for what it
attacks (``test1:``, ``test2:``, ``test3:``, ``port:`` for the port's own scans).

Every case is run once untimed, then ``--repeat`` times; the table shows the best
and the median. The exit status is 1 when a median exceeds ``--bar-ms``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mybb_sync.security import check_template

MAX_BYTES = 65_535
"""``templates.template`` is a TEXT column: the largest template MyBB can store."""

BAR_MS = 50.0

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mybb" / "check-template" / "cases.json"


def fill(unit: str, head: str = "", tail: str = "") -> str:
    """``head`` + as many ``unit`` as fit in :data:`MAX_BYTES` UTF-8 bytes + ``tail``."""
    room = MAX_BYTES - len((head + tail).encode())
    return head + unit * (room // len(unit.encode())) + tail


def adversarial_cases() -> list[tuple[str, str]]:
    """(name, template): inputs on which the original patterns backtrack, or the port scans, the most."""
    return [
        # test 1: every unquoted "$config[" starts a lazy .*? that walks the rest of its line
        ("test1:unquoted-mentions", fill("$config[x")),
        ("test1:unquoted-mentions-closed", fill("$config[x]")),
        ("test1:unquoted-mentions-then-join", fill("$config[x", tail="][")),
        ("test1:mentions-with-failing-joins", fill("$config[x]['")),
        ("test1:10-mentions-on-one-line", "$config[a] " * 10 + "x" * (MAX_BYTES - 110)),
        ("test1:mentions-one-per-line", fill("$config[x]['y\n")),
        ("test1:quoted-database-then-quote", fill("$config['database']['")),
        ("test1:one-mention-many-quoted-joins", fill("]['", "$config[x")),
        # the port's own test 1 scan: each "][" looks for a "]" to the end of its line
        ("port:one-mention-many-joins", fill("][", "$config['x")),
        ("port:joins-then-mentions", "][" * 16_000 + fill("$config[x")[: MAX_BYTES - 32_000]),
        ("port:joins-and-chains", fill("{$a][", "$config['x", "}")),
        ("port:joins-and-chains-after-a-spaced-bracket", fill("{$a][", "$config['x[ ", "}")),
        # test 2: "$", ASCII whitespace, "{"
        ("test2:dollar-then-whitespace", fill(" \t", "$", "x")),
        ("test2:dollars-and-spaces", fill("$ \t", tail="x")),
        # test 3: chains whose spaces \s* and the key class can share, failing at the end
        ("test3:spaced-keys-fail-late", fill("[ b]", "{$a", "x}")),
        ("test3:double-spaced-keys-fail-late", fill("[  b]", "{$a", "x}")),
        ("test3:tab-space-keys-fail-late", fill("[ \t b] \t", "{$a", "x}")),
        ("test3:20-spaced-keys-per-chain", fill("{$a" + "[ b]" * 20 + "x", tail="}")),
        ("test3:10-double-spaced-keys-per-chain", fill("{$a" + "[  b]" * 10 + "x", tail="}")),
        ("test3:open-bracket-of-spaces", fill(" ", "{$a[", "}")),
        ("test3:open-bracket-of-spaces-and-tabs", fill(" \t", "{$a[", "}")),
        ("test3:open-quoted-key", fill("b", "{$a['", "}")),
        # test 3: long chains (PCRE's JIT stack) and many chains (the lazy left-over scan)
        ("test3:bracket-chain", fill("[b]", "{$a", "}")),
        ("test3:bracket-chain-1500", "{$a" + "[b]" * 1_500 + "}"),
        ("test3:bracket-chain-1501", "{$a" + "[b]" * 1_501 + "}"),
        ("test3:arrow-chain", fill("->b", "{$a", "}")),
        ("test3:static-chain-fails", fill("::b", "{$a", "x}")),
        ("test3:many-opens", fill("{$a", tail="}")),
        ("test3:many-opens-after-a-spaced-bracket", fill("{$a", "[ ", "}")),
        ("test3:many-open-brackets", fill("{$a[", tail="}")),
        ("test3:many-opens-no-close", fill("{$a")),
        ("test3:many-opens-then-lines", fill("{$a\n", tail="}")),
        ("test3:many-short-chains", fill("{$a[b]", tail="}")),
        ("test3:many-spaced-chains", fill("{$a[ b]", tail="}")),
        ("test3:many-arrow-chains", fill("{$a->b", tail="}")),
        ("test3:many-double-dollar-chains", fill("{$$$$a", tail="}")),
        ("test3:many-allowed-chains", fill("{$a}")),
        ("test3:many-allowed-spaced-chains", fill("{$a[ b ] }")),
        ("test3:many-left-overs", fill("{$a[$b]")),
        ("test3:many-unclosed-keys", fill("{$a[ b", tail="}")),
        ("test3:many-chains-in-utf8", fill("é{$a[ b]", tail="}")),
        ("test3:dollars-in-a-key", fill("$", "{$a[", "b]}")),
    ]


def golden_cases() -> list[tuple[str, str]]:
    """The golden data's ``big:`` inputs (3-65 KB), with MyBB's own verdicts in the fixture."""
    cases = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return [(case["name"], case["template"]) for case in cases if case["name"].startswith("big:")]


def measure(template: str, repeat: int) -> tuple[float, float, str]:
    """(best ms, median ms, verdict) of ``repeat`` timed runs after one untimed run."""
    verdict = check_template(template)
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter_ns()
            check_template(template)
            times.append((time.perf_counter_ns() - start) / 1e6)
    finally:
        if gc_was_enabled:
            gc.enable()
    return min(times), statistics.median(times), "allowed" if verdict is None else verdict.threat.name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.check_template",
        description="Time mybb_sync.security.check_template on hostile templates of up to 65,535 bytes.",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case (default 5)")
    parser.add_argument("--bar-ms", type=float, default=BAR_MS, help=f"the most a median may take (default {BAR_MS:g})")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeat < 1:
        raise SystemExit("--repeat: give at least 1")
    rows = []
    for name, template in golden_cases() + adversarial_cases():
        size = len(template.encode("utf-8", "surrogateescape"))
        assert size <= MAX_BYTES, f"{name}: {size} bytes"
        best, median, verdict = measure(template, args.repeat)
        rows.append({"case": name, "bytes": size, "best_ms": best, "median_ms": median, "verdict": verdict})
    slowest = max(rows, key=lambda row: row["median_ms"])
    over = [row["case"] for row in rows if row["median_ms"] > args.bar_ms]
    if args.json:
        report = {"repeat": args.repeat, "bar_ms": args.bar_ms, "cases": rows, "slowest": slowest, "over_bar": over}
        print(json.dumps(report, indent=1))
    else:
        width = max(len(row["case"]) for row in rows)
        print(f"{'case':<{width}}  {'bytes':>6}  {'best ms':>8}  {'median ms':>9}  verdict")
        for row in rows:
            print(
                f"{row['case']:<{width}}  {row['bytes']:>6}  {row['best_ms']:>8.2f}  {row['median_ms']:>9.2f}  {row['verdict']}"
            )
        print(
            f"\nslowest: {slowest['case']} ({slowest['bytes']} bytes): median {slowest['median_ms']:.2f} ms, "
            f"best {slowest['best_ms']:.2f} ms of {args.repeat}; bar {args.bar_ms:g} ms"
        )
        if over:
            print(f"over the bar: {', '.join(over)}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
