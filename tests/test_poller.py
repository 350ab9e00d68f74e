"""The poller's pure decisions: which sets moved between two marker snapshots, and which files show them."""

from __future__ import annotations

from mybb_sync.catalog import Catalog
from mybb_sync.layout import GLOBAL_SID, MASTER_SID
from mybb_sync.poller import RecentWrites, diff_markers, template_paths
from mybb_sync.store import TableMarker

M = TableMarker  # rows, max id, max dateline, sum of ids


def test_equal_snapshots_change_nothing() -> None:
    markers = {MASTER_SID: M(10, 10, 100, 55), 1: M(2, 12, 200, 23)}
    changes = diff_markers(markers, dict(markers))
    assert changes.saved_since == {} and changes.membership == frozenset()


def test_an_update_is_looked_for_from_the_old_newest_second() -> None:
    changes = diff_markers({1: M(2, 12, 200, 23)}, {1: M(2, 12, 250, 23)})
    assert changes.saved_since == {1: 200}
    assert changes.membership == frozenset()


def test_an_insert_changes_membership() -> None:
    changes = diff_markers({1: M(2, 12, 200, 23)}, {1: M(3, 13, 250, 36)})
    assert changes.membership == {1}


def test_a_replaced_row_with_the_same_count_changes_membership() -> None:
    """A delete and an insert between two polls keep the count but not the sum of ids."""
    changes = diff_markers({1: M(2, 12, 200, 23)}, {1: M(2, 14, 200, 25)})
    assert 1 in changes.membership


def test_a_set_whose_last_row_went_is_looked_at_in_full() -> None:
    changes = diff_markers({1: M(1, 12, 200, 12)}, {})
    assert changes.saved_since == {1: 200} and changes.membership == {1}


def test_a_new_set_is_looked_at_from_the_beginning() -> None:
    changes = diff_markers({}, {2: M(1, 40, 300, 40)})
    assert changes.saved_since == {2: 0} and changes.membership == {2}


CATALOG = Catalog(sets={1: "Default Templates", 2: "Other"}, groups=frozenset({"index"}), themes={})


def test_a_master_template_shows_in_every_set() -> None:
    assert template_paths(CATALOG, MASTER_SID, ["index_box"]) == {
        "template_sets/Default Templates/index/index_box.html",
        "template_sets/Other/index/index_box.html",
    }


def test_a_set_copy_shows_in_its_set_only() -> None:
    assert template_paths(CATALOG, 2, ["index_box"]) == {"template_sets/Other/index/index_box.html"}


def test_a_global_template_shows_in_the_global_folder() -> None:
    assert template_paths(CATALOG, GLOBAL_SID, ["footer"]) == {"global_templates/footer.html"}


def test_titles_that_cannot_be_file_names_are_left_out() -> None:
    assert template_paths(CATALOG, 1, ["x" * 300]) == set()


def test_a_set_the_catalog_does_not_know_shows_nowhere() -> None:
    assert template_paths(CATALOG, 9, ["index_box"]) == set()


def test_a_row_holding_exactly_what_we_stored_is_ours() -> None:
    writes = RecentWrites()
    writes.add(1, "index_box", (7, 100, "d1"))
    assert writes.ours(1, "index_box", (7, 100, "d1"))


def test_a_row_with_other_text_or_in_another_set_is_not_ours() -> None:
    writes = RecentWrites()
    writes.add(1, "index_box", (7, 100, "d1"))
    assert not writes.ours(1, "index_box", (7, 100, "d2")) and not writes.ours(2, "index_box", (7, 100, "d1"))


def test_our_text_saved_again_later_by_someone_else_is_not_ours() -> None:
    """We store T; the Admin CP saves T2, then T again (an undo): the row is news."""
    writes = RecentWrites()
    writes.add(1, "index_box", (7, 100, "d1"))
    assert not writes.ours(1, "index_box", (7, 103, "d1"))


def test_old_writes_are_forgotten() -> None:
    writes = RecentWrites(keep_seconds=-1)
    writes.add(1, "index_box", (7, 100, "d1"))
    writes.expire()
    assert not writes.ours(1, "index_box", (7, 100, "d1"))
