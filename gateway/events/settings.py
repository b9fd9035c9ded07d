"""The config keys of events: ``events:`` (outbox and retry schedule), a tenant's ``webhooks:``.

Validated with the rest of config.yaml (gateway/config.py), each problem at its line. The retry
schedule's defaults follow the Standard Webhooks example, with the first two retries within a
minute: 5 s, 30 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h — dead after about 3 days.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.mapping import VendorMap

PUBLIC_URL_ENV = "GATEWAY_PUBLIC_URL"  # set by `gateway serve` to its own address: sandboxes' default public_url
SECRET_PREFIX = "whsec_"
SECRET_BYTES = (24, 64)  # the Standard Webhooks bounds for a symmetric key
DEFAULT_RETRIES = (5, 30, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


class EventsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store: str = Field(
        default="events.sqlite3",
        description="The outbox file (SQLite), relative to the config file; with a Redis cache backend, Redis "
        "holds the outbox instead and this is not used",
    )
    retry_seconds: list[float] = Field(
        default=list(DEFAULT_RETRIES),
        min_length=1,
        description="Seconds before each retry of a failed delivery, in turn; after the last one fails, dead",
    )
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="Each gap is varied by up to this share")
    timeout_seconds: float = Field(default=15, gt=0, description="Seconds an endpoint has to answer one delivery")
    lease_seconds: float = Field(
        default=45,  # a dead process's claims are due again within a minute, polling included
        gt=0,
        description="A delivery claimed by a process is tried by it alone this long (longer than the timeout)",
    )
    poll_seconds: float = Field(default=1, gt=0, description="How often each process looks for due deliveries")
    concurrency: int = Field(default=16, ge=1, le=256, description="Deliveries in flight per process")
    retention_days: float = Field(
        default=30, gt=0, description="Events are listed (and vendor retries recognised) this long"
    )

    @model_validator(mode="after")
    def _lease_outlasts_a_try(self) -> EventsSettings:
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError("lease_seconds must be longer than timeout_seconds, or two processes could send one try")
        if any(gap < 0 for gap in self.retry_seconds):
            raise ValueError("retry_seconds must not be negative")
        return self


class WebhooksSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str = Field(description='The signing secret, "whsec_" + base64 of 24-64 random bytes: "${VAR}"')
    url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="Where events of campaigns created without a webhook_url go (default: nowhere; poll them)",
    )


@dataclass(frozen=True)
class TenantWebhooks:
    """A tenant's signing key (decoded) and default destination."""

    key: bytes = field(repr=False)
    secret: str = field(repr=False)  # as configured, so that logs can mask it
    url: str | None = None


def tenant_webhooks(secret: str, url: str | None) -> tuple[TenantWebhooks | None, str | None]:
    """The tenant's webhooks, or None and what is wrong with the secret (never quoting it)."""
    wrong = f"webhooks.secret must be {SECRET_PREFIX} followed by the base64 of 24 to 64 random bytes"
    if not secret.startswith(SECRET_PREFIX):
        return None, wrong
    try:
        encoded = secret.removeprefix(SECRET_PREFIX)
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None, wrong
    if not SECRET_BYTES[0] <= len(key) <= SECRET_BYTES[1]:
        return None, wrong
    return TenantWebhooks(key, secret, url), None


def connection_problems(
    vendor_map: VendorMap,
    credentials: dict[str, str],
    public_url: str | None,
    signs: bool,
    sandbox: bool,
) -> list[tuple[str, str]]:
    """What keeps a connection from taking events: (the key at fault, message) pairs.

    ``signs``: the tenant has a webhooks section (a broken secret in it is reported where it is).
    A sandbox needs no public_url: it posts to the address `gateway serve` listens on.
    """
    if vendor_map.events is None:
        return [("events", f"vendor {vendor_map.name} has no events section in its map (its header says why)")]
    problems = []
    if public_url is None and not sandbox:
        problems.append(("events", "events need public_url: the gateway's address as vendors reach it"))
    if not signs:
        problems.append(("events", "events need the tenant's webhooks.secret, to sign what is delivered"))
    for name in sorted(vendor_map.events.required_credentials() - set(credentials)):
        problems.append(("credentials", f"vendor {vendor_map.name} signs its webhooks: events need credentials.{name}"))
    return problems
