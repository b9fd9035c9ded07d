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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Schedule(Strict):
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    timezone: TimeZone | None = None
    days: list[Day] | None = Field(default=None, max_length=7)
    daily_start: TimeOfDay | None = None
    daily_end: TimeOfDay | None = None


class Retry(Strict):
    max_attempts: int | None = Field(default=None, ge=1, le=100, description="First call included")
    interval_minutes: int | None = Field(default=None, ge=0, le=10080)


class Stats(BaseModel):
    total: int | None = None
    pending: int | None = None
    queued: int | None = None
    in_progress: int | None = None
    completed: int | None = None
    failed: int | None = None
    no_answer: int | None = None


class Campaign(BaseModel):
    id: str
    connection: str
    vendor: str
    name: str | None = None
    status: Status | None = None
    vendor_status: str | None = Field(default=None, description="The vendor's own status word")
    agent_id: str | None = None
    from_numbers: list[str] | None = None
    max_concurrent_calls: int | None = None
    schedule: Schedule | None = None
    retry: Retry | None = None
    stats: Stats | None = None
    webhook_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    vendor_data: dict[str, Any] | None = Field(
        default=None,
        description="Only with ?include=vendor_data: every vendor field with no canonical home",
    )


class RecipientIn(Strict):
    phone_number: E164
    name: str | None = Field(default=None, max_length=200)
    variables: dict[str, str | int | float | bool] | None = None


class CampaignCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    agent_id: str | None = Field(default=None, max_length=200)
    from_number: E164 | None = None
    recipients: list[RecipientIn] = Field(default_factory=list, max_length=MAX_RECIPIENTS_PER_REQUEST)
    start_at: AwareDatetime | None = Field(default=None, description="Absent = now")
    schedule: Schedule | None = None
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=10000)
    retry: Retry | None = None
    webhook_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)] | None = None
    vendor_options: dict[str, Any] | None = Field(
        default=None,
        description="Merged into the vendor's request body, for features with no canonical field",
    )


class CampaignUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    schedule: Schedule | None = None
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=10000)
    retry: Retry | None = None


class RecipientsAdd(Strict):
    recipients: list[RecipientIn] = Field(min_length=1, max_length=MAX_RECIPIENTS_PER_REQUEST)


class Recipient(BaseModel):
    id: str | None = None
    phone_number: str | None = None
    name: str | None = None
    variables: dict[str, Any] | None = None
    status: RecipientStatus | None = None
    vendor_status: str | None = None
    attempts: int | None = None
    vendor_data: dict[str, Any] | None = None


class RecipientError(BaseModel):
    index: int
    code: str
    message: str


class RecipientsAdded(BaseModel):
    campaign_id: str
    submitted: int
    accepted: int | None = None
    rejected: int | None = None
    errors: list[RecipientError] | None = Field(
        default=None, description="Recipients the vendor refused, where it answers one at a time"
    )
    vendor_data: dict[str, Any] | None = None


class CampaignPage(BaseModel):
    data: list[Campaign]
    next_cursor: str | None


class RecipientPage(BaseModel):
    data: list[Recipient]
    next_cursor: str | None


class ConnectionInfo(BaseModel):
    name: str
    vendor: str
    default: bool
    operations: list[str]


class ConnectionList(BaseModel):
    data: list[ConnectionInfo]


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    request_id: str
    vendor: str | None = None
    upstream_status: int | None = None
    details: list[ErrorDetail] | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody
