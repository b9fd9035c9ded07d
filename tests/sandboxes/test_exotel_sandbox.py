"""The simulated Exotel campaigns v2 API: basic auth, the envelope, actions by status, edits before send_at, calls."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandboxes.exotel import create_app

AUTH = {"Authorization": "Basic " + base64.b64encode(b"key:token").decode()}
PATH = "/v2/accounts/acme_sid/campaigns"
LATER = (datetime.now(UTC) + timedelta(days=2)).isoformat(timespec="seconds")
CAMPAIGN = {
    "name": "January renewals",
    "caller_id": "+918047112200",
    "url": "http://my.exotel.com/acme_sid/exoml/start_voice/926",
    "from": ["+919876543210", "+919876543211"],
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://sandbox") as http:
        yield http


def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.json()["http_code"] == 200
    return response.json()["response"][0]["data"]


def failure(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    [item] = response.json()["response"]
    assert (item["code"], item["status"]) == (status, "failure")
    return item["error_data"]["description"]


async def create(client: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    return await client.post(PATH, json={"campaigns": [{**CAMPAIGN, **changes}]}, headers=AUTH)


async def act(client: httpx.AsyncClient, campaign_id: str, action: str) -> httpx.Response:
    return await client.put(f"{PATH}/{campaign_id}", json={"campaigns": [{"action": action}]}, headers=AUTH)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer key"}, {"Authorization": "Basic " + base64.b64encode(b"key:").decode()}],
)
async def test_auth_is_basic_with_key_and_token(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    failure(await client.get(PATH, headers=headers), 401)


async def test_a_campaign_without_a_schedule_runs_at_once(client: httpx.AsyncClient) -> None:
    campaign = data(await create(client))
    assert (campaign["status"], campaign["stats"]["pending"], campaign["type"]) == ("in-progress", 2, "trans")
    assert campaign["date_created"].endswith("+05:30")
    listed = (await client.get(PATH, params={"limit": "1"}, headers=AUTH)).json()
    assert listed["metadata"] == {"count": 1, "offset": 0, "total": 1, "limit": 1}
    assert listed["response"][0]["data"]["id"] == campaign["id"]


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"caller_id": None}, "caller_id is mandatory"),
        ({"from": None}, "Either 'from' parameter or 'lists' parameter"),
        ({"lists": ["l1"]}, "Either 'from' parameter or 'lists' parameter"),
        ({"url": "http://example.com/flow"}, "url"),
        ({"name": "Abc"}, "name"),
        ({"retries": {"number_of_retries": 4, "interval_mins": 5}}, "number_of_retries"),
        ({"retries": {"number_of_retries": 1}}, "interval_mins"),
        ({"retries": {"number_of_retries": 1, "interval_mins": 5, "mechanism": "linear"}}, "mechanism"),
        ({"schedule": {"send_at": "2020-01-01T00:00:00+05:30"}}, "send_at must be in the future"),
        ({"throttel": 5}, "throttel"),
    ],
)
async def test_create_is_validated(client: httpx.AsyncClient, changes: dict[str, Any], said: str) -> None:
    body = {**CAMPAIGN, **changes}
    refused = await client.post(
        PATH, json={"campaigns": [{k: v for k, v in body.items() if v is not None}]}, headers=AUTH
    )
    assert said in failure(refused, 400)


async def test_actions_follow_the_status(client: httpx.AsyncClient) -> None:
    campaign = data(await create(client, schedule={"send_at": LATER}))
    assert campaign["status"] == "created"
    assert "complete" in failure(await act(client, campaign["id"], "complete"), 409)
    assert data(await act(client, campaign["id"], "pause"))["status"] == "paused"
    edited = await client.put(
        f"{PATH}/{campaign['id']}", json={"campaigns": [{"name": "February renewals"}]}, headers=AUTH
    )
    assert data(edited)["name"] == "February renewals"
    assert data(await act(client, campaign["id"], "resume"))["status"] == "created"
    assert data(await act(client, campaign["id"], "pause"))["status"] == "paused"
    completed = data(await act(client, campaign["id"], "complete"))
    assert (completed["status"], completed["stats"]["failed"], completed["stats"]["pending"]) == ("completed", 2, 0)
    assert data(await act(client, campaign["id"], "archive"))["status"] == "archived"
    assert data(await client.delete(f"{PATH}/{campaign['id']}", headers=AUTH))["id"] == campaign["id"]
    failure(await client.get(f"{PATH}/{campaign['id']}", headers=AUTH), 404)
    counted = (await client.get("/_sandbox/calls")).json()
    assert counted == {
        "create": 1,
        "cancel": 2,
        "pause": 2,
        "update": 1,
        "resume": 1,
        "archive": 1,
        "delete": 1,
        "get": 1,
    }


async def test_a_started_campaign_can_be_neither_edited_nor_deleted(client: httpx.AsyncClient) -> None:
    campaign = data(await create(client))
    renamed = await client.put(f"{PATH}/{campaign['id']}", json={"campaigns": [{"name": "Too late"}]}, headers=AUTH)
    assert "before its send_at" in failure(renamed, 409)
    assert "not started" in failure(await client.delete(f"{PATH}/{campaign['id']}", headers=AUTH), 409)
    failure(await client.get(f"/v2/accounts/other_sid/campaigns/{campaign['id']}", headers=AUTH), 404)


async def test_completed_calls_are_call_details(client: httpx.AsyncClient) -> None:
    campaign = data(await create(client))
    after = data(await client.post(f"/_sandbox/campaigns/{campaign['id']}/complete-calls", params={"count": "1"}))
    assert (after["status"], after["stats"]["completed"], after["stats"]["pending"]) == ("in-progress", 1, 1)
    details = (await client.get(f"{PATH}/{campaign['id']}/call-details", headers=AUTH)).json()
    [call] = [item["data"] for item in details["response"]]
    assert (call["number"], call["status"], call["caller_id"]) == ("+919876543210", "completed", "+918047112200")
    assert data(await client.post(f"/_sandbox/campaigns/{campaign['id']}/complete-calls"))["status"] == "completed"
