"""``WholeAnswers`` (gateway/cycle.py) against uvicorn itself: the same requests, the same app, both protocols.

Each test feeds the same bytes to uvicorn's ``HttpToolsProtocol`` and to ``GatewayProtocol`` (whose
cache-hit shortcut never answers here, so every request reaches the app through ``WholeAnswers``),
each on an in-memory transport that keeps every write apart, and compares what was written and
whether the connection was closed. Two promises are checked:

- an answer complete in one body message, with a Content-Length that matches it, is one write
  where uvicorn makes two, with exactly uvicorn's bytes, and the cycle ends as uvicorn ends it
  (keep-alive, ``connection: close``, the next pipelined request, a waiting ``receive``);
- anything else (a body in parts, no or a wrong Content-Length, a header uvicorn refuses, a HEAD,
  the app's own ``connection`` or ``transfer-encoding``, an access log, an app that fails) is
  uvicorn's answer byte for byte and write for write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.asgi import ANSWERS_KEY, Message, Receive, Scope, Send
from gateway.config import ServerSpec
from gateway.limits import STATE_KEY, ServerLimits
from gateway.protocol import GatewayProtocol
from tests.test_hit_shortcut import RecordingTransport

App = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

DEFAULT_HEADERS = [(b"date", b"Mon, 30 Nov 2026 02:00:00 GMT"), (b"server", b"uvicorn")]
GET = b"GET /a HTTP/1.1\r\nHost: g\r\n\r\n"


class Connection:
    """One protocol, uvicorn's or the gateway's, on its own recording transport."""

    def __init__(self, protocol_class: type[HttpToolsProtocol], app: App, app_state: dict[str, Any]) -> None:
        config = UvicornConfig(app=app, loop="asyncio", http="httptools", lifespan="off", log_config=None)
        server_state = ServerState()
        server_state.default_headers = list(DEFAULT_HEADERS)
        self.protocol = protocol_class(config, server_state, app_state, asyncio.get_running_loop())
        self.protocol.access_log = False  # as `gateway serve` runs (access_log=False), whatever pytest's logging
        self.transport = RecordingTransport()
        self.protocol.connection_made(self.transport)

    async def send(self, data: bytes) -> list[bytes]:
        """Feed ``data``, let the app's tasks (pipelined ones too) run out, and return the writes since."""
        before = len(self.transport.writes)
        self.protocol.data_received(data)
        for _ in range(100):
            await asyncio.sleep(0)
            if not self.protocol.tasks:
                return self.transport.writes[before:]
        raise AssertionError("the app did not finish")


class Pair:
    """The same app behind uvicorn's protocol and the gateway's, fed the same bytes."""

    def __init__(self, app: App) -> None:
        self.uvicorn = Connection(HttpToolsProtocol, app, {})
        no_hits = {STATE_KEY: ServerLimits(ServerSpec()), ANSWERS_KEY: lambda _scope: None}
        self.gateway = Connection(GatewayProtocol, app, no_hits)

    async def send(self, data: bytes) -> tuple[list[bytes], list[bytes]]:
        """The writes each protocol made for ``data``: uvicorn's, then the gateway's."""
        return await self.uvicorn.send(data), await self.gateway.send(data)

    @property
    def closed(self) -> tuple[bool, bool]:
        return self.uvicorn.transport.closing, self.gateway.transport.closing

    def close(self) -> None:
        for connection in (self.uvicorn, self.gateway):
            connection.protocol.connection_lost(None)


OpenPair = Callable[[App], Pair]


@pytest.fixture
def pair() -> Iterator[OpenPair]:
    """Open pairs for ``app``; all are closed (timers cancelled, limits released) after the test."""
    opened: list[Pair] = []

    def open_pair(app: App) -> Pair:
        opened.append(Pair(app))
        return opened[-1]

    yield open_pair
    for each in opened:
        each.close()


# --------------------------------------------------------------------------------------- the apps


def start(headers: Headers, status: int = 200) -> Message:
    return {"type": "http.response.start", "status": status, "headers": headers}


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def sized(data: bytes, *extra: tuple[bytes, bytes]) -> Headers:
    return [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(data)), *extra]


def answering(*messages: Message) -> App:
    """An app that sends ``messages``, whatever the request."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    return app


async def method_and_path(scope: Scope, receive: Receive, send: Send) -> None:
    """A whole answer naming the request, so answers can be told apart."""
    data = f"{scope['method']} {scope['path']}".encode()
    await send(start(sized(data)))
    await send(body(data))


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the request body to its end, then answers it back whole."""
    data, more = b"", True
    while more:
        message = await receive()
        data, more = data + message.get("body", b""), message.get("more_body", False)
    await send(start(sized(data)))
    await send(body(data))


# ------------------------------------------------------------------------------ whole answers


async def test_a_whole_answer_is_one_write_of_uvicorns_bytes_and_the_connection_goes_on(pair: OpenPair) -> None:
    connections = pair(method_and_path)
    for path in (b"/a", b"/b"):  # the second on the same connection: the first cycle ended
        uvicorn, gateway = await connections.send(b"GET %s HTTP/1.1\r\nHost: g\r\n\r\n" % path)
        assert len(uvicorn) == 2 and len(gateway) == 1
        assert gateway == [b"".join(uvicorn)]
        assert gateway[0].startswith(b"HTTP/1.1 200 OK\r\ndate: ") and gateway[0].endswith(b"\r\n\r\nGET " + path)
    assert connections.closed == (False, False)
    assert connections.gateway.protocol.server_state.total_requests == 2  # on_response ran for each answer
    assert connections.uvicorn.protocol.server_state.total_requests == 2


async def test_pipelined_requests_are_answered_in_order_one_write_each(pair: OpenPair) -> None:
    connections = pair(method_and_path)
    uvicorn, gateway = await connections.send(GET + b"GET /b HTTP/1.1\r\nHost: g\r\n\r\n")
    assert len(uvicorn) == 4 and len(gateway) == 2
    assert b"".join(gateway) == b"".join(uvicorn)
    assert gateway[0].endswith(b"GET /a") and gateway[1].endswith(b"GET /b")
    assert connections.closed == (False, False)


@pytest.mark.parametrize(
    "request_bytes",
    [b"GET /a HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n", b"GET /a HTTP/1.0\r\nHost: g\r\n\r\n"],
    ids=["connection-close", "http-1.0"],
)
async def test_a_request_not_kept_alive_gets_connection_close_and_is_closed(
    pair: OpenPair, request_bytes: bytes
) -> None:
    connections = pair(method_and_path)
    uvicorn, gateway = await connections.send(request_bytes)
    assert len(gateway) == 1 and gateway == [b"".join(uvicorn)]
    assert b"\r\nconnection: close\r\n" in gateway[0]
    assert connections.closed == (True, True)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /a HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /a HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    ],
    ids=["post", "expect-100-continue"],
)
async def test_an_app_that_reads_the_body_first_still_answers_in_one_write(
    pair: OpenPair, request_bytes: bytes
) -> None:
    connections = pair(echo)
    uvicorn, gateway = await connections.send(request_bytes)
    assert len(gateway) == len(uvicorn) - 1  # the 100 Continue, if asked for, is a write of its own in both
    assert b"".join(gateway) == b"".join(uvicorn) and gateway[-1].endswith(b"\r\n\r\nhello")


async def test_an_answer_before_an_expected_body_is_read_asks_for_no_body_after_it(pair: OpenPair) -> None:
    """Answered (say, refused) without reading a body the client holds back, no 100 Continue may follow."""
    after: list[Message] = []

    async def refuses_unread(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start(sized(b"no"), status=401))
        await send(body(b"no"))
        after.append(await receive())

    connections = pair(refuses_unread)
    request = b"POST /a HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    uvicorn, gateway = await connections.send(request)
    assert len(gateway) == 1 and gateway == [b"".join(uvicorn)]
    assert gateway[0].startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert after == [{"type": "http.disconnect"}] * 2


async def test_a_receive_waiting_while_the_answer_is_written_wakes_with_a_disconnect(pair: OpenPair) -> None:
    """As Starlette's listener for a disconnect does: the answer's end must wake it, as in uvicorn."""
    woken: list[Message] = []

    async def listening(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # the (empty) request body
        listener = asyncio.ensure_future(receive())
        await asyncio.sleep(0)  # the listener is waiting
        await send(start(sized(b"ok")))
        await send(body(b"ok"))
        woken.append(await listener)

    connections = pair(listening)
    uvicorn, gateway = await connections.send(GET)
    assert len(gateway) == 1 and gateway == [b"".join(uvicorn)]
    assert woken == [{"type": "http.disconnect"}] * 2


async def test_a_204_with_content_length_0_is_one_write_of_uvicorns_bytes(pair: OpenPair) -> None:
    connections = pair(answering(start([(b"content-length", b"0")], status=204), body(b"")))
    uvicorn, gateway = await connections.send(GET)
    assert uvicorn[1] == b"" and gateway == [b"".join(uvicorn)]
    assert gateway[0].startswith(b"HTTP/1.1 204 No Content\r\n") and gateway[0].endswith(b"content-length: 0\r\n\r\n")


# ------------------------------------------------------------------------------ uvicorn's path

HEAD = b"HEAD /a HTTP/1.1\r\nHost: g\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "messages", "closed"),
    [
        (GET, [start(sized(b"abc")), body(b"ab", more=True), body(b"c")], False),
        (GET, [start(sized(b"abc")), body(b"abc", more=True), body(b"")], False),
        (GET, [start([(b"content-type", b"text/plain")]), body(b"abc")], False),  # uvicorn: chunked
        (GET, [start(sized(b"abcde")), body(b"abc")], True),  # uvicorn raises in send, then closes
        (GET, [start(sized(b"ab")), body(b"abc")], True),
        (GET, [start(sized(b"abc", (b"x-note", b"a\x01b"))), body(b"abc")], True),  # refused: nothing written
        (GET, [start(sized(b"abc", (b"x note", b"a"))), body(b"abc")], True),
        (HEAD, [start(sized(b"abc")), body(b"abc")], False),  # uvicorn writes the head only
        (GET, [start(sized(b"abc", (b"connection", b"close"))), body(b"abc")], True),
        (GET, [start([(b"transfer-encoding", b"chunked")]), body(b"abc")], False),
        (GET, [start(sized(b"abc"), status=600), body(b"abc")], True),  # no status line for it: refused
        (GET, [start(sized(b"abc", (b"X-Note", b"a"))), body(b"abc")], False),  # uvicorn writes it lower-cased
        (GET, [start(sized(b"abc", (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"))), body(b"abc")], False),
    ],
    ids=[
        "body-in-parts",
        "last-part-empty",
        "no-content-length",
        "body-shorter-than-content-length",
        "body-longer-than-content-length",
        "control-byte-in-a-value",
        "space-in-a-name",
        "head",
        "app-says-connection-close",
        "app-says-transfer-encoding",
        "status-600",
        "name-not-lower-case",
        "a-name-twice",
    ],
)
async def test_anything_else_is_uvicorns_answer_write_for_write(
    pair: OpenPair, request_bytes: bytes, messages: list[Message], closed: bool
) -> None:
    connections = pair(answering(*messages))
    uvicorn, gateway = await connections.send(request_bytes)
    assert gateway == uvicorn
    assert connections.closed == (closed, closed)


async def test_headers_given_as_an_iterator_reach_uvicorn_whole(pair: OpenPair) -> None:
    """ASGI allows any iterable: read to decide, an iterator would reach uvicorn's send empty."""

    async def iterated_headers(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": iter([(b"content-type", b"text/plain")])})
        await send(body(b"abc"))

    connections = pair(iterated_headers)
    uvicorn, gateway = await connections.send(GET)
    assert gateway == uvicorn and b"\r\ncontent-type: text/plain\r\n" in uvicorn[0]


async def test_an_app_that_returns_a_value_is_judged_by_uvicorn(pair: OpenPair) -> None:
    """uvicorn closes the connection of an app that returns something: it still sees what was returned."""

    async def returns_a_value(scope: Scope, receive: Receive, send: Send) -> int:
        await send(start(sized(b"abc")))
        await send(body(b"abc"))
        return 1

    connections = pair(returns_a_value)  # type: ignore[arg-type]
    uvicorn, gateway = await connections.send(GET)
    assert gateway == [b"".join(uvicorn)]
    assert connections.closed == (True, True)


async def test_a_body_read_after_the_head_is_sent_asks_for_no_100_continue(pair: OpenPair) -> None:
    """uvicorn's send of a head ends the wait for 100-continue: a body read after it brings no 100."""

    async def reads_after_the_head(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start(sized(b"ok")))
        await receive()
        await send(body(b"ok"))

    connections = pair(reads_after_the_head)
    uvicorn, gateway = await connections.send(
        b"POST /a HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"
    )
    assert b"".join(gateway) == b"".join(uvicorn) and b"100 Continue" not in b"".join(gateway)
    assert len(gateway) == 1


async def test_with_uvicorns_access_log_on_the_answer_is_uvicorns_write_for_write(pair: OpenPair) -> None:
    connections = pair(method_and_path)
    for connection in (connections.uvicorn, connections.gateway):
        connection.protocol.access_log = True  # uvicorn's send logs at the head: the gateway leaves it to it
    uvicorn, gateway = await connections.send(GET)
    assert len(uvicorn) == 2 and gateway == uvicorn


async def fails_after_the_head(scope: Scope, receive: Receive, send: Send) -> None:
    await send(start(sized(b"abc")))
    raise RuntimeError("a bug after the head")


async def stops_after_the_head(scope: Scope, receive: Receive, send: Send) -> None:
    await send(start(sized(b"abc")))


@pytest.mark.parametrize("app", [fails_after_the_head, stops_after_the_head], ids=["raises", "returns"])
async def test_a_head_with_no_body_goes_out_as_uvicorn_writes_it_then_the_connection_closes(
    pair: OpenPair, app: App
) -> None:
    connections = pair(app)
    uvicorn, gateway = await connections.send(GET)
    assert gateway == uvicorn and len(uvicorn) == 1 and uvicorn[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert connections.closed == (True, True)


async def test_an_app_that_fails_before_answering_gets_uvicorns_500(pair: OpenPair) -> None:
    async def fails_at_once(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("a bug before the head")

    connections = pair(fails_at_once)
    uvicorn, gateway = await connections.send(GET)
    assert gateway == uvicorn and uvicorn[0].startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"".join(uvicorn).endswith(b"\r\n\r\nInternal Server Error")
    assert connections.closed == (True, True)
