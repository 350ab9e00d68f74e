"""The poller's pure decisions: which rows are news, whether rows left, and which files show them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import anyio
import pytest

from boards import CatalogTarget
from mybb_sync.catalog import Catalog, load_catalog
from mybb_sync.config import Database
from mybb_sync.errors import DatabaseUnavailable
from mybb_sync.layout import GLOBAL_SID, MASTER_SID
from mybb_sync.poller import (
    Look,
    Poller,
    PollTarget,
    RecentWrites,
    added_rows,
    counts_moved,
    lost_rows,
    news,
    template_paths,
)
from mybb_sync.store import Store, seen

from conftest import raw_sql


def test_rows_seen_exactly_so_at_the_last_poll_are_not_news() -> None:
    rows = {(1, "index"): (7, 100, "d1"), (-2, "footer"): (3, 90, "d2")}
    assert news(rows, dict(rows)) == []


def test_a_row_saved_again_is_news_even_within_the_same_second() -> None:
    assert news({(1, "index"): (7, 100, "d1")}, {(1, "index"): (7, 100, "d2")}) == [(1, "index")]


def test_a_row_not_seen_before_is_news() -> None:
    assert news({}, {(1, "index"): (7, 100, "d1")}) == [(1, "index")]


def test_new_rows_alone_do_not_mean_rows_left() -> None:
    assert not lost_rows((10, 50), (12, 52), added=2)


def test_a_row_added_and_removed_between_polls_changes_nothing() -> None:
    """tid 51 came and went: the highest tid left is 50 again, the count is unchanged."""
    assert not lost_rows((10, 50), (10, 50), added=0)


def look(top: int, top_key: tuple[int, str] | None) -> Look:
    return Look(0.0, (10, top), top_key, {}, {})


def test_rows_above_the_old_highest_tid_are_added() -> None:
    found = {(1, "a"): (50, 0, "x"), (1, "b"): (51, 0, "y"), (1, "c"): (52, 0, "z")}
    assert added_rows(look(50, (1, "a")), found) == [(1, "b"), (1, "c")]


def test_the_old_highest_tid_holding_another_row_is_added() -> None:
    """SQLite hands out max(tid) + 1: the newest row deleted and another inserted reuse its tid."""
    assert added_rows(look(50, (1, "a")), {(-2, "plugin"): (50, 0, "p")}) == [(-2, "plugin")]


def test_a_revert_means_rows_left() -> None:
    assert lost_rows((10, 50), (9, 50), added=0)


def test_a_row_replaced_by_another_means_rows_left() -> None:
    """One row deleted and another inserted keep the count, but not the count of new rows."""
    assert lost_rows((10, 50), (10, 51), added=1)


def test_counts_moved_names_the_sets_that_gained_or_lost_rows() -> None:
    assert counts_moved({-2: 100, 1: 5, 2: 3}, {-2: 100, 1: 4, 3: 1}) == {1, 2, 3}


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


# --- against a real board (both engines) ---------------------------------------------------------


class Target(CatalogTarget):
    """A service stand-in whose state agrees with set 1's rows as they were at the start."""

    def __init__(self, catalog: Catalog, titles: dict[int, set[str]], rows: dict[int, str]) -> None:
        super().__init__(catalog)
        self.titles = titles
        self.rows = rows  # tid -> title of set 1's copies

    async def known_titles(self, sid: int) -> set[str]:
        return self.titles.get(sid, set())

    async def files_of_rows(self, tids: Sequence[int]) -> dict[int, list[tuple[str, tuple[int, str]]]]:
        return {t: [(self.catalog.template_path(1, self.rows[t]), (1, self.rows[t]))] for t in tids if t in self.rows}


@pytest.fixture
async def polled(board: Database, store: Store) -> tuple[Poller, Target]:
    catalog = await load_catalog(store)
    rows = {int(t): title for t, title in await raw_sql(board, "SELECT tid, title FROM mybb_templates WHERE sid = 1")}
    target = Target(catalog, {sid: await store.template_titles(sid) for sid in (MASTER_SID, GLOBAL_SID, 1)}, rows)
    poller = Poller(store, interval=1.0)
    await poller.baseline()
    return poller, target


async def first_row(board: Database, sid: int) -> tuple[int, str]:
    rows = await raw_sql(board, "SELECT tid, title FROM mybb_templates WHERE sid = %s ORDER BY tid LIMIT 1", (sid,))
    return int(rows[0][0]), rows[0][1]


async def save_like_the_admin_cp(board: Database, tid: int, text: str) -> None:
    await raw_sql(
        board, "UPDATE mybb_templates SET template = %s, dateline = %s WHERE tid = %s", (text, int(time.time()), tid)
    )


@pytest.mark.anyio
async def test_a_poll_with_nothing_changed_reports_nothing(polled: tuple[Poller, Target]) -> None:
    poller, target = polled
    assert await poller.poll(target) == (set(), set())


@pytest.mark.anyio
async def test_a_poll_finds_a_save_made_in_the_admin_cp(board: Database, polled: tuple[Poller, Target]) -> None:
    poller, target = polled
    tid, title = await first_row(board, 1)
    await save_like_the_admin_cp(board, tid, "edited in the Admin CP")
    paths, prefixes = await poller.poll(target)
    assert paths == template_paths(target.catalog, 1, [title]) and prefixes == set()


@pytest.mark.anyio
async def test_polls_wait_while_the_service_has_work_in_hand(board: Database, polled: tuple[Poller, Target]) -> None:
    poller, target = polled
    poller.interval = 0.01
    tid, title = await first_row(board, 1)
    await save_like_the_admin_cp(board, tid, "saved during a burst of imports")
    asked, idle, polls = anyio.Event(), anyio.Event(), []
    poll = poller.poll

    async def busy() -> None:
        asked.set()
        await idle.wait()

    async def counted(service: PollTarget) -> tuple[set[str], set[str]]:
        polls.append(service)
        return await poll(service)

    target.until_idle = busy  # type: ignore[method-assign]
    poller.poll = counted  # type: ignore[method-assign]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poller.run, target)
            await asked.wait()
            assert polls == []
            idle.set()
            await target.pending.wait()
            tg.cancel_scope.cancel()
    assert target.pending.paths == template_paths(target.catalog, 1, [title])


@pytest.mark.anyio
async def test_polls_wait_for_a_busy_service_no_longer_than_their_limit(
    board: Database, polled: tuple[Poller, Target]
) -> None:
    poller, target = polled
    poller.interval, poller.busy_wait = 0.01, 0.05
    tid, title = await first_row(board, 1)
    await save_like_the_admin_cp(board, tid, "saved while imports never end")
    target.until_idle = anyio.sleep_forever  # type: ignore[method-assign]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poller.run, target)
            await target.pending.wait()
            tg.cancel_scope.cancel()
    assert target.pending.paths == template_paths(target.catalog, 1, [title])


@pytest.mark.anyio
async def test_a_second_save_within_the_same_second_is_found_too(
    board: Database, polled: tuple[Poller, Target]
) -> None:
    poller, target = polled
    tid, title = await first_row(board, 1)
    stamp = int(time.time())
    await raw_sql(board, "UPDATE mybb_templates SET template = 'one', dateline = %s WHERE tid = %s", (stamp, tid))
    assert await poller.poll(target) == (template_paths(target.catalog, 1, [title]), set())
    await raw_sql(board, "UPDATE mybb_templates SET template = 'two', dateline = %s WHERE tid = %s", (stamp, tid))
    assert await poller.poll(target) == (template_paths(target.catalog, 1, [title]), set())


@pytest.mark.anyio
async def test_a_template_a_plugin_inserts_without_a_dateline_is_found(
    board: Database, polled: tuple[Poller, Target]
) -> None:
    poller, target = polled
    await raw_sql(board, "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) "
                         "VALUES ('myplugin_box', 'p', -2, '1800', '', 0)")  # fmt: skip
    paths, _ = await poller.poll(target)
    assert paths == template_paths(target.catalog, MASTER_SID, ["myplugin_box"])


@pytest.mark.anyio
async def test_a_reverted_set_copy_is_found(board: Database, polled: tuple[Poller, Target]) -> None:
    poller, target = polled
    tid, title = await first_row(board, 1)
    await raw_sql(board, "DELETE FROM mybb_templates WHERE tid = %s", (tid,))
    paths, _ = await poller.poll(target)
    assert paths == template_paths(target.catalog, 1, [title])


@pytest.mark.anyio
async def test_a_copy_replaced_by_another_between_two_polls_is_found(
    board: Database, polled: tuple[Poller, Target]
) -> None:
    """One row gone and one new: the count is unchanged, yet both titles are looked at."""
    poller, target = polled
    tid, title = await first_row(board, 1)
    await raw_sql(board, "DELETE FROM mybb_templates WHERE tid = %s", (tid,))
    await raw_sql(board, "INSERT INTO mybb_templates (title, template, sid, version, status, dateline) "
                         "VALUES ('brand_new', 'n', 1, '1800', '', %s)", (int(time.time()),))  # fmt: skip
    paths, _ = await poller.poll(target)
    assert paths == template_paths(target.catalog, 1, [title, "brand_new"])


@pytest.mark.anyio
async def test_a_row_still_as_our_own_import_stored_it_is_not_news(store: Store, polled: tuple[Poller, Target]) -> None:
    poller, target = polled
    title = next(iter(target.titles[1]))
    stored = await store.save_templates(1, [(title, "imported from a file")], now=int(time.time()))
    target.own_writes.add(1, title, seen(stored[title]))
    assert await poller.poll(target) == (set(), set())


@pytest.mark.anyio
async def test_a_poll_long_after_the_last_one_finds_saves_stamped_in_between(
    board: Database, polled: tuple[Poller, Target]
) -> None:
    """The first poll after a long start-up pass, or after polls skipped while the database was away."""
    poller, target = polled
    assert poller._look is not None  # noqa: SLF001 - the last poll began five minutes ago
    poller._look = replace(poller._look, started=poller._look.started - 300)  # noqa: SLF001
    tid, title = await first_row(board, 1)
    await raw_sql(
        board,
        "UPDATE mybb_templates SET template = 'then', dateline = %s WHERE tid = %s",
        (int(time.time()) - 200, tid),
    )
    assert (await poller.poll(target))[0] == template_paths(target.catalog, 1, [title])


@pytest.mark.anyio
async def test_a_poll_cut_short_by_the_database_is_done_again_in_full(
    board: Database, store: Store, polled: tuple[Poller, Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    poller, target = polled
    tid, title = await first_row(board, 1)
    await save_like_the_admin_cp(board, tid, "saved while the database went away")
    touched = store.templates_touched

    async def gone(*args: object) -> object:
        monkeypatch.setattr(store, "templates_touched", touched)
        raise DatabaseUnavailable("database unavailable: gone")

    monkeypatch.setattr(store, "templates_touched", gone)
    with pytest.raises(DatabaseUnavailable):
        await poller.poll(target)
    assert (await poller.poll(target))[0] == template_paths(target.catalog, 1, [title])


@pytest.mark.anyio
async def test_the_newest_row_deleted_and_its_tid_handed_out_again_is_found(
    board: Database, polled: tuple[Poller, Target]
) -> None:
    poller, target = polled
    ((tid, title),) = await raw_sql(
        board, "SELECT tid, title FROM mybb_templates WHERE sid = 1 ORDER BY tid DESC LIMIT 1"
    )
    assert int(tid) == max(target.rows)
    await raw_sql(board, "DELETE FROM mybb_templates WHERE tid = %s", (tid,))
    await raw_sql(board, "INSERT INTO mybb_templates (tid, title, template, sid, version, status, dateline) "
                         "VALUES (%s, 'myplugin_box', 'p', -2, '1800', '', 0)", (tid,))  # fmt: skip
    paths, _ = await poller.poll(target)
    assert paths == template_paths(target.catalog, 1, [title]) | template_paths(
        target.catalog, MASTER_SID, ["myplugin_box"]
    )


@pytest.mark.anyio
async def test_a_copy_renamed_is_looked_at_under_both_titles(board: Database, polled: tuple[Poller, Target]) -> None:
    poller, target = polled
    tid, title = await first_row(board, 1)
    await raw_sql(
        board, "UPDATE mybb_templates SET title = 'renamed_box', dateline = %s WHERE tid = %s", (int(time.time()), tid)
    )
    paths, _ = await poller.poll(target)
    assert paths == template_paths(target.catalog, 1, [title, "renamed_box"])
