"""PHP serialization and rtrim: the exact bytes MyBB reads and writes."""

import json
from pathlib import Path

import pytest

from mybb_sync.php import dumps, loads, rtrim


def _serialized_fixture_values(root: Path) -> list[str]:
    """Every PHP-serialized column in the captures, nested ones included."""
    values: list[str] = []
    for path in sorted(root.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if path.name in ("before.json", "after.json", "db-state.json"):
            themes = data["themes"]  # cases 7 and 8 keep the datacache rows by title
            values += list(data["datacache"].values()) if "datacache" in data else [data["datacache_default_theme"]]
        elif path.name == "themes.json":
            themes = data
        elif path.name == "datacache.json":
            themes = []
            values += [data["default_theme"], data["version"]]
        else:
            continue
        for theme in themes:
            values += [theme["properties"], theme["stylesheets"]]
    return values


# --- golden round trips --------------------------------------------------------


def test_every_fixture_value_reserializes_to_the_same_bytes(mybb_fixtures: Path) -> None:
    values = _serialized_fixture_values(mybb_fixtures)
    assert len(values) > 90
    assert [v for v in values if dumps(loads(v)) != v] == []


def test_every_fixture_value_survives_loads_of_dumps(mybb_fixtures: Path) -> None:
    for value in _serialized_fixture_values(mybb_fixtures):
        parsed = loads(value)
        assert loads(dumps(parsed)) == parsed


def test_default_theme_row_nests_serialized_strings(mybb_fixtures: Path) -> None:
    raw = json.loads((mybb_fixtures / "case6-fresh-install" / "datacache.json").read_text())["default_theme"]
    cache = loads(raw)
    assert isinstance(cache, dict)
    assert list(cache) == ["name", "tid", "properties", "stylesheets"]
    assert cache["tid"] == "2"
    assert isinstance(loads(cache["properties"]), dict)
    assert isinstance(loads(cache["stylesheets"]), dict)


def test_version_row_holds_an_int_version_code(mybb_fixtures: Path) -> None:
    raw = json.loads((mybb_fixtures / "case6-fresh-install" / "datacache.json").read_text())["version"]
    assert loads(raw) == {"version": "1.8.37", "version_code": 1837}


# --- hand-checked values ---------------------------------------------------------


def test_string_length_counts_utf8_bytes() -> None:
    assert dumps("a") == 's:1:"a";'
    assert dumps("é") == 's:2:"é";'
    assert dumps("→") == 's:3:"→";'
    assert dumps("😀") == 's:4:"😀";'


def test_string_with_quotes_and_semicolons_reads_back_by_length() -> None:
    text = 'say "hi";}'
    assert dumps(text) == 's:10:"say "hi";}";'
    assert loads(dumps(text)) == text


def test_int_and_str_keys_stay_distinct_both_ways() -> None:
    raw = 'a:2:{i:1;s:1:"a";s:1:"1";s:1:"b";}'
    assert loads(raw) == {1: "a", "1": "b"}
    assert dumps(loads(raw)) == raw


def test_int_and_numeric_string_values_stay_distinct() -> None:
    assert dumps({"x": 1, "y": "1"}) == 'a:2:{s:1:"x";i:1;s:1:"y";s:1:"1";}'


def test_nested_arrays_keep_key_order() -> None:
    value = {"b": {"z": [1, 2]}, "a": {}, 0: {"y": None}}
    expected = 'a:3:{s:1:"b";a:1:{s:1:"z";a:2:{i:0;i:1;i:1;i:2;}}s:1:"a";a:0:{}i:0;a:1:{s:1:"y";N;}}'
    assert dumps(value) == expected
    assert list(loads(expected)) == ["b", "a", 0]


def test_list_is_written_as_array_keyed_from_zero() -> None:
    assert dumps(["x", "y"]) == 'a:2:{i:0;s:1:"x";i:1;s:1:"y";}'
    assert loads(dumps(["x", "y"])) == {0: "x", 1: "y"}


def test_bool_and_null() -> None:
    assert dumps(True) == "b:1;"
    assert dumps(False) == "b:0;"
    assert dumps(None) == "N;"
    assert loads("b:1;") is True
    assert loads("b:0;") is False
    assert loads("N;") is None


def test_negative_int() -> None:
    assert dumps(-2) == "i:-2;"
    assert loads("i:-2;") == -2


def test_floats_read_and_written_in_php_spelling() -> None:
    assert loads("d:0.5;") == 0.5
    assert loads("d:1.0E+25;") == 1e25
    assert loads("d:-INF;") == float("-inf")
    assert dumps(0.5) == "d:0.5;"
    assert dumps(2.0) == "d:2;"
    assert dumps(1e25) == "d:1.0E+25;"
    assert dumps(1.5e-7) == "d:1.5E-7;"


def test_unsupported_python_values_are_refused() -> None:
    with pytest.raises(TypeError):
        dumps(object())
    with pytest.raises(TypeError):
        dumps({1.5: "float key"})


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param('s:5:"abc";', id="length-too-long"),
        pytest.param('s:1:"abc";', id="length-too-short"),
        pytest.param('s:1:"é";', id="length-splits-utf8"),
        pytest.param("i:1", id="missing-semicolon"),
        pytest.param("i:1;i:2;", id="trailing-data"),
        pytest.param("b:2;", id="bad-bool"),
        pytest.param('a:2:{i:0;s:1:"a";}', id="count-too-high"),
        pytest.param('a:2:{i:0;s:1:"a";i:0;s:1:"b";}', id="duplicate-key"),
        pytest.param("a:1:{N;i:1;}", id="null-key"),
        pytest.param('O:8:"stdClass":0:{}', id="object"),
    ],
)
def test_malformed_input_raises_one_line_value_error(raw: str) -> None:
    with pytest.raises(ValueError) as caught:
        loads(raw)
    assert "\n" not in str(caught.value)


# --- rtrim -----------------------------------------------------------------------


def test_rtrim_strips_php_whitespace_only() -> None:
    assert rtrim("x \t\r\n\x0b\x00") == "x"


def test_rtrim_keeps_nbsp_and_form_feed_unlike_str_rstrip() -> None:
    text = "x\xa0\x0c \n"
    assert rtrim(text) == "x\xa0\x0c"
    assert text.rstrip() == "x"


def test_rtrim_leaves_leading_and_interior_whitespace() -> None:
    assert rtrim("  a\r\n b \n") == "  a\r\n b"


@pytest.mark.parametrize("step", ["a-first-save", "b-second-save"])
def test_rtrim_gives_the_template_mybb_stored(mybb_fixtures: Path, step: str) -> None:
    folder = mybb_fixtures / "case5-template-footer" / step
    posted = (folder / "input-template.html").read_bytes().decode("utf-8")
    stored = next(t for t in json.loads((folder / "after.json").read_text())["templates"] if t["sid"] == 1)
    assert rtrim(posted) == stored["template"]
