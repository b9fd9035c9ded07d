"""What every sandbox shares: the fault injector in front of it, and the hub that holds one account per connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandboxes._common import FaultInjector
from sandboxes.dialnexa import create_app
from sandboxes.hub import ACCOUNT_HEADER, SandboxHub, account_name

KEY = {"Authorization": "Bearer test-key"}


@pytest.fixture
async def injected() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=FaultInjector(create_app()))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


async def test_faults_hit_the_vendor_api_and_never_the_sandbox_endpoints(injected: httpx.AsyncClient) -> None:
    """A fault for any path is still pending after call counts are read, and takes the next vendor call."""
    queued = await injected.post("/_sandbox/faults", json=[{"kind": "status", "value": 500}])
    assert queued.status_code == 200, queued.text

    calls = await injected.get("/_sandbox/calls")
    assert (calls.status_code, calls.json()) == (200, {})
    assert [f["kind"] for f in (await injected.get("/_sandbox/faults")).json()] == ["status"]

    faulted = await injected.get("/campaigns", headers=KEY)
    assert faulted.status_code == 500
    assert (await injected.get("/_sandbox/faults")).json() == []
    assert (await injected.get("/campaigns", headers=KEY)).status_code == 200
    assert (await injected.get("/_sandbox/calls")).json() == {"list": 1}, "a faulted call never reaches the vendor"


# --- the hub ---------------------------------------------------------------------------------------

DIALNEXA = "sandboxes.dialnexa:create_app"
CAMPAIGN = {"name": "Hub", "agent_id": "agt_hub1", "from_phone_number": "+14155550100"}


@pytest.fixture
async def hub() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=SandboxHub()), base_url="http://sandbox") as client:
        yield client


def account(tenant: str, connection: str) -> dict[str, str]:
    return {**KEY, ACCOUNT_HEADER: account_name(tenant, connection, DIALNEXA)}


async def test_each_account_keeps_its_own_state(hub: httpx.AsyncClient) -> None:
    created = await hub.post("/campaigns", json=CAMPAIGN, headers=account("t1", "nexa"))
    assert created.status_code == 201, created.text
    again = await hub.get(f"/campaigns/{created.json()['id']}", headers=account("t1", "nexa"))
    assert again.status_code == 200, again.text
    # the same connection name in another tenant, and another connection of the tenant, are other accounts
    for other in (account("t2", "nexa"), account("t1", "nexa-2")):
        assert (await hub.get("/campaigns", headers=other)).json()["total"] == 0
        assert (await hub.get("/_sandbox/calls", headers=other)).json() == {"list": 1}
    assert (await hub.get("/_sandbox/calls", headers=account("t1", "nexa"))).json() == {"create": 1, "get": 1}


async def test_faults_are_per_account(hub: httpx.AsyncClient) -> None:
    fault = [{"kind": "status", "value": 503}]
    assert (await hub.post("/_sandbox/faults", json=fault, headers=account("t1", "nexa"))).status_code == 200
    assert (await hub.get("/campaigns", headers=account("t1", "nexa-2"))).status_code == 200
    assert (await hub.get("/campaigns", headers=account("t1", "nexa"))).status_code == 503


async def test_a_request_naming_no_account_is_refused(hub: httpx.AsyncClient) -> None:
    answer = await hub.get("/campaigns", headers=KEY)
    assert answer.status_code == 400
    assert ACCOUNT_HEADER in answer.json()["error"]
