"""The circuit breaker, per connection, against DialNexa's in-process sandbox and its fault injector.

Most tests: two connections to the sandbox (``nexa`` and ``nexa2``, each its own sandbox and
breaker) with a small breaker: it opens when at least half of the last calls failed, after at
least 4 calls, and stays open 0.3 s. A vendor 500 is not retried (each request is one call), so
the number of calls the breaker has seen is the number of requests made. Whether a call reached
the vendor is read from the fault queue (``GET /_sandbox/faults``) and the sandbox's
``/_sandbox/calls``. The last tests: a window of one second after 10 000 good calls, an answer the
map cannot read, and the default settings on a clock the test moves.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import GatewayApp
from gateway.config import CircuitSpec
from gateway.mapping import UpstreamRequest
from gateway.resilience import CircuitBreaker
from gateway.upstream import Upstream
from tests.fakes import FakeVendor, json_answer
from tests.test_faults import (
    CAMPAIGN,
    LASTING,
    NAME,
    TIMEOUTS,
    Control,
    connection,
    gateway_client,
    load_app,
    transport_control,
    upstream_of,
)

OTHER = "nexa2"
OPEN_SECONDS = 0.3
MIN_REQUESTS = 4
CIRCUIT = {"failure_ratio": 0.5, "min_requests": MIN_REQUESTS, "window_seconds": 30, "open_seconds": OPEN_SECONDS}
AT_ONCE = 0.2  # seconds: a refusal by an open circuit waits for nothing
PROBE_DELAY = 0.2
NO_CACHE = {"Cache-Control": "no-cache"}


def fault(kind: str, value: Any, method: str, path: str = "/campaigns", count: int = LASTING) -> dict[str, Any]:
    return {"kind": kind, "value": value, "count": count, "path": path, "method": method}


@dataclass
class Breaker:
    app: GatewayApp
    client: httpx.AsyncClient
    upstream: Upstream
    control: Control

    async def inject(self, *faults: dict[str, Any]) -> None:
        await self.control("POST", "/_sandbox/faults", list(faults))

    async def pending(self) -> list[int]:
        return [f["count"] for f in await self.control("GET", "/_sandbox/faults", None)]

    async def clear(self) -> None:
        await self.control("DELETE", "/_sandbox/faults", None)

    async def calls(self, operation: str) -> int:
        return (await self.control("GET", "/_sandbox/calls", None)).get(operation, 0)

    async def circuits(self) -> dict[str, str]:
        ready = await self.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        return ready.json()["circuits"]

    async def list(self) -> httpx.Response:
        return await self.client.get("/v1/campaigns", headers=NO_CACHE)

    async def open(self, kind: str = "status", value: Any = 500, upstream_status: int = 500) -> None:
        """A run of failed list calls (vendor 500s by default, each a 502): closed while fewer than
        min_requests calls were seen, then open; each reached the vendor once."""
        await self.inject(fault(kind, value, "GET"))
        for number in range(1, MIN_REQUESTS + 1):
            failed = await self.list()
            assert failed.status_code == 502, failed.text
            assert failed.json()["error"]["upstream_status"] == upstream_status
            expected = "open" if number == MIN_REQUESTS else "closed"
            assert (await self.circuits())[f"t1/{NAME}"] == expected, f"after {number} failed calls"
        assert await self.pending() == [LASTING - MIN_REQUESTS]


@pytest.fixture
async def breaker(tmp_path: Path) -> AsyncIterator[Breaker]:
    connections = [connection("sandbox", name=name, circuit=CIRCUIT) for name in (NAME, OTHER)]
    app = load_app(tmp_path, connections)
    upstream = upstream_of(app)
    try:
        async with gateway_client(app) as client:
            yield Breaker(app, client, upstream, transport_control(upstream))
    finally:
        await app.aclose()


def assert_refused(response: httpx.Response, elapsed: float, open_seconds: float = OPEN_SECONDS) -> None:
    """503 upstream_unavailable with a Retry-After, at once."""
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable", error
    assert "circuit open" in error["message"], error
    assert "upstream_status" not in error, "no vendor was called"
    retry_after = response.headers.get("retry-after", "")
    assert retry_after.isdigit(), dict(response.headers)
    assert 1 <= int(retry_after) <= max(1, math.ceil(open_seconds)), retry_after
    assert elapsed < AT_ONCE, f"the refusal took {elapsed:.2f} s"


async def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def test_a_run_of_5xx_opens_the_circuit_and_writes_are_refused_without_a_call(breaker: Breaker) -> None:
    assert (await breaker.circuits())[f"t1/{NAME}"] == "closed"
    await breaker.open()
    creates = await breaker.calls("create")

    await breaker.clear()
    await breaker.inject(fault("status", 500, "POST"))
    response, elapsed = await timed(breaker.client.post("/v1/campaigns", json=CAMPAIGN))
    assert_refused(response, elapsed)
    assert await breaker.pending() == [LASTING], "the vendor was not called"
    assert await breaker.calls("create") == creates

    circuits = await breaker.circuits()
    assert circuits == {f"t1/{NAME}": "open", f"t1/{OTHER}": "closed"}, "one breaker per connection"
    other = await breaker.client.post("/v1/campaigns", json=CAMPAIGN, headers={"X-Connection": OTHER})
    assert other.status_code == 201, other.text

    metrics = await breaker.client.get("/metrics")
    assert metrics.status_code == 200
    gauges = [line for line in metrics.text.splitlines() if line.startswith("gateway_circuit_open{")]
    assert any(f'"t1/{NAME}"' in line and line.endswith(" 1.0") for line in gauges), gauges
    assert any(f'"t1/{OTHER}"' in line and line.endswith(" 0.0") for line in gauges), gauges


async def test_an_open_circuit_refuses_a_read_at_once_without_a_call(breaker: Breaker) -> None:
    """A read is retried on a 503; the breaker's own refusal must still come at once, calling no vendor
    (neither waiting out its Retry-After nor turning into the probe)."""
    await breaker.open()
    pending = await breaker.pending()
    response, elapsed = await timed(breaker.list())
    called = await breaker.pending() != pending
    assert (response.status_code, elapsed < AT_ONCE, called) == (503, True, False), (
        f"expected 503 at once without a vendor call; got {response.status_code} after {elapsed:.2f} s, "
        f"vendor called: {called}: {response.text}"
    )
    assert_refused(response, elapsed)


async def test_after_open_seconds_one_probe_passes_and_its_success_closes(breaker: Breaker) -> None:
    await breaker.open()
    await breaker.clear()
    await asyncio.sleep(OPEN_SECONDS + 0.05)
    assert (await breaker.circuits())[f"t1/{NAME}"] == "half_open"

    # The probe: slow (but within the read timeout), so that another request arrives while it is out.
    assert TIMEOUTS["read"] > PROBE_DELAY
    await breaker.inject(fault("latency", PROBE_DELAY, "GET", count=1))
    lists, creates = await breaker.calls("list"), await breaker.calls("create")
    probe = asyncio.create_task(breaker.list())
    await asyncio.sleep(PROBE_DELAY / 4)
    assert not probe.done()
    response, elapsed = await timed(breaker.client.post("/v1/campaigns", json=CAMPAIGN))
    assert_refused(response, elapsed)
    assert await breaker.calls("create") == creates, "only the probe goes through while half open"

    passed = await asyncio.wait_for(probe, 5)
    assert passed.status_code == 200, passed.text
    assert await breaker.calls("list") == lists + 1
    assert (await breaker.circuits())[f"t1/{NAME}"] == "closed"

    created = await breaker.client.post("/v1/campaigns", json=CAMPAIGN)
    assert created.status_code == 201, created.text
    assert await breaker.calls("create") == creates + 1


async def test_a_failed_probe_opens_the_circuit_again(breaker: Breaker) -> None:
    await breaker.open()
    await asyncio.sleep(OPEN_SECONDS + 0.05)
    assert (await breaker.circuits())[f"t1/{NAME}"] == "half_open"
    pending = await breaker.pending()

    probe = await breaker.list()
    assert probe.status_code == 502, probe.text
    assert await breaker.pending() == [pending[0] - 1], "the probe called the vendor"
    assert (await breaker.circuits())[f"t1/{NAME}"] == "open"

    response, elapsed = await timed(breaker.client.post("/v1/campaigns", json=CAMPAIGN))
    assert_refused(response, elapsed)

    await breaker.clear()
    await asyncio.sleep(OPEN_SECONDS + 0.05)
    assert (await breaker.list()).status_code == 200
    assert (await breaker.circuits())[f"t1/{NAME}"] == "closed"


async def test_resets_count_as_failures_but_vendor_4xx_do_not(breaker: Breaker) -> None:
    unknown = "/v1/campaigns/cmp_000000000000"
    for _ in range(2 * MIN_REQUESTS):
        refused = await breaker.client.get(unknown, headers=NO_CACHE)
        assert refused.status_code == 404, refused.text
    assert (await breaker.circuits())[f"t1/{NAME}"] == "closed", "a vendor saying no is a healthy vendor"

    await breaker.inject(fault("reset", None, "POST"))
    for _ in range(MIN_REQUESTS):
        failed = await breaker.client.post("/v1/campaigns", json=CAMPAIGN)
        assert failed.status_code == 503, failed.text
    # 2 * MIN_REQUESTS healthy calls and MIN_REQUESTS failures: a third, below the ratio
    assert (await breaker.circuits())[f"t1/{NAME}"] == "closed"
    for _ in range(MIN_REQUESTS):
        failed = await breaker.client.post("/v1/campaigns", json=CAMPAIGN)
        assert failed.status_code == 503, failed.text
    assert (await breaker.circuits())[f"t1/{NAME}"] == "open", "half of the calls failed"


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
async def test_a_2xx_that_is_not_json_or_cut_short_counts_as_a_failure(breaker: Breaker, kind: str) -> None:
    await breaker.open(kind, None, upstream_status=200)


async def test_a_2xx_in_a_shape_the_map_cannot_read_counts_as_a_failure(make_client) -> None:  # type: ignore[no-untyped-def]
    vendor = FakeVendor(lambda _request: json_answer(200, ["not", "a", "campaign"]))
    nexa = {"name": NAME, "vendor": "generic", "base_url": "https://vendor.test", "credentials": {"api_key": "k"}}
    async with make_client([{**nexa, "circuit": CIRCUIT}], lambda _c: vendor) as client:
        for _ in range(MIN_REQUESTS):
            failed = await client.get("/v1/campaigns/cmp_1", headers=NO_CACHE)
            assert failed.status_code == 502, failed.text
            assert "shape the map cannot read" in failed.json()["error"]["message"]
        refused = await client.get("/v1/campaigns/cmp_1", headers=NO_CACHE)
    assert refused.status_code == 503 and "circuit open" in refused.json()["error"]["message"], refused.text
    assert len(vendor.sent) == MIN_REQUESTS


async def test_half_open_lets_exactly_one_of_many_concurrent_calls_through(breaker: Breaker) -> None:
    await breaker.open()
    await asyncio.sleep(OPEN_SECONDS + 0.05)
    pending = await breaker.pending()
    answers = await asyncio.gather(*(breaker.list() for _ in range(10)))
    assert sorted(a.status_code for a in answers) == [502] + [503] * 9, [a.text for a in answers]
    assert await breaker.pending() == [pending[0] - 1], "one probe reached the vendor"
    assert (await breaker.circuits())[f"t1/{NAME}"] == "open", "the failed probe opened it again"


WINDOW = 1.0
LONG_OPEN = 30
HEALTHY_CALLS = 10_000


async def test_after_ten_thousand_healthy_calls_a_vendor_failing_every_call_opens_it_within_the_window(
    tmp_path: Path,
) -> None:
    """The past does not outvote the present: calls older than ``window_seconds`` no longer count.

    10 000 good calls, then every call fails: the circuit is open once the good ones have left the
    window (a generous bound on that time only keeps the test from running on), and from then on
    the vendor gets no call at all.
    """
    circuit = {**CIRCUIT, "window_seconds": WINDOW, "open_seconds": LONG_OPEN}
    app = load_app(tmp_path, [connection("sandbox", circuit=circuit, retries={"attempts": 1})])
    upstream = upstream_of(app)
    control = transport_control(upstream)
    try:
        async with gateway_client(app) as client:
            for _ in range(HEALTHY_CALLS):
                await upstream.send(UpstreamRequest("GET", "/campaigns", {}), lambda status, _answer: status)
            assert (await control("GET", "/_sandbox/calls", None))["list"] == HEALTHY_CALLS
            assert upstream.breaker.state == "closed"

            await control("POST", "/_sandbox/faults", [fault("status", 503, "GET", count=1_000_000)])
            started = time.monotonic()
            while upstream.breaker.state == "closed":
                failed = await client.get("/v1/campaigns", headers=NO_CACHE)
                assert (failed.status_code, failed.json()["error"]["upstream_status"]) == (503, 503), failed.text
                assert time.monotonic() - started < 3 * WINDOW, "still closed long after the good calls left the window"
            failing_calls = 1_000_000 - (await control("GET", "/_sandbox/faults", None))[0]["count"]
            assert failing_calls >= MIN_REQUESTS

            for _ in range(20):
                response, elapsed = await timed(client.get("/v1/campaigns", headers=NO_CACHE))
                assert_refused(response, elapsed, LONG_OPEN)
            left = (await control("GET", "/_sandbox/faults", None))[0]["count"]
            assert 1_000_000 - left == failing_calls, "no call reached the vendor while the circuit was open"
    finally:
        await app.aclose()


def test_with_the_defaults_a_vendor_failing_after_ten_thousand_good_calls_opens_it_within_the_window() -> None:
    """On a clock the test moves: 1 000 good calls a second for 10 s, then every call fails at that rate."""
    spec = CircuitSpec()
    now = 0.0
    breaker = CircuitBreaker(spec, NAME, clock=lambda: now)
    for call in range(HEALTHY_CALLS):
        now = call / 1000
        breaker.after_call(False)
    failing_since = now = HEALTHY_CALLS / 1000
    while breaker.state == "closed" and now - failing_since <= spec.window_seconds:
        breaker.after_call(True)
        now += 1 / 1000
    assert breaker.state == "open", f"still closed after {spec.window_seconds} s of failures"
    assert now - failing_since <= spec.window_seconds * spec.failure_ratio + spec.window_seconds / 10
