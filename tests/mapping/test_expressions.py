"""Expressions and field maps: sources, each, pipe, default, consumed paths, and failures."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.mapping.expressions import (
    EXPRESSION_KEYS,
    Scope,
    TranslationError,
    compile_expression,
    compile_fields,
)
from gateway.mapping.paths import EVERY
from gateway.mapping.transforms import Enum, MapError

DAY = Enum(
    forward={"monday": "monday", "friday": "friday"},
    reverse={"monday": "MONDAY", "friday": "FRIDAY"},
    unknown=None,
    ignore_case=True,
)
LENIENT = Scope({"day": DAY}, strict=False)
STRICT = Scope({"day": DAY}, strict=True)


def run(spec: Any, doc: Any, scope: Scope = LENIENT) -> Any:
    return compile_expression(spec, ("x",), scope).fn(doc)


def consumed(spec: Any, scope: Scope = LENIENT) -> list[tuple]:
    return compile_expression(spec, ("x",), scope).consumed


def map_error(spec: Any, scope: Scope = LENIENT, loc: tuple = ("x",)) -> MapError:
    with pytest.raises(MapError) as caught:
        compile_expression(spec, loc, scope)
    return caught.value


# ---------------------------------------------------------------------------------------------- sources


def test_a_string_is_a_from_path() -> None:
    doc = {"a": {"b": 5}}
    assert run("a.b", doc) == 5
    assert run({"from": "a.b"}, doc) == 5
    assert consumed("a.b") == [("a", "b")]


def test_from_missing_is_none() -> None:
    assert run("a.b", {}) is None


def test_from_every() -> None:
    doc = {"sets": [{"n": ["1", "2"]}, {"n": ["3"]}]}
    assert run("sets[*].n[*]", doc) == ["1", "2", "3"]
    assert consumed("sets[*].n[*]") == [("sets", EVERY, "n", EVERY)]


def test_const() -> None:
    assert run({"const": "live"}, {}) == "live"
    assert run({"const": [1, 2]}, None) == [1, 2]
    assert run({"const": None}, {}) is None
    assert consumed({"const": "live"}) == []


def test_coalesce_first_not_null() -> None:
    spec = {"coalesce": ["a", "b", {"const": "fallback"}]}
    assert run(spec, {"a": 1, "b": 2}) == 1
    assert run(spec, {"a": None, "b": 2}) == 2
    assert run(spec, {"b": 0}) == 0  # falsy but present
    assert run(spec, {"b": ""}) == ""
    assert run(spec, {}) == "fallback"
    assert run({"coalesce": ["a", "b"]}, {}) is None
    assert consumed(spec) == [("a",), ("b",)]


def test_coalesce_of_expressions_with_pipes() -> None:
    spec = {"coalesce": [{"from": "n", "pipe": [{"add": 1}]}, "m"]}
    assert run(spec, {"n": 1, "m": 9}) == 2
    assert run(spec, {"m": 9}) == 9


def test_concat_joins_lists_and_skips_the_rest() -> None:
    spec = {"concat": ["a", "b", "c"]}
    assert run(spec, {"a": [1, 2], "b": [3], "c": "not a list"}) == [1, 2, 3]
    assert run(spec, {"a": [], "b": None}) == []
    assert run(spec, {}) is None
    assert run(spec, {"c": 5}) is None
    assert consumed(spec) == [("a",), ("b",), ("c",)]


def test_each_builds_one_object_per_element() -> None:
    spec = {"from": "people", "each": {"phoneNumber": "phone", "name": "name", "tag": {"const": "x"}}}
    doc = {"people": [{"phone": "+1", "name": "A"}, {"phone": "+2"}]}
    assert run(spec, doc, STRICT) == [{"phoneNumber": "+1", "name": "A", "tag": "x"}, {"phoneNumber": "+2", "tag": "x"}]
    # vendor answers keep every key, null where missing
    assert run(spec, doc, LENIENT)[1] == {"phoneNumber": "+2", "name": None, "tag": "x"}
    assert consumed(spec) == [("people", EVERY, "phone"), ("people", EVERY, "name")]


def test_each_nested_targets() -> None:
    spec = {"from": "l", "each": {"a.b": "v", "c[0]": "w"}}
    assert run(spec, {"l": [{"v": 1, "w": 2}]}, STRICT) == [{"a": {"b": 1}, "c": [2]}]


def test_each_of_a_non_list_is_none() -> None:
    spec = {"from": "l", "each": {"a": "v"}}
    assert run(spec, {"l": {"v": 1}}) is None
    assert run(spec, {}) is None
    assert run(spec, {"l": []}) == []


def test_each_then_pipe() -> None:
    spec = {"from": "l", "each": {"a": "v"}, "pipe": ["count"]}
    assert run(spec, {"l": [{"v": 1}, {"v": 2}]}) == 2


# ---------------------------------------------------------------------------------------------- pipe and default


def test_pipe_runs_in_order() -> None:
    assert run({"from": "n", "pipe": [{"add": 1}, "string"]}, {"n": 2}) == "3"
    assert run({"from": "n", "pipe": ["string", {"add": 1}]}, {"n": 2}) == 3
    assert run({"from": "v", "pipe": [{"vendor_enum": "day"}, "lower"]}, {"v": ["monday"]}) == ["monday"]


def test_pipe_on_const() -> None:
    assert run({"const": "18885650001", "pipe": ["e164", "list"]}, {}) == ["+18885650001"]


def test_pipe_keeps_consumption_unless_lossy() -> None:
    assert consumed({"from": "a", "pipe": ["utc"]}) == [("a",)]
    assert consumed({"from": "a", "pipe": ["count"]}) == []
    assert consumed({"from": "a", "pipe": ["first", "keys"]}) == []
    assert consumed({"from": "a", "pipe": [{"present": [1, 0]}]}) == []


def test_default_when_null() -> None:
    spec = {"from": "a", "default": "UTC"}
    assert run(spec, {}) == "UTC"
    assert run(spec, {"a": None}) == "UTC"
    assert run(spec, {"a": ""}) == ""
    assert run(spec, {"a": 0}) == 0
    assert run(spec, {"a": "Asia/Kolkata"}) == "Asia/Kolkata"
    assert consumed(spec) == [("a",)]


def test_default_applies_after_the_pipe() -> None:
    spec = {"from": "days", "pipe": [{"vendor_enum": "day"}], "default": ["MONDAY"]}
    assert run(spec, {}, STRICT) == ["MONDAY"]
    assert run(spec, {"days": ["friday"]}, STRICT) == ["FRIDAY"]
    # a lenient failure becomes null, then the default
    assert run({"from": "t", "pipe": ["hhmm"], "default": "00:00"}, {"t": "<string>"}) == "00:00"


def test_default_does_not_replace_a_value() -> None:
    assert run({"from": "a", "default": [1]}, {"a": [2]}) == [2]
    assert run({"from": "a", "default": [1]}, {"a": []}) == []


# ---------------------------------------------------------------------------------------------- strict vs lenient


def test_lenient_failure_is_null() -> None:
    assert run({"from": "t", "pipe": ["utc"]}, {"t": "<string>"}) is None
    assert run({"from": "n", "pipe": ["integer"]}, {"n": "many"}) is None
    assert run({"from": "l", "pipe": ["count"]}, {"l": 5}) is None


def test_strict_failure_raises_with_the_source_path() -> None:
    with pytest.raises(TranslationError) as caught:
        run({"from": "body.schedule.start_at", "pipe": ["utc"]}, {"body": {"schedule": {"start_at": "soon"}}}, STRICT)
    assert caught.value.field == "body.schedule.start_at"
    assert "soon" in caught.value.message
    assert isinstance(caught.value, ValueError)


def test_strict_enum_without_equivalent_raises() -> None:
    with pytest.raises(TranslationError, match="no equivalent"):
        run({"from": "s", "pipe": [{"vendor_enum": "day"}]}, {"s": "sunday"}, STRICT)
    assert run({"from": "s", "pipe": [{"vendor_enum": "day"}]}, {"s": "sunday"}, LENIENT) is None


def test_strict_failure_of_one_element_fails_the_whole_value() -> None:
    with pytest.raises(TranslationError):
        run({"from": "n", "pipe": ["e164"]}, {"n": ["+14155551212", "abc"]}, STRICT)


def test_lenient_failure_of_one_element_is_dropped() -> None:
    """A canonical list never holds null (from_numbers is list[str]): an element that cannot be converted
    is left out, and a list with nothing convertible is null, like any other unconvertible value."""
    spec = {"from": "n", "pipe": ["e164"]}
    some = run(spec, {"n": ["14155551212", "abc"]})
    assert some == ["+14155551212"], f"one bad element gave {some!r}"
    none = run(spec, {"n": ["<string>"]})
    assert none is None, f"no convertible element gave {none!r}"


def test_strict_failure_inside_each_names_the_element_field() -> None:
    spec = {"from": "body.recipients", "each": {"n": {"from": "phone_number", "pipe": ["national_number"]}}}
    with pytest.raises(TranslationError) as caught:
        run(spec, {"body": {"recipients": [{"phone_number": "+14155551212"}, {"phone_number": "nope"}]}}, STRICT)
    assert caught.value.field == "body.recipients[1].phone_number"
    assert caught.value.message == "expected a phone number with its country code, got 'nope'"


def test_strict_failure_in_coalesce_is_labelled_with_its_first_path() -> None:
    with pytest.raises(TranslationError) as caught:
        run({"coalesce": ["a", "b"], "pipe": ["utc"]}, {"b": "never"}, STRICT)
    assert caught.value.field == "a"


def test_strict_failure_of_a_constant_has_a_generic_label() -> None:
    with pytest.raises(TranslationError) as caught:
        run({"const": "never", "pipe": ["utc"]}, {}, STRICT)
    assert caught.value.field == "value"


# ---------------------------------------------------------------------------------------------- field maps


def test_flat_field_map() -> None:
    fields = compile_fields({"name": "n", "kind": {"const": "k"}, "gone": "missing"}, ("f",), STRICT, omit_null=True)
    assert fields.fn({"n": "x"}) == {"name": "x", "kind": "k"}
    assert fields.consumed == [("n",), ("missing",)]


def test_flat_field_map_keeps_nulls_when_asked() -> None:
    fields = compile_fields({"name": "n", "gone": "missing"}, ("f",), LENIENT, omit_null=False)
    assert fields.fn({"n": "x"}) == {"name": "x", "gone": None}


def test_nested_field_map() -> None:
    spec = {
        "name": "n",
        "app.id": "a",
        "app.configs[0].id": {"const": "c1"},
        "app.configs[0].numbers": {"from": "num", "pipe": ["list"]},
        "empty.x": "missing",
    }
    fields = compile_fields(spec, ("f",), STRICT, omit_null=True)
    assert fields.fn({"n": "x", "a": "app_1", "num": "+1"}) == {
        "name": "x",
        "app": {"id": "app_1", "configs": [{"id": "c1", "numbers": ["+1"]}]},
    }
    lenient = compile_fields(spec, ("f",), LENIENT, omit_null=False)
    assert lenient.fn({})["empty"] == {"x": None}


def test_field_map_builds_a_fresh_document_each_time() -> None:
    fields = compile_fields({"a.b": "v"}, ("f",), STRICT, omit_null=True)
    first = fields.fn({"v": 1})
    first["a"]["b"] = "changed"
    assert fields.fn({"v": 2}) == {"a": {"b": 2}}


# ---------------------------------------------------------------------------------------------- compile errors


def test_expression_keys() -> None:
    assert EXPRESSION_KEYS == (
        "from",
        "const",
        "coalesce",
        "concat",
        "sum",
        "difference",
        "index",
        "each",
        "pipe",
        "default",
        "when",
        "unless",
    )


def test_unknown_key_loc() -> None:
    error = map_error({"from": "a", "pipes": ["utc"]}, loc=("shapes", "campaign", "id"))
    assert error.loc == ("shapes", "campaign", "id", "pipes")
    assert "unknown key 'pipes'" in error.message


@pytest.mark.parametrize("spec", [None, 3, ["a"], True])
def test_not_an_expression(spec: Any) -> None:
    error = map_error(spec, loc=("shapes", "c", "name"))
    assert error.loc == ("shapes", "c", "name")


@pytest.mark.parametrize(
    "spec", [{}, {"pipe": ["utc"]}, {"from": "a", "const": 1}, {"coalesce": ["a"], "concat": ["b"]}]
)
def test_exactly_one_source(spec: Any) -> None:
    error = map_error(spec)
    assert "exactly one of" in error.message
    assert error.loc == ("x",)


def test_bad_from_path_loc() -> None:
    error = map_error({"from": "a..b"}, loc=("s", "t"))
    assert error.loc == ("s", "t", "from")
    assert "a..b" in error.message
    assert map_error("a[x]", loc=("s", "t")).loc == ("s", "t", "from")
    assert map_error({"from": 5}, loc=("s", "t")).loc == ("s", "t", "from")


@pytest.mark.parametrize("kind", ["coalesce", "concat"])
def test_alternatives_need_a_list(kind: str) -> None:
    assert map_error({kind: []}).loc == ("x", kind)
    assert map_error({kind: "a"}).loc == ("x", kind)
    assert map_error({kind: ["a", "b..c"]}).loc == ("x", kind, 1, "from")


def test_unknown_transform_loc() -> None:
    error = map_error({"from": "a", "pipe": ["utc", "uppercase"]}, loc=("shapes", "c", "name"))
    assert error.loc == ("shapes", "c", "name", "pipe", 1)
    assert "unknown transform 'uppercase'" in error.message


def test_unknown_enum_loc() -> None:
    error = map_error({"from": "a", "pipe": [{"enum": "colour"}]}, loc=("shapes", "c", "status"))
    assert error.loc == ("shapes", "c", "status", "pipe", 0)
    assert "unknown enum 'colour'" in error.message
    assert "day" in error.message


def test_transform_needing_an_argument() -> None:
    error = map_error({"from": "a", "pipe": ["add"]})
    assert error.loc == ("x", "pipe", 0)
    assert "needs an argument" in error.message


def test_bad_transform_argument_loc() -> None:
    assert map_error({"from": "a", "pipe": ["utc", {"add": "one"}]}).loc == ("x", "pipe", 1)


@pytest.mark.parametrize("pipe", [[], "utc", None])
def test_pipe_must_be_a_list(pipe: Any) -> None:
    assert map_error({"from": "a", "pipe": pipe}).loc == ("x", "pipe")


@pytest.mark.parametrize("step", [{"add": 1, "enum": "day"}, 3, ["utc"]])
def test_bad_transform_step(step: Any) -> None:
    error = map_error({"from": "a", "pipe": [step]})
    assert error.loc == ("x", "pipe", 0)


def test_each_errors_loc() -> None:
    assert map_error({"from": "l", "each": "a"}).loc == ("x", "each")
    assert map_error({"from": "l", "each": {"a": {"frm": "b"}}}).loc == ("x", "each", "a", "frm")


def test_bad_target_path_loc() -> None:
    with pytest.raises(MapError) as caught:
        compile_fields(
            {"ok": "a", "bad..target": "b"}, ("operations", "create", "request", "body"), STRICT, omit_null=True
        )
    assert caught.value.loc == ("operations", "create", "request", "body", "bad..target")
    with pytest.raises(MapError) as caught:
        compile_fields({"l[*].x": "b"}, ("f",), STRICT, omit_null=True)
    assert caught.value.loc == ("f", "l[*].x")


@pytest.mark.parametrize("target", ["[0]", "[0].a"])
def test_target_starting_with_an_index_is_a_map_error(target: str) -> None:
    """A field map builds an object: a target that starts with an index cannot be written into it."""
    try:
        fields = compile_fields({target: "a"}, ("f",), STRICT, omit_null=True)
    except MapError as exc:
        assert exc.loc == ("f", target)
        return
    try:
        result = fields.fn({"a": 1})
    except Exception as exc:
        pytest.fail(f"target {target!r} compiled, then building crashed with {type(exc).__name__}: {exc}")
    pytest.fail(f"target {target!r} compiled and built {result!r}")


def test_conflicting_targets_are_a_map_error() -> None:
    """`a` and `a.b` cannot both be written: the second write lands inside a plain value."""
    try:
        fields = compile_fields({"a": "x", "a.b": "y"}, ("f",), STRICT, omit_null=True)
    except MapError as exc:
        assert exc.loc == ("f", "a.b")
        return
    try:
        result = fields.fn({"x": 1, "y": 2})
    except Exception as exc:
        pytest.fail(f"conflicting targets compiled, then building crashed with {type(exc).__name__}: {exc}")
    pytest.fail(f"conflicting targets compiled and built {result!r}")


def test_field_map_must_be_an_object() -> None:
    with pytest.raises(MapError) as caught:
        compile_fields(["a"], ("f",), STRICT, omit_null=True)
    assert caught.value.loc == ("f",)


def test_field_map_expression_error_loc() -> None:
    with pytest.raises(MapError) as caught:
        compile_fields({"name": {"from": "n", "pipe": ["nope"]}}, ("shapes", "c"), LENIENT, omit_null=False)
    assert caught.value.loc == ("shapes", "c", "name", "pipe", 0)
