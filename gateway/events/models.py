"""The canonical event: what a tenant's endpoint receives and ``GET /v1/events`` lists, whatever the vendor.

Like the campaign models, these describe and document; events are built by the compiled maps
directly, and tests check them against these models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from gateway.models import Described, Status

EventType = Literal["call.completed", "call.failed", "campaign.status_changed"]
EVENT_TYPES: frozenset[str] = frozenset(EventType.__args__)  # type: ignore[attr-defined]
Outcome = Literal["answered", "no_answer", "busy", "failed", "voicemail"]
DeliveryState = Literal["pending", "delivered", "dead", "undeliverable"]


class EventRecipient(Described):
    """The person called."""

    phone_number: str | None = None
    """Their number, E.164."""
    name: str | None = None
    """Their name, where the vendor says it."""
    id: str | None = None
    """The vendor's id of the recipient (or the identifier given when they were added)."""


class EventData(Described):
    """What happened. A value the vendor does not report is null, never a guess."""

    call_id: str | None = None
    """The vendor's id of the call (one attempt)."""
    occurred_at: datetime | None = None
    """When it happened, by the vendor's clock (UTC)."""
    recipient: EventRecipient | None = None
    """Who was called."""
    from_number: str | None = None
    """The caller number, E.164."""
    attempt: int | None = None
    """Which call to this recipient it was: 1 for the first."""
    final: bool | None = None
    """True when the vendor will not call this recipient again in this campaign."""
    outcome: Outcome | None = None
    """How the call went: answered, no_answer, busy, failed or voicemail (call events)."""
    started_at: datetime | None = None
    """When the call started (UTC)."""
    ended_at: datetime | None = None
    """When the call ended (UTC)."""
    duration_seconds: float | None = None
    """How long the call lasted."""
    status: Status | None = None
    """The campaign's new canonical status (campaign.status_changed)."""
    vendor_event: str | None = None
    """The vendor's own name for what it sent, unchanged."""
    vendor_status: str | None = None
    """The vendor's own word for the outcome or status, unchanged."""
    reason: str | None = None
    """The vendor's own words for why, where it gives any."""
    vendor_data: dict[str, Any] = Field(default_factory=dict)
    """Every field of the vendor's payload no canonical field took, so nothing it said is lost."""


class Event(Described):
    """One canonical event: the body of a delivery (signed per Standard Webhooks) and an item of GET /v1/events."""

    id: str
    """The event's id; also the webhook-id header of each delivery (the same on every retry)."""
    type: EventType
    """call.completed (the call connected), call.failed (it did not), or campaign.status_changed."""
    created_at: datetime
    """When the gateway received the vendor's notification (UTC)."""
    tenant: str
    """Your tenant."""
    connection: str
    """The connection whose vendor sent it."""
    vendor: str
    """That vendor."""
    campaign_id: str | None
    """The campaign, as its connection knows it; null when the vendor did not say."""
    data: EventData
    """What happened."""


class Delivery(Described):
    """Where the push of an event stands."""

    state: DeliveryState
    """pending (being tried), delivered, dead (every try failed), or undeliverable (no URL to send to)."""
    attempts: int
    """Tries made so far."""
    next_attempt_at: datetime | None = None
    """When the next try is due (pending only)."""
    last_status: int | None = None
    """The HTTP status the endpoint answered last (null: no answer, or not tried yet)."""
    last_error: str | None = None
    """Why the last try failed, in words."""
    delivered_at: datetime | None = None
    """When the endpoint took it (2xx)."""


class ListedEvent(Event):
    """An event as GET /v1/events lists it: with where its delivery stands."""

    delivery: Delivery
    """Where its push stands."""


class EventPage(Described):
    """Events, oldest first."""

    data: list[ListedEvent]
    """The events on this page."""
    next_cursor: str | None
    """Pass as ?cursor= for the events after this page (also later, to poll); null when there were none."""
    has_more: bool
    """True when more events are there now: fetch the next page at once."""


class Redelivery(Described):
    """A redelivery that was queued."""

    id: str
    """The event's id."""
    delivery: Delivery
    """Its delivery, due now."""
