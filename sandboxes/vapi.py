"""Simulated Vapi campaign API (the unversioned ``/campaign`` resource on ``https://api.vapi.ai``).

Documented (Vapi's OpenAPI spec in VapiAI/docs ``fern/apis/api/openapi.json``; the official
Python SDK VapiAI/server-sdk-python ``src/vapi/campaigns``), and enforced here:

- Auth: ``Authorization: Bearer <private key>``; anything else is a 401.
- ``POST /campaign`` (CreateCampaignDTO) -> 201 Campaign: ``name`` required; exactly one of
  ``assistantId``, ``workflowId``, ``squadId``; ``phoneNumberId`` (one of the account's phone
  numbers); ``customers`` (1 to 10 000; ``number`` E.164 unless ``numberE164CheckEnabled`` is
  false, ``name`` and ``externalId`` at most 40 characters, ``assistantOverrides.variableValues``);
  ``schedulePlan`` {``earliestAt`` required, ``latestAt``} as ISO 8601; ``maxConcurrency`` >= 1
  (default 10); ``server`` {``url``, …}.
- Campaign: ``id``, ``orgId``, ``status`` (scheduled | in-progress | ended), ``endedReason``
  (campaign.scheduled.ended-by-user | campaign.in-progress.ended-by-user | campaign.ended.success),
  the create fields echoed, ``calls`` (a map by call id), ``callsCounterScheduled``,
  ``callsCounterQueued``, ``callsCounterInProgress``, ``callsCounterEndedVoicemail``,
  ``callsCounterEnded``, ``createdAt``, ``updatedAt``.
- ``GET /campaign?page=&limit=&status=`` -> ``{"results": [...], "metadata": {"itemsPerPage",
  "totalItems", "currentPage"}}``; ``page`` >= 1, ``limit`` 0-1000 (default 100), newest first
  (``sortOrder`` DESC by ``createdAt``, the documented default).
- ``GET /campaign/{id}``; ``PATCH /campaign/{id}``; ``DELETE /campaign/{id}`` -> 200 Campaign.
- ``PATCH`` with ``status: "ended"`` ends a campaign (scheduled calls are dropped); the other
  fields "can only be updated if campaign is not in progress or has ended": here, while scheduled.
- ``GET /phone-number?limit=`` -> the account's phone numbers, a plain array of ``{id, orgId,
  provider, number, name, status, createdAt, updatedAt}``.
- ``server`` takes ``credentialId`` and ``backoffPlan`` {``type`` fixed | exponential,
  ``maxRetries`` 0-10, ``baseDelaySeconds`` 0-10}; ``serverMessages`` selects the campaign events
  sent to it (campaign.started, .ended, .cancelled, contact.completed, .failed …) and needs a server.
- ``POST /_sandbox/advance`` (a sandbox addition): each running campaign calls its contacts and
  sends the events it selected (sandboxes/vapi_calls.py).

Assumptions where the docs are silent:

- Errors have NestJS's shape ``{"statusCode", "message", "error"}``; validation is 400 naming the
  first offending field; unknown fields are refused (NestJS ``forbidNonWhitelisted``); an unknown
  or deleted campaign is 404; ending an ended campaign, or editing one that is not scheduled, is 400.
- A campaign without a ``schedulePlan``, or whose ``earliestAt`` has passed, is ``in-progress`` at
  once; one starting later is ``scheduled``. No call is placed by itself: ``callsCounterScheduled``
  is the number of customers until ``POST /_sandbox/advance`` calls them.
- Every account owns the phone numbers in ``PHONE_NUMBERS`` (Twilio numbers: Vapi's free numbers
  cannot call out).
- Counters at ``GET /_sandbox/calls``: create, get, list, update, cancel (a PATCH with ``status``),
  delete, phone_numbers.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandboxes._calls import Webhook, advance_route
from sandboxes._common import SandboxState, VendorApi, VendorError, counting, key_accepted, read_json, utc_now
from sandboxes.vapi_calls import advance, announce

ORG_ID = "4f9a5b4e-0000-4c1d-9d9e-5a2d5a2d5a2d"
PHONE_NUMBERS = ("+14155550100", "+14155551212", "+442071838750")
NAMES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SCHEDULE_ENDED = "campaign.scheduled.ended-by-user"
RUNNING_ENDED = "campaign.in-progress.ended-by-user"
Short = Annotated[str, StringConstraints(max_length=40)]
ServerMessage = Literal[
    "campaign.started", "campaign.cancelled", "campaign.ended", "campaign.archived", "campaign.unarchived",
    "contact.dispatched", "contact.completed", "contact.failed", "contact.skipped", "contact.predial-failed",
    "campaign.job.continued",
]  # fmt: skip


def _refuse(status: int, message: str) -> VendorError:
    return VendorError(status, {"statusCode": status, "message": message, "error": NAMES.get(status, "Error")})


class Dto(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Overrides(Dto):
    model_config = ConfigDict(extra="allow", strict=True)  # an assistant's settings: not simulated
    variableValues: dict[str, Any] | None = None


class Customer(Dto):
    number: str = Field(min_length=3, max_length=40)
    numberE164CheckEnabled: bool = True
    extension: Annotated[str, StringConstraints(max_length=10)] | None = None
    name: Short | None = None
    email: Short | None = None
    externalId: Short | None = None
    assistantOverrides: Overrides | None = None

    @model_validator(mode="after")
    def _e164(self) -> Customer:
        if self.numberE164CheckEnabled and not _E164.fullmatch(self.number):
            raise ValueError("number must be a valid phone number in the E.164 format")
        return self


class SchedulePlan(Dto):
    earliestAt: AwareDatetime = Field(strict=False)
    latestAt: AwareDatetime | None = Field(default=None, strict=False)

    @model_validator(mode="after")
    def _in_order(self) -> SchedulePlan:
        if self.latestAt is not None and self.latestAt <= self.earliestAt:
            raise ValueError("latestAt must be after earliestAt")
        return self


class BackoffPlan(Dto):
    type: Literal["fixed", "exponential"]
    maxRetries: int = Field(ge=0, le=10)
    baseDelaySeconds: float = Field(ge=0, le=10, strict=False)
    excludedStatusCodes: list[int] | None = None


class Server(Dto):
    url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    headers: dict[str, str] | None = None
    timeoutSeconds: int | None = Field(default=None, ge=1, le=300)
    credentialId: str | None = None
    backoffPlan: BackoffPlan | None = None


class CampaignCreate(Dto):
    name: str = Field(min_length=1)
    assistantId: str | None = None
    workflowId: str | None = None
    squadId: str | None = None
    phoneNumberId: str
    customers: list[Customer] = Field(min_length=1, max_length=10000)
    schedulePlan: SchedulePlan | None = None
    maxConcurrency: int = Field(default=10, ge=1)
    server: Server | None = None
    serverMessages: list[ServerMessage] | None = None
    assistantOverrides: Overrides | None = None

    @model_validator(mode="after")
    def _one_target(self) -> CampaignCreate:
        if sum(x is not None for x in (self.assistantId, self.workflowId, self.squadId)) != 1:
            raise ValueError("Only one of assistantId, workflowId, or squadId can be used, and one is required")
        if self.serverMessages and self.server is None:
            raise ValueError("serverMessages require a server")
        return self


class CampaignUpdate(Dto):
    name: str | None = Field(default=None, min_length=1)
    schedulePlan: SchedulePlan | None = None
    maxConcurrency: int | None = Field(default=None, ge=1)
    status: Literal["ended"] | None = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class VapiSandbox:
    """One simulated Vapi organization."""

    def __init__(self, api_key: str | None) -> None:
        self.state = SandboxState()
        self.api = VendorApi(self.state, lambda r: key_accepted(r, "Authorization", "Bearer ", api_key), _refuse)
        self.numbers = [_phone_number(number) for number in PHONE_NUMBERS]
        self.queued: list[Webhook] = []  # campaign events the API's own actions caused: sent by the next advance

    def app(self) -> Starlette:
        route, one = self.api.route, "/campaign/{id}"
        update = self.api.guarded(self.update)
        as_cancel, as_update = counting(self.state, "cancel", update), counting(self.state, "update", update)

        async def patch(request: Request) -> Response:
            """Counted as ``cancel`` when it sets the status, else as ``update``."""
            try:
                body = await read_json(request)
            except ValueError:
                body = None
            return await (as_cancel if isinstance(body, dict) and "status" in body else as_update)(request)

        return self.api.app(
            [
                route("create", "/campaign", self.create, "POST"),
                route("list", "/campaign", self.list, "GET"),
                route("get", one, self.get, "GET"),
                Route(one, patch, methods=["PATCH"]),
                route("delete", one, self.delete, "DELETE"),
                route("phone_numbers", "/phone-number", self.phone_numbers, "GET"),
                advance_route(lambda _account_url: advance(self.state, self.queued)),
            ]
        )

    def _campaign(self, request: Request) -> dict[str, Any]:
        campaign = self.state.campaigns.get(request.path_params["id"])
        if campaign is None:
            raise _refuse(404, "Campaign not found")
        return campaign

    async def create(self, request: Request) -> Response:
        spec = self.api.parsed(CampaignCreate, await self.api.body(request))
        if spec.phoneNumberId not in {number["id"] for number in self.numbers}:
            raise _refuse(400, "phoneNumberId: no such phone number in this organization")
        fields = spec.model_dump(mode="json", exclude_none=True)
        if spec.schedulePlan is not None:
            fields["schedulePlan"] = _plan(spec.schedulePlan)
        starts_later = spec.schedulePlan is not None and spec.schedulePlan.earliestAt > datetime.now(UTC)
        now = utc_now()
        campaign = {
            "id": str(uuid.uuid4()),
            "orgId": ORG_ID,
            **fields,
            "status": "scheduled" if starts_later else "in-progress",
            "calls": {},
            "callsCounterScheduled": len(spec.customers),
            "callsCounterQueued": 0,
            "callsCounterInProgress": 0,
            "callsCounterEndedVoicemail": 0,
            "callsCounterEnded": 0,
            "createdAt": now,
            "updatedAt": now,
        }
        self.state.campaigns[campaign["id"]] = campaign
        self.state.children[campaign["id"]] = [_contact(campaign, customer) for customer in spec.customers]
        if campaign["status"] == "in-progress":
            announce(self.queued, campaign, "campaign.started", {"workflowId": spec.workflowId})
        return JSONResponse(campaign, status_code=201)

    async def get(self, request: Request) -> Response:
        return JSONResponse(self._campaign(request))

    async def list(self, request: Request) -> Response:
        page, limit = (
            self.api.query_int(request, "page", 1, 1, None),
            self.api.query_int(request, "limit", 100, 0, 1000),
        )
        status = request.query_params.get("status")
        found = [c for c in reversed(self.state.campaigns.values()) if status in (None, c["status"])]
        results = found[(page - 1) * limit : page * limit]
        metadata = {"itemsPerPage": limit, "totalItems": len(found), "currentPage": page}
        return JSONResponse({"results": results, "metadata": metadata})

    async def update(self, request: Request) -> Response:
        change = self.api.parsed(CampaignUpdate, await self.api.body(request))
        campaign = self._campaign(request)
        edits = change.model_dump(mode="json", exclude_none=True, exclude={"status"})
        if campaign["status"] == "ended" or (edits and campaign["status"] != "scheduled"):
            raise _refuse(400, f"Campaign is {campaign['status']}: it can no longer be updated")
        if change.schedulePlan is not None:
            edits["schedulePlan"] = _plan(change.schedulePlan)
        campaign.update(edits, updatedAt=utc_now())
        if change.status == "ended":
            reason = SCHEDULE_ENDED if campaign["status"] == "scheduled" else RUNNING_ENDED
            campaign.update(status="ended", endedReason=reason, callsCounterScheduled=0)
            announce(self.queued, campaign, "campaign.cancelled", {"endedReason": reason})
        return JSONResponse(campaign)

    async def delete(self, request: Request) -> Response:
        campaign = self._campaign(request)
        del self.state.campaigns[campaign["id"]]
        return JSONResponse(campaign)

    async def phone_numbers(self, request: Request) -> Response:
        return JSONResponse(self.numbers[: self.api.query_int(request, "limit", 100, high=1000)])


def _plan(plan: SchedulePlan) -> dict[str, str]:
    """A schedule plan as the API writes it back (UTC, milliseconds)."""
    written = {"earliestAt": _iso(plan.earliestAt)}
    return written if plan.latestAt is None else {**written, "latestAt": _iso(plan.latestAt)}


def _contact(campaign: dict[str, Any], customer: Customer) -> dict[str, Any]:
    """A customer as a contact of the campaign (CampaignContact), with the status its call gives it."""
    return {
        "id": str(uuid.uuid4()),
        "campaignId": campaign["id"],
        "orgId": ORG_ID,
        "number": customer.number,
        "name": customer.name,
        "createdAt": campaign["createdAt"],
        "status": "contact.pending",
    }


def _phone_number(number: str) -> dict[str, Any]:
    now = utc_now()
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"vapi-sandbox:{number}")),
        "orgId": ORG_ID,
        "provider": "twilio",
        "number": number,
        "name": f"Sandbox {number}",
        "status": "active",
        "createdAt": now,
        "updatedAt": now,
    }


def create_app(api_key: str | None = None) -> Starlette:
    """A fresh simulated Vapi organization; with ``api_key`` only that key is accepted."""
    return VapiSandbox(api_key).app()
