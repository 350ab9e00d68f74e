"""The private corners of our drivers that the code relies on, one adapter each.

Both are worth it: aiomysql's own escaping is most of a bulk import's client
time, and asyncinotify hands out one event per await where the service wants
every event of one kernel read at once (a burst then costs one batch). Both
are guarded three ways: an upper version bound in ``pyproject.toml``, a
check here that raises at import with a clear message if the attribute is
gone, and ``tests/test_compat.py``, which exercises each against the real library.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiomysql
from asyncinotify import Event, Inotify

ESCAPE_HOOK = "_escape_args"
"""aiomysql.Cursor's method that turns a statement's parameters into SQL literals."""

INOTIFY_BUFFER = "_events"
"""The list in which asyncinotify.Inotify keeps the events of a read it has not handed out yet."""


class DriverChanged(ImportError):
    """A library no longer has the private attribute mybb-sync relies on: pin the older version."""


if not callable(getattr(aiomysql.Cursor, ESCAPE_HOOK, None)):
    raise DriverChanged(f"aiomysql.Cursor.{ESCAPE_HOOK} is gone: install aiomysql<0.4 (see pyproject.toml)")


def cursor_with_escaping(escape: Callable[[aiomysql.Cursor, Any, Any], Any | None]) -> type[aiomysql.Cursor]:
    """An aiomysql cursor class whose parameters go through ``escape(cursor, args, conn)`` first;
    where it returns None, aiomysql's own escaping is used."""

    def _escape_args(self: aiomysql.Cursor, args: Any, conn: Any) -> Any:
        done = escape(self, args, conn)
        return done if done is not None else getattr(super(cls, self), ESCAPE_HOOK)(args, conn)

    cls = type("Cursor", (aiomysql.Cursor,), {ESCAPE_HOOK: _escape_args, "__doc__": escape.__doc__})
    return cls


def take_buffered(inotify: Inotify) -> list[Event]:
    """The events asyncinotify read from the kernel but has not handed out; it forgets them."""
    events = getattr(inotify, INOTIFY_BUFFER, None)
    if not isinstance(events, list):
        raise DriverChanged(
            f"asyncinotify.Inotify.{INOTIFY_BUFFER} is gone: install asyncinotify<5 (see pyproject.toml)"
        )
    setattr(inotify, INOTIFY_BUFFER, [])
    return events
