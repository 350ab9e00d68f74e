"""The store's queries, written once for every SQL backend.

:class:`SQLStore` is the one class a backend subclasses: it composes the
query modules, each about one part of the forum's tables, over
:class:`.sqlbase.SQLBase` (the driver hooks and the dialect's words).
Every value is a query parameter (written ``%s``); only the validated table
prefix is interpolated. MyBB's MySQL tables are MyISAM (no transactions), so
each write is followed by a read-back of what was stored.
"""

from __future__ import annotations

from .poll_queries import PollQueries
from .template_writes import TemplateWrites
from .theme_packages import ThemePackages
from .theme_rows import ThemeRows


class SQLStore(TemplateWrites, ThemeRows, ThemePackages, PollQueries):
    """A MyBB forum database; subclasses bind it to a driver."""
