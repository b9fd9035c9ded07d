"""The shared outbox in Redis (when ``cache.backend`` is Redis): every instance on it sees every event.

Each change is one Lua script, so it is atomic on the server. An event is a hash (``e:ID``); a
due delivery is a member of the sorted set ``due`` scored by when it is due, and claiming it moves
its score to the end of the lease: no other instance sees it due until then, and if the claiming
instance dies the delivery is due again when the lease ends. Only the first pending event of a
campaign (``o:TENANT·CONNECTION·CAMPAIGN``, by sequence) is ever in ``due``; when it is done, the
next one enters. Lists are sorted sets by sequence per tenant (and campaign, and type). Key names
are built in the scripts from one prefix: meant for one Redis server, not a cluster.
"""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio as aioredis

from gateway.events.outbox import Claimed, Found, NewEvent, Outcome, delivery

PREFIX = "cgw:ev:"
SEP = "\x1f"
CLAIM_SCAN = 200  # due members a claim looks at; blocked ones are taken out of `due` as it goes
PRUNE_BATCH = 1000
POOL_SIZE, POOL_WAIT_SECONDS = 64, 5.0

# ARGV: prefix, dedupe ttl ms, id, tenant, connection, campaign, type, dedupe, body, created, destination
_ADD = """
local p, id, t, c, camp, ty = ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local dkey = p .. 'd:' .. t .. '\\31' .. c .. '\\31' .. ARGV[8]
local existing = redis.call('GET', dkey)
if existing then return {existing, 1} end
redis.call('SET', dkey, id, 'PX', ARGV[2])
local seq = redis.call('INCR', p .. 'seq')
local destination = redis.call('HGET', p .. 'dest', t .. '\\31' .. c .. '\\31' .. camp) or ARGV[11]
local e = p .. 'e:' .. id
redis.call('HSET', e, 'tenant', t, 'connection', c, 'campaign', camp, 'type', ty, 'body', ARGV[9],
  'created', ARGV[10], 'destination', destination, 'attempts', 0, 'seq', seq)
redis.call('ZADD', p .. 'i:' .. t, seq, id)
redis.call('ZADD', p .. 'i:' .. t .. '\\31t\\31' .. ty, seq, id)
if camp ~= '' then
  redis.call('ZADD', p .. 'i:' .. t .. '\\31c\\31' .. camp, seq, id)
  redis.call('ZADD', p .. 'i:' .. t .. '\\31ct\\31' .. camp .. '\\31' .. ty, seq, id)
end
if destination == '' then
  redis.call('HSET', e, 'state', 'undeliverable')
  redis.call('ZADD', p .. 'done', ARGV[10], id)
  return {id, 0}
end
redis.call('HSET', e, 'state', 'pending', 'due', ARGV[10])
local o = p .. 'o:' .. t .. '\\31' .. c .. '\\31' .. camp
redis.call('ZADD', o, seq, id)
if redis.call('ZRANGE', o, 0, 0)[1] == id then redis.call('ZADD', p .. 'due', ARGV[10], id) end
return {id, 0}
"""
# ARGV: prefix, now, lease end, owner, limit, scan
_CLAIM = """
local p = ARGV[1]
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'due', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[6]))) do
  if #out >= tonumber(ARGV[5]) then break end
  local e = p .. 'e:' .. id
  local f = redis.call('HMGET', e, 'tenant', 'connection', 'campaign', 'type', 'body', 'destination', 'attempts',
    'created')
  local o = p .. 'o:' .. (f[1] or '') .. '\\31' .. (f[2] or '') .. '\\31' .. (f[3] or '')
  if f[1] and redis.call('ZRANGE', o, 0, 0)[1] == id then
    redis.call('ZADD', p .. 'due', ARGV[3], id)
    redis.call('HSET', e, 'owner', ARGV[4])
    table.insert(out, {id, f[1], f[2], f[4], f[5], f[6], f[7], f[8]})
  else
    redis.call('ZREM', p .. 'due', id)  -- gone, or behind an earlier event: it enters when that one is done
  end
end
return out
"""
# ARGV: prefix, id, owner, state, due, status, error, at
_FINISH = """
local p, id = ARGV[1], ARGV[2]
local e = p .. 'e:' .. id
if redis.call('HGET', e, 'owner') ~= ARGV[3] then return 0 end
redis.call('HDEL', e, 'owner', 'status', 'error')
redis.call('HINCRBY', e, 'attempts', 1)
redis.call('HSET', e, 'state', ARGV[4])
if ARGV[6] ~= '' then redis.call('HSET', e, 'status', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', e, 'error', ARGV[7]) end
if ARGV[4] == 'pending' then
  redis.call('HSET', e, 'due', ARGV[5])
  redis.call('ZADD', p .. 'due', ARGV[5], id)
  return 1
end
if ARGV[4] == 'delivered' then redis.call('HSET', e, 'delivered_at', ARGV[8]) end
local f = redis.call('HMGET', e, 'tenant', 'connection', 'campaign', 'created')
redis.call('HDEL', e, 'due')
redis.call('ZREM', p .. 'due', id)
redis.call('ZADD', p .. 'done', f[4], id)
local o = p .. 'o:' .. f[1] .. '\\31' .. f[2] .. '\\31' .. f[3]
redis.call('ZREM', o, id)
local following = redis.call('ZRANGE', o, 0, 0)[1]
if following then
  local due = tonumber(redis.call('HGET', p .. 'e:' .. following, 'due') or ARGV[8])
  redis.call('ZADD', p .. 'due', math.max(due, tonumber(ARGV[8])), following)
end
return 1
"""
# ARGV: prefix, tenant, id, destination, now
_REDELIVER = """
local p, id, now = ARGV[1], ARGV[3], ARGV[5]
local e = p .. 'e:' .. id
local f = redis.call('HMGET', e, 'tenant', 'connection', 'campaign', 'state', 'seq')
if f[1] ~= ARGV[2] then return 0 end
redis.call('HSET', e, 'destination', ARGV[4])
local o = p .. 'o:' .. f[1] .. '\\31' .. f[2] .. '\\31' .. f[3]
if f[4] ~= 'pending' then
  redis.call('HSET', e, 'state', 'pending', 'attempts', 0)
  redis.call('HDEL', e, 'status', 'error', 'delivered_at')
  redis.call('ZREM', p .. 'done', id)
  redis.call('ZADD', o, redis.call('INCR', p .. 'seq'), id)  -- behind what of its campaign is pending
end
if redis.call('HGET', e, 'owner') then return 1 end  -- being tried now: that try decides
redis.call('HSET', e, 'due', now)
if redis.call('ZRANGE', o, 0, 0)[1] == id then redis.call('ZADD', p .. 'due', 'LT', now, id) end
return 1
"""
# ARGV: prefix, before, batch
_PRUNE = """
local p = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', p .. 'done', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local e = p .. 'e:' .. id
  local f = redis.call('HMGET', e, 'tenant', 'campaign', 'type')
  if f[1] then
    local i = p .. 'i:' .. f[1]
    redis.call('ZREM', i, id)
    redis.call('ZREM', i .. '\\31t\\31' .. f[3], id)
    if f[2] ~= '' then
      redis.call('ZREM', i .. '\\31c\\31' .. f[2], id)
      redis.call('ZREM', i .. '\\31ct\\31' .. f[2] .. '\\31' .. f[3], id)
    end
  end
  redis.call('DEL', e)
  redis.call('ZREM', p .. 'done', id)
end
return #ids
"""
_FIELDS = ("seq", "connection", "campaign", "body", "state", "attempts", "due", "status", "error", "delivered_at")


class RedisOutbox:
    def __init__(self, url: str, retention_seconds: float) -> None:
        # A blocking pool: a burst of webhooks waits for a connection rather than failing for want of one.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS, socket_timeout=5, socket_connect_timeout=2
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._retention_ms = int(retention_seconds * 1000)
        self._add = self._redis.register_script(_ADD)
        self._claim = self._redis.register_script(_CLAIM)
        self._finish = self._redis.register_script(_FINISH)
        self._redeliver = self._redis.register_script(_REDELIVER)
        self._prune = self._redis.register_script(_PRUNE)

    async def hook_key(self) -> bytes:
        await self._redis.set(PREFIX + "key", os.urandom(32), nx=True)
        return bytes(await self._redis.get(PREFIX + "key"))

    async def remember(self, tenant: str, connection: str, campaign_id: str, url: str) -> None:
        await self._redis.hset(PREFIX + "dest", SEP.join((tenant, connection, campaign_id)), url)

    async def destinations(self, tenant: str, connection: str, campaign_ids: list[str]) -> dict[str, str]:
        if not campaign_ids:
            return {}
        fields = [SEP.join((tenant, connection, campaign_id)) for campaign_id in campaign_ids]
        urls = await self._redis.hmget(PREFIX + "dest", fields)
        return {campaign_id: url.decode() for campaign_id, url in zip(campaign_ids, urls, strict=True) if url}

    async def add(self, event: NewEvent) -> tuple[str, bool]:
        args = [PREFIX, self._retention_ms, event.id, event.tenant, event.connection, event.campaign_id or ""]
        args += [event.type, event.dedupe, event.body, repr(event.created), event.destination or ""]
        stored, duplicate = await self._add(args=args)
        return stored.decode(), bool(duplicate)

    async def claim(self, now: float, lease: float, owner: str, limit: int) -> list[Claimed]:
        rows = await self._claim(args=[PREFIX, repr(now), repr(now + lease), owner, limit, CLAIM_SCAN])
        return [
            Claimed(
                r[0].decode(), r[1].decode(), r[2].decode(), r[3].decode(), r[4], r[5].decode(), int(r[6]), float(r[7])
            )
            for r in rows
        ]

    async def finish(self, event_id: str, owner: str, outcome: Outcome) -> None:
        due = "" if outcome.due is None else repr(outcome.due)
        status = "" if outcome.status is None else str(outcome.status)
        args = [PREFIX, event_id, owner, outcome.state, due, status, outcome.error or "", repr(outcome.at)]
        await self._finish(args=args)

    async def page(self, tenant: str, campaign_id: str | None, kind: str | None, after: int, limit: int) -> list[Found]:
        index = PREFIX + "i:" + tenant
        if campaign_id is not None and kind is not None:
            index += SEP.join(("", "ct", campaign_id, kind))
        elif campaign_id is not None:
            index += SEP.join(("", "c", campaign_id))
        elif kind is not None:
            index += SEP.join(("", "t", kind))
        ids = await self._redis.zrangebyscore(index, f"({after}", "+inf", start=0, num=limit)
        async with self._redis.pipeline(transaction=False) as pipe:
            for event_id in ids:
                pipe.hmget(PREFIX + "e:" + event_id.decode(), _FIELDS)
            rows = await pipe.execute()
        return [_found(row) for row in rows if row[0] is not None]

    async def get(self, tenant: str, event_id: str) -> Found | None:
        row = await self._redis.hmget(PREFIX + "e:" + event_id, ("tenant", *_FIELDS))
        if row[0] is None or row[0].decode() != tenant:
            return None
        return _found(row[1:])

    async def redeliver(self, tenant: str, event_id: str, destination: str, now: float) -> dict[str, Any] | None:
        if not await self._redeliver(args=[PREFIX, tenant, event_id, destination, repr(now)]):
            return None
        found = await self.get(tenant, event_id)
        return None if found is None else found.delivery

    async def prune(self, before: float) -> int:
        pruned = 0
        while (count := await self._prune(args=[PREFIX, repr(before), PRUNE_BATCH])) > 0:
            pruned += count
        return pruned

    async def close(self) -> None:
        await self._redis.aclose()


def _found(row: list[Any]) -> Found:
    seq, connection, campaign, body, state, attempts, due, status, error, delivered_at = row
    return Found(
        int(seq),
        connection.decode(),
        campaign.decode() or None,
        bytes(body),
        delivery(
            state.decode(),
            int(attempts),
            None if due is None else float(due),
            None if status is None else int(status),
            None if error is None else error.decode(),
            None if delivered_at is None else float(delivered_at),
        ),
    )
