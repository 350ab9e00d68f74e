"""``python -m bench``: see :mod:`bench.harness`."""

from __future__ import annotations

from .harness import main

if __name__ == "__main__":
    raise SystemExit(main())
