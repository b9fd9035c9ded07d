"""The simulated Vapi /campaign API: auth, validation in NestJS's shape, the phone numbers, end and edit rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandboxes.vapi import create_app

AUTH = {"Authorization": "Bearer test-key"}
LATER = (datetime.now(UTC) + timedelta(days=3)).isoformat()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://sandbox") as http:
        yield http


async def phone_id(client: httpx.AsyncClient, number: str = "+14155550100") -> str:
    numbers = (await client.get("/phone-number", headers=AUTH)).json()
    return next(n["id"] for n in numbers if n["number"] == number)


async def body(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    base = {
        "name": "Q2 Sales Campaign",
        "assistantId": "asst-1",
        "phoneNumberId": await phone_id(client),
        "customers": [{"number": "+14155551234", "name": "Alice"}],
    }
    return {key: value for key, value in {**base, **changes}.items() if value is not None}


def refused(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"statusCode", "message", "error"} and error["statusCode"] == status
    return error["message"]


async def test_the_key_is_a_bearer_token(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "test-key"}, {"Authorization": "Basic test-key"}):
        assert refused(await client.get("/campaign", headers=headers), 401) == "Unauthorized"
    assert (await client.get("/campaign", headers=AUTH)).status_code == 200


async def test_a_campaign_without_a_plan_runs_at_once_and_a_later_one_is_scheduled(client: httpx.AsyncClient) -> None:
    now = await client.post("/campaign", json=await body(client), headers=AUTH)
    assert now.status_code == 201, now.text
    assert (now.json()["status"], now.json()["callsCounterScheduled"], now.json()["maxConcurrency"]) == (
        "in-progress",
        1,
        10,
    )
    later = await client.post("/campaign", json=await body(client, schedulePlan={"earliestAt": LATER}), headers=AUTH)
    assert later.json()["status"] == "scheduled"
    assert later.json()["schedulePlan"]["earliestAt"].endswith("Z")


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"name": None}, "name"),
        ({"assistantId": None}, "Only one of assistantId, workflowId, or squadId"),
        ({"workflowId": "wf-1"}, "Only one of assistantId, workflowId, or squadId"),
        ({"customers": []}, "customers"),
        ({"customers": [{"number": "4155551234"}]}, "E.164"),
        ({"customers": [{"number": "+14155551234", "name": "x" * 41}]}, "customers.0.name"),
        ({"schedulePlan": {"latestAt": LATER}}, "schedulePlan.earliestAt"),
        ({"maxConcurrency": 0}, "maxConcurrency"),
        ({"phoneNumberId": "not-ours"}, "phoneNumberId"),
        ({"assistantID": "typo"}, "assistantID"),
    ],
)
async def test_create_is_validated_naming_the_field(client: httpx.AsyncClient, changes: dict, named: str) -> None:
    assert named in refused(await client.post("/campaign", json=await body(client, **changes), headers=AUTH), 400)


async def test_ending_and_editing(client: httpx.AsyncClient) -> None:
    created = (
        await client.post("/campaign", json=await body(client, schedulePlan={"earliestAt": LATER}), headers=AUTH)
    ).json()
    one = f"/campaign/{created['id']}"
    renamed = await client.patch(one, json={"name": "Renamed"}, headers=AUTH)
    assert renamed.json()["name"] == "Renamed"
    ended = await client.patch(one, json={"status": "ended"}, headers=AUTH)
    assert (ended.json()["status"], ended.json()["endedReason"]) == ("ended", "campaign.scheduled.ended-by-user")
    assert "ended" in refused(await client.patch(one, json={"status": "ended"}, headers=AUTH), 400)
    assert "ended" in refused(await client.patch(one, json={"name": "Again"}, headers=AUTH), 400)

    running = (await client.post("/campaign", json=await body(client), headers=AUTH)).json()
    assert "in-progress" in refused(
        await client.patch(f"/campaign/{running['id']}", json={"name": "No"}, headers=AUTH), 400
    )
    stopped = await client.patch(f"/campaign/{running['id']}", json={"status": "ended"}, headers=AUTH)
    assert stopped.json()["endedReason"] == "campaign.in-progress.ended-by-user"
    assert (await client.get("/_sandbox/calls")).json() == {"phone_numbers": 2, "create": 2, "update": 3, "cancel": 3}


async def test_list_pages_newest_first_and_delete_removes(client: httpx.AsyncClient) -> None:
    ids = [
        (await client.post("/campaign", json=await body(client, name=f"C{n}"), headers=AUTH)).json()["id"]
        for n in range(3)
    ]
    page = (await client.get("/campaign", params={"page": "1", "limit": "2"}, headers=AUTH)).json()
    assert [c["id"] for c in page["results"]] == [ids[2], ids[1]]
    assert page["metadata"] == {"itemsPerPage": 2, "totalItems": 3, "currentPage": 1}
    deleted = await client.delete(f"/campaign/{ids[0]}", headers=AUTH)
    assert deleted.json()["id"] == ids[0]
    assert refused(await client.get(f"/campaign/{ids[0]}", headers=AUTH), 404) == "Campaign not found"
    assert "page" in refused(await client.get("/campaign", params={"page": "0"}, headers=AUTH), 400)
