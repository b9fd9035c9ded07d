"""``POST /v1/hooks/{token}``: a vendor's webhook in, one canonical event stored, then a 200.

In this order, each refusal in the error envelope and nothing stored: an unknown token is a 404
(before the body is read), a body over 1 MiB a 413, a failed check of the vendor's signature or
token a 401, a body that is not what the vendor sends (a JSON object, or form fields where its map
says so) a 422. A payload the map reads as no event (a transcript chunk, a ping) is answered 200
``ignored`` and not kept. An event is answered 200 only once it is stored (``stored``, or
``duplicate`` when the vendor's key for it was seen: a retry); if the outbox cannot be written the
vendor gets a 503 and sends it again later.

The token is a secret: the access line shows the path as ``/v1/hooks/…``.
"""

from __future__ import annotations

import hashlib
import logging
import time

import orjson

from gateway.asgi import Receive, read_body
from gateway.config import Connection, Tenant
from gateway.errors import NotFound, PayloadTooLarge, Unauthorized, UpstreamUnavailable, ValidationFailed
from gateway.events.outbox import NewEvent, iso, new_event_id
from gateway.events.service import Events
from gateway.mapping.events import VendorEvent
from gateway.telemetry import RequestRecord

RETRY_AFTER = "5"
log = logging.getLogger("gateway.events")


async def receive_hook(
    events: Events, token: str, headers: dict[bytes, bytes], receive: Receive, record: RequestRecord
) -> bytes:
    """The answer's body for a vendor's callback; every refusal is raised as a GatewayError."""
    record.operation = "hook"
    await events.start()
    owner = events.owner(token)
    if owner is None:
        events.metrics.received.labels("", "unknown_token").inc()
        raise NotFound("no such hook: this URL is not one the gateway gave out (or its connection has no events)")
    tenant, connection = owner
    record.tenant, record.connection, record.vendor = tenant.id, connection.name, connection.vendor
    received = events.metrics.received
    try:
        raw = await read_body(receive)
    except PayloadTooLarge:
        received.labels(connection.vendor, "too_large").inc()
        raise
    for check in events.checks(connection):
        wrong = check(headers, raw, time.time())
        if wrong is not None:
            received.labels(connection.vendor, "unauthorized").inc()
            raise Unauthorized(f"{connection.vendor} callback refused: {wrong}", vendor=connection.vendor)
    assert connection.map.events is not None  # a connection with events has a map that reads them (config)
    reader = connection.map.events
    payload = reader.payload(raw, headers.get(b"content-type", b"").decode("latin-1"))
    if payload is None:
        received.labels(connection.vendor, "invalid").inc()
        expected = reader.expected()
        details = [{"field": "body", "message": f"{expected}, as the vendor documents its webhooks"}]
        raise ValidationFailed(f"the callback's body is not {expected}", vendor=connection.vendor, details=details)
    found = reader.translate(payload)
    if found is None:
        received.labels(connection.vendor, "ignored").inc()
        return orjson.dumps({"status": "ignored"})
    try:
        event_id, duplicate = await _store(events, tenant, connection, found, raw)
    except Exception as exc:
        log.warning("events: cannot store a %s callback (%s: %s)", connection.vendor, type(exc).__name__, exc)
        received.labels(connection.vendor, "unavailable").inc()
        message = "the gateway cannot store events right now; send it again later"
        raise UpstreamUnavailable(message, headers={"Retry-After": RETRY_AFTER}) from exc
    received.labels(connection.vendor, "duplicate" if duplicate else "stored").inc()
    if not duplicate:
        events.metrics.translated.labels(connection.vendor, found.type).inc()
        events.deliverer.wake()
    return orjson.dumps({"status": "duplicate" if duplicate else "stored", "event_id": event_id})


async def _store(
    events: Events, tenant: Tenant, connection: Connection, found: VendorEvent, raw: bytes
) -> tuple[str, bool]:
    now = time.time()
    event_id = new_event_id(now)
    event = {
        "id": event_id,
        "type": found.type,
        "created_at": iso(now),
        "tenant": tenant.id,
        "connection": connection.name,
        "vendor": connection.vendor,
        "campaign_id": found.campaign_id,
        "data": found.data,
    }
    dedupe = found.key if found.key is not None else "sha256:" + hashlib.sha256(raw).hexdigest()
    default = tenant.webhooks.url if tenant.webhooks is not None else None  # unless the campaign has its own
    where = (tenant.id, connection.name, found.campaign_id, found.type)
    return await events.outbox.add(NewEvent(event_id, *where, dedupe, orjson.dumps(event), now, default))
