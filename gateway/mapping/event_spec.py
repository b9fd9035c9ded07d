"""The ``events`` section of a vendor map: how the vendor's webhooks are checked and read.

``formats`` says how the vendor encodes a callback (JSON unless it says form fields);
``verify`` lists the checks every callback must pass (the vendor's documented signature or
token); ``payloads`` lists rules, the first whose ``when`` holds reads the payload into one
canonical event. A payload no rule takes (or whose ``type`` reads as null) is acknowledged and
not kept: the vendor sent something that is no call outcome (a transcript chunk, a ping).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HmacSpec(Spec):
    """The vendor signs each callback: an HMAC of ``signed`` keyed with ``secret``, sent in ``header``."""

    header: str = Field(description="The header holding the signature")
    secret: str = Field(description="The key, e.g. {credentials.webhook_secret} (a connection credential)")
    signed: str = Field(default="{body}", description="What is signed: text with {body} and {timestamp}")
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field(default="", description="Text before the digest in the header (e.g. sha256=); optional")
    pattern: str | None = Field(
        default=None,
        description="Regex over the header value with the groups `signature` and, if signed, `timestamp` "
        "(e.g. 't=(?P<timestamp>\\d+),v0=(?P<signature>[0-9a-f]+)')",
    )
    timestamp_header: str | None = Field(default=None, description="The header holding the signed timestamp")
    timestamp_unit: Literal["seconds", "milliseconds"] = "seconds"
    tolerance_seconds: float = Field(
        default=300, gt=0, description="A timestamp further from now (either way) is refused as a replay"
    )


class HeaderCheckSpec(Spec):
    """The vendor sends a fixed secret value in a header (e.g. a bearer token configured at the vendor)."""

    header: str
    value: str = Field(description="The expected value, e.g. 'Bearer {credentials.webhook_token}'")


class CheckSpec(Spec):
    """One check a callback must pass: ``hmac`` or ``header``."""

    hmac: HmacSpec | None = None
    header: HeaderCheckSpec | None = None
    optional: bool = Field(
        default=False,
        description="Skipped for a connection without the credentials it names (the vendor then signs "
        "nothing and the unguessable URL alone authenticates); else those credentials are required",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> CheckSpec:
        if (self.hmac is None) == (self.header is None):
            raise ValueError("a check is either hmac or header")
        return self


class PayloadSpec(Spec):
    """A kind of payload the vendor sends, read into one canonical event."""

    when: Any = Field(
        default=None, description="A condition (a path that must be set, or {path: value or [values]}); none: any"
    )
    type: Any = Field(
        description="Expression: call.completed, call.failed or campaign.status_changed; null: not an event"
    )
    key: list[Any] = Field(
        default=[],
        description="Expressions naming this notification at the vendor: a second one with the same key is "
        "the vendor's retry and is not kept again (default: the body's hash)",
    )
    campaign_id: Any = Field(default=None, description="Expression: the campaign, as the connection knows it")
    data: dict[str, Any] = Field(default={}, description="Field map: payload -> the event's data fields")


class EventsSpec(Spec):
    formats: list[Literal["json", "form"]] = Field(
        default=["json"],
        min_length=1,
        description="How the vendor encodes a callback's body: json (an object) and/or form "
        "(application/x-www-form-urlencoded fields, read as an object of text); with both, its Content-Type picks",
    )
    verify: list[CheckSpec] = Field(default=[], description="Checks every callback must pass")
    payloads: list[PayloadSpec] = Field(min_length=1, description="Tried in turn; the first whose `when` holds")
