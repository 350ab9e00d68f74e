"""Batches handled as they come, a few at a time, from a bounded stream."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.abc

from .errors import reported_error

T = TypeVar("T")


async def in_parallel(
    batches: AsyncIterable[T], handle: Callable[[T], Awaitable[None]], workers: int = 2, *, ready: int = 2
) -> None:
    """Handle batches as they come, ``workers`` at a time, so that one's database round
    trips overlap another's file work; up to ``ready`` batches wait made in advance
    (0: the next is made once a worker has taken the last, from what is known then).
    A mybb-sync error (the database went away) surfaces as itself, not as an
    exception group, so callers can catch it by type.
    """
    send, receive = anyio.create_memory_object_stream[T](ready)

    async def produce() -> None:
        async with send:
            async for batch in batches:
                await send.send(batch)

    async def consume(stream: anyio.abc.ObjectReceiveStream[T]) -> None:
        async with stream:
            async for batch in stream:
                await handle(batch)

    try:
        async with anyio.create_task_group() as tg, receive:
            tg.start_soon(produce)
            for _ in range(workers):
                tg.start_soon(consume, receive.clone())
    except BaseExceptionGroup as group:
        error = reported_error(group)
        if error is None:
            raise
        raise error from None
