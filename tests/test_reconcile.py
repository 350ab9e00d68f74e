"""Specification of ``reconcile``: the three-way rule and the content it compares.

Hashes are stand-ins here: ``BASE`` is what disk and database last agreed on,
``DISK``/``DB`` are new contents, ``None`` is a missing side.
"""

from __future__ import annotations

import itertools
import re

from mybb_sync.layout import Kind
from mybb_sync.reconcile import Action, content_hash, decide, normalise

BASE, DISK, DB, SAME = "base-hash", "disk-hash", "db-hash", "same-new-hash"
PHP_TRIMMED = " \t\n\r\0\x0b"

# --- the rule table, one row per test ---------------------------------------------


def test_nothing_to_do_when_both_sides_still_equal_the_base() -> None:
    assert decide(BASE, BASE, BASE) is Action.NOTHING


def test_import_when_only_the_file_changed() -> None:
    assert decide(DISK, BASE, BASE) is Action.IMPORT


def test_export_when_only_the_row_changed() -> None:
    assert decide(BASE, DB, BASE) is Action.EXPORT


def test_adopt_the_new_base_when_both_changed_to_the_same_content() -> None:
    assert decide(SAME, SAME, BASE) is Action.ADOPT


def test_conflict_when_both_changed_to_different_content() -> None:
    assert decide(DISK, DB, BASE) is Action.CONFLICT


# --- missing sides, with a base -----------------------------------------------------


def test_a_deleted_file_with_an_unchanged_row_is_left_to_the_delete_policy() -> None:
    assert decide(None, BASE, BASE) is Action.DISK_DELETED


def test_a_deleted_row_with_an_untouched_file_deletes_the_file() -> None:
    assert decide(BASE, None, BASE) is Action.DELETE_FILE


def test_both_sides_gone_forgets_the_state() -> None:
    assert decide(None, None, BASE) is Action.FORGET


def test_a_deleted_file_whose_row_changed_is_a_conflict() -> None:
    assert decide(None, DB, BASE) is Action.CONFLICT


def test_a_deleted_row_whose_file_changed_is_a_conflict() -> None:
    assert decide(DISK, None, BASE) is Action.CONFLICT


# --- no base yet (a file or row seen for the first time) ------------------------------


def test_without_a_base_equal_sides_are_adopted() -> None:
    assert decide(SAME, SAME, None) is Action.ADOPT


def test_without_a_base_different_sides_are_a_conflict() -> None:
    assert decide(DISK, DB, None) is Action.CONFLICT


def test_without_a_base_a_row_without_a_file_is_exported() -> None:
    assert decide(None, DB, None) is Action.EXPORT


def test_without_a_base_a_file_without_a_row_is_imported() -> None:
    assert decide(DISK, None, None) is Action.IMPORT


def test_without_a_base_nothing_on_either_side_is_nothing_to_do() -> None:
    assert decide(None, None, None) is Action.NOTHING


# --- safety properties over every combination -----------------------------------------

VALUES = (None, BASE, DISK, DB, SAME)
COMBINATIONS = list(itertools.product(VALUES, VALUES, (None, BASE)))


def test_two_different_changes_are_always_a_conflict() -> None:
    for disk, db, base in COMBINATIONS:
        if disk != base and db != base and disk != db and base is not None:
            assert decide(disk, db, base) is Action.CONFLICT, (disk, db, base)


def test_an_import_never_overwrites_a_database_change() -> None:
    for disk, db, base in COMBINATIONS:
        if decide(disk, db, base) is Action.IMPORT:
            assert db == base and disk is not None, (disk, db, base)


def test_an_export_never_overwrites_a_file_change() -> None:
    for disk, db, base in COMBINATIONS:
        if decide(disk, db, base) is Action.EXPORT:
            assert disk == base and db is not None, (disk, db, base)


def test_a_file_is_only_deleted_when_it_still_holds_the_base() -> None:
    for disk, db, base in COMBINATIONS:
        if decide(disk, db, base) is Action.DELETE_FILE:
            assert base is not None and disk == base and db is None, (disk, db, base)


def test_only_agreeing_sides_are_adopted() -> None:
    for disk, db, base in COMBINATIONS:
        if decide(disk, db, base) is Action.ADOPT:
            assert disk == db and disk is not None, (disk, db, base)


def test_every_combination_gets_an_action() -> None:
    for disk, db, base in COMBINATIONS:
        assert isinstance(decide(disk, db, base), Action), (disk, db, base)


# --- normalise ------------------------------------------------------------------------


def test_templates_are_normalised_with_php_rtrim() -> None:
    assert normalise(Kind.TEMPLATE, "<div>x</div>" + PHP_TRIMMED * 3) == "<div>x</div>"


def test_template_normalisation_keeps_a_trailing_nbsp() -> None:
    assert normalise(Kind.TEMPLATE, "x\u00a0") == "x\u00a0"


def test_template_normalisation_keeps_a_trailing_form_feed() -> None:
    assert normalise(Kind.TEMPLATE, "x\x0c") == "x\x0c"


def test_template_normalisation_keeps_other_characters_python_would_strip() -> None:
    for ch in ("\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\u2028", "\u3000", "\u2003"):
        assert normalise(Kind.TEMPLATE, "x" + ch) == "x" + ch, repr(ch)


def test_template_normalisation_strips_php_whitespace_after_a_kept_character() -> None:
    assert normalise(Kind.TEMPLATE, "x\u00a0 \n") == "x\u00a0"


def test_template_normalisation_keeps_leading_whitespace() -> None:
    assert normalise(Kind.TEMPLATE, " \n\tx") == " \n\tx"


def test_a_whitespace_only_template_normalises_to_empty() -> None:
    assert normalise(Kind.TEMPLATE, PHP_TRIMMED) == ""


def test_stylesheets_are_not_normalised() -> None:
    text = " body { color: red; }" + PHP_TRIMMED + "\u00a0\x0c\n"
    assert normalise(Kind.STYLESHEET, text) == text


# --- content_hash -----------------------------------------------------------------------


def test_template_hashes_are_equal_when_content_differs_only_in_php_trailing_whitespace() -> None:
    for tail in PHP_TRIMMED:
        assert content_hash(Kind.TEMPLATE, "x") == content_hash(Kind.TEMPLATE, "x" + tail), repr(tail)
    assert content_hash(Kind.TEMPLATE, "x\n") == content_hash(Kind.TEMPLATE, "x" + PHP_TRIMMED)


def test_stylesheet_hashes_differ_when_content_differs_only_in_trailing_whitespace() -> None:
    for tail in PHP_TRIMMED:
        assert content_hash(Kind.STYLESHEET, "x") != content_hash(Kind.STYLESHEET, "x" + tail), repr(tail)


def test_template_hashes_differ_for_a_trailing_nbsp() -> None:
    assert content_hash(Kind.TEMPLATE, "x") != content_hash(Kind.TEMPLATE, "x\u00a0")


def test_template_hashes_differ_for_a_trailing_form_feed() -> None:
    assert content_hash(Kind.TEMPLATE, "x") != content_hash(Kind.TEMPLATE, "x\x0c")


def test_template_hashes_differ_for_leading_whitespace() -> None:
    assert content_hash(Kind.TEMPLATE, "x") != content_hash(Kind.TEMPLATE, " x")


def test_hashes_differ_for_different_content() -> None:
    assert content_hash(Kind.TEMPLATE, "café") != content_hash(Kind.TEMPLATE, "cafe")
    assert content_hash(Kind.STYLESHEET, "a{}") != content_hash(Kind.STYLESHEET, "b{}")


def test_hashes_are_deterministic_hex_strings() -> None:
    first = content_hash(Kind.TEMPLATE, "<html>")
    assert first == content_hash(Kind.TEMPLATE, "<html>")
    assert re.fullmatch(r"[0-9a-f]{32}", first)


def test_the_hash_of_a_template_is_the_hash_of_what_the_admin_cp_would_store() -> None:
    text = "x \n"
    assert content_hash(Kind.TEMPLATE, text) == content_hash(Kind.STYLESHEET, normalise(Kind.TEMPLATE, text))
