"""The simulated Hamsa API: auth form, create/get/list round trip, validation, errors, counters."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandboxes.hamsa import create_app

PATH = "/v1/voice-agents/campaigns"
AUTH = {"Authorization": "Token test-key"}
AGENT_ID = "68f7656f-098b-4c43-b165-7cfd2cc8ac40"
OTHER_AGENT_ID = "11111111-2222-4333-8444-555555555555"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
CREATE_FIELDS = {
    "id",
    "name",
    "status",
    "sendType",
    "scheduledDate",
    "scheduledTimezone",
    "timeRange",
    "reservedConcurrency",
    "webhookUrl",
    "projectId",
    "userId",
    "voiceAgentId",
    "phoneNumberId",
    "createdAt",
    "updatedAt",
}
RECIPIENT_FIELDS = {
    "id",
    "campaignId",
    "phoneNumber",
    "name",
    "ignoreE164Validation",
    "dynamicVariables",
    "status",
    "latestActionTimestamp",
    "attempts",
    "maxAttempts",
    "nextRetryAt",
    "jobId",
    "lastError",
    "completedAt",
    "createdAt",
    "updatedAt",
}
VALID: dict[str, Any] = {
    "name": "Q1 Customer Outreach",
    "phoneNumber": "+14155551212",
    "voiceAgentId": AGENT_ID,
    "recipients": [
        {"phoneNumber": "+1234567890", "ignoreE164Validation": False, "name": "John Doe"},
        {"phoneNumber": "+447700900123", "name": "Jane Roe", "dynamicVariables": {"plan": "gold"}},
    ],
    "sendType": "NOW",
    "timeRange": {
        "days": ["MONDAY", "TUESDAY", "WEDNESDAY"],
        "startCallingTime": "09:00",
        "endCallingTime": "17:00",
    },
    "reservedConcurrency": 10,
}


def body(**changes: Any) -> dict[str, Any]:
    """A valid create body with top-level fields replaced (None removes the field)."""
    result = copy.deepcopy(VALID)
    for field, value in changes.items():
        if value is None:
            result.pop(field, None)
        else:
            result[field] = value
    return result


def with_time_range(**changes: Any) -> dict[str, Any]:
    time_range = {**VALID["timeRange"], **changes}
    return body(timeRange={key: value for key, value in time_range.items() if value is not None})


def with_recipient(**changes: Any) -> dict[str, Any]:
    recipient = {"phoneNumber": "+1234567890", "name": "John Doe", **changes}
    return body(recipients=[{key: value for key, value in recipient.items() if value is not None}])


def assert_error(response: httpx.Response, status: int, key: str) -> dict[str, Any]:
    assert response.status_code == status
    payload = response.json()
    assert payload["success"] is False
    assert payload["messageKey"] == key
    assert payload["data"] is None
    assert isinstance(payload["message"], str) and payload["message"]
    return payload


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        yield http


async def create(client: httpx.AsyncClient, payload: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(PATH, json=payload, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def campaign_count(client: httpx.AsyncClient) -> int:
    response = await client.get(PATH, headers=AUTH)
    return response.json()["data"]["totalCount"]


# --- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer test-key"},
        {"Authorization": "token test-key"},
        {"Authorization": "test-key"},
        {"Authorization": "Token "},
        {"X-API-Key": "test-key"},
    ],
)
async def test_wrong_or_missing_token_header_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    assert_error(await client.get(PATH, headers=headers), 401, "UNAUTHORIZED")
    assert_error(await client.post(PATH, json=body(), headers=headers), 401, "UNAUTHORIZED")
    assert await campaign_count(client) == 0


async def test_configured_key_is_the_only_one_accepted() -> None:
    transport = httpx.ASGITransport(app=create_app(api_key="secret"))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        refused = await http.get(PATH, headers={"Authorization": "Token other"})
        accepted = await http.get(PATH, headers={"Authorization": "Token secret"})
    assert_error(refused, 401, "UNAUTHORIZED")
    assert accepted.status_code == 200


# --- create / get / list ---------------------------------------------------------------------


async def test_create_answers_201_in_the_envelope_with_the_seed_fields(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(PATH, json=body(webhookUrl="https://example.com/hook"), headers=AUTH)
    assert response.status_code == 201
    payload = response.json()
    assert payload["success"] is True
    assert payload["messageKey"] == "CAMPAIGN_CREATED_SUCCESSFULLY"
    data = payload["data"]
    assert set(data) == CREATE_FIELDS
    assert uuid.UUID(data["id"]).version == 4
    assert data["status"] == "SCHEDULED"
    assert data["sendType"] == "NOW"
    assert data["scheduledDate"] is None and data["scheduledTimezone"] is None
    assert data["timeRange"] == VALID["timeRange"]
    assert data["reservedConcurrency"] == 10
    assert data["webhookUrl"] == "https://example.com/hook"
    assert data["voiceAgentId"] == AGENT_ID
    for field in ("projectId", "userId", "phoneNumberId"):
        uuid.UUID(data[field])
    assert TIMESTAMP.fullmatch(data["createdAt"]) and data["updatedAt"] == data["createdAt"]


async def test_phone_number_id_follows_the_caller_number(client: httpx.AsyncClient) -> None:
    first = await create(client, body())
    same = await create(client, body(name="Second"))
    other = await create(client, body(name="Third", phoneNumber="+14155550000"))
    assert first["phoneNumberId"] == same["phoneNumberId"] != other["phoneNumberId"]
    assert first["projectId"] == other["projectId"] and first["userId"] == other["userId"]


async def test_scheduled_campaign_keeps_its_schedule(client: httpx.AsyncClient) -> None:
    data = await create(
        client,
        body(
            sendType="SCHEDULED",
            scheduledDate="2025-12-01T09:00:00Z",
            scheduledTimezone="America/New_York",
        ),
    )
    assert data["status"] == "SCHEDULED"
    assert data["scheduledDate"] == "2025-12-01T09:00:00Z"
    assert data["scheduledTimezone"] == "America/New_York"


async def test_get_returns_the_campaign_with_recipients_grouped_by_status(
    client: httpx.AsyncClient,
) -> None:
    created = await create(client, body())
    response = await client.get(f"{PATH}/{created['id']}", headers=AUTH)
    assert response.status_code == 200
    payload = response.json()
    assert payload["success"] is True
    assert payload["messageKey"] == "CAMPAIGN_RETRIEVED_SUCCESSFULLY"
    data = payload["data"]
    assert {key: data[key] for key in CREATE_FIELDS} == created
    assert data["totalRecipients"] == 2
    assert data["agentName"] == "Sandbox Agent"
    groups = data["recipients"]
    assert list(groups) == ["pending", "queued", "inProgress", "completed", "failed", "noAnswer"]
    assert all(groups[name] == [] for name in list(groups)[1:])
    john, jane = groups["pending"]
    assert set(john) == RECIPIENT_FIELDS
    assert john["campaignId"] == created["id"]
    assert (john["phoneNumber"], john["name"]) == ("+1234567890", "John Doe")
    assert john["status"] == "PENDING"
    assert (john["attempts"], john["maxAttempts"]) == (0, 3)
    assert john["dynamicVariables"] == {} and john["lastError"] is None
    assert jane["dynamicVariables"] == {"plan": "gold"}
    assert jane["ignoreE164Validation"] is False
    assert john["id"] != jane["id"]


async def test_get_accepts_the_id_in_upper_case(client: httpx.AsyncClient) -> None:
    created = await create(client, body())
    response = await client.get(f"{PATH}/{created['id'].upper()}", headers=AUTH)
    assert response.json()["data"]["id"] == created["id"]


async def test_list_pages_newest_first_with_recipient_counts(client: httpx.AsyncClient) -> None:
    names = ["First", "Second", "Third"]
    ids = [(await create(client, body(name=name)))["id"] for name in names]
    response = await client.get(PATH, params={"take": 2}, headers=AUTH)
    assert response.status_code == 200
    payload = response.json()
    assert payload["success"] is True
    data = payload["data"]
    assert (data["totalCount"], data["returnedCount"]) == (3, 2)
    assert [item["id"] for item in data["campaigns"]] == [ids[2], ids[1]]
    assert all(set(item) == CREATE_FIELDS | {"recipientsCount"} for item in data["campaigns"])
    assert data["campaigns"][0]["recipientsCount"] == 2
    rest = (await client.get(PATH, params={"take": 2, "skip": 2}, headers=AUTH)).json()["data"]
    assert [item["id"] for item in rest["campaigns"]] == [ids[0]]
    assert (rest["totalCount"], rest["returnedCount"]) == (3, 1)


async def test_list_defaults_to_ten_per_page(client: httpx.AsyncClient) -> None:
    for number in range(12):
        await create(client, body(name=f"Campaign {number}"))
    data = (await client.get(PATH, headers=AUTH)).json()["data"]
    assert (data["totalCount"], data["returnedCount"]) == (12, 10)


async def test_list_filters_by_agent_and_search(client: httpx.AsyncClient) -> None:
    spring = await create(client, body(name="Spring Renewals"))
    autumn = await create(client, body(name="Autumn Leads", voiceAgentId=OTHER_AGENT_ID))

    async def listed(**params: str) -> list[str]:
        response = await client.get(PATH, params=params, headers=AUTH)
        return [item["id"] for item in response.json()["data"]["campaigns"]]

    assert await listed(voiceAgentId=OTHER_AGENT_ID) == [autumn["id"]]
    assert await listed(search="renewal") == [spring["id"]]
    assert await listed(search=autumn["id"][:8]) == [autumn["id"]]
    assert await listed(search="nothing like it") == []


# --- validation ------------------------------------------------------------------------------

LONG_NAME = "x" * 101


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (body(name=None), "name"),
        (body(name=""), "name"),
        (body(name=LONG_NAME), "name"),
        (body(name=42), "name"),
        (body(phoneNumber=None), "phoneNumber"),
        (body(phoneNumber="14155551212"), "phoneNumber"),
        (body(phoneNumber="+1 415 555 1212"), "phoneNumber"),
        (body(voiceAgentId=None), "voiceAgentId"),
        (body(voiceAgentId="agent-1"), "voiceAgentId"),
        (body(recipients=None), "recipients"),
        (body(recipients=[]), "recipients"),
        (body(recipients={"phoneNumber": "+1234567890"}), "recipients"),
        (body(recipients=["+1234567890"]), "recipients[0]"),
        (with_recipient(name=None), "recipients[0].name"),
        (with_recipient(name="  "), "recipients[0].name"),
        (with_recipient(phoneNumber=None), "recipients[0].phoneNumber"),
        (with_recipient(phoneNumber="07700900123"), "recipients[0].phoneNumber"),
        (with_recipient(ignoreE164Validation="no"), "recipients[0].ignoreE164Validation"),
        (with_recipient(dynamicVariables=["a"]), "recipients[0].dynamicVariables"),
        (with_recipient(dynamicVariables={"a": {"b": 1}}), "recipients[0].dynamicVariables"),
        (body(sendType=None), "sendType"),
        (body(sendType="LATER"), "sendType"),
        (body(sendType="now"), "sendType"),
        (body(sendType="SCHEDULED", scheduledTimezone="UTC"), "scheduledDate"),
        (body(sendType="SCHEDULED", scheduledDate="2025-12-01T09:00:00Z"), "scheduledTimezone"),
        (body(scheduledDate="next monday"), "scheduledDate"),
        (body(scheduledTimezone="Mars/Olympus"), "scheduledTimezone"),
        (body(timeRange=None), "timeRange"),
        (body(timeRange="09:00-17:00"), "timeRange"),
        (with_time_range(days=None), "timeRange.days"),
        (with_time_range(days=[]), "timeRange.days"),
        (with_time_range(days=["monday"]), "timeRange.days"),
        (with_time_range(days=["MONDAY", "MONDAY"]), "timeRange.days"),
        (with_time_range(days=[["MONDAY"]]), "timeRange.days"),
        (with_time_range(startCallingTime=None), "timeRange.startCallingTime"),
        (with_time_range(startCallingTime="9:00"), "timeRange.startCallingTime"),
        (with_time_range(endCallingTime="24:00"), "timeRange.endCallingTime"),
        (body(reservedConcurrency=None), "reservedConcurrency"),
        (body(reservedConcurrency=0), "reservedConcurrency"),
        (body(reservedConcurrency="10"), "reservedConcurrency"),
        (body(reservedConcurrency=2.5), "reservedConcurrency"),
        (body(reservedConcurrency=True), "reservedConcurrency"),
        (body(webhookUrl="ftp://example.com/hook"), "webhookUrl"),
        (body(webhookUrl="example.com/hook"), "webhookUrl"),
    ],
)
async def test_create_rejects_what_hamsa_rejects(
    client: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    response = await client.post(PATH, json=payload, headers=AUTH)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["message"].startswith(field)
    assert await campaign_count(client) == 0


@pytest.mark.parametrize(
    "payload",
    [
        body(name="x" * 100),
        body(name="x"),
        with_recipient(phoneNumber="0770 090 0123", ignoreE164Validation=True),
        body(sendType="SCHEDULED", scheduledDate="2025-12-01", scheduledTimezone="Asia/Dubai"),
        with_time_range(days=["SUNDAY"], startCallingTime="00:00", endCallingTime="23:59"),
        body(reservedConcurrency=1),
        body(webhookUrl=None, unknownField="ignored"),
    ],
)
async def test_create_accepts_the_edges_of_the_rules(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    await create(client, payload)
    assert await campaign_count(client) == 1


@pytest.mark.parametrize("raw", [b"{", b'{"name": NaN}', b"\xff\xfe", b"[" * 100_000])
async def test_malformed_json_is_400_in_the_envelope(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(PATH, content=raw, headers=AUTH)
    assert_error(response, 400, "INVALID_JSON")


@pytest.mark.parametrize("raw", [b"", b"[]", b'"campaign"'])
async def test_a_body_that_is_not_an_object_is_a_validation_error(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(PATH, content=raw, headers=AUTH)
    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "params",
    [
        {"take": "-1"},
        {"take": "ten"},
        {"skip": "1.5"},
        {"skip": "-3"},
        {"take": "9" * 30},
        {"voiceAgentId": "agent-1"},
    ],
)
async def test_list_rejects_bad_query_values(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get(PATH, params=params, headers=AUTH)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["message"].startswith(next(iter(params)))


# --- not found, unsupported operations -------------------------------------------------------


@pytest.mark.parametrize("campaign_id", [str(uuid.uuid4()), "not-a-uuid", "123"])
async def test_unknown_campaign_is_404(client: httpx.AsyncClient, campaign_id: str) -> None:
    response = await client.get(f"{PATH}/{campaign_id}", headers=AUTH)
    assert_error(response, 404, "CAMPAIGN_NOT_FOUND")


async def test_unknown_path_is_404_in_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/voice-agents/agents", headers=AUTH)
    assert_error(response, 404, "NOT_FOUND")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_undocumented_operations_do_not_exist(client: httpx.AsyncClient, method: str) -> None:
    created = await create(client, body())
    response = await client.request(method, f"{PATH}/{created['id']}", json={}, headers=AUTH)
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    still_there = await client.get(f"{PATH}/{created['id']}", headers=AUTH)
    assert still_there.status_code == 200


# --- counters and isolation ------------------------------------------------------------------


async def test_calls_are_counted_per_operation(client: httpx.AsyncClient) -> None:
    created = await create(client, body())
    await client.post(PATH, json=body(name=""), headers=AUTH)
    await client.get(f"{PATH}/{created['id']}", headers=AUTH)
    await client.get(PATH, headers=AUTH)
    await client.get(PATH, headers={"Authorization": "Bearer test-key"})
    response = await client.get("/_sandbox/calls")
    assert response.status_code == 200
    assert response.json() == {"create": 2, "get": 1, "list": 2}


async def test_every_app_starts_empty(client: httpx.AsyncClient) -> None:
    await create(client, body())
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as fresh:
        assert (await fresh.get(PATH, headers=AUTH)).json()["data"]["totalCount"] == 0
        assert (await fresh.get("/_sandbox/calls")).json() == {"list": 1}
