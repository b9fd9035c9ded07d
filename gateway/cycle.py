"""A whole answer written in one piece, between the app and uvicorn's request-response cycle.

uvicorn writes an answer's head when the app sends ``http.response.start`` and its body when the
app sends ``http.response.body``: two socket writes, and two regular-expression checks per header.
``WholeAnswers`` holds the head until the body comes. An answer complete in that one body message,
with a Content-Length that matches it, goes out in a single write, and the cycle ends as uvicorn
ends it: keep-alive or close, then the next pipelined request. Measured (bench/compare.py, real
misses at c=16): ~2% more misses per second, ~8 µs less CPU per answer.

Anything else (a body in parts, no or another Content-Length, a ``connection`` or
``transfer-encoding`` header, a header name twice or not in lower case, a HEAD, a client that is
not reading, a byte the expressions refuse) goes to uvicorn's ``send`` unchanged, the held head
first, so uvicorn answers, or refuses, it exactly as before. What differs is when: a head goes out
with its body, so an app that sent a head and then waited would show nothing until its body (the
gateway's answers are all made whole before they are sent), and a head uvicorn refuses raises at
the body's ``send``, not at the head's.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE, RequestResponseCycle

from gateway.asgi import Message, Receive, Scope, Send

ASGIApp = Any  # what uvicorn loaded: the app behind its middleware
_ACTED_ON = frozenset({b"connection", b"transfer-encoding"})  # headers whose meaning uvicorn's send acts on
# The bytes uvicorn's header expressions refuse (each is one character class), to delete and count:
# a C pass over all names, and one over all values, instead of two regular expressions per header.
_REFUSED_IN_NAMES = bytes(b for b in range(256) if HEADER_RE.match(bytes([b])))
_REFUSED_IN_VALUES = bytes(b for b in range(256) if HEADER_VALUE_RE.match(bytes([b])))


class WholeAnswers:
    """One request's app, as its cycle runs it, with ``send`` joining head and body (see the module)."""

    __slots__ = ("app", "cycle", "held")

    def __init__(self, app: ASGIApp, cycle: RequestResponseCycle) -> None:
        self.app, self.cycle = app, cycle
        self.held: Message | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        try:
            return await self.app(scope, receive, self.send)  # what it returns, uvicorn judges
        finally:
            if self.held is not None:  # a head and no body: uvicorn's send, as it had it before
                await self.cycle.send(self.held)  # type: ignore[arg-type]

    async def send(self, message: Message) -> None:
        cycle = self.cycle
        if self.held is None and message["type"] == "http.response.start" and not cycle.response_started:
            self.held = message
            cycle.waiting_for_100_continue = False  # as uvicorn's send does for a start: no 100 after an answer began
            return
        held, self.held = self.held, None
        if held is not None:
            if message["type"] == "http.response.body" and self._write_whole(held, message):
                return
            await cycle.send(held)  # type: ignore[arg-type]
        await cycle.send(message)  # type: ignore[arg-type]

    def _write_whole(self, start: Message, message: Message) -> bool:
        """Head and body in one write, the cycle ended as uvicorn ends it; False for uvicorn's path."""
        cycle = self.cycle
        if message.get("more_body", False) or cycle.disconnected or cycle.flow.write_paused:
            return False
        status = start["status"]
        given = start.get("headers", ())
        if status not in STATUS_LINE or cycle.scope["method"] == "HEAD" or cycle.access_log:
            return False
        if not isinstance(given, list | tuple):  # an iterator, read here, would reach uvicorn empty
            return False
        body = message.get("body", b"")
        headers = [*cycle.default_headers, *given]
        fields = dict(headers)
        if len(fields) < len(headers) or not _ACTED_ON.isdisjoint(fields):  # a name twice, or one uvicorn acts on
            return False
        if fields.get(b"content-length") != str(len(body)).encode():
            return False
        names, values = b"".join(fields), b"".join(fields.values())
        if names != names.lower() or _refused(names, _REFUSED_IN_NAMES) or _refused(values, _REFUSED_IN_VALUES):
            return False
        if not cycle.keep_alive:
            headers.append((b"connection", b"close"))  # last, where uvicorn's send adds it
        answer = answer_bytes(status, headers, body)
        cycle.response_started = cycle.response_complete = True
        cycle.transport.write(answer)
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        cycle.on_response()
        return True


def _refused(text: bytes, refused: bytes) -> bool:
    return len(text.translate(None, refused)) < len(text)


def answer_bytes(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """An HTTP/1.1 answer as uvicorn writes it: status line, ``name: value`` lines, blank line, body."""
    head = b"\r\n".join(map(b": ".join, headers))
    return b"".join([STATUS_LINE[status], head, b"\r\n\r\n" if head else b"\r\n", body])
