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
import itertools
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

import orjson
import redis.asyncio as aioredis
from cachetools import LRUCache
from redis.exceptions import RedisError

log = logging.getLogger("gateway.cache")
LIST_OPERATIONS = frozenset({"list"})
_PREFIX = "cgw:v1:"
_OUTAGE_LOG_SECONDS = 30.0


class Entry(NamedTuple):
    body: bytes
    stored_at: float  # wall-clock seconds, so that instances agree on an entry's age


Parts = tuple[str, ...]
Token = tuple[object, ...]  # the generations of a read's groups when its fetch began


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
    """A Redis key for ``parts``: hashed, so no tenant, id or query stands in Redis in clear.

    The parts are JSON-encoded first, so no two different part lists can hash alike.
    """
    return f"{_PREFIX}{kind}:" + hashlib.sha256(orjson.dumps(parts)).hexdigest()[:40]


class CacheBackend(Protocol):
    """``begin`` before fetching a read; ``put`` stores its answer only if no write dropped one of
    its groups in between — so a read that overlaps a write never leaves the old state behind."""

    async def get(self, key: Parts) -> Entry | None: ...
    async def begin(self, place: Placement) -> Token: ...
    async def put(self, place: Placement, body: bytes, ttl: float, token: Token) -> None: ...
    async def invalidate(self, groups: list[Parts]) -> None: ...
    def status(self) -> dict[str, object]: ...
    async def close(self) -> None: ...


class _Stored(NamedTuple):
    entry: Entry
    groups: tuple[Parts, ...]
    expires: float


class _Generations(dict[Parts, int]):
    """Group -> generation of its last invalidation, bounded: past ``maxsize`` the oldest goes.

    A group pushed out reads as ``floor`` (the highest generation pushed out so far): never lower
    than what it was, so a fetch that began before a write can never look unaffected by it. A plain
    dict (its order is the order of invalidation): every read is a lookup in C, and a read of a group
    never invalidated, the common case, finds nothing and costs nothing more.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize
        self.floor = 0

    def __setitem__(self, group: Parts, generation: int) -> None:
        self.pop(group, None)  # set again, it becomes the newest
        if len(self) >= self.maxsize:
            oldest = next(iter(self))
            self.floor = max(self.floor, self.pop(oldest))
        super().__setitem__(group, generation)

    def of(self, group: Parts) -> int:
        return self.get(group, self.floor)


class MemoryCache:
    """Bounded (least recently used go first past ``max_entries``), with a TTL per entry.

    An LRU with the expiry checked on read: cheaper per hit than a TTL-ordered cache, and an
    expired entry still counts against the bound until it is read or pushed out.
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: LRUCache[Parts, _Stored] = LRUCache(maxsize=max_entries)
        self._generations = _Generations(maxsize=max(1024, max_entries))
        self._counter = itertools.count(1)
        self.evictions = 0

    async def get(self, key: Parts) -> Entry | None:
        return self.peek(key)

    def peek(self, key: Parts) -> Entry | None:
        """``get`` without awaiting: the protocol answers hits with it before any task starts."""
        stored = self._entries.get(key)
        if stored is None:
            return None
        if stored.expires <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return stored.entry

    async def begin(self, place: Placement) -> Token:
        return tuple(self._generations.of(group) for group in place.groups)

    async def put(self, place: Placement, body: bytes, ttl: float, token: Token) -> None:
        if await self.begin(place) != token:
            return  # a write dropped this read's groups while it was being fetched
        if len(self._entries) >= self._entries.maxsize and place.key not in self._entries:
            self.evictions += 1
        self._entries[place.key] = _Stored(Entry(body, time.time()), place.groups, time.monotonic() + ttl)

    async def invalidate(self, groups: list[Parts]) -> None:
        """A scan of the bounded cache: writes are rare next to reads, and a scan cannot miss an entry."""
        for group in groups:
            self._generations[group] = next(self._counter)
        dropped = set(groups)
        for key in [k for k, stored in list(self._entries.items()) if dropped.intersection(stored.groups)]:
            self._entries.pop(key, None)

    def status(self) -> dict[str, object]:
        return {"backend": "memory", "ok": True, "entries": len(self._entries), "evictions": self.evictions}

    async def close(self) -> None:
        return None


# KEYS: group sets then their generation counters (same order). Drops every entry of each group
# and the group, and raises its generation, in one round trip.
_INVALIDATE = """
local half = #KEYS / 2
for g = 1, half do
  local members = redis.call('SMEMBERS', KEYS[g])
  for i = 1, #members, 500 do
    redis.call('DEL', unpack(members, i, math.min(i + 499, #members)))
  end
  redis.call('DEL', KEYS[g])
  redis.call('INCR', KEYS[half + g])
  redis.call('PEXPIRE', KEYS[half + g], ARGV[1])
end
return 1
"""

# KEYS: entry, then group sets, then their generation counters. ARGV: value, ttl ms, then the
# generations seen when the fetch began. Stores only if no group was invalidated since.
_STORE = """
local groups = (#KEYS - 1) / 2
for g = 1, groups do
  if (redis.call('GET', KEYS[1 + groups + g]) or '0') ~= ARGV[2 + g] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for g = 1, groups do
  redis.call('SADD', KEYS[1 + g], KEYS[1])
  redis.call('PEXPIRE', KEYS[1 + g], ARGV[2], 'NX')
  redis.call('PEXPIRE', KEYS[1 + g], ARGV[2], 'GT')
end
return 1
"""
_GENERATION_TTL_MS = 24 * 3600 * 1000


class RedisCache:
    """Entries as ``stored_at || body`` strings with a TTL; groups as sets of entry keys."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._invalidate = self._redis.register_script(_INVALIDATE)
        self._store = self._redis.register_script(_STORE)
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

    async def begin(self, place: Placement) -> Token:
        try:
            seen = await self._redis.mget([redis_name("n", group) for group in place.groups])
        except RedisError as exc:
            self._failed(exc)
            return ()
        return tuple((value or b"0").decode() for value in seen)

    async def put(self, place: Placement, body: bytes, ttl: float, token: Token) -> None:
        if not token or not await self._flush_pending():
            return  # Redis was unreachable when the fetch began: store nothing we cannot vouch for
        key = redis_name("e", place.key)
        keys = [key, *(redis_name("g", g) for g in place.groups), *(redis_name("n", g) for g in place.groups)]
        value = struct.pack("!d", time.time()) + body
        try:
            await self._store(keys=keys, args=[value, max(1, int(ttl * 1000)), *token])
        except RedisError as exc:
            self._failed(exc)

    async def invalidate(self, groups: list[Parts]) -> None:
        """Drop ``groups``; if Redis is down, remember them and drop them before the next cached read."""
        self._pending.extend(groups)
        await self._flush_pending()

    async def _flush_pending(self) -> bool:
        if not self._pending:
            return True
        taken = len(self._pending)
        groups = list(dict.fromkeys(self._pending[:taken]))
        keys = [redis_name("g", g) for g in groups] + [redis_name("n", g) for g in groups]
        try:
            await self._invalidate(keys=keys, args=[_GENERATION_TTL_MS])
        except RedisError as exc:
            self._failed(exc)
            return False
        del self._pending[:taken]
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
        """Check Redis, and send any invalidation held back by an outage: only then is the cache sound."""
        try:
            await self._redis.ping()
        except RedisError as exc:
            self._failed(exc)
            return False
        if not await self._flush_pending():
            return False
        self._recovered()
        return True

    def status(self) -> dict[str, object]:
        ok = self._ok and not self._pending
        return {"backend": "redis", "ok": ok, "pending_invalidations": len(self._pending)}

    async def close(self) -> None:
        await self._redis.aclose()


class SingleFlight:
    """Concurrent misses for one key share one upstream call; the others wait for its answer.

    A write forgets the fetches of the groups it drops: a read arriving after the write starts a
    fresh fetch rather than joining one that began before it.
    """

    def __init__(self) -> None:
        self._running: dict[Parts, tuple[tuple[Parts, ...], asyncio.Future[bytes]]] = {}

    async def run(
        self, place: Placement, produce: Callable[[], Awaitable[bytes]], timeout: float
    ) -> tuple[bytes, bool]:
        """``produce()``'s body, and whether this caller led (True) or waited for another (False)."""
        running = self._running.get(place.key)
        if running is not None:
            return await asyncio.wait_for(asyncio.shield(running[1]), timeout), False
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._running[place.key] = (place.groups, future)
        try:
            body = await produce()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, and none may be waiting
            raise
        finally:
            if self._running.get(place.key, (None, None))[1] is future:
                del self._running[place.key]
        future.set_result(body)
        return body, True

    def forget(self, groups: list[Parts]) -> None:
        dropped = set(groups)
        for key in [k for k, (g, _f) in self._running.items() if dropped.intersection(g)]:
            del self._running[key]
