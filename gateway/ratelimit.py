"""Rate limits per key and per tenant: GCRA (a token bucket kept as one timestamp per bucket).

A request passes only if every bucket that applies to it (its key's, its tenant's) has room,
and then it takes from all of them at once. In process by default; with a Redis backend the
buckets live in Redis and one Lua script decides, using Redis's clock, so a limit is exact across
workers and instances. If Redis cannot be reached, each process limits on its own, and says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.config import RateLimitSpec

log = logging.getLogger("gateway.ratelimit")


@dataclass(frozen=True)
class Bucket:
    name: str
    interval: float  # seconds per request at the sustained rate
    tolerance: float  # interval x burst: how far ahead of time a bucket may run
    burst: int

    @classmethod
    def of(cls, scope: str, owner: str, spec: RateLimitSpec) -> Bucket:
        interval = 60.0 / spec.requests_per_minute
        name = "cgw:v1:rl:" + hashlib.sha256(f"{scope}\x1f{owner}".encode()).hexdigest()[:40]
        return cls(name, interval, interval * spec.burst, spec.burst)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until the tightest bucket is full again
    retry_after: float  # seconds until a denied request would pass

    def headers(self) -> dict[str, str]:
        """The IETF RateLimit headers (and Retry-After when denied)."""
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset)),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out


def decide(buckets: list[Bucket], tats: list[float], now: float) -> tuple[Decision, list[float]]:
    """GCRA over several buckets: the decision and, when allowed, each bucket's new timestamp."""
    new_tats = [max(tat, now) + bucket.interval for bucket, tat in zip(buckets, tats, strict=True)]
    waits = [new - now - bucket.tolerance for bucket, new in zip(buckets, new_tats, strict=True)]
    if all(wait <= 1e-9 for wait in waits):
        lefts = [math.floor(-wait / bucket.interval + 1e-9) for bucket, wait in zip(buckets, waits, strict=True)]
        tightest = min(range(len(buckets)), key=lefts.__getitem__)
        reset = new_tats[tightest] - now
        return Decision(True, buckets[tightest].burst, lefts[tightest], reset, 0.0), new_tats
    tightest = max(range(len(buckets)), key=waits.__getitem__)
    reset = max(tats[tightest], now) - now
    return Decision(False, buckets[tightest].burst, 0, reset, waits[tightest]), new_tats


class RateLimiter(Protocol):
    async def check(self, buckets: list[Bucket]) -> Decision: ...
    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Buckets in this process: exact for one worker; with N workers each keeps its own."""

    def __init__(self) -> None:
        self._tats: dict[str, float] = {}

    async def check(self, buckets: list[Bucket]) -> Decision:
        return self.check_now(buckets)

    def check_now(self, buckets: list[Bucket]) -> Decision:
        """``check`` without awaiting, for the protocol's cache hits."""
        now = time.monotonic()
        decision, new_tats = decide(buckets, [self._tats.get(b.name, now) for b in buckets], now)
        if decision.allowed:
            self._tats.update((b.name, tat) for b, tat in zip(buckets, new_tats, strict=True))
        return decision

    async def close(self) -> None:
        return None


# KEYS: bucket names. ARGV: interval and tolerance per bucket. Returns allowed (0/1), then per
# bucket its stored timestamp before this request, and Redis's clock, so the caller can report.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tats, allowed = {}, 1
for i, key in ipairs(KEYS) do
  local interval, tolerance = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  tats[i] = string.format('%.17g', tat)
  if math.max(tat, now) + interval - now > tolerance + 1e-9 then allowed = 0 end
end
if allowed == 1 then
  for i, key in ipairs(KEYS) do
    local interval, tolerance = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
    local new = math.max(tonumber(tats[i]), now) + interval
    redis.call('SET', key, tostring(new), 'PX', math.ceil((new - now + tolerance) * 1000) + 1000)
  end
end
return {allowed, string.format('%.17g', now), unpack(tats)}
"""


class RedisRateLimiter:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self._redis.register_script(_GCRA)
        self._fallback = MemoryRateLimiter()
        self._last_log = 0.0

    async def check(self, buckets: list[Bucket]) -> Decision:
        args: list[float] = []
        for bucket in buckets:
            args += [bucket.interval, bucket.tolerance]
        try:
            reply = await self._script(keys=[b.name for b in buckets], args=args)
        except RedisError as exc:
            if time.monotonic() - self._last_log > 30:
                self._last_log = time.monotonic()
                log.warning("rate limits: redis unreachable (%s); limiting in this process only", type(exc).__name__)
            return await self._fallback.check(buckets)
        now, tats = float(reply[1]), [float(t) for t in reply[2:]]
        decision, _ = decide(buckets, tats, now)
        if decision.allowed != bool(reply[0]):  # Redis decided; the figures are only for the headers
            decision = dataclasses.replace(decision, allowed=bool(reply[0]), remaining=0)
        return decision

    async def close(self) -> None:
        await self._redis.aclose()
