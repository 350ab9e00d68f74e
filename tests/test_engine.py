"""The engine: one batch of files through the rule, against real files and a real state store."""

from __future__ import annotations

from pathlib import Path

from mybb_sync.engine import Entry, Gathered, _invalid, decide_all, plan
from mybb_sync.files import FileRead, FileStat, Root
from mybb_sync.layout import Kind
from mybb_sync.reconcile import Action, content_hash
from mybb_sync.state import FileState, State
from mybb_sync.store import TemplateRow

PATH = "global_templates/footer.html"


def entry(text: str) -> Entry:
    return Entry(PATH, Kind.TEMPLATE, -1, "footer", TemplateRow(7, -1, "footer", text, "1837", "", 1))


def base_state(root: Path, text: str) -> State:
    state = State(root)
    state.put([FileState(PATH, Kind.TEMPLATE, -1, "footer", content_hash(Kind.TEMPLATE, text), 7, -1, 1, None)])
    return state


def test_a_write_that_landed_before_the_connection_died_is_recognised_as_ours(root: Path) -> None:
    """Regression (soak/outage test): import 'first', connection lost before the read-back,
    file edited again to 'second'. The row holds our own 'first': import, never a conflict."""
    state = base_state(root, "base")
    state.record_intents({PATH: content_hash(Kind.TEMPLATE, "first")})
    (root / "global_templates").mkdir()
    (root / PATH).write_text("second")
    [decision] = plan(Root(root), state, [entry("first")])
    assert decision.action is Action.IMPORT
    assert decision.disk_text == "second"


def test_an_intent_that_never_landed_changes_nothing(root: Path) -> None:
    state = base_state(root, "base")
    state.record_intents({PATH: content_hash(Kind.TEMPLATE, "first")})
    (root / "global_templates").mkdir()
    (root / PATH).write_text("second")
    [decision] = plan(Root(root), state, [entry("someone else")])
    assert decision.action is Action.CONFLICT
    assert not decision.intent_landed


def test_recording_agreement_clears_the_intent(root: Path) -> None:
    state = base_state(root, "base")
    state.record_intents({PATH: "h"})
    state.put(state.get([PATH]).values())
    assert state.intents([PATH]) == {}


def test_a_utf16_file_is_refused_as_utf16_not_as_a_nul_byte() -> None:
    for data in ("<div>hello</div>".encode("utf-16"), "<div>hello</div>".encode("utf-16-le")):
        assert _invalid(Kind.TEMPLATE, data, None) == "is UTF-16 (MyBB stores UTF-8: save it as UTF-8)"


def test_a_stray_nul_in_utf8_text_is_still_a_nul_byte() -> None:
    assert _invalid(Kind.TEMPLATE, b"<div>\x00</div>", None) == "contains a NUL byte"


def test_deciding_needs_no_files_only_what_was_gathered() -> None:
    """decide_all is pure: a file read as edited, with its row as the base, is an import."""
    stat = FileStat(9, 1, 1)
    gathered = Gathered(
        states={
            PATH: FileState(PATH, Kind.TEMPLATE, -1, "footer", content_hash(Kind.TEMPLATE, "base"), 7, -1, 1, None)
        },
        intents={},
        stats={PATH: stat},
        reads={PATH: FileRead(PATH, b"edited", stat, None)},
        held=set(),
        seen_ns=5,
    )
    [decision] = decide_all([entry("base")], gathered)
    assert (decision.action, decision.disk_text, decision.seen_ns) == (Action.IMPORT, "edited", 5)


def test_a_held_file_gets_no_decision() -> None:
    gathered = Gathered(states={}, intents={}, stats={PATH: None}, reads={}, held={PATH}, seen_ns=0)
    assert decide_all([entry("base")], gathered) == []


def test_a_file_its_writer_opened_while_it_was_being_read_is_left_alone(root: Path) -> None:
    """The writer opens the file (truncating it) and writes half just after the plan asked
    whether anyone writes it: asked again once read, the watcher knows now, and the half gets
    no decision (soak seed 3301: "a rescan imported a half-written file")."""
    state = base_state(root, "base")
    file = root / PATH
    file.parent.mkdir(parents=True)
    file.write_text("edited, whole")
    asked: list[str] = []

    def hold(path: str, stat: FileStat) -> bool:
        asked.append(path)
        if len(asked) == 1:  # no writer yet; one starts right after the answer
            file.write_text("edi")
            return False
        return True  # its IN_MODIFY reached the watcher meanwhile

    try:
        assert plan(Root(root), state, [entry("base")], hold=hold) == []
    finally:
        state.close()
    assert asked == [PATH, PATH]


OLD_PLACE = "template_sets/Default/footer/footer_x.html"
NEW_PLACE = "template_sets/Default/Moved/footer_x.html"


def set_entry(path: str, text: str) -> Entry:
    return Entry(path, Kind.TEMPLATE, 1, "footer_x", TemplateRow(8, 1, "footer_x", text, "1837", "", 1))


def moved_state(root: Path, *files: tuple[str, str]) -> State:
    """The template's state at its old place (base "base"), and these files on disk."""
    state = State(root)
    base = content_hash(Kind.TEMPLATE, "base")
    state.put([FileState(OLD_PLACE, Kind.TEMPLATE, 1, "footer_x", base, 8, 1, 1, None)])
    for path, text in files:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return state


def test_a_file_met_where_its_template_moved_to_has_its_old_places_base(root: Path) -> None:
    state = moved_state(root, (NEW_PLACE, "edited as it moved"))
    try:
        [decision] = plan(Root(root), state, [set_entry(NEW_PLACE, "base")])
    finally:
        state.close()
    assert (decision.action, decision.disk_text) == (Action.IMPORT, "edited as it moved")


def test_a_write_of_ours_in_doubt_moves_with_the_template(root: Path) -> None:
    """Imported 'first' at the old place, killed before the read-back; then moved and edited
    while nothing ran. The row holds our own 'first': the edit is imported, not a conflict."""
    state = moved_state(root, (NEW_PLACE, "edited as it moved"))
    try:
        state.record_intents({OLD_PLACE: content_hash(Kind.TEMPLATE, "first")})
        [decision] = plan(Root(root), state, [set_entry(NEW_PLACE, "first")])
    finally:
        state.close()
    assert (decision.action, decision.intent_landed, decision.disk_text) == (Action.IMPORT, True, "edited as it moved")


def test_a_second_file_of_a_template_whose_tracked_file_is_still_there_gets_no_base(root: Path) -> None:
    """A copy, not a move: the old place's file is there, so its base stays where it is."""
    state = moved_state(root, (OLD_PLACE, "base"), (NEW_PLACE, "a copy, edited"))
    try:
        [decision] = plan(Root(root), state, [set_entry(NEW_PLACE, "base")])
    finally:
        state.close()
    assert (decision.action, decision.state) == (Action.CONFLICT, None)
