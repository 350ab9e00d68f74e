"""The rows of the theme tables, as the store reads and writes them and the planner reasons about them.

They live apart from both so that neither imports the other for its vocabulary.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Theme:
    """A `themes` row; `properties` and `stylesheets` stay raw PHP-serialized text."""

    tid: int
    name: str
    pid: int
    def_: int
    properties: str
    stylesheets: str
    allowedgroups: str = "all"


@dataclass(frozen=True)
class Stylesheet:
    """A `themestylesheets` row."""

    sid: int
    name: str
    tid: int
    attachedto: str
    stylesheet: str
    cachefile: str
    lastmodified: int


@dataclass(frozen=True)
class StylesheetUpdate:
    """`UPDATE themestylesheets SET stylesheet, cachefile, lastmodified WHERE sid`."""

    sid: int
    stylesheet: str
    cachefile: str
    lastmodified: int


@dataclass(frozen=True)
class ThemeUpdate:
    """`UPDATE themes SET properties, stylesheets WHERE tid` (both new values)."""

    tid: int
    properties: str
    stylesheets: str
