"""Idempotency-Key on POST: a retried write with the same key answers the first result again.

Records are per tenant, hold a fingerprint of the request (connection, operation, id, body,
handling) and the first successful answer with its headers, and live 24 hours. While the first
request is still running, a retry with the same key is a 409; the same key with another request
is a 422. A failed first attempt leaves no record, so the client can retry it — except a composed
operation that failed after its first step (``partial_failure``): its progress is kept, and a
retry with the same key resumes from it, so nothing that took effect is done twice. A request
stopped midway (the server shutting down) keeps its key taken: whether it took effect is unknown.
In process by default; in Redis when the cache backend is Redis (``gateway/idempotency_redis.py``,
which also says what holds when Redis fails), so the rule holds across workers and instances.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

import orjson
from cachetools import TTLCache

from gateway.errors import Conflict, PartialFailure, ValidationFailed

DAY_SECONDS = 24 * 3600
IN_PROGRESS = "a request with this Idempotency-Key is still in progress"
ABANDONED = (
    "the first request with this Idempotency-Key never finished (its gateway stopped while it was at the "
    "vendor), so whether it took effect is unknown: look the campaign up, and use a new key to try again"
)
Headers = tuple[tuple[str, str], ...]
Answer = tuple[int, bytes, Headers]
# Runs the request; given the progress a partial first attempt left, it resumes from there.
Produce = Callable[[bytes | None], Awaitable[Answer]]


class Stored(NamedTuple):
    fingerprint: str
    status: int  # 0 while the first request is still running
    body: bytes
    headers: Headers = ()
    abandoned: bool = False  # running for longer than any request runs: its worker is gone


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
    """Where records live. ``claim`` may refuse (the store is unreachable); the other three never fail."""

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
                raise Conflict(ABANDONED if held.abandoned else IN_PROGRESS)
            return held.status, held.body, held.headers, True
        try:
            status, body, headers = await produce(claim.resume)
        except PartialFailure as failure:
            await self._slots.keep_partial(slot, request, orjson.dumps(failure.progress))
            raise
        except asyncio.CancelledError:
            raise  # stopped midway (shutdown): it may have taken effect, so the key stays taken
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
