"""MyBB theme packages (Themes > Export / Import Theme), as pure functions.

A theme travels as the XML file the Admin CP serves; another forum (or the
mods site) only takes it as MyBB would, so the export is built the way
``admin/modules/style/themes.php`` builds it (string concatenation, CRLF, CDATA
split at ``]]>``), and the import decides what ``import_theme_xml()`` and
``build_new_theme()`` (``admin/inc/functions_themes.php``) decide. Reading goes
through a hardened parser: a theme file comes from anywhere.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import defusedxml
import defusedxml.ElementTree

from . import php
from .rows import Stylesheet, Theme
from .security import check_template
from .store import TemplateRow
from .stylesheets import CacheFile, cache_css, min_name, minify_css

__all__ = [
    "ERROR_EXISTS",
    "ERROR_NOT_A_THEME",
    "ERROR_SECURITY",
    "ERROR_VERSION",
    "NewStylesheet",
    "PackageSheet",
    "PackageTemplate",
    "ThemePackage",
    "build_theme_xml",
    "import_refusal",
    "new_stylesheets",
    "new_theme_properties",
    "parse_theme_xml",
    "sheet_cache_files",
    "stored_array",
    "templateset_of",
]

# The Admin CP's own words (inc/languages/english/admin/style_themes.lang.php).
ERROR_NOT_A_THEME = (
    "MyBB could not find the theme with the file you uploaded. Please check the file is the correct and is not corrupt."
)
ERROR_VERSION = (
    "This theme has been written for another version of MyBB. "
    'Please check the "Ignore Version Compatibility" to ignore this error.'
)
ERROR_EXISTS = "A theme with the same name already exists. Please specify a different name."
ERROR_SECURITY = (
    "A potential security issue was found in the theme. It was not imported. "
    "Please contact the Author or MyBB Group for support."
)

MAX_SHEET_NAME = 30  # import_theme_xml(): my_substr($name, 0, 30)
_SERIALIZED_PROPERTIES = ("colors", "disporder")  # the properties the file carries PHP-serialized


# --- export --------------------------------------------------------------------


def _cdata(text: str) -> str:
    """What goes inside <![CDATA[...]]>: a `]]>` is split across two sections."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def _html_special_chars_uni(text: str) -> str:
    """MyBB's htmlspecialchars_uni(): a `&` that starts `&#123;` is kept."""
    text = re.sub(r"&(?!#[0-9]+;)", "&amp;", text)
    return text.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _php_string(value: php.PhpValue) -> str:
    """PHP's "{$value}" for a scalar (true is "1", false and null are "")."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    return value if isinstance(value, str) else php.dumps(value)[2:-1] if isinstance(value, float) else str(value)


def _php_int(value: php.PhpValue) -> int:
    """PHP's (int) cast: the leading integer of a string, 0 when there is none."""
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        match = re.match(r"\s*[+-]?[0-9]+", value)
        return int(match.group()) if match else 0
    return 0


def _php_empty(value: php.PhpValue) -> bool:
    """PHP's empty(): null, false, 0, "", "0" and the empty array."""
    return value in (None, False, 0, "", "0") or value == {}


def _basename(path: str) -> str:
    """PHP's basename() on Linux."""
    return path.rstrip("/").rpartition("/")[2]


def stored_array(text: str) -> dict[int | str, php.PhpValue]:
    """my_unserialize() of a stored array; anything else is an empty loop in PHP."""
    try:
        value = php.unserialized(php.loads(text)) if text else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _exported_sheets(theme: Theme, sheets: Iterable[Stylesheet], custom_only: bool) -> list[Stylesheet]:
    """The rows the export writes, in its order: the URLs of `themes.stylesheets` in order of
    first appearance, each mapped back to a row of the theme or of a parent it is inherited from."""
    listed = stored_array(theme.stylesheets)
    inherited = listed.get("inherited")
    inherited = inherited if isinstance(inherited, dict) else {}
    urls: list[str] = []
    load = []
    for file, actions in listed.items():
        if file == "inherited" or not isinstance(actions, dict):
            continue
        for action, urls_of_action in actions.items():
            if not isinstance(urls_of_action, dict):
                continue
            for url in urls_of_action.values():
                url = _php_string(url)
                if url not in urls:
                    urls.append(url)
                from_parents = inherited.get(f"{file}_{action}")
                if isinstance(from_parents, dict) and php.array_key(url) in from_parents:
                    load += [_php_int(tid) for tid in from_parents.values()]
    load.append(theme.tid)
    by_file: dict[str, Stylesheet] = {}
    by_sid: dict[int, str] = {}
    for row in sorted((s for s in sheets if s.tid in load), key=lambda s: (-s.tid, s.sid)):
        if row.cachefile not in by_file:
            by_file[row.cachefile] = row
            by_sid[row.sid] = row.cachefile
    result = []
    for url in urls:
        if "css.php?stylesheet=" in url:
            filename = by_sid.get(_php_int(url.replace("css.php?stylesheet=", "")), "")
        else:
            filename = _basename(url)
        found = by_file.get(filename)
        if custom_only and (found is None or found.tid != theme.tid):
            continue
        if found is not None:
            result.append(found)
    return result


def build_theme_xml(
    theme: Theme,
    sheets: Iterable[Stylesheet],
    templates: Iterable[TemplateRow],
    version_code: str,
    *,
    custom_only: bool,
    include_templates: bool,
) -> bytes:
    """The bytes Themes > Export Theme serves for `theme`.

    `sheets` are every stylesheet row (the theme's and its parents'), `templates`
    the rows of the theme's template set in the table's order. `custom_only` is
    "Export only customized items of this theme"; the `inherited` property is
    never written; arrays are written PHP-serialized.
    """
    xml = '<?xml version="1.0" encoding="UTF-8"?>\r\n'
    xml += f'<theme name="{_html_special_chars_uni(theme.name)}" version="{version_code}">\r\n'
    xml += "\t<properties>\r\n"
    properties = stored_array(theme.properties)
    for key, value in properties.items():
        if key == "inherited":
            continue
        text = php.dumps(value) if isinstance(value, dict) else _php_string(value)
        xml += f"\t\t<{key}><![CDATA[{_cdata(text)}]]></{key}>\r\n"
    xml += "\t</properties>\r\n"
    xml += "\t<stylesheets>\r\n"
    for row in _exported_sheets(theme, sheets, custom_only):
        attached = f'attachedto="{row.attachedto}" ' if row.attachedto not in ("", "0") else row.attachedto
        xml += (
            f'\t\t<stylesheet name="{row.name}" {attached}version="{version_code}">'
            f"<![CDATA[{_cdata(row.stylesheet)}]]>\r\n\t\t</stylesheet>\r\n"
        )
    xml += "\t</stylesheets>\r\n"
    if include_templates:
        xml += "\t<templates>\r\n"
        for t in templates:
            xml += (
                f'\t\t<template name="{t.title}" version="{t.version}"><![CDATA[{_cdata(t.template)}]]></template>\r\n'
            )
        xml += "\t</templates>\r\n"
    xml += "</theme>"
    return xml.encode("utf-8")


def templateset_of(theme: Theme) -> int:
    """The set whose templates the export lists: (int)$properties['templateset']."""
    return _php_int(stored_array(theme.properties).get("templateset"))


# --- import: reading the file ----------------------------------------------------


@dataclass(frozen=True)
class PackageSheet:
    """A <stylesheet> of a theme file: its attributes as written (None: absent) and its text."""

    name: str | None
    attachedto: str | None
    lastmodified: str | None
    text: str


@dataclass(frozen=True)
class PackageTemplate:
    title: str
    version: str
    text: str


@dataclass(frozen=True)
class ThemePackage:
    """What import_theme_xml() reads from a file (MyBB's XML tree, reduced to what it uses)."""

    name: str | None
    version: str | None
    properties: dict[int | str, php.PhpValue]
    stylesheets: tuple[PackageSheet, ...]
    templates: tuple[PackageTemplate, ...]


def _own_text(element: ET.Element) -> str:
    """The character data of the element itself (not of its children), as MyBB's tree keeps it."""
    return (element.text or "") + "".join(child.tail or "" for child in element)


def _properties(element: ET.Element | None) -> dict[int | str, php.PhpValue]:
    """The properties as import_theme_xml() keeps them: text (None when repeated),
    `colors`/`disporder` unserialized (dropped unless they are arrays)."""
    if element is None:
        return {}
    counts: dict[str, int] = {}
    for child in element:
        counts[child.tag] = counts.get(child.tag, 0) + 1
    properties: dict[int | str, php.PhpValue] = {}
    for child in element:
        key = child.tag
        if key in ("tag", "value") or key in properties:
            continue
        value: php.PhpValue = _own_text(child) if counts[key] == 1 else None  # PHP: a list has no 'value'
        if key in _SERIALIZED_PROPERTIES:
            try:
                value = php.loads(value) if isinstance(value, str) else None
            except ValueError:
                value = None
            if not isinstance(value, dict):
                continue  # MyBB: "Bad data?"
        properties[key] = value
    return properties


def parse_theme_xml(data: bytes) -> ThemePackage:
    """Read a theme file; raises ValueError (one line) for a file that is no MyBB theme.

    Entity declarations and external references are refused outright (entity
    bombs, local files); a broken file gets the parser's line and column.
    """
    if not data.strip():
        raise ValueError(f"the file is empty: {ERROR_NOT_A_THEME}")
    try:
        root = defusedxml.ElementTree.fromstring(data)
    except defusedxml.DefusedXmlException as exc:
        raise ValueError(f"refused: the file declares entities or external references ({exc})") from None
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc}): {ERROR_NOT_A_THEME}") from None
    if root.tag != "theme":
        raise ValueError(f"the file's root element is <{root.tag}>, not <theme>: {ERROR_NOT_A_THEME}")
    sheets_el, templates_el = root.find("stylesheets"), root.find("templates")
    sheets = tuple(
        PackageSheet(el.get("name"), el.get("attachedto"), el.get("lastmodified"), _own_text(el))
        for el in (sheets_el.findall("stylesheet") if sheets_el is not None else [])
    )
    templates = tuple(
        PackageTemplate(el.get("name", ""), el.get("version", ""), _own_text(el))
        for el in (templates_el.findall("template") if templates_el is not None else [])
    )
    return ThemePackage(root.get("name"), root.get("version"), _properties(root.find("properties")), sheets, templates)


# --- import: deciding ------------------------------------------------------------


def _same_version(board: str, version: str | None) -> bool:
    """PHP 8's `$mybb->version_code != $version` negated (an int against the attribute)."""
    if version is None:
        return False
    if re.fullmatch(r"\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*", version):
        return float(version) == float(board)
    return version == board


def import_refusal(
    package: ThemePackage, *, name_taken: bool, board_version: str, ignore_version: bool, with_templates: bool
) -> str | None:
    """Why the Admin CP would refuse the import (its message), or None; checked in its order."""
    if name_taken:
        return ERROR_EXISTS
    if not ignore_version and not _same_version(board_version, package.version):
        return f"{ERROR_VERSION} (file: {package.version!r}, board: {board_version})"
    if with_templates:
        for template in package.templates:
            verdict = check_template(template.text)
            if verdict is not None:
                return f"{ERROR_SECURITY} (template {template.title!r} {verdict})"
    return None


def new_theme_properties(
    properties: dict[int | str, php.PhpValue], templateset: int | None, tid: int, parent: Theme | None
) -> str:
    """The `properties` build_new_theme() writes for the new theme `tid`.

    The file's properties, with the new set's sid when templates came along;
    with none at all, the parent's are copied and marked inherited. Only own
    properties get `{theme}` in the logo replaced.
    """
    props = dict(properties)
    if templateset is not None:
        props["templateset"] = templateset
    if not props and parent is not None:
        parents = stored_array(parent.properties)
        marks = parents.get("inherited")
        marks = marks if isinstance(marks, dict) else {}
        inherited: dict[int | str, php.PhpValue] = {}
        for key, value in parents.items():
            if key == "inherited":
                continue
            props[key] = value
            props.setdefault("inherited", inherited)
            inherited[key] = parent.tid if _php_empty(marks.get(key)) else marks[key]
        if parents:
            return php.dumps(props)
    props["logo"] = _php_string(props.get("logo")).replace("{theme}", f"cache/themes/theme{tid}")
    return php.dumps(props)


@dataclass(frozen=True)
class NewStylesheet:
    """A themestylesheets row the import inserts (the table gives it its sid)."""

    name: str
    attachedto: str
    stylesheet: str
    lastmodified: int

    def row(self, sid: int, tid: int) -> Stylesheet:
        return Stylesheet(sid, self.name, tid, self.attachedto, self.stylesheet, self.name, self.lastmodified)


def new_stylesheets(package: ThemePackage, now: int) -> list[NewStylesheet]:
    """The rows import_theme_xml() inserts, in file order: names cut to 30 characters, only
    names ending in `.css`; no `lastmodified` (or "0") means now."""
    rows = []
    for sheet in package.stylesheets:
        name = (sheet.name or "")[:MAX_SHEET_NAME]
        if not name.endswith(".css"):
            continue
        stamp = now if sheet.lastmodified in (None, "", "0") else _php_int(sheet.lastmodified)
        attachedto = "" if sheet.attachedto in (None, "0") else sheet.attachedto
        rows.append(NewStylesheet(name, attachedto or "", sheet.text, stamp))
    return rows


def sheet_cache_files(sheets: Sequence[NewStylesheet], tid: int) -> list[CacheFile]:
    """cache_stylesheet() for each row: `.css` and `.min.css` under theme<tid>/ (a later sheet
    of the same name overwrites an earlier one's files, as on the forum)."""
    files: dict[str, CacheFile] = {}
    for sheet in sheets:
        filename = _basename(sheet.name)
        css = cache_css(sheet.stylesheet, tid)
        files[filename] = CacheFile(tid, filename, css)
        files[min_name(filename)] = CacheFile(tid, min_name(filename), minify_css(css))
    return list(files.values())
