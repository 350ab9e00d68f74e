"""Import: validated file content into the database, with the Admin CP's semantics.

Decisions to import arrive in batches from the reconciler; they are grouped
per template set (one round trip per group: one ``UPDATE ... CASE`` for the
set's existing copies, one multi-row ``INSERT`` for new copies) and the rows
read back become the new base. Content that failed validation never gets
here: the reconciler reports it instead.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .engine import Decision, agreed_state
from .layout import GLOBAL_SID, Kind
from .reconcile import content_hash
from .state import FileState
from .store import MAX_TITLE_CHARS, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Imported:
    states: list[FileState]
    refused: list[tuple[Decision, str]]  # (decision, why) for content MyBB cannot hold
    recheck: list[str]  # paths whose row changed again right after our write


def refusal(decision: Decision) -> str | None:
    """Why a file may not be imported, or None. Checks MyBB's limits on names too."""
    if decision.invalid is not None:
        return decision.invalid
    if decision.disk_text is None:
        return "could not be read"
    entry = decision.entry
    if entry.kind is Kind.TEMPLATE and len(entry.name) > MAX_TITLE_CHARS:
        return f"template title is {len(entry.name)} characters (MyBB allows {MAX_TITLE_CHARS})"
    return None


async def import_templates(store: Store, decisions: Sequence[Decision]) -> Imported:
    """Save every template decision; sid -1 titles with no row become new global templates."""
    refused: list[tuple[Decision, str]] = []
    groups: dict[int, list[Decision]] = defaultdict(list)
    for d in decisions:
        why = refusal(d)
        if why is not None:
            refused.append((d, why))
        else:
            groups[d.entry.owner].append(d)
    states: list[FileState] = []
    recheck: list[str] = []
    now = int(time.time())
    for sid, group in groups.items():
        started = time.perf_counter()
        texts = [(d.entry.name, d.disk_text or "") for d in group]
        if sid == GLOBAL_SID:
            rows = await store.add_global_templates(texts, now)
        else:
            rows = await store.save_templates(sid, texts, now)
        elapsed_ms = (time.perf_counter() - started) * 1000
        for d in group:
            row = rows.get(d.entry.name)
            assert d.disk_hash is not None
            # The base is what we wrote. If another writer changed (or deleted) the
            # row in between, the read-back differs and the path is looked at again.
            states.append(agreed_state(d.entry, d.disk_hash, d.disk_stat, row))
            if row is None or content_hash(Kind.TEMPLATE, row.template) != d.disk_hash:
                recheck.append(d.entry.path)
                continue
            log.info(
                "imported %s -> %s %r (%d bytes, %.1f ms)",
                d.entry.path, "global" if sid == GLOBAL_SID else f"set {sid}", d.entry.name,
                len(row.template.encode("utf-8")), elapsed_ms / len(group),
            )  # fmt: skip
    return Imported(states, refused, recheck)
