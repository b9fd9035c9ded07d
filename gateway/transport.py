"""How bytes reach a vendor: a small interface the gateway owns, and its two implementations.

Measured on these machines (bench/transports.py): aiohttp's client serves about 2.3x the
requests/s of httpx on aiohttp's transport, and 7x httpx's default transport, so the network
path uses aiohttp directly. httpx stays for the in-process sandbox (ASGITransport) and for
tests (MockTransport): both are behind the same interface.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

import aiohttp
import httpx
from yarl import URL

from gateway.config import TimeoutSpec


class TransportTimeout(Exception):
    """The vendor did not answer in time."""


class TransportUnreachable(Exception):
    """The vendor could not be reached, or the connection broke."""


class TransportTooLarge(Exception):
    """The vendor's answer is larger than the connection allows."""


class Transport(Protocol):
    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]: ...

    async def close(self) -> None: ...


class AiohttpTransport:
    """A pooled aiohttp session, made on first use inside the running event loop.

    With ``unix_socket`` every request goes to that socket, whatever the URL's host.
    """

    def __init__(self, timeouts: TimeoutSpec, max_bytes: int, unix_socket: str | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, sock_read=timeouts.read)
        self._max_bytes = max_bytes
        self._unix_socket = unix_socket
        self._session: aiohttp.ClientSession | None = None

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        # One loop turn before writing: the requests read in one turn are all prepared first, so
        # their vendor writes go out together and the answers come back in fewer wake-ups. Measured
        # under load (bench/overhead.py, gateway-miss-spread c=16): ~15% less CPU per miss in this
        # process and ~20% less in a vendor on the same machine, for one loop turn of latency.
        await asyncio.sleep(0)
        if self._session is None:
            connector = (
                aiohttp.UnixConnector(self._unix_socket, limit=200)
                if self._unix_socket
                else aiohttp.TCPConnector(limit=200, ttl_dns_cache=300)
            )
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=connector,
                auto_decompress=True,
                cookie_jar=aiohttp.DummyCookieJar(),  # stateless: a vendor's cookies are never sent back
                skip_auto_headers=("User-Agent",),
            )
            # aiohttp would quietly resend an idempotent request once on a dropped keep-alive
            # connection; our retries (bounded, counted, within the budget) decide that instead.
            # The attribute is private; aiohttp's own test client sets it the same way.
            self._session._retry_connection = False
        try:
            # encoded=True: the path was percent-encoded by the map and must reach the vendor as is.
            async with self._session.request(
                method, URL(url, encoded=True), headers=headers, data=body, allow_redirects=False
            ) as response:
                if (response.content_length or 0) > self._max_bytes:
                    raise TransportTooLarge(f"{response.content_length} bytes")
                return response.status, response.headers, await self._read_bounded(response)
        except TimeoutError as exc:
            raise TransportTimeout(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise TransportUnreachable(type(exc).__name__) from exc

    async def _read_bounded(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body, to its end (a connection cut short raises), and no more than allowed."""
        chunks, size = [], 0
        while chunk := await response.content.read(self._max_bytes + 1 - size or 1):
            size += len(chunk)
            if size > self._max_bytes:
                raise TransportTooLarge(f"more than {self._max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpxTransport:
    """Any httpx transport behind the same interface: the in-process sandbox, or a test's mock."""

    def __init__(self, transport: httpx.AsyncBaseTransport, timeouts: TimeoutSpec, max_bytes: int) -> None:
        timeout = httpx.Timeout(timeouts.read, connect=timeouts.connect)
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
        self._max_bytes = max_bytes
        # An in-process app has no socket for httpx's timeouts to watch: bound the wait ourselves.
        self._read_timeout = timeouts.read

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            async with asyncio.timeout(self._read_timeout):
                response = await self._client.request(method, url, headers=headers, content=body)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise TransportTimeout(str(exc)) from exc
        except Exception as exc:  # an in-process app that crashed is, to us, a connection that broke
            raise TransportUnreachable(type(exc).__name__) from exc
        if len(response.content) > self._max_bytes:
            raise TransportTooLarge(f"{len(response.content)} bytes")
        return response.status_code, response.headers, response.content

    async def close(self) -> None:
        await self._client.aclose()
