"""The canonical campaign schema: what clients send and receive, whatever the vendor.

These models validate request bodies and generate the OpenAPI document. Responses are built by
the compiled maps directly (no model round trip on the hot path); tests check them against
these models.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

Status = Literal["draft", "scheduled", "active", "paused", "completed", "cancelled", "failed"]
RecipientStatus = Literal["pending", "queued", "in_progress", "completed", "failed", "no_answer"]
Day = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _e164(number: str) -> str:
    if not _E164.match(number):
        raise ValueError("not E.164 (a + and 7 to 15 digits, e.g. +14155551212)")
    return number


E164 = Annotated[
    str,
    AfterValidator(_e164),
    Field(
        description="E.164 phone number",
        examples=["+14155551212"],
        json_schema_extra={"pattern": _E164.pattern},
    ),
]
TimeOfDay = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$"), Field(examples=["09:00"])]
MAX_RECIPIENTS_PER_REQUEST = 1000


def _iana_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not an IANA time zone") from exc
    return name


TimeZone = Annotated[str, AfterValidator(_iana_zone), Field(examples=["America/New_York"])]


class Described(BaseModel):
    """Every model: a field's docstring is its description in the OpenAPI document."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class Strict(Described):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Schedule(Strict):
    """When the vendor may call. Each field is optional; what a vendor cannot carry, see capabilities."""

    start_at: AwareDatetime | None = None
    """When calling may begin (ISO 8601 with an offset)."""
    end_at: AwareDatetime | None = None
    """When calling must stop."""
    timezone: TimeZone | None = None
    """The IANA time zone the days and daily window are in."""
    days: list[Day] | None = Field(default=None, max_length=7)
    """The weekdays calls may be placed on."""
    daily_start: TimeOfDay | None = None
    """The start of the daily calling window, "HH:MM"."""
    daily_end: TimeOfDay | None = None
    """The end of the daily calling window, "HH:MM"."""


class Retry(Strict):
    """How often a recipient is called."""

    max_attempts: int | None = Field(default=None, ge=1, le=100)
    """Calls per recipient at most, the first call included."""
    interval_minutes: int | None = Field(default=None, ge=0, le=10080)
    """Minutes between two calls to one recipient."""


class Stats(Described):
    """Recipient counts as the vendor reports them (null where it does not)."""

    total: int | None = None
    """Recipients in the campaign."""
    pending: int | None = None
    """Recipients not called yet."""
    queued: int | None = None
    """Recipients waiting for a line."""
    in_progress: int | None = None
    """Recipients on a call now."""
    completed: int | None = None
    """Recipients whose call completed."""
    failed: int | None = None
    """Recipients whose calls failed."""
    no_answer: int | None = None
    """Recipients who did not answer."""


class Campaign(Described):
    """A campaign as every vendor's is read: what a vendor does not report is null, never a guess."""

    id: str
    """The vendor's id of the campaign, as text. It belongs to the connection that created it."""
    connection: str
    """The connection it was read through."""
    vendor: str
    """The vendor behind that connection."""
    name: str | None = None
    """The campaign's name."""
    status: Status | None = None
    """The canonical status; null when the vendor's word has no canonical equivalent."""
    vendor_status: str | None = None
    """The vendor's own status word, unchanged."""
    agent_id: str | None = None
    """The vendor's id of the AI agent (or app) that calls."""
    from_numbers: list[str] | None = None
    """Caller numbers, E.164."""
    max_concurrent_calls: int | None = None
    """Calls at most at once."""
    schedule: Schedule | None = None
    """When the vendor may call."""
    retry: Retry | None = None
    """How often a recipient is called."""
    stats: Stats | None = None
    """Recipient counts."""
    webhook_url: str | None = None
    """Where the campaign's call events go: on a connection with events, the gateway's signed canonical events;
    else the vendor's own webhooks."""
    created_at: datetime | None = None
    """When the campaign was created (UTC)."""
    updated_at: datetime | None = None
    """When the campaign last changed (UTC)."""
    vendor_data: dict[str, Any] | None = None
    """Only with ?include=vendor_data: every vendor field with no canonical home, so nothing is lost."""


class RecipientIn(Strict):
    """A person to call."""

    phone_number: E164
    """Their number, E.164."""
    name: str | None = Field(default=None, max_length=200)
    """Their name (some vendors require it)."""
    variables: dict[str, str | int | float | bool] | None = None
    """Values the agent's prompt uses (flat: text, numbers, booleans)."""


class CampaignCreate(Strict):
    """A new campaign. Send Prefer: handling=lenient to have what a vendor cannot carry left out (and named)."""

    name: str = Field(min_length=1, max_length=200)
    """The campaign's name."""
    agent_id: str | None = Field(default=None, max_length=200)
    """The vendor's id of the AI agent (or app) that calls."""
    from_number: E164 | None = None
    """The caller number, E.164."""
    recipients: list[RecipientIn] = Field(default_factory=list, max_length=MAX_RECIPIENTS_PER_REQUEST)
    """People to call (at most 1000 per request; add more later)."""
    start_at: AwareDatetime | None = None
    """When calling begins; absent = now."""
    schedule: Schedule | None = None
    """When the vendor may call."""
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=10000)
    """Calls at most at once."""
    retry: Retry | None = None
    """How often a recipient is called."""
    webhook_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)] | None = None
    """Where the campaign's call events go: on a connection with events, the gateway's signed canonical events
    (whatever the vendor); else the vendor's own webhooks, where it takes a URL."""
    vendor_options: dict[str, Any] | None = None
    """Merged into the vendor's request body, for vendor features with no canonical field."""


class CampaignUpdate(Strict):
    """A change to a campaign; only the fields given change."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    """The campaign's new name."""
    schedule: Schedule | None = None
    """When the vendor may call."""
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=10000)
    """Calls at most at once."""
    retry: Retry | None = None
    """How often a recipient is called."""


class RecipientsAdd(Strict):
    """People to add to a campaign."""

    recipients: list[RecipientIn] = Field(min_length=1, max_length=MAX_RECIPIENTS_PER_REQUEST)
    """1 to 1000 people to call."""


class Recipient(Described):
    """A person in a campaign, as the vendor reports them."""

    id: str | None = None
    """The vendor's id of the recipient."""
    phone_number: str | None = None
    """Their number, E.164."""
    name: str | None = None
    """Their name."""
    variables: dict[str, Any] | None = None
    """The values the agent's prompt uses."""
    status: RecipientStatus | None = None
    """Where their calls stand."""
    vendor_status: str | None = None
    """The vendor's own word for it."""
    attempts: int | None = None
    """Calls made to them so far."""
    vendor_data: dict[str, Any] | None = None
    """Only with ?include=vendor_data: every vendor field with no canonical home."""


class RecipientError(Described):
    """A recipient the vendor refused."""

    index: int
    """Its place in the request's recipients (from 0)."""
    code: str
    """The canonical error code."""
    message: str
    """Why, in words."""


class RecipientsAdded(Described):
    """What adding recipients did."""

    campaign_id: str
    """The campaign they were added to."""
    submitted: int
    """Recipients in the request."""
    accepted: int | None = None
    """Recipients the vendor took."""
    rejected: int | None = None
    """Recipients the vendor refused (invalid or duplicate numbers)."""
    errors: list[RecipientError] | None = None
    """Recipients the vendor refused, where it answers one at a time."""
    vendor_data: dict[str, Any] | None = None
    """Only with ?include=vendor_data: the vendor's own answers."""


class CampaignPage(Described):
    """One page of campaigns."""

    data: list[Campaign]
    """The campaigns on this page."""
    next_cursor: str | None
    """Pass as ?cursor= for the next page; null on the last."""


class RecipientPage(Described):
    """One page of recipients."""

    data: list[Recipient]
    """The recipients on this page."""
    next_cursor: str | None
    """Pass as ?cursor= for the next page; null on the last."""


class Capability(Described):
    """What a connection's vendor does with each canonical field of one operation's body."""

    native: list[str]
    """Fields the vendor request carries."""
    composed: list[str]
    """Fields a later step of the operation carries (e.g. recipients added after create)."""
    unsupported: list[str]
    """Fields the vendor cannot carry: refused, or left out and named when lenient."""
    required: list[str]
    """Fields a request must have for this vendor."""


class ConnectionInfo(Described):
    """One of the caller's connections."""

    name: str
    """What X-Connection names it by."""
    vendor: str
    """The vendor behind it."""
    default: bool
    """Used when a request has no X-Connection."""
    operations: list[str]
    """The canonical operations it offers; the others answer 501."""
    unsupported_fields: Literal["reject", "drop"]
    """Its default handling of fields the vendor cannot carry (Prefer: handling=... overrides it)."""
    capabilities: dict[str, Capability]
    """Per operation with a body: what happens to each canonical field."""
    events: bool = False
    """Whether the gateway turns its vendor's webhooks into canonical events (GET /v1/events, deliveries)."""
    hook_url: str | None = None
    """With events: where its vendor sends webhooks (the gateway registers it at create where the vendor takes
    one; paste it into vendors whose webhook is set in their dashboard). Secret: it authenticates the vendor."""


class ConnectionList(Described):
    """The caller's connections."""

    data: list[ConnectionInfo]
    """Each connection."""


class ErrorDetail(Described):
    """One thing wrong with the request, or one part of a composed operation."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    field: str | None = None
    """The canonical field it is about."""
    message: str | None = None
    """What is wrong with it."""


class ErrorBody(Described):
    """An error."""

    code: str
    """The canonical error code (unauthorized, not_found, validation_error, invalid_state, …)."""
    message: str
    """What happened, for a person."""
    request_id: str
    """This request's id (also in X-Request-ID): quote it when asking for help."""
    vendor: str | None = None
    """The vendor involved, if any."""
    upstream_status: int | None = None
    """The vendor's own HTTP status, where the vendor answered."""
    details: list[ErrorDetail] | None = None
    """One entry per field at fault (or per step of a composed operation)."""


class ErrorEnvelope(Described):
    """Every non-2xx answer."""

    error: ErrorBody
    """The error."""
