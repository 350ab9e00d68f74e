"""Second looks: one task fires each path once its delay has passed, earliest first."""

from __future__ import annotations

import anyio
import pytest

from mybb_sync.pending import Pending
from mybb_sync.timers import Timers

pytestmark = pytest.mark.anyio


async def test_a_look_fires_after_its_delay_and_is_counted_until_then() -> None:
    pending, fired = Pending(), anyio.Event()
    timers = Timers(pending, fired.set)
    async with anyio.create_task_group() as tg:
        tg.start_soon(timers.run)
        await anyio.wait_all_tasks_blocked()
        started = anyio.current_time()
        timers.add("a.html", 0.2)
        assert timers.outstanding == 1 and not pending
        with anyio.fail_after(5):
            await fired.wait()
        assert anyio.current_time() - started >= 0.2
        assert pending.paths == {"a.html"} and timers.outstanding == 0 and timers.last_seq == pending.seq
        tg.cancel_scope.cancel()


async def test_an_earlier_deadline_added_later_fires_first() -> None:
    pending, fired = Pending(), anyio.Event()
    timers = Timers(pending, fired.set)
    async with anyio.create_task_group() as tg:
        tg.start_soon(timers.run)
        await anyio.wait_all_tasks_blocked()
        timers.add("late.html", 5)
        timers.add("soon.html", 0.05)
        with anyio.fail_after(3):
            await fired.wait()
        assert pending.paths == {"soon.html"} and timers.outstanding == 1
        tg.cancel_scope.cancel()


async def test_no_look_is_scheduled_while_no_service_runs() -> None:
    timers = Timers(Pending(), lambda: None)
    timers.add("a.html", 0.1)
    assert timers.outstanding == 0
