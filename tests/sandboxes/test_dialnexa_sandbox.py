"""The simulated DialNexa API behaves like the documented one, strictly."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandboxes.dialnexa import create_app

KEY = {"Authorization": "Bearer test-key"}
CREATED_KEYS = {
    "id",
    "organization_id",
    "name",
    "agent_id",
    "from_phone_number",
    "status",
    "max_concurrent_calls",
    "scheduled_at",
    "retry_config",
    "created_at",
}
COUNTER_KEYS = {"total_leads", "completed_calls", "pending_calls"}
# the documented lead answer, plus the name it was given (an assumption: see mappings/generic.yaml)
LEAD_KEYS = {"id", "name", "phone_number", "campaign_id", "status", "notes", "call_log_id", "created_at"}


def campaign_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Q2 Lead Re-engagement",
        "agent_id": "agt_abc123",
        "from_phone_number": "+912234567890",
        "scheduled_at": "2024-03-01T14:30:00+05:30",
        "max_concurrent_calls": 5,
        "retry_config": {"max_retries": 3, "retry_interval_minutes": 120},
    }
    body.update(changes)
    return body


def lead_body(campaign_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Asha",
        "phoneNumber": "9876543210",
        "countryCode": "+91",
        "campaignId": campaign_id,
        "notes": {"plan": "gold", "due_amount": 1200},
    }
    body.update(changes)
    return body


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        yield http


async def create(client: httpx.AsyncClient, **changes: Any) -> str:
    response = await client.post("/campaigns", json=campaign_body(**changes), headers=KEY)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def patch(client: httpx.AsyncClient, campaign_id: str, body: Any) -> httpx.Response:
    return await client.patch(f"/campaigns/{campaign_id}", json=body, headers=KEY)


async def add_lead(client: httpx.AsyncClient, campaign_id: str, **changes: Any) -> httpx.Response:
    return await client.post("/campaigns-leads", json=lead_body(campaign_id, **changes), headers=KEY)


async def fetch(client: httpx.AsyncClient, campaign_id: str) -> dict[str, Any]:
    response = await client.get(f"/campaigns/{campaign_id}", headers=KEY)
    assert response.status_code == 200
    return response.json()


def assert_error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == kind
    assert isinstance(body["error"]["message"], str)
    return body["error"]


# --- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "test-key"},
        {"Authorization": "Token test-key"},
        {"Authorization": "Bearer "},
        {"X-API-Key": "test-key"},
    ],
    ids=["missing", "bare", "token-form", "empty", "x-api-key"],
)
async def test_requests_without_a_bearer_key_are_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/campaigns", headers=headers)
    assert_error(response, 401, "authentication_error")


async def test_a_configured_key_is_the_only_one_accepted() -> None:
    transport = httpx.ASGITransport(app=create_app(api_key="secret"))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        wrong = await http.get("/campaigns", headers={"Authorization": "Bearer other"})
        right = await http.get("/campaigns", headers={"Authorization": "Bearer secret"})
    assert_error(wrong, 401, "authentication_error")
    assert right.status_code == 200


# --- create, get, list ------------------------------------------------------------------------


async def test_create_get_and_list(client: httpx.AsyncClient) -> None:
    response = await client.post("/campaigns", json=campaign_body(), headers=KEY)
    assert response.status_code == 201
    created = response.json()
    assert set(created) == CREATED_KEYS
    assert re.fullmatch(r"cmp_[0-9a-z]{12}", created["id"])
    assert created["organization_id"] == "org_sandbox"
    assert created["status"] == "draft"
    assert created["scheduled_at"] == "2024-03-01T09:00:00.000Z"
    assert created["retry_config"] == {"max_retries": 3, "retry_interval_minutes": 120}
    assert created["max_concurrent_calls"] == 5

    record = await fetch(client, created["id"])
    assert record == {**created, "total_leads": 0, "completed_calls": 0, "pending_calls": 0}

    listed = (await client.get("/campaigns", headers=KEY)).json()
    assert listed == {"data": [record], "total": 1, "limit": 20, "offset": 0}


async def test_create_fills_optional_fields(client: httpx.AsyncClient) -> None:
    body = campaign_body()
    for optional in ("scheduled_at", "max_concurrent_calls", "retry_config"):
        del body[optional]
    created = (await client.post("/campaigns", json=body, headers=KEY)).json()
    assert created["scheduled_at"] is None
    assert created["max_concurrent_calls"] == 1
    assert created["retry_config"] == {"max_retries": 0, "retry_interval_minutes": 60}


async def test_list_pages_oldest_first(client: httpx.AsyncClient) -> None:
    ids = [await create(client, name=f"c{n}") for n in range(3)]
    page = (await client.get("/campaigns?limit=2&offset=1", headers=KEY)).json()
    assert [item["id"] for item in page["data"]] == ids[1:]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    assert set(page["data"][0]) == CREATED_KEYS | COUNTER_KEYS


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "offset=-1"])
async def test_list_rejects_bad_paging(client: httpx.AsyncClient, query: str) -> None:
    error = assert_error(await client.get(f"/campaigns?{query}", headers=KEY), 422, "validation_error")
    assert error["param"] == query.split("=")[0]


# --- create validation ------------------------------------------------------------------------


def _without(field: str) -> dict[str, Any]:
    body = campaign_body()
    del body[field]
    return body


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (_without("name"), "name"),
        (_without("agent_id"), "agent_id"),
        (_without("from_phone_number"), "from_phone_number"),
        (campaign_body(name=""), "name"),
        (campaign_body(name=5), "name"),
        (campaign_body(agent_id="abc123"), "agent_id"),
        (campaign_body(from_phone_number="02234567890"), "from_phone_number"),
        (campaign_body(from_phone_number="912234567890"), "from_phone_number"),
        (campaign_body(scheduled_at="next monday"), "scheduled_at"),
        (campaign_body(max_concurrent_calls=0), "max_concurrent_calls"),
        (campaign_body(max_concurrent_calls="5"), "max_concurrent_calls"),
        (campaign_body(max_concurrent_calls=2.5), "max_concurrent_calls"),
        (
            campaign_body(retry_config={"max_retries": -1, "retry_interval_minutes": 5}),
            "retry_config.max_retries",
        ),
        (
            campaign_body(retry_config={"max_retries": 1, "retry_interval_minutes": 0}),
            "retry_config.retry_interval_minutes",
        ),
        (campaign_body(retry_config={"max_retries": 1}), "retry_config.retry_interval_minutes"),
        (campaign_body(agentId="agt_abc123"), "agentId"),
    ],
)
async def test_create_rejects_what_dialnexa_rejects(
    client: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    response = await client.post("/campaigns", json=body, headers=KEY)
    assert assert_error(response, 422, "validation_error")["param"] == param
    assert (await client.get("/campaigns", headers=KEY)).json()["total"] == 0


async def test_create_rejects_malformed_json_and_non_objects(client: httpx.AsyncClient) -> None:
    headers = {**KEY, "Content-Type": "application/json"}
    malformed = await client.post("/campaigns", content=b"{name", headers=headers)
    assert_error(malformed, 400, "invalid_request_error")
    listed = await client.post("/campaigns", json=[campaign_body()], headers=KEY)
    assert_error(listed, 422, "validation_error")


# --- update and status ------------------------------------------------------------------------


async def test_patch_changes_the_writable_fields(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    body = {
        "name": "Renamed",
        "agent_id": "agt_new",
        "max_concurrent_calls": 9,
        "retry_config": {"max_retries": 1, "retry_interval_minutes": 15},
    }
    response = await patch(client, campaign_id, body)
    assert response.status_code == 200
    assert {key: response.json()[key] for key in body} == body
    assert response.json()["status"] == "draft"
    assert await fetch(client, campaign_id) == response.json()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": None}, "name"),
        ({"max_concurrent_calls": 0}, "max_concurrent_calls"),
        ({"retry_config": {"max_retries": 2}}, "retry_config.retry_interval_minutes"),
        ({"status": "running"}, "status"),
        ({"status": "completed"}, "status"),
        ({"from_phone_number": "+912234567891"}, "from_phone_number"),
        ({"scheduled_at": "2024-03-02T09:00:00Z"}, "scheduled_at"),
    ],
)
async def test_patch_rejects_invalid_changes(client: httpx.AsyncClient, body: dict[str, Any], param: str) -> None:
    campaign_id = await create(client)
    assert assert_error(await patch(client, campaign_id, body), 422, "validation_error")["param"] == param
    assert (await fetch(client, campaign_id))["status"] == "draft"


async def test_status_lifecycle(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    steps = [("active", "active"), ("paused", "paused"), ("paused", "paused"), ("active", "active")]
    for requested, expected in steps:
        response = await patch(client, campaign_id, {"status": requested})
        assert response.status_code == 200
        assert response.json()["status"] == expected
    cancelled = await patch(client, campaign_id, {"status": "cancelled"})
    assert cancelled.json()["status"] == "cancelled"
    assert (await fetch(client, campaign_id))["status"] == "cancelled"


@pytest.mark.parametrize(
    ("setup", "body"),
    [
        ([], {"status": "paused"}),
        (["cancelled"], {"status": "active"}),
        (["cancelled"], {"status": "paused"}),
        (["cancelled"], {"name": "renamed"}),
    ],
)
async def test_transitions_the_status_does_not_allow_are_409(
    client: httpx.AsyncClient, setup: list[str], body: dict[str, Any]
) -> None:
    campaign_id = await create(client)
    for status in setup:
        assert (await patch(client, campaign_id, {"status": status})).status_code == 200
    assert_error(await patch(client, campaign_id, body), 409, "conflict")


async def test_completed_is_terminal(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    await patch(client, campaign_id, {"status": "active"})
    await add_lead(client, campaign_id)
    done = await client.post(f"/_sandbox/campaigns/{campaign_id}/complete-calls")
    assert done.json()["status"] == "completed"
    for body in ({"status": "paused"}, {"status": "cancelled"}, {"max_concurrent_calls": 2}):
        assert_error(await patch(client, campaign_id, body), 409, "conflict")
    assert_error(await add_lead(client, campaign_id), 409, "conflict")


async def test_agent_cannot_change_once_leads_exist(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    assert (await add_lead(client, campaign_id)).status_code == 201
    error = assert_error(await patch(client, campaign_id, {"agent_id": "agt_other"}), 422, "validation_error")
    assert error["param"] == "agent_id"
    same = await patch(client, campaign_id, {"agent_id": "agt_abc123", "name": "kept agent"})
    assert same.status_code == 200
    assert (await fetch(client, campaign_id))["agent_id"] == "agt_abc123"


# --- leads ------------------------------------------------------------------------------------


async def test_add_lead_and_counters(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    response = await add_lead(client, campaign_id)
    assert response.status_code == 201
    lead = response.json()
    assert set(lead) == LEAD_KEYS
    assert re.fullmatch(r"lead_[0-9a-z]{12}", lead["id"])
    assert lead["phone_number"] == "+919876543210"
    assert lead["campaign_id"] == campaign_id
    assert lead["status"] == "pending"
    assert lead["notes"] == {"plan": "gold", "due_amount": 1200}
    assert lead["call_log_id"] is None

    await add_lead(client, campaign_id, phoneNumber="4155550100", countryCode="+1", notes={})
    record = await fetch(client, campaign_id)
    assert (record["total_leads"], record["pending_calls"], record["completed_calls"]) == (2, 2, 0)

    leads = (await client.get(f"/campaigns/{campaign_id}/leads?limit=1&offset=1", headers=KEY)).json()
    assert leads["total"] == 2
    assert [item["phone_number"] for item in leads["data"]] == ["+14155550100"]
    assert (leads["limit"], leads["offset"]) == (1, 1)


async def test_completing_calls_moves_the_counters(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    for number in ("9876543210", "9876543211", "9876543212"):
        await add_lead(client, campaign_id, phoneNumber=number)
    control = f"/_sandbox/campaigns/{campaign_id}/complete-calls"
    assert_error(await client.post(control), 409, "conflict")

    await patch(client, campaign_id, {"status": "active"})
    running = (await client.post(f"{control}?count=2")).json()
    assert running["status"] == "running"
    assert (running["completed_calls"], running["pending_calls"]) == (2, 1)
    leads = (await client.get(f"/campaigns/{campaign_id}/leads", headers=KEY)).json()["data"]
    assert [lead["status"] for lead in leads] == ["completed", "completed", "pending"]
    assert leads[0]["call_log_id"].startswith("call_")
    assert leads[2]["call_log_id"] is None

    paused = await patch(client, campaign_id, {"status": "paused"})
    assert paused.json()["status"] == "paused"
    await patch(client, campaign_id, {"status": "active"})
    finished = (await client.post(control)).json()
    assert finished["status"] == "completed"
    assert (finished["total_leads"], finished["completed_calls"], finished["pending_calls"]) == (
        3,
        3,
        0,
    )


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"phoneNumber": "+919876543210"}, "phoneNumber"),
        ({"phoneNumber": 9876543210}, "phoneNumber"),
        ({"countryCode": "91"}, "countryCode"),
        ({"countryCode": "+91", "phoneNumber": "98765432101234"}, "phoneNumber"),
        ({"campaignId": ""}, "campaignId"),
        ({"notes": {f"k{n}": "v" for n in range(16)}}, "notes"),
        ({"notes": {"nested": {"a": 1}}}, "notes"),
        ({"phone_number": "+919876543210"}, "phone_number"),
    ],
)
async def test_add_lead_rejects_what_dialnexa_rejects(
    client: httpx.AsyncClient, changes: dict[str, Any], param: str
) -> None:
    campaign_id = await create(client)
    error = assert_error(await add_lead(client, campaign_id, **changes), 422, "validation_error")
    assert error["param"] == param
    assert (await fetch(client, campaign_id))["total_leads"] == 0


async def test_add_lead_requires_the_key_fields(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    for field in ("phoneNumber", "countryCode", "campaignId"):
        body = lead_body(campaign_id)
        del body[field]
        response = await client.post("/campaigns-leads", json=body, headers=KEY)
        assert assert_error(response, 422, "validation_error")["param"] == field


async def test_add_lead_to_an_unknown_campaign_is_404(client: httpx.AsyncClient) -> None:
    assert_error(await add_lead(client, "cmp_000000000000"), 404, "not_found")


# --- not found --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/campaigns/cmp_missing00000", {}),
        ("PATCH", "/campaigns/cmp_missing00000", {"json": {"name": "x"}}),
        ("PATCH", "/campaigns/cmp_missing00000", {"json": {"status": "paused"}}),
        ("GET", "/campaigns/cmp_missing00000/leads", {}),
        ("GET", "/campaign", {}),
    ],
)
async def test_unknown_campaign_or_path_is_404(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = await client.request(method, path, headers=KEY, **kwargs)
    assert_error(response, 404, "not_found")


async def test_delete_is_not_offered(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    response = await client.delete(f"/campaigns/{campaign_id}", headers=KEY)
    assert_error(response, 405, "method_not_allowed")
    assert (await fetch(client, campaign_id))["id"] == campaign_id


# --- call counts ------------------------------------------------------------------------------


async def test_calls_are_counted_per_operation(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    await fetch(client, campaign_id)
    await client.get("/campaigns", headers=KEY)
    await patch(client, campaign_id, {"name": "renamed"})
    await patch(client, campaign_id, {"status": "active"})
    await patch(client, campaign_id, {"status": "paused", "max_concurrent_calls": 2})
    await add_lead(client, campaign_id)
    await client.get(f"/campaigns/{campaign_id}/leads", headers=KEY)
    await client.get(f"/campaigns/{campaign_id}")  # refused, still counted
    await client.post(f"/_sandbox/campaigns/{campaign_id}/complete-calls")  # control: not counted

    counts = (await client.get("/_sandbox/calls")).json()
    assert counts == {
        "create": 1,
        "get": 2,
        "list": 1,
        "update": 1,
        "status": 2,
        "recipients_add": 1,
        "recipients_list": 1,
    }
