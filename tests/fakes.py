"""Fake vendors for tests: a scriptable Transport that records every request, and any ASGI app served on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
import uvicorn

STARTUP_SECONDS = 10
Vendor = TypeVar("Vendor")


@dataclass
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None

    def json(self) -> object:
        return orjson.loads(self.body or b"null")


Answer = tuple[int, dict[str, str], bytes]


def json_answer(status: int, body: object, headers: dict[str, str] | None = None) -> Answer:
    return status, {"content-type": "application/json", **(headers or {})}, orjson.dumps(body)


@dataclass
class FakeVendor:
    """Answers each request with ``handler(request)``; ``sent`` keeps what the gateway sent."""

    handler: Callable[[SentRequest], Answer]
    sent: list[SentRequest] = field(default_factory=list)

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        request = SentRequest(method, url, dict(headers), body)
        self.sent.append(request)
        return self.handler(request)

    async def close(self) -> None:
        return None


@dataclass
class Served(Generic[Vendor]):
    """A fake vendor (what it stores, what it received) and where it is served."""

    vendor: Vendor
    base_url: str


@contextlib.contextmanager
def served_on_loopback(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1, a free port, in a background thread; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_until_listening(port, server, thread)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)
        sock.close()
        assert not thread.is_alive(), "the fake upstream did not stop"


def _wait_until_listening(port: int, server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the fake upstream stopped while starting")
        if server.started:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"the fake upstream did not accept connections within {STARTUP_SECONDS} s")
