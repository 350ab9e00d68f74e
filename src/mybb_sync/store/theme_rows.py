"""The theme and stylesheet rows: read, and written from a stylesheet SavePlan."""

from __future__ import annotations

from collections.abc import Sequence

from ..rows import Stylesheet, StylesheetUpdate, Theme, ThemeUpdate
from .sqlbase import SQLBase


class ThemeRows(SQLBase):
    """The queries on the themes, themestylesheets and (for the default theme) datacache tables."""

    async def themes(self) -> list[Theme]:
        rows = await self._fetch(
            f"SELECT tid, name, pid, def, properties, stylesheets, allowedgroups FROM {self._t['themes']} ORDER BY tid"
        )
        return [Theme(int(r[0]), r[1], int(r[2]), int(r[3]), r[4], r[5], r[6]) for r in rows]

    async def stylesheets(self) -> list[Stylesheet]:
        rows = await self._fetch(
            "SELECT sid, name, tid, attachedto, stylesheet, cachefile, lastmodified "
            f"FROM {self._t['themestylesheets']} ORDER BY tid, sid"
        )
        return [Stylesheet(int(r[0]), r[1], int(r[2]), r[3], r[4], r[5], int(r[6])) for r in rows]

    # -- writes (the Admin CP's save, applied from a SavePlan) -------------------

    async def save_stylesheet_rows(self, inserts: Sequence[Stylesheet], updates: Sequence[StylesheetUpdate]) -> None:
        table = self._t["themestylesheets"]
        for row in inserts:
            await self._execute(
                f"INSERT INTO {table} (sid, name, tid, attachedto, stylesheet, cachefile, lastmodified) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (row.sid, row.name, row.tid, row.attachedto, row.stylesheet, row.cachefile, row.lastmodified),
            )
        for update in updates:
            await self._execute(
                f"UPDATE {table} SET stylesheet = %s, cachefile = %s, lastmodified = %s WHERE sid = %s",
                (update.stylesheet, update.cachefile, update.lastmodified, update.sid),
            )

    async def set_stylesheet_cachefile(self, sid: int, cachefile: str) -> None:
        await self._execute(f"UPDATE {self._t['themestylesheets']} SET cachefile = %s WHERE sid = %s", (cachefile, sid))

    async def set_stylesheet_attachments(self, attachments: Sequence[tuple[int, str]]) -> None:
        """Edit Stylesheet Properties without a rename: only ``attachedto`` changes (not ``lastmodified``)."""
        for sid, attachedto in attachments:
            await self._execute(
                f"UPDATE {self._t['themestylesheets']} SET attachedto = %s WHERE sid = %s", (attachedto, sid)
            )

    async def save_theme_lists(self, themes: Sequence[ThemeUpdate], default_theme: str | None) -> None:
        for theme in themes:
            await self._execute(
                f"UPDATE {self._t['themes']} SET properties = %s, stylesheets = %s WHERE tid = %s",
                (theme.properties, theme.stylesheets, theme.tid),
            )
        if default_theme is not None:
            await self._execute(
                f"UPDATE {self._t['datacache']} SET cache = %s WHERE title = %s", (default_theme, "default_theme")
            )
