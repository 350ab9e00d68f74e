"""One export of a whole board as a process of its own: ``python -m bench.oneshot PATTERN ROOT``.

The board comes from the environment the CLI reads (``MYBB_SYNC_DB``,
``MYBB_SYNC_PREFIX``). ``replaced_tool`` is the small script the paired
benchmark runs against ``mybb-sync export`` as a whole process (start-up
included): fetch every row through the same store, then per file
``<name>.tmp`` + rename, no fsync. ``plain`` writes each file in place (no
temp, no rename, no fsync). ``mybb_sync`` runs the ``Exporter`` in this
process without the CLI around it: what ``strace -c -f`` counts the system
calls of, per pattern.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from mybb_sync.config import Database

from .harness import export_once
from .paired import PATTERNS


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in PATTERNS:
        sys.stderr.write(f"usage: python -m bench.oneshot {{{','.join(PATTERNS)}}} ROOT\n")
        return 2
    db = Database.parse(os.environ["MYBB_SYNC_DB"])
    anyio.run(export_once, db, os.environ.get("MYBB_SYNC_PREFIX", "mybb_"), argv[0], Path(argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
