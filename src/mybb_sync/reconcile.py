"""The three-way sync rule: disk, database and their last agreed base.

Pure: the caller supplies content hashes (after the Admin CP's own
normalisation) and gets back what to do. This is the only place that
decides; the exporter, the importer and the service carry the decision out.

======================  ======================  ==============================
disk vs base            database vs base        action
======================  ======================  ==============================
same                    same                    nothing (our own writes do not echo)
changed                 same                    import the file
same                    changed                 export the row
changed                 changed, equal to disk  record the new base only
changed                 changed, different      conflict: write nothing
======================  ======================  ==============================

A missing side is a change too. With no base yet (a file seen for the first
time), equal content is adopted; different content is a conflict, because
nothing says which side is newer (the design doc counted it as a disk edit;
importing stale files from an old export over newer rows is exactly how
edits get lost).
"""

from __future__ import annotations

import difflib
import hashlib
from enum import StrEnum

from . import php
from .layout import Kind


class Action(StrEnum):
    NOTHING = "nothing"
    IMPORT = "import"  # disk -> database (a new row when the database has none)
    EXPORT = "export"  # database -> disk
    ADOPT = "adopt"  # both sides agree: record the new base
    DELETE_FILE = "delete-file"  # the row is gone and the file was untouched
    FORGET = "forget"  # both sides gone: drop the state
    DISK_DELETED = "disk-deleted"  # the file is gone, the row unchanged: the on_delete policy decides
    CONFLICT = "conflict"


def normalise(kind: Kind, text: str) -> str:
    """What the Admin CP would store: templates are PHP-rtrimmed, stylesheets kept as is."""
    return php.rtrim(text) if kind is Kind.TEMPLATE else text


def content_hash(kind: Kind, text: str) -> str:
    """Hash of the normalised content; equal hashes mean nothing to sync."""
    return hashlib.blake2b(normalise(kind, text).encode("utf-8"), digest_size=16).hexdigest()


def decide(disk: str | None, db: str | None, base: str | None) -> Action:
    """What to do for one file, given the content hash on each side (None: absent)."""
    if base is None:
        if disk is None:
            return Action.EXPORT if db is not None else Action.NOTHING
        if db is None:
            return Action.IMPORT
        return Action.ADOPT if disk == db else Action.CONFLICT
    disk_changed, db_changed = disk != base, db != base
    if not disk_changed and not db_changed:
        return Action.NOTHING
    if disk_changed and db_changed:
        if disk == db:
            return Action.FORGET if disk is None else Action.ADOPT
        return Action.CONFLICT
    if disk_changed:
        return Action.DISK_DELETED if disk is None else Action.IMPORT
    return Action.DELETE_FILE if db is None else Action.EXPORT


def unified_diff(path: str, kind: Kind, db: str | None, disk: str | None) -> str:
    """A unified diff from the database's version to the file's, empty when they agree."""
    if db is not None and disk is not None and normalise(kind, db) == normalise(kind, disk):
        return ""
    if db is None and disk is None:
        return ""
    lines = difflib.unified_diff(
        (db or "").splitlines(keepends=True),
        (disk or "").splitlines(keepends=True),
        fromfile=f"db/{path}" if db is not None else "/dev/null",
        tofile=f"disk/{path}" if disk is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
