"""The response cache: canonical answers of reads, kept per tenant and connection.

Keys are tuples (tenant, connection, operation, campaign id, normalised query); no key or
credential is ever part of one. A write drops the campaign's entries and the connection's
list pages for that tenant before the write is answered.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from cachetools import TTLCache

from gateway.config import CacheSpec

CacheKey = tuple[str, str, str, str, str]
LIST_OPERATIONS = frozenset({"list"})


class Entry(NamedTuple):
    body: bytes
    stored_at: float


class ResponseCache:
    def __init__(self, spec: CacheSpec) -> None:
        self.enabled = spec.ttl_seconds > 0
        self._entries: TTLCache[CacheKey, Entry] = TTLCache(maxsize=spec.max_entries, ttl=spec.ttl_seconds or 1)

    def get(self, key: CacheKey) -> Entry | None:
        return self._entries.get(key) if self.enabled else None

    def put(self, key: CacheKey, body: bytes) -> None:
        if self.enabled:
            self._entries[key] = Entry(body, time.monotonic())

    def invalidate(self, tenant: str, connection: str, campaign_id: str | None) -> None:
        """Drop the campaign's entries and every list page of this tenant's connection.

        A scan of the bounded cache: writes are rare next to reads, and a scan cannot miss a key.
        """
        stale = [
            key
            for key in list(self._entries.keys())
            if key[0] == tenant and key[1] == connection and (key[2] in LIST_OPERATIONS or key[3] == campaign_id)
        ]
        for key in stale:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
