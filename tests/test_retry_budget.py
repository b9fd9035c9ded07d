"""The retry budget: under a vendor outage, retries add a bounded share of calls, not a multiple.

DialNexa's in-process sandbox answers every list call 503 (a lasting fault); a read is safe to
repeat and a 503 is worth repeating, so each request would make ``attempts`` (3) calls. With a
budget of 20% and no floor, 100 requests make at most 120 calls; with the floor, a lone request
is still retried. The calls the vendor got are read from the fault queue (each faulted call uses
one of its count). The circuit is kept closed so that only the budget limits the calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.test_faults import NEVER_OPENS, connection, gateway_client, load_app, transport_control, upstream_of

REQUESTS = 100
LASTING = 1_000_000
OUTAGE = [{"kind": "status", "value": 503, "count": LASTING, "path": "/campaigns", "method": "GET"}]
NO_CACHE = {"Cache-Control": "no-cache"}


async def calls_for(tmp_path: Path, requests: int, retries: dict[str, Any]) -> int:
    """The vendor calls ``requests`` list requests make during a total outage."""
    app = load_app(tmp_path, [connection("sandbox", retries=retries, circuit=NEVER_OPENS)])
    control = transport_control(upstream_of(app))
    try:
        await control("POST", "/_sandbox/faults", OUTAGE)
        async with gateway_client(app) as client:
            for _ in range(requests):
                failed = await client.get("/v1/campaigns", headers=NO_CACHE)
                assert failed.status_code == 503, failed.text
        return LASTING - (await control("GET", "/_sandbox/faults", None))[0]["count"]
    finally:
        await app.aclose()


def retries(**budget: float) -> dict[str, Any]:
    return {"attempts": 3, "backoff_base_seconds": 0, "backoff_max_seconds": 0, **budget}


async def test_under_a_total_outage_retries_stay_within_the_budget(tmp_path: Path) -> None:
    calls = await calls_for(tmp_path, REQUESTS, retries(budget_ratio=0.2, budget_min_retries=0))
    assert REQUESTS < calls <= REQUESTS * 1.2, f"{calls} calls for {REQUESTS} requests"


async def test_without_a_budget_each_request_would_make_every_attempt(tmp_path: Path) -> None:
    """The same outage with a budget that never runs out: what the budget saves the vendor."""
    calls = await calls_for(tmp_path, REQUESTS, retries(budget_ratio=10, budget_min_retries=0))
    assert calls == REQUESTS * 3


async def test_the_floor_lets_a_lone_request_be_retried(tmp_path: Path) -> None:
    assert await calls_for(tmp_path, 1, retries(budget_ratio=0.2, budget_min_retries=5)) == 3
    assert await calls_for(tmp_path, 1, retries(budget_ratio=0.2, budget_min_retries=0)) == 1
