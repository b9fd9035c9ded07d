"""What a loaded config gives the running app: clients, cache, rate limiter. Swapped whole on reload.

A reload keeps what did not change — the pooled client of an unchanged connection, the cache and
limiter of an unchanged backend — and retires the rest once in-flight requests had time to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway import cache
from gateway.config import Config, Connection, KeySpec, Tenant
from gateway.hits import HitPlan, PlanKey
from gateway.idempotency import IdempotencyStore, MemorySlots
from gateway.idempotency_redis import RedisSlots
from gateway.ratelimit import Bucket, MemoryRateLimiter, RateLimiter, RedisRateLimiter
from gateway.sandboxing import SandboxLink
from gateway.transport import Transport
from gateway.upstream import Upstream

TransportFactory = Callable[[Connection], Transport | None]
Closer = Callable[[], Awaitable[None]]
RETIRE_AFTER_SECONDS = 60.0


@dataclass
class Runtime:
    config: Config
    upstreams: dict[tuple[str, str], Upstream]
    cache: cache.CacheBackend
    limiter: RateLimiter
    slots: MemorySlots | RedisSlots
    idempotency: IdempotencyStore = field(init=False)
    hit_plans: dict[PlanKey, HitPlan] = field(init=False, default_factory=dict)  # see gateway/hits.py

    def __post_init__(self) -> None:
        self.idempotency = IdempotencyStore(self.slots)

    def upstream(self, tenant: Tenant, connection: Connection) -> Upstream:
        return self.upstreams[(tenant.id, connection.fingerprint)]

    @staticmethod
    def buckets(tenant: Tenant, key: KeySpec) -> list[Bucket]:
        buckets = []
        if key.rate_limit is not None:
            buckets.append(Bucket.of("key", f"{tenant.id}\x1f{key.id}", key.rate_limit))
        if tenant.rate_limit is not None:
            buckets.append(Bucket.of("tenant", tenant.id, tenant.rate_limit))
        return buckets


def build_runtime(
    config: Config, make_transport: TransportFactory, sandboxes: SandboxLink, previous: Runtime | None = None
) -> Runtime:
    old_upstreams = previous.upstreams if previous else {}
    upstreams = {}
    for tenant in config.tenants.values():
        for connection in tenant.connections.values():
            slot = (tenant.id, connection.fingerprint)
            upstreams[slot] = old_upstreams.get(slot) or _upstream(tenant, connection, make_transport, sandboxes)
    backend, size = config.cache.backend, config.cache.max_entries
    if previous is not None and (previous.config.cache.backend, previous.config.cache.max_entries) == (backend, size):
        return Runtime(config, upstreams, previous.cache, previous.limiter, previous.slots)
    if backend.startswith(("redis://", "rediss://")):
        return Runtime(config, upstreams, cache.RedisCache(backend), RedisRateLimiter(backend), RedisSlots(backend))
    return Runtime(config, upstreams, cache.MemoryCache(size), MemoryRateLimiter(), MemorySlots())


def _upstream(
    tenant: Tenant, connection: Connection, make_transport: TransportFactory, sandboxes: SandboxLink
) -> Upstream:
    """A new client: over the factory's transport if it gives one, else its sandbox's, else the network."""
    transport = make_transport(connection)
    if transport is None and connection.sandbox:
        transport = sandboxes.transport(tenant.id, connection)
    return Upstream(connection, transport)


def retire(old: Runtime, new: Runtime) -> None:
    """Close what ``new`` no longer uses, after in-flight requests have had time to finish."""
    closers: list[Closer] = [u.close for slot, u in old.upstreams.items() if new.upstreams.get(slot) is not u]
    if old.cache is not new.cache:
        closers += [old.cache.close, old.limiter.close, old.slots.close]
    if closers:
        loop = asyncio.get_running_loop()
        loop.call_later(RETIRE_AFTER_SECONDS, lambda: loop.create_task(_close_all(closers)))


async def close_runtime(runtime: Runtime) -> None:
    await _close_all(
        [
            *(u.close for u in runtime.upstreams.values()),
            runtime.cache.close,
            runtime.limiter.close,
            runtime.slots.close,
        ]
    )


async def _close_all(closers: list[Closer]) -> None:
    for close in closers:
        await close()
