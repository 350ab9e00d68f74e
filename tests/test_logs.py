"""The three log formats: text for people, journald's priorities, JSON lines for machines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from mybb_sync.logs import JournalFormatter, JsonFormatter, TextFormatter, under_journald

FORMAT = "%(asctime)s mybb-sync %(levelname)s %(message)s"


def record_at(created: float, level: int = logging.INFO, exc_info: object = None, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("mybb_sync.importer", level, __file__, 1, "imported %s", ("a.html",), exc_info)  # type: ignore[arg-type]
    record.created, record.msecs = created, (created - int(created)) * 1000
    record.__dict__.update(extra)
    return record


def test_text_log_lines_are_stamped_as_loggings_default_formatter_stamps_them() -> None:
    ours, default = TextFormatter(), logging.Formatter(FORMAT)
    moments = [
        1_700_000_000.0,
        1_700_000_000.25,
        1_700_000_000.999,
        1_700_000_001.5,
        1_700_000_000.5,
        1_800_000_000.042,
    ]
    assert [ours.format(record_at(t)) for t in moments] == [default.format(record_at(t)) for t in moments]


def test_journal_lines_carry_the_syslog_priority_and_no_timestamp() -> None:
    formatter = JournalFormatter()
    assert formatter.format(record_at(1.0, logging.WARNING)) == "<4>imported a.html"
    assert formatter.format(record_at(1.0, logging.ERROR)) == "<3>imported a.html"
    assert formatter.format(record_at(1.0, logging.INFO)) == "<6>imported a.html"


def test_every_line_of_a_journal_traceback_keeps_its_priority() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        lines = JournalFormatter().format(record_at(1.0, logging.ERROR, sys.exc_info())).splitlines()
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)


def test_json_lines_carry_the_fields_as_keys() -> None:
    line = json.loads(JsonFormatter().format(record_at(5.0, event="imported", path="a.html", bytes=12, ms=1.5)))
    assert line == {
        "time": 5.0, "level": "info", "logger": "mybb_sync.importer", "message": "imported a.html",
        "event": "imported", "path": "a.html", "bytes": 12, "ms": 1.5,
    }  # fmt: skip


def test_json_lines_keep_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        line = json.loads(JsonFormatter().format(record_at(1.0, logging.ERROR, sys.exc_info())))
    assert "ValueError: boom" in line["exc"] and "Traceback" in line["exc"]


def test_journald_is_recognised_by_the_stream_it_names(tmp_path: Path) -> None:
    with open(tmp_path / "stream", "w") as stream:
        st = os.fstat(stream.fileno())
        assert under_journald(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not under_journald(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not under_journald(stream, {})


def test_python_warnings_become_json_lines_too(tmp_path: Path) -> None:
    """aiomysql warns through the warnings module after a server crash; with JSON logs on,
    that line must be JSON like every other."""
    script = (
        "import warnings, logging\n"
        "from mybb_sync import logs\n"
        "logs.setup(False)\n"
        "logs.use_json()\n"
        "warnings.warn('connection lost', RuntimeWarning)\n"
        "logging.getLogger('mybb_sync').info('after')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["level"] for line in lines] == ["warning", "info"]
    assert "connection lost" in lines[0]["message"]
