"""``GET /v1/events`` (a tenant's events, oldest first, cursor-paged: poll with the last ``next_cursor``)
and ``POST /v1/events/{id}/redeliver``. A tenant sees its own events only; another's id is a 404.
"""

from __future__ import annotations

import base64
import binascii
import re
import time

import orjson

from gateway.config import Tenant
from gateway.errors import Conflict, NotFound, ValidationFailed
from gateway.events.models import EVENT_TYPES
from gateway.events.service import Events
from gateway.inbound import MAX_LIMIT

OPERATIONS = frozenset({"events_list", "events_redeliver"})
DEFAULT_LIMIT = 20
_DIGITS = re.compile(r"[0-9]{1,3}")


async def answer(
    events: Events, operation: str, tenant: Tenant, query: list[tuple[str, str]], event_id: str | None
) -> tuple[int, bytes]:
    """The status and body of an events endpoint (``OPERATIONS``), for an authenticated tenant."""
    if operation == "events_redeliver":
        return 202, await redeliver(events, tenant, event_id or "")
    return 200, await list_events(events, tenant, query)


async def list_events(events: Events, tenant: Tenant, query: list[tuple[str, str]]) -> bytes:
    values = dict(query)
    details = []
    kind = values.get("type") or None
    if kind is not None and kind not in EVENT_TYPES:
        details.append({"field": "type", "message": f"one of {', '.join(sorted(EVENT_TYPES))}"})
    limit = DEFAULT_LIMIT
    if "limit" in values:
        if _DIGITS.fullmatch(values["limit"]) and 1 <= int(values["limit"]) <= MAX_LIMIT:
            limit = int(values["limit"])
        else:
            details.append({"field": "limit", "message": f"an integer from 1 to {MAX_LIMIT}"})
    cursor = values.get("cursor") or None
    after = _position(cursor) if cursor is not None else 0
    if after is None:
        details.append({"field": "cursor", "message": "not a cursor this API gave"})
    if details:
        raise ValidationFailed("invalid query parameters", details=details)
    assert after is not None
    found = await events.outbox.page(tenant.id, values.get("campaign_id") or None, kind, after, limit + 1)
    page = found[:limit]
    data = [{**orjson.loads(item.body), "delivery": item.delivery} for item in page]
    following = _cursor(page[-1].seq) if page else cursor
    return orjson.dumps({"data": data, "next_cursor": following, "has_more": len(found) > limit})


async def redeliver(events: Events, tenant: Tenant, event_id: str) -> bytes:
    """Deliver the event again, now: to its campaign's webhook_url, else the tenant's webhooks.url."""
    found = await events.outbox.get(tenant.id, event_id)
    if found is None:
        raise NotFound(f"event {event_id} not found")
    connection = tenant.connections.get(found.connection)
    destination = None
    if connection is not None:
        destination = await events.destination(tenant, connection, found.campaign_id)
    elif tenant.webhooks is not None:
        destination = tenant.webhooks.url
    if destination is None:
        raise Conflict(
            f"event {event_id} has nowhere to go: its campaign was created without a webhook_url, and the tenant "
            "has no webhooks.url"
        )
    await events.start()
    delivery = await events.outbox.redeliver(tenant.id, event_id, destination, time.time())
    if delivery is None:
        raise NotFound(f"event {event_id} not found")
    events.deliverer.wake()
    return orjson.dumps({"id": event_id, "delivery": delivery})


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"e{seq}".encode()).decode().rstrip("=")


def _position(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(text[1:]) if re.fullmatch(r"e[0-9]{1,18}", text) else None
