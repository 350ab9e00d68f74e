"""What a command covers (pure): the filter of a selection and the ignore file, and what
push, pull and sync each do with a decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from mybb_sync.engine import Decision, Entry
from mybb_sync.errors import ConfigError
from mybb_sync.layout import Kind
from mybb_sync.once import CONFLICT, EXPORT, IMPORT, MISSING, REFUSE, SKIP, Direction, Step, choose
from mybb_sync.reconcile import Action
from mybb_sync.selection import IGNORE_FILE, Filter, Selection, read_ignore_file
from mybb_sync.store import TemplateRow

T = "template_sets/Default Templates/header/header.html"
G = "global_templates/footer.html"
S = "styles/Default/global.css"


def test_everything_is_admitted_by_default() -> None:
    assert all(Filter().admits(p) for p in (T, G, S))


def test_ignore_lines_use_gitignore_syntax_with_negation() -> None:
    flt = Filter(ignore_lines=["*.css", "!global.css", "header*"])
    assert (flt.admits(T), flt.admits(G), flt.admits(S)) == (False, True, True)
    assert not Filter(ignore_lines=["styles/"]).admits(S)


def test_only_keeps_what_matches() -> None:
    flt = Filter(Selection(only=("template_sets/",)))
    assert (flt.admits(T), flt.admits(G), flt.admits(S)) == (True, False, False)


def test_a_set_brings_the_global_templates_and_no_stylesheet() -> None:
    flt = Filter(Selection(sets=("Default Templates",)))
    assert (flt.admits(T), flt.admits(G), flt.admits(S)) == (True, True, False)
    assert not Filter(Selection(sets=("Other",))).admits(T)


def test_a_theme_brings_its_stylesheets_only() -> None:
    flt = Filter(Selection(themes=("Default",)))
    assert (flt.admits(T), flt.admits(G), flt.admits(S)) == (False, False, True)


def test_paths_cover_files_and_folders_below_them() -> None:
    flt = Filter(Selection(paths=("template_sets/Default Templates", G)))
    assert (flt.admits(T), flt.admits(G), flt.admits(S)) == (True, True, False)
    assert not flt.admits("template_sets/Default Templates x/header/header.html")


def test_the_ignore_file_is_read_from_the_root_and_never_through_a_symlink(tmp_path: Path) -> None:
    assert read_ignore_file(tmp_path) == []
    (tmp_path / "real").write_text("*.css\n")
    (tmp_path / IGNORE_FILE).symlink_to(tmp_path / "real")
    with pytest.raises(ConfigError):
        read_ignore_file(tmp_path)


def test_a_selection_comes_back_from_json_whole_and_refuses_anything_else() -> None:
    selection = Selection(sets=("a",), paths=("x",), only=("*.html",))
    assert Selection.from_json(selection.as_json()) == selection
    with pytest.raises(ConfigError):
        Selection.from_json({"sets": "a"})


def decision(action: Action, *, row: bool = True, disk: bool = True, invalid: str | None = None) -> Decision:
    row_ = TemplateRow(1, 1, "header", "<b>x</b>", "1839", "", 1) if row else None
    stat = object() if disk else None
    return Decision(Entry(T, Kind.TEMPLATE, 1, "header", row_), action, None, None, None, stat, invalid=invalid)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "direction", "step"),
    [
        (Action.IMPORT, Direction.PUSH, IMPORT),
        (Action.IMPORT, Direction.SYNC, IMPORT),
        (Action.IMPORT, Direction.PULL, CONFLICT),  # changed on disk only: a pull leaves it
        (Action.EXPORT, Direction.PULL, EXPORT),
        (Action.EXPORT, Direction.SYNC, EXPORT),
        (Action.EXPORT, Direction.PUSH, SKIP),
        (Action.CONFLICT, Direction.PUSH, CONFLICT),
        (Action.DISK_DELETED, Direction.PUSH, MISSING),
        (Action.DISK_DELETED, Direction.PULL, EXPORT),  # the file is written again
    ],
)
def test_each_direction_takes_its_side(action: Action, direction: Direction, step: str) -> None:
    steps, chosen = choose([decision(action)], direction, force=False, revert_deletions=False)
    assert [s.action for s in steps] == [step]
    assert bool(chosen) is (step != SKIP)


def test_force_takes_the_file_in_a_push_and_the_row_in_a_pull() -> None:
    steps, chosen = choose([decision(Action.CONFLICT)], Direction.PUSH, force=True, revert_deletions=False)
    assert steps == [Step(T, IMPORT, "--force")] and chosen[0].action is Action.IMPORT
    steps, chosen = choose([decision(Action.CONFLICT)], Direction.PULL, force=True, revert_deletions=False)
    assert steps == [Step(T, EXPORT, "--force")] and chosen[0].action is Action.CONFLICT


def test_an_invalid_file_is_a_refusal_with_its_reason() -> None:
    steps, _ = choose(
        [decision(Action.IMPORT, invalid="is empty")], Direction.PUSH, force=False, revert_deletions=False
    )
    assert steps == [Step(T, REFUSE, "is empty")]


def test_a_file_with_no_row_is_no_business_of_a_pull() -> None:
    steps, chosen = choose([decision(Action.IMPORT, row=False)], Direction.PULL, force=False, revert_deletions=False)
    assert [s.action for s in steps] == [SKIP] and chosen == []


def test_unchanged_files_make_no_step_but_are_carried_out_to_settle_their_state() -> None:
    steps, chosen = choose(
        [decision(Action.NOTHING), decision(Action.ADOPT)], Direction.PUSH, force=False, revert_deletions=False
    )
    assert steps == [] and len(chosen) == 2
