"""The fault matrix: every vendor fault x every kind of operation, through the gateway's resilience.

The vendor is DialNexa's sandbox (``vendor: generic``), wrapped like every sandbox by the
FaultInjector (``POST /_sandbox/faults``). Most tests run twice:

* ``in-process``: ``base_url: sandbox``, the sandbox app behind httpx's ASGI transport; the fault
  endpoint is reached through the connection's own transport;
* ``network``: a standalone ``gateway sandbox --vendor generic`` process on a loopback port, reached
  by the gateway's aiohttp transport (real sockets, real timeouts).

Small timeouts and backoffs keep it fast: read 0.3 s, total 2 s, 3 attempts, backoff ≤ 0.05 s.

How many attempts reached the vendor is read from the fault queue itself (``GET
/_sandbox/faults`` lists what is left of each fault's ``count``): a faulted request never reaches
the sandbox's handlers, so ``/_sandbox/calls`` only counts the attempts that got through, which is
what the retry-then-succeed tests read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import GatewayApp
from gateway.config import load_config
from gateway.upstream import Upstream
from tests.conftest import TEST_KEY, write_config
from tests.fakes import FakeVendor, SentRequest, json_answer
from tests.processes import sandbox

NAME = "nexa"
CREDENTIAL = "sandbox-faults-credential-0001"  # long: the gateway masks credentials in vendor answers
TIMEOUTS = {"connect": 1, "read": 0.3, "total": 2}
ATTEMPTS = 3
RETRIES = {"attempts": ATTEMPTS, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05}
NEVER_OPENS = {"min_requests": 1000}  # the breaker has its own tests (test_circuit.py)
MAX_RESPONSE_BYTES = 64 * 1024
LASTING = 10  # a fault count no request can use up: what is left tells how many attempts were made
SLOW = 0.6  # seconds of latency: twice the read timeout, well inside the total budget
BUDGET_SLACK = 0.5
SETTLE_SECONDS = 3
CAMPAIGN = {"name": "Faults", "agent_id": "agt_faults1", "from_number": "+14155550100"}
RECIPIENTS = {"recipients": [{"phone_number": "+14155550123", "name": "Ann"}]}


def connection(base_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": NAME,
        "vendor": "generic",
        "base_url": base_url,
        "credentials": {"api_key": CREDENTIAL},
        "timeouts": TIMEOUTS,
        "retries": RETRIES,
        "circuit": NEVER_OPENS,
        "max_response_bytes": MAX_RESPONSE_BYTES,
        **overrides,
    }


# --- the sandbox as a process ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sandbox(tmp_path_factory.mktemp("sandbox") / "sandbox.log") as url:
        yield url


# --- the gateway, and the sandbox's control endpoints ------------------------------------------

Control = Callable[[str, str, Any], Awaitable[Any]]


@dataclass
class Env:
    name: str
    app: GatewayApp
    client: httpx.AsyncClient
    upstream: Upstream
    control: Control

    async def inject(self, *faults: dict[str, Any]) -> None:
        await self.control("POST", "/_sandbox/faults", list(faults))

    async def pending(self) -> list[dict[str, Any]]:
        return await self.control("GET", "/_sandbox/faults", None)

    async def clear(self) -> None:
        await self.control("DELETE", "/_sandbox/faults", None)

    async def calls(self) -> dict[str, int]:
        return await self.control("GET", "/_sandbox/calls", None)


def upstream_of(app: GatewayApp, name: str = NAME) -> Upstream:
    return next(u for u in app.runtime.upstreams.values() if u.connection.name == name)


def transport_control(upstream: Upstream) -> Control:
    """The in-process sandbox's control endpoints, through the connection's own transport."""

    async def control(method: str, path: str, body: Any) -> Any:
        content = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        status, _headers, answer = await upstream.transport.send(method, "http://sandbox" + path, headers, content)
        assert status == 200, (method, path, status, answer)
        return json.loads(answer)

    return control


def http_control(client: httpx.AsyncClient) -> Control:
    async def control(method: str, path: str, body: Any) -> Any:
        response = await client.request(method, path, json=body)
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        return response.json()

    return control


def gateway_client(app: GatewayApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )


def load_app(directory: Path, connections: list[dict[str, Any]], **extra: Any) -> GatewayApp:
    config, problems = load_config(write_config(directory, connections, **extra))
    assert config is not None, problems
    return GatewayApp(config)


@contextlib.asynccontextmanager
async def environment(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    base_url = "sandbox" if kind == "in-process" else request.getfixturevalue("sandbox_url")
    app = load_app(tmp_path, [connection(base_url)])
    upstream = upstream_of(app)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(app.aclose)
        client = await stack.enter_async_context(gateway_client(app))
        if kind == "in-process":
            control = transport_control(upstream)
        else:
            sandbox = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=10))
            control = http_control(sandbox)
        env = Env(kind, app, client, upstream, control)
        await env.clear()
        yield env
        await env.clear()


@pytest.fixture(params=["in-process", "network"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with environment(request.param, tmp_path, request) as value:
        yield value


async def new_campaign(env: Env) -> str:
    """A campaign that is active, so that pause (and pausing again, a no-op) succeeds."""
    created = await env.client.post("/v1/campaigns", json=CAMPAIGN)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    resumed = await env.client.post(f"/v1/campaigns/{campaign_id}/resume")
    assert resumed.status_code == 200, resumed.text
    return campaign_id


# --- the matrix ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str
    value: Any
    status: int
    code: str
    retryable: bool  # the gateway may try again (when the operation is safe to repeat)
    upstream_status: int | None  # what the error envelope names; None: no HTTP answer came back

    def spec(self, method: str, path: str, count: int) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "count": count, "path": path, "method": method}


FAULTS = [
    Fault("latency", "latency", SLOW, 504, "upstream_timeout", True, None),
    Fault("429", "status", 429, 429, "rate_limited", True, 429),
    Fault("500", "status", 500, 502, "upstream_error", False, 500),
    Fault("502", "status", 502, 502, "upstream_error", True, 502),
    Fault("503", "status", 503, 503, "upstream_unavailable", True, 503),
    Fault("504", "status", 504, 504, "upstream_timeout", True, 504),
    Fault("malformed", "malformed", None, 502, "upstream_error", False, 200),
    Fault("truncated", "truncated", None, 502, "upstream_error", False, 200),
    Fault("reset", "reset", None, 503, "upstream_unavailable", True, None),
    Fault("oversize", "oversize", 2 * MAX_RESPONSE_BYTES, 502, "upstream_error", False, None),
]
RETRYABLE = [fault for fault in FAULTS if fault.retryable]
FAULT = {fault.name: fault for fault in FAULTS}


@dataclass(frozen=True)
class Op:
    name: str
    method: str
    path: str  # {id}: the campaign
    body: dict[str, Any] | None
    upstream_method: str
    upstream_path: str
    retried: bool  # safe to repeat: a read, or a create carrying an Idempotency-Key
    ok: int
    with_key: bool = False

    async def send(self, client: httpx.AsyncClient, campaign_id: str) -> httpx.Response:
        headers = {"Cache-Control": "no-cache"} if self.method == "GET" else {}
        if self.with_key:
            headers["Idempotency-Key"] = f"faults-{uuid.uuid4()}"
        return await client.request(self.method, self.path.format(id=campaign_id), json=self.body, headers=headers)


OPS = [
    Op("get", "GET", "/v1/campaigns/{id}", None, "GET", "/campaigns/{id}", True, 200),
    Op("list", "GET", "/v1/campaigns", None, "GET", "/campaigns", True, 200),
    Op("create", "POST", "/v1/campaigns", CAMPAIGN, "POST", "/campaigns", False, 201),
    Op("create+key", "POST", "/v1/campaigns", CAMPAIGN, "POST", "/campaigns", True, 201, with_key=True),
    Op("pause", "POST", "/v1/campaigns/{id}/pause", None, "PATCH", "/campaigns/{id}", False, 200),
    Op("recipients_add", "POST", "/v1/campaigns/{id}/recipients", RECIPIENTS, "POST", "/campaigns-leads", False, 200),
]
GET = OPS[0]


@dataclass
class Outcome:
    status: int
    problems: list[str]


def error_problems(label: str, response: httpx.Response, fault: Fault) -> list[str]:
    """What differs between ``response`` and the canonical error ``fault`` should have become."""
    got = f"got {response.status_code} {response.text[:160]}"
    if response.status_code != fault.status:
        return [f"{label}: expected {fault.status} {fault.code}, {got}"]
    error = response.json().get("error", {})
    problems = []
    if error.get("code") != fault.code:
        problems.append(f"{label}: expected code {fault.code}, {got}")
    if error.get("vendor") != "generic":
        problems.append(f"{label}: the error does not name the vendor: {got}")
    if error.get("upstream_status") != fault.upstream_status:
        problems.append(f"{label}: expected upstream_status {fault.upstream_status}, {got}")
    if error.get("request_id") != response.headers.get("x-request-id"):
        problems.append(f"{label}: the envelope's request_id is not the X-Request-ID header")
    if fault.code == "rate_limited" and not response.headers.get("retry-after", "").isdigit():
        problems.append(f"{label}: a 429 without a Retry-After (headers: {dict(response.headers)})")
    return problems


async def run_cell(env: Env, fault: Fault, op: Op, campaign_id: str) -> Outcome:
    """One lasting fault on ``op``'s vendor call: the canonical answer, the attempts made, then a good request."""
    label = f"[{env.name}] {fault.name} x {op.name}"
    await env.clear()
    await env.inject(fault.spec(op.upstream_method, op.upstream_path.format(id=campaign_id), LASTING))
    started = time.monotonic()
    response = await op.send(env.client, campaign_id)
    elapsed = time.monotonic() - started
    left = await env.pending()
    await env.clear()
    problems = error_problems(label, response, fault)
    attempts = LASTING - (left[0]["count"] if left else 0)
    expected = ATTEMPTS if op.retried and fault.retryable else 1
    if attempts != expected:
        problems.append(f"{label}: {attempts} vendor attempt(s), expected {expected}")
    if elapsed > TIMEOUTS["total"] + BUDGET_SLACK:
        problems.append(f"{label}: took {elapsed:.2f} s, beyond the total budget of {TIMEOUTS['total']} s")
    good = await op.send(env.client, campaign_id)
    if good.status_code != op.ok:
        problems.append(f"{label}: the next good request got {good.status_code} {good.text[:300]}")
    return Outcome(response.status_code, problems)


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
async def test_fault_matrix(env: Env, fault: Fault) -> None:
    """Each operation meets ``fault`` (lasting): the canonical status and code, retried only when safe."""
    campaign_id = await new_campaign(env)
    problems = []
    for op in OPS:
        problems += (await run_cell(env, fault, op, campaign_id)).problems
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("fault", RETRYABLE, ids=[fault.name for fault in RETRYABLE])
async def test_a_read_whose_fault_passes_within_the_attempts_succeeds(env: Env, fault: Fault) -> None:
    campaign_id = await new_campaign(env)
    path = f"/campaigns/{campaign_id}"
    gets = (await env.calls()).get("get", 0)
    await env.inject(fault.spec("GET", path, ATTEMPTS - 1))
    response = await GET.send(env.client, campaign_id)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == campaign_id
    assert await env.pending() == [], f"{ATTEMPTS - 1} faulted attempts, then the one that succeeded"
    # Faulted attempts never reach the sandbox's handlers, except slow ones (after their delay).
    if fault.kind == "latency":
        await asyncio.sleep(SLOW + 0.2)
        assert (await env.calls())["get"] >= gets + 1
    else:
        assert (await env.calls())["get"] == gets + 1, "exactly one attempt got through"


async def test_a_create_is_retried_only_with_an_idempotency_key(env: Env) -> None:
    before = await env.calls()
    await env.inject(FAULT["503"].spec("POST", "/campaigns", ATTEMPTS - 1))
    without_key = await env.client.post("/v1/campaigns", json=CAMPAIGN)
    assert without_key.status_code == 503, without_key.text
    assert without_key.json()["error"]["code"] == "upstream_unavailable"
    assert [f["count"] for f in await env.pending()] == [ATTEMPTS - 2], "exactly one attempt, not retried"
    assert (await env.calls()).get("create", 0) == before.get("create", 0)

    await env.clear()
    await env.inject(FAULT["503"].spec("POST", "/campaigns", ATTEMPTS - 1))
    with_key = await env.client.post("/v1/campaigns", json=CAMPAIGN, headers={"Idempotency-Key": "faults-create-1"})
    assert with_key.status_code == 201, with_key.text
    assert await env.pending() == [], "both faulted attempts were used, then the third succeeded"
    assert (await env.calls())["create"] == before.get("create", 0) + 1, "exactly one create reached the vendor"


async def test_a_slow_create_without_a_key_reaches_the_vendor_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Over the network a slow vendor still acts: the timed-out create made exactly one campaign there."""
    async with environment("network", tmp_path, request) as env:
        before = (await env.calls()).get("create", 0)
        await env.inject(FAULT["latency"].spec("POST", "/campaigns", LASTING))
        response = await env.client.post("/v1/campaigns", json=CAMPAIGN)
        assert response.status_code == 504, response.text
        assert response.json()["error"]["code"] == "upstream_timeout"
        await env.clear()
        await asyncio.sleep(SLOW + 0.3)  # the sandbox finishes the create it was given
        assert (await env.calls())["create"] == before + 1

        await env.inject(FAULT["latency"].spec("POST", "/campaigns", LASTING))
        keyed = await env.client.post("/v1/campaigns", json=CAMPAIGN, headers={"Idempotency-Key": "faults-slow"})
        assert keyed.status_code == 504, keyed.text
        await env.clear()
        await asyncio.sleep(SLOW + 0.3)
        assert (await env.calls())["create"] == before + 1 + ATTEMPTS, "with a key, every attempt was sent"


# --- leftovers: tasks and sockets ---------------------------------------------------------------


def open_sockets() -> int:
    """Sockets this process holds open (the gateway's pooled vendor connections among them)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
    return count


async def settle(done: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + SETTLE_SECONDS
    while not done():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_the_matrix_leaves_no_task_or_connection_behind(env: Env) -> None:
    campaign_id = await new_campaign(env)
    for op in OPS:  # warm up: the vendor client and its pool exist before counting
        assert (await op.send(env.client, campaign_id)).status_code == op.ok
    tasks_before, sockets_before = len(asyncio.all_tasks()), open_sockets()

    statuses = [(await run_cell(env, fault, op, campaign_id)).status for fault in FAULTS for op in OPS]
    assert 500 not in statuses, "a vendor fault must never be an internal error"
    assert all(status in (200, 201, 429, 502, 503, 504) for status in statuses), statuses

    assert await settle(lambda: len(asyncio.all_tasks()) == tasks_before), (
        f"asyncio tasks: {tasks_before} before the matrix, {len(asyncio.all_tasks())} after: "
        f"{[task.get_coro() for task in asyncio.all_tasks()]}"
    )
    assert await settle(lambda: open_sockets() <= sockets_before), (
        f"open sockets: {sockets_before} before the matrix, {open_sockets()} after"
    )
    # and the gateway still serves
    for op in OPS:
        assert (await op.send(env.client, campaign_id)).status_code == op.ok


# --- a real connection reset, and Retry-After -----------------------------------------------------


class ResettingServer:
    """A TCP server that reads a request's head and answers with a TCP reset (RST); counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ResettingServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        writer.transport.abort()


async def test_a_real_connection_reset_is_503_and_retried_only_when_safe(tmp_path: Path) -> None:
    """The network path on a vendor that resets every connection before answering (the sandbox's
    ``reset`` cuts an answer it has started): each attempt is one connection, and only reads retry."""
    async with ResettingServer() as server:
        app = load_app(tmp_path, [connection(f"http://127.0.0.1:{server.port}")])
        try:
            async with gateway_client(app) as client:
                read = await client.get("/v1/campaigns/cmp_000000000001")
                assert read.status_code == 503, read.text
                assert read.json()["error"]["code"] == "upstream_unavailable"
                assert "upstream_status" not in read.json()["error"]
                assert server.connections == ATTEMPTS, (
                    f"a read that met resets opened {server.connections} vendor connections for "
                    f"retries.attempts = {ATTEMPTS}"
                )

                write = await client.post("/v1/campaigns", json=CAMPAIGN)
                assert write.status_code == 503, write.text
                assert server.connections == ATTEMPTS + 1, "a create without a key is sent once"
        finally:
            await app.aclose()


async def test_a_vendor_retry_after_paces_the_retry_and_reaches_the_client(tmp_path: Path) -> None:
    answers = [
        json_answer(429, {"error": {"message": "slow down"}}, headers={"retry-after": "1"}),
        json_answer(200, {"id": "cmp_1", "name": "Paced", "status": "draft"}),
        json_answer(429, {"error": {"message": "much later"}}, headers={"retry-after": "30"}),
    ]
    sent_at: list[float] = []

    def answer(_request: SentRequest) -> tuple[int, dict[str, str], bytes]:
        sent_at.append(time.monotonic())
        return answers.pop(0)

    vendor = FakeVendor(answer)
    config, problems = load_config(write_config(tmp_path, [connection("https://vendor.test/v1")]))
    assert config is not None, problems
    app = GatewayApp(config, lambda _connection: vendor)
    try:
        async with gateway_client(app) as client:
            paced = await client.get("/v1/campaigns/cmp_1")
            assert paced.status_code == 200, paced.text
            assert len(sent_at) == 2 and sent_at[1] - sent_at[0] >= 0.95, "the retry waited the Retry-After second"

            later = await client.get("/v1/campaigns/cmp_2")
            assert later.status_code == 429, later.text
            assert later.headers["retry-after"] == "30", "passed on to the client"
            assert len(sent_at) == 3, "a Retry-After beyond the total budget is not waited for"
    finally:
        await app.aclose()
