"""How the gateway reaches its simulated vendors (``base_url: sandbox``): one account per connection.

An account (``sandboxes.hub``) is kept for as long as the gateway runs, across config reloads, and
holds everything its sandbox does: ids, statuses, pending faults, call counts. In one process the
hub runs in it (httpx's ASGI transport, no socket). With several workers, ``gateway serve`` runs
one hub for all of them (``shared_sandboxes``: a thread of the serve process, on a Unix socket in a
private per-run folder named to the workers in ``$GATEWAY_SANDBOX_SOCKET``), so what a sandbox
does never depends on the worker a request lands on. Accounts are memory only: they end with the
process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping

import httpx
import uvicorn

from gateway.config import Connection
from gateway.transport import AiohttpTransport, HttpxTransport, Transport
from sandboxes.hub import ACCOUNT_HEADER, SandboxHub, account_name

SOCKET_ENV = "GATEWAY_SANDBOX_SOCKET"
START_SECONDS = 10.0
STOP_SECONDS = 5.0
HUB_THREAD = "sandbox-hub"
log = logging.getLogger("gateway.sandboxes")


class SandboxLink:
    """Makes the transport of each sandbox connection: to a hub in this process, or to the one at ``socket_path``."""

    def __init__(self, socket_path: str | None = None) -> None:
        self.socket_path = socket_path
        self.hub = SandboxHub() if socket_path is None else None

    @classmethod
    def from_environment(cls) -> SandboxLink:
        """The hub ``gateway serve`` shares among its workers, if it runs one; else a hub of this process's own."""
        return cls(os.environ.get(SOCKET_ENV) or None)

    def transport(self, tenant_id: str, connection: Connection) -> Transport:
        timeouts, limit = connection.timeouts, connection.max_response_bytes
        if self.hub is not None:
            inner: Transport = HttpxTransport(httpx.ASGITransport(app=self.hub), timeouts, limit)
        else:
            inner = AiohttpTransport(timeouts, limit, unix_socket=self.socket_path)
        return _Account(inner, account_name(tenant_id, connection.name, connection.map.sandbox or ""))


class _Account:
    """A transport whose every request names its sandbox account."""

    def __init__(self, inner: Transport, name: str) -> None:
        self._inner = inner
        self._name = name

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        return await self._inner.send(method, url, {**headers, ACCOUNT_HEADER: self._name}, body)

    async def close(self) -> None:
        await self._inner.close()


@contextlib.contextmanager
def shared_sandboxes() -> Iterator[None]:
    """Serve one hub for every worker until the block ends, its socket named in ``$GATEWAY_SANDBOX_SOCKET``.

    The hub is a uvicorn server in a thread of this process (the workers' supervisor, mostly idle).
    Its folder is made 0700, so only this user can reach the socket; it is removed on the way out.
    """
    folder = tempfile.mkdtemp(prefix="gateway-sandboxes-")
    path = os.path.join(folder, "hub.sock")
    config = uvicorn.Config(SandboxHub(), uds=path, lifespan="off", access_log=False, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=HUB_THREAD, daemon=True)
    quiet = _QuietThread(HUB_THREAD)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(quiet)
    thread.start()
    try:
        _wait_until_started(server, thread)
        os.environ[SOCKET_ENV] = path
        log.info("sandboxes: one hub for every worker, on %s", path)
        yield
    finally:
        os.environ.pop(SOCKET_ENV, None)
        server.should_exit = True
        thread.join(STOP_SECONDS)
        uvicorn_log.removeFilter(quiet)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the sandbox hub did not start within {START_SECONDS} s")
        time.sleep(0.01)


class _QuietThread(logging.Filter):
    """Drops a thread's records below WARNING: uvicorn's start and stop lines would read as a worker's."""

    def __init__(self, thread_name: str) -> None:
        super().__init__()
        self.thread_name = thread_name

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.threadName != self.thread_name
