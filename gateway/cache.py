"""The response cache: canonical answers of reads, kept per tenant and connection.

An entry's key is (tenant, connection, operation, campaign id, normalised query) — hashed before
it reaches Redis: no key or credential is ever part of one, and tenants can never share an entry. Each entry
belongs to groups — its campaign, or its connection's list pages — and a write through the
gateway drops its groups before it is answered.

Two backends: a bounded in-process cache (the default), and Redis (``redis://HOST:PORT/DB``),
which shares entries and invalidations across workers and instances. When Redis cannot be
reached the gateway answers uncached and says so in /readyz.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

import redis.asyncio as aioredis
from cachetools import LRUCache
from redis.exceptions import RedisError

from gateway.config import CacheSpec

log = logging.getLogger("gateway.cache")
LIST_OPERATIONS = frozenset({"list"})
_PREFIX = "cgw:v1:"
_OUTAGE_LOG_SECONDS = 30.0


class Entry(NamedTuple):
    body: bytes
    stored_at: float  # wall-clock seconds, so that instances agree on an entry's age


Parts = tuple[str, ...]


class Placement(NamedTuple):
    """Where a read's answer lives: its key and the groups a write drops (as plain parts)."""

    key: Parts
    groups: tuple[Parts, ...]


def placement(tenant: str, connection: str, operation: str, campaign_id: str | None, query: str) -> Placement:
    key = (tenant, connection, operation, campaign_id or "", query)
    if operation in LIST_OPERATIONS:
        return Placement(key, (list_group(tenant, connection),))
    return Placement(key, (campaign_group(tenant, connection, campaign_id),))


def campaign_group(tenant: str, connection: str, campaign_id: str | None) -> Parts:
    return (tenant, connection, "campaign", campaign_id or "")


def list_group(tenant: str, connection: str) -> Parts:
    return (tenant, connection, "lists")


def write_groups(tenant: str, connection: str, campaign_id: str | None) -> list[Parts]:
    """What a write drops: the campaign's entries (if it names one) and the connection's list pages."""
    groups = [list_group(tenant, connection)]
    if campaign_id is not None:
        groups.append(campaign_group(tenant, connection, campaign_id))
    return groups


def redis_name(kind: str, parts: Parts) -> str:
    """A Redis key for ``parts``: hashed, so no tenant, id or query stands in Redis in clear."""
    return f"{_PREFIX}{kind}:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


class CacheBackend(Protocol):
    async def get(self, key: Parts) -> Entry | None: ...
    async def put(self, place: Placement, body: bytes, ttl: float) -> None: ...
    async def invalidate(self, groups: list[Parts]) -> None: ...
    def status(self) -> dict[str, object]: ...
    async def close(self) -> None: ...


class _Stored(NamedTuple):
    entry: Entry
    groups: tuple[Parts, ...]
    expires: float


class MemoryCache:
    """Bounded (least recently used go first past ``max_entries``), with a TTL per entry.

    An LRU with the expiry checked on read: cheaper per hit than a TTL-ordered cache, and an
    expired entry still counts against the bound until it is read or pushed out.
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: LRUCache[Parts, _Stored] = LRUCache(maxsize=max_entries)
        self.evictions = 0

    async def get(self, key: Parts) -> Entry | None:
        stored = self._entries.get(key)
        if stored is None:
            return None
        if stored.expires <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return stored.entry

    async def put(self, place: Placement, body: bytes, ttl: float) -> None:
        if len(self._entries) >= self._entries.maxsize and place.key not in self._entries:
            self.evictions += 1
        self._entries[place.key] = _Stored(Entry(body, time.time()), place.groups, time.monotonic() + ttl)

    async def invalidate(self, groups: list[Parts]) -> None:
        """A scan of the bounded cache: writes are rare next to reads, and a scan cannot miss an entry."""
        dropped = set(groups)
        for key in [k for k, stored in list(self._entries.items()) if dropped.intersection(stored.groups)]:
            self._entries.pop(key, None)

    def status(self) -> dict[str, object]:
        return {"backend": "memory", "ok": True, "entries": len(self._entries), "evictions": self.evictions}

    async def close(self) -> None:
        return None


# Drops every entry of the given groups, and the groups, in one round trip.
_INVALIDATE = """
for _, group in ipairs(KEYS) do
  local members = redis.call('SMEMBERS', group)
  for i = 1, #members, 500 do
    redis.call('DEL', unpack(members, i, math.min(i + 499, #members)))
  end
  redis.call('DEL', group)
end
return 1
"""


class RedisCache:
    """Entries as ``stored_at || body`` strings with a TTL; groups as sets of entry keys."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._invalidate = self._redis.register_script(_INVALIDATE)
        self._ok = True
        self._last_outage_log = 0.0
        self._pending: list[str] = []

    async def get(self, key: Parts) -> Entry | None:
        if not await self._flush_pending():
            return None
        try:
            raw = await self._redis.get(redis_name("e", key))
        except RedisError as exc:
            return self._failed(exc)
        self._recovered()
        if raw is None or len(raw) < 8:
            return None
        (stored_at,) = struct.unpack("!d", raw[:8])
        return Entry(raw[8:], stored_at)

    async def put(self, place: Placement, body: bytes, ttl: float) -> None:
        if not await self._flush_pending():
            return
        ttl_ms = max(1, int(ttl * 1000))
        key = redis_name("e", place.key)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(key, struct.pack("!d", time.time()) + body, px=ttl_ms)
                for group in (redis_name("g", parts) for parts in place.groups):
                    pipe.sadd(group, key)
                    pipe.pexpire(group, ttl_ms, nx=True)
                    pipe.pexpire(group, ttl_ms, gt=True)
                await pipe.execute()
        except RedisError as exc:
            self._failed(exc)

    async def invalidate(self, groups: list[Parts]) -> None:
        """Drop ``groups``; if Redis is down, remember them and drop them before the next cached read."""
        self._pending.extend(redis_name("g", parts) for parts in groups)
        await self._flush_pending()

    async def _flush_pending(self) -> bool:
        if not self._pending:
            return True
        groups = list(dict.fromkeys(self._pending))
        try:
            await self._invalidate(keys=groups)
        except RedisError as exc:
            self._failed(exc)
            return False
        del self._pending[: len(groups)]
        self._recovered()
        return True

    def _failed(self, exc: Exception) -> None:
        self._ok = False
        now = time.monotonic()
        if now - self._last_outage_log >= _OUTAGE_LOG_SECONDS:
            self._last_outage_log = now
            log.warning("cache: redis unreachable (%s); answering uncached", type(exc).__name__)

    def _recovered(self) -> None:
        if not self._ok:
            log.warning("cache: redis reachable again")
        self._ok = True

    async def ping(self) -> bool:
        try:
            await self._redis.ping()
        except RedisError as exc:
            self._failed(exc)
            return False
        self._recovered()
        return True

    def status(self) -> dict[str, object]:
        return {"backend": "redis", "ok": self._ok, "pending_invalidations": len(self._pending)}

    async def close(self) -> None:
        await self._redis.aclose()


def make_backend(spec: CacheSpec) -> CacheBackend:
    if spec.backend.startswith(("redis://", "rediss://")):
        return RedisCache(spec.backend)
    return MemoryCache(spec.max_entries)


class SingleFlight:
    """Concurrent misses for one key share one upstream call; the others wait for its answer."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[bytes]] = {}

    async def run(self, key: str, produce: Callable[[], Awaitable[bytes]], timeout: float) -> tuple[bytes, bool]:
        """``produce()``'s body, and whether this caller led (True) or waited for another (False)."""
        running = self._running.get(key)
        if running is not None:
            return await asyncio.wait_for(asyncio.shield(running), timeout), False
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            body = await produce()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, and none may be waiting
            raise
        finally:
            self._running.pop(key, None)
        future.set_result(body)
        return body, True
