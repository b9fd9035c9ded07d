"""Lookups compiled from a map: the table a vendor's list gives, both directions, and where problems point."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.mapping import lookups
from gateway.mapping.compiler import compile_map
from gateway.mapping.expressions import TranslationError
from gateway.mapping.spec import MapSpec
from gateway.mapping.transforms import MapError

PHONE_LIST = [
    {"id": "pn_1", "number": "+14155550100", "provider": "twilio"},
    {"id": "pn_2", "number": "14155550101"},  # digits only: the canonical side is made E.164
    {"id": "pn_3"},  # no number: not in the table
]
MAP: dict[str, Any] = {
    "vendor": "acme",
    "base_url": "https://api.acme.example",
    "lookups": {
        "phone_numbers": {
            "request": {"method": "GET", "path": "/orgs/{params.org}/numbers", "query": {"limit": {"const": 100}}},
            "vendor": "id",
            "canonical": {"from": "number", "pipe": ["e164"]},
            "ttl_seconds": 60,
        }
    },
    "shapes": {
        "campaign": {"id": "id", "from_numbers": {"from": "caller", "pipe": [{"lookup": "phone_numbers"}, "list"]}}
    },
    "operations": {
        "create": {
            "request": {
                "method": "POST",
                "path": "/c",
                "body": {
                    "name": "body.name",
                    "caller": {"from": "body.from_number", "pipe": [{"vendor_lookup": "phone_numbers"}]},
                },
            },
            "response": {"shape": "campaign"},
        },
        "get": {"request": {"method": "GET", "path": "/c/{id}"}, "response": {"shape": "campaign"}},
        "delete": {"request": {"method": "DELETE", "path": "/c/{id}"}},
    },
}


def compiled(document: dict[str, Any] = MAP) -> Any:
    return compile_map(MapSpec.model_validate(document))


def problem(change: Any) -> MapError:
    document = copy.deepcopy(MAP)
    change(document)
    with pytest.raises(MapError) as caught:
        compiled(document)
    return caught.value


def context(body: dict[str, Any]) -> dict[str, Any]:
    return {"body": body, "id": None, "params": {"org": "o1"}, "page": {}, "filter": {}, "now": ""}


def test_the_table_of_a_vendor_list() -> None:
    lookup = compiled().lookups["phone_numbers"]
    assert lookup.ttl == 60
    request = lookup.build_request({"params": {"org": "o1"}})
    assert (request.method, request.path, request.query) == ("GET", "/orgs/o1/numbers", {"limit": 100})
    table = lookup.table(PHONE_LIST)
    assert table.vendor == {"+14155550100": "pn_1", "+14155550101": "pn_2"}
    assert table.canonical == {"pn_1": "+14155550100", "pn_2": "+14155550101"}
    assert lookup.table({"not": "a list"}).vendor == {}


def test_items_inside_the_answer() -> None:
    document = copy.deepcopy(MAP)
    document["lookups"]["phone_numbers"]["items"] = "results"
    lookup = compiled(document).lookups["phone_numbers"]
    assert lookup.table({"results": PHONE_LIST}).vendor["+14155550100"] == "pn_1"


def test_operations_know_the_tables_they_read() -> None:
    operations = compiled().operations
    assert (operations["create"].lookups, operations["get"].lookups, operations["delete"].lookups) == (
        ("phone_numbers",),
        ("phone_numbers",),
        (),
    )


def test_both_directions_with_the_table_active() -> None:
    vendor_map = compiled()
    table = vendor_map.lookups["phone_numbers"].table(PHONE_LIST)
    with lookups.using(lookups.Loaded({"phone_numbers": table})):
        request = vendor_map.operations["create"].build_request(context({"name": "n", "from_number": "+14155550101"}))
        answer = vendor_map.operations["get"].parse_response({"id": "c1", "caller": "pn_1"}, {}, True)
        unknown = vendor_map.operations["get"].parse_response({"id": "c1", "caller": "pn_9"}, {}, True)
    assert request.json == {"name": "n", "caller": "pn_2"}
    assert answer["from_numbers"] == ["+14155550100"]
    assert answer["vendor_data"] == {"caller": "pn_1"}  # the vendor's own id is kept
    assert unknown["from_numbers"] is None  # an id the table does not know is null, never a guess
    assert table.missed is False


def test_an_unknown_number_is_refused_naming_the_field_and_marks_the_table() -> None:
    vendor_map = compiled()
    table = vendor_map.lookups["phone_numbers"].table(PHONE_LIST)
    with lookups.using(lookups.Loaded({"phone_numbers": table})), pytest.raises(TranslationError) as caught:
        vendor_map.operations["create"].build_request(context({"name": "n", "from_number": "+14155550199"}))
    assert caught.value.field == "body.from_number"
    assert caught.value.message == "'+14155550199' is not one of this vendor account's phone_numbers"
    assert table.missed is True


def test_without_tables_nothing_is_guessed() -> None:
    vendor_map = compiled()
    with pytest.raises(TranslationError, match="phone_numbers are not loaded"):
        vendor_map.operations["create"].build_request(context({"name": "n", "from_number": "+14155550100"}))
    assert (
        vendor_map.operations["get"].parse_response({"id": "c1", "caller": "pn_1"}, {}, False)["from_numbers"] is None
    )


def test_placeholders_show_what_would_be_looked_up() -> None:
    vendor_map = compiled()
    with lookups.using(lookups.Placeholders()):
        request = vendor_map.operations["create"].build_request(context({"name": "n", "from_number": "+14155550100"}))
    assert request.json["caller"] == "<phone_numbers: +14155550100>"


def test_an_unknown_lookup_is_named_where_it_is_used() -> None:
    def misspell(document: dict[str, Any]) -> None:
        document["operations"]["create"]["request"]["body"]["caller"]["pipe"] = [{"vendor_lookup": "phone_number"}]

    error = problem(misspell)
    assert error.loc == ("operations", "create", "request", "body", "caller", "pipe", 0, "vendor_lookup")
    assert error.message == "unknown lookup 'phone_number' (defined: phone_numbers)"

    def in_a_shape(document: dict[str, Any]) -> None:
        document["shapes"]["campaign"]["from_numbers"]["pipe"][0] = {"lookup": "numbers"}

    assert problem(in_a_shape).loc == ("shapes", "campaign", "from_numbers", "pipe", 0, "lookup")


def test_a_lookup_request_reads_params_only() -> None:
    def reads_the_body(document: dict[str, Any]) -> None:
        document["lookups"]["phone_numbers"]["request"]["query"] = {"q": "body.from_number"}

    error = problem(reads_the_body)
    assert error.loc == ("lookups", "phone_numbers", "request", "query", "q", "from")
    assert "reads only params" in error.message
