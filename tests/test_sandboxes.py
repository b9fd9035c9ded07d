"""Sandbox connections in process: one simulated vendor account per connection, for as long as the gateway runs.

(With several workers the same accounts live in the serve process: tests/test_sandbox_workers.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import GatewayApp
from gateway.config import load_config
from tests.conftest import TEST_KEY, write_config

CAMPAIGN = {"name": "Kept", "agent_id": "agt_kept1", "from_number": "+14155550100"}
NO_CACHE = {"Cache-Control": "no-cache"}


def nexa(name: str = "nexa", **settings: Any) -> dict[str, Any]:
    return {"name": name, "vendor": "generic", "base_url": "sandbox", "credentials": {"api_key": "k"}, **settings}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[GatewayApp]:
    config, problems = load_config(write_config(tmp_path, [nexa()]))
    assert config is not None, problems
    gateway = GatewayApp(config)
    try:
        yield gateway
    finally:
        await gateway.aclose()


@pytest.fixture
async def client(app: GatewayApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers) as http:
        yield http


def reload_with(app: GatewayApp, tmp_path: Path, connections: list[dict[str, Any]]) -> None:
    write_config(tmp_path, connections)
    assert app.watcher.reload()


async def test_a_reload_keeps_the_sandbox_account_even_when_the_connection_changes(
    app: GatewayApp, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """New timeouts make a new client for the connection; its sandbox still holds what was created."""
    created = await client.post("/v1/campaigns", json=CAMPAIGN)
    assert created.status_code == 201, created.text
    before = app.runtime.upstreams

    reload_with(app, tmp_path, [nexa(timeouts={"connect": 2, "read": 10, "total": 20})])
    assert app.runtime.upstreams.keys() != before.keys(), "the connection got a new client"

    fetched = await client.get(f"/v1/campaigns/{created.json()['id']}", headers=NO_CACHE)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["name"] == CAMPAIGN["name"]


async def test_a_sandbox_connection_added_by_a_reload_has_an_account_of_its_own(
    app: GatewayApp, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = await client.post("/v1/campaigns", json=CAMPAIGN)
    assert created.status_code == 201, created.text

    reload_with(app, tmp_path, [nexa(), nexa("nexa-2")])
    other = await client.get("/v1/campaigns", headers={"X-Connection": "nexa-2"})
    assert (other.status_code, other.json()["data"]) == (200, [])
    mine = await client.get("/v1/campaigns", headers=NO_CACHE)
    assert [c["id"] for c in mine.json()["data"]] == [created.json()["id"]]
