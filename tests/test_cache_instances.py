"""The Redis cache across real processes: two `gateway serve` instances, one Redis, one upstream.

The upstream is `gateway sandbox --vendor generic` (DialNexa's API) on a free port; its
``GET /_sandbox/calls`` counts the calls per operation, which proves that a HIT made none.
Each gateway runs `gateway serve --config <tmp config> --port <free>` with
``cache.backend: redis://127.0.0.1:<port>/0``. Every wait is bounded, and every process is
stopped in ``finally`` (SIGTERM, wait, SIGKILL).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TEST_KEY, RedisServer, write_config
from tests.processes import sandbox, serving

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
NEW_CAMPAIGN = {"name": "Shared", "agent_id": "agt_shared1", "from_number": "+14155550100"}


def _sandbox(tmp_path: Path) -> AbstractContextManager[str]:
    return sandbox(tmp_path / "sandbox.log")


@contextmanager
def _gateway(tmp_path: Path, config: Path, name: str) -> Iterator[str]:
    with serving(config, log_path=tmp_path / f"gateway-{name}.log") as (base_url, _):
        yield base_url


def _config(tmp_path: Path, upstream: str, redis_url: str) -> Path:
    # Not the one-letter key "x": the gateway masks a credential wherever it turns up in a vendor's
    # answer, so "x" would turn every sandbox id holding an x (about 3 in 10) into "...[redacted]...".
    credentials = {"api_key": "sandbox-test-credential-0001"}
    connection = {"name": "nexa", "vendor": "generic", "base_url": upstream, "credentials": credentials}
    return write_config(tmp_path, [connection], cache={"backend": redis_url})


@contextmanager
def _stack(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[httpx.Client, httpx.Client, httpx.Client]]:
    """The sandbox and gateways A and B on one Redis; yields clients for the sandbox, A and B."""
    with ExitStack() as stack:
        upstream = stack.enter_context(_sandbox(tmp_path))
        config = _config(tmp_path, upstream, redis_server.url)
        a_url = stack.enter_context(_gateway(tmp_path, config, "a"))
        b_url = stack.enter_context(_gateway(tmp_path, config, "b"))
        sandbox = stack.enter_context(httpx.Client(base_url=upstream, timeout=10))
        a = stack.enter_context(httpx.Client(base_url=a_url, headers=AUTH, timeout=10))
        b = stack.enter_context(httpx.Client(base_url=b_url, headers=AUTH, timeout=10))
        yield sandbox, a, b


def _calls(sandbox: httpx.Client) -> dict[str, int]:
    answer = sandbox.get("/_sandbox/calls")
    assert answer.status_code == 200, answer.text
    return answer.json()


def _read(client: httpx.Client, path: str, expect: str) -> httpx.Response:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text)
    assert response.headers.get("x-cache") == expect, (str(client.base_url), path, dict(response.headers))
    assert ("age" in response.headers) == (expect == "HIT"), dict(response.headers)
    return response


def _write(client: httpx.Client, method: str, path: str, status: int, **kwargs: Any) -> httpx.Response:
    response = client.request(method, path, **kwargs)
    assert response.status_code == status, (str(client.base_url), method, path, response.text)
    return response


def test_two_instances_share_entries_and_invalidations(tmp_path: Path, redis_server: RedisServer) -> None:
    with _stack(tmp_path, redis_server) as (sandbox, a, b):
        campaign_id = _write(a, "POST", "/v1/campaigns", 201, json=NEW_CAMPAIGN).json()["id"]
        path = f"/v1/campaigns/{campaign_id}"
        assert _write(a, "POST", f"{path}/resume", 200).json()["status"] == "active"

        on_a = _read(a, path, "MISS")
        assert on_a.json()["status"] == "active"
        before = _calls(sandbox)
        on_b = _read(b, path, "HIT")
        assert on_b.json() == on_a.json()
        assert _calls(sandbox) == before, "a HIT on B must not reach the upstream"

        listed_a = _read(a, "/v1/campaigns", "MISS")
        assert campaign_id in {c["id"] for c in listed_a.json()["data"]}
        assert _read(b, "/v1/campaigns", "HIT").json() == listed_a.json()
        assert _calls(sandbox)["list"] == before.get("list", 0) + 1

        paused = _write(b, "POST", f"{path}/pause", 200)
        assert paused.json()["status"] == "paused"
        gets = _calls(sandbox)["get"]
        fresh = _read(a, path, "MISS")
        assert fresh.json()["status"] == "paused"
        assert _calls(sandbox)["get"] == gets + 1
        listed = _read(a, "/v1/campaigns", "MISS").json()["data"]
        assert next(c for c in listed if c["id"] == campaign_id)["status"] == "paused"
        assert _read(b, path, "HIT").json() == fresh.json()

        # a create through A drops B's view of the list pages too
        second_id = _write(a, "POST", "/v1/campaigns", 201, json={**NEW_CAMPAIGN, "name": "Second"}).json()["id"]
        assert second_id in {c["id"] for c in _read(b, "/v1/campaigns", "MISS").json()["data"]}

        for client in (a, b):
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["cache"]["backend"] == "redis" and ready.json()["cache"]["ok"] is True


def test_killing_redis_mid_run_keeps_requests_succeeding(tmp_path: Path, redis_server: RedisServer) -> None:
    with _stack(tmp_path, redis_server) as (sandbox, a, b):
        campaign_id = _write(a, "POST", "/v1/campaigns", 201, json=NEW_CAMPAIGN).json()["id"]
        path = f"/v1/campaigns/{campaign_id}"
        _read(a, path, "MISS")
        _read(b, path, "HIT")

        redis_server.stop()
        started = time.monotonic()
        gets = _calls(sandbox)["get"]
        for round_ in range(3):
            for client in (a, b):
                got = _read(client, path, "MISS")
                assert got.json()["id"] == campaign_id
                _read(client, "/v1/campaigns", "MISS")
                _read(client, f"{path}/recipients", "MISS")
            assert _calls(sandbox)["get"] == gets + 2 * (round_ + 1), "every read during the outage goes upstream"
        assert _write(a, "POST", f"{path}/resume", 200).json()["status"] == "active"
        assert _write(b, "POST", f"{path}/pause", 200).json()["status"] == "paused"
        assert _write(a, "PATCH", path, 200, json={"name": "Renamed in the outage"}).json()["name"] == (
            "Renamed in the outage"
        )
        recipients = {"recipients": [{"phone_number": "+14155550123", "name": "Ann"}]}
        assert _write(b, "POST", f"{path}/recipients", 200, json=recipients).json()["accepted"] == 1
        _write(a, "POST", "/v1/campaigns", 201, json={**NEW_CAMPAIGN, "name": "Made in the outage"})
        for client in (a, b):
            fresh = _read(client, path, "MISS").json()
            assert (fresh["status"], fresh["name"]) == ("paused", "Renamed in the outage")
            degraded = client.get("/readyz")
            assert degraded.status_code == 503, degraded.text
            assert degraded.json()["status"] == "degraded"
            assert degraded.json()["cache"]["backend"] == "redis"
            assert degraded.json()["cache"]["ok"] is False
        assert time.monotonic() - started < 30, "an unreachable Redis must not stall the gateways"

        redis_server.start()
        deadline = time.monotonic() + 10
        for client in (a, b):
            while (ready := client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, f"/readyz stayed {ready.status_code}: {ready.text}"
                time.sleep(0.1)
            assert ready.json()["cache"]["ok"] is True

        # Nothing written during the outage is hidden by an entry from before it.
        for client in (a, b):
            fresh = client.get(path)
            assert fresh.status_code == 200 and fresh.headers["x-cache"] in ("MISS", "HIT")
            assert (fresh.json()["status"], fresh.json()["name"]) == ("paused", "Renamed in the outage")
        # And the shared cache works again: a miss on A is a hit on B, a write on B is seen by A.
        # (A campaign made after the outage: the invalidations queued during it name the first one.)
        later = _write(a, "POST", "/v1/campaigns", 201, json={**NEW_CAMPAIGN, "name": "After"}).json()["id"]
        later_path = f"/v1/campaigns/{later}"
        _write(a, "POST", f"{later_path}/resume", 200)
        recovered = _read(a, later_path, "MISS")
        assert recovered.json()["status"] == "active"
        gets = _calls(sandbox)["get"]
        assert _read(b, later_path, "HIT").json() == recovered.json()
        assert _calls(sandbox)["get"] == gets
        _write(b, "POST", f"{later_path}/pause", 200)
        assert _read(a, later_path, "MISS").json()["status"] == "paused"

    for name in ("a", "b"):
        log = (tmp_path / f"gateway-{name}.log").read_text()
        assert log.count("cache: redis unreachable") == 1, log  # once per interval, not per request
        assert "redis reachable again" in log, log
