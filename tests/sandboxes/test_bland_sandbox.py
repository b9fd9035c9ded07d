"""The simulated Bland v2 batches API: the bare key, global and call_objects rules, start_time, stop, the calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sandboxes.bland import create_app

AUTH = {"authorization": "test-key"}
LATER = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S +00:00")
BATCH = {
    "global": {"pathway_id": "pw-1", "from": "+14155550100"},
    "call_objects": [{"phone_number": "+14155551234", "metadata": {"name": "Alice"}}, {"phone_number": "+14155555678"}],
    "description": "May renewals",
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://sandbox") as http:
        yield http


def message(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.json()["data"] is None
    [error] = response.json()["errors"]
    return error["message"]


async def test_the_key_goes_without_a_scheme(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"authorization": "Bearer test-key"}):
        assert message(await client.get("/v2/batches/list", headers=headers), 401) == "Unauthorized"
    assert (await client.get("/v2/batches/list", headers=AUTH)).json() == {"data": [], "errors": None}


async def test_a_batch_reads_back_without_status_and_with_global_as_text(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v2/batches/create", json={**BATCH, "global": {**BATCH["global"], "start_time": LATER}}, headers=AUTH
    )
    assert created.status_code == 200, created.text
    batch_id = created.json()["data"]["batch_id"]
    batch = (await client.get(f"/v2/batches/{batch_id}", headers=AUTH)).json()["data"]
    assert set(batch) == {"id", "user_id", "base_prompt", "created_at", "call_objects", "description"}
    assert json.loads(batch["base_prompt"]) == {"pathway_id": "pw-1", "from": "+14155550100", "start_time": LATER}
    calls = (await client.get("/v1/calls", params={"batch_id": batch_id}, headers=AUTH)).json()
    assert (calls["total_count"], [c["to"] for c in calls["calls"]]) == (2, ["+14155551234", "+14155555678"])
    assert {(c["queue_status"], c["status"], c["from"]) for c in calls["calls"]} == {("new", None, "+14155550100")}


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"global": {"from": "+14155550100"}}, "global must include task or pathway_id"),
        ({"global": {"task": "x", "phone_number": "+14155550100"}}, "global.phone_number is not allowed"),
        ({"call_objects": []}, "call_objects must be a non-empty array"),
        ({"call_objects": [{"phone_number": "4155551234"}]}, "call_objects[0].phone_number: invalid phone number"),
        ({"call_objects": [{"phone_number": "+14155551234", "colour": "red"}]}, "additional properties not allowed"),
        ({"description": "x" * 61}, "at most 60 characters"),
        ({"global": {"task": "x", "start_time": "2031-01-01T10:00:00Z"}}, "invalid start_time"),
        ({"global": {"task": "x", "start_time": "2020-01-01 10:00:00 +00:00"}}, "at least 5 minutes in advance"),
        ({"label": "old v1 field"}, "label: additional properties not allowed"),
    ],
)
async def test_a_batch_that_does_not_validate_is_a_400(client: httpx.AsyncClient, change: dict, said: str) -> None:
    assert said in message(await client.post("/v2/batches/create", json={**BATCH, **change}, headers=AUTH), 400)


async def test_stop_cancels_the_calls_once(client: httpx.AsyncClient) -> None:
    batch_id = (await client.post("/v2/batches/create", json=BATCH, headers=AUTH)).json()["data"]["batch_id"]
    stopped = await client.post(f"/v2/batches/{batch_id}/stop", headers=AUTH)
    assert stopped.json() == {"data": None, "errors": None}
    calls = (await client.get("/v1/calls", params={"batch_id": batch_id, "from": "1", "to": "2"}, headers=AUTH)).json()
    assert (calls["total_count"], calls["count"], calls["calls"][0]["status"]) == (2, 1, "canceled")
    assert "not running" in message(await client.post(f"/v2/batches/{batch_id}/stop", headers=AUTH), 400)
    assert message(await client.get("/v2/batches/nope", headers=AUTH), 404) == "Batch not found"
