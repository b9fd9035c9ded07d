"""The HTTP/1.1 protocol `gateway serve` runs: uvicorn's httptools protocol, with the limits it lacks.

uvicorn times nothing before a request's head is complete and caps neither heads nor connections.
Here, with the worker's ``ServerLimits`` (``server:`` in the config, left in the lifespan state by
the app):

- a request's head (request line and headers) must be complete within ``header_timeout_seconds``
  of the connection opening (or of its first byte, for the next request on a kept-alive one): a
  partial head is answered 408 ``request_timeout``, a connection that sent nothing is closed;
- a head over ``MAX_HEAD_BYTES`` is answered 431 ``headers_too_large`` (httptools would buffer it all);
- a connection over ``max_connections`` or ``max_connections_per_client`` is answered 503
  ``server_busy`` with Retry-After as soon as its head has arrived, and closed;
- a body still arriving ``body_timeout_seconds`` (and a grace) after its head is cut: the app
  answers 408 to a late body it is reading, this catches one it is not;
- what the parser rejects is answered 400 ``bad_request`` (uvicorn's answer is plain text).

Every such answer is the error envelope, ends the connection, and counts in
``gateway_connections_cut_total{reason}``. After an answer the connection lingers for a moment
(``LINGER_SECONDS``), dropping what the client still sends: closed at once, a socket with unread
data resets, and the client could lose the answer before reading it.

And one shortcut: a plain GET (HTTP/1.1, kept alive, no body, not asking for a fresh answer with
``Cache-Control: no-cache``, nothing ahead of it on the connection) is first offered to the app's
``answer_from_memory``; a fresh cache hit is written at once, with no ASGI task or messages — the
same answer the app would give through ASGI. Every other request runs the app in uvicorn's cycle,
behind ``WholeAnswers`` (gateway/cycle.py), which writes a whole answer in one piece.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from gateway.asgi import ANSWERS_KEY, Answer, content_headers
from gateway.cycle import ASGIApp, WholeAnswers, answer_bytes
from gateway.errors import BadRequest, GatewayError, HeadersTooLarge, RequestTimeout, ServerBusy
from gateway.inbound import request_id, wants_fresh
from gateway.limits import RETRY_AFTER, STATE_KEY, ServerLimits

MAX_HEAD_BYTES = 64 * 1024
BODY_GRACE_SECONDS = 1.0  # the app's own 408 for a body it is reading comes first
LINGER_SECONDS = 1.0
BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})

log = logging.getLogger("gateway")


class GatewayProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ServerLimits = app_state[STATE_KEY]
        self.answers: Callable[[dict[str, Any]], Answer | None] | None = app_state.get(ANSWERS_KEY)
        self._address: str | None = None
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = False  # part of a request head has arrived, not all of it
        self._head_bytes = 0
        self._in_body = False  # the head is complete, the body is not
        self._ended_one = False  # a request ended within the data being parsed
        self._cut = False  # answered or closed by the limits: nothing more is parsed
        self._answered = False  # this request was answered at once (``_answer_at_once``): its events end here
        # Keep-alive after any answer: one timer per connection, re-armed only when it fires early,
        # instead of uvicorn's timer made and cancelled per answer. ``_idle_from`` is None while a
        # request is under way.
        self._idle_from: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else None
        self._admitted = self.limits.admit(self._address)
        self._arm(self.limits.spec.header_timeout_seconds, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._admitted:
            self._admitted = False
            self.limits.release(self._address)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._cut:
            return  # answered early: what the client still sends is dropped
        self._ended_one = False
        super().data_received(data)
        if self._cut or self.transport.is_closing():
            return
        if self._in_head and not self._ended_one:  # all of ``data`` belongs to the head
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                message = f"the request line and headers are larger than {MAX_HEAD_BYTES} bytes"
                self._answer(HeadersTooLarge(message), "head_too_large")
            elif self._timer is None:
                self._arm(self.limits.spec.header_timeout_seconds, self._head_late)
        elif self._in_body and self._timer is None:
            self._arm(self.limits.spec.body_timeout_seconds + BODY_GRACE_SECONDS, self._body_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0

    def on_headers_complete(self) -> None:
        if self._cut:
            return
        self._in_head, self._in_body = False, True
        self._disarm()
        if not self._admitted:
            spec = self.limits.spec
            message = (
                f"this gateway worker holds as many connections as it takes ({spec.max_connections} in all, "
                f"{spec.max_connections_per_client} per client address); retry shortly"
            )
            self._answer(ServerBusy(message, headers={"Retry-After": RETRY_AFTER}), "over_capacity")
            return
        self._answered = self._answer_at_once()
        if not self._answered:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not (self._cut or self._answered):
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._cut:
            return
        self._in_body, self._ended_one = False, True
        self._disarm()
        if self._answered:
            self._answered = False
        else:
            super().on_message_complete()

    def _answer_at_once(self) -> bool:
        """Offer a plain GET to the app's ``answer_from_memory``; write its answer, if any, as uvicorn would."""
        parser = self.parser
        if (
            self.answers is None
            or parser.get_method() != b"GET"
            or parser.get_http_version() != "1.1"
            or not parser.should_keep_alive()
            or parser.should_upgrade()
            or (self.cycle is not None and not self.cycle.response_complete)  # an answer is still being made
            or self.flow.write_paused  # the client is not reading: the full path waits for it
        ):
            return False
        for name, value in self.headers:  # a body, or a client asking for a fresh answer: the full path
            if name in BODY_HEADERS or (name == b"cache-control" and wants_fresh(value)):
                return False
        url = httptools.parse_url(self.url)
        path = url.path.decode("ascii")
        scope = {
            "path": urllib.parse.unquote(path) if "%" in path else path,
            "raw_path": url.path,
            "query_string": url.query or b"",
            "headers": self.headers,
        }
        try:
            answer = self.answers(scope)
        except Exception:  # a fault here must not fail the request: the full path answers it
            log.exception("the cache-hit shortcut failed; the request takes the full path")
            return False
        if answer is None:
            return False
        body, headers = answer
        self.transport.write(
            answer_bytes(200, [*self.server_state.default_headers, *content_headers(body), *headers], body)
        )
        self.server_state.total_requests += 1
        self._idle_since_now()
        return True

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGIApp) -> None:
        """Every request's app, with its answer written whole when it can be (gateway/cycle.py)."""
        super()._start_asgi_task(cycle, WholeAnswers(app, cycle))

    def on_response_complete(self) -> None:
        """As uvicorn's, but the keep-alive wait after the answer is kept by our one idle timer."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_since_now()

    def _idle_since_now(self) -> None:
        self._idle_from = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._idle_due)

    def _unset_keepalive_if_required(self) -> None:
        """Data came, or an answer ended: not idle. (uvicorn's own timer is never armed, as
        ``on_response_complete`` is ours; its cancel stays for any other place that arms it.)"""
        super()._unset_keepalive_if_required()
        self._idle_from = None

    def _idle_due(self) -> None:
        """Close after ``timeout_keep_alive`` of quiet since the last answer.

        Busy (a request under way), the timer lapses: the next answer arms it again. Quiet for less
        than the timeout, it waits for the rest.
        """
        self._idle_timer = None
        if self._idle_from is None:
            return
        rest = self._idle_from + self.timeout_keep_alive - self.loop.time()
        if rest > 0:
            self._idle_timer = self.loop.call_later(rest, self._idle_due)
        else:
            self.timeout_keep_alive_handler()

    def send_400_response(self, msg: str) -> None:
        self._answer(BadRequest("the request is not valid HTTP/1.1"), "bad_request")

    def _head_late(self) -> None:
        self._timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a pipelined head behind an answer still being made: close after it
        elif self._in_head:
            seconds = self.limits.spec.header_timeout_seconds
            self._answer(RequestTimeout(f"the request head did not arrive within {seconds:g} s"), "head_timeout")
        else:
            self._close("idle")

    def _body_late(self) -> None:
        self._timer = None
        if self._in_body:
            self._close("body_timeout")

    def _answer(self, error: GatewayError, reason: str) -> None:
        """The error envelope as the whole answer, then close (the rest of the request is never read)."""
        rid = request_id({"headers": self.headers or []})
        body = orjson.dumps(error.envelope(rid))
        headers = [
            *self.server_state.default_headers,
            *content_headers(body),
            (b"connection", b"close"),
            (b"x-request-id", rid.encode()),
            *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
        ]
        self.transport.write(answer_bytes(error.status, headers, body))
        self._cut = True
        self.limits.on_cut(reason)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(LINGER_SECONDS, self.transport.close)

    def _close(self, reason: str) -> None:
        self._cut = True
        self._disarm()
        self.limits.on_cut(reason)
        self.transport.close()

    def _arm(self, seconds: float, expired: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
