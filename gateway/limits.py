"""What a client may hold of one worker: connections (in all and per address) and request bodies being received.

One ``ServerLimits`` per worker process, made by the app from ``server:`` in the config (and
updated on reload). The HTTP protocol (``gateway/protocol.py``) asks it whether to take each
connection; the app reads every request body through ``body_reader``, which bounds the time the
body may take and the bytes all bodies being received may hold at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable

from gateway.asgi import Message, Receive
from gateway.config import ServerSpec
from gateway.errors import RequestTimeout, ServerBusy

STATE_KEY = "gateway.limits"  # where the app leaves its ServerLimits in the lifespan state, for the protocol
RETRY_AFTER = "1"


class ServerLimits:
    def __init__(self, spec: ServerSpec, on_cut: Callable[[str], None] = lambda _reason: None) -> None:
        self.spec = spec
        self.on_cut = on_cut  # counts what the server answered early or closed, by reason
        self.connections = 0
        self.per_client: Counter[str] = Counter()
        self.body_bytes = 0

    def admit(self, client: str | None) -> bool:
        """Take a new connection from ``client``'s address, if both limits allow it (then ``release`` it)."""
        if self.connections >= self.spec.max_connections:
            return False
        if client is not None and self.per_client[client] >= self.spec.max_connections_per_client:
            return False
        self.connections += 1
        if client is not None:
            self.per_client[client] += 1
        return True

    def release(self, client: str | None) -> None:
        self.connections -= 1
        if client is not None:
            self.per_client[client] -= 1
            if not self.per_client[client]:
                del self.per_client[client]

    @contextlib.asynccontextmanager
    async def body_reader(self, receive: Receive) -> AsyncIterator[Receive]:
        """``receive`` for reading one request body: 408 once the body is late, 503 while too many bytes of
        bodies are being received. What it took counts until the block ends."""
        deadline = asyncio.get_running_loop().time() + self.spec.body_timeout_seconds
        taken = 0

        async def bounded() -> Message:
            nonlocal taken
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.spec.body_timeout_seconds:g} s",
                    headers={"Connection": "close"},
                ) from None
            size = len(message.get("body", b""))
            if self.body_bytes + size > self.spec.max_body_bytes_in_flight:
                # The connection stays open: the rest of the body is read and dropped (bounded by the
                # protocol's body timeout), so that the client, still sending, gets to read this answer.
                raise ServerBusy(
                    "the gateway is receiving as many request bodies as it takes at once; retry shortly",
                    headers={"Retry-After": RETRY_AFTER},
                )
            self.body_bytes += size
            taken += size
            return message

        try:
            yield bounded
        finally:
            self.body_bytes -= taken
