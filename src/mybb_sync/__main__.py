"""``python -m mybb_sync``: the same as the ``mybb-sync`` command."""

from .cli import main

raise SystemExit(main())
