"""Specification of ``layout``: where each template and stylesheet lives, and back.

Database names become path parts through a reversible escape: no database
value can name a path outside the sync root, and every file name maps back
to exactly one name. The property-style tests below draw many hostile names
from a seeded generator (hypothesis is not installed in CI).
"""

from __future__ import annotations

import posixpath
import random

import pytest

from mybb_sync.errors import UnsafeName
from mybb_sync.layout import (
    NAME_MAX,
    UNGROUPED,
    FileRef,
    Found,
    Kind,
    escape_part,
    group_of,
    is_ignored_name,
    parse,
    path_of,
    stylesheet_path,
    template_path,
    unescape_part,
    why_ignored,
)

SEED = 20240611
ROUNDS = 3000

HOSTILE_NAMES = [
    "../x",
    "..",
    ".",
    "...",
    ".hidden",
    "a/b",
    "a%2Fb",
    "a\\b",
    "a\x00b",
    "\x00",
    "tab\there",
    "line\nbreak",
    "cr\rhere",
    "esc\x1bape",
    "del\x7f",
    "100%",
    "%",
    "%25",
    "%2E",
    "%2e",
    "Thème été",
    "中文模板",
    "emoji 😀 title",
    "nbsp\u00a0title",
    "~",
    "x~",
    "4913",
    " leading and trailing ",
    "-dash",
    "t" * 120,
]


def reference_escape(name: str) -> str:
    """The escape rule, written out independently of the implementation."""
    out = "".join(f"%{ord(c):02X}" if c in "%/\\" or ord(c) < 0x20 or ord(c) == 0x7F else c for c in name)
    if out[:1] == ".":
        return "%2E" + out[1:]
    return "%23" + out[1:] if out[:1] == "#" else out


# A pool that makes collisions, separators, escapes and odd code points likely.
_POOL = (
    list("abcAZ09 _-.~#%/\\")
    + ["%2F", "%2E", "%25", "%2f", "%41", "..", "./", "/..", ".html", ".css"]
    + [chr(c) for c in range(0x00, 0x20)]
    + ["\x7f", "\x85", "\u00a0", "\u2028", "\ufeff", "é", "ß", "中", "😀", "\U0001f600"]
)


def hostile_name(rng: random.Random) -> str:
    size = rng.choice((1, 1, 2, 3, 5, 8, 13, 40, 90, 130))
    return "".join(rng.choice(_POOL) for _ in range(size))[:130] or "x"


def is_safe_relpath(path: str) -> bool:
    """True if ``path`` is a plain relative path that stays under any root."""
    parts = path.split("/")
    return (
        not path.startswith("/")
        and "\x00" not in path
        and "\\" not in path
        and all(p not in ("", ".", "..") for p in parts)
        and all(len(p.encode("utf-8")) <= NAME_MAX for p in parts)
        and posixpath.normpath(path) == path
        and posixpath.normpath(posixpath.join("/root", path)).startswith("/root/")
    )


# --- template_path / stylesheet_path / path_of ----------------------------------


def test_set_template_lives_in_its_set_and_group_folder_as_title_dot_html() -> None:
    assert template_path("Default Templates", "index_boardstats", "index") == (
        "template_sets/Default Templates/index/index_boardstats.html"
    )


def test_set_template_group_defaults_to_ungrouped() -> None:
    assert template_path("Default Templates", "mytemplate") == (
        "template_sets/Default Templates/ungrouped/mytemplate.html"
    )


def test_global_template_lives_in_global_templates_without_a_group_folder() -> None:
    assert template_path(None, "footer_custom", "footer") == "global_templates/footer_custom.html"


def test_stylesheet_lives_in_its_theme_folder_under_its_own_name() -> None:
    assert stylesheet_path("Default", "global.css") == "styles/Default/global.css"


def test_stylesheet_name_gets_no_extension_added() -> None:
    assert stylesheet_path("Default", "print") == "styles/Default/print"


def test_path_of_a_set_template_ref_equals_template_path() -> None:
    ref = FileRef(Kind.TEMPLATE, "My Set", "header")
    assert path_of(ref, "header") == template_path("My Set", "header", "header")


def test_path_of_a_global_template_ref_equals_template_path() -> None:
    assert path_of(FileRef(Kind.TEMPLATE, None, "x")) == template_path(None, "x")


def test_path_of_a_stylesheet_ref_equals_stylesheet_path() -> None:
    assert path_of(FileRef(Kind.STYLESHEET, "Default", "global.css")) == stylesheet_path("Default", "global.css")


def test_every_part_of_a_template_path_is_escaped() -> None:
    assert template_path("a/b", "c/d", "e/f") == "template_sets/a%2Fb/e%2Ff/c%2Fd.html"


def test_every_part_of_a_stylesheet_path_is_escaped() -> None:
    assert stylesheet_path("../up", "..") == "styles/%2E.%2Fup/%2E."


def test_a_120_character_title_fits_in_a_file_name() -> None:
    title = "t" * 120
    assert template_path("S", title) == f"template_sets/S/ungrouped/{title}.html"


def test_a_120_character_title_of_four_byte_characters_is_unsafe() -> None:
    with pytest.raises(UnsafeName):
        template_path("S", "😀" * 120)


def test_an_unsafe_set_title_makes_the_template_path_unsafe() -> None:
    with pytest.raises(UnsafeName):
        template_path("é" * 200, "x")


def test_an_empty_template_title_is_unsafe_not_a_dotfile_that_never_parses_back() -> None:
    """It was exported as %2Ehtml, which parses to no title: an orphan on every export."""
    with pytest.raises(UnsafeName, match="empty template title"):
        template_path("S", "")
    with pytest.raises(UnsafeName, match="empty template title"):
        template_path(None, "")


def test_an_empty_stylesheet_name_is_unsafe() -> None:
    with pytest.raises(UnsafeName):
        stylesheet_path("Default", "")


def test_an_empty_theme_name_is_unsafe() -> None:
    with pytest.raises(UnsafeName):
        stylesheet_path("", "global.css")


# --- escape_part ------------------------------------------------------------------


def test_plain_names_are_kept_as_they_are() -> None:
    for name in ("global.css", "Default Templates", "index_boardstats", "a-b_c d.e", "x~", "4913"):
        assert escape_part(name) == name


def test_non_ascii_names_are_kept_raw() -> None:
    assert escape_part("Thème 中文 😀") == "Thème 中文 😀"


def test_slash_is_escaped_as_percent_2F() -> None:
    assert escape_part("a/b") == "a%2Fb"


def test_backslash_is_escaped_as_percent_5C() -> None:
    assert escape_part("a\\b") == "a%5Cb"


def test_percent_is_escaped_as_percent_25() -> None:
    assert escape_part("100%") == "100%25"


def test_nul_is_escaped_as_percent_00() -> None:
    assert escape_part("a\x00b") == "a%00b"


def test_every_control_character_is_escaped_with_uppercase_hex() -> None:
    for code in [*range(0x00, 0x20), 0x7F]:
        assert escape_part(f"a{chr(code)}b") == f"a%{code:02X}b"


def test_a_leading_dot_is_escaped_as_percent_2E() -> None:
    assert escape_part(".hidden") == "%2Ehidden"


def test_only_the_leading_dot_is_escaped() -> None:
    assert escape_part("..a.b.") == "%2E.a.b."


def test_dot_is_escaped_so_it_cannot_name_the_current_folder() -> None:
    assert escape_part(".") == "%2E"


def test_dotdot_is_escaped_so_it_cannot_name_the_parent_folder() -> None:
    assert escape_part("..") == "%2E."


def test_dotdot_slash_is_escaped_into_a_single_harmless_part() -> None:
    assert escape_part("../x") == "%2E.%2Fx"


def test_an_empty_name_is_unsafe() -> None:
    with pytest.raises(UnsafeName):
        escape_part("")


def test_a_name_of_exactly_255_bytes_is_allowed() -> None:
    name = "é" * 127 + "a"  # 254 + 1 bytes
    assert escape_part(name) == name


def test_a_name_over_255_bytes_is_unsafe() -> None:
    with pytest.raises(UnsafeName):
        escape_part("é" * 128)  # 256 bytes


def test_a_very_long_utf8_name_is_unsafe() -> None:
    with pytest.raises(UnsafeName):
        escape_part("中文" * 100)


def test_the_escaped_length_counts_toward_the_limit() -> None:
    assert escape_part("/" * 85) == "%2F" * 85  # 255 bytes once escaped
    with pytest.raises(UnsafeName):
        escape_part("/" * 86)  # 86 bytes raw, 258 escaped


def test_a_lone_surrogate_is_unsafe() -> None:
    with pytest.raises(UnsafeName):
        escape_part("a\ud800b")


def test_names_equal_after_a_naive_escape_stay_different() -> None:
    assert escape_part("a/b") != escape_part("a%2Fb")


def test_names_equal_after_a_naive_escape_get_different_paths() -> None:
    assert template_path("S", "a/b") != template_path("S", "a%2Fb")
    assert stylesheet_path("a/b", "x") != stylesheet_path("a%2Fb", "x")


def test_a_dot_name_and_its_escaped_spelling_stay_different() -> None:
    assert escape_part(".x") != escape_part("%2Ex")


def test_escape_matches_the_written_rule_for_every_hostile_name() -> None:
    for name in HOSTILE_NAMES:
        assert escape_part(name) == reference_escape(name), name


# --- unescape_part ----------------------------------------------------------------


def test_unescape_inverts_escape_for_every_hostile_name() -> None:
    for name in HOSTILE_NAMES:
        assert unescape_part(escape_part(name)) == name, name


def test_a_plain_part_unescapes_to_itself() -> None:
    assert unescape_part("global.css") == "global.css"


def test_a_lowercase_hex_escape_is_not_canonical() -> None:
    assert unescape_part("a%2fb") is None


def test_an_escape_of_a_safe_character_is_not_canonical() -> None:
    assert unescape_part("%41") is None


def test_an_escaped_inner_dot_is_not_canonical() -> None:
    assert unescape_part("a%2Eb") is None


def test_a_raw_percent_is_not_canonical() -> None:
    for part in ("100%", "%", "%2", "%zz", "%G1"):
        assert unescape_part(part) is None, part


def test_a_raw_leading_dot_is_not_canonical() -> None:
    assert unescape_part(".hidden") is None


def test_raw_dot_and_dotdot_are_not_canonical() -> None:
    assert unescape_part(".") is None
    assert unescape_part("..") is None


def test_a_raw_control_character_is_not_canonical() -> None:
    assert unescape_part("a\tb") is None


def test_an_empty_part_names_nothing() -> None:
    assert unescape_part("") is None


def test_a_part_over_255_bytes_names_nothing() -> None:
    assert unescape_part("a" * 256) is None


def test_an_escaped_nul_unescapes_to_nul() -> None:
    assert unescape_part("a%00b") == "a\x00b"


def test_an_escaped_percent_unescapes_to_percent_once() -> None:
    assert unescape_part("%252F") == "%2F"


# --- parse --------------------------------------------------------------------------


def test_parse_a_set_template() -> None:
    assert parse("template_sets/Default Templates/index/index.html") == FileRef(
        Kind.TEMPLATE, "Default Templates", "index"
    )


def test_parse_a_global_template() -> None:
    assert parse("global_templates/footer_custom.html") == FileRef(Kind.TEMPLATE, None, "footer_custom")


def test_parse_a_stylesheet() -> None:
    assert parse("styles/Default/global.css") == FileRef(Kind.STYLESHEET, "Default", "global.css")


def test_parse_unescapes_every_part() -> None:
    assert parse("template_sets/a%2Fb/ungrouped/%2E.%2Fx.html") == FileRef(Kind.TEMPLATE, "a/b", "../x")
    assert parse("styles/%2Etheme/a%5Cb.css") == FileRef(Kind.STYLESHEET, ".theme", "a\\b.css")


def test_a_stylesheet_file_is_named_css_as_the_admin_cp_names_every_stylesheet() -> None:
    assert parse("styles/Default/sedX1b2c3") is None  # a sed -i temp file, not a new stylesheet
    assert parse("styles/Default/.css") is None
    assert why_ignored("styles/Default/sedX1b2c3", Found.FILE, ".tmp") is None  # said nowhere


def test_a_template_in_any_group_folder_is_the_same_template() -> None:
    expected = FileRef(Kind.TEMPLATE, "S", "index_boardstats")
    for group in ("index", "ungrouped", "calendar", "anything at all", "%2Ehidden", "a%2Fb"):
        assert parse(f"template_sets/S/{group}/index_boardstats.html") == expected, group


def test_the_group_folder_must_still_be_canonically_escaped() -> None:
    assert parse("template_sets/S/a%2fb/x.html") is None
    assert parse("template_sets/S/.hidden/x.html") is None


def test_a_non_canonical_set_title_parses_to_nothing() -> None:
    assert parse("template_sets/%41/g/x.html") is None


def test_a_non_canonical_template_file_name_parses_to_nothing() -> None:
    assert parse("template_sets/S/g/a%2fb.html") is None
    assert parse("global_templates/%41.html") is None


def test_a_non_canonical_theme_or_stylesheet_name_parses_to_nothing() -> None:
    assert parse("styles/%41/global.css") is None
    assert parse("styles/Default/a%2fb.css") is None


def test_a_template_file_needs_the_html_extension() -> None:
    assert parse("template_sets/S/g/index.htm") is None
    assert parse("template_sets/S/g/index") is None
    assert parse("global_templates/index.txt") is None


def test_a_file_named_only_dot_html_is_no_template() -> None:
    assert parse("global_templates/%2Ehtml") is None
    assert parse("template_sets/S/g/%2Ehtml") is None


def test_a_title_ending_in_dot_html_keeps_it() -> None:
    assert parse(template_path("S", "x.html")) == FileRef(Kind.TEMPLATE, "S", "x.html")


def test_a_set_template_needs_exactly_a_set_and_a_group_folder() -> None:
    assert parse("template_sets/S/x.html") is None
    assert parse("template_sets/S/g/h/x.html") is None
    assert parse("template_sets/x.html") is None


def test_a_global_template_has_no_group_folder() -> None:
    assert parse("global_templates/g/x.html") is None


def test_a_stylesheet_needs_exactly_a_theme_folder() -> None:
    assert parse("styles/global.css") is None
    assert parse("styles/Default/sub/global.css") is None


def test_top_folders_alone_are_nothing() -> None:
    for path in ("template_sets", "global_templates", "styles", ""):
        assert parse(path) is None, path


def test_dot_dotdot_and_empty_components_parse_to_nothing() -> None:
    for path in (
        "template_sets/../g/x.html",
        "template_sets/S/../x.html",
        "template_sets/./g/x.html",
        "template_sets//g/x.html",
        "/template_sets/S/g/x.html",
        "styles/Default/global.css/",
        "styles/Default/..",
        "global_templates/../x.html",
    ):
        assert parse(path) is None, path


def test_unknown_top_folders_parse_to_nothing() -> None:
    for path in (".mybb-sync/state.sqlite", "other/S/g/x.html", "Template_Sets/S/g/x.html", "STYLES/T/x"):
        assert parse(path) is None, path


def test_backslashes_are_not_separators() -> None:
    assert parse("template_sets\\S\\g\\x.html") is None
    assert parse("styles/T\\x/global.css") is None


def test_a_set_template_ref_is_not_global() -> None:
    assert not FileRef(Kind.TEMPLATE, "S", "x").is_global


def test_a_template_ref_without_scope_is_global() -> None:
    assert FileRef(Kind.TEMPLATE, None, "x").is_global


def test_a_stylesheet_ref_is_never_global() -> None:
    assert not FileRef(Kind.STYLESHEET, None, "x").is_global


# --- properties over many generated names -----------------------------------------


def test_escape_then_unescape_is_the_identity_for_generated_names() -> None:
    rng = random.Random(SEED)
    for _ in range(ROUNDS):
        name = hostile_name(rng)
        try:
            part = escape_part(name)
        except UnsafeName:
            continue
        assert unescape_part(part) == name, repr(name)


def test_unsafe_name_is_raised_exactly_when_the_escaped_name_exceeds_255_bytes() -> None:
    rng = random.Random(SEED + 1)
    refused = accepted = 0
    for _ in range(ROUNDS):
        name = hostile_name(rng)
        too_long = len(reference_escape(name).encode("utf-8", "surrogatepass")) > NAME_MAX
        try:
            escape_part(name)
        except UnsafeName:
            refused += 1
            assert too_long, repr(name)
        else:
            accepted += 1
            assert not too_long, repr(name)
    assert refused > 50 and accepted > 1000  # the generator exercises both sides


def test_every_generated_part_is_either_nothing_or_the_canonical_escape_of_its_name() -> None:
    rng = random.Random(SEED + 2)
    alphabet = ["%", "2", "E", "F", "e", "f", "5", "C", "0", "4", "1", ".", "a", "/", "\\", "\x00", "é", "~"]
    named = 0
    for _ in range(ROUNDS):
        part = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        name = unescape_part(part)
        if name is not None:
            named += 1
            assert escape_part(name) == part, repr(part)
    assert named > 100


def test_every_generated_template_path_parses_back_to_its_template() -> None:
    rng = random.Random(SEED + 3)
    checked = 0
    for _ in range(ROUNDS):
        set_title = rng.choice([None, hostile_name(rng)])
        title, group = hostile_name(rng), hostile_name(rng)
        try:
            path = template_path(set_title, title, group)
        except UnsafeName:
            continue
        checked += 1
        assert parse(path) == FileRef(Kind.TEMPLATE, set_title, title), repr(path)
    assert checked > 1000


def test_every_generated_stylesheet_path_parses_back_to_its_stylesheet() -> None:
    rng = random.Random(SEED + 4)
    checked = 0
    for _ in range(ROUNDS):
        theme, name = hostile_name(rng), hostile_name(rng) + ".css"
        try:
            path = stylesheet_path(theme, name)
        except UnsafeName:
            continue
        checked += 1
        assert parse(path) == FileRef(Kind.STYLESHEET, theme, name), repr(path)
    assert checked > 1000


def test_no_generated_path_can_leave_the_root() -> None:
    rng = random.Random(SEED + 5)
    for _ in range(ROUNDS):
        a, b, c = hostile_name(rng), hostile_name(rng), hostile_name(rng)
        for make in (
            lambda a=a, b=b, c=c: template_path(a, b, c),
            lambda b=b: template_path(None, b),
            lambda a=a, b=b: stylesheet_path(a, b),
        ):
            try:
                path = make()
            except UnsafeName:
                continue
            assert is_safe_relpath(path), repr(path)


def test_no_hostile_name_path_can_leave_the_root() -> None:
    for name in HOSTILE_NAMES:
        for path in (template_path(name, name, name), template_path(None, name), stylesheet_path(name, name)):
            assert is_safe_relpath(path), repr(path)


def test_different_entities_never_share_a_path() -> None:
    rng = random.Random(SEED + 6)
    owner: dict[str, FileRef] = {}
    # Reuse a few scopes so that many names land in the same folder.
    scopes = [hostile_name(rng) for _ in range(5)] + ["a/b", "a%2Fb", ".x", "%2Ex"]
    names = [hostile_name(rng) for _ in range(ROUNDS)] + HOSTILE_NAMES
    for name in names:
        for ref in (
            FileRef(Kind.TEMPLATE, rng.choice(scopes), name),
            FileRef(Kind.TEMPLATE, None, name),
            FileRef(Kind.STYLESHEET, rng.choice(scopes), name),
        ):
            try:
                path = path_of(ref)
            except UnsafeName:
                continue
            assert owner.setdefault(path, ref) == ref, f"{ref} and {owner[path]} both map to {path!r}"


def test_no_generated_template_file_name_is_an_ignored_name() -> None:
    rng = random.Random(SEED + 7)
    for _ in range(ROUNDS):
        try:
            path = template_path("S", hostile_name(rng))
        except UnsafeName:
            continue
        assert not is_ignored_name(path.rsplit("/", 1)[1], ".tmp"), repr(path)


# --- group_of ---------------------------------------------------------------------

GROUPS = frozenset({"calendar", "index", "forumdisplay", "usercp"})


def test_the_group_is_the_known_prefix_before_the_first_underscore() -> None:
    assert group_of("calendar_addevent", GROUPS) == "calendar"


def test_only_the_first_underscore_separates_the_prefix() -> None:
    assert group_of("forumdisplay_thread_gotounread", GROUPS | {"forumdisplay_thread"}) == "forumdisplay"


def test_an_unknown_prefix_is_ungrouped() -> None:
    assert group_of("mytheme_header", GROUPS) == UNGROUPED


def test_a_title_without_underscore_is_in_the_group_it_names() -> None:
    # MyBB explodes on "_": the whole title is then the prefix.
    assert group_of("index", GROUPS) == "index"
    assert group_of("headerinclude", GROUPS) == UNGROUPED


def test_a_title_starting_with_an_underscore_is_ungrouped() -> None:
    assert group_of("_calendar", GROUPS) == UNGROUPED


def test_no_known_groups_means_ungrouped() -> None:
    assert group_of("calendar_addevent", frozenset()) == UNGROUPED


def test_the_prefix_matches_regardless_of_case_like_the_admin_cp() -> None:
    # admin/modules/style/templates.php lowercases both sides before matching.
    assert group_of("Calendar_addevent", GROUPS) == "calendar"


def test_a_mixed_case_group_prefix_keeps_its_stored_spelling() -> None:
    assert group_of("myalerts_popup", frozenset({"MyAlerts"})) == "MyAlerts"


def test_group_of_accepts_any_iterable_of_prefixes() -> None:
    assert group_of("usercp_nav", ["usercp", "index"]) == "usercp"


# --- is_ignored_name ----------------------------------------------------------------


def test_vims_write_probe_4913_is_ignored() -> None:
    assert is_ignored_name("4913", ".tmp")


def test_backup_files_ending_in_tilde_are_ignored() -> None:
    assert is_ignored_name("x~", ".tmp")
    assert is_ignored_name("global.css~", ".tmp")


def test_vim_swap_files_are_ignored() -> None:
    for name in (".x.swp", ".x.swx", ".x.swo", "x.swp"):
        assert is_ignored_name(name, ".tmp"), name


def test_jetbrains_safe_write_files_are_ignored() -> None:
    assert is_ignored_name("index.html___jb_tmp___", ".tmp")
    assert is_ignored_name("index.html___jb_old___", ".tmp")
    assert is_ignored_name("___jb_tmp___", ".tmp")


def test_dotfiles_are_ignored() -> None:
    for name in (".gitignore", ".#index.html", ".DS_Store", ".index.html.a1b2c3d4.tmp"):
        assert is_ignored_name(name, ".tmp"), name


def test_names_ending_in_the_temp_suffix_are_ignored() -> None:
    assert is_ignored_name("x.tmp", ".tmp")


def test_the_temp_suffix_is_the_configured_one() -> None:
    assert is_ignored_name("global.css.part", ".part")
    assert not is_ignored_name("global.css.part", ".tmp")


def test_template_and_stylesheet_file_names_are_not_ignored() -> None:
    for name in ("index.html", "global.css", "4913.html", "%2Ehidden.html", "x~y.html", "color_black.css"):
        assert not is_ignored_name(name, ".tmp"), name


def test_a_leading_hash_is_escaped_so_no_title_looks_like_an_editor_autosave() -> None:
    path = template_path(None, "#draft#")
    assert path == "global_templates/%23draft#.html"
    assert not is_ignored_name(path.rpartition("/")[2], ".tmp")
    assert parse(path) == FileRef(Kind.TEMPLATE, None, "#draft#")


def test_editor_autosaves_and_merge_leftovers_are_ignored() -> None:
    for name in ("#global.css#", "global.css.orig", "global.css.rej", "global.css.bak"):
        assert is_ignored_name(name, ".tmp"), name
