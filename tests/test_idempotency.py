"""Idempotency-Key on POST: one create upstream however often it is retried, and honest refusals."""

from __future__ import annotations

import asyncio

from tests.fakes import FakeVendor, json_answer

CAMPAIGN = {"id": "cmp_1", "name": "Leads", "status": "draft", "agent_id": "agt_1", "from_phone_number": "+14155550100"}
BODY = {"name": "Leads", "agent_id": "agt_1", "from_number": "+14155550100"}
CONNECTION = {
    "name": "nexa",
    "vendor": "generic",
    "base_url": "https://vendor.test/v1",
    "credentials": {"api_key": "k"},
}


def create_vendor() -> FakeVendor:
    return FakeVendor(lambda _request: json_answer(201, CAMPAIGN))


def creates(vendor: FakeVendor) -> int:
    """Creates the vendor got (each create is answered with a fresh get: GETs are not counted)."""
    return sum(request.method == "POST" for request in vendor.sent)


class SlowVendor(FakeVendor):
    """Answers after a pause, so concurrent retries overlap the first request."""

    async def send(self, method, url, headers, body):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)
        return await super().send(method, url, headers, body)


async def test_retried_create_is_replayed_not_repeated(make_client) -> None:
    vendor = create_vendor()
    async with make_client([CONNECTION], lambda _c: vendor) as client:
        first = await client.post("/v1/campaigns", json=BODY, headers={"Idempotency-Key": "k-1"})
        second = await client.post("/v1/campaigns", json=BODY, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert creates(vendor) == 1


async def test_same_key_with_another_body_is_refused(make_client) -> None:
    vendor = create_vendor()
    async with make_client([CONNECTION], lambda _c: vendor) as client:
        await client.post("/v1/campaigns", json=BODY, headers={"Idempotency-Key": "k-2"})
        other = await client.post("/v1/campaigns", json={**BODY, "name": "Other"}, headers={"Idempotency-Key": "k-2"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "validation_error"
    assert creates(vendor) == 1


async def test_concurrent_identical_creates_make_one_upstream_call(make_client) -> None:
    vendor = SlowVendor(lambda _request: json_answer(201, CAMPAIGN))
    async with make_client([CONNECTION], lambda _c: vendor) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/campaigns", json=BODY, headers={"Idempotency-Key": "k-3"}) for _ in range(20))
        )
    statuses = sorted(a.status_code for a in answers)
    assert creates(vendor) == 1
    assert statuses.count(201) == 1
    assert all(a.json()["error"]["code"] == "conflict" for a in answers if a.status_code == 409)


async def test_failed_first_attempt_can_be_retried(make_client) -> None:
    # 500 is not retried by the gateway itself (503 would be, a create with a key being safe to repeat).
    calls = iter([json_answer(500, {"error": {"message": "boom"}}), json_answer(201, CAMPAIGN)])
    vendor = FakeVendor(lambda request: next(calls) if request.method == "POST" else json_answer(200, CAMPAIGN))
    async with make_client([CONNECTION], lambda _c: vendor) as client:
        failed = await client.post("/v1/campaigns", json=BODY, headers={"Idempotency-Key": "k-4"})
        retried = await client.post("/v1/campaigns", json=BODY, headers={"Idempotency-Key": "k-4"})
    assert failed.status_code == 502
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


async def test_requests_without_a_key_are_not_deduplicated(make_client) -> None:
    vendor = create_vendor()
    async with make_client([CONNECTION], lambda _c: vendor) as client:
        await client.post("/v1/campaigns", json=BODY, headers={"Idempotency-Key": "k-5"})
        without_key = await client.post("/v1/campaigns", json=BODY)
    assert without_key.status_code == 201
    assert creates(vendor) == 2
