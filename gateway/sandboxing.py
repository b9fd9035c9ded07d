"""How the gateway reaches its simulated vendors (``base_url: sandbox``): one account per connection.

An account (``sandboxes.hub``) is kept for as long as the gateway runs, across config reloads, and
holds everything its sandbox does: ids, statuses, pending faults, call counts. In one process the
hub runs in it (httpx's ASGI transport, no socket).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from gateway.config import Connection
from gateway.transport import HttpxTransport, Transport
from sandboxes.hub import ACCOUNT_HEADER, SandboxHub, account_name


class SandboxLink:
    """Makes the transport of each sandbox connection, to its account in the hub."""

    def __init__(self) -> None:
        self.hub = SandboxHub()

    def transport(self, tenant_id: str, connection: Connection) -> Transport:
        inner = HttpxTransport(httpx.ASGITransport(app=self.hub), connection.timeouts, connection.max_response_bytes)
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
