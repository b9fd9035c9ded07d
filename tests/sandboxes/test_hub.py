"""What every sandbox shares: the fault injector in front of it, and the hub that holds one account per connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandboxes._common import FaultInjector
from sandboxes.dialnexa import create_app

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
