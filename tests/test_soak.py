"""The short soak (60 s by default, ``MYBB_SYNC_SOAK_SECONDS`` to change): runs on every CI submission.

The long one is ``python tests/soak.py --minutes 30``; see the README's reliability section.
"""

from __future__ import annotations

import os
import random

import pytest

from soak import soak


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
async def test_a_soak_with_random_edits_and_faults_keeps_every_invariant(engine: str) -> None:
    seed = int(os.environ.get("MYBB_SYNC_SOAK_SEED", random.randrange(100_000)))
    seconds = float(os.environ.get("MYBB_SYNC_SOAK_SECONDS", "60"))
    summary = await soak(seed, seconds, engine=engine)
    print(summary.line())
    assert summary.violations == [], f"replay with: python tests/soak.py --engine {engine} --seed {seed}\n" + "\n".join(
        summary.violations
    )
    assert sum(summary.operations.values()) > 50, summary.line()
    assert summary.faults, summary.line()
