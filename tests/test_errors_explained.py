"""Errors a person can act on: vendor refusals named by canonical field, vendor messages as text,
a suggestion for a misspelt field, the caller's connections on an unknown one, header bytes echoed
safely, and where a campaign id belongs. Against the shipped config's sandboxes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.config import Config
from gateway.mapping.paths import EVERY
from gateway.mapping.spec import FieldErrorSpec
from gateway.mapping.transforms import MapError
from gateway.mapping.vendor_errors import as_text, canonical_name, compile_field_errors

README_BODY = {
    "name": "Q1 outreach",
    "agent_id": "68f7656f-098b-4c43-b165-7cfd2cc8ac40",
    "from_number": "+14155551212",
    "recipients": [{"phone_number": "+14155550100", "name": "Ada"}],
}


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


@pytest.mark.parametrize(
    ("connection", "body", "field", "said"),
    [
        # Hamsa says "voiceAgentId must be a UUID"
        ("hamsa-sandbox", {**README_BODY, "agent_id": "not-a-uuid"}, "agent_id", "must be a UUID"),
        # DialNexa names the param of its error
        (
            "dialnexa-sandbox",
            {"name": "Leads", "agent_id": "abc", "from_number": "+912234567890"},
            "agent_id",
            "pattern",
        ),
        # Sarvam's FastAPI loc names an object of ours: the canonical object it came from
        (
            "sarvam-sandbox",
            {
                "name": "Window",
                "agent_id": "app_1",
                "from_number": "+919876543210",
                "schedule": {"end_at": "2030-01-01T00:00:00Z", "daily_start": "18:00", "daily_end": "09:00"},
            },
            "schedule",
            "allowed_start_time must be before allowed_end_time",
        ),
    ],
    ids=["hamsa", "dialnexa", "sarvam"],
)
async def test_a_vendor_refusal_names_the_canonical_field(
    demo_client: httpx.AsyncClient, connection: str, body: dict[str, Any], field: str, said: str
) -> None:
    response = await demo_client.post("/v1/campaigns", json=body, headers={"X-Connection": connection})
    error = error_of(response, 422, "validation_error")
    [detail] = error["details"]
    assert detail["field"] == field
    assert said in detail["message"]
    assert error["message"].startswith(f"{error['vendor']} refused the request: {field}: ")
    assert "{" not in error["message"], "a vendor's message is text, not JSON"


async def test_a_vendor_message_of_fields_reads_as_text(demo_client: httpx.AsyncClient) -> None:
    voiso = {"X-Connection": "voiso-sandbox"}
    first = await demo_client.post(
        "/v1/campaigns", json={"name": "Twice", "from_number": "+18885650001"}, headers=voiso
    )
    assert first.status_code == 201, first.text
    again = await demo_client.post(
        "/v1/campaigns", json={"name": "Twice", "from_number": "+18885650001"}, headers=voiso
    )
    error = error_of(again, 422, "validation_error")  # Voiso's 422 {"errors": {"name": [...]}}
    assert error["message"] == "voiso refused the request: name: has already been taken"
    assert error["details"] == [{"field": "name", "message": "has already been taken"}]


@pytest.mark.parametrize(
    ("body", "field", "hint"),
    [
        ({"name": "x", "agentId": "a"}, "agentId", "did you mean 'agent_id'?"),
        ({"name": "x", "schedule": {"dayz": ["monday"]}}, "schedule.dayz", "did you mean 'schedule.days'?"),
        (
            {"name": "x", "recipients": [{"phone_number": "+14155550100", "nmae": "A"}]},
            "recipients[0].nmae",
            "'recipients[*].name'",
        ),
    ],
)
async def test_a_misspelt_field_suggests_the_canonical_name(
    demo_client: httpx.AsyncClient, body: dict[str, Any], field: str, hint: str
) -> None:
    error = error_of(await demo_client.post("/v1/campaigns", json=body), 422, "validation_error")
    [detail] = [d for d in error["details"] if d["field"] == field]
    assert detail["message"].startswith("unknown field; ") and hint in detail["message"], detail


async def test_an_unknown_connection_lists_the_callers_own(demo_client: httpx.AsyncClient, demo_config: Config) -> None:
    error = error_of(
        await demo_client.get("/v1/campaigns", headers={"X-Connection": "nope"}), 400, "unknown_connection"
    )
    yours = ", ".join(sorted(demo_config.tenants["demo"].connections))
    assert error["message"] == f"unknown connection 'nope'; yours are: {yours}"


@pytest.mark.parametrize(("raw", "shown"), [("café".encode(), "'café'"), (b"bad\xff", "'bad\\xff'")])
async def test_a_header_value_is_read_as_bytes_and_echoed_safely(
    demo_client: httpx.AsyncClient, raw: bytes, shown: str
) -> None:
    response = await demo_client.get("/v1/campaigns", headers=[(b"X-Connection", raw)])
    error = error_of(response, 400, "unknown_connection")
    assert f"unknown connection {shown}" in error["message"], error["message"]
    assert "Ã" not in error["message"], "no mojibake"


async def test_a_404_says_ids_belong_to_the_connection_that_made_them(demo_client: httpx.AsyncClient) -> None:
    made = await demo_client.post(
        "/v1/campaigns",
        json={"name": "Leads", "agent_id": "agt_abc", "from_number": "+912234567890"},
        headers={"X-Connection": "dialnexa-sandbox"},
    )
    campaign_id = made.json()["id"]
    elsewhere = await demo_client.get(f"/v1/campaigns/{campaign_id}", headers={"X-Connection": "voiso-sandbox"})
    error = error_of(elsewhere, 404, "not_found")
    assert "a campaign id belongs to the connection that created it" in error["message"]
    assert "voiso-sandbox" in error["message"]


# --- the map language piece, in isolation ---------------------------------------------------------


def test_every_form_of_field_error_reads_its_pairs() -> None:
    read = compile_field_errors(
        [
            FieldErrorSpec(object="errors"),
            FieldErrorSpec(items="detail", field="loc", message="msg", drop=["body"]),
            FieldErrorSpec(field="error.param", message="error.message"),
            FieldErrorSpec(text="message", pattern=r"^(?P<field>\w+) (?P<message>is .+)$"),
        ],
        ("errors", "fields"),
    )
    assert read({"errors": {"name": ["taken", "too short"]}}) == [("name", "taken; too short")]
    assert read({"detail": [{"loc": ["body", "a", 0, "b"], "msg": "bad"}, {"loc": ["body"], "msg": "x"}]}) == [
        ("a[0].b", "bad"),
        ("body", "x"),
    ]
    assert read({"error": {"param": "agent_id", "message": "agent_id: no"}}) == [("agent_id", "no")]
    assert read({"message": "phoneNumber is required"}) == [("phoneNumber", "is required")]
    assert read({"message": "something else"}) == []
    assert read("not json") == []


def test_a_field_error_form_must_be_one_of_them() -> None:
    for spec in (FieldErrorSpec(), FieldErrorSpec(object="a", text="b"), FieldErrorSpec(text="m", pattern="(?P<x>.)")):
        with pytest.raises(MapError):
            compile_field_errors([spec], ("errors", "fields"))


def test_canonical_names_follow_indexes_and_common_parents() -> None:
    pairs = [
        (("phoneNumber",), ("from_number",)),
        (("recipients", EVERY, "phoneNumber"), ("recipients", EVERY, "phone_number")),
        (("window", "from"), ("schedule", "daily_start")),
        (("window", "to"), ("schedule", "daily_end")),
    ]
    assert canonical_name(pairs, "phoneNumber") == "from_number"
    assert canonical_name(pairs, "recipients[3].phoneNumber") == "recipients[3].phone_number"
    assert canonical_name(pairs, "window") == "schedule"
    assert canonical_name(pairs, "unknownThing") is None
    assert canonical_name(pairs, "not a path!") is None
    assert as_text({"status": ["cannot pause", "now"], "n": 1}) == "status: cannot pause; now; n: 1"
