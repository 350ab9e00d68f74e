"""Batches of files through the sync rule: look at disk, state and database, decide.

An :class:`Entry` is one file of the sync root with the database row it
shows (or none). :func:`plan` reads the state rows and the files of a batch
(in one worker-thread hop) and applies :func:`reconcile.decide` to each; the
exporter and the service then carry the decisions out. Unchanged files are
recognised by one ``lstat`` against the state; only the others are read.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, replace

from .atomic import ABSENT, Expect, Write, Written
from .files import FileRead, Root, missing, read_files, stat_files
from .layout import Kind
from .reconcile import Action, content_hash, decide
from .state import FileStat, FileState, State
from .store import MAX_TEMPLATE_BYTES, Stylesheet, TemplateRow, template_digest

# Stylesheets are LONGTEXT; still, a file this large is no stylesheet.
MAX_STYLESHEET_BYTES = 4 * 1024 * 1024

Row = TemplateRow | Stylesheet


@dataclass(frozen=True, slots=True)
class Entry:
    """One file: where it is, what it stands for, and the row the forum shows for it."""

    path: str
    kind: Kind
    owner: int  # template set sid (-1: global templates) or theme tid
    name: str
    row: Row | None

    @property
    def text(self) -> str | None:
        if self.row is None:
            return None
        return self.row.template if isinstance(self.row, TemplateRow) else self.row.stylesheet


def row_facts(row: Row | None) -> tuple[int | None, int | None, int | None, int | None]:
    """(row id, owning sid/tid, change marker, row digest) of the row a file was agreed with."""
    if row is None:
        return None, None, None, None
    if isinstance(row, TemplateRow):
        return row.tid, row.sid, row.dateline, template_digest(row)
    return row.sid, row.tid, row.lastmodified, None


@dataclass(frozen=True, slots=True)
class Decision:
    entry: Entry
    action: Action
    state: FileState | None
    db_hash: str | None
    disk_hash: str | None
    disk_stat: FileStat | None  # the file as it was when decided on (None: absent)
    disk_text: str | None = None  # decoded content, when it was read and valid
    invalid: str | None = None  # why the file's content may not reach the database
    seen_ns: int = 0  # the clock just before disk_stat was taken (for the racy-stat rule)
    intent_landed: bool = False  # the row holds our own earlier write, never confirmed: settle it

    @property
    def expect(self) -> Expect:
        """What must still be on disk for a write decided here to go ahead."""
        return self.disk_stat if self.disk_stat is not None else ABSENT


def max_bytes(kind: Kind) -> int:
    return MAX_TEMPLATE_BYTES if kind is Kind.TEMPLATE else MAX_STYLESHEET_BYTES


def _invalid(kind: Kind, data: bytes, text: str | None) -> str | None:
    """Why a file's bytes (``text``: their UTF-8 decoding, None if they have none) may not
    go to the database, or None."""
    if not data.strip(b" \t\r\n\x0b\x00"):
        return "is empty (or only whitespace)"
    if b"\x00" in data:
        return "is UTF-16 (MyBB stores UTF-8: save it as UTF-8)" if _utf16(data) else "contains a NUL byte"
    if len(data) > max_bytes(kind):
        return f"is {len(data)} bytes, over the {max_bytes(kind)}-byte limit"
    if text is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"is not valid UTF-8 (byte {exc.start})"
    return None


def _utf16(data: bytes) -> bool:
    """UTF-16 by its byte-order mark, or by the NULs every other byte that mostly-ASCII text has."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    half = len(data) // 2
    return half > 0 and max(data[0::2].count(0), data[1::2].count(0)) >= half * 0.9


Hold = Callable[[str, FileStat], bool]
"""Asked (in the planning thread) about a file that changed, with its stat: True leaves it alone."""


@dataclass(frozen=True, slots=True)
class Gathered:
    """What :func:`gather` read for a batch: everything :func:`decide_all` decides on."""

    states: dict[str, FileState]  # the state store's rows (the base: what both sides last agreed on)
    intents: dict[str, str]  # writes of ours whose landing was never confirmed
    stats: dict[str, FileStat | None]  # each file now (None: absent)
    reads: dict[str, FileRead]  # the files whose stat did not prove them unchanged
    held: set[str]  # files ``hold`` keeps out (still being written)
    seen_ns: int  # the clock just before the stats (for the racy-stat rule)


def plan(
    root: Root,
    state: State,
    entries: Sequence[Entry],
    *,
    read_all: bool = False,
    hold: Hold | None = None,
    absent: Container[str] = frozenset(),
) -> list[Decision]:
    """Decide every entry (blocking: run in a worker thread, one batch per hop)."""
    return decide_all(entries, gather(root, state, entries, read_all=read_all, hold=hold, absent=absent))


def gather(
    root: Root,
    state: State,
    entries: Sequence[Entry],
    *,
    read_all: bool = False,
    hold: Hold | None = None,
    absent: Container[str] = frozenset(),
) -> Gathered:
    """Read what deciding needs (blocking).

    Every file whose stat does not prove it unchanged is read (an edit on
    disk must be imported, or reported as a conflict, even when its row did
    not change); with ``read_all`` every file is.

    ``hold`` is asked about each file whose stat does not prove it unchanged
    before it is read, and again after: a file it holds (still being written) gets no decision
    at all - it is left out of the result, neither read nor written, and its
    state is not touched - and must be brought back later by whoever held it.

    ``absent``: paths a walk of their folder, made in this pass, found no file at. They
    are not looked at again (an lstat each, in a folder being written, is dear); a file
    put there since is found by the write, whose rename never replaces what it did not
    expect, and reported as changed.
    """
    paths = [e.path for e in entries]
    states = state.get(paths)
    intents = state.intents(paths)
    seen_ns = time.time_ns()
    stats: dict[str, FileStat | None] = dict.fromkeys(p for p in paths if p in absent)
    if len(stats) < len(paths):
        stats.update(stat_files(root, [p for p in paths if p not in absent]))
    arrived = [e for e in entries if e.kind is Kind.TEMPLATE and e.path not in states and stats[e.path] is not None]
    if arrived:
        moved = moved_here(root, state, arrived)
        states.update({path: replace(s, path=path, stat=None) for path, s in moved.items()})
        carried = state.intents([s.path for s in moved.values()])  # a write of ours in doubt goes too
        intents.update({path: carried[s.path] for path, s in moved.items() if s.path in carried})
    to_read = []
    held: set[str] = set()
    for e in entries:
        st, cur = states.get(e.path), stats[e.path]
        if cur is None or (not read_all and st is not None and st.unchanged(cur, root.racy_ns)):
            continue
        if hold is not None and hold(e.path, cur):
            held.add(e.path)
            continue
        to_read.append(e.path)
    reads = {r.path: r for r in read_files(root, to_read, max_bytes=16 * 1024 * 1024)} if to_read else {}
    if hold is not None:
        # Asked again once read: a writer that opened a file between the first question and
        # the read (its IN_MODIFY read by the watcher meanwhile, on the event loop) may have
        # left half of it there. Such a file is left alone like the others it holds.
        for path in [p for p, r in reads.items() if r.stat is not None and hold(p, r.stat)]:
            held.add(path)
            del reads[path]
    return Gathered(states, intents, stats, reads, held, seen_ns)


def moved_here(root: Root, state: State, entries: Sequence[Entry]) -> dict[str, FileState]:
    """The states that go with files met where nothing is tracked (blocking): a template's
    state at another path, whose file is gone, is the state of a file that moved (to another
    group folder of its set), base and all, so an edit made as it moved is an edit, not a
    file never synced. Returned as found, at its old path, by the path the file is met at
    (the caller carries the base and the intent, not the stat: the file is read)."""
    wanted: dict[int, dict[str, str]] = {}  # owner -> name -> the path the file is met at
    for e in entries:
        wanted.setdefault(e.owner, {})[e.name] = e.path
    elsewhere = [
        (wanted[owner][s.name], s)
        for owner, names in wanted.items()
        for s in state.of_names(Kind.TEMPLATE, owner, list(names))
        if s.path != names[s.name]
    ]
    if not elsewhere:
        return {}
    gone = missing(root, [s.path for _, s in elsewhere])
    return {path: s for path, s in elsewhere if s.path in gone}


def decide_all(entries: Sequence[Entry], facts: Gathered) -> list[Decision]:
    """Each entry decided with the rule on what was gathered (pure)."""
    out = []
    for e in entries:
        if facts.held and e.path in facts.held:
            continue
        st, cur = facts.states.get(e.path), facts.stats[e.path]
        db_hash = None if e.text is None else content_hash(e.kind, e.text)
        base = st.base if st is not None else None
        intent = facts.intents.get(e.path)
        landed = intent is not None and intent == db_hash
        if landed:
            base = db_hash  # our own write reached the database before the connection died
        text = invalid = None
        if cur is None:
            disk_hash = None
        elif e.path not in facts.reads:
            disk_hash = base  # proven unchanged by its stat
        else:
            read = facts.reads[e.path]
            cur = read.stat
            if read.data is None:
                disk_hash, invalid = ("unreadable:" + (read.error or "")), read.error
                if read.stat is None and read.error is None:
                    disk_hash = None  # vanished between stat and read
            else:
                text, disk_hash, invalid = _judge(e.kind, read.data, base)
        action = decide(disk_hash, db_hash, base)
        out.append(Decision(e, action, st, db_hash, disk_hash, cur, text, invalid, facts.seen_ns, landed))
    return out


def _judge(kind: Kind, data: bytes, base: str | None) -> tuple[str | None, str, str | None]:
    """(text, hash, why invalid) of a file's bytes; content equal to the base is never refused."""
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    digest = content_hash(kind, text) if text is not None else None
    if digest is not None and digest == base:
        return text, digest, None
    why = _invalid(kind, data, text)
    if why is not None:
        return None, "invalid:" + hashlib.blake2b(data, digest_size=16).hexdigest(), why
    assert text is not None and digest is not None  # what does not decode is refused
    return text, digest, None


def agreed_state(
    entry: Entry, content_hash_: str, stat: FileStat | None, seen_ns: int, row: Row | None = None
) -> FileState:
    """The state row recording that disk and database agree on ``content_hash_``.

    ``seen_ns`` is the clock just before ``stat`` was taken: a stat is only
    trusted later if the file's mtime is well before it.
    """
    row_id, row_owner, marker, digest = row_facts(row if row is not None else entry.row)
    return FileState(
        entry.path, entry.kind, entry.owner, entry.name, content_hash_, row_id, row_owner, marker, stat, seen_ns, digest
    )


def with_row(state: FileState, row: Row | None) -> FileState:
    """``state`` agreed with ``row`` instead: a row holding the same content as the base."""
    row_id, row_owner, marker, digest = row_facts(row)
    return replace(state, row_id=row_id, row_owner=row_owner, marker=marker, row_digest=digest)


def export_write(decision: Decision, force: bool = False) -> Write:
    """The write that puts the database's content into the file."""
    text = decision.entry.text
    assert text is not None
    return Write(decision.entry.path, text.encode("utf-8"), None if force else decision.expect)


def states_after_writes(decisions: dict[str, Decision], results: Sequence[Written]) -> list[FileState]:
    out = []
    for r in results:
        d = decisions[r.path]
        assert d.db_hash is not None
        out.append(agreed_state(d.entry, d.db_hash, r.stat, r.seen_ns))
    return out
