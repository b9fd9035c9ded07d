"""Compiling a whole map: operations, requests, responses, paging, and where compile errors point."""

from __future__ import annotations

import copy
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.engine import Call, prepare
from gateway.mapping import MalformedResponse, Page, VendorMap, load_map
from gateway.mapping.compiler import compile_map
from gateway.mapping.expressions import TranslationError
from gateway.mapping.request import encode_segment, render_template
from gateway.mapping.spec import MapSpec
from gateway.mapping.transforms import MapError

BASE: dict[str, Any] = {
    "vendor": "acme",
    "base_url": "https://{params.host}.example.com",
    "auth": {"headers": {"Authorization": "Bearer {credentials.api_key}"}, "query": {"team": "{params.team}"}},
    "enums": {"status": {"map": {"RUN": "active", "STOP": "cancelled"}, "unknown": None, "ignore_case": True}},
    "shapes": {
        "campaign": {
            "id": {"from": "id", "pipe": ["string"]},
            "name": "title",
            "status": {"from": "state", "pipe": [{"enum": "status"}]},
            "vendor_status": "state",
            "retry.max_attempts": {"from": "retries", "pipe": [{"add": 1}]},
            "stats.total": {"from": "leads", "pipe": ["count"]},
        },
        "recipient": {
            "id": {"from": "id", "pipe": ["string"]},
            "phone_number": {"from": "msisdn", "pipe": ["e164"]},
            "name": "name",
        },
        "added": {"accepted": "ok", "rejected": "ko"},
    },
    "operations": {
        "get": {"request": {"method": "GET", "path": "/c/{id}"}, "response": {"unwrap": "data", "shape": "campaign"}},
    },
}


def spec(**changes: Any) -> dict[str, Any]:
    """BASE with top-level keys replaced and operations added or replaced."""
    document = copy.deepcopy(BASE)
    operations = changes.pop("operations", {})
    document.update(changes)
    document["operations"].update(operations)
    return document


def compile_spec(document: dict[str, Any]) -> VendorMap:
    return compile_map(MapSpec.model_validate(document))


def compile_error(document: dict[str, Any]) -> MapError:
    with pytest.raises(MapError) as caught:
        compile_spec(document)
    return caught.value


def context(**changes: Any) -> dict[str, Any]:
    base = {
        "body": None,
        "id": None,
        "params": {"host": "h", "team": "t"},
        "page": {"offset": 0, "limit": 20, "number": 1, "cursor": None},
        "filter": {"status": None},
        "now": "2026-01-01T00:00:00Z",
    }
    base.update(changes)
    return base


def page_context(offset: int, limit: int) -> dict[str, Any]:
    return {"page": {"offset": offset, "limit": limit}}


# ---------------------------------------------------------------------------------------------- the compiled map


def test_compiled_map_basics() -> None:
    compiled = compile_spec(spec(aliases=["acme2"], id_pattern="[0-9]+"))
    assert compiled.name == "acme"
    assert compiled.aliases == ["acme2"]
    assert compiled.required_params == {"host", "team"}
    assert compiled.required_credentials == {"api_key"}
    assert compiled.id_pattern is not None and compiled.id_pattern.fullmatch("123")
    assert set(compiled.operations) == {"get"}


def test_required_params_include_request_paths() -> None:
    compiled = compile_spec(
        spec(
            operations={
                "list": {
                    "request": {"method": "GET", "path": "/o/{params.org}/c"},
                    "response": {"items": "x", "shape": "campaign"},
                }
            }
        )
    )
    assert compiled.required_params == {"host", "team", "org"}


def test_render_auth() -> None:
    compiled = compile_spec(spec())
    headers, query = compiled.render_auth({"api_key": "k1"}, {"team": "blue"})
    assert headers == {"Authorization": "Bearer k1"}
    assert query == {"team": "blue"}


def test_basic_auth_is_rendered_and_its_token_is_a_secret() -> None:
    document = spec(auth={"basic": {"username": "{credentials.api_key}", "password": "{credentials.api_token}"}})
    compiled = compile_spec(document)
    assert compiled.required_credentials == {"api_key", "api_token"}
    headers, query = compiled.render_auth({"api_key": "key", "api_token": "token"}, {})
    assert (headers, query) == ({"Authorization": "Basic a2V5OnRva2Vu"}, {})  # base64 of key:token
    assert compiled.encoded_secrets({"api_key": "key", "api_token": "token"}, {}) == ["a2V5OnRva2Vu"]
    assert compile_spec(spec()).encoded_secrets({"api_key": "k1"}, {}) == []


def test_basic_auth_and_an_authorization_header_clash() -> None:
    basic = {"username": "{credentials.u}", "password": "{credentials.p}"}
    error = compile_error(spec(auth={"basic": basic, "headers": {"authorization": "x"}}))
    assert error.loc == ("auth", "basic")


def test_literal_headers_are_sent_as_they_are() -> None:
    compiled = compile_spec(spec(auth={"headers": {"X-Api-Version": "2024-01"}}))
    assert compiled.render_auth({}, {}) == ({"X-Api-Version": "2024-01"}, {})


def test_render_template_missing_value_is_empty() -> None:
    assert render_template("https://{params.host}.x/{params.none}", {"params": {"host": "h"}}) == "https://h.x/"


def test_error_message_paths_in_turn() -> None:
    compiled = compile_spec(spec(errors={"message": ["error.message", "detail"]}))
    assert compiled.error_message({"error": {"message": "boom"}, "detail": "d"}) == "boom"
    assert compiled.error_message({"error": {"message": ""}, "detail": "d"}) == "d"
    assert compiled.error_message({"other": 1}) is None
    default = compile_spec(spec())
    assert default.error_message({"detail": [{"msg": "x"}]}) == [{"msg": "x"}]


def test_enum_reverse_defaults_to_the_first_word() -> None:
    enums = {"status": {"map": {"RUN": "active", "GO": "active", "STOP": "cancelled"}, "unknown": None}}
    compiled = compile_spec(
        spec(
            enums=enums,
            operations={
                "list": {
                    "request": {
                        "method": "GET",
                        "path": "/c",
                        "query": {"state": {"from": "filter.status", "pipe": [{"vendor_enum": "status"}]}},
                    },
                    "response": {"items": "items", "shape": "campaign"},
                }
            },
        )
    )
    build = compiled.operations["list"].build_request
    assert build(context(filter={"status": "active"})).query == {"state": "RUN"}
    with pytest.raises(TranslationError):
        build(context(filter={"status": "paused"}))
    assert build(context()).query == {}


def test_enum_explicit_reverse() -> None:
    enums = {"status": {"map": {"RUN": "active", "GO": "active"}, "unknown": None, "reverse": {"active": "GO"}}}
    compiled = compile_spec(
        spec(
            enums=enums,
            operations={
                "pause": {
                    "request": {
                        "method": "POST",
                        "path": "/c/{id}",
                        "body": {"state": {"const": "active", "pipe": [{"vendor_enum": "status"}]}},
                    },
                    "response": {"shape": "campaign"},
                }
            },
        )
    )
    assert compiled.operations["pause"].build_request(context(id="1")).json == {"state": "GO"}


# ---------------------------------------------------------------------------------------------- operation flags


def test_operation_flags_and_defaults() -> None:
    compiled = compile_spec(
        spec(
            operations={
                "create": {
                    "request": {
                        "method": "POST",
                        "path": "/c",
                        "body": {"name": "body.name", "agent": "body.agent_id", "end": "body.schedule.end_at"},
                    },
                    "response": {"shape": "campaign"},
                    "refetch": True,
                    "required": ["agent_id", "schedule.end_at"],
                    "unsupported": ["webhook_url", "schedule.days"],
                },
                "update": {"request": {"method": "PUT", "path": "/c/{id}"}, "response": {"shape": "campaign"}},
                "pause": {
                    "idempotent": True,
                    "request": {"method": "POST", "path": "/c/{id}/pause"},
                    "response": {"shape": "campaign"},
                },
                "delete": {"request": {"method": "DELETE", "path": "/c/{id}"}},
            }
        )
    )
    ops = compiled.operations
    create = ops["create"]
    assert (create.name, create.kind, create.method) == ("create", "campaign", "POST")
    assert create.refetch is True
    assert ops["get"].refetch is False
    assert create.idempotent is False
    assert ops["get"].idempotent is True
    assert ops["update"].idempotent is True
    assert ops["delete"].idempotent is True
    assert ops["pause"].idempotent is True
    assert create.fields is not None
    report = create.fields.report()
    assert report["native"] == ["name", "agent_id", "schedule.end_at", "vendor_options"]
    assert report["required"] == ["agent_id", "schedule.end_at"]
    assert {"webhook_url", "schedule.days", "schedule.start_at"} <= set(report["unsupported"])
    body = {"name": "n", "agent_id": "a", "schedule": {"days": ["monday"]}}
    outcome = create.fields.apply(body, False, "acme")
    assert outcome.problems == [
        {"field": "schedule.days", "message": "acme has no equivalent for this field"},
        {"field": "schedule.end_at", "message": "acme requires this field"},
    ]
    assert ops["get"].fan_out is None
    assert ops["get"].fields is None
    assert ops["delete"].kind == "empty"
    assert ops["delete"].parse_response({"anything": 1}, {}, True) is None


def test_a_refusal_says_whether_the_vendor_or_the_map_lacks_the_field() -> None:
    create = {
        "request": {"method": "POST", "path": "/c", "body": {"name": "body.name"}},
        "response": {"shape": "campaign"},
        "unconverted": {"max_concurrent_calls": "dial_level is a ratio, not a number of calls", "schedule": "a cron"},
    }
    plan = compile_spec(spec(operations={"create": create})).operations["create"].fields
    assert plan is not None
    body = {
        "name": "n",
        "max_concurrent_calls": 3,
        "webhook_url": "https://h.example",
        "schedule": {"days": ["monday"]},
    }
    assert plan.apply(body, False, "acme").problems == [
        {
            "field": "schedule.days",
            "message": "acme has a related field, but the map has no conversion to it: a cron",
        },
        {
            "field": "max_concurrent_calls",
            "message": "acme has a related field, but the map has no conversion to it: "
            "dial_level is a ratio, not a number of calls",
        },
        {"field": "webhook_url", "message": "acme has no equivalent for this field"},
    ]
    lenient = plan.apply(body, True, "acme")
    assert (lenient.problems, lenient.dropped) == ([], ["schedule.days", "max_concurrent_calls", "webhook_url"])


def test_unconverted_fields_are_checked_like_unsupported_ones() -> None:
    create = {
        "request": {"method": "POST", "path": "/c", "body": {"name": "body.name"}},
        "response": {"shape": "campaign"},
    }
    error = compile_error(spec(operations={"create": {**create, "unconverted": {"name": "no"}}}))
    assert (error.loc, error.message) == (
        ("operations", "create", "unconverted", "name"),
        "'name' is listed as unconverted, but the map sends it",
    )
    error = compile_error(spec(operations={"create": {**create, "unconverted": {"max_concurent_calls": "x"}}}))
    assert error.loc == ("operations", "create", "unconverted", "max_concurent_calls")
    assert "did you mean 'max_concurrent_calls'?" in error.message


def test_vendor_options_go_where_the_map_says() -> None:
    create = {
        "request": {
            "method": "POST",
            "path": "/c",
            "body": {"campaigns[0].name": "body.name"},
            "vendor_options": "campaigns[0]",
        },
        "response": {"unwrap": "data", "shape": "campaign"},
    }
    operation = compile_spec(spec(operations={"create": create})).operations["create"]
    request = operation.build_request(context(body={"name": "n"}))
    assert operation.options_at(request.json) is request.json["campaigns"][0]
    with pytest.raises(TranslationError, match="no object at campaigns\\[0\\]"):
        operation.options_at({"campaigns": []})
    into_global = {**create, "request": {**create["request"], "vendor_options": "global"}}
    made = compile_spec(spec(operations={"create": into_global})).operations["create"].options_at({"name": "n"})
    assert made == {}, "a body without the object gets one to take the options"
    assert operation.fields is not None and "vendor_options" in operation.fields.report()["native"]
    spread = {**create, "request": {**create["request"], "vendor_options": "c[*]"}}
    error = compile_error(spec(operations={"create": spread}))
    assert (error.loc, error.message) == (
        ("operations", "create", "request", "vendor_options"),
        "vendor_options goes into one object: a path without [*]",
    )


def test_refetch_without_a_shape_answers_with_the_id_it_was_sent() -> None:
    cancel = {"request": {"method": "POST", "path": "/c/{id}/stop"}, "refetch": True}
    operation = compile_spec(spec(operations={"cancel": cancel})).operations["cancel"]
    assert operation.parse_response({"data": None, "errors": None}, {"id": "b-1"}, False) == {"id": "b-1"}
    error = compile_error(spec(operations={"cancel": {**cancel, "request": {"method": "POST", "path": "/stop"}}}))
    assert "refetch without a shape needs {id}" in error.message
    error = compile_error(spec(operations={"cancel": {**cancel, "refetch": False}}))
    assert "needs response.shape" in error.message


def test_bad_required_and_unsupported_paths_loc() -> None:
    create = {"request": {"method": "POST", "path": "/c"}, "response": {"shape": "campaign"}}
    error = compile_error(spec(operations={"create": {**create, "required": ["name", "a..b"]}}))
    assert error.loc == ("operations", "create", "required", 1)
    error = compile_error(spec(operations={"create": {**create, "unsupported": ["x["]}}))
    assert error.loc == ("operations", "create", "unsupported", 0)


def test_filters_status_and_takes_cursor() -> None:
    listing = {
        "request": {
            "method": "GET",
            "path": "/c",
            "query": {"status": "filter.status", "after": "page.cursor", "n": "page.limit"},
        },
        "response": {"items": "items", "next_cursor": "next", "shape": "campaign"},
    }
    compiled = compile_spec(spec(operations={"list": listing}))
    assert compiled.operations["list"].filters_status is True
    assert compiled.operations["list"].takes_cursor is True
    plain = copy.deepcopy(listing)
    plain["request"]["query"] = {"n": "page.limit"}
    compiled = compile_spec(spec(operations={"list": plain}))
    assert compiled.operations["list"].filters_status is False
    assert compiled.operations["list"].takes_cursor is False


def test_the_clock_is_read_only_for_an_operation_whose_request_reads_now() -> None:
    get = {"request": {"method": "GET", "path": "/c/{id}"}, "response": {"shape": "campaign"}}
    listing = {
        "request": {"method": "GET", "path": "/c", "query": {"at": "now"}},
        "response": {"items": "items", "shape": "campaign"},
    }
    compiled = compile_spec(spec(operations={"get": get, "list": listing}))
    assert compiled.operations["get"].reads_now is False
    assert compiled.operations["list"].reads_now is True
    connection = SimpleNamespace(vendor="v", map=compiled, params={})
    _op, context = prepare(connection, Call(operation="get", id="c-1"))  # type: ignore[arg-type]
    assert context["now"] is None
    _op, context = prepare(connection, Call(operation="list"))  # type: ignore[arg-type]
    assert datetime.fromisoformat(context["now"]) > datetime.now(UTC) - timedelta(seconds=5)
    assert compiled.operations["list"].build_request(context).query["at"] == context["now"]


# ---------------------------------------------------------------------------------------------- requests


def test_request_path_query_and_body() -> None:
    compiled = compile_spec(
        spec(
            operations={
                "update": {
                    "request": {
                        "method": "PATCH",
                        "path": "/orgs/{params.org}/c/{id}",
                        "headers": {"X-Mode": "fast"},
                        "query": {"take": "page.limit", "skip": "page.offset", "q": "filter.status"},
                        "body": {"name": "body.name", "cfg.max": "body.max_concurrent_calls", "kind": {"const": "x"}},
                    },
                    "response": {"shape": "campaign"},
                }
            }
        )
    )
    request = compiled.operations["update"].build_request(
        context(id="c 1", params={"org": "o/1"}, body={"name": "N", "max_concurrent_calls": 3})
    )
    assert request.method == "PATCH"
    assert request.path == "/orgs/o%2F1/c/c%201"
    assert request.query == {"take": 20, "skip": 0}  # nulls left out
    assert request.json == {"name": "N", "cfg": {"max": 3}, "kind": "x"}
    assert request.headers == {"X-Mode": "fast"}
    assert request.data is None and request.files is None


def test_request_without_body_has_no_json() -> None:
    compiled = compile_spec(spec())
    request = compiled.operations["get"].build_request(context(id="42"))
    assert (request.method, request.path, request.json) == ("GET", "/c/42", None)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [("a/b", "a%2Fb"), ("..", "%2E%2E"), (".", "%2E"), ("a?b#c", "a%3Fb%23c"), (7, "7"), ("ü", "%C3%BC")],
)
def test_path_segments_are_encoded(value: Any, encoded: str) -> None:
    assert encode_segment(value) == encoded


def test_missing_path_placeholder_is_a_translation_error() -> None:
    build = compile_spec(spec()).operations["get"].build_request
    with pytest.raises(TranslationError) as caught:
        build(context(id=None))
    assert caught.value.field == "path"
    with pytest.raises(TranslationError):
        build(context(id=""))


def test_body_from_an_expression() -> None:
    compiled = compile_spec(
        spec(
            operations={
                "recipients_add": {
                    "request": {
                        "method": "POST",
                        "path": "/c/{id}/leads",
                        "body_from": {
                            "from": "body.recipients",
                            "each": {"phone": {"from": "phone_number", "pipe": ["digits"]}, "name": "name"},
                        },
                    },
                    "response": {"shape": "added"},
                }
            }
        )
    )
    request = compiled.operations["recipients_add"].build_request(
        context(
            id="1",
            body={"recipients": [{"phone_number": "+14155551212", "name": "A"}, {"phone_number": "+14155550000"}]},
        )
    )
    assert request.json == [{"phone": "14155551212", "name": "A"}, {"phone": "14155550000"}]


def test_request_translation_is_strict() -> None:
    compiled = compile_spec(
        spec(
            operations={
                "create": {
                    "request": {
                        "method": "POST",
                        "path": "/c",
                        "body": {"at": {"from": "body.start_at", "pipe": ["utc"]}},
                    },
                    "response": {"shape": "campaign"},
                }
            }
        )
    )
    with pytest.raises(TranslationError) as caught:
        compiled.operations["create"].build_request(context(body={"start_at": "tomorrow"}))
    assert caught.value.field == "body.start_at"


def test_multipart() -> None:
    compiled = compile_spec(
        spec(
            operations={
                "recipients_add": {
                    "request": {
                        "method": "POST",
                        "path": "/c/{id}/upload",
                        "multipart": {
                            "name": {"value": {"const": "upload"}},
                            "count": {"value": {"from": "body.recipients", "pipe": ["count"]}},
                            "file": {
                                "filename": "r.csv",
                                "content_type": "text/csv",
                                "value": {
                                    "from": "body.recipients",
                                    "pipe": [{"csv": {"columns": {"p": "phone_number"}}}],
                                },
                            },
                            "meta": {
                                "filename": "m.json",
                                "fields": {"cols": {"const": ["p"]}, "none": "params.missing"},
                            },
                        },
                    },
                    "response": {"shape": "added"},
                }
            }
        )
    )
    request = compiled.operations["recipients_add"].build_request(
        context(id="1", body={"recipients": [{"phone_number": "+1"}]})
    )
    assert request.json is None
    assert request.data == {"name": "upload", "count": "1"}
    assert request.files == [
        ("file", ("r.csv", b"p\n+1\n", "text/csv")),
        ("meta", ("m.json", b'{"cols":["p"]}', "application/octet-stream")),
    ]


# ---------------------------------------------------------------------------------------------- responses


def test_campaign_response_fills_every_canonical_field() -> None:
    parse = compile_spec(spec()).operations["get"].parse_response
    result = parse({"data": {"id": 7, "title": "T", "state": "run", "retries": 2, "leads": [1, 2, 3]}}, {}, False)
    assert result == {
        "id": "7",
        "name": "T",
        "status": "active",
        "vendor_status": "run",
        "agent_id": None,
        "from_numbers": None,
        "max_concurrent_calls": None,
        "schedule": None,
        "retry": {"max_attempts": 3, "interval_minutes": None},
        "stats": {
            "total": 3,
            "pending": None,
            "queued": None,
            "in_progress": None,
            "completed": None,
            "failed": None,
            "no_answer": None,
        },
        "webhook_url": None,
        "created_at": None,
        "updated_at": None,
    }


def test_nested_object_all_null_is_null() -> None:
    parse = compile_spec(spec()).operations["get"].parse_response
    result = parse({"data": {"id": "1", "state": "weird"}}, {}, False)
    assert result["retry"] is None
    assert result["stats"] is None
    assert result["status"] is None
    assert result["vendor_status"] == "weird"


def test_vendor_data_keeps_what_no_field_read() -> None:
    parse = compile_spec(spec()).operations["get"].parse_response
    answer = {"data": {"id": "1", "title": "T", "extra": {"a": 1}, "leads": [{"x": 1}], "meta": {}}, "ok": True}
    result = parse(answer, {}, True)
    # leads were only counted (a lossy transform), so they stay; the envelope is not vendor data
    assert result["vendor_data"] == {"extra": {"a": 1}, "leads": [{"x": 1}], "meta": {}}
    assert "vendor_data" not in parse(answer, {}, False)


def test_vendor_data_is_empty_object_when_everything_was_read() -> None:
    parse = compile_spec(spec()).operations["get"].parse_response
    result = parse({"data": {"id": "1", "title": "T"}}, {}, True)
    assert result["vendor_data"] == {}, f"vendor_data is {result['vendor_data']!r}"


def test_response_parsing_is_lenient() -> None:
    document = spec()
    document["shapes"]["campaign"]["created_at"] = {"from": "created", "pipe": ["utc"]}
    parse = compile_spec(document).operations["get"].parse_response
    result = parse({"data": {"id": "1", "created": "<string>", "retries": "three"}}, {}, False)
    assert result["created_at"] is None
    assert result["retry"] is None


@pytest.mark.parametrize("answer", [{"data": None}, {"data": []}, {"data": "x"}, {}, []])
def test_malformed_campaign_answers(answer: Any) -> None:
    parse = compile_spec(spec()).operations["get"].parse_response
    with pytest.raises(MalformedResponse):
        parse(answer, {}, False)


@pytest.mark.parametrize("data", [{"title": "no id"}, {"id": ""}, {"id": None}])
def test_campaign_answer_without_id(data: dict) -> None:
    parse = compile_spec(spec()).operations["get"].parse_response
    with pytest.raises(MalformedResponse, match="no id"):
        parse({"data": data}, {}, False)


def test_recipients_added_shape() -> None:
    compiled = compile_spec(
        spec(
            operations={
                "recipients_add": {
                    "request": {"method": "POST", "path": "/c/{id}/r", "body_from": "body.recipients"},
                    "response": {"shape": "added"},
                }
            }
        )
    )
    operation = compiled.operations["recipients_add"]
    assert operation.kind == "recipients_added"
    assert operation.parse_response({"ok": 2, "ko": 1, "job": "j1"}, {}, True) == {
        "accepted": 2,
        "rejected": 1,
        "vendor_data": {"job": "j1"},
    }


# ---------------------------------------------------------------------------------------------- list paging


def listing(recipient_paging: str = "vendor", **response: Any) -> VendorMap:
    return compile_spec(
        spec(
            operations={
                "list": {
                    "request": {
                        "method": "GET",
                        "path": "/c",
                        "query": {"limit": "page.limit", "offset": "page.offset"},
                    },
                    "response": {"items": "items", "shape": "campaign", **response},
                },
                "recipients_list": {
                    "paging": recipient_paging,
                    "request": {"method": "GET", "path": "/c/{id}"},
                    "response": {"unwrap": "data", "items": {"concat": ["a", "b"]}, "shape": "recipient"},
                },
            }
        )
    )


def items(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": i} for i in range(start, start + n)]


def test_list_returns_a_page_of_shaped_items() -> None:
    page = (
        listing()
        .operations["list"]
        .parse_response({"items": [{"id": 1, "title": "A", "x": 1}]}, page_context(0, 20), True)
    )
    assert isinstance(page, Page)
    assert [item["id"] for item in page.items] == ["1"]
    assert page.items[0]["name"] == "A"
    assert page.items[0]["vendor_data"] == {"x": 1}
    assert listing().operations["list"].kind == "campaign_page"


@pytest.mark.parametrize(
    ("offset", "limit", "found", "total", "cursor"),
    [
        (0, 2, 2, 5, "2"),
        (2, 2, 2, 5, "4"),
        (4, 2, 1, 5, None),
        (0, 2, 2, 2, None),
        (0, 10, 3, 5, "3"),  # the vendor gave fewer than asked: continue after what came
        (0, 2, 0, 5, None),  # nothing came: no next page, whatever the total says
        (3, 2, 2, 5, None),
    ],
)
def test_offset_paging_with_total(offset: int, limit: int, found: int, total: int, cursor: str | None) -> None:
    parse = listing(total="meta.total").operations["list"].parse_response
    page = parse({"items": items(found, offset), "meta": {"total": total}}, page_context(offset, limit), False)
    assert page.next_cursor == cursor
    assert len(page.items) == found


@pytest.mark.parametrize(
    ("offset", "limit", "found", "cursor"),
    [
        (0, 2, 2, "2"),  # a full page: maybe more
        (4, 2, 2, "6"),
        (0, 2, 1, None),  # a short page: the end
        (0, 2, 0, None),
        (0, 0, 0, None),
    ],
)
def test_offset_paging_without_total(offset: int, limit: int, found: int, cursor: str | None) -> None:
    parse = listing().operations["list"].parse_response
    assert parse({"items": items(found, offset)}, page_context(offset, limit), False).next_cursor == cursor


def test_total_that_is_not_a_number_falls_back_to_page_size() -> None:
    parse = listing(total="total").operations["list"].parse_response
    assert parse({"items": items(2), "total": None}, page_context(0, 2), False).next_cursor == "2"
    assert parse({"items": items(1), "total": "many"}, page_context(0, 2), False).next_cursor is None


def test_vendor_cursor() -> None:
    parse = listing(next_cursor="paging.next", total="total").operations["list"].parse_response
    assert (
        parse({"items": items(2), "paging": {"next": "tok2"}, "total": 2}, page_context(0, 2), False).next_cursor
        == "tok2"
    )
    assert parse({"items": items(2), "paging": {"next": 17}}, page_context(0, 2), False).next_cursor == "17"
    assert parse({"items": items(2), "paging": {"next": ""}}, page_context(0, 2), False).next_cursor is None
    assert parse({"items": items(2)}, page_context(0, 2), False).next_cursor is None


@pytest.mark.parametrize(
    ("offset", "limit", "ids", "cursor"),
    [
        (0, 2, ["0", "1"], "2"),
        (2, 2, ["2", "3"], "4"),
        (4, 2, ["4"], None),
        (0, 5, ["0", "1", "2", "3", "4"], None),
        (6, 2, [], None),
    ],
)
def test_gateway_paging(offset: int, limit: int, ids: list[str], cursor: str | None) -> None:
    compiled = listing(recipient_paging="gateway")
    operation = compiled.operations["recipients_list"]
    assert operation.kind == "recipient_page"
    answer = {"data": {"a": [{"id": 0, "msisdn": "14155550000"}, {"id": 1}, {"id": 2}], "b": [{"id": 3}, {"id": 4}]}}
    page = operation.parse_response(answer, page_context(offset, limit), False)
    assert [item["id"] for item in page.items] == ids
    assert page.next_cursor == cursor


def test_gateway_paging_shapes_recipients() -> None:
    operation = listing(recipient_paging="gateway").operations["recipients_list"]
    page = operation.parse_response(
        {"data": {"a": [{"msisdn": "14155550000", "name": "A"}]}}, page_context(0, 10), False
    )
    assert page.items == [
        {
            "id": None,
            "phone_number": "+14155550000",
            "name": "A",
            "variables": None,
            "status": None,
            "vendor_status": None,
            "attempts": None,
        }
    ]


@pytest.mark.parametrize("answer", [{"items": None}, {"items": {"id": 1}}, {}, {"items": "x"}])
def test_list_without_items_is_malformed(answer: Any) -> None:
    with pytest.raises(MalformedResponse):
        listing().operations["list"].parse_response(answer, page_context(0, 20), False)


def test_list_item_that_is_not_an_object_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        listing().operations["list"].parse_response({"items": [1]}, page_context(0, 20), False)


# ---------------------------------------------------------------------------------------------- fan-out


def test_fan_out() -> None:
    compiled = compile_spec(
        spec(
            operations={
                "recipients_add": {
                    "fan_out": "body.recipients",
                    "request": {
                        "method": "POST",
                        "path": "/leads",
                        "body": {
                            "campaignId": "id",
                            "phone": {"from": "item.phone_number", "pipe": ["national_number"]},
                            "cc": {"from": "item.phone_number", "pipe": ["country_code"]},
                        },
                    },
                    "response": {"unwrap": "lead"},
                }
            }
        )
    )
    operation = compiled.operations["recipients_add"]
    assert operation.fan_out is not None
    recipients = [{"phone_number": "+912234567890"}, {"phone_number": "+14155551212"}]
    ctx = context(id="cmp_1", body={"recipients": recipients})
    assert operation.fan_out.items(ctx) == recipients
    request = operation.build_request({**ctx, "item": recipients[0]})
    assert request.json == {"campaignId": "cmp_1", "phone": "2234567890", "cc": "+91"}
    # each element's answer is kept whole (after unwrap), no shape needed
    assert operation.parse_response({"lead": {"id": "lead_1", "x": 1}}, ctx, False) == {"id": "lead_1", "x": 1}


def test_bad_fan_out_path_loc() -> None:
    error = compile_error(
        spec(operations={"recipients_add": {"fan_out": "body..r", "request": {"method": "POST", "path": "/l"}}})
    )
    assert error.loc == ("operations", "recipients_add", "fan_out")


# ---------------------------------------------------------------------------------------------- compile errors


def test_unknown_expression_key_loc() -> None:
    document = spec()
    document["shapes"]["campaign"]["name"] = {"form": "title"}
    error = compile_error(document)
    assert error.loc == ("shapes", "campaign", "name", "form")


def test_bad_path_in_shape_loc() -> None:
    document = spec()
    document["shapes"]["campaign"]["name"] = "title..x"
    assert compile_error(document).loc == ("shapes", "campaign", "name", "from")


def test_unknown_transform_loc() -> None:
    document = spec()
    document["shapes"]["campaign"]["name"] = {"from": "title", "pipe": ["string", "titlecase"]}
    error = compile_error(document)
    assert error.loc == ("shapes", "campaign", "name", "pipe", 1)
    assert "titlecase" in error.message


def test_unknown_enum_loc() -> None:
    document = spec()
    document["shapes"]["campaign"]["status"] = {"from": "state", "pipe": [{"enum": "state"}]}
    error = compile_error(document)
    assert error.loc == ("shapes", "campaign", "status", "pipe", 0)
    assert "unknown enum 'state'" in error.message


def test_unknown_enum_in_request_loc() -> None:
    create = {
        "request": {
            "method": "POST",
            "path": "/c",
            "body": {"s": {"from": "body.x", "pipe": [{"vendor_enum": "nope"}]}},
        },
        "response": {"shape": "campaign"},
    }
    error = compile_error(spec(operations={"create": create}))
    assert error.loc == ("operations", "create", "request", "body", "s", "pipe", 0)


def test_unknown_shape_loc() -> None:
    error = compile_error(
        spec(operations={"get": {"request": {"method": "GET", "path": "/c/{id}"}, "response": {"shape": "campain"}}})
    )
    assert error.loc == ("operations", "get", "response", "shape")
    assert "unknown shape 'campain'" in error.message


def test_missing_shape_loc() -> None:
    error = compile_error(spec(operations={"get": {"request": {"method": "GET", "path": "/c/{id}"}}}))
    assert error.loc == ("operations", "get", "response")
    assert "needs response.shape" in error.message


def test_list_without_items_loc() -> None:
    error = compile_error(
        spec(operations={"list": {"request": {"method": "GET", "path": "/c"}, "response": {"shape": "campaign"}}})
    )
    assert error.loc == ("operations", "list", "response")
    assert "response.items" in error.message


@pytest.mark.parametrize(
    "target",
    ["title", "connection", "vendor", "vendor_data", "schedule.start", "schedule.start_at.x", "agent_id.first", "stat"],
)
def test_non_canonical_target_loc(target: str) -> None:
    document = spec()
    document["shapes"]["campaign"][target] = "x"
    error = compile_error(document)
    assert error.loc == ("shapes", "campaign", target)
    assert "not a canonical field" in error.message


def test_overlapping_targets_loc() -> None:
    document = spec()
    document["shapes"]["campaign"]["name.first"] = "x"
    error = compile_error(document)
    assert error.loc == ("shapes", "campaign", "name.first")
    assert "overlaps target 'name'" in error.message


def test_recipient_shape_targets_are_recipient_fields() -> None:
    document = spec(
        operations={
            "recipients_list": {
                "request": {"method": "GET", "path": "/r"},
                "response": {"items": "items", "shape": "recipient"},
            }
        }
    )
    document["shapes"]["recipient"]["max_concurrent_calls"] = "x"
    assert compile_error(document).loc == ("shapes", "recipient", "max_concurrent_calls")


def test_canonical_nested_targets_are_accepted() -> None:
    document = spec()
    document["shapes"]["campaign"].update(
        {"schedule.days": "d", "schedule.daily_start": "s", "stats.no_answer": "n", "retry.interval_minutes": "i"}
    )
    compile_spec(document)


@pytest.mark.parametrize(
    ("request_spec", "loc"),
    [
        ({"method": "GET", "path": "c/{id}"}, ("operations", "get", "request", "path")),
        ({"method": "GET", "path": "/c/{id..x}"}, ("operations", "get", "request", "path")),
        (
            {"method": "GET", "path": "/c", "query": {"q": "a..b"}},
            ("operations", "get", "request", "query", "q", "from"),
        ),
        ({"method": "POST", "path": "/c", "body": {"a": "x"}, "body_from": "y"}, ("operations", "get", "request")),
        (
            {"method": "POST", "path": "/c", "body": {"a": {"const": 1, "from": "x"}}},
            ("operations", "get", "request", "body", "a"),
        ),
        ({"method": "POST", "path": "/c", "multipart": {"f": {}}}, ("operations", "get", "request", "multipart", "f")),
        (
            {"method": "POST", "path": "/c", "multipart": {"f": {"value": "a", "fields": {"b": "c"}}}},
            ("operations", "get", "request", "multipart", "f"),
        ),
        (
            {"method": "POST", "path": "/c", "multipart": {"f": {"fields": {"b": {"pipe": ["x"]}}}}},
            ("operations", "get", "request", "multipart", "f", "fields", "b"),
        ),
    ],
)
def test_request_errors_loc(request_spec: dict, loc: tuple) -> None:
    error = compile_error(spec(operations={"get": {"request": request_spec, "response": {"shape": "campaign"}}}))
    assert error.loc == loc


def test_response_path_errors_loc() -> None:
    error = compile_error(
        spec(
            operations={
                "get": {"request": {"method": "GET", "path": "/c"}, "response": {"unwrap": "d..x", "shape": "campaign"}}
            }
        )
    )
    assert error.loc == ("operations", "get", "response", "unwrap")
    listing_op = {
        "request": {"method": "GET", "path": "/c"},
        "response": {"items": "i", "total": "t[", "shape": "campaign"},
    }
    assert compile_error(spec(operations={"list": listing_op})).loc == ("operations", "list", "response", "total")


def test_bad_id_pattern_loc() -> None:
    error = compile_error(spec(id_pattern="[0-9"))
    assert error.loc == ("id_pattern",)


def test_bad_error_message_path_loc() -> None:
    assert compile_error(spec(errors={"message": ["ok", "bad..path"]})).loc == ("errors", "message", 1)


# ---------------------------------------------------------------------------------------------- loading files


def write_map(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD_MAP = """\
    vendor: acme
    base_url: https://api.example.com
    shapes:
      campaign:
        id: id
        name: title
    operations:
      get:
        request: {method: GET, path: "/c/{id}"}
        response: {shape: campaign}
"""


def test_load_map_good(tmp_path: Path) -> None:
    compiled, problems = load_map(write_map(tmp_path, "acme", GOOD_MAP))
    assert problems == []
    assert compiled is not None and compiled.operations["get"].parse_response({"id": 1}, {}, False)["id"] == "1"


def test_load_map_reports_the_line_of_a_compile_error(tmp_path: Path) -> None:
    path = write_map(tmp_path, "acme", GOOD_MAP.replace("name: title", "name: {from: title, pipe: [shout]}"))
    compiled, problems = load_map(path)
    assert compiled is None
    assert len(problems) == 1
    assert problems[0].line == 6
    assert "unknown transform 'shout'" in problems[0].message
    assert str(problems[0]).startswith(f"{path}:6: ")


def test_load_map_reports_a_non_canonical_target(tmp_path: Path) -> None:
    path = write_map(tmp_path, "acme", GOOD_MAP.replace("name: title", "title: title"))
    _, problems = load_map(path)
    assert [(p.line, "not a canonical field" in p.message) for p in problems] == [(6, True)]


def test_load_map_vendor_must_match_the_file_name(tmp_path: Path) -> None:
    compiled, problems = load_map(write_map(tmp_path, "other", GOOD_MAP))
    assert compiled is None
    assert problems[0].line == 1
    assert "must match the file name" in problems[0].message


def test_load_map_spec_errors(tmp_path: Path) -> None:
    path = write_map(
        tmp_path,
        "acme",
        GOOD_MAP.replace("response: {shape: campaign}", "response: {shape: campaign}\n        retry: 3"),
    )
    compiled, problems = load_map(path)
    assert compiled is None
    assert problems[0].line == 11
    assert "unknown key 'retry'" in problems[0].message


def test_load_map_bad_csv_column_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    text = (
        GOOD_MAP
        + """\
      recipients_add:
        request:
          method: POST
          path: "/c/{id}/upload"
          multipart:
            file:
              filename: r.csv
              value: {from: body.recipients, pipe: [{csv: {columns: {p: "phone..number"}}}]}
        response: {shape: campaign}
"""
    )
    path = write_map(tmp_path, "acme", text)
    try:
        compiled, problems = load_map(path)
    except ValueError as exc:  # PathError escaping the loader
        pytest.fail(f"load_map raised {type(exc).__name__} instead of reporting FILE:LINE: {exc}")
    assert compiled is None
    assert problems and problems[0].line == 18
