"""The command line's own pieces (the commands themselves are run as subprocesses elsewhere)."""

from __future__ import annotations

import logging

from mybb_sync.cli import _TextFormatter

FORMAT = "%(asctime)s mybb-sync %(levelname)s %(message)s"


def record_at(created: float) -> logging.LogRecord:
    record = logging.LogRecord("mybb_sync.importer", logging.INFO, __file__, 1, "imported %s", ("a.html",), None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    return record


def test_text_log_lines_are_stamped_as_loggings_default_formatter_stamps_them() -> None:
    ours, default = _TextFormatter(FORMAT), logging.Formatter(FORMAT)
    moments = [1_700_000_000.0, 1_700_000_000.25, 1_700_000_000.999, 1_700_000_001.5, 1_700_000_000.5, 1_800_000_000.042]
    assert [ours.format(record_at(t)) for t in moments] == [default.format(record_at(t)) for t in moments]
