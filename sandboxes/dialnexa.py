"""Simulated DialNexa API: campaigns, their status by PATCH, and leads.

The real base URL is ``https://api.dialnexa.com/v1``; this app serves the paths below it at its
root. Auth is ``Authorization: Bearer <key>``; bodies are bare JSON objects in snake_case, except
the lead body, which is camelCase as documented.

Endpoints (operation name counted in ``GET /_sandbox/calls``):

* ``POST /campaigns`` (create) → 201, the record without progress counters;
* ``GET /campaigns?limit=&offset=`` (list) → ``{"data": [...], "total", "limit", "offset"}``;
* ``GET /campaigns/{id}`` (get) → the record plus ``total_leads``, ``completed_calls``,
  ``pending_calls``;
* ``PATCH /campaigns/{id}`` → the record with counters; counted as ``status`` when the body has a
  ``status`` key, otherwise as ``update`` (a malformed body counts as ``update``);
* ``POST /campaigns-leads`` (recipients_add) → 201, the lead;
* ``GET /campaigns/{id}/leads?limit=&offset=`` (recipients_list) → a page of leads.

Sandbox control, not counted and needing no key: ``POST
/_sandbox/campaigns/{id}/complete-calls?count=n`` completes the first ``n`` (default: all) pending
leads of an active or running campaign, as if their calls had ended: each gets a
``call_log_id``, the counters move, and the campaign becomes ``running`` while leads remain
pending and ``completed`` when none do. 409 when the campaign is not active or running.

Error shape: ``{"error": {"type": ..., "message": ..., "param"?: ...}}`` with

* 401 ``authentication_error`` (missing key, or not in the ``Bearer`` form, or not the key);
* 400 ``invalid_request_error`` (the body is not JSON);
* 422 ``validation_error`` with ``param`` (dotted path of the first offending field);
* 404 ``not_found``; 405 ``method_not_allowed``;
* 409 ``conflict`` (a status change or edit the campaign's status does not allow).

Assumptions where the docs are silent:

* the docs show no error bodies; the shape above is assumed, and only the first problem of a body
  is reported; validation is strict: no type coercion ("5" is not an integer, 5.0 is not one
  either) and unknown fields are rejected (a whitelist, as NestJS ``forbidNonWhitelisted``);
* a new campaign is always ``draft``; ``PATCH {"status": "active"}`` launches it (a
  ``scheduled_at`` is stored and returned, not acted on); ids are ``cmp_``/``lead_``/``call_`` +
  12 lowercase base-36 characters; ``organization_id`` is ``org_sandbox``;
* create: ``name`` (non-empty), ``agent_id`` (``agt_`` + letters/digits) and
  ``from_phone_number`` (E.164: ``+`` then 7-15 digits) are required; ``scheduled_at`` is ISO 8601
  (no offset means UTC; returned as ``YYYY-MM-DDTHH:MM:SS.mmmZ``); ``max_concurrent_calls`` ≥ 1
  defaults to 1; ``retry_config`` needs both ``max_retries`` ≥ 0 and
  ``retry_interval_minutes`` ≥ 1 and defaults to ``{"max_retries": 0, "retry_interval_minutes":
  60}``;
* PATCH accepts ``name``, ``agent_id``, ``max_concurrent_calls``, ``retry_config`` (replaced
  whole) and ``status`` (``active`` | ``paused`` | ``cancelled``); ``null`` is not a value;
  transitions: active from draft or paused, paused from active or running, cancelled from any
  non-terminal status; setting the current status again is a no-op; others are 409;
  ``completed`` and ``cancelled`` are terminal and refuse every PATCH (409); ``agent_id`` cannot
  change once the campaign has leads (422, ``param: agent_id``);
* lead: ``phoneNumber`` (4-14 national digits, no ``+``), ``countryCode`` (``+`` and 1-4 digits)
  and ``campaignId`` are required, and together must form an E.164 number; ``name`` is optional;
  ``notes`` is an object of at most 15 string/number/boolean values; the answer has the
  documented keys only (no ``name``); an unknown ``campaignId`` is 404; a completed or cancelled
  campaign refuses leads (409);
* lists page with ``limit`` (1-100, default 20) and ``offset`` (≥ 0, default 0), oldest first;
  a bad value is 422 with ``param`` naming the query parameter;
* ``running`` and ``completed`` are reached only through the control route (no calls are placed).
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandboxes._common import (
    SandboxState,
    control_routes,
    counting,
    key_accepted,
    read_json,
    utc_now,
)

ORGANIZATION_ID = "org_sandbox"
ID_ALPHABET = string.digits + string.ascii_lowercase
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
TERMINAL = frozenset({"completed", "cancelled"})
CALLING = frozenset({"active", "running"})
REACHABLE_FROM: dict[str, frozenset[str]] = {
    "active": frozenset({"draft", "paused"}),
    "paused": frozenset({"active", "running"}),
    "cancelled": frozenset({"draft", "active", "running", "paused"}),
}
COUNTERS = ("total_leads", "completed_calls", "pending_calls")
DEFAULT_RETRY = {"max_retries": 0, "retry_interval_minutes": 60}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
}

Handler = Callable[[Request], Awaitable[Response]]
Model = TypeVar("Model", bound=BaseModel)
AgentId = Annotated[str, StringConstraints(pattern=r"^agt_[A-Za-z0-9]+$")]
PhoneE164 = Annotated[str, StringConstraints(pattern=E164.pattern)]
NoteValue = str | int | float | bool


class DialNexaError(Exception):
    """An answer in DialNexa's (assumed) error shape."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        error = {"type": ERROR_TYPES.get(self.status, "api_error"), "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(12))


def _iso_ms(moment: datetime) -> str:
    """``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (naive means UTC)."""
    aware = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(model: type[Model], data: Any) -> Model:
    """``model`` from ``data``, or a 422 naming the first offending field."""
    if not isinstance(data, dict):
        raise DialNexaError(422, "The request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"])
        raise DialNexaError(422, f"{param}: {first['msg']}", param) from None


def _query_int(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    """The integer query parameter ``name`` within ``[low, high]``; 422 otherwise."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
    message = f"{name} must be an integer {bounds}"
    if not raw.isdigit():
        raise DialNexaError(422, message, name)
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise DialNexaError(422, message, name)
    return value


# --- request models ---------------------------------------------------------------------------


class StrictModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class RetryConfig(StrictModel):
    max_retries: int = Field(ge=0)
    retry_interval_minutes: int = Field(ge=1)


class CampaignCreate(StrictModel):
    name: str = Field(min_length=1)
    agent_id: AgentId
    from_phone_number: PhoneE164
    scheduled_at: datetime | None = Field(default=None, strict=False)
    max_concurrent_calls: int = Field(default=1, ge=1)
    retry_config: RetryConfig = Field(default_factory=lambda: RetryConfig(**DEFAULT_RETRY))

    @field_serializer("scheduled_at")
    def _scheduled_at(self, value: datetime | None) -> str | None:
        return None if value is None else _iso_ms(value)


class CampaignUpdate(StrictModel):
    """A partial update: only the keys sent are applied, and none of them may be null."""

    name: str | None = Field(default=None, min_length=1)
    agent_id: AgentId | None = None
    max_concurrent_calls: int | None = Field(default=None, ge=1)
    retry_config: RetryConfig | None = None
    status: Literal["active", "paused", "cancelled"] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value


class LeadCreate(StrictModel):
    name: str | None = None
    # camelCase: the vendor's own field names
    phoneNumber: str = Field(pattern=r"^\d{4,14}$")
    countryCode: str = Field(pattern=r"^\+[1-9]\d{0,3}$")
    campaignId: str = Field(min_length=1)
    notes: dict[str, Any] = Field(default_factory=dict, max_length=15)

    @field_validator("notes")
    @classmethod
    def _flat_notes(cls, notes: dict[str, Any]) -> dict[str, Any]:
        if not all(isinstance(value, NoteValue) for value in notes.values()):
            raise ValueError("note values must be strings, numbers or booleans")
        return notes


# --- the app ----------------------------------------------------------------------------------


class DialNexaSandbox:
    """One simulated DialNexa organization."""

    def __init__(self, api_key: str | None) -> None:
        self.state = SandboxState()
        self.api_key = api_key

    def routes(self) -> list[Route]:
        update = self._guarded(self.update)
        patch_as = {
            "status": counting(self.state, "status", update),
            "update": counting(self.state, "update", update),
        }

        async def patch(request: Request) -> Response:
            """Count a PATCH as ``status`` when it changes the status, else as ``update``."""
            try:
                body = await read_json(request)
            except ValueError:
                body = None
            operation = "status" if isinstance(body, dict) and "status" in body else "update"
            return await patch_as[operation](request)

        return [
            self._route("create", "/campaigns", self.create, "POST"),
            self._route("list", "/campaigns", self.list_campaigns, "GET"),
            self._route("get", "/campaigns/{id}", self.get, "GET"),
            Route("/campaigns/{id}", patch, methods=["PATCH"]),
            self._route("recipients_add", "/campaigns-leads", self.add_lead, "POST"),
            self._route("recipients_list", "/campaigns/{id}/leads", self.list_leads, "GET"),
            Route("/_sandbox/campaigns/{id}/complete-calls", self.complete_calls, methods=["POST"]),
            *control_routes(self.state),
        ]

    def _guarded(self, handler: Handler) -> Handler:
        """``handler`` behind the ``Authorization: Bearer <key>`` check."""

        async def authorized(request: Request) -> Response:
            if not key_accepted(request, "Authorization", "Bearer ", self.api_key):
                raise DialNexaError(401, "Missing or invalid API key")
            return await handler(request)

        return authorized

    def _route(self, operation: str, path: str, handler: Handler, method: str) -> Route:
        """A counted route that first checks the key."""
        counted = counting(self.state, operation, self._guarded(handler))
        return Route(path, counted, methods=[method])

    # helpers

    def _campaign(self, campaign_id: str) -> dict[str, Any]:
        campaign = self.state.campaigns.get(campaign_id)
        if campaign is None:
            raise DialNexaError(404, f"Campaign {campaign_id} not found")
        return campaign

    @staticmethod
    async def _body(request: Request) -> Any:
        try:
            return await read_json(request)
        except ValueError:
            raise DialNexaError(400, "The request body is not valid JSON") from None

    @staticmethod
    def _page(request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
        limit = _query_int(request, "limit", default=20, low=1, high=100)
        offset = _query_int(request, "offset", default=0, low=0, high=None)
        return {
            "data": items[offset : offset + limit],
            "total": len(items),
            "limit": limit,
            "offset": offset,
        }

    @staticmethod
    def _check_update(campaign: dict[str, Any], change: CampaignUpdate) -> None:
        """409/422 when ``change`` is not allowed for the campaign as it stands."""
        current = campaign["status"]
        if current in TERMINAL:
            raise DialNexaError(409, f"Campaign is {current} and can no longer be changed")
        target = change.status
        if target is not None and target != current and current not in REACHABLE_FROM[target]:
            raise DialNexaError(409, f"Cannot change status from {current} to {target}")
        changes_agent = change.agent_id is not None and change.agent_id != campaign["agent_id"]
        if changes_agent and campaign["total_leads"] > 0:
            message = "agent_id cannot change once the campaign has leads"
            raise DialNexaError(422, message, "agent_id")

    # handlers

    async def create(self, request: Request) -> Response:
        fields = _parse(CampaignCreate, await self._body(request)).model_dump(mode="json")
        campaign = {
            "id": _new_id("cmp_"),
            "organization_id": ORGANIZATION_ID,
            "name": fields["name"],
            "agent_id": fields["agent_id"],
            "from_phone_number": fields["from_phone_number"],
            "status": "draft",
            "max_concurrent_calls": fields["max_concurrent_calls"],
            "scheduled_at": fields["scheduled_at"],
            "retry_config": fields["retry_config"],
            "created_at": utc_now(),
            **dict.fromkeys(COUNTERS, 0),
        }
        self.state.campaigns[campaign["id"]] = campaign
        self.state.children[campaign["id"]] = []
        created = {key: value for key, value in campaign.items() if key not in COUNTERS}
        return JSONResponse(created, status_code=201)

    async def get(self, request: Request) -> Response:
        return JSONResponse(self._campaign(request.path_params["id"]))

    async def list_campaigns(self, request: Request) -> Response:
        return JSONResponse(self._page(request, list(self.state.campaigns.values())))

    async def update(self, request: Request) -> Response:
        change = _parse(CampaignUpdate, await self._body(request))
        campaign = self._campaign(request.path_params["id"])
        self._check_update(campaign, change)
        campaign.update(change.model_dump(mode="json", exclude_unset=True))
        return JSONResponse(campaign)

    async def add_lead(self, request: Request) -> Response:
        lead_in = _parse(LeadCreate, await self._body(request))
        campaign = self._campaign(lead_in.campaignId)
        if campaign["status"] in TERMINAL:
            raise DialNexaError(409, f"Campaign is {campaign['status']} and takes no new leads")
        phone_number = lead_in.countryCode + lead_in.phoneNumber
        if not E164.fullmatch(phone_number):
            message = f"countryCode + phoneNumber ({phone_number}) is not an E.164 number"
            raise DialNexaError(422, message, "phoneNumber")
        lead = {
            "id": _new_id("lead_"),
            "name": lead_in.name,
            "phone_number": phone_number,
            "campaign_id": campaign["id"],
            "status": "pending",
            "notes": lead_in.notes,
            "call_log_id": None,
            "created_at": utc_now(),
        }
        self.state.children[campaign["id"]].append(lead)
        campaign["total_leads"] += 1
        campaign["pending_calls"] += 1
        return JSONResponse(lead, status_code=201)

    async def list_leads(self, request: Request) -> Response:
        campaign = self._campaign(request.path_params["id"])
        return JSONResponse(self._page(request, self.state.children[campaign["id"]]))

    async def complete_calls(self, request: Request) -> Response:
        """Sandbox control: end the calls of pending leads (see the module docstring)."""
        campaign = self._campaign(request.path_params["id"])
        if campaign["status"] not in CALLING:
            raise DialNexaError(409, f"Campaign is {campaign['status']}, not calling")
        leads = self.state.children[campaign["id"]]
        pending = [lead for lead in leads if lead["status"] == "pending"]
        count = _query_int(request, "count", default=len(pending), low=0, high=None)
        for lead in pending[:count]:
            lead.update(status="completed", call_log_id=_new_id("call_"))
        done = min(count, len(pending))
        campaign["completed_calls"] += done
        campaign["pending_calls"] -= done
        campaign["status"] = "running" if campaign["pending_calls"] else "completed"
        return JSONResponse(campaign)


async def _vendor_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, DialNexaError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(_: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods, in the vendor's shape."""
    assert isinstance(exc, HTTPException)
    body = DialNexaError(exc.status_code, exc.detail).body()
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def create_app(api_key: str | None = None) -> Starlette:
    """A fresh simulated DialNexa organization; only ``api_key`` is accepted when it is given."""
    sandbox = DialNexaSandbox(api_key)
    handlers = {DialNexaError: _vendor_error, HTTPException: _http_error}
    return Starlette(routes=sandbox.routes(), exception_handlers=handlers)
