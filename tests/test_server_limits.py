"""Hostile clients against a real `gateway serve` process: slow heads, stalled bodies, too many connections.

Each test starts `gateway serve` on a free loopback port with small limits under ``server:`` (half
a second to send a head or a body, a few connections), opens raw sockets to it, and checks what
each gets: the error envelope, or a closed connection. The hostile sockets come from 127.0.0.1;
an ordinary client from 127.0.0.2 (another address, so per-address limits do not touch it) keeps
being answered meanwhile. Every socket and process is closed; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import TEST_KEY, free_port, write_config
from tests.processes import serving, start_gateway, stop, wait_for_http, wait_until

HEAD_SECONDS = BODY_SECONDS = 0.5
LIMITS = {
    "header_timeout_seconds": HEAD_SECONDS,
    "body_timeout_seconds": BODY_SECONDS,
    "max_connections": 8,
    "max_connections_per_client": 4,
}
WAIT = 10.0  # bounds every read: far longer than any timeout here
CLOCK = 0.01  # libuv's loop clock counts whole milliseconds, and is read once per loop turn
OTHER = "127.0.0.2"
NEXA = {"name": "nexa", "vendor": "generic", "base_url": "sandbox", "credentials": {"api_key": "server-limits-key"}}
CAMPAIGN = orjson.dumps({"name": "Limits", "agent_id": "agt_limits", "from_number": "+14155550100"})
AUTH = f"Authorization: Bearer {TEST_KEY}\r\n".encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        return orjson.loads(self.body)["error"]


class Raw:
    """One client socket, written to and read from byte by byte as a test needs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opened: float) -> None:
        self.reader, self.writer = reader, writer
        self.opened = opened  # before connecting: the server's clock for this connection starts later
        self.ended = 0.0  # when the last answer (or the close) came

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> Answer | None:
        """The next answer, or None when the server closed the connection without one."""
        async with asyncio.timeout(WAIT):
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                assert not getattr(exc, "partial", b""), f"a partial answer: {exc!r}"
                return None
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
            body = await self.reader.readexactly(int(headers.get("content-length", 0)))
        self.ended = time.monotonic()
        return Answer(int(lines[0].split()[1]), headers, body)

    async def closed(self) -> bool:
        """True once the server has closed its end (bounded by WAIT)."""
        async with asyncio.timeout(WAIT):
            try:
                closed = await self.reader.read(1) == b""
            except ConnectionError:
                closed = True
        self.ended = self.ended or time.monotonic()
        return closed

    def close(self) -> None:
        self.writer.close()


@dataclass
class Gateway:
    port: int
    opened: list[Raw]

    async def connect(self, address: str = "127.0.0.1") -> Raw:
        opened = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(address, 0))
        raw = Raw(reader, writer, opened)
        self.opened.append(raw)
        return raw

    async def get(self, path: str = "/healthz", address: str = OTHER) -> Answer:
        """One request on a connection of its own, closed after the answer."""
        raw = await self.connect(address)
        await raw.send(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n".encode() + AUTH + b"\r\n")
        answer = await raw.answer()
        assert answer is not None
        assert await raw.closed()
        return answer


@contextlib.contextmanager
def served(tmp_path: Path, **limits: Any) -> Iterator[int]:
    config = write_config(tmp_path, [NEXA], server={**LIMITS, **limits})
    with serving(config, log_path=tmp_path / "serve.log") as (base_url, _log):
        yield int(base_url.rsplit(":", 1)[1])


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    with served(tmp_path) as port:
        opened: list[Raw] = []
        try:
            yield Gateway(port, opened)
        finally:
            for raw in opened:
                raw.close()


async def keep_asking(gateway: Gateway, until: asyncio.Event) -> list[int]:
    """What an ordinary client from another address gets, every 50 ms, until ``until`` is set."""
    statuses = []
    while not until.is_set():
        statuses.append((await gateway.get()).status)
        await asyncio.sleep(0.05)
    return statuses


def create_head(length: int) -> bytes:
    head = f"POST /v1/campaigns HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    return head.encode() + AUTH + b"\r\n"


def assert_envelope(answer: Answer | None, status: int, code: str, closes: bool = True) -> dict[str, Any]:
    assert answer is not None, "the server closed the connection without an answer"
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    assert (answer.headers.get("connection") == "close") is closes, answer.headers
    error = answer.error()
    assert error["code"] == code, error
    assert error["request_id"] == answer.headers["x-request-id"]
    return error


async def test_a_slowloris_head_is_answered_408_while_other_clients_are_served(gateway: Gateway) -> None:
    slow = [await gateway.connect() for _ in range(3)]
    done = asyncio.Event()
    others = asyncio.create_task(keep_asking(gateway, done))

    async def trickle(raw: Raw) -> None:  # a byte every 0.1 s: the head is never complete
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            if raw.reader.at_eof():
                return
            with contextlib.suppress(ConnectionError):
                await raw.send(bytes([byte]))
            await asyncio.sleep(0.1)

    senders = [asyncio.create_task(trickle(raw)) for raw in slow]
    answers = [await raw.answer() for raw in slow]
    cut_after = [raw.ended - raw.opened for raw in slow]
    done.set()
    statuses = await others
    for sender in senders:
        sender.cancel()
    for answer in answers:
        assert "did not arrive within 0.5 s" in assert_envelope(answer, 408, "request_timeout")["message"]
    assert all(HEAD_SECONDS - CLOCK <= seconds < WAIT for seconds in cut_after), cut_after
    assert all([await raw.closed() for raw in slow])
    assert statuses and set(statuses) == {200}, statuses
    metrics = (await gateway.get("/metrics")).body.decode()
    assert 'gateway_connections_cut_total{reason="head_timeout"} 3.0' in metrics, metrics


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(gateway: Gateway) -> None:
    idle = await gateway.connect()
    assert await idle.closed()
    assert idle.ended - idle.opened >= HEAD_SECONDS - CLOCK


async def test_a_stalled_body_is_answered_408_and_never_reaches_the_vendor(gateway: Gateway) -> None:
    stalled = await gateway.connect()
    await stalled.send(create_head(len(CAMPAIGN)) + CAMPAIGN[:-1])  # all but the last byte
    done = asyncio.Event()
    others = asyncio.create_task(keep_asking(gateway, done))
    answer = await stalled.answer()
    done.set()
    error = assert_envelope(answer, 408, "request_timeout")
    assert "body did not arrive within 0.5 s" in error["message"]
    assert stalled.ended - stalled.opened >= BODY_SECONDS - CLOCK
    assert await stalled.closed()
    assert set(await others) == {200}
    calls = await gateway.get("/_sandbox/calls")
    assert (calls.status, orjson.loads(calls.body).get("create")) == (200, None)


async def test_the_connection_limits_answer_503_with_retry_after(gateway: Gateway) -> None:
    """Four connections per address, eight in all: the next is refused once its head arrives, and an
    address below its share is still served until the total is reached; a connection closed frees its place."""
    mine = [await gateway.connect() for _ in range(LIMITS["max_connections_per_client"])]
    for raw in mine:  # kept alive: each holds its place
        await raw.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await raw.answer()).status == 200  # type: ignore[union-attr]

    refused = await gateway.get(address="127.0.0.1")
    error = assert_envelope(refused, 503, "server_busy")
    assert refused.headers["retry-after"] == "1"
    assert "4 per client address" in error["message"]

    others = [await gateway.connect("127.0.0.3") for _ in range(4)]  # the total is now 8
    for raw in others:
        await raw.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await raw.answer()).status == 200  # type: ignore[union-attr]
    assert_envelope(await gateway.get(address="127.0.0.4"), 503, "server_busy")

    mine[0].close()
    async with asyncio.timeout(WAIT):  # once the server has seen the close, there is room again
        while (await gateway.get(address="127.0.0.4")).status != 200:
            await asyncio.sleep(0.05)


async def test_what_the_parser_refuses_is_answered_in_the_envelope(gateway: Gateway) -> None:
    control = await gateway.connect(OTHER)
    await control.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Bad: a\x01b\r\n\r\n")
    assert_envelope(await control.answer(), 400, "bad_request")

    huge = await gateway.connect(OTHER)
    with contextlib.suppress(ConnectionError):  # the server may close while the rest is being sent
        await huge.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X-Big: " + b"b" * 100_000)
    assert_envelope(await huge.answer(), 431, "headers_too_large")


async def test_bodies_being_received_are_bounded_in_memory(tmp_path: Path) -> None:
    """1 MiB of bodies at once: a second body that would pass it is refused, the first is not."""
    with served(tmp_path, body_timeout_seconds=5, max_body_bytes_in_flight=1024 * 1024) as port:
        gateway = Gateway(port, [])
        try:
            size = 1024 * 1024
            first = await gateway.connect(OTHER)
            await first.send(create_head(size) + b" " * (700 * 1024))
            await asyncio.sleep(0.3)  # the gateway has read it
            second = await gateway.connect("127.0.0.3")
            with contextlib.suppress(ConnectionError):
                await second.send(create_head(size) + b" " * (700 * 1024))
            error = assert_envelope(await second.answer(), 503, "server_busy", closes=False)
            assert "request bodies" in error["message"]
            assert second.reader.at_eof() is False, "kept open: the rest of its body is read and dropped"
            assert not first.reader.at_eof(), "the first body is still being received"
            await first.send(b" " * (size - 700 * 1024))
            answer = await first.answer()  # all of it came: validated (spaces are no JSON)
            assert answer is not None and answer.status == 422, answer
        finally:
            for raw in gateway.opened:
                raw.close()


def test_serve_stops_within_its_graceful_timeout(tmp_path: Path) -> None:
    """A request held at the vendor far longer than ``--graceful-timeout``: on SIGTERM the process ends
    once the graceful timeout is up, not when the request would have, and the request is answered 503."""
    config = write_config(tmp_path, [NEXA])
    port, log = free_port(), tmp_path / "serve.log"
    process = start_gateway(
        "serve", "--config", str(config), "--port", str(port), "--graceful-timeout", "1", log_path=log
    )
    base_url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    try:
        wait_for_http(base_url + "/healthz", process, log)
        held = {"kind": "latency", "value": 60, "path": "/campaigns", "method": "GET"}
        assert httpx.post(base_url + "/_sandbox/faults", json=[held], headers=headers).status_code == 200
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.get, base_url + "/v1/campaigns", headers=headers, timeout=WAIT)
            wait_until(lambda: httpx.get(base_url + "/_sandbox/faults", headers=headers).json() == [], process, log)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=WAIT)  # the fault holds the request for 60 s
            answer = pending.result(timeout=WAIT)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "server_busy"
        assert "shutting down" in answer.json()["error"]["message"]
    finally:
        stop(process)
