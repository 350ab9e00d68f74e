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
    SavePlan,
    Stylesheet,
    StylesheetUpdate,
    Theme,
    ThemeUpdate,
    build_stylesheet_list,
    cache_css,
    default_theme_cache,
    effective_stylesheets,
    min_name,
    minify_css,
    plan_add_stylesheet,
    plan_edit_stylesheet,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "mybb-fixtures"


@pytest.fixture(scope="session")
def mybb_fixtures() -> Path:
    """The golden captures beside the checkout; a user's clone does not have them."""
    if not FIXTURES.is_dir():
        pytest.skip("../shared/mybb-fixtures is absent (a user's clone): golden MyBB captures not available")
    return FIXTURES


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
