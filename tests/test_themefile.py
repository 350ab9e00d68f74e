"""A theme's settings file as pure functions: rendered from the rows, read back with refusals, and
saved as the Admin CP's Edit Theme, Edit Stylesheet Properties and order forms write, golden
against case 3's rows (attachments by file, by action and globally)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from mybb_sync import php
from mybb_sync.rows import Stylesheet, Theme
from mybb_sync.stylesheets import default_theme_cache
from mybb_sync.themefile import MetaPlan, parse_meta, plan_meta, read_meta, render_meta, theme_file_path, theme_of

from conftest import FIXTURES, golden

CASE3 = "case3-add-stylesheets/c-fixture3-actions"
FIXTURE3_ATTACHED = "usercp.php?profile,options|index.php"


def case3_after() -> tuple[list[Theme], list[Stylesheet], str]:
    """The rows after the Admin CP added fixture.css, fixture2.css and fixture3.css to Default."""
    after = json.loads(golden(CASE3, "after.json").read_text())
    fresh = json.loads(golden("case6-fresh-install", "themestylesheets.json").read_text())
    themes = [
        Theme(r["tid"], r["name"], r["pid"], r["def"], r["properties"], r["stylesheets"], r["allowedgroups"])
        for r in after["themes"]
    ]
    sheets = [Stylesheet(**r) for r in [*fresh, *after["themestylesheets"]]]
    return themes, sheets, after["datacache_default_theme"]


def own_files(sheets: list[Stylesheet]) -> Any:
    """Every own row has its cache file, newer than the row (as after the Admin CP's saves)."""
    present = {(s.tid, s.name) for s in sheets}
    return lambda tid, name: 2**40 if (tid, name) in present else None


def edit(text: str, change: Any) -> str:
    data = json.loads(text)
    change(data)
    return json.dumps(data)


def plan(themes: list[Theme], sheets: list[Stylesheet], text: str) -> MetaPlan:
    return plan_meta(
        themes, sheets, 2, parse_meta(text),
        templatesets={1}, editor_theme_exists=lambda name: name == "mybb.css", cache_file_mtime=own_files(sheets),
    )  # fmt: skip


def rendered(themes: list[Theme], sheets: list[Stylesheet]) -> str:
    return render_meta(read_meta(themes, sheets, 2))


def theme2(themes: list[Theme], properties: str | None = None, stylesheets: str | None = None) -> list[Theme]:
    return [
        replace(t, properties=properties or t.properties, stylesheets=stylesheets or t.stylesheets) if t.tid == 2 else t
        for t in themes
    ]


# --- rendering ----------------------------------------------------------------------


def test_the_file_of_case_3s_default_theme_is_the_golden_rendering() -> None:
    themes, sheets, _ = case3_after()
    assert rendered(themes, sheets) == (FIXTURES.parent / "themefile" / "case3-default.json").read_text()


def test_rendering_ignores_row_order_and_reads_back_to_the_same_settings() -> None:
    themes, sheets, _ = case3_after()
    text = rendered(themes, sheets)
    assert rendered(list(reversed(themes)), list(reversed(sheets))) == text
    assert render_meta(parse_meta(text)) == text


def test_the_file_lives_beside_the_themes_stylesheets_and_maps_back() -> None:
    assert theme_file_path("Default") == "styles/Default/theme.json"
    assert theme_of("styles/My%2FTheme/theme.json") == "My/Theme"
    assert theme_of("styles/Default/global.css") is None
    assert theme_of("template_sets/Default/theme.json") is None


# --- saving: golden against the Admin CP's rows ------------------------------------------


def test_attaching_by_file_and_by_action_rebuilds_the_list_as_the_admin_cp() -> None:
    themes, sheets, default_theme = case3_after()
    golden_list = next(t.stylesheets for t in themes if t.tid == 2)
    # fixture3.css attached globally, the list still without it: the file attaches it as the ACP did.
    before = [replace(s, attachedto="") if s.name == "fixture3.css" else s for s in sheets]
    stale = theme2(themes, stylesheets=php.dumps({"global": {"global": ["x"]}}))
    text = edit(
        rendered(stale, before), lambda d: d["stylesheets"]["fixture3.css"].update(attachedto=FIXTURE3_ATTACHED)
    )
    result = plan(stale, before, text)
    assert result.steps == ("attachments",)
    assert result.attachments == ((20, FIXTURE3_ATTACHED),)
    [update] = result.themes
    assert (update.tid, update.stylesheets) == (2, golden_list)
    assert update.properties == next(t.properties for t in themes if t.tid == 2)  # no disporder rebuild
    assert result.default_theme == default_theme


def test_an_order_change_rewrites_disporder_as_the_admin_cp() -> None:
    themes, sheets, default_theme = case3_after()
    golden_properties = next(t.properties for t in themes if t.tid == 2)
    shuffled = golden_properties.replace('s:12:"fixture3.css";i:20;', 's:12:"fixture3.css";i:0;')
    start = theme2(themes, properties=shuffled)
    text = edit(rendered(start, sheets), lambda d: d["stylesheets"]["fixture3.css"].update(order=20))
    result = plan(start, sheets, text)
    assert result.steps == ("order",)
    [update] = result.themes
    assert update.properties == golden_properties
    assert result.default_theme == default_theme


def test_editing_a_setting_writes_the_edit_theme_forms_properties() -> None:
    themes, sheets, _ = case3_after()
    text = edit(rendered(themes, sheets), lambda d: d.update(logo="images/new.png", tablespace=4))
    [update] = plan(themes, sheets, text).themes
    old = php.loads(next(t.properties for t in themes if t.tid == 2))
    assert isinstance(old, dict)
    expected = (
        'a:8:{s:11:"templateset";i:1;s:11:"editortheme";s:8:"mybb.css";s:6:"imgdir";s:6:"images";'
        's:4:"logo";s:14:"images/new.png";s:10:"tablespace";i:4;s:11:"borderwidth";i:0;'
        f's:6:"colors";{php.dumps(old["colors"])}s:9:"disporder";{php.dumps(old["disporder"])}}}'
    )
    assert update.properties == expected  # `inherited` dropped, numbers as ints, the form's key order
    assert update.stylesheets == next(t.stylesheets for t in themes if t.tid == 2)


def test_a_chosen_colour_is_kept_and_none_unsets_it() -> None:
    themes, sheets, _ = case3_after()
    [update] = plan(themes, sheets, edit(rendered(themes, sheets), lambda d: d.update(color="calm"))).themes
    props = php.loads(update.properties)
    assert isinstance(props, dict) and props["color"] == "calm"
    result = plan(themes, sheets, edit(rendered(themes, sheets), lambda d: d.update(color="none")))
    props = php.loads(result.themes[0].properties)
    assert isinstance(props, dict) and "color" not in props


def test_an_unchanged_file_plans_nothing() -> None:
    themes, sheets, _ = case3_after()
    assert plan(themes, sheets, rendered(themes, sheets)) == MetaPlan((), (), (), None)


def test_the_default_theme_cache_follows_the_edited_row() -> None:
    themes, sheets, _ = case3_after()
    result = plan(themes, sheets, edit(rendered(themes, sheets), lambda d: d.update(imgdir="img")))
    [update] = result.themes
    edited = replace(next(t for t in themes if t.tid == 2), properties=update.properties)
    assert result.default_theme == default_theme_cache(edited)


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"templateset": 1, "templateset": 2}', "appears twice"),
    ],
)
def test_a_file_that_is_no_settings_object_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_meta(text)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(favicon="x.ico"), "unknown key 'favicon'"),
        (lambda d: d["stylesheets"]["fixture.css"].update(media="print"), "unknown key 'media'"),
        (lambda d: d.pop("logo"), "missing key 'logo'"),
        (lambda d: d.update(tablespace="5"), "tablespace must be a whole number"),
        (lambda d: d.update(templateset=True), "templateset must be a whole number"),
        (lambda d: d["colors"].update({"dark blue": "Dark"}), "letters, digits and _"),
        (lambda d: d["stylesheets"]["fixture.css"].pop("order"), "has no 'order'"),
        (lambda d: d["stylesheets"]["fixture.css"].update(inherited="x"), "needs one of"),
    ],
)
def test_an_unknown_key_or_a_wrong_type_is_refused_in_one_line(change: Any, reason: str) -> None:
    themes, sheets, _ = case3_after()
    with pytest.raises(ValueError, match=reason) as info:
        parse_meta(edit(rendered(themes, sheets), change))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(templateset=7), "template set 7 does not exist"),
        (lambda d: d.update(editortheme="nope.css"), "editor theme 'nope.css'"),
        (lambda d: d["stylesheets"].pop("fixture.css"), "lacks stylesheet 'fixture.css'"),
        (lambda d: d["stylesheets"].update({"new.css": {"attachedto": "", "order": 1}}), "lists stylesheet 'new.css'"),
        (
            lambda d: d["stylesheets"].update({"global.css": {"attachedto": "index.php", "order": 1}}),
            "inherited from 'MyBB Master Style'",
        ),
        (
            lambda d: d["stylesheets"].update({"fixture.css": {"inherited": "MyBB Master Style", "order": 18}}),
            "theme 2's own",
        ),
    ],
)
def test_what_the_admin_cp_would_refuse_is_refused(change: Any, reason: str) -> None:
    themes, sheets, _ = case3_after()
    with pytest.raises(ValueError, match=reason):
        plan(themes, sheets, edit(rendered(themes, sheets), change))


def test_the_master_style_is_read_only() -> None:
    themes, sheets, _ = case3_after()
    text = render_meta(read_meta(themes, sheets, 1))
    with pytest.raises(ValueError, match="read-only"):
        plan_meta(
            themes, sheets, 1, parse_meta(text),
            templatesets={1}, editor_theme_exists=lambda _: True, cache_file_mtime=own_files(sheets),
        )  # fmt: skip
