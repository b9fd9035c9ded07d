"""What a cache hit must know before it looks in the cache, worked out once and remembered.

For a cacheable GET, the route, tenant, key, connection, cache key and TTL follow from the path,
the query, the presented key and X-Connection alone, given the loaded config. The cache-hit
shortcut (``GatewayApp.answer_from_memory``) works them out once per such combination and looks
them up after, skipping routing, parsing and placement on every hit.

The plans live on the Runtime, so a reload (a key revoked, a connection changed) starts afresh.
They are keyed by the key's hash, never the key itself; a key with an expiry is checked again on
every use. At ``MAX_PLANS`` the memory starts over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway import cache, inbound
from gateway.config import Config, Connection, KeySpec, Tenant
from gateway.engine import Call
from gateway.keys import authenticate, expired, key_hash, require_scope
from gateway.ratelimit import Bucket
from gateway.routing import Route, match

if TYPE_CHECKING:
    from gateway.runtime import Runtime

CACHEABLE = frozenset({"get", "list", "recipients_list"})
MAX_PLANS = 4096
PlanKey = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class HitPlan:
    route: Route
    tenant: Tenant
    key: KeySpec
    connection: Connection
    ttl: float
    place: cache.Placement
    buckets: list[Bucket]


def plan_for(runtime: Runtime, scope: dict[str, Any], headers: dict[bytes, bytes]) -> HitPlan | None:
    """The plan of a cacheable GET with a usable key; None for anything else (the full path answers it).

    Raises what the full path would answer with when working a plan out fails (404, 401, 403, 400).
    """
    presented = inbound.presented_key(headers)
    if presented is None:
        return None
    remembered = runtime.hit_plans
    plan_key = (scope["raw_path"], scope["query_string"], key_hash(presented), headers.get(b"x-connection"))
    plan = remembered.get(plan_key)
    if plan is None:
        plan = _work_out(runtime, scope, headers, presented)
        if plan is None:
            return None
        if len(remembered) >= MAX_PLANS:
            remembered.clear()
        remembered[plan_key] = plan
    elif plan.key.expires_at is not None and expired(plan.key, datetime.now(UTC)):  # no clock read for the rest
        return None
    return plan


def _work_out(runtime: Runtime, scope: dict[str, Any], headers: dict[bytes, bytes], presented: str) -> HitPlan | None:
    matched = match("GET", scope["raw_path"].decode("latin-1"))
    if matched is None or matched[0].operation not in CACHEABLE:
        return None
    route, campaign_id = matched
    tenant, key = authenticate(runtime.config, presented)
    require_scope(key, route.scope)
    connection = inbound.pick_connection(tenant, headers.get(b"x-connection"))
    query = inbound.query_pairs(scope)
    call = inbound.parse_call(route.operation, campaign_id, query)
    ttl, place = placement(runtime.config, tenant, connection, call, query)
    return HitPlan(route, tenant, key, connection, ttl, place, runtime.buckets(tenant, key))


def placement(
    config: Config, tenant: Tenant, connection: Connection, call: Call, query: list[tuple[str, str]]
) -> tuple[float, cache.Placement]:
    """How long a read's answer is kept, and where."""
    query_key = inbound.normalised_query(query)
    place = cache.placement(tenant.id, connection.fingerprint, call.operation, call.id, query_key)
    return ttl(config, connection, call.operation), place


def ttl(config: Config, connection: Connection, operation: str) -> float:
    """Config's per-operation TTL, else the map's, else the default."""
    spec = config.cache
    if operation in spec.ttl_by_operation:
        return spec.ttl_by_operation[operation]  # type: ignore[index]
    mapped = connection.map.operations[operation].cache_ttl if operation in connection.map.operations else None
    return spec.ttl_seconds if mapped is None else mapped
