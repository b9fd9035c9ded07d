"""Sandbox connections in process: one simulated vendor account per connection, for as long as the gateway runs,
and the sandbox's own endpoints (call counts, faults) through the gateway, for sandbox connections only.

(With several workers the same accounts live in the serve process: tests/test_sandbox_workers.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import GatewayApp, TransportFactory
from gateway.config import load_config
from tests.conftest import TEST_KEY, write_config
from tests.fakes import FakeVendor, json_answer
from tests.test_bad_input import error_of
from tests.test_tenants import key_entry, tenant_entry, write_tenants

CAMPAIGN = {"name": "Kept", "agent_id": "agt_kept1", "from_number": "+14155550100"}
NO_CACHE = {"Cache-Control": "no-cache"}


def nexa(name: str = "nexa", **settings: Any) -> dict[str, Any]:
    return {"name": name, "vendor": "generic", "base_url": "sandbox", "credentials": {"api_key": "k"}, **settings}


@asynccontextmanager
async def gateway(
    config_path: Path, transport_factory: TransportFactory | None = None, key: str = TEST_KEY
) -> AsyncIterator[tuple[GatewayApp, httpx.AsyncClient]]:
    """The gateway on ``config_path`` in process, and a client with ``key``."""
    config, problems = load_config(config_path)
    assert config is not None, problems
    app = GatewayApp(config, transport_factory)
    transport, headers = httpx.ASGITransport(app=app), {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers) as client:
            yield app, client
    finally:
        await app.aclose()


@dataclass
class Holding:
    app: GatewayApp
    client: httpx.AsyncClient
    campaign_id: str


@pytest.fixture
async def holding(tmp_path: Path) -> AsyncIterator[Holding]:
    """The gateway with one sandbox connection, where one campaign was created."""
    async with gateway(write_config(tmp_path, [nexa()])) as (app, client):
        created = await client.post("/v1/campaigns", json=CAMPAIGN)
        assert created.status_code == 201, created.text
        yield Holding(app, client, created.json()["id"])


async def reload_with(app: GatewayApp, tmp_path: Path, connections: list[dict[str, Any]]) -> None:
    write_config(tmp_path, connections)
    assert await app.watcher.reload()


async def test_a_reload_keeps_the_sandbox_account_even_when_the_connection_changes(
    holding: Holding, tmp_path: Path
) -> None:
    """New timeouts make a new client for the connection; its sandbox still holds what was created."""
    before = holding.app.runtime.upstreams
    await reload_with(holding.app, tmp_path, [nexa(timeouts={"connect": 2, "read": 10, "total": 20})])
    assert holding.app.runtime.upstreams.keys() != before.keys(), "the connection got a new client"

    fetched = await holding.client.get(f"/v1/campaigns/{holding.campaign_id}", headers=NO_CACHE)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["name"] == CAMPAIGN["name"]


async def test_a_sandbox_connection_added_by_a_reload_has_an_account_of_its_own(
    holding: Holding, tmp_path: Path
) -> None:
    await reload_with(holding.app, tmp_path, [nexa(), nexa("nexa-2")])
    other = await holding.client.get("/v1/campaigns", headers={"X-Connection": "nexa-2"})
    assert (other.status_code, other.json()["data"]) == (200, [])
    mine = await holding.client.get("/v1/campaigns", headers=NO_CACHE)
    assert [c["id"] for c in mine.json()["data"]] == [holding.campaign_id]


# --- the sandbox's endpoints through the gateway ------------------------------------------------------

NEXA = {"X-Connection": "dialnexa-sandbox"}
READ_KEY = "cgw_test_sandbox_read_only_0000000000000000000"
FAULT = {"kind": "status", "value": 500, "path": "/campaigns", "method": "GET"}
ENDPOINTS = [
    ("GET", "/_sandbox/calls"),
    ("GET", "/_sandbox/faults"),
    ("POST", "/_sandbox/faults"),
    ("DELETE", "/_sandbox/faults"),
    ("POST", "/_sandbox/advance"),
]


async def test_call_counts_and_faults_through_the_gateway(demo_client: httpx.AsyncClient) -> None:
    created = await demo_client.post("/v1/campaigns", json=CAMPAIGN, headers=NEXA)
    assert created.status_code == 201, created.text
    path = f"/v1/campaigns/{created.json()['id']}"
    assert (await demo_client.get(path, headers={**NEXA, **NO_CACHE})).status_code == 200
    calls = await demo_client.get("/_sandbox/calls", headers=NEXA)
    # the create answers with a fresh get (its own answer lacks the counters), then the read
    assert (calls.status_code, calls.json()) == (200, {"create": 1, "get": 2})
    assert calls.headers["x-request-id"]

    queued = await demo_client.post("/_sandbox/faults", json=[FAULT], headers=NEXA)
    assert (queued.status_code, queued.json()) == (200, [FAULT])
    assert (await demo_client.get("/_sandbox/faults", headers=NEXA)).json() == [FAULT]
    faulted = await demo_client.get(path, headers={**NEXA, **NO_CACHE})
    error = error_of(faulted, 502, "upstream_error")
    assert (error["vendor"], error["upstream_status"]) == ("dialnexa", 500)
    assert (await demo_client.get("/_sandbox/faults", headers=NEXA)).json() == []
    assert (await demo_client.get(path, headers={**NEXA, **NO_CACHE})).status_code == 200
    assert (await demo_client.get("/_sandbox/calls", headers=NEXA)).json() == {"create": 1, "get": 3}

    await demo_client.post("/_sandbox/faults", json=[FAULT, FAULT], headers=NEXA)
    cleared = await demo_client.delete("/_sandbox/faults", headers=NEXA)
    assert (cleared.status_code, cleared.json()) == (200, [])
    assert (await demo_client.get(path, headers={**NEXA, **NO_CACHE})).status_code == 200

    # each connection has a sandbox of its own; without X-Connection, the default connection's (Hamsa's)
    assert (await demo_client.get("/v1/campaigns")).status_code == 200
    assert (await demo_client.get("/_sandbox/calls")).json() == {"list": 1}
    assert (await demo_client.get("/_sandbox/calls", headers={"X-Connection": "voiso-sandbox"})).json() == {}


async def test_a_live_connection_has_no_sandbox_endpoints(tmp_path: Path) -> None:
    """404 in the canonical envelope, whatever the method, and nothing reaches the vendor."""
    vendor = FakeVendor(lambda _request: json_answer(200, {}))
    live = {"name": "live", "vendor": "generic", "base_url": "https://vendor.test/v1", "credentials": {"api_key": "k"}}
    async with gateway(write_config(tmp_path, [live]), lambda _connection: vendor) as (_app, client):
        for method, path in ENDPOINTS:
            body = [FAULT] if method == "POST" else None
            error = error_of(await client.request(method, path, json=body), 404, "not_found")
            assert "live is not a sandbox connection" in error["message"], error
    assert vendor.sent == []


async def test_sandbox_endpoints_take_the_key_and_its_scopes(tmp_path: Path) -> None:
    """Like /v1: no key is a 401; reads need campaigns:read, the rest campaigns:write."""
    reader = key_entry("read", READ_KEY, scopes=["campaigns:read"])
    config = write_tenants(tmp_path / "config.yaml", [tenant_entry("t1", [reader], [nexa()])])
    async with gateway(config, key=READ_KEY) as (_app, client):
        assert (await client.get("/_sandbox/calls")).status_code == 200
        assert (await client.get("/_sandbox/faults")).status_code == 200
        error_of(await client.post("/_sandbox/faults", json=[FAULT]), 403, "forbidden")
        error_of(await client.delete("/_sandbox/faults"), 403, "forbidden")
        error_of(await client.get("/_sandbox/calls", headers={"Authorization": ""}), 401, "unauthorized")


async def test_what_the_sandbox_endpoints_refuse(demo_client: httpx.AsyncClient) -> None:
    put = await demo_client.put("/_sandbox/faults", json=[])
    error_of(put, 405, "method_not_allowed")
    assert put.headers["allow"] == "DELETE, GET, POST"
    error_of(await demo_client.get("/_sandbox/nothing"), 404, "not_found")
    as_text = await demo_client.post("/_sandbox/faults", content=b"[]", headers={"Content-Type": "text/plain"})
    error_of(as_text, 415, "unsupported_media_type")
    broken = await demo_client.post("/_sandbox/faults", content=b"[{", headers={"Content-Type": "application/json"})
    error_of(broken, 422, "validation_error")
    unknown = await demo_client.post("/_sandbox/faults", json=[{"kind": "gremlins"}], headers=NEXA)
    error = error_of(unknown, 422, "validation_error")
    assert "a list of faults of kinds" in error["message"], error
    assert (await demo_client.get("/_sandbox/faults", headers=NEXA)).json() == []
    # forwarded as it is: DialNexa's sandbox offers no /_sandbox/advance (its webhooks are not modelled)
    advance = error_of(await demo_client.post("/_sandbox/advance", headers=NEXA), 404, "not_found")
    assert (advance["vendor"], advance["upstream_status"]) == ("dialnexa", 404)


async def test_faults_can_be_read_and_cleared_while_the_circuit_is_open(tmp_path: Path) -> None:
    circuit = {"failure_ratio": 0.5, "min_requests": 2, "window_seconds": 60, "open_seconds": 60}
    async with gateway(write_config(tmp_path, [nexa(circuit=circuit)])) as (_app, client):
        assert (await client.post("/_sandbox/faults", json=[{**FAULT, "count": 10}])).status_code == 200
        for _ in range(2):
            assert (await client.get("/v1/campaigns", headers=NO_CACHE)).status_code == 502
        refused = error_of(await client.get("/v1/campaigns", headers=NO_CACHE), 503, "upstream_unavailable")
        assert "circuit open" in refused["message"]
        assert [f["count"] for f in (await client.get("/_sandbox/faults")).json()] == [8]
        assert (await client.delete("/_sandbox/faults")).json() == []
