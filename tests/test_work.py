"""Decisions sorted into work (pure): what each outcome of the rule asks the exporter to do."""

from __future__ import annotations

from mybb_sync.engine import Decision, Entry, row_facts
from mybb_sync.files import FileStat
from mybb_sync.layout import Kind
from mybb_sync.reconcile import Action, content_hash
from mybb_sync.state import FileState
from mybb_sync.store import TemplateRow
from mybb_sync.work import conflict_detail, sort

PATH = "template_sets/Default Templates/ungrouped/footer.html"
ROW = TemplateRow(7, 1, "footer", "<p>row</p>", "1837", "", 100)
STAT = FileStat(11, 1_000_000_000, 42)


def decision(action: Action, *, stat: FileStat | None = STAT, state: bool = True, text: str | None = None) -> Decision:
    entry = Entry(PATH, Kind.TEMPLATE, 1, "footer", ROW)
    base = content_hash(Kind.TEMPLATE, "<p>row</p>")
    row_id, owner, marker, digest = row_facts(ROW)
    st = FileState(PATH, Kind.TEMPLATE, 1, "footer", base, row_id, owner, marker, STAT, None, digest) if state else None
    return Decision(entry, action, st, base, content_hash(Kind.TEMPLATE, text or "<p>file</p>"), stat, text)


def kinds(work: object) -> dict[str, int]:
    names = ("writes", "imports", "deleted", "removals", "forget", "settled", "conflicts")
    return {n: len(getattr(work, n)) for n in names if getattr(work, n)}


def test_an_export_is_a_write() -> None:
    assert kinds(sort([decision(Action.EXPORT)], two_way=True, force=False, racy_ns=0)) == {"writes": 1}


def test_an_import_is_imported_by_the_service_and_left_by_a_one_way_export() -> None:
    d = decision(Action.IMPORT, text="<p>file</p>")
    assert kinds(sort([d], two_way=True, force=False, racy_ns=0)) == {"imports": 1}
    assert kinds(sort([d], two_way=False, force=False, racy_ns=0)) == {"conflicts": 1}


def test_a_file_deleted_on_disk_goes_to_the_service_or_is_written_back_by_an_export() -> None:
    d = decision(Action.DISK_DELETED, stat=None)
    assert kinds(sort([d], two_way=True, force=False, racy_ns=0)) == {"deleted": 1}
    assert kinds(sort([d], two_way=False, force=False, racy_ns=0)) == {"writes": 1}


def test_a_conflict_is_left_alone_unless_forced() -> None:
    d = decision(Action.CONFLICT)
    assert kinds(sort([d], two_way=True, force=False, racy_ns=0)) == {"conflicts": 1}
    forced = sort([d], two_way=False, force=True, racy_ns=0)
    assert kinds(forced) == {"writes": 1} and forced.forced == 1


def test_a_file_whose_row_went_is_removed_if_present_else_forgotten() -> None:
    assert kinds(sort([decision(Action.DELETE_FILE)], two_way=True, force=False, racy_ns=0)) == {"removals": 1}
    gone = decision(Action.DELETE_FILE, stat=None)
    assert kinds(sort([gone], two_way=True, force=False, racy_ns=0)) == {"forget": 1}


def test_an_adopted_file_is_recorded_as_agreed() -> None:
    work = sort([decision(Action.ADOPT, state=False)], two_way=True, force=False, racy_ns=0)
    assert kinds(work) == {"settled": 1} and work.adopted == 1


def test_nothing_to_do_with_a_moved_stat_restamps_the_state() -> None:
    moved = decision(Action.NOTHING, stat=FileStat(11, 2_000_000_000, 42))
    work = sort([moved], two_way=True, force=False, racy_ns=0)
    assert kinds(work) == {"settled": 1} and work.unchanged == 1
    assert work.settled[0].stat == FileStat(11, 2_000_000_000, 42)


def test_nothing_to_do_with_the_same_stat_and_row_records_nothing() -> None:
    work = sort([decision(Action.NOTHING)], two_way=True, force=False, racy_ns=0)
    assert kinds(work) == {} and work.unchanged == 1


def test_a_conflict_says_what_changed_where() -> None:
    assert conflict_detail(decision(Action.CONFLICT, state=False)).endswith("resolve --take disk|db")
    assert conflict_detail(decision(Action.IMPORT)) == "file changed on disk since the last sync (not overwritten)"
    assert conflict_detail(decision(Action.CONFLICT)) == "both the file and the database changed since the last sync"
