"""Idempotency-Key on POST: a retried write with the same key answers the first result again.

Records are per tenant, hold a fingerprint of the request (connection, operation, id, body,
handling) and the first successful answer with its headers, and live 24 hours. While the first
request is still running, a retry with the same key is a 409; the same key with another request
is a 422. A failed first attempt leaves no record, so the client can retry it — except a composed
operation that failed after its first step (``partial_failure``): its progress is kept, and a
retry with the same key resumes from it, so nothing that took effect is done twice. In process by
default; in Redis when the cache backend is Redis, so the rule holds across workers and instances.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

import orjson
import redis.asyncio as aioredis
from cachetools import TTLCache

from gateway.errors import Conflict, PartialFailure, UpstreamUnavailable, ValidationFailed

DAY_SECONDS = 24 * 3600
RUNNING_SECONDS = 300  # a first attempt that died unfinished frees its key after this
Headers = tuple[tuple[str, str], ...]
Answer = tuple[int, bytes, Headers]
# Runs the request; given the progress a partial first attempt left, it resumes from there.
Produce = Callable[[bytes | None], Awaitable[Answer]]


class Stored(NamedTuple):
    fingerprint: str
    status: int  # 0 while the first request is still running
    body: bytes
    headers: Headers = ()


class Claim(NamedTuple):
    """What claiming a slot found: an answer or a running request (``held``), else the slot is ours,
    with the progress of an earlier partial attempt of the same request when there was one."""

    held: Stored | None
    resume: bytes | None = None


def fingerprint(*parts: bytes | str | None) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else (part or b""))
        digest.update(b"\x00")
    return digest.hexdigest()


class _Slots(Protocol):
    async def claim(self, slot: str, fingerprint: str) -> Claim: ...
    async def finish(self, slot: str, stored: Stored) -> None: ...
    async def keep_partial(self, slot: str, fingerprint: str, progress: bytes) -> None: ...
    async def release(self, slot: str) -> None: ...


class IdempotencyStore:
    def __init__(self, slots: _Slots) -> None:
        self._slots = slots

    async def run(self, tenant: str, key: str, request: str, produce: Produce) -> tuple[int, bytes, Headers, bool]:
        """The answer for this key: ``produce()``'s on first use, the stored one after (replayed=True)."""
        slot = fingerprint(tenant, key)
        claim = await self._slots.claim(slot, request)
        held = claim.held
        if held is not None:
            if held.fingerprint != request:
                raise ValidationFailed(
                    "this Idempotency-Key was used for a different request",
                    details=[{"field": "Idempotency-Key", "message": "reused with another request"}],
                )
            if held.status == 0:
                raise Conflict("a request with this Idempotency-Key is still in progress")
            return held.status, held.body, held.headers, True
        try:
            status, body, headers = await produce(claim.resume)
        except PartialFailure as failure:
            await self._slots.keep_partial(slot, request, orjson.dumps(failure.progress))
            raise
        except BaseException:
            await self._slots.release(slot)
            raise
        await self._slots.finish(slot, Stored(request, status, body, headers))
        return status, body, headers, False


class MemorySlots:
    def __init__(self, max_entries: int = 100_000) -> None:
        self._done: TTLCache[str, Stored] = TTLCache(maxsize=max_entries, ttl=DAY_SECONDS)
        self._partial: TTLCache[str, tuple[str, bytes]] = TTLCache(maxsize=max_entries, ttl=DAY_SECONDS)
        self._running: dict[str, Stored] = {}

    async def claim(self, slot: str, fingerprint: str) -> Claim:
        held = self._running.get(slot) or self._done.get(slot)
        if held is not None:
            return Claim(held)
        partial = self._partial.get(slot)
        if partial is not None and partial[0] != fingerprint:
            return Claim(Stored(partial[0], -1, b""))
        self._running[slot] = Stored(fingerprint, 0, b"")
        return Claim(None, partial[1] if partial else None)

    async def finish(self, slot: str, stored: Stored) -> None:
        self._running.pop(slot, None)
        self._partial.pop(slot, None)
        self._done[slot] = stored

    async def keep_partial(self, slot: str, fingerprint: str, progress: bytes) -> None:
        self._running.pop(slot, None)
        self._partial[slot] = (fingerprint, progress)

    async def release(self, slot: str) -> None:
        self._running.pop(slot, None)

    async def close(self) -> None:
        return None


# KEYS: the slot, its partial record. ARGV: the running marker, its expiry. One round trip, atomic:
# answers what the slot holds, or claims it and answers the partial record (if any).
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return {held, false} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {false, redis.call('GET', KEYS[2])}
"""


class RedisSlots:
    """Per slot a key claimed while running (short expiry), then holding the answer for 24 h; and a key for
    the progress of a partial attempt, which outlives a crashed resumer's running marker."""

    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._claim = self._redis.register_script(_CLAIM)

    async def claim(self, slot: str, fingerprint: str) -> Claim:
        running = orjson.dumps({"fingerprint": fingerprint, "status": 0, "body": ""})
        try:
            held, partial = await self._claim(keys=[_key(slot), _partial_key(slot)], args=[running, RUNNING_SECONDS])
        except aioredis.RedisError as exc:
            # Without the shared record the gateway cannot promise one create per key: refuse.
            raise UpstreamUnavailable("the idempotency store is unreachable; retry shortly") from exc
        if held is not None:
            record = orjson.loads(held)
            headers = tuple((name, value) for name, value in record.get("headers", []))
            return Claim(Stored(record["fingerprint"], record["status"], record["body"].encode(), headers))
        if partial is None:
            return Claim(None)
        record = orjson.loads(partial)
        if record["fingerprint"] != fingerprint:
            await self.release(slot)
            return Claim(Stored(record["fingerprint"], -1, b""))
        return Claim(None, record["progress"].encode())

    async def finish(self, slot: str, stored: Stored) -> None:
        value = {"fingerprint": stored.fingerprint, "status": stored.status, "body": stored.body.decode()}
        value["headers"] = stored.headers
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_key(slot), orjson.dumps(value), ex=DAY_SECONDS)
            pipe.delete(_partial_key(slot))
            await pipe.execute()

    async def keep_partial(self, slot: str, fingerprint: str, progress: bytes) -> None:
        value = orjson.dumps({"fingerprint": fingerprint, "progress": progress.decode()})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_partial_key(slot), value, ex=DAY_SECONDS)
            pipe.delete(_key(slot))
            await pipe.execute()

    async def release(self, slot: str) -> None:
        await self._redis.delete(_key(slot))

    async def close(self) -> None:
        await self._redis.aclose()


def _key(slot: str) -> str:
    return "cgw:v1:i:" + slot


def _partial_key(slot: str) -> str:
    return "cgw:v1:ip:" + slot
