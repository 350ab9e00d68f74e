"""Specification of ``state``: the per-root SQLite store, problems and meta."""

from __future__ import annotations

import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mybb_sync.layout import STATE_DIR, Kind
from mybb_sync.state import (
    RACY_NS,
    SCHEMA_VERSION,
    FileStat,
    FileState,
    Problem,
    ProblemKind,
    State,
)

NOW = 1_700_000_000_000_000_000  # a fixed "checked" time, ns
STAT = FileStat(size=512, mtime_ns=NOW - 10 * RACY_NS, ino=4242)


def make_state(path: str = "template_sets/S/index/index.html", **overrides: object) -> FileState:
    fields: dict[str, object] = {
        "path": path,
        "kind": Kind.TEMPLATE,
        "owner": 1,
        "name": "index",
        "base": "0123456789abcdef0123456789abcdef",
        "row_id": 17,
        "row_owner": 1,
        "marker": 1_699_999_000,
        "stat": STAT,
        "checked_ns": NOW,
    }
    fields.update(overrides)
    return FileState(**fields)  # type: ignore[arg-type]


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    s = State(tmp_path)
    yield s
    s.close()


# --- files: put / get / delete ----------------------------------------------------


def test_the_store_lives_in_a_private_state_folder(tmp_path: Path) -> None:
    State(tmp_path).close()
    folder = tmp_path / STATE_DIR
    assert (folder / "state.sqlite").is_file()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_the_store_uses_write_ahead_logging(state: State) -> None:
    with sqlite3.connect(state.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_put_then_get_returns_an_equal_state(state: State) -> None:
    row = make_state()
    state.put([row])
    assert state.get([row.path]) == {row.path: row}


def test_a_stylesheet_state_round_trips_with_its_kind(state: State) -> None:
    row = make_state("styles/Default/global.css", kind=Kind.STYLESHEET, name="global.css", owner=2)
    state.put([row])
    got = state.get([row.path])[row.path]
    assert got == row and got.kind is Kind.STYLESHEET


def test_a_state_without_row_facts_round_trips(state: State) -> None:
    row = make_state(row_id=None, row_owner=None, marker=None)
    state.put([row])
    assert state.get([row.path])[row.path] == row


def test_a_state_without_a_stat_round_trips(state: State) -> None:
    row = make_state(stat=None)
    state.put([row])
    assert state.get([row.path])[row.path].stat is None


def test_a_non_ascii_path_round_trips(state: State) -> None:
    row = make_state("template_sets/Thème 中文/ungrouped/%2E.%2Fx.html", name="../x")
    state.put([row])
    assert state.get([row.path]) == {row.path: row}


def test_put_without_checked_time_records_the_time_of_the_put(state: State) -> None:
    before = time.time_ns()
    state.put([make_state(checked_ns=None)])
    after = time.time_ns()
    checked = state.get([make_state().path])[make_state().path].checked_ns
    assert checked is not None and before <= checked <= after


def test_tracks_under_sees_the_files_below_a_folder_and_no_others(state: State) -> None:
    state.put([make_state("template_sets/S/index/index.html"), make_state("template_sets/S/index0/x.html")])
    assert state.tracks_under("template_sets/S/index")
    assert state.tracks_under("template_sets")
    assert not state.tracks_under("template_sets/S/ind")  # a prefix of a name is no folder
    assert not state.tracks_under("template_sets/S/header")
    assert not state.tracks_under("template_sets/S/index/index.html")  # a file has nothing below it


def test_get_of_an_unknown_path_returns_nothing(state: State) -> None:
    assert state.get(["styles/None/x.css"]) == {}


def test_get_returns_only_the_requested_paths(state: State) -> None:
    state.put([make_state("global_templates/a.html"), make_state("global_templates/b.html")])
    assert set(state.get(["global_templates/b.html", "global_templates/zzz.html"])) == {"global_templates/b.html"}


def test_get_of_no_paths_returns_nothing(state: State) -> None:
    state.put([make_state()])
    assert state.get([]) == {}


def test_get_handles_more_paths_than_one_sqlite_statement_can_bind(state: State) -> None:
    rows = [make_state(f"global_templates/t{i:05}.html", name=f"t{i:05}") for i in range(2500)]
    state.put(rows)
    got = state.get([r.path for r in rows])
    assert len(got) == 2500 and got[rows[-1].path] == rows[-1]


def test_put_replaces_the_row_of_the_same_path(state: State) -> None:
    state.put([make_state(base="old")])
    state.put([make_state(base="new", marker=5)])
    got = state.get([make_state().path])[make_state().path]
    assert (got.base, got.marker) == ("new", 5)
    assert state.count() == 1


def test_put_of_nothing_changes_nothing(state: State) -> None:
    state.put([])
    assert state.count() == 0


def test_put_accepts_any_iterable(state: State) -> None:
    state.put(make_state(f"global_templates/{i}.html") for i in range(3))
    assert state.count() == 3


def test_delete_removes_the_rows(state: State) -> None:
    state.put([make_state("global_templates/a.html"), make_state("global_templates/b.html")])
    state.delete(["global_templates/a.html"])
    assert set(state.get(["global_templates/a.html", "global_templates/b.html"])) == {"global_templates/b.html"}


OLD_PLACE, NEW_PLACE = "template_sets/S/index/index.html", "template_sets/S/Moved/index.html"


def test_move_gives_the_new_place_the_base_and_row_but_no_stat(state: State) -> None:
    state.put([make_state(OLD_PLACE, row_digest=99)])
    state.report([Problem(OLD_PLACE, ProblemKind.MISSING, "file deleted", 1.0)])
    state.move({OLD_PLACE: NEW_PLACE})
    found = state.get([OLD_PLACE, NEW_PLACE])
    assert list(found) == [NEW_PLACE]
    assert found[NEW_PLACE] == make_state(NEW_PLACE, row_digest=99, stat=None, checked_ns=None)
    assert state.problems() == []


def test_move_keeps_a_state_the_new_place_has_already(state: State) -> None:
    state.put([make_state(OLD_PLACE), make_state(NEW_PLACE, base="f" * 32)])
    state.move({OLD_PLACE: NEW_PLACE})
    assert [s.base for s in state.get([OLD_PLACE, NEW_PLACE]).values()] == ["f" * 32]


def test_move_takes_a_write_of_ours_in_doubt_along(state: State) -> None:
    state.put([make_state(OLD_PLACE)])
    state.record_intents({OLD_PLACE: "h"})
    state.move({OLD_PLACE: NEW_PLACE})
    assert state.intents([OLD_PLACE, NEW_PLACE]) == {NEW_PLACE: "h"}


def test_move_to_a_tracked_place_keeps_that_places_own_intent(state: State) -> None:
    state.put([make_state(OLD_PLACE), make_state(NEW_PLACE)])
    state.record_intents({OLD_PLACE: "old", NEW_PLACE: "new"})
    state.move({OLD_PLACE: NEW_PLACE})
    assert state.intents([OLD_PLACE, NEW_PLACE]) == {NEW_PLACE: "new"}


def test_no_intent_is_found_where_none_was_recorded(state: State) -> None:
    assert state.intents([OLD_PLACE, NEW_PLACE]) == {}


def test_an_intent_is_found_among_a_thousand_paths(state: State) -> None:
    paths = [f"template_sets/S/index/t{i}.html" for i in range(1000)]
    state.record_intents({paths[950]: "h"})
    assert state.intents(paths) == {paths[950]: "h"}


def test_put_clears_an_intent_and_a_problem_among_others(state: State) -> None:
    state.record_intents({OLD_PLACE: "a", NEW_PLACE: "b"})
    state.report([Problem(p, ProblemKind.CONFLICT, "x", 1.0) for p in (OLD_PLACE, NEW_PLACE)])
    state.put([make_state(OLD_PLACE)])
    assert state.intents([OLD_PLACE, NEW_PLACE]) == {NEW_PLACE: "b"}
    assert [p.path for p in state.problems()] == [NEW_PLACE]


def test_of_names_finds_an_owners_states_wherever_their_files_are(state: State) -> None:
    state.put([make_state(NEW_PLACE), make_state("template_sets/S/x/x.html", name="x"), make_state(owner=2)])
    assert [s.path for s in state.of_names(Kind.TEMPLATE, 1, ["index"])] == [NEW_PLACE]


def test_delete_of_an_unknown_path_is_harmless(state: State) -> None:
    state.put([make_state()])
    state.delete(["global_templates/none.html"])
    assert state.count() == 1


def test_all_lists_every_row_ordered_by_path(state: State) -> None:
    paths = ["styles/T/b.css", "global_templates/z.html", "styles/T/a.css"]
    state.put([make_state(p) for p in paths])
    assert [s.path for s in state.all()] == sorted(paths)


def test_count_counts_the_rows(state: State) -> None:
    state.put([make_state(f"global_templates/{i}.html") for i in range(7)])
    assert state.count() == 7


def test_rows_survive_closing_and_reopening(tmp_path: Path) -> None:
    first = State(tmp_path)
    first.put([make_state()])
    first.close()
    second = State(tmp_path)
    try:
        assert second.get([make_state().path]) == {make_state().path: make_state()}
    finally:
        second.close()


def test_puts_from_many_threads_all_land(state: State) -> None:
    def writer(t: int) -> None:
        for i in range(50):
            state.put([make_state(f"global_templates/{t}-{i}.html")])

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert state.count() == 400


# --- FileState.unchanged -----------------------------------------------------------


def test_an_equal_stat_recorded_well_after_the_mtime_is_trusted() -> None:
    assert make_state().unchanged(STAT)


def test_an_equal_stat_with_an_mtime_close_to_the_check_is_not_trusted() -> None:
    racy = FileStat(512, NOW - RACY_NS // 2, 4242)
    assert not make_state(stat=racy).unchanged(racy)


def test_an_mtime_exactly_at_the_racy_limit_is_not_trusted() -> None:
    edge = FileStat(512, NOW - RACY_NS, 4242)
    assert not make_state(stat=edge).unchanged(edge)


def test_an_mtime_just_past_the_racy_limit_is_trusted() -> None:
    edge = FileStat(512, NOW - RACY_NS - 1, 4242)
    assert make_state(stat=edge).unchanged(edge)


def test_an_mtime_after_the_check_is_not_trusted() -> None:
    future = FileStat(512, NOW + 1, 4242)
    assert not make_state(stat=future).unchanged(future)


def test_a_different_inode_is_not_trusted() -> None:
    assert not make_state().unchanged(FileStat(STAT.size, STAT.mtime_ns, STAT.ino + 1))


def test_a_different_size_is_not_trusted() -> None:
    assert not make_state().unchanged(FileStat(STAT.size + 1, STAT.mtime_ns, STAT.ino))


def test_a_different_mtime_is_not_trusted() -> None:
    assert not make_state().unchanged(FileStat(STAT.size, STAT.mtime_ns + 1, STAT.ino))


def test_an_older_mtime_is_not_trusted_either() -> None:
    assert not make_state().unchanged(FileStat(STAT.size, STAT.mtime_ns - 1, STAT.ino))


def test_a_missing_file_is_not_unchanged() -> None:
    assert not make_state().unchanged(None)


def test_a_state_without_a_recorded_stat_trusts_nothing() -> None:
    assert not make_state(stat=None).unchanged(STAT)


def test_a_state_without_a_check_time_trusts_nothing() -> None:
    assert not make_state(checked_ns=None).unchanged(STAT)


def test_a_stored_and_reloaded_state_trusts_the_same_stat(state: State) -> None:
    state.put([make_state()])
    assert state.get([make_state().path])[make_state().path].unchanged(STAT)


def test_a_page_of_a_set_holds_its_files_by_name_after_the_one_given(state: State) -> None:
    names = ["a", "b", "c", "d"]
    state.put([make_state(f"template_sets/S/ungrouped/{n}.html", name=n) for n in reversed(names)])
    state.put([make_state("template_sets/T/ungrouped/a.html", owner=2, name="a")])
    page = state.page_of(Kind.TEMPLATE, 1, "a", 2)
    assert [(t.path, t.name, t.stat, t.checked_ns) for t in page] == [
        (f"template_sets/S/ungrouped/{n}.html", n, STAT, NOW) for n in ("b", "c")
    ]


@pytest.mark.parametrize(
    "recorded, checked_ns, current",
    [
        (STAT, NOW, STAT),
        (STAT, NOW, FileStat(STAT.size + 1, STAT.mtime_ns, STAT.ino)),
        (FileStat(512, NOW - RACY_NS // 2, 4242), NOW, FileStat(512, NOW - RACY_NS // 2, 4242)),
        (None, NOW, STAT),
        (STAT, NOW, None),
    ],
)
def test_a_page_entry_proves_a_file_unchanged_exactly_when_its_full_state_does(
    state: State, recorded: FileStat | None, checked_ns: int | None, current: FileStat | None
) -> None:
    full = make_state(stat=recorded, checked_ns=checked_ns)
    state.put([full])
    [tracked] = state.page_of(Kind.TEMPLATE, 1, "", 10)
    assert tracked.unchanged(current) == full.unchanged(current)


# --- problems ------------------------------------------------------------------------


def problem(path: str = "styles/T/a.css", kind: ProblemKind = ProblemKind.CONFLICT, detail: str = "both changed",
            since: float = 1000.0) -> Problem:  # fmt: skip
    return Problem(path, kind, detail, since)


def test_reported_problems_are_listed(state: State) -> None:
    state.report([problem()])
    assert state.problems() == [problem()]


def test_there_are_no_problems_at_first(state: State) -> None:
    assert state.problems() == []


def test_reporting_a_path_again_updates_kind_and_detail_but_keeps_since(state: State) -> None:
    state.report([problem(kind=ProblemKind.CONFLICT, detail="first", since=1.0)])
    state.report([problem(kind=ProblemKind.INVALID, detail="second", since=2.0)])
    assert state.problems() == [problem(kind=ProblemKind.INVALID, detail="second", since=1.0)]


def test_problems_can_be_listed_by_kind(state: State) -> None:
    state.report([problem("a", ProblemKind.CONFLICT), problem("b", ProblemKind.INVALID)])
    state.report([problem("c", ProblemKind.ERROR)])
    assert [p.path for p in state.problems(ProblemKind.INVALID)] == ["b"]


def test_problems_are_listed_by_path(state: State) -> None:
    state.report([problem("c"), problem("a"), problem("b")])
    assert [p.path for p in state.problems()] == ["a", "b", "c"]


def test_problem_kinds_round_trip_as_enums(state: State) -> None:
    state.report([problem(f"p-{kind.value}", kind) for kind in ProblemKind])
    assert {p.kind for p in state.problems()} == set(ProblemKind)
    assert all(isinstance(p.kind, ProblemKind) for p in state.problems())


def test_clear_problems_removes_only_the_given_paths(state: State) -> None:
    state.report([problem("a"), problem("b")])
    state.clear_problems(["a", "unknown"])
    assert [p.path for p in state.problems()] == ["b"]


def test_reporting_nothing_changes_nothing(state: State) -> None:
    state.report([])
    assert state.problems() == []


def test_recording_a_new_agreement_clears_the_paths_conflict(state: State) -> None:
    state.report([problem(make_state().path, ProblemKind.CONFLICT)])
    state.put([make_state()])
    assert state.problems() == []


def test_recording_a_new_agreement_clears_the_paths_invalid_content_problem(state: State) -> None:
    """Agreement is only recorded for valid content: a fixed file is no longer invalid."""
    state.report([problem(make_state().path, ProblemKind.INVALID)])
    state.put([make_state()])
    assert state.problems() == []


def test_deleting_a_row_clears_every_problem_of_its_path(state: State) -> None:
    state.put([make_state()])
    state.report([problem(make_state().path, ProblemKind.INVALID)])
    state.delete([make_state().path])
    assert state.problems() == []


def test_problems_survive_reopening(tmp_path: Path) -> None:
    first = State(tmp_path)
    first.report([problem()])
    first.close()
    second = State(tmp_path)
    try:
        assert second.problems() == [problem()]
    finally:
        second.close()


# --- meta ----------------------------------------------------------------------------


def test_a_new_store_records_its_schema_version(state: State) -> None:
    assert state.meta("schema") == str(SCHEMA_VERSION)


def test_an_unknown_meta_key_has_no_value(state: State) -> None:
    assert state.meta("nothing-here") is None


def test_set_meta_then_meta_returns_the_value(state: State) -> None:
    state.set_meta("board", "mysql://forum@localhost/mybb")
    assert state.meta("board") == "mysql://forum@localhost/mybb"


def test_set_meta_overwrites_the_previous_value(state: State) -> None:
    state.set_meta("k", "1")
    state.set_meta("k", "2")
    assert state.meta("k") == "2"


def test_reopening_keeps_meta_values(tmp_path: Path) -> None:
    first = State(tmp_path)
    first.set_meta("k", "v")
    first.close()
    second = State(tmp_path)
    try:
        assert (second.meta("k"), second.meta("schema")) == ("v", str(SCHEMA_VERSION))
    finally:
        second.close()


def test_files_of_rows_names_every_file_agreed_with_a_row_and_the_row_as_it_was(state: State) -> None:
    """A master row shows in every set: each set's file is named, with the row's sid and title then."""
    state.put([
        make_state("template_sets/S/index/index.html", row_id=5, row_owner=-2),
        make_state("template_sets/T/index/index.html", owner=2, row_id=5, row_owner=-2),
        make_state("template_sets/S/index/other.html", name="other", row_id=6),
    ])  # fmt: skip
    found = state.files_of_rows(Kind.TEMPLATE, [5, 99])
    assert {tid: sorted(files) for tid, files in found.items()} == {
        5: [("template_sets/S/index/index.html", (-2, "index")), ("template_sets/T/index/index.html", (-2, "index"))]
    }


# --- the digest of a set's files ------------------------------------------------------


def test_a_row_digest_round_trips(state: State) -> None:
    s = make_state(row_digest=2**40 - 1)
    state.put([s])
    assert state.get([s.path])[s.path] == s


def test_digest_of_sums_the_row_ids_and_row_digests_of_one_sets_files(state: State) -> None:
    state.put([
        make_state("template_sets/S/index/index.html", row_id=5, row_digest=100),
        make_state("template_sets/S/index/index_boardstats.html", name="index_boardstats", row_id=7, row_digest=20),
        make_state("template_sets/T/index/index.html", owner=2, row_id=9, row_digest=3),
        make_state("styles/Default/global.css", kind=Kind.STYLESHEET, name="global.css", row_id=5, row_digest=None),
    ])  # fmt: skip
    assert state.digest_of(Kind.TEMPLATE, 1) == (2, 12, 120)
    assert state.digest_of(Kind.TEMPLATE, 3) == (0, 0, 0)


def test_digest_of_is_none_while_a_file_has_no_row_digest(state: State) -> None:
    """Rows written by an older version: their set cannot be proven unchanged until read in full."""
    state.put(
        [make_state(row_digest=100), make_state("template_sets/S/index/other.html", name="other", row_digest=None)]
    )
    assert state.digest_of(Kind.TEMPLATE, 1) is None


def test_a_store_written_by_schema_version_1_gains_row_digests_and_drops_its_per_set_records(tmp_path: Path) -> None:
    folder = tmp_path / STATE_DIR
    folder.mkdir()
    old = sqlite3.connect(folder / "state.sqlite")
    old.executescript(
        "CREATE TABLE files (path TEXT PRIMARY KEY, kind TEXT NOT NULL, owner INTEGER NOT NULL, name TEXT NOT NULL, "
        "base TEXT NOT NULL, row_id INTEGER, row_owner INTEGER, marker INTEGER, size INTEGER, mtime_ns INTEGER, "
        "ino INTEGER, checked_ns INTEGER);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema', '1'), ('agreed:set:1', 'x#y'), ('board', 'kept');"
        "INSERT INTO files VALUES ('template_sets/S/index/index.html', 'template', 1, 'index', 'b', 17, 1, 5, 1, 2, 3, 4);"
    )
    old.commit()
    old.close()
    state = State(tmp_path)
    try:
        [s] = state.get(["template_sets/S/index/index.html"]).values()
        assert (s.base, s.row_id, s.row_digest) == ("b", 17, None)
        assert state.digest_of(Kind.TEMPLATE, 1) is None
        assert (state.meta("agreed:set:1"), state.meta("board"), state.meta("schema")) == (
            None,
            "kept",
            str(SCHEMA_VERSION),
        )
    finally:
        state.close()


def test_paths_lists_every_tracked_path_sorted(state: State) -> None:
    state.put([make_state("b/x.html"), make_state("a/y.html"), make_state("a/x.html")])
    assert state.paths() == ["a/x.html", "a/y.html", "b/x.html"]


def test_a_store_written_by_a_newer_version_keeps_its_schema_version(tmp_path: Path) -> None:
    first = State(tmp_path)
    first.set_meta("schema", str(SCHEMA_VERSION + 1))
    first.close()
    second = State(tmp_path)
    try:
        assert second.meta("schema") == str(SCHEMA_VERSION + 1)
    finally:
        second.close()


def test_opening_an_up_to_date_store_takes_no_write_lock(tmp_path: Path) -> None:
    """``status`` and ``diff`` open the state while the service may be writing it."""
    State(tmp_path).close()
    writer = sqlite3.connect(tmp_path / STATE_DIR / "state.sqlite", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        reader = State(tmp_path)
        try:
            assert reader.meta("schema") == str(SCHEMA_VERSION)
        finally:
            reader.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
