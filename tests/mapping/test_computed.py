"""Values computed from several fields, conditions, filtered counts and an element's position."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.mapping.expressions import Scope, TranslationError, compile_expression, compile_fields
from gateway.mapping.transforms import MapError

REQUEST, ANSWER = Scope({}, strict=True), Scope({}, strict=False)


def run(spec: Any, doc: Any, scope: Scope = ANSWER) -> Any:
    return compile_expression(spec, ("t",), scope).fn(doc)


def map_error(spec: Any) -> MapError:
    with pytest.raises(MapError) as caught:
        compile_expression(spec, ("t",), ANSWER)
    return caught.value


# ---------------------------------------------------------------------------------------------- arithmetic

BATCH = {"total_calls_scheduled": 150, "total_calls_dispatched": 40, "total_calls_finished": 25}


def test_difference_of_two_fields() -> None:
    assert run({"difference": ["total_calls_scheduled", "total_calls_dispatched"]}, BATCH) == 110


def test_difference_of_several_and_sum() -> None:
    spec = {"difference": ["total_calls_scheduled", "total_calls_dispatched", "total_calls_finished"]}
    assert run(spec, BATCH) == 85
    assert run({"sum": ["total_calls_dispatched", "total_calls_finished", {"const": 1.5}]}, BATCH) == 66.5
    assert run({"sum": ["page.offset", "page.limit"]}, {"page": {"offset": 40, "limit": 20}}) == 60


def test_arithmetic_with_a_missing_value_is_null_not_a_guess() -> None:
    assert run({"difference": ["total_calls_scheduled", "missing"]}, BATCH) is None
    assert run({"sum": ["missing", "total_calls_finished"]}, BATCH) is None


def test_arithmetic_of_operands_with_pipes() -> None:
    spec = {"difference": ["a", {"from": "b", "pipe": ["integer"]}], "pipe": [{"add": 1}]}
    assert run(spec, {"a": 10, "b": "4"}) == 7


def test_arithmetic_over_what_is_not_a_number() -> None:
    spec = {"difference": ["a", "b"]}
    assert run(spec, {"a": 10, "b": "4"}) is None
    assert run(spec, {"a": True, "b": 1}) is None
    with pytest.raises(TranslationError) as caught:
        run(spec, {"a": 10, "b": "4"}, REQUEST)
    assert (caught.value.field, caught.value.message) == ("a", "expected numbers, got '4'")


def test_arithmetic_carries_its_sources() -> None:
    compiled = compile_expression({"difference": ["a.x", "b"]}, ("t",), ANSWER)
    assert compiled.consumed == [("a", "x"), ("b",)]
    assert [path for path, _loc in compiled.reads] == [("a", "x"), ("b",)]


@pytest.mark.parametrize("operands", [["a"], [], "a", None])
def test_arithmetic_needs_two_expressions(operands: Any) -> None:
    error = map_error({"sum": operands})
    assert (error.loc, error.message) == (("t", "sum"), "sum takes a list of two or more expressions")


# ---------------------------------------------------------------------------------------------- conditions

PAGE = {"batch_calls": [{"id": "b1"}, {"id": "b2"}], "next_doc": "b2", "has_more": True}


def test_a_cursor_from_the_last_item_while_the_vendor_says_there_is_more() -> None:
    spec = {"from": "batch_calls[-1].id", "when": "has_more"}
    assert run(spec, PAGE) == "b2"
    assert run(spec, {**PAGE, "has_more": False}) is None  # the last page
    assert run(spec, {"batch_calls": [], "has_more": True}) is None  # nothing to continue from
    assert run(spec, {"batch_calls": [{"id": "b1"}]}) is None  # no flag: no more


def test_when_and_unless_with_values() -> None:
    workflow = {"params": {"agent_type": "workflow"}, "body": {"agent_id": "wf_1"}}
    assistant = {"params": {}, "body": {"agent_id": "as_1"}}
    as_workflow = {"from": "body.agent_id", "when": {"params.agent_type": "workflow"}}
    as_assistant = {"from": "body.agent_id", "unless": {"params.agent_type": ["workflow", "squad"]}}
    assert (run(as_workflow, workflow), run(as_assistant, workflow)) == ("wf_1", None)
    assert (run(as_workflow, assistant), run(as_assistant, assistant)) == (None, "as_1")


def test_when_applies_after_the_default() -> None:
    spec = {"const": "Linear", "when": "body.retry.max_attempts"}
    assert run(spec, {"body": {"retry": {"max_attempts": 3}}}) == "Linear"
    assert run(spec, {"body": {}}) is None
    assert run({"from": "x", "default": "d", "when": "flag"}, {"flag": 0}) == "d"  # 0 is a value


@pytest.mark.parametrize(
    ("condition", "doc", "holds"),
    [
        ("flag", {"flag": False}, False),
        ("flag", {"flag": ""}, False),
        ("flag", {"flag": []}, False),
        ("flag", {"flag": "yes"}, True),
        ({"n": 1}, {"n": True}, False),  # a boolean is not a number
        ({"n": 1}, {"n": 1}, True),
        ({"s": None}, {}, True),  # null matches a missing value
        ({"s": ["a", "b"], "t": "x"}, {"s": "b", "t": "x"}, True),
        ({"s": ["a", "b"], "t": "x"}, {"s": "b", "t": "y"}, False),  # every pair must hold
    ],
)
def test_conditions(condition: Any, doc: Any, holds: bool) -> None:
    assert run({"const": "v", "when": condition}, doc) == ("v" if holds else None)


@pytest.mark.parametrize("condition", [{}, 3, {"s": {"nested": 1}}, {"s": []}, "a..b"])
def test_bad_conditions_are_map_errors_where_written(condition: Any) -> None:
    error = map_error({"const": "v", "unless": condition})
    assert error.loc == ("t", "unless")
    assert error.message.startswith("unless: ")


def test_condition_paths_are_reads_for_check() -> None:
    compiled = compile_expression({"from": "body.name", "when": {"params.kind": "x"}}, ("t",), REQUEST)
    assert [path for path, _loc in compiled.reads] == [("body", "name"), ("params", "kind")]
    assert compiled.consumed == [("body", "name")]


# ---------------------------------------------------------------------------------------------- filtered counts

RECIPIENTS = {
    "recipients": [
        {"id": "r1", "status": "completed"},
        {"id": "r2", "status": "failed"},
        {"id": "r3", "status": "voicemail"},
        {"id": "r4", "status": "completed"},
        {"id": "r5"},
    ]
}


def test_a_count_of_elements_whose_status_is_x() -> None:
    assert run({"from": "recipients", "pipe": [{"where": {"status": "completed"}}, "count"]}, RECIPIENTS) == 2
    either = {"where": {"status": ["failed", "voicemail"]}}
    assert run({"from": "recipients", "pipe": [either, "count"]}, RECIPIENTS) == 2
    assert run({"from": "recipients", "pipe": [{"where": {"status": "busy"}}, "count"]}, RECIPIENTS) == 0
    assert run({"from": "recipients", "pipe": [{"where": {"status": None}}, "count"]}, RECIPIENTS) == 1


def test_where_on_no_list_is_null_and_keeps_the_source_in_vendor_data() -> None:
    spec = {"from": "recipients", "pipe": [{"where": {"status": "completed"}}, "count"]}
    assert run(spec, {}) is None
    assert run(spec, {"recipients": "many"}) is None
    assert compile_expression(spec, ("t",), ANSWER).consumed == []


def test_where_then_first_then_get() -> None:
    spec = {"from": "recipients", "pipe": [{"where": {"status": "failed"}}, "first", {"get": "id"}]}
    assert run(spec, RECIPIENTS) == "r2"


def test_a_field_inside_json_text() -> None:
    doc = {"base_prompt": '{"pathway_id": "pw_1", "from": "+14155550100", "record": true}'}
    assert run({"from": "base_prompt", "pipe": ["parse_json", {"get": "pathway_id"}]}, doc) == "pw_1"
    assert run({"from": "base_prompt", "pipe": ["parse_json", {"get": "missing"}]}, doc) is None
    assert run({"from": "base_prompt", "pipe": ["parse_json"]}, {"base_prompt": "{not json"}) is None
    assert compile_expression({"from": "base_prompt", "pipe": ["parse_json"]}, ("t",), ANSWER).consumed == []


@pytest.mark.parametrize(("name", "arg"), [("where", "a..b"), ("where", {}), ("get", "a..b")])
def test_bad_arguments_are_map_errors(name: str, arg: Any) -> None:
    assert name in map_error({"from": "v", "pipe": [{name: arg}]}).message


# ---------------------------------------------------------------------------------------------- element index


def test_index_under_each_counts_from_0_or_1() -> None:
    spec = {"from": "customers", "each": {"id": {"index": 1, "pipe": ["string"]}, "at": {"index": 0}, "n": "number"}}
    doc = {"customers": [{"number": "+1"}, {"number": "+2"}]}
    assert run(spec, doc) == [{"id": "1", "at": 0, "n": "+1"}, {"id": "2", "at": 1, "n": "+2"}]


def test_nested_each_sees_its_own_index() -> None:
    spec = {"from": "groups", "each": {"g": {"index": 0}, "people": {"from": "people", "each": {"p": {"index": 0}}}}}
    doc = {"groups": [{"people": [{}, {}]}, {"people": [{}]}]}
    assert run(spec, doc) == [
        {"g": 0, "people": [{"p": 0}, {"p": 1}]},
        {"g": 1, "people": [{"p": 0}]},
    ]


def test_index_outside_a_list_is_null() -> None:
    assert compile_fields({"id": {"index": 0}}, ("t",), ANSWER, omit_null=False).fn({}) == {"id": None}


@pytest.mark.parametrize("start", [2, -1, "0", True, None])
def test_index_starts_at_0_or_1(start: Any) -> None:
    error = map_error({"index": start})
    assert error.loc == ("t", "index")
    assert "index takes 0 or 1" in error.message
