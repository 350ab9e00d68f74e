"""A stop and the writes in hand: finished if they can be, interrupted if they hang, abandoned
if even that fails, so that a stop always ends within seconds."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.lowlevel

log = logging.getLogger(__name__)

STOP_GRACE = 2.5  # seconds a stop waits for the writes in hand before interrupting them
STOP_ABANDON = 1.0  # then seconds it waits for the interrupted writes before abandoning them
T = TypeVar("T")


async def finish_within(
    work: Callable[[], Awaitable[T]],
    interrupt: Callable[[], Awaitable[None]] | None,
    grace: float = STOP_GRACE,
    abandon: float = STOP_ABANDON,
) -> T:
    """Run ``work`` shielded from cancellation, but not for ever.

    Once cancelled (a stop, or a sibling's failure: either way its caller is done
    waiting), it gets ``grace`` seconds to finish; then ``interrupt`` aborts its
    statements (a write waiting for a lock held elsewhere would keep a SIGTERM
    waiting for as long as the lock is held), and after ``abandon`` more seconds it
    is cancelled anyway. Once a cancelled work is over, the cancellation goes on
    (its own error, such as the interrupted statement's, gives way to it). What it
    left undone, the next start finds: the state store keeps the old bases and the
    intents.
    """
    outcome: list[T] = []
    failure: list[Exception] = []
    finished = anyio.Event()
    shield = anyio.CancelScope(shield=True)

    async def end_overdue() -> None:
        """The work outlived the grace period: interrupt it, then cancel it if still running."""
        log.warning(
            "stopping: a database write still runs after %.1fs (a lock held elsewhere?): interrupting it", grace
        )
        try:
            with anyio.move_on_after(abandon):
                if interrupt is not None:
                    try:
                        await interrupt()
                    except Exception as exc:  # noqa: BLE001 - the deadline matters more
                        log.warning("could not interrupt it: %s", exc)
                await finished.wait()
        finally:
            shield.cancel()  # nothing if it finished

    async def guard() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():  # a stop, or the work is over
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(grace):
                    await finished.wait()
                if not finished.is_set():
                    await end_overdue()
            raise

    async with anyio.create_task_group() as tg:
        tg.start_soon(guard)
        with shield:
            try:
                outcome.append(await work())
            except Exception as exc:  # raised below, not as a group
                failure.append(exc)
            finally:
                finished.set()
        tg.cancel_scope.cancel()
    if failure or not outcome:  # not outcome: abandoned, which only a cancellation does
        await anyio.lowlevel.checkpoint_if_cancelled()
    if failure:
        raise failure[0]
    return outcome[0]
