"""The queries of theme packages: what Export Theme reads and Import Theme inserts."""

from __future__ import annotations

from collections.abc import Sequence

from ..rows import Stylesheet
from . import TemplateRow
from .sqlbase import SQLBase, chunks


class ThemePackages(SQLBase):
    """New themes, template sets and their rows, as the Admin CP's theme import inserts them."""

    async def theme_named(self, name: str) -> int | None:
        """The tid of a theme of that name, compared as the database compares (MySQL: by its
        collation, so case-blind, as the Admin CP's check), or None."""
        rows = await self._fetch(f"SELECT tid FROM {self._t['themes']} WHERE name = %s LIMIT 1", (name,))
        return int(rows[0][0]) if rows else None

    async def set_own_templates(self, sid: int) -> list[TemplateRow]:
        """The set's own rows in the table's order: MyBB's export query, which has no ORDER BY
        (MyISAM: insertion order), so the file lists them as the Admin CP's would."""
        rows = await self._fetch(
            f"SELECT tid, sid, title, template, version, status, dateline FROM {self._t['templates']} WHERE sid = %s",
            (sid,),
        )
        return [TemplateRow(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], int(r[6])) for r in rows]

    async def add_template_set(self, title: str) -> int:
        [sid] = await self._insert_ids(f"INSERT INTO {self._t['templatesets']} (title) VALUES (%s)", (title,), 1, "sid")
        return sid

    async def add_set_templates(self, sid: int, templates: Sequence[tuple[str, str, str]], dateline: int) -> None:
        """(title, text, version) rows into set ``sid``, in order, as given (no trim: the import keeps them)."""
        for chunk in chunks(templates, lambda t: len(t[1]) * 4 + len(t[0]) * 4 + 64):
            values = ", ".join(["(%s, %s, %s, %s, '', %s)"] * len(chunk))
            args = [v for title, text, version in chunk for v in (title, text, sid, version, dateline)]
            await self._execute(
                f"INSERT INTO {self._t['templates']} (title, template, sid, version, status, dateline) VALUES {values}",
                args,
            )

    async def add_theme(self, name: str, pid: int) -> int:
        """build_new_theme()'s row: not the default, for every group; properties and lists come next."""
        [tid] = await self._insert_ids(
            f"INSERT INTO {self._t['themes']} (name, pid, def, properties, stylesheets, allowedgroups) "
            "VALUES (%s, %s, 0, '', '', 'all')",
            (name, pid),
            1,
            "tid",
        )
        return tid

    async def set_theme_properties(self, tid: int, properties: str) -> None:
        await self._execute(f"UPDATE {self._t['themes']} SET properties = %s WHERE tid = %s", (properties, tid))

    async def add_stylesheet(self, row: Stylesheet) -> int:
        """One new row (``row.sid`` is ignored: the table numbers it); returns its sid."""
        [sid] = await self._insert_ids(
            f"INSERT INTO {self._t['themestylesheets']} (name, tid, attachedto, stylesheet, cachefile, lastmodified) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (row.name, row.tid, row.attachedto, row.stylesheet, row.cachefile, row.lastmodified),
            1,
            "sid",
        )
        return sid

    async def remove_theme_rows(self, tid: int | None, templateset: int | None) -> None:
        """Undo an import cut short: the new theme's rows and the new set's, nothing else."""
        if tid is not None:
            await self._execute(f"DELETE FROM {self._t['themestylesheets']} WHERE tid = %s", (tid,))
            await self._execute(f"DELETE FROM {self._t['themes']} WHERE tid = %s", (tid,))
        if templateset is not None:
            await self._execute(f"DELETE FROM {self._t['templates']} WHERE sid = %s", (templateset,))
            await self._execute(f"DELETE FROM {self._t['templatesets']} WHERE sid = %s", (templateset,))
