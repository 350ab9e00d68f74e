"""Saving a stylesheet like MyBB 1.8's Admin CP: cache bytes, lists, rows, plans."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mybb_sync.php import dumps, loads
from mybb_sync.stylesheets import (
    CacheFile,
    CacheFileMtime,
    SavePlan,
    Stylesheet,
    StylesheetUpdate,
    Theme,
    build_stylesheet_list,
    cache_css,
    default_theme_cache,
    effective_stylesheets,
    min_name,
    minify_css,
    plan_add_stylesheet,
    plan_edit_stylesheet,
)

# --- golden harness ------------------------------------------------------------

FRESH = "case6-fresh-install"

# The captured save steps and, for each, the steps run before it without a reset.
EARLIER: dict[str, tuple[str, ...]] = {
    "case1-edit-inherited-global": (),
    "case2-edit-own-global": ("case1-edit-inherited-global",),
    "case3-add-stylesheets/a-fixture-index-only": (),
    "case3-add-stylesheets/b-fixture2-global": ("case3-add-stylesheets/a-fixture-index-only",),
    "case3-add-stylesheets/c-fixture3-actions": (
        "case3-add-stylesheets/a-fixture-index-only",
        "case3-add-stylesheets/b-fixture2-global",
    ),
    "case4-edit-inherited-usercp": (),
}


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _themes(rows: list[dict[str, Any]]) -> list[Theme]:
    return [
        Theme(r["tid"], r["name"], r["pid"], r["def"], r["properties"], r["stylesheets"], r["allowedgroups"])
        for r in rows
    ]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@cache
def _known_texts(root: Path) -> dict[str, str]:
    """Stylesheet texts by sha256: the digests name them, the full rows carry them."""
    texts = {_sha(r["stylesheet"]): r["stylesheet"] for r in _json(root / FRESH / "themestylesheets.json")}
    for step in EARLIER:
        for side in ("before.json", "after.json"):
            for row in _json(root / step / side)["themestylesheets"]:
                texts[_sha(row["stylesheet"])] = row["stylesheet"]
    return texts


def _all_rows(root: Path, snapshot: dict[str, Any]) -> list[Stylesheet]:
    """Every themestylesheets row of a snapshot, text restored from its sha256."""
    texts = _known_texts(root)
    return [
        Stylesheet(
            sid=d["sid"],
            name=d["name"],
            tid=d["tid"],
            attachedto=d["attachedto"],
            stylesheet=texts[d["stylesheet_sha256"]],
            cachefile=d["cachefile"],
            lastmodified=d["lastmodified"],
        )
        for d in snapshot["themestylesheets_all_digest"]
    ]


def _mtimes_before(root: Path, step: str, install_time: int) -> dict[tuple[int, str], int]:
    """Cache files present before a step: the fresh install's, then earlier steps' writes.

    Every case starts from a fresh install like case 6's, written at that case's
    install time (the lastmodified of its untouched rows).
    """
    mtimes: dict[tuple[int, str], int] = {}
    for entry in _json(root / FRESH / "cache-files.json"):
        folder, _, name = entry["path"].removeprefix("cache/themes/").partition("/")
        if folder.startswith("theme") and name:
            mtimes[(int(folder.removeprefix("theme")), name)] = install_time
    for earlier in EARLIER[step]:
        details = _json(root / earlier / "changes.json")["cache_files"]["details"]
        for path, change in details.items():
            folder, _, name = path.partition("/")
            mtimes[(int(folder.removeprefix("theme")), name)] = change["after"]["mtime"]
    return mtimes


@dataclass(frozen=True)
class Case:
    """One captured save: the state before and after, and what our plan makes of it."""

    after: dict[str, Any]
    plan: SavePlan
    themes_after: list[Theme]
    rows_after: list[Stylesheet]
    default_theme_after: str


def _apply(themes: Sequence[Theme], rows: Sequence[Stylesheet], plan: SavePlan) -> tuple[list[Theme], list[Stylesheet]]:
    """What a database shell would leave behind after applying the plan."""
    updates = {u.sid: u for u in plan.updates}
    new_rows = [
        replace(r, stylesheet=u.stylesheet, cachefile=u.cachefile, lastmodified=u.lastmodified)
        if (u := updates.get(r.sid))
        else r
        for r in rows
    ]
    by_tid = {t.tid: t for t in plan.themes}
    new_themes = [
        replace(t, properties=u.properties, stylesheets=u.stylesheets) if (u := by_tid.get(t.tid)) else t
        for t in themes
    ]
    return new_themes, [*new_rows, *plan.inserts]


def _attachedto(form: dict[str, str]) -> str:
    """The Admin CP's add_stylesheet: attached_N files, `?actions` when action_N is 1."""
    if form.get("attach") != "1":
        return ""
    attached = []
    for field, value in form.items():
        if field.startswith("attached_"):
            number = field.removeprefix("attached_")
            actions = form.get(f"action_list_{number}", "") if form.get(f"action_{number}") == "1" else ""
            attached.append(f"{value}?{actions}" if actions else value)
    return "|".join(attached)


@cache
def _run(root: Path, step: str) -> Case:
    """Plan the captured save from its before.json, posted text and TIME_NOW, then apply it."""
    folder = root / step
    before, after, request = (_json(folder / f) for f in ("before.json", "after.json", "request.json"))
    form = {f["name"]: f["value"] for f in request["post_fields"] if "value" in f}
    text = (folder / "input-stylesheet.css").read_bytes().decode("utf-8")
    now = request["time_now_of_save"][0]
    themes, rows = _themes(before["themes"]), _all_rows(root, before)
    mtimes = _mtimes_before(root, step, install_time=min(r.lastmodified for r in rows))

    def mtime(tid: int, name: str) -> int | None:
        return mtimes.get((tid, name))

    tid, next_sid = int(form["tid"]), max(r.sid for r in rows) + 1
    if "file" in form:
        plan = plan_edit_stylesheet(themes, rows, tid, form["file"], text, now, next_sid, mtime)
    else:
        plan = plan_add_stylesheet(
            themes, rows, tid, form["name"], text, now, next_sid, _attachedto(form), cache_file_mtime=mtime
        )
    themes_after, rows_after = _apply(themes, rows, plan)
    default_theme = plan.default_theme if plan.default_theme is not None else before["datacache_default_theme"]
    return Case(after, plan, themes_after, rows_after, default_theme)


def _digest(row: Stylesheet) -> dict[str, Any]:
    data = asdict(row)
    text = data.pop("stylesheet")
    return data | {"stylesheet_bytes": len(text.encode("utf-8")), "stylesheet_sha256": _sha(text)}


# --- golden: the 34 cache files of a fresh install --------------------------------


def _fresh_mismatches(root: Path, suffix: str) -> list[str]:
    bad = []
    for row in _json(root / FRESH / "themestylesheets.json"):
        css = cache_css(row["stylesheet"], row["tid"])
        name = row["name"] if suffix == ".css" else min_name(row["name"])
        expected = (root / FRESH / "cache-themes" / f"theme{row['tid']}" / name).read_bytes()
        if (css if suffix == ".css" else minify_css(css)) != expected:
            bad.append(f"theme{row['tid']}/{name}")
    return bad


def test_cache_css_reproduces_all_17_fresh_install_css_files(mybb_fixtures: Path) -> None:
    assert len(_json(mybb_fixtures / FRESH / "themestylesheets.json")) == 17
    assert _fresh_mismatches(mybb_fixtures, ".css") == []


def test_minify_css_reproduces_all_17_fresh_install_min_files(mybb_fixtures: Path) -> None:
    assert _fresh_mismatches(mybb_fixtures, ".min.css") == []


def test_default_theme_cache_reproduces_the_fresh_install_row(mybb_fixtures: Path) -> None:
    themes = _themes(_json(mybb_fixtures / FRESH / "themes.json"))
    default = next(t for t in themes if t.def_ == 1)
    expected = _json(mybb_fixtures / FRESH / "datacache.json")["default_theme"]
    assert default_theme_cache(default) == expected


# --- golden: the Admin CP saves (cases 1-4) ---------------------------------------

STEPS = list(EARLIER)


@pytest.mark.parametrize("step", STEPS)
def test_plan_writes_the_cache_files_mybb_wrote(mybb_fixtures: Path, step: str) -> None:
    case = _run(mybb_fixtures, step)
    changes = _json(mybb_fixtures / step / "changes.json")["cache_files"]
    assert sorted(f.path for f in case.plan.cache_files) == sorted(changes["added"] + changes["modified"])
    for written in case.plan.cache_files:
        assert written.content == (mybb_fixtures / step / "files-after" / written.path).read_bytes(), written.path


@pytest.mark.parametrize("step", STEPS)
def test_plan_gives_the_stylesheet_rows_mybb_wrote(mybb_fixtures: Path, step: str) -> None:
    case = _run(mybb_fixtures, step)
    names = {r["name"] for r in case.after["themestylesheets"]}
    ours = sorted((asdict(r) for r in case.rows_after if r.name in names), key=lambda r: r["sid"])
    assert ours == case.after["themestylesheets"]


@pytest.mark.parametrize("step", STEPS)
def test_plan_leaves_every_other_stylesheet_row_as_mybb_did(mybb_fixtures: Path, step: str) -> None:
    case = _run(mybb_fixtures, step)
    ours = sorted((_digest(r) for r in case.rows_after), key=lambda r: r["sid"])
    assert ours == case.after["themestylesheets_all_digest"]


@pytest.mark.parametrize("step", STEPS)
def test_plan_gives_the_theme_rows_mybb_wrote(mybb_fixtures: Path, step: str) -> None:
    case = _run(mybb_fixtures, step)
    assert case.themes_after == _themes(case.after["themes"])


@pytest.mark.parametrize("step", STEPS)
def test_plan_gives_the_default_theme_mybb_wrote(mybb_fixtures: Path, step: str) -> None:
    case = _run(mybb_fixtures, step)
    assert case.default_theme_after == case.after["datacache_default_theme"]


@pytest.mark.parametrize("step", STEPS)
def test_plan_changes_default_theme_exactly_when_mybb_did(mybb_fixtures: Path, step: str) -> None:
    case = _run(mybb_fixtures, step)
    changed = _json(mybb_fixtures / step / "changes.json")["datacache_default_theme_changed"]
    assert (case.plan.default_theme is not None) == changed


@pytest.mark.parametrize("step", STEPS)
def test_plan_updates_exactly_the_theme_rows_mybb_changed(mybb_fixtures: Path, step: str) -> None:
    case = _run(mybb_fixtures, step)
    changed = _json(mybb_fixtures / step / "changes.json")["themes"]["updated"]
    assert sorted(str(u.tid) for u in case.plan.themes) == sorted(changed)


def test_edit_of_inherited_sheet_inserts_a_copy_with_next_sid(mybb_fixtures: Path) -> None:
    case = _run(mybb_fixtures, "case1-edit-inherited-global")
    assert [(r.sid, r.tid, r.name) for r in case.plan.inserts] == [(18, 2, "global.css")]
    assert case.plan.updates == ()


def test_edit_of_own_sheet_touches_only_its_row_and_files(mybb_fixtures: Path) -> None:
    case = _run(mybb_fixtures, "case2-edit-own-global")
    assert case.plan.inserts == ()
    assert [u.sid for u in case.plan.updates] == [18]
    assert case.plan.themes == ()
    assert case.plan.default_theme is None


# --- hand-checked: minification, rule by rule ---------------------------------------


def test_minify_removes_comments_across_lines() -> None:
    assert minify_css(b"a{b:c}/* one\n two */d{e:f}") == b"a{b:c}d{e:f}"


def test_minify_removes_whitespace_around_braces_colons_semicolons_commas() -> None:
    assert minify_css(b"a , b {\n\tc : d ;\n\te:f\n}\n") == b"a,b{c:d;e:f}"


def test_minify_keeps_whitespace_between_words() -> None:
    assert minify_css(b"a b{border:1px  solid red}") == b"a b{border:1px  solid red}"


def test_minify_drops_the_semicolon_before_a_closing_brace() -> None:
    assert minify_css(b"a{b:c;}") == b"a{b:c}"


def test_minify_shortens_doubled_hex_colours_keeping_letter_case() -> None:
    assert minify_css(b"a{color:#FFFFFF}") == b"a{color:#FFF}"
    assert minify_css(b"a{color:#aabbcc}") == b"a{color:#abc}"
    assert minify_css(b"a{color:#112233}") == b"a{color:#123}"


def test_minify_leaves_other_hex_colours_alone() -> None:
    assert minify_css(b"a{color:#123456;b:#aabbcd}") == b"a{color:#123456;b:#aabbcd}"


def test_minify_shortens_the_first_six_digits_of_an_eight_digit_colour() -> None:
    assert minify_css(b"a{color:#aabbccdd}") == b"a{color:#abcdd}"


def test_minify_removes_cr_and_lf_next_to_symbols() -> None:
    assert minify_css(b"a {\r\n\tb: c;\r\n}\r\n") == b"a{b:c}"


def test_minify_keeps_nbsp_and_non_ascii_bytes() -> None:
    nbsp, a_ring = "\xa0".encode(), "\xc5".encode()  # C2 A0 and C3 85 (85 is NEL in Latin-1)
    assert minify_css(b"a{" + nbsp + b"b:c;" + nbsp + b"}") == b"a{" + nbsp + b"b:c;" + nbsp + b"}"
    assert minify_css(b".x" + a_ring + b" {b:c}") == b".x" + a_ring + b"{b:c}"


def test_minify_trims_like_php_trim_and_adds_no_newline() -> None:
    assert minify_css(b"\n  .a b  \n") == b".a b"
    assert minify_css(b"x\x0c") == b"x\x0c"  # PHP's trim() keeps form feed


# --- hand-checked: the cache file's url() and {theme} rewriting ------------------------


@pytest.mark.parametrize(
    ("written", "cached"),
    [
        pytest.param("url(images/a.png)", "url(../../../images/a.png)", id="relative"),
        pytest.param("url('images/b.png')", "url(../../../images/b.png)", id="single-quoted"),
        pytest.param('url("images/c.png")', "url(../../../images/c.png)", id="double-quoted"),
        pytest.param("url({theme}/t.png)", "url(../../../cache/themes/theme2/t.png)", id="theme-placeholder"),
        pytest.param('url("http://example.com/c.png")', "url(http://example.com/c.png)", id="http-unquoted-only"),
        pytest.param("url(/abs/d.png)", "url(/abs/d.png)", id="absolute-path"),
        pytest.param("url(//cdn.example.com/f.png)", "url(//cdn.example.com/f.png)", id="protocol-relative"),
        pytest.param("url(data:image/png;base64,AAAA)", "url(data:image/png;base64,AAAA)", id="data-uri"),
        pytest.param("url(../images/g.png)", "url(../../../../images/g.png)", id="parent-relative"),
        pytest.param("url(../../../images/h.png)", "url(../../../images/h.png)", id="already-prefixed"),
        pytest.param("url( images/i.png )", "url( images/i.png )", id="inner-spaces-untouched"),
        pytest.param("URL(images/j.png)", "URL(images/j.png)", id="uppercase-untouched"),
        pytest.param("url(\"images/k.png')", "url(\"images/k.png')", id="mismatched-quotes-untouched"),
        pytest.param("url({imgdir}/l.png)", "url(../../../{imgdir}/l.png)", id="imgdir-prefixed-not-replaced"),
        pytest.param("/* url(images/m.png) */", "/* url(../../../images/m.png) */", id="inside-comment"),
    ],
)
def test_cache_css_rewrites_url_forms(written: str, cached: str) -> None:
    assert cache_css(f".x {{ background: {written}; }}", 2) == f".x {{ background: {cached}; }}".encode()


def test_cache_css_replaces_theme_placeholder_everywhere_including_comments() -> None:
    text = "/* {theme} */\n.x:before { content: '{theme}'; }"
    assert cache_css(text, 7) == b"/* cache/themes/theme7 */\n.x:before { content: 'cache/themes/theme7'; }"


def test_cache_css_keeps_other_bytes_exactly() -> None:
    text = '.x {\r\n\tcontent: "\u2192 \xfc\xa0";\r\n}\n\n'
    assert cache_css(text, 2) == text.encode("utf-8")


def test_min_name_inserts_min_before_the_extension() -> None:
    assert min_name("global.css") == "global.min.css"


def test_min_name_replaces_every_css_like_php_str_replace() -> None:
    assert min_name("a.css.css") == "a.min.css.min.css"


# --- hand-checked: a small master / child pair ------------------------------------------

PROPS_MASTER = dumps({"templateset": -2, "disporder": {"global.css": 1, "usercp.css": 2, "showthread.css": 3}})
PROPS_CHILD = dumps(
    {
        "templateset": 1,
        "inherited": {"disporder": 1},
        "disporder": {"global.css": 1, "usercp.css": 2, "showthread.css": 3, "color_x.css": 4},
        "colors": {"x": "X"},
    }
)
MASTER = Theme(1, "MyBB Master Style", 0, 0, PROPS_MASTER, "", "all")
CHILD = Theme(2, "Child", 1, 1, PROPS_CHILD, "", "all")
GRANDCHILD = Theme(3, "Grandchild", 2, 0, PROPS_CHILD, "", "all")
SHEETS = [
    Stylesheet(1, "global.css", 1, "", ".g { color: #FFFFFF; }", "global.css", 100),
    Stylesheet(2, "usercp.css", 1, "usercp.php|private.php", ".u {}", "usercp.css", 100),
    Stylesheet(3, "showthread.css", 1, "showthread.php?act1,act2", ".s {}", "showthread.css", 100),
    # A theme colour: attachedto is the key of properties['colors'].
    Stylesheet(4, "color_x.css", 2, "x", ".c {}", "color_x.css", 100),
]
FILES = {(1, "global.css"): 100, (1, "usercp.css"): 100, (1, "showthread.css"): 100, (2, "color_x.css"): 100}


def _files(files: dict[tuple[int, str], int]) -> CacheFileMtime:
    return lambda tid, name: files.get((tid, name))


def _no_files(tid: int, name: str) -> int | None:
    return None


G1, U1, S1 = "cache/themes/theme1/global.css", "cache/themes/theme1/usercp.css", "cache/themes/theme1/showthread.css"
X2 = "cache/themes/theme2/color_x.css"


def test_list_for_child_theme_matches_the_hand_built_php_string() -> None:
    expected = (
        "a:6:{"
        's:1:"x";a:1:{s:6:"global";a:1:{i:0;s:31:"' + X2 + '";}}'
        's:6:"global";a:1:{s:6:"global";a:1:{i:0;s:30:"' + G1 + '";}}'
        's:9:"inherited";a:5:{'
        's:13:"global_global";a:1:{s:30:"' + G1 + '";s:1:"1";}'
        's:17:"usercp.php_global";a:1:{s:30:"' + U1 + '";s:1:"1";}'
        's:18:"private.php_global";a:1:{s:30:"' + U1 + '";s:1:"1";}'
        's:19:"showthread.php_act1";a:1:{s:34:"' + S1 + '";s:1:"1";}'
        's:19:"showthread.php_act2";a:1:{s:34:"' + S1 + '";s:1:"1";}'
        "}"
        's:10:"usercp.php";a:1:{s:6:"global";a:1:{i:0;s:30:"' + U1 + '";}}'
        's:11:"private.php";a:1:{s:6:"global";a:1:{i:0;s:30:"' + U1 + '";}}'
        's:14:"showthread.php";a:2:{s:4:"act1";a:1:{i:0;s:34:"' + S1 + '";}s:4:"act2";a:1:{i:0;s:34:"' + S1 + '";}}'
        "}"
    )
    assert build_stylesheet_list([MASTER, CHILD], SHEETS, 2, _files(FILES)) == expected


def test_list_for_the_master_has_no_inherited_entries() -> None:
    listed = loads(build_stylesheet_list([MASTER, CHILD], SHEETS, 1, _files(FILES)))
    assert list(listed) == ["global", "usercp.php", "private.php", "showthread.php"]


def test_colour_stylesheet_is_listed_under_its_colour_key_for_every_action() -> None:
    listed = loads(build_stylesheet_list([MASTER, CHILD], SHEETS, 2, _files(FILES)))
    assert listed["x"] == {"global": {0: X2}}


def test_rows_inherited_from_a_grandparent_name_that_theme() -> None:
    sheets = [*SHEETS, Stylesheet(5, "usercp.css", 2, "usercp.php", ".u2 {}", "usercp.css", 100)]
    files = FILES | {(2, "usercp.css"): 100}
    listed = loads(build_stylesheet_list([MASTER, CHILD, GRANDCHILD], sheets, 3, _files(files)))
    assert listed["inherited"]["usercp.php_global"] == {"cache/themes/theme2/usercp.css": "2"}
    assert listed["inherited"]["global_global"] == {G1: "1"}


def test_list_falls_back_to_css_php_without_a_cache_file() -> None:
    listed = loads(build_stylesheet_list([MASTER, CHILD], SHEETS, 2, _no_files))
    assert listed["global"] == {"global": {0: "css.php?stylesheet=1"}}


def test_list_ignores_a_cache_file_older_than_the_row() -> None:
    listed = loads(build_stylesheet_list([MASTER, CHILD], SHEETS, 2, _files(FILES | {(1, "global.css"): 99})))
    assert listed["global"] == {"global": {0: "css.php?stylesheet=1"}}


def test_list_takes_the_nearest_fresh_file_even_from_a_theme_below_the_row() -> None:
    # MyBB walks the chain from the theme itself, whoever owns the row.
    listed = loads(build_stylesheet_list([MASTER, CHILD], SHEETS, 2, _files(FILES | {(2, "global.css"): 100})))
    assert listed["global"] == {"global": {0: "cache/themes/theme2/global.css"}}
    assert listed["inherited"]["global_global"] == {"cache/themes/theme2/global.css": "1"}


def test_attachedto_zero_means_global_like_php_falsy() -> None:
    sheets = [Stylesheet(1, "global.css", 1, "0", "", "global.css", 100)]
    assert list(loads(build_stylesheet_list([MASTER], sheets, 1, _files(FILES)))) == ["global"]


def test_numeric_file_names_become_int_keys_like_php_arrays() -> None:
    sheets = [Stylesheet(1, "global.css", 1, "5", "", "global.css", 100)]
    assert build_stylesheet_list([MASTER], sheets, 1, _files(FILES)) == (
        'a:1:{i:5;a:1:{s:6:"global";a:1:{i:0;s:30:"' + G1 + '";}}}'
    )


def test_child_row_overrides_the_parent_row_of_the_same_name() -> None:
    sheets = [*SHEETS, Stylesheet(5, "global.css", 2, "", "", "global.css", 100)]
    assert effective_stylesheets([MASTER, CHILD], sheets, 2)["global.css"].sid == 5


def test_effective_rows_come_by_tid_descending_then_sid() -> None:
    assert list(effective_stylesheets([MASTER, CHILD], SHEETS, 2)) == [
        "color_x.css",
        "global.css",
        "usercp.css",
        "showthread.css",
    ]


def test_highest_tid_in_the_chain_wins_like_mybb_even_over_the_theme_itself() -> None:
    # Theme 3 re-parented under the newer theme 4: MyBB's ORDER BY tid DESC picks 4's row.
    newer_parent = Theme(4, "Newer", 1, 0, PROPS_CHILD, "", "all")
    reparented = Theme(3, "Old child", 4, 0, PROPS_CHILD, "", "all")
    sheets = [
        *SHEETS,
        Stylesheet(5, "global.css", 3, "", "", "global.css", 100),
        Stylesheet(6, "global.css", 4, "", "", "global.css", 100),
    ]
    assert effective_stylesheets([MASTER, newer_parent, reparented], sheets, 3)["global.css"].sid == 6


def test_default_theme_cache_is_name_tid_string_and_raw_columns() -> None:
    theme = replace(CHILD, properties="a:0:{}", stylesheets="a:0:{}")
    assert default_theme_cache(theme) == (
        'a:4:{s:4:"name";s:5:"Child";s:3:"tid";s:1:"2";s:10:"properties";s:6:"a:0:{}";s:11:"stylesheets";s:6:"a:0:{}";}'
    )


# --- hand-checked: save plans --------------------------------------------------------------


def _world() -> tuple[list[Theme], list[Stylesheet]]:
    """Master, default child, grandchild; the child and grandchild lists as MyBB would have them."""
    themes = [MASTER, CHILD, GRANDCHILD]
    built = [
        replace(t, stylesheets=build_stylesheet_list(themes, SHEETS, t.tid, _files(FILES))) if t.tid > 1 else t
        for t in themes
    ]
    return built, SHEETS


def test_edit_refuses_the_master_theme() -> None:
    themes, sheets = _world()
    with pytest.raises(ValueError, match="read-only"):
        plan_edit_stylesheet(themes, sheets, 1, "global.css", "x", 200, 5, _files(FILES))


def test_add_refuses_the_master_theme() -> None:
    themes, sheets = _world()
    with pytest.raises(ValueError, match="read-only"):
        plan_add_stylesheet(themes, sheets, 1, "new.css", "x", 200, 5, cache_file_mtime=_files(FILES))


def test_edit_of_a_stylesheet_the_theme_does_not_have_raises() -> None:
    themes, sheets = _world()
    with pytest.raises(ValueError, match="no stylesheet"):
        plan_edit_stylesheet(themes, sheets, 2, "missing.css", "x", 200, 5, _files(FILES))


def test_edit_of_an_unknown_theme_raises() -> None:
    themes, sheets = _world()
    with pytest.raises(ValueError, match="no theme"):
        plan_edit_stylesheet(themes, sheets, 9, "global.css", "x", 200, 5, _files(FILES))


def test_edit_of_inherited_sheet_copies_it_down_with_next_sid() -> None:
    themes, sheets = _world()
    plan = plan_edit_stylesheet(themes, sheets, 2, "usercp.css", ".u { a: b; }", 200, 5, _files(FILES))
    assert plan.inserts == (
        Stylesheet(5, "usercp.css", 2, "usercp.php|private.php", ".u { a: b; }", "usercp.css", 200),
    )
    assert plan.updates == ()


def test_edit_of_own_sheet_updates_text_cachefile_and_lastmodified() -> None:
    themes, sheets = _world()
    plan = plan_edit_stylesheet(themes, sheets, 2, "color_x.css", ".c { a: b; }", 200, 5, _files(FILES))
    assert plan.inserts == ()
    assert plan.updates == (StylesheetUpdate(4, ".c { a: b; }", "color_x.css", 200),)


def test_edit_stores_the_text_untrimmed() -> None:
    themes, sheets = _world()
    plan = plan_edit_stylesheet(themes, sheets, 2, "color_x.css", "\n.c {}\n\n \t", 200, 5, _files(FILES))
    assert plan.updates[0].stylesheet == "\n.c {}\n\n \t"


def test_edit_writes_the_css_and_min_css_of_the_edited_theme() -> None:
    themes, sheets = _world()
    text = ".c { background: url(images/c.png); color: #FFFFFF; }\n"
    plan = plan_edit_stylesheet(themes, sheets, 2, "color_x.css", text, 200, 5, _files(FILES))
    assert plan.cache_files == (
        CacheFile(2, "color_x.css", b".c { background: url(../../../images/c.png); color: #FFFFFF; }\n"),
        CacheFile(2, "color_x.min.css", b".c{background:url(../../../images/c.png);color:#FFF}"),
    )
    assert [f.path for f in plan.cache_files] == ["theme2/color_x.css", "theme2/color_x.min.css"]


def test_the_saved_cache_file_counts_as_written_at_now() -> None:
    themes, sheets = _world()
    plan = plan_edit_stylesheet(themes, sheets, 2, "global.css", ".g {}", 200, 5, _no_files)
    listed = loads(next(u for u in plan.themes if u.tid == 2).stylesheets)
    assert listed["global"] == {"global": {0: "cache/themes/theme2/global.css"}}
    assert listed["usercp.php"] == {"global": {0: "css.php?stylesheet=2"}}


def test_edit_rebuilds_the_lists_of_child_themes() -> None:
    themes, sheets = _world()
    plan = plan_edit_stylesheet(themes, sheets, 2, "usercp.css", ".u {}", 200, 5, _files(FILES))
    assert [u.tid for u in plan.themes] == [2, 3]
    grandchild = loads(plan.themes[1].stylesheets)
    assert grandchild["usercp.php"] == {"global": {0: "cache/themes/theme2/usercp.css"}}
    assert grandchild["inherited"]["usercp.php_global"] == {"cache/themes/theme2/usercp.css": "2"}


def test_edit_of_own_sheet_leaves_theme_rows_and_default_theme_alone() -> None:
    themes, sheets = _world()
    plan = plan_edit_stylesheet(themes, sheets, 2, "color_x.css", ".c {}", 200, 5, _files(FILES))
    assert plan.themes == ()
    assert plan.default_theme is None


def test_default_theme_is_planned_when_the_default_themes_row_changes() -> None:
    themes, sheets = _world()
    plan = plan_edit_stylesheet(themes, sheets, 2, "usercp.css", ".u {}", 200, 5, _files(FILES))
    child_after = replace(themes[1], stylesheets=plan.themes[0].stylesheets)
    assert plan.default_theme == default_theme_cache(child_after)


def test_default_theme_is_not_planned_for_a_non_default_theme() -> None:
    themes, sheets = _world()
    plan = plan_edit_stylesheet(themes, sheets, 3, "usercp.css", ".u {}", 200, 5, _files(FILES))
    assert [u.tid for u in plan.themes] == [3]
    assert plan.default_theme is None


def test_add_inserts_the_row_with_its_attachedto() -> None:
    themes, sheets = _world()
    attachedto = "usercp.php?profile,options|index.php"
    mtime = _files(FILES)
    plan = plan_add_stylesheet(themes, sheets, 2, "new.css", ".n {}", 200, 5, attachedto, cache_file_mtime=mtime)
    assert plan.inserts == (Stylesheet(5, "new.css", 2, attachedto, ".n {}", "new.css", 200),)
    listed = loads(plan.themes[0].stylesheets)
    new = "cache/themes/theme2/new.css"
    assert listed["usercp.php"] == {"profile": {0: new}, "options": {0: new}, "global": {0: U1}}
    assert listed["index.php"] == {"global": {0: new}}


def test_add_appends_to_disporder_with_max_plus_one_keeping_key_order() -> None:
    themes, sheets = _world()
    plan = plan_add_stylesheet(themes, sheets, 2, "new.css", ".n {}", 200, 5, cache_file_mtime=_files(FILES))
    properties = loads(plan.themes[0].properties)
    assert list(properties) == ["templateset", "inherited", "disporder", "colors"]
    assert properties["disporder"] == {
        "global.css": 1,
        "usercp.css": 2,
        "showthread.css": 3,
        "color_x.css": 4,
        "new.css": 5,
    }


def test_disporder_rebuild_drops_absent_names_and_sorts_by_value() -> None:
    props = dumps({"disporder": {"gone.css": 1, "usercp.css": 9, "global.css": 2, "showthread.css": 3}})
    themes, sheets = _world()
    themes[1] = replace(themes[1], properties=props)
    plan = plan_add_stylesheet(themes, sheets, 2, "new.css", ".n {}", 200, 5, cache_file_mtime=_files(FILES))
    assert loads(plan.themes[0].properties)["disporder"] == {
        "global.css": 2,
        "showthread.css": 3,
        "usercp.css": 9,
        "color_x.css": 10,
        "new.css": 11,
    }


def test_properties_rewrite_turns_numeric_string_keys_into_int_keys_like_php() -> None:
    themes, sheets = _world()
    themes[1] = replace(themes[1], properties=themes[1].properties.replace('s:1:"x";s:1:"X"', 's:1:"7";s:1:"X"'))
    plan = plan_add_stylesheet(themes, sheets, 2, "new.css", ".n {}", 200, 5, cache_file_mtime=_files(FILES))
    assert loads(plan.themes[0].properties)["colors"] == {7: "X"}


@pytest.mark.parametrize("name", ["bad name.css", "x.txt", ".css", "a/b.css", "x" * 27 + ".css", ""])
def test_add_refuses_names_the_admin_cp_would_change_or_reject(name: str) -> None:
    themes, sheets = _world()
    with pytest.raises(ValueError, match="name"):
        plan_add_stylesheet(themes, sheets, 2, name, ".n {}", 200, 5, cache_file_mtime=_files(FILES))


def test_add_refuses_a_name_the_theme_already_owns() -> None:
    themes, sheets = _world()
    with pytest.raises(ValueError, match="already has"):
        plan_add_stylesheet(themes, sheets, 2, "color_x.css", ".n {}", 200, 5, cache_file_mtime=_files(FILES))


def test_add_may_override_an_inherited_name() -> None:
    themes, sheets = _world()
    plan = plan_add_stylesheet(themes, sheets, 2, "global.css", ".n {}", 200, 5, cache_file_mtime=_files(FILES))
    assert [(r.sid, r.tid) for r in plan.inserts] == [(5, 2)]


def test_next_sid_must_be_above_every_existing_sid() -> None:
    themes, sheets = _world()
    with pytest.raises(ValueError, match="next_sid"):
        plan_edit_stylesheet(themes, sheets, 2, "usercp.css", ".u {}", 200, 4, _files(FILES))


def test_add_also_rebuilds_the_disporder_of_child_themes() -> None:
    themes, sheets = _world()
    plan = plan_add_stylesheet(themes, sheets, 2, "new.css", ".n {}", 200, 5, cache_file_mtime=_files(FILES))
    grandchild = next(u for u in plan.themes if u.tid == 3)
    assert list(loads(grandchild.properties)["disporder"])[-1] == "new.css"
    assert loads(grandchild.stylesheets)["inherited"]["global_global"] == {
        G1: "1",
        "cache/themes/theme2/new.css": "2",
    }
