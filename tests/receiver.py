"""A tenant's webhook endpoint for the tests: a real HTTP server on 127.0.0.1, in a thread of the test.

It records every POST (headers, body, the status it answered) and answers the statuses it is told
to, in turn (``fail_first``), then 200. ``wait_until`` polls what it has recorded, bounded in time.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gateway.events import signing

WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)

    def verifies(self, secret: str) -> bool:
        """The Standard Webhooks check an endpoint makes (gateway/events/signing.py, as the README shows it)."""
        return signing.verify(secret, self.headers, self.body, time.time())


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    status = receiver._script.pop(0) if receiver._script else 200
                    receiver.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def fail_first(self, *statuses: int) -> None:
        """Answer these statuses to the next POSTs, in turn; 200 after them."""
        with self._lock:
            self._script = list(statuses)

    def delivered(self) -> list[Received]:
        """The POSTs it answered with a 2xx."""
        with self._lock:
            return [request for request in self.requests if 200 <= request.status < 300]

    def wait_until(self, ready: Callable[[Receiver], bool], seconds: float = WAIT_SECONDS, what: str = "it") -> None:
        deadline = time.monotonic() + seconds
        while not ready(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not happen within {seconds} s; received: {self.requests}")
            time.sleep(0.05)

    @contextlib.contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)
