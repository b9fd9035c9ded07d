"""The simulated Voiso v4 API: auth, campaigns, lifecycle, leads, error shapes, counters."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandboxes.voiso import create_app

PATH = "/api/v4/campaigns"
AUTH = {"Authorization": "Bearer test-key"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SEED_FIELDS = {
    "id",
    "name",
    "status",
    "strategy",
    "dial_level",
    "dial_level_override",
    "max_dial_time",
    "max_wait_time",
    "max_dial_attempts",
    "amd_enabled",
    "amd_voicemail_message",
    "caller_id_sets",
    "use_local_caller_id",
    "asr_optimization_enabled",
    "follow_up_mode",
    "created_at",
    "updated_at",
}
MINIMAL: dict[str, Any] = {
    "name": "Summer Outreach Campaign",
    "campaign_type": "live",
    "timezone": "America/New_York",
}
STAFFED: dict[str, Any] = {**MINIMAL, "agents": ["agent@example.com"]}


def body(**changes: Any) -> dict[str, Any]:
    """A valid create body with fields replaced (None removes the field)."""
    result = {**MINIMAL, **changes}
    return {key: value for key, value in result.items() if value is not None}


def lead(number: str, **extra: Any) -> dict[str, Any]:
    return {"phone_number": number, **extra}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        yield http


async def create(client: httpx.AsyncClient, payload: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(PATH, json=payload, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()["campaign"]


async def add_leads(client: httpx.AsyncClient, campaign_id: int, leads: Any) -> httpx.Response:
    return await client.post(f"{PATH}/{campaign_id}/leads", json=leads, headers=AUTH)


async def operate(client: httpx.AsyncClient, campaign_id: int, operation: str) -> httpx.Response:
    return await client.post(f"{PATH}/{campaign_id}/{operation}", headers=AUTH)


async def total(client: httpx.AsyncClient) -> int:
    response = await client.get(PATH, headers=AUTH)
    return response.json()["metadata"]["total"]


# --- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Token test-key"},
        {"Authorization": "bearer test-key"},
        {"Authorization": "Bearer "},
        {"Authorization": "test-key"},
    ],
)
async def test_wrong_or_missing_bearer_header_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for response in (
        await client.get(PATH, headers=headers),
        await client.post(PATH, json=body(), headers=headers),
    ):
        assert response.status_code == 401
        assert response.json() == {"error": "Unauthorized"}
    assert await total(client) == 0


async def test_configured_key_is_the_only_one_accepted() -> None:
    transport = httpx.ASGITransport(app=create_app(api_key="secret"))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        refused = await http.get(PATH, headers={"Authorization": "Bearer other"})
        accepted = await http.get(PATH, headers={"Authorization": "Bearer secret"})
    assert refused.status_code == 401
    assert accepted.status_code == 200


# --- create / get / list ---------------------------------------------------------------------


async def test_create_answers_201_with_the_get_shape_and_defaults(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(PATH, json=body(), headers=AUTH)
    assert response.status_code == 201
    assert list(response.json()) == ["campaign"]
    campaign = response.json()["campaign"]
    assert set(campaign) == SEED_FIELDS
    assert campaign["id"] == 1
    assert campaign["status"] == "draft"
    assert campaign["strategy"] == "simple"
    assert campaign["dial_level"] == 1
    assert campaign["max_dial_attempts"] == 1
    assert campaign["caller_id_sets"] == []
    assert campaign["dial_level_override"] == {
        "enabled": False,
        "value": None,
        "active_agents_threshold": None,
    }
    assert campaign["amd_voicemail_message"] == {"enabled": False, "voice_message": None}
    assert TIMESTAMP.fullmatch(campaign["created_at"])
    assert campaign["updated_at"] == campaign["created_at"]


async def test_create_keeps_the_documented_settings(client: httpx.AsyncClient) -> None:
    campaign = await create(
        client,
        body(
            start_hour="09:00",
            end_hour="17:30",
            retry_attempts=2,
            retry_interval=30,
            agents=["a@example.com"],
            teams=["Sales"],
            caller_id_sets=[{"phone_numbers": ["18885650001", "18885650002"]}],
            strategy="predictive_ai",
            dial_level=1.5,
            dial_level_override={"enabled": True, "value": 2, "active_agents_threshold": 3},
            max_dial_time=45,
            amd_enabled=True,
            amd_voicemail_message={"enabled": True, "voice_message": {"name": "Hi", "x": 1}},
            follow_up_mode="manual",
        ),
    )
    assert campaign["max_dial_attempts"] == 3
    assert campaign["caller_id_sets"] == [{"phone_numbers": ["18885650001", "18885650002"]}]
    assert (campaign["strategy"], campaign["dial_level"]) == ("predictive_ai", 1.5)
    assert campaign["dial_level_override"] == {
        "enabled": True,
        "value": 2,
        "active_agents_threshold": 3,
    }
    assert campaign["amd_voicemail_message"] == {
        "enabled": True,
        "voice_message": {"type": None, "name": "Hi"},
    }
    assert (campaign["max_dial_time"], campaign["max_wait_time"]) == (45, 5)
    assert campaign["follow_up_mode"] == "manual"
    assert set(campaign) == SEED_FIELDS


async def test_get_returns_what_create_answered(client: httpx.AsyncClient) -> None:
    first = await create(client, body())
    second = await create(client, body(name="Second"))
    assert second["id"] == first["id"] + 1
    response = await client.get(f"{PATH}/{second['id']}", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"campaign": second}


async def test_list_pages_with_limit_and_offset(client: httpx.AsyncClient) -> None:
    ids = [(await create(client, body(name=f"Campaign {n}")))["id"] for n in range(5)]
    response = await client.get(PATH, params={"limit": 2, "offset": 1}, headers=AUTH)
    assert response.status_code == 200
    payload = response.json()
    assert set(payload) == {"campaigns", "metadata"}
    assert payload["metadata"] == {"total": 5}
    assert [c["id"] for c in payload["campaigns"]] == ids[1:3]
    assert all(set(c) == SEED_FIELDS for c in payload["campaigns"])
    everything = (await client.get(PATH, headers=AUTH)).json()
    assert [c["id"] for c in everything["campaigns"]] == ids


async def test_list_defaults_to_a_hundred_per_page(client: httpx.AsyncClient) -> None:
    for number in range(101):
        await create(client, body(name=f"Campaign {number}"))
    payload = (await client.get(PATH, headers=AUTH)).json()
    assert (len(payload["campaigns"]), payload["metadata"]["total"]) == (100, 101)


async def test_list_filters(client: httpx.AsyncClient) -> None:
    summer = await create(client, {**STAFFED, "name": "Summer Outreach"})
    winter = await create(client, body(name="Winter Renewals", strategy="predictive_ai"))
    await add_leads(client, summer["id"], [lead("15551234567")])
    assert (await operate(client, summer["id"], "start")).status_code == 200

    async def listed(**params: str) -> list[int]:
        response = await client.get(PATH, params=params, headers=AUTH)
        return [c["id"] for c in response.json()["campaigns"]]

    assert await listed(name="OUTREACH") == [summer["id"]]
    assert await listed(status="active") == [summer["id"]]
    assert await listed(status="draft") == [winter["id"]]
    assert await listed(strategy="predictive_ai") == [winter["id"]]
    assert await listed(live="true") == [summer["id"], winter["id"]]
    assert await listed(live="false") == []
    assert await listed(method="anything") == [summer["id"], winter["id"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "9" * 40}, "offset"),
        ({"status": "running"}, "status"),
        ({"strategy": "greedy"}, "strategy"),
        ({"live": "yes"}, "live"),
    ],
)
async def test_list_rejects_bad_query_values(client: httpx.AsyncClient, params: dict[str, str], field: str) -> None:
    response = await client.get(PATH, params=params, headers=AUTH)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert list(errors) == [field]
    assert all(isinstance(message, str) for message in errors[field])


# --- create validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (body(name=None), "name"),
        (body(name="   "), "name"),
        (body(name=7), "name"),
        (body(campaign_type=None), "campaign_type"),
        (body(campaign_type="regular"), "campaign_type"),
        (body(timezone=None), "timezone"),
        (body(timezone="Mars/Olympus"), "timezone"),
        (body(timezone="EST5EDT/"), "timezone"),
        (body(timezone=["UTC"]), "timezone"),
        (body(start_hour="25:00"), "start_hour"),
        (body(end_hour="5pm"), "end_hour"),
        (body(retry_attempts=-1), "retry_attempts"),
        (body(retry_attempts="2"), "retry_attempts"),
        (body(retry_attempts=1.5), "retry_attempts"),
        (body(retry_interval=-5), "retry_interval"),
        (body(agents="agent@example.com"), "agents"),
        (body(agents=["not-an-email"]), "agents"),
        (body(teams=[""]), "teams"),
        (body(caller_id_group=""), "caller_id_group"),
        (body(caller_id_sets=[{"phone_numbers": ["+18885650001"]}]), "caller_id_sets"),
        (body(caller_id_sets=[{"phone_numbers": ["1888-565-0001"]}]), "caller_id_sets"),
        (body(caller_id_sets=[{"phone_numbers": ["12345"]}]), "caller_id_sets"),
        (body(caller_id_sets=[{"phone_numbers": []}]), "caller_id_sets"),
        (body(caller_id_sets=[{}]), "caller_id_sets"),
        (body(caller_id_sets={"phone_numbers": ["18885650001"]}), "caller_id_sets"),
        (body(strategy="greedy"), "strategy"),
        (body(dial_level=0), "dial_level"),
        (body(dial_level="1"), "dial_level"),
        (body(dial_level_override={"enabled": "yes"}), "dial_level_override"),
        (body(dial_level_override={"value": 0.5}), "dial_level_override"),
        (body(max_dial_time=0), "max_dial_time"),
        (body(max_wait_time="5"), "max_wait_time"),
        (body(amd_enabled="true"), "amd_enabled"),
        (body(amd_voicemail_message={"voice_message": "Hi"}), "amd_voicemail_message"),
        (body(use_local_caller_id=1), "use_local_caller_id"),
        (body(asr_optimization_enabled="no"), "asr_optimization_enabled"),
    ],
)
async def test_create_rejects_what_voiso_rejects(
    client: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    response = await client.post(PATH, json=payload, headers=AUTH)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert list(errors) == [field]
    assert errors[field] and all(isinstance(message, str) for message in errors[field])
    assert await total(client) == 0


async def test_create_reports_every_failing_field_at_once(client: httpx.AsyncClient) -> None:
    response = await client.post(PATH, json={"start_hour": "noon"}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"] == {
        "name": ["is missing"],
        "campaign_type": ["is missing"],
        "timezone": ["is missing"],
        "start_hour": ["must be a time in HH:MM format"],
    }


async def test_caller_id_with_a_plus_is_refused_with_a_reason(client: httpx.AsyncClient) -> None:
    payload = body(caller_id_sets=[{"phone_numbers": ["18885650001", "+18885650002"]}])
    response = await client.post(PATH, json=payload, headers=AUTH)
    (message,) = response.json()["errors"]["caller_id_sets"]
    assert "phone_numbers" in message and "'+'" in message


@pytest.mark.parametrize("name", ["Summer Outreach Campaign", "summer outreach campaign  "])
async def test_a_taken_name_is_422(client: httpx.AsyncClient, name: str) -> None:
    await create(client, body())
    response = await client.post(PATH, json=body(name=name), headers=AUTH)
    assert response.status_code == 422
    assert response.json() == {"errors": {"name": ["has already been taken"]}}
    assert await total(client) == 1


@pytest.mark.parametrize("raw", [b"{", b"", b"[]", b'"x"', b'{"name": Infinity}', b"[" * 100_000])
async def test_a_body_that_is_not_a_json_object_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(PATH, content=raw, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == {"error": "Bad Request"}


# --- lifecycle -------------------------------------------------------------------------------


async def test_lifecycle_start_pause_resume_stop(client: httpx.AsyncClient) -> None:
    campaign = await create(client, STAFFED)
    cid = campaign["id"]
    assert (await add_leads(client, cid, [lead("15551234567")])).status_code == 200
    for operation, status in [("start", "active"), ("pause", "paused"), ("start", "active")]:
        response = await operate(client, cid, operation)
        assert response.status_code == 200
        answered = response.json()
        assert set(answered) == SEED_FIELDS
        assert answered["status"] == status
    response = await operate(client, cid, "stop")
    assert response.json()["status"] == "stopped"
    stored = (await client.get(f"{PATH}/{cid}", headers=AUTH)).json()["campaign"]
    assert stored["status"] == "stopped"
    assert stored["updated_at"] >= stored["created_at"]


@pytest.mark.parametrize(
    ("steps", "refused"),
    [
        ([], "pause"),
        ([], "stop"),
        (["start"], "start"),
        (["start", "pause"], "pause"),
        (["start", "pause"], "stop"),
        (["start", "stop"], "start"),
        (["start", "stop"], "pause"),
        (["start", "stop"], "stop"),
    ],
)
async def test_invalid_transitions_are_409(client: httpx.AsyncClient, steps: list[str], refused: str) -> None:
    cid = (await create(client, STAFFED))["id"]
    await add_leads(client, cid, [lead("15551234567")])
    for step in steps:
        assert (await operate(client, cid, step)).status_code == 200
    before = (await client.get(f"{PATH}/{cid}", headers=AUTH)).json()["campaign"]["status"]
    response = await operate(client, cid, refused)
    assert response.status_code == 409
    assert response.json() == {"errors": {"status": [f"cannot {refused} a campaign that is {before}"]}}
    after = (await client.get(f"{PATH}/{cid}", headers=AUTH)).json()["campaign"]["status"]
    assert after == before


async def test_start_needs_an_agent_and_a_lead(client: httpx.AsyncClient) -> None:
    cid = (await create(client, body()))["id"]
    response = await operate(client, cid, "start")
    assert response.status_code == 409
    assert set(response.json()["errors"]) == {"agents", "leads"}
    await add_leads(client, cid, [lead("15551234567")])
    response = await operate(client, cid, "start")
    assert set(response.json()["errors"]) == {"agents"}
    teamed = (await create(client, body(name="With a team", teams=["Sales"])))["id"]
    await add_leads(client, teamed, [lead("15551234567")])
    assert (await operate(client, teamed, "start")).json()["status"] == "active"


@pytest.mark.parametrize("operation", ["start", "pause", "stop"])
async def test_operations_on_unknown_campaigns_are_404(client: httpx.AsyncClient, operation: str) -> None:
    response = await operate(client, 41, operation)
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


# --- leads -----------------------------------------------------------------------------------


async def test_leads_are_sorted_into_created_rejected_and_duplicates(
    client: httpx.AsyncClient,
) -> None:
    cid = (await create(client, body()))["id"]
    first = await add_leads(
        client,
        cid,
        [
            lead("15551234567", name="John Doe", priority=10, active=True),
            lead("447414992548", source={"system": "crm", "url": "https://crm/1"}),
            lead("+15557654321"),
            lead("1555-765-4321"),
            lead("123456"),
            lead("0441234567"),
            lead("1234567890123456"),
            lead(""),
            lead("15551234567"),
        ],
    )
    assert first.status_code == 200
    assert first.json() == {
        "leads_import": {
            "created": ["15551234567", "447414992548"],
            "rejected": [
                "+15557654321",
                "1555-765-4321",
                "123456",
                "0441234567",
                "1234567890123456",
                "",
            ],
            "duplicates": ["15551234567"],
        }
    }
    second = await add_leads(client, cid, [lead("447414992548"), lead("15557654321")])
    assert second.json()["leads_import"] == {
        "created": ["15557654321"],
        "rejected": [],
        "duplicates": ["447414992548"],
    }


async def test_at_most_a_thousand_leads_per_call(client: httpx.AsyncClient) -> None:
    cid = (await create(client, body()))["id"]
    numbers = [f"1555{n:07d}" for n in range(1001)]
    too_many = await add_leads(client, cid, [lead(n) for n in numbers])
    assert too_many.status_code == 422
    assert list(too_many.json()["errors"]) == ["leads"]
    accepted = await add_leads(client, cid, [lead(n) for n in numbers[:1000]])
    assert accepted.status_code == 200
    assert len(accepted.json()["leads_import"]["created"]) == 1000
    last = await add_leads(client, cid, [lead(numbers[1000])])
    assert last.json()["leads_import"]["created"] == [numbers[1000]]


async def test_an_empty_lead_list_is_422(client: httpx.AsyncClient) -> None:
    cid = (await create(client, body()))["id"]
    response = await add_leads(client, cid, [])
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["leads"]


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"name": "No number"}, "leads[1].phone_number"),
        (lead("15551230000", priority=0), "leads[1].priority"),
        (lead("15551230000", priority=1001), "leads[1].priority"),
        (lead("15551230000", priority="5"), "leads[1].priority"),
        (lead("15551230000", active="yes"), "leads[1].active"),
        (lead("15551230000", name=5), "leads[1].name"),
        (lead("15551230000", source="crm"), "leads[1].source"),
        (lead("15551230000", context_headers={"X-Id": 5}), "leads[1].context_headers"),
        ({"phone_number": 15551230000}, "leads[1].phone_number"),
        ("15551230000", "leads[1]"),
    ],
)
async def test_a_malformed_lead_refuses_the_whole_call(client: httpx.AsyncClient, bad: Any, key: str) -> None:
    cid = (await create(client, body()))["id"]
    response = await add_leads(client, cid, [lead("15551234567"), bad])
    assert response.status_code == 422
    assert list(response.json()["errors"]) == [key]
    again = await add_leads(client, cid, [lead("15551234567")])
    assert again.json()["leads_import"]["created"] == ["15551234567"]


@pytest.mark.parametrize("payload", [{"leads": [{"phone_number": "15551234567"}]}, "15551234567"])
async def test_leads_must_be_sent_as_a_json_array(client: httpx.AsyncClient, payload: Any) -> None:
    cid = (await create(client, body()))["id"]
    response = await add_leads(client, cid, payload)
    assert response.status_code == 400
    assert response.json() == {"error": "Bad Request"}


async def test_leads_for_an_unknown_campaign_are_404(client: httpx.AsyncClient) -> None:
    response = await add_leads(client, 7, [lead("15551234567")])
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


# --- not found, unsupported operations -------------------------------------------------------


@pytest.mark.parametrize("campaign_id", ["99", "abc", "1.0", "-1", "9" * 5000])
async def test_unknown_or_non_integer_ids_are_404(client: httpx.AsyncClient, campaign_id: str) -> None:
    await create(client, body())
    response = await client.get(f"{PATH}/{campaign_id}", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


async def test_ids_with_leading_zeros_find_the_campaign(client: httpx.AsyncClient) -> None:
    created = await create(client, body())
    response = await client.get(f"{PATH}/001", headers=AUTH)
    assert response.json() == {"campaign": created}


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("DELETE", ""), ("PUT", ""), ("PATCH", ""), ("GET", "/pause"), ("GET", "/leads")],
)
async def test_undocumented_operations_do_not_exist(client: httpx.AsyncClient, method: str, suffix: str) -> None:
    cid = (await create(client, body()))["id"]
    response = await client.request(method, f"{PATH}/{cid}{suffix}", headers=AUTH)
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}
    assert (await client.get(f"{PATH}/{cid}", headers=AUTH)).status_code == 200


async def test_unknown_paths_are_404(client: httpx.AsyncClient) -> None:
    for path in (f"{PATH}/1/status", f"{PATH}/1/contacts", "/api/v3/campaigns"):
        response = await client.post(path, json={}, headers=AUTH)
        assert response.status_code == 404
        assert response.json() == {"error": "Not found"}


# --- counters --------------------------------------------------------------------------------


async def test_calls_are_counted_per_operation(client: httpx.AsyncClient) -> None:
    cid = (await create(client, STAFFED))["id"]
    await client.post(PATH, json=body(name=None), headers=AUTH)
    await client.get(f"{PATH}/{cid}", headers=AUTH)
    await client.get(PATH, headers={"Authorization": "Token test-key"})
    await add_leads(client, cid, [lead("15551234567")])
    for operation in ("start", "pause", "start", "stop"):
        await operate(client, cid, operation)
    response = await client.get("/_sandbox/calls")
    assert response.status_code == 200
    assert response.json() == {
        "create": 2,
        "get": 1,
        "list": 1,
        "recipients_add": 1,
        "resume": 2,
        "pause": 1,
        "cancel": 1,
    }
