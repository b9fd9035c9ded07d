"""`gateway serve --workers 2`: each sandbox connection is one vendor account, whichever worker answers.

The serve process runs the sandboxes once for all of its workers (gateway/sandboxing.py). Reads
go over fresh connections (whichever worker accepts one answers it) and over a keep-alive
connection pinned to each worker (its owner read from /proc, as tests/test_reload.py does), so
that both workers are seen to answer rather than assumed to. Every read sends ``no-cache``: each
worker has a cache of its own, and the point is what the sandbox holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import DEMO_KEY, MAPPINGS, ROOT
from tests.processes import wait_until
from tests.test_reload import Pinned, Served, serve
from tests.test_roundtrip import CASES, DIALNEXA, create, make_pausable, offered_operations, request

READS = 20
RELOAD_SECONDS = 10
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
NO_CACHE = {"Cache-Control": "no-cache"}
JSON = {"Content-Type": "application/json"}
NEXA = {**AUTH, "X-Connection": DIALNEXA.connection}
FAULT = {"kind": "status", "value": 500, "path": "/campaigns", "method": "GET"}
# A live connection next to the sandboxes; nothing listens on port 9 (discard), and nothing is sent there.
LIVE = {"name": "live", "vendor": "dialnexa", "base_url": "http://127.0.0.1:9", "credentials": {"api_key": "k"}}


@asynccontextmanager
async def fresh_connections(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    """A client that opens a new connection for every request (none is kept alive)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=served.base_url, headers=AUTH, limits=limits, timeout=10) as client:
        yield client


def one_per_worker(served: Served) -> list[Pinned]:
    return [connections[0] for connections in served.pin(per_worker=1).values()]


async def read_everywhere(
    client: httpx.AsyncClient, workers: list[Pinned], connection: str, campaign_id: str
) -> dict[str, Any]:
    """READS reads over fresh connections, then one on each worker: 200 and the same campaign every time."""
    path, headers = f"/v1/campaigns/{campaign_id}", {"X-Connection": connection, **NO_CACHE}
    bodies = []
    for _ in range(READS):
        answer = await client.get(path, headers=headers)
        assert answer.status_code == 200, (connection, answer.text)
        bodies.append(answer.json())
    for worker in workers:
        answer = worker.request("GET", path, {**AUTH, **headers})
        assert answer.status == 200, (connection, worker.worker, answer.body)
        bodies.append(answer.json())
    assert all(body == bodies[0] for body in bodies), (connection, bodies)
    return bodies[0]


def shipped_config(directory: Path, *extra_connections: dict[str, Any]) -> Path:
    """The shipped config.yaml, with its maps where they are, plus ``extra_connections``."""
    document = yaml.safe_load((ROOT / "config.yaml").read_text())
    document["mappings_dir"] = str(MAPPINGS)
    document["tenants"][0]["connections"] += list(extra_connections)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


async def test_a_campaign_reads_the_same_on_every_worker_for_every_sandbox_connection(tmp_path: Path) -> None:
    """Create on each of the four connections, read back; pause where the vendor offers it, read back again.

    Afterwards the serve process has left nothing behind in its temp folder (the sandboxes' socket
    folder included) and exited by itself on SIGTERM.
    """
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with serve(tmp_path, ROOT / "config.yaml", env={"TMPDIR": str(scratch)}) as served:
        workers = one_per_worker(served)
        async with fresh_connections(served) as client:
            offered = await offered_operations(client)
            for case in CASES:
                created = await create(client, case, f"workers {case.vendor}")
                campaign = await read_everywhere(client, workers, case.connection, created["id"])
                assert (campaign["id"], campaign["name"]) == (created["id"], created["name"])
                if "pause" not in offered[case.connection]:
                    continue
                await make_pausable(client, case, created)
                paused = await request(client, case.connection, "pause", created["id"])
                assert paused.status_code == 200, paused.text
                after = await read_everywhere(client, workers, case.connection, created["id"])
                assert after["status"] == "paused", after
    assert served.process.returncode == 0, served.stderr()
    assert list(scratch.iterdir()) == []


async def test_a_sandbox_connection_added_by_a_reload_is_shared_by_every_worker(tmp_path: Path) -> None:
    """The new connection is one account on every worker; the accounts already there keep their campaigns."""
    added = dataclasses.replace(DIALNEXA, connection="dialnexa-2")
    with serve(tmp_path, shipped_config(tmp_path)) as served:
        workers = one_per_worker(served)
        async with fresh_connections(served) as client:
            before = await create(client, DIALNEXA, "before the reload")
            connection = {"name": added.connection, "vendor": "dialnexa", "base_url": "sandbox"}
            shipped_config(tmp_path, {**connection, "credentials": {"api_key": "sandbox-key"}})

            def every_worker_has_it() -> bool:
                listed = [worker.request("GET", "/v1/connections", AUTH).json()["data"] for worker in workers]
                return all(added.connection in {c["name"] for c in data} for data in listed)

            wait_until(every_worker_has_it, served.process, served.stderr_path, RELOAD_SECONDS, "the reload")
            created = await create(client, added, "after the reload")
            await read_everywhere(client, workers, added.connection, created["id"])
            await read_everywhere(client, workers, DIALNEXA.connection, before["id"])


def test_faults_and_call_counts_through_the_gateway_are_one_per_connection_on_every_worker(tmp_path: Path) -> None:
    """Counts read on either worker agree; a fault queued through one worker is taken by a call on the other."""
    with serve(tmp_path, shipped_config(tmp_path, LIVE)) as served:
        first, second = one_per_worker(served)
        created = first.request("POST", "/v1/campaigns", {**NEXA, **JSON}, DIALNEXA.create("faults"))
        assert created.status == 201, created.body
        path = f"/v1/campaigns/{created.json()['id']}"
        for worker in (first, second, first, second):
            assert worker.request("GET", path, {**NEXA, **NO_CACHE}).status == 200
        for worker in (first, second):
            calls = worker.request("GET", "/_sandbox/calls", NEXA)
            # four reads, and the get the create answers with
            assert (calls.status, calls.json()) == (200, {"create": 1, "get": 5}), worker.worker

        queued = first.request("POST", "/_sandbox/faults", {**NEXA, **JSON}, [FAULT])
        assert (queued.status, queued.json()) == (200, [FAULT])
        assert second.request("GET", "/_sandbox/faults", NEXA).json() == [FAULT]
        faulted = second.request("GET", path, {**NEXA, **NO_CACHE})
        assert faulted.status == 502, faulted.body
        assert (faulted.json()["error"]["code"], faulted.json()["error"]["upstream_status"]) == ("upstream_error", 500)
        assert first.request("GET", "/_sandbox/faults", NEXA).json() == []
        assert first.request("GET", path, {**NEXA, **NO_CACHE}).status == 200

        second.request("POST", "/_sandbox/faults", {**NEXA, **JSON}, [FAULT, FAULT])
        assert first.request("DELETE", "/_sandbox/faults", NEXA).json() == []
        assert second.request("GET", "/_sandbox/faults", NEXA).json() == []
        for worker in (first, second):
            assert worker.request("GET", "/_sandbox/calls", NEXA).json() == {"create": 1, "get": 6}

            live = worker.request("GET", "/_sandbox/calls", {**AUTH, "X-Connection": "live"})
            assert live.status == 404, live.body
            error = live.json()["error"]
            assert (error["code"], error["request_id"]) == ("not_found", live.headers["x-request-id"])
