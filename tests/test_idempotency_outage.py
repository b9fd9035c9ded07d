"""Idempotency-Key through a Redis outage: the vendor's answer reaches the client, and a key never creates twice.

Two gateway instances (``first`` and ``second``, as two workers would be) share one real
redis-server (no persistence) and one vendor account: DialNexa's in-process sandbox, whose create
is held at the vendor by a latency fault while the test kills Redis (SIGKILL) and starts it again,
empty. Every test ends by reading the sandbox's own call count: one create, whatever the retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import idempotency_redis
from gateway.app import GatewayApp
from gateway.config import load_config
from tests.conftest import TEST_KEY, RedisServer, write_config

NEXA = {
    "name": "nexa",
    "vendor": "dialnexa",
    "base_url": "sandbox",
    "credentials": {"api_key": "outage-sandbox-key"},
    "timeouts": {"connect": 1, "read": 20, "total": 30},
}
BODY = {"name": "Outage", "agent_id": "agt_outage", "from_number": "+912234567890"}
KEY = {"Idempotency-Key": "outage-0001"}
AT_VENDOR_SECONDS = 3.0  # how long the first create is held at the vendor
WAIT = 20.0


@dataclass
class Instances:
    first: GatewayApp
    second: GatewayApp
    redis: RedisServer

    async def post(self, app: GatewayApp, body: dict[str, Any] = BODY) -> httpx.Response:
        """The create, with the key, through ``app``."""
        async with client(app) as gateway:
            return await gateway.post("/v1/campaigns", json=body, headers=KEY)

    async def sandbox(self, method: str, path: str, body: Any = None) -> Any:
        async with client(self.first) as gateway:
            answer = await gateway.request(method, path, json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def hold_the_next_create(self, seconds: float = AT_VENDOR_SECONDS) -> None:
        fault = {"kind": "latency", "value": seconds, "count": 1, "path": "/campaigns", "method": "POST"}
        await self.sandbox("POST", "/_sandbox/faults", [fault])

    async def until_at_the_vendor(self) -> None:
        """Until the held create has reached the vendor (its latency fault was taken)."""
        async with asyncio.timeout(WAIT):
            while any(f["kind"] == "latency" for f in await self.sandbox("GET", "/_sandbox/faults")):
                await asyncio.sleep(0.02)

    async def creates(self) -> int:
        return (await self.sandbox("GET", "/_sandbox/calls")).get("create", 0)


def client(app: GatewayApp) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers=headers)


@pytest.fixture
async def instances(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Instances]:
    config, problems = load_config(write_config(tmp_path, [NEXA], cache={"backend": redis_server.url}))
    assert config is not None, problems
    first = GatewayApp(config)
    second = GatewayApp(config, sandboxes=first.sandboxes)  # one vendor account for both
    try:
        yield Instances(first, second, redis_server)
    finally:
        await first.aclose()
        await second.aclose()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def assert_created(response: httpx.Response, replayed: bool) -> None:
    assert response.status_code == 201, response.text
    assert response.headers.get("idempotent-replayed") == ("true" if replayed else None)


async def test_redis_down_when_the_vendor_answers_the_client_gets_the_answer_and_no_retry_creates_again(
    instances: Instances, monkeypatch: pytest.MonkeyPatch
) -> None:
    await instances.hold_the_next_create()
    pending = asyncio.create_task(instances.post(instances.first))
    await instances.until_at_the_vendor()
    instances.redis.kill()

    created = await asyncio.wait_for(pending, WAIT)
    assert_created(created, replayed=False)  # the vendor's 201, though Redis could not take the record
    campaign = created.json()

    here = await instances.post(instances.first)  # the worker that kept the record answers from it
    assert_created(here, replayed=True)
    assert here.json() == campaign
    elsewhere = await instances.post(instances.second)  # another cannot know: refused, retryable
    assert "retry shortly" in assert_error(elsewhere, 503, "upstream_unavailable")["message"]
    assert elsewhere.headers["retry-after"] == "1"

    instances.redis.start()  # empty: the record is written back by the worker that kept it
    again = await instances.post(instances.second)
    assert_created(again, replayed=True)
    assert again.json() == campaign

    monkeypatch.setattr(idempotency_redis, "RUNNING_SECONDS", 0.5)  # past the in-flight window
    await asyncio.sleep(0.6)
    for app in (instances.first, instances.second):
        late = await instances.post(app)
        assert_created(late, replayed=True)
    assert await instances.creates() == 1


async def test_redis_restarted_empty_while_the_create_is_at_the_vendor_never_lets_a_retry_create(
    instances: Instances,
) -> None:
    await instances.hold_the_next_create(2 * AT_VENDOR_SECONDS)  # room for a restart and the epoch's settling
    pending = asyncio.create_task(instances.post(instances.first))
    await instances.until_at_the_vendor()
    instances.redis.kill()
    down = await instances.post(instances.second)
    assert_error(down, 503, "upstream_unavailable")

    instances.redis.start()  # the marker of the create at the vendor is gone with the old Redis
    started = time.monotonic()
    for app in (instances.second, instances.first):
        running = await instances.post(app)
        assert "still in progress" in assert_error(running, 409, "conflict")["message"]
    assert not pending.done(), f"the create was still at the vendor {time.monotonic() - started:.1f} s later"

    created = await asyncio.wait_for(pending, WAIT)
    assert_created(created, replayed=False)
    for app in (instances.second, instances.first):
        replayed = await instances.post(app)
        assert_created(replayed, replayed=True)
        assert replayed.json() == created.json()
    assert await instances.creates() == 1


async def test_a_request_stopped_midway_keeps_its_key_and_is_refused_as_of_unknown_fate_after_the_window(
    instances: Instances, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request cancelled while at the vendor (its worker stopping) may have taken effect: its key is not freed."""
    monkeypatch.setattr(idempotency_redis, "RUNNING_SECONDS", 1.0)
    await instances.hold_the_next_create(10)
    pending = asyncio.create_task(instances.post(instances.first))
    await instances.until_at_the_vendor()
    pending.cancel()  # what uvicorn does once its graceful timeout is up
    stopped = await asyncio.wait_for(pending, WAIT)
    assert "shutting down" in assert_error(stopped, 503, "server_busy")["message"]

    running = await instances.post(instances.second)
    assert "still in progress" in assert_error(running, 409, "conflict")["message"]
    await asyncio.sleep(1.1)
    unknown = await instances.post(instances.second)
    assert "whether it took effect is unknown" in assert_error(unknown, 409, "conflict")["message"]
    assert await instances.creates() == 0, "the one create never finished, and no retry made another"


async def test_partial_progress_kept_through_an_outage_is_resumed_once_redis_is_back(instances: Instances) -> None:
    """A composed create (the campaign, then its leads) whose second step fails while Redis is down."""
    body = {**BODY, "recipients": [{"phone_number": "+912234567891", "name": "Asha"}]}
    refused = {"kind": "status", "value": 422, "count": 1, "path": "/campaigns-leads", "method": "POST"}
    await instances.sandbox("POST", "/_sandbox/faults", [refused])
    await instances.hold_the_next_create()
    pending = asyncio.create_task(instances.post(instances.first, body))
    await instances.until_at_the_vendor()
    instances.redis.kill()

    failed = await asyncio.wait_for(pending, WAIT)
    error = assert_error(failed, 502, "partial_failure")  # what happened, though Redis could not keep the progress
    campaign_id = error["details"][0]["campaign_id"]
    assert_error(await instances.post(instances.first, body), 503, "upstream_unavailable")

    instances.redis.start()
    resumed = await instances.post(instances.second, body)
    assert resumed.status_code == 201, resumed.text
    assert resumed.json()["id"] == campaign_id
    calls = await instances.sandbox("GET", "/_sandbox/calls")
    assert (calls["create"], calls["recipients_add"]) == (1, 1)
