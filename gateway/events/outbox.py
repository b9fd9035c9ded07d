"""The outbox: events stored with their delivery state, shared by every process that serves them.

Two backends keep the same promises (``SqliteOutbox``, the embedded default, and ``RedisOutbox``
when the cache backend is Redis): an event is stored once per vendor notification (the vendor's
retries find it there: de-duplication), is stored before the vendor gets its 2xx, and a delivery
is *claimed* with a lease before it is tried, so that of all the processes polling one outbox only
the one holding the lease sends it. A lease outlives a try (``lease_seconds`` > ``timeout_seconds``);
a process that dies mid-try leaves a lease that expires, and another process (or the restarted
one) takes the delivery up. Deliveries of one campaign go out one at a time, in the order the
events were stored: a later one is claimed only when every earlier one is delivered or dead.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

State = Literal["pending", "delivered", "dead", "undeliverable"]
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32: ids sort by time


def new_event_id(now: float | None = None) -> str:
    """``evt_`` + 26 characters: 48 bits of milliseconds, then 80 random bits (sortable, unguessable)."""
    value = (int((time.time() if now is None else now) * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "evt_" + "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


@dataclass(frozen=True)
class NewEvent:
    id: str
    tenant: str
    connection: str
    campaign_id: str | None
    type: str
    dedupe: str  # the vendor's key for the notification (or its body's hash), per tenant and connection
    body: bytes  # the canonical event as sent: the exact bytes signed
    created: float
    # Where it goes unless its campaign has a destination of its own (``remember``), which the outbox
    # looks up as it stores the event; None and none remembered: it is listed only.
    destination: str | None


@dataclass(frozen=True)
class Claimed:
    """A delivery this process holds the lease of."""

    id: str
    tenant: str
    connection: str
    type: str
    body: bytes
    destination: str
    attempts: int  # tries before this one
    created: float


@dataclass(frozen=True)
class Outcome:
    """How a try ended: delivered, to be retried at ``due``, or dead."""

    state: State
    status: int | None = None
    error: str | None = None
    due: float | None = None  # when pending
    at: float = 0.0


@dataclass(frozen=True)
class Found:
    """A stored event as the API shows it."""

    seq: int
    connection: str
    campaign_id: str | None
    body: bytes
    delivery: dict[str, Any]


def delivery(
    state: str,
    attempts: int,
    due: float | None,
    status: int | None,
    error: str | None,
    delivered_at: float | None,
) -> dict[str, Any]:
    """The ``delivery`` object of an event in API answers (times as ISO 8601 UTC)."""
    return {
        "state": state,
        "attempts": attempts,
        "next_attempt_at": iso(due) if state == "pending" and due is not None else None,
        "last_status": status,
        "last_error": error,
        "delivered_at": iso(delivered_at) if delivered_at is not None else None,
    }


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment * 1000) % 1000:03d}Z"


class Outbox(Protocol):
    async def hook_key(self) -> bytes:
        """The random key hook tokens are derived from: made once, then the same for every process."""
        ...

    async def remember(self, tenant: str, connection: str, campaign_id: str, url: str) -> None:
        """Where the events of a campaign go (the webhook_url its create was given)."""
        ...

    async def destinations(self, tenant: str, connection: str, campaign_ids: list[str]) -> dict[str, str]: ...

    async def add(self, event: NewEvent) -> tuple[str, bool]:
        """Store ``event`` unless one with its key is stored: (the stored event's id, whether it was there)."""
        ...

    async def claim(self, now: float, lease: float, owner: str, limit: int) -> list[Claimed]:
        """Up to ``limit`` due deliveries (each the next of its campaign), leased to ``owner`` until now + lease."""
        ...

    async def finish(self, event_id: str, owner: str, outcome: Outcome) -> None:
        """Record a try; ignored when ``owner`` no longer holds the lease."""
        ...

    async def page(self, tenant: str, campaign_id: str | None, kind: str | None, after: int, limit: int) -> list[Found]:
        """The tenant's events after sequence number ``after``, oldest first, at most ``limit``."""
        ...

    async def get(self, tenant: str, event_id: str) -> Found | None: ...

    async def redeliver(self, tenant: str, event_id: str, destination: str, now: float) -> dict[str, Any] | None:
        """Make the event due now (a new round of tries if it was done); its new delivery, None if unknown."""
        ...

    async def prune(self, before: float) -> int:
        """Forget events done (delivered, dead, undeliverable) that were stored before ``before``."""
        ...

    async def close(self) -> None: ...
