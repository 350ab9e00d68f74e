"""Theme packages as pure functions: the Admin CP's export bytes, its reading of a file, its refusals."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from mybb_sync import php
from mybb_sync.rows import Stylesheet, Theme
from mybb_sync.store import TemplateRow
from mybb_sync.themexml import (
    ERROR_EXISTS,
    ERROR_NOT_A_THEME,
    ERROR_SECURITY,
    ERROR_VERSION,
    build_theme_xml,
    import_refusal,
    new_stylesheets,
    new_theme_properties,
    parse_theme_xml,
    sheet_cache_files,
    templateset_of,
)

from conftest import golden

EXPORT = "case7-theme-export"
IMPORT = "case8-theme-import"
EXPORTS = json.loads(golden(EXPORT, "exports.json").read_text())["exports"]


@cache
def export_state() -> dict[str, Any]:
    return json.loads(golden(EXPORT, "db-state.json").read_text())


def themes_of(state: dict[str, Any]) -> list[Theme]:
    return [Theme(t["tid"], t["name"], t["pid"], t["def"], t["properties"], t["stylesheets"]) for t in state["themes"]]


def sheets_of(state: dict[str, Any]) -> list[Stylesheet]:
    keys = ("sid", "name", "tid", "attachedto", "stylesheet", "cachefile", "lastmodified")
    return [Stylesheet(*(s[k] for k in keys)) for s in state["themestylesheets"]]


def exported(custom_only: bool, include_templates: bool) -> bytes:
    state = export_state()
    theme = next(t for t in themes_of(state) if t.tid == 2)
    templates = [TemplateRow(**t) for t in state["templates_not_master"] if t["sid"] == templateset_of(theme)]
    return build_theme_xml(
        theme, sheets_of(state), templates, "1837", custom_only=custom_only, include_templates=include_templates
    )


def fixture_file(step: str) -> bytes:
    return golden(IMPORT, step, "input.xml").read_bytes()


# --- export ----------------------------------------------------------------------


@pytest.mark.parametrize("capture", EXPORTS, ids=[e["file"] for e in EXPORTS])
def test_export_is_byte_for_byte_what_the_admin_cp_served(capture: dict[str, Any]) -> None:
    data = exported(capture["custom_theme"] == 1, capture["include_templates"] == 1)
    assert data == golden(EXPORT, capture["file"]).read_bytes()


def test_export_splits_cdata_at_every_close_marker_in_stylesheets_and_templates() -> None:
    data = exported(custom_only=True, include_templates=True).decode()
    assert "/* ]]]]><![CDATA[> twice ]]]]><![CDATA[> */" in data
    assert "<!-- fixture-xml ]]]]><![CDATA[> café -->" in data
    assert parse_theme_xml(data.encode()).templates[0].text.endswith("<!-- fixture-xml ]]> café -->")


def test_export_escapes_the_theme_name_as_htmlspecialchars_uni() -> None:
    theme = Theme(9, 'A & B <"x"> &#169;', 1, 0, php.dumps({"templateset": 1}), "")
    data = build_theme_xml(theme, [], [], "1837", custom_only=False, include_templates=False)
    assert b'<theme name="A &amp; B &lt;&quot;x&quot;&gt; &#169;" version="1837">' in data


def test_export_without_templates_has_no_templates_section() -> None:
    assert b"<templates>" not in exported(custom_only=True, include_templates=False)


# --- reading a file ------------------------------------------------------------------


def test_reading_keeps_what_mybb_reads_crlf_becomes_lf_and_the_indent_stays_on_stylesheets() -> None:
    package = parse_theme_xml(fixture_file("a-import-custom"))
    after = json.loads(golden(IMPORT, "a-import-custom", "after.json").read_text())
    stored = {s["name"]: s["stylesheet"] for s in after["themestylesheets"] if s["tid"] == 3}
    assert {s.name: s.text for s in package.stylesheets} == stored
    assert all(s.text.endswith("\n\t\t") and "\r" not in s.text for s in package.stylesheets)
    assert list(package.properties) == [
        "templateset", "imgdir", "logo", "tablespace", "borderwidth", "editortheme", "disporder", "colors"
    ]  # fmt: skip
    assert package.properties["templateset"] == "1"
    assert isinstance(package.properties["colors"], dict)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b"<theme name='x'><properties></theme>",
        b"not xml at all",
        b"<?xml version='1.0'?><plugin name='x'/>",
    ],
    ids=["empty", "blank", "broken", "text", "other-root"],
)
def test_a_file_that_is_no_theme_is_refused_in_one_line(data: bytes) -> None:
    with pytest.raises(ValueError, match="MyBB could not find the theme") as info:
        parse_theme_xml(data)
    assert "\n" not in str(info.value)


def test_an_entity_bomb_is_refused_without_expanding_it() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE theme [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8))
        + b']><theme name="x" version="1837"><properties><logo>&i;</logo></properties></theme>'
    )
    with pytest.raises(ValueError, match="refused: the file declares entities"):
        parse_theme_xml(bomb)


def test_an_external_entity_is_refused_and_never_read() -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE theme [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<theme name="x" version="1837"><properties><logo>&x;</logo></properties></theme>'
    )
    with pytest.raises(ValueError, match="refused"):
        parse_theme_xml(data)


def test_bad_serialized_colors_are_dropped_like_mybb_and_a_repeated_property_is_null() -> None:
    data = (
        b'<theme name="x" version="1837"><properties><colors><![CDATA[not serialized]]></colors>'
        b"<logo>a</logo><logo>b</logo><imgdir><![CDATA[]]></imgdir></properties></theme>"
    )
    assert parse_theme_xml(data).properties == {"logo": None, "imgdir": ""}


# --- refusals ------------------------------------------------------------------------


def refusal(step: str, **overrides: Any) -> str | None:
    args: dict[str, Any] = dict(name_taken=False, board_version="1837", ignore_version=False, with_templates=True)
    args.update(overrides)
    return import_refusal(parse_theme_xml(fixture_file(step)), **args)


def test_a_safe_theme_of_this_version_under_a_free_name_is_accepted() -> None:
    assert refusal("a-import-custom") is None


def test_a_name_taken_is_refused_first_as_the_admin_cp_says() -> None:
    assert refusal("c-same-name-again", name_taken=True, board_version="1800") == ERROR_EXISTS
    results = json.loads(golden(IMPORT, "results.json").read_text())
    assert results["c-same-name-again"]["error_shown"].endswith(ERROR_EXISTS)


def test_an_unsafe_template_is_refused_as_a_security_problem() -> None:
    why = refusal("d-unsafe-template")
    assert why is not None and why.startswith(ERROR_SECURITY) and "'header'" in why
    results = json.loads(golden(IMPORT, "results.json").read_text())
    assert results["d-unsafe-template"]["error_shown"].endswith(ERROR_SECURITY)


def test_an_unsafe_template_is_no_matter_when_templates_are_not_imported() -> None:
    assert refusal("d-unsafe-template", with_templates=False) is None


@pytest.mark.parametrize("board, refused", [("1837", False), ("1836", True), ("1900", True)])
def test_another_version_is_refused_unless_ignored(board: str, refused: bool) -> None:
    why = refusal("a-import-custom", board_version=board)
    assert (why is not None and why.startswith(ERROR_VERSION)) is refused
    assert refusal("a-import-custom", board_version=board, ignore_version=True) is None


def test_the_version_attribute_compares_as_php_compares_an_int_with_a_string() -> None:
    def version(attr: str) -> str | None:
        package = parse_theme_xml(f'<theme name="x" version="{attr}"/>'.encode())
        return import_refusal(
            package, name_taken=False, board_version="1837", ignore_version=False, with_templates=True
        )

    assert version("1837") is None and version("1837.0") is None and version(" 1837") is None
    assert version("1837x") is not None and version("") is not None
    assert ERROR_NOT_A_THEME not in (version("abc") or "")


# --- what an import writes -----------------------------------------------------------


def test_new_properties_take_the_new_set_and_put_the_theme_folder_in_the_logo() -> None:
    props = parse_theme_xml(b"<theme><properties><logo>{theme}/logo.png</logo></properties></theme>").properties
    value = php.loads(new_theme_properties(props, 7, 5, None))
    assert value == {"logo": "cache/themes/theme5/logo.png", "templateset": 7}


def test_a_file_without_properties_or_templates_inherits_the_parents_like_build_new_theme() -> None:
    parent = next(t for t in themes_of(export_state()) if t.tid == 2)
    value = php.loads(new_theme_properties({}, None, 5, parent))
    assert isinstance(value, dict)
    assert list(value)[:3] == ["templateset", "inherited", "imgdir"]
    inherited = value["inherited"]
    assert isinstance(inherited, dict) and inherited["imgdir"] == 1 and inherited["templateset"] == 2


def test_stylesheet_names_are_cut_to_30_characters_and_only_css_names_are_kept() -> None:
    data = (
        b'<theme><stylesheets><stylesheet name="a_very_long_stylesheet_name_indeed.css">x</stylesheet>'
        b'<stylesheet name="notes.txt">y</stylesheet><stylesheet name="ok.css" attachedto="0" '
        b'lastmodified="123">z</stylesheet></stylesheets></theme>'
    )
    rows = new_stylesheets(parse_theme_xml(data), now=1000)
    assert [(r.name, r.attachedto, r.lastmodified) for r in rows] == [("ok.css", "", 123)]


def test_cache_files_of_an_import_are_the_admin_cps() -> None:
    package = parse_theme_xml(fixture_file("a-import-custom"))
    for f in sheet_cache_files(new_stylesheets(package, 0), 3):
        assert f.content == golden(IMPORT, "a-import-custom", "files-after", "theme3", f.filename).read_bytes()
