"""Idempotency-Key on POST: a retried write with the same key answers the first result again.

Records are per tenant, hold a fingerprint of the request (connection, operation, id, body) and
the first successful answer, and live 24 hours. While the first request is still running, a retry
with the same key is a 409; the same key with another request is a 422. A failed first attempt
leaves no record, so the client can retry it. In process by default; in Redis when the cache
backend is Redis, so the rule holds across workers and instances.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

import orjson
import redis.asyncio as aioredis
from cachetools import TTLCache

from gateway.errors import Conflict, UpstreamUnavailable, ValidationFailed

DAY_SECONDS = 24 * 3600
RUNNING_SECONDS = 300  # a first attempt that died unfinished frees its key after this
Produce = Callable[[], Awaitable[tuple[int, bytes]]]


class Stored(NamedTuple):
    fingerprint: str
    status: int  # 0 while the first request is still running
    body: bytes


def fingerprint(*parts: bytes | str | None) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else (part or b""))
        digest.update(b"\x00")
    return digest.hexdigest()


class _Slots(Protocol):
    async def claim(self, slot: str, fingerprint: str) -> Stored | None:
        """Mark ``slot`` running for us and answer None, or answer what it already holds."""

    async def finish(self, slot: str, stored: Stored) -> None: ...
    async def release(self, slot: str) -> None: ...


class IdempotencyStore:
    def __init__(self, slots: _Slots) -> None:
        self._slots = slots

    async def run(self, tenant: str, key: str, request: str, produce: Produce) -> tuple[int, bytes, bool]:
        """The answer for this key: ``produce()``'s on first use, the stored one after (replayed=True)."""
        slot = fingerprint(tenant, key)
        held = await self._slots.claim(slot, request)
        if held is not None:
            if held.fingerprint != request:
                raise ValidationFailed(
                    "this Idempotency-Key was used for a different request",
                    details=[{"field": "Idempotency-Key", "message": "reused with another request"}],
                )
            if held.status == 0:
                raise Conflict("a request with this Idempotency-Key is still in progress")
            return held.status, held.body, True
        try:
            status, body = await produce()
        except BaseException:
            await self._slots.release(slot)
            raise
        await self._slots.finish(slot, Stored(request, status, body))
        return status, body, False


class MemorySlots:
    def __init__(self, max_entries: int = 100_000) -> None:
        self._done: TTLCache[str, Stored] = TTLCache(maxsize=max_entries, ttl=DAY_SECONDS)
        self._running: dict[str, Stored] = {}

    async def claim(self, slot: str, fingerprint: str) -> Stored | None:
        held = self._running.get(slot) or self._done.get(slot)
        if held is None:
            self._running[slot] = Stored(fingerprint, 0, b"")
        return held

    async def finish(self, slot: str, stored: Stored) -> None:
        self._running.pop(slot, None)
        self._done[slot] = stored

    async def release(self, slot: str) -> None:
        self._running.pop(slot, None)

    async def close(self) -> None:
        return None


class RedisSlots:
    """One key per slot: claimed with SET NX (short expiry while running), then the answer for 24 h."""

    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    async def claim(self, slot: str, fingerprint: str) -> Stored | None:
        name = "cgw:v1:i:" + slot
        running = orjson.dumps({"fingerprint": fingerprint, "status": 0, "body": ""})
        try:
            if await self._redis.set(name, running, nx=True, ex=RUNNING_SECONDS):
                return None
            raw = await self._redis.get(name)
        except aioredis.RedisError as exc:
            # Without the shared record the gateway cannot promise one create per key: refuse.
            raise UpstreamUnavailable("the idempotency store is unreachable; retry shortly") from exc
        if raw is None:  # it expired between the two calls: claim again
            return await self.claim(slot, fingerprint)
        held = orjson.loads(raw)
        return Stored(held["fingerprint"], held["status"], held["body"].encode())

    async def finish(self, slot: str, stored: Stored) -> None:
        value = orjson.dumps({"fingerprint": stored.fingerprint, "status": stored.status, "body": stored.body.decode()})
        await self._redis.set("cgw:v1:i:" + slot, value, ex=DAY_SECONDS)

    async def release(self, slot: str) -> None:
        await self._redis.delete("cgw:v1:i:" + slot)

    async def close(self) -> None:
        await self._redis.aclose()
