"""Idempotency-Key on POST: a retried write with the same key answers the first result again.

Records are per tenant, hold a fingerprint of the request (connection, operation, id, body) and
the first successful answer, and live 24 hours (bounded in number). While the first request is
still running, a retry with the same key is a 409; the same key with another request is a 422.
A failed first attempt leaves no record, so the client can retry it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cachetools import TTLCache

from gateway.errors import Conflict, ValidationFailed

DAY_SECONDS = 24 * 3600


@dataclass
class _Record:
    fingerprint: str
    done: asyncio.Event
    status: int = 0
    body: bytes = b""


class IdempotencyStore:
    def __init__(self, max_entries: int = 100_000, ttl_seconds: float = DAY_SECONDS) -> None:
        self._records: TTLCache[tuple[str, str], _Record] = TTLCache(maxsize=max_entries, ttl=ttl_seconds)

    @staticmethod
    def fingerprint(*parts: bytes | str | None) -> str:
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part.encode() if isinstance(part, str) else (part or b""))
            digest.update(b"\x00")
        return digest.hexdigest()

    async def run(
        self, tenant: str, key: str, fingerprint: str, produce: Callable[[], Awaitable[tuple[int, bytes]]]
    ) -> tuple[int, bytes, bool]:
        """The answer for this key: ``produce()``'s on first use, the stored one after (replayed=True)."""
        slot = (tenant, key)
        record = self._records.get(slot)
        if record is not None:
            if record.fingerprint != fingerprint:
                raise ValidationFailed(
                    "this Idempotency-Key was used for a different request",
                    details=[{"field": "Idempotency-Key", "message": "reused with another request"}],
                )
            if not record.done.is_set():
                raise Conflict("a request with this Idempotency-Key is still in progress")
            return record.status, record.body, True
        record = _Record(fingerprint, asyncio.Event())
        self._records[slot] = record
        try:
            record.status, record.body = await produce()
        except BaseException:
            self._records.pop(slot, None)
            raise
        finally:
            record.done.set()
        return record.status, record.body, False
