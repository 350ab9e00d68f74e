"""Log output for people, for journald and for machines.

Library code only calls :mod:`logging`; the command line picks one of three
formats here. Structured fields ride on records as ``extra=`` keys
(:data:`FIELDS`): the JSON format carries them as keys, the others leave
them to the message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from typing import TextIO

FIELDS = ("event", "path", "set", "theme", "title", "bytes", "ms", "pending", "refusal")
"""Record attributes (set with ``extra=``) that JSON lines carry as keys."""

_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class TextFormatter(logging.Formatter):
    """The default ``asctime``, its seconds formatted once per second: the service logs a line per
    import, and a burst imports thousands a second."""

    _second: int | None = None
    _stamp = ""

    def __init__(self) -> None:
        super().__init__("%(asctime)s mybb-sync %(levelname)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime(self.default_time_format, self.converter(second))
        return f"{self._stamp},{int(record.msecs):03d}"  # logging's default_msec_format


class JournalFormatter(logging.Formatter):
    """For stderr connected to journald: ``<N>`` syslog priority prefixes (so ``journalctl -p
    warning`` works) and no timestamp of our own (the journal has one). Each line of a
    traceback gets the prefix too, or the journal would file it at the default priority."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines() or [""])


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the :data:`FIELDS` a record
    carries, and the traceback (``exc``) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if key in record.__dict__:
                line[key] = record.__dict__[key]
        if record.exc_info:
            line["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(line, default=str)


def under_journald(stream: TextIO = sys.stderr, environ: dict[str, str] | None = None) -> bool:
    """Whether ``stream`` is the journal stream systemd names in ``JOURNAL_STREAM`` (``dev:ino``)."""
    wanted = (environ if environ is not None else os.environ).get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return wanted == f"{st.st_dev}:{st.st_ino}"


def setup(debug: bool) -> None:
    """Log to stderr: journald's format under systemd, else text; Python warnings (a driver's,
    for instance) go through the same handler, so no line escapes the format."""
    _cheap_records()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter() if under_journald() else TextFormatter())
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)


def use_json() -> None:
    """Switch every handler of the root logger to JSON lines (``--log-format json``)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())


def _cheap_records() -> None:
    """Leave out of log records what no format here shows (the logging HOWTO's "Optimization"):
    the caller's file and line, thread, process and multiprocessing names."""
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
