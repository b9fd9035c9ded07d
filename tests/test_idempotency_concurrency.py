"""20 concurrent identical creates with one Idempotency-Key: one create upstream, 20 identical answers.

The clients behave as the contract asks: a 409 (the first request is still in flight) is retried
after a short pause, until the stored answer is replayed. The first create is slowed down by the
sandbox's fault injector (latency) so that the others really arrive while it is in flight.

* in process: one gateway app, DialNexa's in-process sandbox, the in-memory idempotency slots;
* across processes: ``gateway serve --workers 2`` with ``cache.backend: redis://…`` (the slots in
  Redis, shared by both workers), the upstream a standalone ``gateway sandbox`` process whose
  ``/_sandbox/calls`` counts the creates that reached it.

(tests/test_idempotency.py covers replay, 422 on another body, and a failed first attempt.)
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import orjson
import redis

from tests.conftest import TEST_KEY, RedisServer, free_port, write_config
from tests.processes import sandbox, start_gateway, stop, wait_for_http, wait_until
from tests.test_faults import (
    CAMPAIGN,
    connection,
    gateway_client,
    load_app,
    transport_control,
    upstream_of,
)

CLIENTS = 20
KEY = "concurrent-create-0001"
RETRY_PAUSE = 0.02
RETRY_SECONDS = 15
FIRST_CREATE_DELAY = 0.5
TIMEOUTS = {"connect": 1, "read": 5, "total": 10}  # the slow first create must not time out
STARTUP_SECONDS = 20
Post = Callable[[], Awaitable[httpx.Response]]


async def until_not_in_flight(post: Post, conflicts: list[httpx.Response]) -> httpx.Response:
    """``post()`` again while it answers 409 (bounded): what a well-behaved client does."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        response = await post()
        if response.status_code != 409:
            return response
        conflicts.append(response)
        assert time.monotonic() < deadline, f"still 409 after {RETRY_SECONDS} s: {response.text}"
        await asyncio.sleep(RETRY_PAUSE)


async def concurrent_creates(client: httpx.AsyncClient) -> tuple[list[httpx.Response], list[httpx.Response]]:
    conflicts: list[httpx.Response] = []

    def post() -> Awaitable[httpx.Response]:
        return client.post("/v1/campaigns", json=CAMPAIGN, headers={"Idempotency-Key": KEY})

    answers = await asyncio.gather(*(until_not_in_flight(post, conflicts) for _ in range(CLIENTS)))
    return list(answers), conflicts


def assert_one_create_twenty_identical_answers(answers: list[httpx.Response], conflicts: list[httpx.Response]) -> None:
    assert len(answers) == CLIENTS
    assert [a.status_code for a in answers] == [201] * CLIENTS, [(a.status_code, a.text) for a in answers]
    bodies = {a.content for a in answers}
    assert len(bodies) == 1, f"{len(bodies)} different bodies: {bodies}"
    replayed = [a.headers.get("idempotent-replayed") for a in answers]
    assert replayed.count(None) == 1, "exactly one answer is the original"
    assert replayed.count("true") == CLIENTS - 1, replayed
    campaign = answers[0].json()
    assert campaign["name"] == CAMPAIGN["name"] and campaign["id"]
    # the others really did arrive while the first was in flight, and were told so
    assert conflicts, "no request overlapped the first one: the test proved nothing"
    for conflict in conflicts:
        error = conflict.json()["error"]
        assert error["code"] == "conflict", error
        assert error["request_id"] == conflict.headers["x-request-id"]


async def test_concurrent_identical_creates_in_process(tmp_path: Path) -> None:
    app = load_app(tmp_path, [connection("sandbox", timeouts=TIMEOUTS)])
    control = transport_control(upstream_of(app))
    try:
        latency = {"kind": "latency", "value": FIRST_CREATE_DELAY, "count": 1, "path": "/campaigns", "method": "POST"}
        await control("POST", "/_sandbox/faults", [latency])
        async with gateway_client(app) as client:
            answers, conflicts = await concurrent_creates(client)
            assert_one_create_twenty_identical_answers(answers, conflicts)
            assert (await control("GET", "/_sandbox/calls", None)).get("create") == 1
            listed = await client.get("/v1/campaigns", headers={"Cache-Control": "no-cache"})
            assert [c["id"] for c in listed.json()["data"]] == [answers[0].json()["id"]]
    finally:
        await app.aclose()


def _wait_for_workers(log: Path, process: subprocess.Popen[bytes], workers: int) -> None:
    started = lambda: log.read_text().count("Application startup complete") >= workers  # noqa: E731
    wait_until(started, process, log, STARTUP_SECONDS, f"{workers} workers")


def test_concurrent_identical_creates_across_two_workers(tmp_path: Path, redis_server: RedisServer) -> None:
    with sandbox(tmp_path / "sandbox.log") as upstream:
        config = write_config(tmp_path, [connection(upstream, timeouts=TIMEOUTS)], cache={"backend": redis_server.url})
        port = free_port()
        log = tmp_path / "serve.log"
        process = start_gateway("serve", "--config", str(config), "--port", str(port), "--workers", "2", log_path=log)
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_for_http(base_url + "/healthz", process, log)
            _wait_for_workers(log, process, 2)
            latency = {"kind": "latency", "value": FIRST_CREATE_DELAY, "count": 1, "path": "/campaigns"}
            assert httpx.post(upstream + "/_sandbox/faults", json=[{**latency, "method": "POST"}]).status_code == 200

            async def run() -> tuple[list[httpx.Response], list[httpx.Response]]:
                limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)
                headers = {"Authorization": f"Bearer {TEST_KEY}"}
                async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30, limits=limits) as client:
                    return await concurrent_creates(client)

            answers, conflicts = asyncio.run(run())
            assert_one_create_twenty_identical_answers(answers, conflicts)
            calls = httpx.get(upstream + "/_sandbox/calls", timeout=5).json()
            assert calls.get("create") == 1, calls

            shared = redis.Redis.from_url(redis_server.url)
            try:
                slots = shared.keys("cgw:v1:i:*")
                assert len(slots) == 1, slots
                stored = orjson.loads(shared.get(slots[0]) or b"null")
                assert stored["status"] == 201 and stored["body"].encode() == answers[0].content
            finally:
                shared.close()
        finally:
            stop(process)
