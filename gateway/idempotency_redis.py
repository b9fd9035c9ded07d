"""Idempotency records in Redis: shared by every worker and instance, and held through a Redis outage.

Per slot (tenant and key) a marker while the first request runs (its owner, and the Redis time it
began), then the answer for 24 h; and, apart, the progress of a composed operation that failed
after its first step. What holds when Redis fails:

- Claiming a key needs Redis: while it is unreachable the request is refused (503, Retry-After)
  before anything is sent to the vendor.
- Once the vendor has answered, the client gets that answer. A record Redis cannot take then (the
  answer, partial progress, or the release of a failed attempt) is kept by this worker and written
  as soon as Redis answers again (tried every ``WATCH_SECONDS``); meanwhile a retry reaching this
  worker is answered from it, and one reaching another is refused (503) or told the first is
  still running (409).
- Redis back but empty (restarted without persistence): the store's *epoch* is gone. The first
  script to see that starts a new one, and no key is claimed in a store younger than
  ``SETTLE_SECONDS``; meanwhile each worker writes again the markers of its requests still at the
  vendor and the records it kept, so a retry finds them instead of creating again.
- A marker whose request never finished (its worker died mid-request) is not freed: after
  ``RUNNING_SECONDS`` the key is refused (409) as of unknown fate, for the rest of its 24 h.
- Answers Redis had already taken are as durable as Redis is (use its persistence if a Redis restart
  must not forget them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import NamedTuple

import orjson
import redis.asyncio as aioredis

from gateway.errors import UpstreamUnavailable
from gateway.idempotency import DAY_SECONDS, Claim, Stored

log = logging.getLogger("gateway.idempotency")
RUNNING_SECONDS = 300  # a first attempt still unfinished after this died with its worker: its fate is unknown
WATCH_SECONDS = 0.1
SETTLE_SECONDS = 1.0  # ten watches: time for every worker to write back what a lost store forgot
CLOSE_SECONDS = 2.0
EPOCH_KEY = "cgw:v1:iepoch"
UNREACHABLE = "the idempotency store is unreachable, so this key's earlier use cannot be checked; retry shortly"
RETRY_AFTER = {"Retry-After": "1"}

# KEYS[1]: the epoch. ARGV[1]: a new epoch's id. Leaves ``now`` (Redis time, ms) and ``age`` (of the epoch).
_EPOCH = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1] .. ':' .. now
  redis.call('SET', KEYS[1], epoch)
end
local age = now - tonumber(string.match(epoch, ':(%d+)$'))
"""
# KEYS[2], KEYS[3]: the slot, its partial record. ARGV[2]: the marker's JSON, open after '"since":';
# ARGV[3]: settle ms; ARGV[4]: expiry. Answers what the slot holds, or waits out a young epoch, or
# claims the slot (answering the partial record, if any, and the claim's time).
_CLAIM = """
local held = redis.call('GET', KEYS[2])
if held then return {'held', epoch, held, now} end
if age < tonumber(ARGV[3]) then return {'settling', epoch, tonumber(ARGV[3]) - age} end
redis.call('SET', KEYS[2], ARGV[2] .. now .. '}', 'EX', ARGV[4])
return {'claimed', epoch, redis.call('GET', KEYS[3]) or '', now}
"""
# KEYS[1]: the slot. ARGV[1]: the owner. Frees the slot only if it still holds that owner's marker.
_RELEASE = """
local held = redis.call('GET', KEYS[1])
if held and cjson.decode(held)['owner'] == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""


class _Held(NamedTuple):
    marker: bytes
    owner: str


class _Kept(NamedTuple):
    write: Callable[[], Awaitable[object]]  # the write Redis has not taken yet
    answer: Stored | None = None  # a finished answer: what a retry reaching this worker gets meanwhile


class RedisSlots:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._claim = self._redis.register_script(_EPOCH + _CLAIM)
        self._epoch_script = self._redis.register_script(_EPOCH + "return epoch")
        self._release = self._redis.register_script(_RELEASE)
        self._epoch: bytes | None = None
        self._lost = False  # the store lost its records since this worker claimed what it holds
        self._claimed: dict[str, _Held] = {}
        self._kept: dict[str, _Kept] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def claim(self, slot: str, fingerprint: str) -> Claim:
        kept = self._kept.get(slot)
        if kept is not None and not await self._write(slot) and kept.answer is not None:
            return Claim(kept.answer)
        owner = os.urandom(8).hex()
        marker = {"fingerprint": fingerprint, "status": 0, "body": "", "owner": owner}
        opening = orjson.dumps(marker)[:-1] + b',"since":'
        while True:
            try:
                reply = await self._claim(
                    keys=[EPOCH_KEY, _key(slot), _partial_key(slot)],
                    args=[os.urandom(8).hex(), opening, int(SETTLE_SECONDS * 1000), DAY_SECONDS],
                )
            except aioredis.RedisError as exc:
                # The script may have run: a marker of ours may stand there. Take it back once Redis answers.
                self._kept.setdefault(slot, _Kept(partial(self._release, keys=[_key(slot)], args=[owner])))
                self._watch()
                raise UpstreamUnavailable(UNREACHABLE, headers=RETRY_AFTER) from exc
            kind, epoch, *rest = reply
            self._saw(epoch)
            if kind == b"settling":
                await asyncio.sleep(int(rest[0]) / 1000)
                continue
            if kind == b"held":
                return Claim(_stored(rest[0], int(rest[1])))
            progress, since = rest
            self._claimed[slot] = _Held(opening + str(since).encode() + b"}", owner)
            self._watch()
            if not progress:
                return Claim(None)
            record = orjson.loads(progress)
            if record["fingerprint"] != fingerprint:
                await self.release(slot)
                return Claim(Stored(record["fingerprint"], -1, b""))
            return Claim(None, record["progress"].encode())

    async def finish(self, slot: str, stored: Stored) -> None:
        value = {"fingerprint": stored.fingerprint, "status": stored.status, "body": stored.body.decode()}
        value["headers"] = stored.headers
        write = partial(self._replace, _key(slot), orjson.dumps(value), _partial_key(slot))
        await self._settle(slot, _Kept(write, stored))

    async def keep_partial(self, slot: str, fingerprint: str, progress: bytes) -> None:
        value = orjson.dumps({"fingerprint": fingerprint, "progress": progress.decode()})
        await self._settle(slot, _Kept(partial(self._replace, _partial_key(slot), value, _key(slot))))

    async def release(self, slot: str) -> None:
        held = self._claimed.get(slot)
        if held is not None:
            await self._settle(slot, _Kept(partial(self._release, keys=[_key(slot)], args=[held.owner])))

    async def close(self) -> None:
        """Stop watching; write what is still kept if Redis answers within CLOSE_SECONDS, else say what is lost."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_SECONDS):
                for slot in list(self._kept):
                    await self._write(slot)
        if self._kept:
            log.error(
                "idempotency store: %d record(s) Redis never took are lost with this process; "
                "if Redis also forgot their keys' markers, those keys can be used again",
                len(self._kept),
            )
        await self._redis.aclose()

    async def _replace(self, key: str, value: bytes, other: str) -> None:
        """``key`` set to ``value`` for a day and ``other`` deleted, at once."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, value, ex=DAY_SECONDS)
            pipe.delete(other)
            await pipe.execute()

    async def _settle(self, slot: str, kept: _Kept) -> None:
        """The slot's request is over: write its outcome now, or keep it until Redis takes it. Never raises."""
        self._claimed.pop(slot, None)
        self._kept[slot] = kept
        if not await self._write(slot):
            log.warning("idempotency store unreachable: %d record(s) kept in this worker for now", len(self._kept))
            self._watch()

    async def _write(self, slot: str) -> bool:
        """Write what is kept for ``slot``; True when nothing is left to write."""
        kept = self._kept.get(slot)
        if kept is None:
            return True
        try:
            await kept.write()
        except aioredis.RedisError:
            return False
        if self._kept.get(slot) is kept:
            del self._kept[slot]
        return True

    def _saw(self, epoch: bytes) -> None:
        if self._epoch is not None and epoch != self._epoch:
            log.warning("idempotency store: Redis lost its records (a new epoch); writing back what this worker holds")
            self._lost = True
        self._epoch = epoch

    def _watch(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watching())

    async def _watching(self) -> None:
        """While this worker holds claims or kept records: write what is kept, and after the store lost its
        records, the markers of the requests still running here."""
        while self._claimed or self._kept:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                self._saw(await self._epoch_script(keys=[EPOCH_KEY], args=[os.urandom(8).hex()]))
                for slot in list(self._kept):
                    await self._write(slot)
                if self._lost:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for slot, held in self._claimed.items():
                            pipe.set(_key(slot), held.marker, nx=True, ex=DAY_SECONDS)
                        await pipe.execute()
                    self._lost = False
            except aioredis.RedisError:
                continue


def _stored(raw: bytes, now_ms: int) -> Stored:
    record = orjson.loads(raw)
    headers = tuple((name, value) for name, value in record.get("headers", []))
    since = record.get("since")
    abandoned = record["status"] == 0 and since is not None and now_ms - since > RUNNING_SECONDS * 1000
    return Stored(record["fingerprint"], record["status"], record["body"].encode(), headers, abandoned)


def _key(slot: str) -> str:
    return "cgw:v1:i:" + slot


def _partial_key(slot: str) -> str:
    return "cgw:v1:ip:" + slot
