"""Where a set template's file may be, for a path never synced (real folders, a real state store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mybb_sync.catalog import Catalog
from mybb_sync.deletions import Deletions
from mybb_sync.engine import Decision, Entry
from mybb_sync.export import Exporter, TwoWay
from mybb_sync.files import Root
from mybb_sync.importer import Imported
from mybb_sync.layout import Kind
from mybb_sync.places import places
from mybb_sync.reconcile import Action, content_hash
from mybb_sync.report import ExportReport
from mybb_sync.state import FileState, Problem, ProblemKind, State
from mybb_sync.store import TemplateRow

SET = "template_sets/Default Templates"
CATALOG = Catalog(sets={1: "Default Templates"}, groups=frozenset({"calendar"}), themes={})


@pytest.fixture
def state(root: Path) -> Iterator[State]:
    (root / SET / "ungrouped").mkdir(parents=True)
    (root / SET / "calendar").mkdir()
    store = State(root)
    yield store
    store.close()


def tracked(state: State, path: str, name: str) -> None:
    state.put([FileState(path, Kind.TEMPLATE, 1, name, "base", 7, 1, 1, None)])


def missing_problem(state: State, path: str) -> None:
    state.report([Problem(path, ProblemKind.MISSING, "its folder is gone", 0.0)])


def test_a_path_in_a_folder_seen_for_an_instant_is_no_place_and_loses_its_problem(root: Path, state: State) -> None:
    """The PostgreSQL soak (seed 3102): ``ungrouped`` renamed to ``ungrouped_moved`` and straight
    back; a pass had met custom49 there, and a later look at that path wrote the file and made
    the folder again."""
    path = f"{SET}/ungrouped_moved/custom49.html"
    missing_problem(state, path)
    assert places(Root(root), state, CATALOG, [path], record=True) == {path: ""}
    assert state.problems() == []
    assert not (root / SET / "ungrouped_moved").exists()


def test_the_templates_own_group_folder_may_be_made_again(root: Path, state: State) -> None:
    (root / SET / "calendar").rmdir()
    path = f"{SET}/calendar/calendar_new.html"
    assert places(Root(root), state, CATALOG, [path], record=True) == {}


def test_a_folder_moved_away_with_tracked_files_is_waited_for_not_refused(root: Path, state: State) -> None:
    """Its files are written once it is back (the exporter holds them: ``its folder is gone``)."""
    tracked(state, f"{SET}/Header Templates/calendar_old.html", "calendar_old")
    path = f"{SET}/Header Templates/calendar_new.html"
    missing_problem(state, path)
    assert places(Root(root), state, CATALOG, [path], record=True) == {}
    assert [p.path for p in state.problems()] == [path]


def test_a_new_place_in_a_folder_that_is_there_is_a_place(root: Path, state: State) -> None:
    (root / SET / "Header Templates").mkdir()
    assert places(Root(root), state, CATALOG, [f"{SET}/Header Templates/calendar_new.html"], record=True) == {}


# -- the same for a pass that met the file under the passing name and must write it -------------


async def _never_imports(decisions: object) -> Imported:
    raise AssertionError("nothing is imported here")


async def _never_deleted(decisions: object) -> Deletions:
    raise AssertionError("no file is deleted here")


async def _no_statements() -> None:
    raise AssertionError("no statement is in flight here")


async def write_new(root: Path, state: State, path: str) -> None:
    """A two-way pass writes a row's file, never synced, at ``path`` (none there now)."""
    name = path.rsplit("/", 1)[1].removesuffix(".html")
    row = TemplateRow(7, 1, name, "<p>row</p>", "1839", "", 1)
    decision = Decision(
        Entry(path, Kind.TEMPLATE, 1, name, row),
        Action.EXPORT,
        None,
        content_hash(Kind.TEMPLATE, row.template),
        None,
        None,
    )
    two_way = TwoWay(_never_imports, _never_deleted, _no_statements, own_place=CATALOG.own_place)
    await Exporter(Root(root), state).apply([decision], ExportReport(), two_way=two_way)


@pytest.mark.anyio
async def test_a_pass_makes_no_folder_that_is_no_place_of_the_file(root: Path, state: State) -> None:
    """The walk met ``custom49.html`` in ``ungrouped_moved``; by the write the folder had its name back."""
    await write_new(root, state, f"{SET}/ungrouped_moved/custom49.html")
    assert not (root / SET / "ungrouped_moved").exists()
    assert state.get([f"{SET}/ungrouped_moved/custom49.html"]) == {}


@pytest.mark.anyio
async def test_a_pass_makes_the_files_own_group_folder(root: Path, state: State) -> None:
    (root / SET / "ungrouped").rmdir()
    await write_new(root, state, f"{SET}/ungrouped/custom49.html")
    assert (root / SET / "ungrouped" / "custom49.html").read_text() == "<p>row</p>"
