"""The simulated ElevenLabs batch calling API: xi-api-key, FastAPI-style 422s, paging by last_doc, cancel and retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandboxes.elevenlabs import BATCHES, create_app

AUTH = {"xi-api-key": "test-key"}
SUBMIT = {
    "call_name": "Customer Satisfaction Survey April 2024",
    "agent_id": "agent_9f8b7c6d5e4a3b2c1d0e",
    "recipients": [{"phone_number": "+14155551234"}, {"phone_number": "+14155555678", "id": "mine-2"}],
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://sandbox") as http:
        yield http


async def submit(client: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    return await client.post(BATCHES + "/submit", json={**SUBMIT, **changes}, headers=AUTH)


async def test_the_key_is_the_xi_api_key_header(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer test-key"}):
        refused = await client.get(BATCHES + "/workspace", headers=headers)
        assert refused.status_code == 401
        assert refused.json() == {"detail": {"status": "invalid_api_key", "message": "Unauthorized"}}


async def test_a_batch_and_its_recipients(client: httpx.AsyncClient) -> None:
    numbers = (await client.get("/v1/convai/phone-numbers", headers=AUTH)).json()
    created = await submit(client, agent_phone_number_id=numbers[0]["phone_number_id"], scheduled_time_unix=1912086400)
    assert created.status_code == 200, created.text
    batch = created.json()
    assert (batch["status"], batch["total_calls_scheduled"], batch["scheduled_time_unix"]) == ("pending", 2, 1912086400)
    assert batch["phone_number_id"] == numbers[0]["phone_number_id"] and "recipients" not in batch
    detailed = (await client.get(f"{BATCHES}/{batch['id']}", headers=AUTH)).json()
    assert [r["status"] for r in detailed["recipients"]] == ["pending", "pending"]
    assert detailed["recipients"][1]["id"] == "mine-2"


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"call_name": None}, ["body", "call_name"]),
        ({"recipients": []}, ["body", "recipients"]),
        ({"recipients": [{"phone_number": "4155551234"}]}, ["body", "recipients", 0, "phone_number"]),
        ({"scheduled_time_unix": "2024-04-08"}, ["body", "scheduled_time_unix"]),
        ({"target_concurrency": 3}, ["body", "target_concurrency"]),
    ],
)
async def test_a_body_that_does_not_validate_is_a_422_with_its_loc(
    client: httpx.AsyncClient, changes: dict[str, Any], loc: list[Any]
) -> None:
    refused = await submit(client, **changes)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == loc


async def test_an_unknown_caller_number_is_a_404(client: httpx.AsyncClient) -> None:
    refused = await submit(client, agent_phone_number_id="phnum_nope")
    assert (refused.status_code, refused.json()["detail"]["status"]) == (404, "not_found")


async def test_paging_after_the_last_doc_while_there_is_more(client: httpx.AsyncClient) -> None:
    ids = [(await submit(client, call_name=f"B{n}")).json()["id"] for n in range(3)]
    first = (await client.get(BATCHES + "/workspace", params={"limit": "2"}, headers=AUTH)).json()
    assert ([b["id"] for b in first["batch_calls"]], first["next_doc"], first["has_more"]) == (ids[:2], ids[1], True)
    rest = (await client.get(BATCHES + "/workspace", params={"limit": "2", "last_doc": ids[1]}, headers=AUTH)).json()
    assert ([b["id"] for b in rest["batch_calls"]], rest["has_more"]) == (ids[2:], False)


async def test_cancel_then_retry(client: httpx.AsyncClient) -> None:
    batch = (await submit(client)).json()
    one = f"{BATCHES}/{batch['id']}"
    assert (await client.post(one + "/retry", headers=AUTH)).status_code == 409  # still running
    cancelled = await client.post(one + "/cancel", headers=AUTH)
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.post(one + "/cancel", headers=AUTH)).json()["detail"]["status"] == "invalid_state"
    retried = (await client.post(one + "/retry", headers=AUTH)).json()
    assert (retried["status"], retried["retry_count"]) == ("pending", 1)
    assert (await client.delete(one, headers=AUTH)).json() == {}
    assert (await client.get(one, headers=AUTH)).status_code == 404
    counted = (await client.get("/_sandbox/calls")).json()
    assert counted == {"create": 1, "resume": 2, "cancel": 2, "delete": 1, "get": 1}
