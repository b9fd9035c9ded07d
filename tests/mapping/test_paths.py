"""Paths into JSON documents: parsing, getters, writing, and pruning consumed values."""

from __future__ import annotations

import copy

import pytest

from gateway.mapping.paths import EVERY, PathError, compile_getter, parse_path, set_at, without_paths


def get(text: str, doc: object) -> object:
    return compile_getter(parse_path(text))(doc)


# ---------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("a", ("a",)),
        ("a.b", ("a", "b")),
        ("items[0].id", ("items", 0, "id")),
        ("items[12]", ("items", 12)),
        ("sets[*].numbers[*]", ("sets", EVERY, "numbers", EVERY)),
        ("grid[1][2]", ("grid", 1, 2)),
        ("_private.x-y", ("_private", "x-y")),
        ("[0].id", (0, "id")),
        ("a1.B_2", ("a1", "B_2")),
        ("items[-1].id", ("items", -1, "id")),
        ("grid[-2][0]", ("grid", -2, 0)),
    ],
)
def test_parse_good_paths(text: str, steps: tuple) -> None:
    assert parse_path(text) == steps


@pytest.mark.parametrize(
    "text",
    ["", "a..b", ".a", "a.", "a[", "a[x]", "a[-]", "a[--1]", "a[1", "1a", "a b", "a.b[0]c", "a[*]x", "a/b", "a[]"],
)
def test_parse_bad_paths(text: str) -> None:
    with pytest.raises(PathError, match="path"):
        parse_path(text)


@pytest.mark.parametrize("value", [None, 3, ["a"]])
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(PathError, match="non-empty string"):
        parse_path(value)  # type: ignore[arg-type]


def test_parse_rejects_trailing_newline() -> None:
    """`$` in the segment pattern also matches before a final newline: "a\\n" must not read as "a"."""
    with pytest.raises(PathError):
        parse_path("a\n")


def test_path_error_is_a_value_error() -> None:
    assert issubclass(PathError, ValueError)


def test_every_forbidden_in_targets() -> None:
    assert parse_path("a[0].b", allow_every=False) == ("a", 0, "b")
    with pytest.raises(PathError, match=r"\[\*\] is not allowed"):
        parse_path("a[*].b", allow_every=False)


def test_negative_index_forbidden_in_targets() -> None:
    """A target builds a new document: there is no end to count from yet."""
    with pytest.raises(PathError, match=r"\[-1\] is not allowed"):
        parse_path("a[-1].b", allow_every=False)


# ---------------------------------------------------------------------------------------------- getters


DOC = {
    "a": {"b": {"c": 1}, "zero": 0, "false": False, "empty": ""},
    "items": [{"id": 1}, {"id": 2}, {"other": 3}],
    "sets": [
        {"numbers": ["1", "2"]},
        {"numbers": []},
        {"name": "no numbers"},
        {"numbers": ["3"]},
    ],
    "nested": [{"tags": ["x", "y"]}, {"tags": ["z"]}],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.b.c", 1),
        ("a.b", {"c": 1}),
        ("a.zero", 0),
        ("a.false", False),
        ("a.empty", ""),
        ("items[0].id", 1),
        ("items[2].other", 3),
        ("items[1]", {"id": 2}),
        ("items[-1].other", 3),  # the last element
        ("items[-3].id", 1),  # the first, counted from the end
        ("sets[-1].numbers[-1]", "3"),
    ],
)
def test_getter_reads_values(text: str, expected: object) -> None:
    assert get(text, DOC) == expected


@pytest.mark.parametrize(
    "text",
    [
        "missing",
        "a.missing",
        "a.b.c.d",  # a step into a number
        "a.b.missing.deeper",
        "items[3].id",  # index out of range
        "items[-4].id",  # index out of range, from the end
        "items[2].id",  # key missing in the element
        "a[0]",  # index into an object
        "items.id",  # key into a list
        "a.empty.x",  # key into a string
    ],
)
def test_getter_missing_steps_give_none(text: str) -> None:
    assert get(text, DOC) is None


def test_getter_on_non_container_documents() -> None:
    assert get("a", None) is None
    assert get("a", "text") is None
    assert get("[0]", ["first"]) == "first"
    assert get("[1]", ["first"]) is None


def test_last_element_of_an_empty_list_is_none() -> None:
    assert get("items[-1].id", {"items": []}) is None
    assert get("items[-1]", {"items": [7]}) == 7


def test_getter_stops_at_null() -> None:
    assert get("a.b", {"a": None}) is None
    assert get("a[0]", {"a": [None]}) is None


def test_every_collects_values_and_skips_missing() -> None:
    assert get("items[*].id", DOC) == [1, 2]
    assert get("items[*]", DOC) == DOC["items"]


def test_every_flattens_nested_every() -> None:
    assert get("sets[*].numbers[*]", DOC) == ["1", "2", "3"]
    assert get("nested[*].tags[*]", DOC) == ["x", "y", "z"]


def test_every_without_second_star_keeps_lists_whole() -> None:
    assert get("sets[*].numbers", DOC) == [["1", "2"], [], ["3"]]


def test_every_on_a_non_list_is_none() -> None:
    assert get("a[*].b", DOC) is None
    assert get("missing[*].b", DOC) is None
    assert get("items[*].id", {"items": {"id": 1}}) is None


def test_every_on_an_empty_list_is_empty() -> None:
    assert get("items[*].id", {"items": []}) == []


def test_every_after_an_index() -> None:
    doc = {"groups": [{"people": [{"n": "a"}, {"n": "b"}]}, {"people": [{"n": "c"}]}]}
    assert get("groups[1].people[*].n", doc) == ["c"]
    assert get("groups[*].people[0].n", doc) == ["a", "c"]


# ---------------------------------------------------------------------------------------------- set_at


def test_set_at_flat_and_nested() -> None:
    doc: dict = {}
    set_at(doc, ("name",), "x")
    set_at(doc, ("a", "b", "c"), 1)
    set_at(doc, ("a", "b", "d"), 2)
    assert doc == {"name": "x", "a": {"b": {"c": 1, "d": 2}}}


def test_set_at_creates_lists_for_indexes() -> None:
    doc: dict = {}
    set_at(doc, ("sets", 0, "numbers"), ["1"])
    set_at(doc, ("sets", 0, "id"), "c1")
    assert doc == {"sets": [{"numbers": ["1"], "id": "c1"}]}


def test_set_at_pads_lists_with_none() -> None:
    doc: dict = {}
    set_at(doc, ("l", 2), "c")
    assert doc == {"l": [None, None, "c"]}
    set_at(doc, ("l", 0), "a")
    assert doc == {"l": ["a", None, "c"]}
    set_at(doc, ("m", 1, "k"), "v")
    assert doc["m"] == [None, {"k": "v"}]


def test_set_at_list_of_lists() -> None:
    doc: dict = {}
    set_at(doc, ("grid", 1, 0), "x")
    assert doc == {"grid": [None, ["x"]]}


def test_set_at_overwrites_a_leaf_and_keeps_siblings() -> None:
    doc = {"a": {"b": 1, "keep": True}}
    set_at(doc, ("a", "b"), 2)
    assert doc == {"a": {"b": 2, "keep": True}}


def test_set_at_writes_none_when_asked() -> None:
    doc: dict = {}
    set_at(doc, ("a", "b"), None)
    assert doc == {"a": {"b": None}}


# ---------------------------------------------------------------------------------------------- without_paths


def test_without_paths_removes_consumed_values() -> None:
    doc = {"id": 1, "name": "n", "extra": "e"}
    assert without_paths(doc, [("id",), ("name",)]) == {"extra": "e"}


def test_without_paths_does_not_change_its_input() -> None:
    doc = {"a": {"b": 1, "c": 2}, "l": [{"x": 1, "y": 2}]}
    before = copy.deepcopy(doc)
    without_paths(doc, [("a", "b"), ("l", EVERY, "x")])
    assert doc == before


def test_without_paths_prunes_emptied_objects() -> None:
    doc = {"a": {"b": 1, "c": 2}, "keep": 1}
    assert without_paths(doc, [("a", "b"), ("a", "c")]) == {"keep": 1}
    assert without_paths(doc, [("a", "b")]) == {"a": {"c": 2}, "keep": 1}


def test_without_paths_keeps_untouched_empty_containers() -> None:
    doc = {"meta": {}, "tags": [], "cfg": {"url": "u", "metadata": {}}, "id": 1}
    assert without_paths(doc, [("id",), ("cfg", "url")]) == {"meta": {}, "tags": [], "cfg": {"metadata": {}}}


def test_without_paths_keeps_falsy_values() -> None:
    doc = {"a": 0, "b": False, "c": "", "d": None, "id": 1}
    assert without_paths(doc, [("id",)]) == {"a": 0, "b": False, "c": "", "d": None}


def test_without_paths_with_every() -> None:
    doc = {"sets": [{"numbers": ["1"], "label": "main"}, {"numbers": ["2"]}]}
    assert without_paths(doc, [("sets", EVERY, "numbers", EVERY)]) == {"sets": [{"label": "main"}, None]}


def test_without_paths_removes_a_fully_consumed_list() -> None:
    doc = {"sets": [{"numbers": ["1", "2"]}, {"numbers": ["3"]}], "x": 1}
    assert without_paths(doc, [("sets", EVERY, "numbers", EVERY)]) == {"x": 1}


def test_without_paths_with_an_index() -> None:
    doc = {"l": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}
    assert without_paths(doc, [("l", 0, "a")]) == {"l": [{"b": 2}, {"a": 3, "b": 4}]}


def test_without_paths_index_and_every_on_one_list() -> None:
    """`l[0].x` and `l[*].y` both consumed: x of the first element must go too."""
    doc = {"l": [{"x": 1, "y": 2, "z": 3}, {"x": 4, "y": 5}]}
    assert without_paths(doc, [("l", 0, "x"), ("l", EVERY, "y")]) == {"l": [{"z": 3}, {"x": 4}]}


def test_without_paths_whole_subtree() -> None:
    doc = {"a": {"b": {"c": 1}}, "k": 1}
    assert without_paths(doc, [("a",)]) == {"k": 1}
    # a longer path under an already consumed one changes nothing, in either order
    assert without_paths(doc, [("a",), ("a", "b", "c")]) == {"k": 1}
    assert without_paths(doc, [("a", "b", "c"), ("a",)]) == {"k": 1}


def test_without_paths_ignores_paths_that_do_not_match() -> None:
    doc = {"a": "text", "l": [1, 2], "o": {"k": 1}}
    assert without_paths(doc, [("a", "b"), ("l", "x"), ("missing",), ("o", 0)]) == doc


def test_without_paths_nothing_consumed() -> None:
    doc = {"a": 1}
    assert without_paths(doc, []) == doc


def test_without_paths_everything_consumed_is_an_empty_object() -> None:
    """Nothing left must read as an empty object, not as an internal marker."""
    result = without_paths({"id": 1, "name": "n"}, [("id",), ("name",)])
    assert result == {} or result is None, f"got {result!r}"
