"""The protocol's shortcut for cache hits: a plain GET the app can answer from memory is written at
once, with no ASGI task; everything else takes the full path. Both must give the same answer.

The protocol tests drive ``GatewayProtocol`` in process with a recording transport; the rest run a
real `gateway serve` (bounded waits, stopped afterwards) and compare the shortcut's answers, access
lines, rate limits and tenants with the full path's.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from uvicorn.config import Config as UvicornConfig
from uvicorn.server import ServerState

from gateway.asgi import ANSWERS_KEY
from gateway.config import ServerSpec
from gateway.keys import key_hash
from gateway.limits import STATE_KEY, ServerLimits
from gateway.protocol import GatewayProtocol
from tests.conftest import MAPPINGS
from tests.test_telemetry import serving, wait_for_line

BODY = b'{"id":"c-1"}'
STAMP = [(b"x-request-id", b"r-1"), (b"x-cache", b"HIT")]


class RecordingTransport(asyncio.Transport):
    """What the protocol writes, each write kept apart; nothing goes anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False

    @property
    def written(self) -> bytes:
        return b"".join(self.writes)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Harness:
    """A GatewayProtocol on a recording transport, with an ASGI app that counts its calls."""

    def __init__(self, answers: Any) -> None:
        self.app_calls: list[str] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            self.app_calls.append(f"{scope['method']} {scope['path']}")
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
            await send({"type": "http.response.body", "body": b"full"})

        config = UvicornConfig(app=app, loop="asyncio", http="httptools", lifespan="off")
        state = {STATE_KEY: ServerLimits(ServerSpec()), ANSWERS_KEY: answers}
        server_state = ServerState()
        server_state.default_headers = [(b"date", b"Mon, 30 Nov 2026 02:00:00 GMT"), (b"server", b"uvicorn")]
        self.protocol = GatewayProtocol(config, server_state, state, asyncio.get_running_loop())
        self.transport = RecordingTransport()
        self.protocol.connection_made(self.transport)

    async def send(self, data: bytes) -> bytes:
        """Feed ``data``, let any ASGI task run, and return what was written since."""
        before = len(self.transport.written)
        self.protocol.data_received(data)
        for _ in range(20):
            await asyncio.sleep(0)
        return self.transport.written[before:]

    def close(self) -> None:
        self.protocol.connection_lost(None)


def hit_everything(scope: dict[str, Any]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    return BODY, STAMP


async def test_a_plain_get_is_answered_at_once_with_no_asgi_task() -> None:
    asked: list[dict[str, Any]] = []

    def answers(scope: dict[str, Any]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        asked.append(scope)
        return hit_everything(scope)

    harness = Harness(answers)
    harness.protocol.data_received(
        b"GET /v1/campaigns/a%2Fb?x=1 HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer k\r\n\r\n"
    )
    written = harness.transport.written  # written before any task could run: nothing was awaited
    head, _, body = written.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"content-type: application/json" in lines and b"content-length: %d" % len(BODY) in lines
    assert b"x-request-id: r-1" in lines and b"x-cache: HIT" in lines
    assert lines[1:3] == [b"date: Mon, 30 Nov 2026 02:00:00 GMT", b"server: uvicorn"]  # as on the full path
    assert body == BODY
    assert not harness.protocol.tasks and harness.app_calls == []
    assert [(s["path"], s["raw_path"], s["query_string"]) for s in asked] == [
        ("/v1/campaigns/a/b", b"/v1/campaigns/a%2Fb", b"x=1")
    ]
    assert (b"authorization", b"Bearer k") in asked[0]["headers"]
    harness.close()


async def test_two_pipelined_gets_are_answered_in_order() -> None:
    bodies = iter([b"first", b"second"])
    harness = Harness(lambda scope: (next(bodies), []))
    written = await harness.send(b"GET /a HTTP/1.1\r\nHost: g\r\n\r\nGET /b HTTP/1.1\r\nHost: g\r\n\r\n")
    answers = written.split(b"HTTP/1.1 200 OK")
    assert [a.rpartition(b"\r\n\r\n")[2] for a in answers[1:]] == [b"first", b"second"]
    harness.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/campaigns HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\n\r\n",
        b"HEAD /v1/campaigns HTTP/1.1\r\nHost: g\r\n\r\n",
        b"GET /v1/campaigns HTTP/1.0\r\nHost: g\r\n\r\n",
        b"GET /v1/campaigns HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n",
        b"GET /v1/campaigns HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /v1/campaigns HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["post", "head", "http-1.0", "connection-close", "get-with-body", "get-chunked"],
)
async def test_anything_but_a_plain_kept_alive_get_takes_the_full_path(request_bytes: bytes) -> None:
    asked: list[dict[str, Any]] = []
    harness = Harness(lambda scope: asked.append(scope) or hit_everything(scope))
    written = await harness.send(request_bytes)
    assert asked == [] and len(harness.app_calls) == 1, written
    harness.close()


async def test_no_answer_or_a_fault_in_the_shortcut_falls_back_to_the_full_path() -> None:
    def broken(_scope: dict[str, Any]) -> None:
        raise RuntimeError("a bug")

    for answers in (lambda _scope: None, broken):
        harness = Harness(answers)
        written = await harness.send(b"GET /v1/campaigns HTTP/1.1\r\nHost: g\r\n\r\n")
        assert harness.app_calls == ["GET /v1/campaigns"]
        assert written.startswith(b"HTTP/1.1 200 OK") and written.endswith(b"full")
        harness.close()


async def test_a_get_asking_for_a_fresh_answer_is_never_offered_to_memory() -> None:
    """``Cache-Control: no-cache`` (any case, among other directives): the full path, with no lookup first."""
    asked: list[str] = []

    def answers(scope: dict[str, Any]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        asked.append(scope["path"])
        return hit_everything(scope)

    harness = Harness(answers)
    written = await harness.send(b"GET /fresh HTTP/1.1\r\nHost: g\r\nCache-Control: max-age=0, No-Cache\r\n\r\n")
    assert asked == [] and harness.app_calls == ["GET /fresh"] and written.endswith(b"full")
    written = await harness.send(b"GET /cached HTTP/1.1\r\nHost: g\r\nCache-Control: max-age=60\r\n\r\n")
    assert asked == ["/cached"] and harness.app_calls == ["GET /fresh"] and written.endswith(BODY)
    harness.close()


async def test_a_get_behind_an_answer_in_progress_waits_its_turn() -> None:
    """Pipelined behind a request the app is still answering, a hit must not overtake it."""
    release = asyncio.Event()
    order: list[str] = []

    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        order.append(scope["path"])
        if scope["path"] == "/slow":
            await release.wait()
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    harness = Harness(lambda scope: None if scope["path"] == "/slow" else (b"hit", []))
    harness.protocol.app = slow_app
    first = await harness.send(b"GET /slow HTTP/1.1\r\nHost: g\r\n\r\nGET /fast HTTP/1.1\r\nHost: g\r\n\r\n")
    assert first == b""  # nothing may be written before the slow answer
    release.set()
    written = await harness.send(b"")
    assert written.index(b"/slow") < written.rindex(b"\r\n\r\n")
    bodies = [part.rpartition(b"\r\n\r\n")[2] for part in written.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"/slow", b"/fast"]
    harness.close()


PLAIN_GET = b"GET /v1/campaigns/c-1 HTTP/1.1\r\nHost: g\r\n\r\n"


async def test_a_connection_answered_at_once_closes_after_the_keep_alive_timeout_of_quiet() -> None:
    harness = Harness(hit_everything)
    harness.protocol.timeout_keep_alive = 1.0
    for _ in range(4):  # 1.6 s in all, never 1 s quiet: the first answer's timer must not close it
        assert (await harness.send(PLAIN_GET)).startswith(b"HTTP/1.1 200 OK")
        await asyncio.sleep(0.4)
        assert not harness.transport.closing
    await asyncio.sleep(1.5)
    assert harness.transport.closing
    harness.close()


async def test_a_request_under_way_when_the_quiet_timer_fires_keeps_its_connection() -> None:
    """A hit, then a full-path request that outlasts the keep-alive timeout: not closed under it."""
    release = asyncio.Event()

    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"slow"})

    harness = Harness(lambda scope: None if scope["path"] == "/slow" else (b"hit", []))
    harness.protocol.app = slow_app
    harness.protocol.timeout_keep_alive = 0.5
    assert (await harness.send(PLAIN_GET)).startswith(b"HTTP/1.1 200 OK")
    await harness.send(b"GET /slow HTTP/1.1\r\nHost: g\r\n\r\n")
    await asyncio.sleep(1.0)  # the hit's timer came due while /slow was under way
    assert not harness.transport.closing
    release.set()
    assert (await harness.send(b"")).endswith(b"slow")
    await asyncio.sleep(1.0)  # then the idle timer, armed again by that answer, closes the quiet connection
    assert harness.transport.closing
    harness.close()


async def test_a_connection_answered_by_the_full_path_closes_after_the_keep_alive_timeout_of_quiet() -> None:
    harness = Harness(lambda scope: None)  # nothing is a hit: every answer is the app's
    harness.protocol.timeout_keep_alive = 1.0
    for _ in range(4):  # 1.6 s in all, never 1 s quiet: the first answer's timer must not close it
        assert (await harness.send(PLAIN_GET)).endswith(b"full")
        await asyncio.sleep(0.4)
        assert not harness.transport.closing
    assert harness.app_calls == ["GET /v1/campaigns/c-1"] * 4
    await asyncio.sleep(1.5)
    assert harness.transport.closing
    harness.close()


# ------------------------------------------------------------------------------------ a real serve

KEY_A, KEY_B = "cgw_shortcut_tenant_a_key_0000000000000001", "cgw_shortcut_tenant_b_key_0000000000000002"
LIMITED = "cgw_shortcut_tenant_a_limited_000000000000003"


def two_tenants(tmp_path: Path, keys_of_a: list[dict[str, Any]]) -> Path:
    """Tenants a and b, each with a voiso connection to the in-process sandbox."""
    connection = {
        "name": "voiso",
        "vendor": "voiso",
        "base_url": "sandbox",
        "credentials": {"api_key": "sandbox-key"},
        "params": {"cluster_id": "demo", "team": "demo-team"},
    }
    document = {
        "mappings_dir": str(MAPPINGS),
        "cache": {"backend": "memory", "ttl_seconds": 300},
        "tenants": [
            {"id": "a", "keys": keys_of_a, "default_connection": "voiso", "connections": [connection]},
            {
                "id": "b",
                "keys": [{"id": "b-key", "hash": key_hash(KEY_B)}],
                "default_connection": "voiso",
                "connections": [connection],
            },
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def keys_of_a() -> list[dict[str, Any]]:
    return [
        {"id": "a-key", "hash": key_hash(KEY_A)},
        {"id": "a-limited", "hash": key_hash(LIMITED), "rate_limit": {"requests_per_minute": 6, "burst": 3}},
    ]


def get(base_url: str, key: str, *, close: bool = False, path: str = "/v1/campaigns") -> http.client.HTTPResponse:
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": f"Bearer {key}"} | ({"Connection": "close"} if close else {})
    connection.request("GET", path, headers=headers)
    answer = connection.getresponse()
    answer.body = answer.read()  # type: ignore[attr-defined]
    connection.close()
    return answer


def test_a_hit_reads_the_same_through_the_shortcut_and_the_full_path(tmp_path: Path) -> None:
    with serving(tmp_path, two_tenants(tmp_path, keys_of_a())) as (base_url, log_path):
        miss = get(base_url, KEY_A)
        shortcut = get(base_url, KEY_A)  # kept alive: the shortcut
        full = get(base_url, KEY_A, close=True)  # Connection: close: the full path
        ids = [answer.getheader("x-request-id") for answer in (miss, shortcut, full)]
        lines = [json.loads(wait_for_line(log_path, lambda text, rid=rid: f'"{rid}"' in text)) for rid in ids]
    assert [a.getheader("x-cache") for a in (miss, shortcut, full)] == ["MISS", "HIT", "HIT"]
    assert shortcut.body == full.body == miss.body  # type: ignore[attr-defined]

    def names(answer: http.client.HTTPResponse) -> list[str]:
        return [name.lower() for name, _ in answer.getheaders() if name.lower() != "connection"]

    assert names(shortcut) == names(full), (shortcut.getheaders(), full.getheaders())
    for name in ("content-type", "content-length", "age", "server"):
        assert shortcut.getheader(name) == full.getheader(name), name
    assert shortcut.getheader("server-timing").startswith("upstream;dur=0.000, gateway;dur=")
    for line in lines[1:]:  # one access line each, the same fields
        assert {k: line[k] for k in ("status", "tenant", "key", "connection", "operation", "cache")} == {
            "status": 200,
            "tenant": "a",
            "key": "a-key",
            "connection": "voiso",
            "operation": "list",
            "cache": "HIT",
        }
    assert lines[1].keys() == lines[2].keys()


def test_hits_through_the_shortcut_count_against_the_rate_limit_and_stay_per_tenant(tmp_path: Path) -> None:
    with serving(tmp_path, two_tenants(tmp_path, keys_of_a())) as (base_url, _log):
        assert get(base_url, KEY_A).getheader("x-cache") == "MISS"
        statuses = [get(base_url, LIMITED) for _ in range(4)]  # burst 3: the fourth is refused
        other_tenant = get(base_url, KEY_B)
        unknown = get(base_url, "cgw_not_a_key_at_all_00000000000000000000")
    assert [a.status for a in statuses] == [200, 200, 200, 429]
    assert [a.getheader("x-cache") for a in statuses[:3]] == ["HIT"] * 3
    assert [a.getheader("ratelimit-remaining") for a in statuses[:3]] == ["2", "1", "0"]
    assert statuses[3].getheader("retry-after") is not None
    assert json.loads(statuses[3].body)["error"]["code"] == "rate_limited"  # type: ignore[attr-defined]
    # tenant b's same path is its own entry: a miss, never tenant a's cached answer
    assert (other_tenant.status, other_tenant.getheader("x-cache")) == (200, "MISS")
    assert unknown.status == 401


def test_a_key_removed_by_a_reload_is_refused_by_the_shortcut_at_once(tmp_path: Path) -> None:
    config = two_tenants(tmp_path, keys_of_a())
    with serving(tmp_path, config) as (base_url, log_path):
        get(base_url, KEY_A)
        assert get(base_url, KEY_A).getheader("x-cache") == "HIT"
        document = yaml.safe_load(config.read_text())
        document["tenants"][0]["keys"] = [k for k in keys_of_a() if k["id"] != "a-key"]
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        os.kill(_server_pid(log_path), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (answer := get(base_url, KEY_A)).status != 401:
            assert answer.getheader("x-cache") == "HIT", answer.status
            assert time.monotonic() < deadline, "the removed key still reads from the cache"
            time.sleep(0.1)
        assert get(base_url, LIMITED).getheader("x-cache") == "HIT"  # the tenant's cache itself is kept


def _server_pid(log_path: Path) -> int:
    line = wait_for_line(log_path, lambda text: "Started server process" in text)
    return int(line.rsplit("[", 1)[1].split("]", 1)[0])


def test_a_client_that_pipelines_thousands_of_hits_and_reads_late_gets_every_answer(tmp_path: Path) -> None:
    """Once the socket is full the shortcut stands aside (the full path waits for the client), in order."""
    with serving(tmp_path, two_tenants(tmp_path, keys_of_a())) as (base_url, _log):
        get(base_url, KEY_A)
        host, port = base_url.removeprefix("http://").split(":")
        request = f"GET /v1/campaigns HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {KEY_A}\r\n\r\n".encode()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(request * 2000)
            time.sleep(1)
            # the gateway is still serving others meanwhile
            assert get(base_url, KEY_A).status == 200
            received = b""
            sock.settimeout(5)
            while received.count(b"HTTP/1.1 200 OK") < 2000:
                chunk = sock.recv(65536)
                assert chunk, f"the connection closed after {received.count(b'HTTP/1.1 200 OK')} answers"
                received += chunk
        assert received.count(b"x-cache: HIT") == 2000
