"""What a pass did: counts, conflicts, problems, per scope and group; the ``--json`` summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExportReport:
    """What an export did; ``as_json()`` is the ``--json`` output."""

    written: int = 0
    unchanged: int = 0
    adopted: int = 0
    forced: int = 0
    bytes: int = 0
    seconds: float = 0.0
    conflicts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)  # path -> why it is not synced
    imported: int = 0
    rows_read: int = 0  # template rows fetched (a set unchanged since it was last agreed costs none)
    refused: list[str] = field(default_factory=list)
    recheck: list[str] = field(default_factory=list)  # paths to look at again (changed while being handled)
    seen: set[str] = field(default_factory=set)  # every path the pass met a row for
    changed: list[tuple[str, str]] = field(default_factory=list)  # (path, "export" or "delete"): what it wrote
    per_scope: Counter[str] = field(default_factory=Counter)
    per_group: Counter[str] = field(default_factory=Counter)

    @property
    def files(self) -> int:
        return self.written + self.unchanged + self.adopted + len(self.conflicts)

    def summary(self) -> str:
        parts = [f"{self.written} written", f"{self.unchanged + self.adopted} unchanged"]
        if self.forced:
            parts.append(f"{self.forced} conflicting file(s) overwritten (--force)")
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} conflict(s)")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.errors:
            parts.append(f"{len(self.errors)} error(s)")
        if self.orphans:
            parts.append(f"{len(self.orphans)} file(s) with no database row")
        if self.ignored:
            parts.append(f"{len(self.ignored)} ignored (not a file mybb-sync syncs; see --json)")
        return f"exported {self.files} files: " + ", ".join(parts) + f" in {self.seconds:.2f}s"

    def as_json(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "unchanged": self.unchanged + self.adopted,
            "conflicts": self.conflicts,
            "forced": self.forced,
            "skipped": self.skipped,
            "errors": self.errors,
            "orphans": self.orphans,
            "ignored": self.ignored,
            "bytes": self.bytes,
            "rows_read": self.rows_read,
            "seconds": round(self.seconds, 3),
            "per_scope": dict(self.per_scope),
            "per_group": dict(self.per_group),
        }
