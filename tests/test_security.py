"""MyBB's template security check: the Admin CP's verdict on every template.

``check_template`` must refuse exactly what MyBB 1.8.37's Admin CP refuses as
"a potential security issue". The golden verdicts in
``fixtures/mybb/check-template/`` are MyBB's own, from a real forum; the
differential tests compare with MyBB's original three patterns, run by
Python's ``re`` on the UTF-8 bytes (safe on short inputs only: the originals
backtrack without bound).
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from mybb_sync.security import Threat, Verdict, check_template

from conftest import golden

FIXTURES = golden("check-template")


def _load(name: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


CASES = _load("cases.json")
TEMPLATES = _load("templates.json")


def _params(cases: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(case, id=case["name"]) for case in cases]


# MyBB 1.8.37, admin/inc/functions.php, check_template(), translated from PHP
# string literals to Python bytes patterns character for character. PCRE runs
# without the u flag, so bytes: \s is ASCII whitespace (the same six bytes as
# PCRE2's), re.IGNORECASE folds ASCII only, '.' is any byte but \n.
ORIGINAL_DATABASE_SETTINGS = re.compile(
    rb"""\$config\[((['|"]database['|"])|([^'"].*?))\]\[((['|"](database|hostname|password|table_prefix|username)['|"])|([^'"].*?))\]""",
    re.IGNORECASE,
)
ORIGINAL_DOLLAR_BRACE = re.compile(rb"\$\s*\{")
ORIGINAL_ALLOWED_CHAIN = re.compile(
    rb"""\{\$+[a-zA-Z_][a-zA-Z_0-9]*((?:-\>|\:\:)\$*[a-zA-Z_][a-zA-Z_0-9]*|\[\s*\$*(['"]?)[a-zA-Z_ 0-9 ]+\2\]\s*)*\}"""
)
ORIGINAL_LEFT_OVER = re.compile(rb"\{\$.+?\}", re.DOTALL)


def original_check_template(text: str) -> Threat | None:
    """MyBB's three tests, in its order, by backtracking regexes: for short inputs only.

    On the 80,000 random strings below it gives the same test as MyBB's function run by
    PHP 8.2.36 (checked once, by hand: the tests do not need PHP).
    """
    data = text.encode("utf-8")
    if ORIGINAL_DATABASE_SETTINGS.search(data):
        return Threat.DATABASE_SETTINGS
    if ORIGINAL_DOLLAR_BRACE.search(data):
        return Threat.DOLLAR_BRACE
    if ORIGINAL_LEFT_OVER.search(ORIGINAL_ALLOWED_CHAIN.sub(b"", data)):
        return Threat.COMPLEX_SYNTAX
    return None


def threat_of(text: str) -> Threat | None:
    verdict = check_template(text)
    return None if verdict is None else verdict.threat


# --- MyBB's own verdicts ------------------------------------------------------


@pytest.mark.parametrize("case", _params([c for c in CASES if "pcre_limit" not in c]))
def test_gives_the_admin_cps_verdict_on_each_golden_case(case: dict[str, Any]) -> None:
    verdict = check_template(case["template"])
    assert (verdict is not None) == case["refused_by_admin_cp"], verdict


@pytest.mark.parametrize("case", _params([c for c in CASES if "pcre_limit" in c]))
def test_refuses_as_too_complex_each_golden_case_where_pcre_gave_up(case: dict[str, Any]) -> None:
    assert case["refused_by_admin_cp"]
    assert threat_of(case["template"]) is Threat.TOO_COMPLEX


@pytest.mark.parametrize("case", _params([t for t in TEMPLATES if t["name"].startswith("master:")]))
def test_passes_mybbs_master_templates(case: dict[str, Any]) -> None:
    assert check_template(case["template"]) is None


@pytest.mark.parametrize("case", _params([t for t in TEMPLATES if t["name"].startswith("saved:")]))
def test_passes_each_template_the_admin_cp_saved(case: dict[str, Any]) -> None:
    assert check_template(case["template"]) is None


def test_refuses_the_template_the_admin_cp_refused_on_theme_import() -> None:
    [case] = [t for t in TEMPLATES if t["name"].startswith("import:")]
    assert case["refused_by_admin_cp"]
    assert threat_of(case["template"]) is Threat.DOLLAR_BRACE


# --- one threat per test, in check_template's order ---------------------------


def test_refuses_a_system_call_in_braces_as_dollar_brace() -> None:
    assert threat_of('{${system("id")}}') is Threat.DOLLAR_BRACE


def test_refuses_the_database_password_as_database_settings() -> None:
    assert threat_of("$config['database']['password']") is Threat.DATABASE_SETTINGS


def test_refuses_an_index_by_a_variable_as_complex_syntax() -> None:
    assert threat_of("{$a[$b[0]]}") is Threat.COMPLEX_SYNTAX


@pytest.mark.parametrize(
    "template",
    ["{$mybb->settings['bbname']}", "{$lang->welcome_back}"],
    ids=["setting", "language-string"],
)
def test_allows_settings_and_language_strings(template: str) -> None:
    assert check_template(template) is None


BIG_CHAIN = "{$a" + "[b]" * 2_000 + "}"  # PCRE's JIT stack gives up on it (golden case big:closed-brackets-2000)


@pytest.mark.parametrize(
    ("template", "first"),
    [
        pytest.param("$config['database']['password'] ${x}", Threat.DATABASE_SETTINGS, id="1-and-2"),
        pytest.param("$config['database']['password'] {$a[$b]}", Threat.DATABASE_SETTINGS, id="1-and-3"),
        pytest.param("${x} {$a[$b]}", Threat.DOLLAR_BRACE, id="2-and-3"),
        pytest.param("{$a[$b]} ${x} $config['database']['password']", Threat.DATABASE_SETTINGS, id="3-2-1-in-the-text"),
        pytest.param("$config['database']['password']" + BIG_CHAIN, Threat.DATABASE_SETTINGS, id="1-and-too-complex"),
        pytest.param("${x}" + BIG_CHAIN, Threat.DOLLAR_BRACE, id="2-and-too-complex"),
        pytest.param("{$a[$b]}" + BIG_CHAIN, Threat.TOO_COMPLEX, id="too-complex-and-3"),
    ],
)
def test_reports_the_first_test_that_refuses(template: str, first: Threat) -> None:
    assert threat_of(template) is first


@pytest.mark.parametrize("space", ["\u00a0", "\u3000", "\u2003", "\u0085"], ids=["NBSP", "U+3000", "U+2003", "NEL"])
def test_allows_unicode_space_between_dollar_and_brace(space: str) -> None:
    assert check_template(f"${space}{{x}}") is None  # PCRE's \s without the u flag is ASCII only


@pytest.mark.parametrize(
    "space", [" ", "\t", "\n", "\r", "\x0b", "\x0c", " \n\t"], ids=["space", "tab", "LF", "CR", "VT", "FF", "mixed"]
)
def test_refuses_ascii_whitespace_between_dollar_and_brace(space: str) -> None:
    assert threat_of(f"${space}{{x}}") is Threat.DOLLAR_BRACE


def test_refuses_the_database_settings_in_any_ascii_letter_case() -> None:
    assert threat_of("$CONFIG['DataBase']['PASSWORD']") is Threat.DATABASE_SETTINGS


@pytest.mark.parametrize(
    "template",
    [
        "$config['database']['paſſword']",  # U+017F long s folds to s in Unicode
        "$config['databaſe']['password']",
        "$confİg['database']['password']",  # U+0130, U+0131: Unicode-fold to i
        "$confıg['database']['password']",
    ],
    ids=["long-s-key", "long-s-database", "dotted-capital-I", "dotless-i"],
)
def test_folds_letter_case_of_ascii_only(template: str) -> None:
    assert re.search(ORIGINAL_DATABASE_SETTINGS.pattern.decode(), template, re.IGNORECASE), (
        "Unicode folding would match"
    )
    assert check_template(template) is None


@pytest.mark.parametrize(
    "template",
    ["$config[x" * 334, "$config[a] " * 10 + "x" * 50_000],
    ids=["334-unquoted-mentions", "10-mentions-on-a-50KB-line"],
)
def test_allows_many_config_mentions_on_one_line(template: str) -> None:
    # The Admin CP's verdict: MyBB 1.8.37's check_template() run by PHP 8.2.36 CLI (pcre.jit=1,
    # pcre.backtrack_limit=1000000), the set-up that reproduces all 540 golden verdicts.
    assert check_template(template) is None


def test_gives_a_one_line_reason_naming_the_threat() -> None:
    verdict = check_template("<p>${x}</p>")
    assert verdict == Verdict(Threat.DOLLAR_BRACE, 3)
    assert "\n" not in str(verdict) and Threat.DOLLAR_BRACE.value in str(verdict) and "byte 3" in str(verdict)


# --- against MyBB's original patterns -----------------------------------------

CHARACTERS_THAT_MATTER = [
    "{", "}", "$", "[", "]", "-", ">", ":", "'", '"', " ", "\t", "\n", "\x0b", "a", "_", "1",
    "config", "$config[", "database", "password", "][", "->", "::", "|", "é",
]  # fmt: skip
CHAIN_FRAGMENTS = [
    "{$", "{$a", "{$$a", "{", "}", "$", "[", "]", "[ ", " ]", "['", "']", "[$", "->", "::", "'", '"',
    " ", "  ", "\t", "\n", "\r", "\x0c", "\x0b", "a", "B", "_", "1", "$config[", "CONFIG", "database",
    "Password", "][", "|", "é", "\u00a0",
]  # fmt: skip


def random_templates(seed: int, pieces: list[str], count: int, longest: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(pieces, k=rng.randint(1, longest))) for _ in range(count)]


def disagreements(templates: list[str]) -> list[tuple[str, Threat | None, Threat | None]]:
    found = []
    for template in templates:
        ours, original = threat_of(template), original_check_template(template)
        if ours is not original:
            found.append((template, ours, original))
    return found


def test_agrees_with_the_original_patterns_on_random_short_strings() -> None:
    found = disagreements(random_templates(1837, CHARACTERS_THAT_MATTER, 20_000, 25))
    assert not found, f"{len(found)} disagreements (template, ours, original), first: {found[:5]}"


def test_agrees_with_the_original_patterns_on_random_chain_fragments() -> None:
    found = disagreements(random_templates(1838, CHAIN_FRAGMENTS, 20_000, 20))
    assert not found, f"{len(found)} disagreements (template, ours, original), first: {found[:5]}"


_WHITESPACE = ["", " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", " \t", "\u00a0"]
_QUOTES = ["", "'", '"', "|", "`"]


def _quoted(rng: random.Random, keys: list[str]) -> str:
    first = rng.choice(_QUOTES)
    return first + rng.choice(keys) + (first if rng.random() < 0.75 else rng.choice(_QUOTES))


def random_chain(rng: random.Random) -> str:
    """``{$var`` and a few ``->prop``, ``::name``, ``[key]`` segments, each possibly malformed."""
    chain = "{" + "$" * rng.choice([1, 1, 2, 0]) + rng.choice(["a", "_", "1", "ab_1", ""])
    for _ in range(rng.randint(0, 5)):
        if rng.random() < 0.25:
            chain += rng.choice(["->", "::", "-", "->$", "::$$", ":"]) + rng.choice(["b", "_1", "1", "", "b c", "é"])
        else:
            key = _quoted(rng, ["a", "a b", " ", "0", "_x", "", "a-b", "é", "  a  ", "$", "[", "}"])
            chain += "[" + rng.choice(_WHITESPACE) + "$" * rng.choice([0, 0, 1, 2]) + key
            chain += rng.choice(["]", "]", "", "]]"]) + rng.choice(_WHITESPACE)
    return chain + rng.choice(["}", "}", "", "x}", " }"])


def random_config_reference(rng: random.Random) -> str:
    """``$config[key][key]`` in the forms test 1 tells apart, and near misses."""
    keys = ["database", "DATABASE", "password", "hostname", "table_prefix", "username", "x", "", "db ]", "a][b", "\n"]
    return (
        rng.choice(["$config[", "$CONFIG[", "$Config[", "config[", "$config ["])
        + rng.choice(["", " "])
        + _quoted(rng, keys)
        + rng.choice(["][", "][", " ][", "]\n[", "]"])
        + rng.choice(["", " "])
        + _quoted(rng, keys)
        + rng.choice(["]", "", "]]", "\n]"])
    )


def random_composites(seed: int, part: Any, count: int) -> list[str]:
    rng = random.Random(seed)
    filler = ["{", "}", "$", "{$", "${", "x", " ", "\n", "]", "]["]
    return [
        "".join(part(rng) if rng.random() < 0.7 else rng.choice(filler) for _ in range(rng.randint(1, 4)))
        for _ in range(count)
    ]


def test_agrees_with_the_original_patterns_on_random_variable_chains() -> None:
    found = disagreements(random_composites(1839, random_chain, 20_000))
    assert not found, f"{len(found)} disagreements (template, ours, original), first: {found[:5]}"


def test_agrees_with_the_original_patterns_on_random_config_references() -> None:
    found = disagreements(random_composites(1840, random_config_reference, 20_000))
    assert not found, f"{len(found)} disagreements (template, ours, original), first: {found[:5]}"


@pytest.mark.parametrize("case", _params([c for c in CASES if not c["name"].startswith("big:")]))
def test_refuses_each_small_golden_case_for_the_originals_reason(case: dict[str, Any]) -> None:
    assert threat_of(case["template"]) is original_check_template(case["template"])
