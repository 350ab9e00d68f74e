"""MyBB's template security check, with the Admin CP's verdict on every input.

MyBB renders templates with PHP's ``eval()``, so its Admin CP refuses to save
a template that ``check_template()`` (MyBB 1.8, ``admin/inc/functions.php``)
flags. That function is three PCRE calls on the template's bytes:

1. ``#\\$config\\[(([\\'|"]database[\\'|"])|([^\\'"].*?))\\]\\[(([\\'|"](database|hostname|
   password|table_prefix|username)[\\'|"])|([^\\'"].*?))\\]#i``: the database settings;
2. ``#\\$\\s*\\{#``: ``$`` then ``{``;
3. delete every allowed ``{$var...}`` chain, then refuse any ``{$ ... }`` left over
   (``~\\{\\$.+?\\}~s``).

Python's ``re`` has no backtracking limit, and the originals backtrack
quadratically (test 1 and 3) or exponentially (test 3's ``\\s*`` before a
class that also takes spaces) on hostile input, so each test is restated
here in a form that runs in linear time with the same verdict: test 1 as a
scan of its few anchors, test 3 with possessive, unambiguous quantifiers
(a chain can hold no ``}``, so its match ends at the first ``}`` and only
*whether* it matches matters, never *how*).

PHP's PCRE gives up on test 3 where it takes too long (its JIT stack, or
``pcre.backtrack_limit``), and the Admin CP then refuses: ``preg_replace``
returns ``null``. Where that happens depends on PHP's build;
:data:`MAX_CHAIN_SEGMENTS` and :data:`BACKTRACK_LIMIT` refuse such inputs on
the safe side of it. (Tests 1 and 2 never give up: PHP's JIT answers them at
once.)

PCRE runs without the ``u`` flag: ``\\s`` is ASCII whitespace and ``i`` folds
ASCII only, so everything here works on the UTF-8 bytes.
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio.to_thread

BACKTRACK_LIMIT = 1_000_000
"""PHP's default ``pcre.backtrack_limit``: an input whose estimated backtracking
exceeds it is refused, as PHP's PCRE would give up on it."""

MAX_CHAIN_SEGMENTS = 1_500
"""The most ``[key]``/``->prop`` segments one ``{$...}`` chain may have. PHP 8.2's
JIT accepted 1,500 and ran out of stack at 2,000 (MyBB's own fixture)."""

SECURITY_PROBLEM = "A potential security issue was found in the template"
"""The Admin CP's message (``$l['error_security_problem']``)."""


class Threat(enum.Enum):
    """Which of ``check_template()``'s tests refused a template."""

    DATABASE_SETTINGS = "it refers to the database settings ($config['database'][...])"
    DOLLAR_BRACE = "it has '$' followed by '{'"
    COMPLEX_SYNTAX = "it has complex {$...} syntax"
    TOO_COMPLEX = "it is too complex for MyBB's check (PHP's PCRE gives up on it, so the Admin CP refuses it)"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A refused template: which test matched, and a one-line reason for people."""

    threat: Threat
    offset: int | None = None  # byte offset of what matched, when one place is to blame

    def __str__(self) -> str:
        where = f" (byte {self.offset})" if self.offset is not None else ""
        return f"fails MyBB's template security check: {self.threat.value}{where}"


# Test 1, split at its anchors. Between ``$config[`` and ``][`` the original has
# either a quoted ``database`` or one non-quote byte and then ``.*?`` (no newline).
_CONFIG = re.compile(rb"\$config\[", re.IGNORECASE)
_QUOTED_DATABASE = re.compile(rb"""['|"]database['|"]\]\[""", re.IGNORECASE)
_QUOTED_KEY = re.compile(rb"""['|"](?:database|hostname|password|table_prefix|username)['|"]\]""", re.IGNORECASE)
_QUOTES = b"'\""

# Test 2. PCRE's \s without the u flag: space, \t, \n, \v, \f, \r.
_WS = rb"[\t\n\x0b\x0c\r ]"
_DOLLAR_BRACE = re.compile(rb"\$" + _WS + rb"*\{")

# Test 3's allowed chains, unambiguous. Original (K = [a-zA-Z_ 0-9 ]):
#   \{\$+[a-zA-Z_][a-zA-Z_0-9]*((?:->|::)\$*[a-zA-Z_][a-zA-Z_0-9]*|\[\s*\$*(['"]?)K+\2\]\s*)*\}
# In a bracket, "\s* K+" is ambiguous on spaces (both take them); it is the same
# language as: all whitespace possessively, then K+, or nothing more if that
# whitespace ended in a space (the space being K+).
_K = rb"[A-Za-z0-9_ ]"
_NAME = rb"[A-Za-z_][A-Za-z0-9_]*+"
_BRACKET = (
    rb"\[" + _WS + rb"*+"
    rb"(?:\$*+(?:'" + _K + rb"++'|\"" + _K + rb"++\")|\$++" + _K + rb"++|" + _K + rb"++|(?<= ))"
    rb"\]" + _WS + rb"*+"
)
_SEGMENT = rb"(?:(?:->|::)\$*+" + _NAME + rb"|" + _BRACKET + rb")"
_CHAIN = re.compile(rb"\{\$++" + _NAME + _SEGMENT + rb"*+")
_ALLOWED = re.compile(rb"\{\$++" + _NAME + _SEGMENT + rb"*+\}")
_OPEN = b"{$"


def check_template(text: str) -> Verdict | None:
    """The Admin CP's verdict on a template: None when it would save it."""
    data = text.encode("utf-8", "surrogateescape")
    if (found := _database_settings(data)) is not None:
        return found
    if (m := _DOLLAR_BRACE.search(data)) is not None:
        return Verdict(Threat.DOLLAR_BRACE, m.start())
    if (found := _too_complex(data)) is not None:
        return found
    allowed = _ALLOWED.sub(b"", data)
    start = allowed.find(_OPEN)
    if start != -1 and allowed.find(b"}", start + 3) != -1:
        return Verdict(Threat.COMPLEX_SYNTAX)
    return None


class _Lines:
    """Where each line ends, looked up by bisection (a scan per lookup would be quadratic)."""

    def __init__(self, data: bytes) -> None:
        self.breaks = [m.start() for m in re.finditer(rb"\n", data)]
        self.size = len(data)

    def end(self, i: int) -> int:
        """The index of the first newline at or after ``i`` (the length when there is none)."""
        k = bisect.bisect_left(self.breaks, i)
        return self.breaks[k] if k < len(self.breaks) else self.size


def _second_key(data: bytes, lines: _Lines, m: int) -> bool:
    """Whether the original's second bracket group matches at ``m`` (just after ``][``)."""
    if _QUOTED_KEY.match(data, m):
        return True
    return m < len(data) and data[m] not in _QUOTES and data.find(b"]", m + 1, lines.end(m + 1)) != -1


def _database_settings(data: bytes) -> Verdict | None:
    """Test 1. PHP's PCRE never gives up on it (its JIT finds a match or none at once)."""
    starts = [m.end() for m in _CONFIG.finditer(data)]
    if not starts:
        return None
    lines = _Lines(data)
    # Every "][" whose second key matches; a start needs one within its line.
    joins = [m.start() for m in re.finditer(rb"\]\[", data) if _second_key(data, lines, m.start() + 2)]
    for a in starts:
        if _QUOTED_DATABASE.match(data, a) and _second_key(data, lines, a + 12):
            return Verdict(Threat.DATABASE_SETTINGS, a - 8)
        if a < len(data) and data[a] not in _QUOTES:
            k = bisect.bisect_left(joins, a + 1)
            if k < len(joins) and joins[k] < lines.end(a + 1):
                return Verdict(Threat.DATABASE_SETTINGS, a - 8)
    return None


def _too_complex(data: bytes) -> Verdict | None:
    """Refuse where test 3's PCRE would run out of JIT stack or backtracking.

    PCRE only tries a chain when a ``}`` follows it somewhere (the pattern's
    required last byte). A chain of many segments exhausts the JIT stack; a
    chain that fails after segments that match in several ways (spaces that
    ``\\s*`` or the key class may take) backtracks through every combination.
    """
    segments = data.count(b"[") + data.count(b"->") + data.count(b"::")
    if segments <= MAX_CHAIN_SEGMENTS and _AMBIGUOUS.search(data) is None:
        return None  # no chain can be that long, and none can fail slowly: most templates
    last_close = data.rfind(b"}")
    start = data.find(_OPEN)
    while start != -1 and start < last_close:
        chain = _CHAIN.match(data, start)
        if chain is not None:
            span = data[start : chain.end()]
            segments = span.count(b"[") + span.count(b"->") + span.count(b"::")
            if segments > MAX_CHAIN_SEGMENTS:
                return Verdict(Threat.TOO_COMPLEX, start)
            if data[chain.end() : chain.end() + 1] != b"}" and _failure_cost(data, chain.end(), span) > BACKTRACK_LIMIT:
                return Verdict(Threat.TOO_COMPLEX, start)
        start = data.find(_OPEN, start + 2)
    return None


_AMBIGUOUS = re.compile(rb"\[" + _WS)  # only whitespace after "[" can be matched in several ways
_KEY_RUN = re.compile(rb"\[(" + _WS + rb"*)\$*['\"]?(" + _K + rb"*)")
_BRACKETS = re.compile(rb"\[(" + _WS + rb"*)([^\]]*)\](" + _WS + rb"*)")


def _failure_cost(data: bytes, end: int, span: bytes) -> float:
    """An estimate of the steps PCRE takes to give up on a chain that fails at ``end``."""
    ways = 1.0
    retries = 0
    for m in _BRACKETS.finditer(span):
        lead, body, trail = m.group(1), m.group(2), m.group(3)
        if not body.startswith((b"$", b"'", b'"')):
            ways *= _splits(lead, body)
        retries += len(trail) + 1
        if ways > BACKTRACK_LIMIT:
            return ways
    tail = 1
    if (run := _KEY_RUN.match(data, end)) is not None:  # a bracket that never closes
        spaces = len(run.group(1)) - len(run.group(1).rstrip(b" "))
        tail = (spaces + 1) * (len(run.group(2)) + spaces + 1)
    return ways * (tail + retries)


def _splits(lead: bytes, body: bytes) -> int:
    """In how many ways ``\\s*`` and the key class can share a bracket's leading whitespace."""
    spaces = len(lead) - len(lead.rstrip(b" "))
    return spaces + 1 if body else spaces


class StoredTemplate(Protocol):
    @property
    def template(self) -> str: ...


T = TypeVar("T", bound=StoredTemplate)


async def unsafe_templates(pages: AsyncIterator[Sequence[T]]) -> list[tuple[T, Verdict]]:
    """The stored templates the check refuses (Tools > System Health > "Check Templates").

    Each page is judged in a worker thread: a board has up to 100,000 templates."""
    found: list[tuple[T, Verdict]] = []
    async for page in pages:
        found += await anyio.to_thread.run_sync(_judge_page, page)
    return found


def _judge_page(page: Sequence[T]) -> list[tuple[T, Verdict]]:
    return [(row, verdict) for row in page if (verdict := check_template(row.template)) is not None]
