"""A stop and the writes in hand (``stopping.finish_within``): finished if they can be, interrupted
if they hang, abandoned if even that fails, so that a SIGTERM always ends within 5 s."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import pytest

from mybb_sync.errors import DatabaseUnavailable
from mybb_sync.stopping import finish_within

pytestmark = pytest.mark.anyio


class Statement:
    """A stand-in for a database write: runs until released; ``interrupt`` releases it with
    the error a KILLed statement raises."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.released = anyio.Event()
        self.interrupts = 0
        self.outcome: str | None = None

    async def run(self) -> str:
        self.started.set()
        await self.released.wait()
        if self.interrupts:
            self.outcome = "interrupted"
            raise DatabaseUnavailable("database write interrupted")
        self.outcome = "written"
        return "written"

    async def interrupt(self) -> None:
        self.interrupts += 1
        self.released.set()


async def stop_during(statement: Statement, interrupt: Callable[[], Awaitable[None]], **timing: float) -> float:
    """Run the statement under ``finish_within``, stop once it runs; the seconds the stop took.
    The stop's cancellation must be what ends it (an error escaping would fail the task group)."""
    with anyio.fail_after(5):  # a plain shield would wait for ever
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(finish_within, statement.run, interrupt, **timing))
            await statement.started.wait()
            stopped = time.monotonic()
            tg.cancel_scope.cancel()
    return time.monotonic() - stopped


async def test_a_stop_lets_the_write_in_hand_finish() -> None:
    statement = Statement()
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(finish_within, statement.run, statement.interrupt, grace=30))
        await statement.started.wait()
        tg.cancel_scope.cancel()  # the stop
        statement.released.set()  # the write ends by itself, well within the grace period
    assert statement.outcome == "written"
    assert statement.interrupts == 0


async def test_a_write_still_running_after_the_grace_period_is_interrupted() -> None:
    statement = Statement()
    took = await stop_during(statement, statement.interrupt, grace=0.05)
    assert (statement.outcome, statement.interrupts) == ("interrupted", 1)
    assert 0.05 <= took < 1


async def test_a_write_the_interrupt_cannot_end_is_abandoned() -> None:
    statement = Statement()
    calls: list[bool] = []

    async def unheard() -> None:  # the server cannot be reached to KILL the statement
        calls.append(True)

    took = await stop_during(statement, unheard, grace=0.05, abandon=0.05)
    assert calls == [True]
    assert statement.outcome is None  # cancelled, never released
    assert 0.1 <= took < 1


async def test_an_interrupt_that_fails_does_not_hold_the_stop_up() -> None:
    statement = Statement()

    async def failing() -> None:
        raise OSError("no route to host")

    took = await stop_during(statement, failing, grace=0.05, abandon=0.05)
    assert statement.outcome is None
    assert took < 1


async def test_without_a_stop_a_slow_write_is_never_interrupted() -> None:
    statement = Statement()

    async def slow() -> str:
        await anyio.sleep(0.1)  # a write that takes longer than the grace period (not synchronisation)
        return "written"

    assert await finish_within(slow, statement.interrupt, grace=0.01, abandon=0.01) == "written"
    assert statement.interrupts == 0


async def test_an_error_of_the_write_comes_out_unchanged_and_at_once() -> None:
    async def refused() -> str:
        raise DatabaseUnavailable("database unavailable: gone")

    statement = Statement()
    with anyio.fail_after(1), pytest.raises(DatabaseUnavailable, match="gone"):
        await finish_within(refused, statement.interrupt, grace=30)
    assert statement.interrupts == 0
