"""Simulated Exotel call campaigns, API v2 (``https://{api|api.in}.exotel.com/v2/accounts/{sid}/campaigns``).

Documented (developer.exotel.com/api/campaigns, /api/update-campaign, /api/update-campaign-details,
/api/get-campaign-details, /api/bulk-campaign-details, /api/call-details-of-a-single-campaign;
support.exotel.com "How does the campaigns API work"; Exotel's samples github.com/exotel/ExotelAPI
Campaign_Samples), and enforced here:

- Auth: HTTP basic with the API key and token; anything else is a 401.
- Bodies are ``{"campaigns": [{…}]}``; answers ``{"request_id", "method", "http_code", "response":
  [{"code", "status", "data"}]}``, lists add ``"metadata": {"count", "offset", "total", "limit"}``.
- Create: ``caller_id`` (an ExoPhone) required; ``from`` (at most 5000 numbers) or ``lists`` (at
  most 5), not both; ``url`` (``http://my.exotel.com/{sid}/exoml/start_voice/{app_id}``) or a
  ``flow_type`` (ivr | greeting, with ``read_via_text``); ``name`` longer than 3 characters (default
  from the account and the time); ``type`` trans only; ``retries`` {``number_of_retries`` 0-3,
  ``interval_mins`` (required with it), ``mechanism`` Linear | Exponential, ``on_status`` of busy,
  no-answer, failed}; ``schedule`` {``send_at`` in the future, ``end_at`` after it} in RFC 3339;
  ``status_callback``, ``call_status_callback``, ``call_schedule_callback``; ``mode`` auto | custom
  with ``throttle``; ``call_duplicate_numbers``; ``custom_field``; ``campaign_type``.
- ``GET …/campaigns?offset=&limit=&status=`` (limit 1-500, default 20), ``GET …/campaigns/{id}``.
- ``PUT …/campaigns/{id}`` with ``action``: pause (created or in-progress), resume (paused),
  complete (paused; numbers left are failed), archive (completed). Without ``action``: the create
  fields, only before ``send_at``. ``DELETE`` only a campaign that has not started.
- ``GET …/campaigns/{id}/call-details?offset=&limit=`` -> one record per call attempt (``call_sid``,
  ``number``, ``name``, ``status`` completed | failed | busy | no-answer, ``duration``,
  ``date_created``, ``start_time``, ``end_time``, ``caller_id``, ``direction``, ``recording_url``,
  ``digits``).

Assumptions where the docs are silent:

- Every error uses the envelope: ``response[0]`` is ``{"code", "status": "failure", "error_data":
  {"code", "message", "description"}}`` and the HTTP status is that code (400 naming the first
  problem; unknown fields are refused; 401; 404 also for a deleted campaign or another account's
  sid; 409 for an action or edit the status does not allow). A body holds exactly one campaign.
- List items, and call-details records, are wrapped like single answers: ``{"code", "status",
  "data"}``. Campaigns come oldest first.
- Status: created until ``send_at`` passes (a campaign without a schedule is in-progress at once);
  resume goes back to created or in-progress by the same rule. Times are written in IST (+05:30).
- ``stats`` has the keys created, pending, in-progress, completed, failed, busy, no-answer.
- No call is placed by itself. ``POST /_sandbox/advance`` gives every number of an in-progress
  campaign an attempt and posts the campaign's callbacks (sandboxes/exotel_calls.py);
  ``POST /_sandbox/campaigns/{id}/complete-calls?count=n`` (no key, not counted, no callback)
  completes the next ``n`` (default: all) numbers, one call each, as if answered.
- Counters at ``GET /_sandbox/calls``: create, list, get, update, pause, resume, cancel (complete),
  archive, delete, recipients_list (call-details).
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandboxes._calls import advance_route
from sandboxes._common import SandboxState, VendorApi, VendorError, counting, read_json
from sandboxes.exotel_calls import advance, call_record, now, waiting

BASE = "/v2/accounts/{sid}/campaigns"
ACTIONS: dict[str, tuple[frozenset[str], str, str]] = {  # action -> (from statuses, to status, counter)
    "pause": (frozenset({"created", "in-progress"}), "paused", "pause"),
    "resume": (frozenset({"paused"}), "created", "resume"),
    "complete": (frozenset({"paused"}), "completed", "cancel"),
    "archive": (frozenset({"completed"}), "archived", "archive"),
}
Number = Annotated[str, StringConstraints(pattern=r"^(\+[1-9]\d{6,14}|0\d{6,14})$")]
Url = Annotated[str, StringConstraints(pattern=r"^https?://")]
STATS = ("in-progress", "completed", "failed", "busy", "no-answer")
FLOW_URL = r"^https?://my\.exotel\.com/[A-Za-z0-9_-]+/exoml/start_voice/\d+$"


def _envelope(method: str, status: int, items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"request_id": secrets.token_hex(16), "method": method, "http_code": status, **extra, "response": items}


def _refuse(status: int, message: str) -> VendorError:
    detail = {"code": 1000 + status, "message": message, "description": message}
    error = {"code": status, "status": "failure", "error_data": detail}
    return VendorError(status, _envelope("", status, [error]))


def _answer(method: str, *campaigns: dict[str, Any], status: int = 200, **extra: Any) -> JSONResponse:
    items = [{"code": 200, "status": "success", "data": campaign} for campaign in campaigns]
    return JSONResponse(_envelope(method, status, items, **extra), status_code=status)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Retries(Strict):
    number_of_retries: int = Field(ge=0, le=3)
    interval_mins: int = Field(ge=1)
    mechanism: Literal["Linear", "Exponential"] = "Linear"
    on_status: list[Literal["busy", "no-answer", "failed"]] = ["busy", "no-answer", "failed"]


class Schedule(Strict):
    send_at: AwareDatetime | None = Field(default=None, strict=False)
    end_at: AwareDatetime | None = Field(default=None, strict=False)

    @model_validator(mode="after")
    def _in_order(self) -> Schedule:
        if self.send_at is not None and self.send_at <= datetime.now(UTC):
            raise ValueError("send_at must be in the future")
        if self.send_at and self.end_at and self.end_at <= self.send_at:
            raise ValueError("end_at must be after send_at")
        return self


class Fields(Strict):
    """What a campaign may set, at create and (before send_at) in an update."""

    name: Annotated[str, StringConstraints(min_length=4)] | None = None
    type: Literal["trans"] = "trans"
    caller_id: Number | None = None
    url: Annotated[str, StringConstraints(pattern=FLOW_URL)] | None = None
    flow_type: Literal["ivr", "greeting"] | None = None
    read_via_text: str | None = None
    repeat_menu_attempts: int | None = Field(default=None, ge=0)
    retries: Retries | None = None
    schedule: Schedule | None = None
    status_callback: Url | None = None
    call_status_callback: Url | None = None
    call_schedule_callback: Url | None = None
    custom_field: str | None = None
    mode: Literal["auto", "custom"] = "auto"
    throttle: int | None = Field(default=None, ge=1)
    call_duplicate_numbers: bool = False


class Create(Fields):
    campaign_type: Literal["static", "dynamic"] = "static"
    from_: list[Number] | None = Field(default=None, alias="from", min_length=1, max_length=5000)
    lists: list[str] | None = Field(default=None, min_length=1, max_length=5)

    @model_validator(mode="after")
    def _complete(self) -> Create:
        if self.caller_id is None:
            raise ValueError("caller_id is mandatory")
        if (self.from_ is None) == (self.lists is None):
            raise ValueError("Either 'from' parameter or 'lists' parameter should be present")
        if self.url is None and self.flow_type is None:
            raise ValueError("url (a call flow) or flow_type is needed")
        return self


class Action(Strict):
    action: Literal["pause", "resume", "complete", "archive"]
    status_callback: Url | None = None
    call_status_callback: Url | None = None
    call_schedule_callback: Url | None = None


class ExotelSandbox:
    """One simulated Exotel account."""

    def __init__(self, api_key: str | None) -> None:
        self.state = SandboxState()
        self.api = VendorApi(self.state, lambda request: _basic_auth(request, api_key), _refuse)

    def app(self) -> Starlette:
        route, one = self.api.route, BASE + "/{id}"
        return self.api.app(
            [
                route("create", BASE, self.create, "POST"),
                route("list", BASE, self.list, "GET"),
                route("get", one, self.get, "GET"),
                Route(one, self.api.guarded(self.put), methods=["PUT"]),
                route("delete", one, self.delete, "DELETE"),
                route("recipients_list", one + "/call-details", self.call_details, "GET"),
                Route("/_sandbox/campaigns/{id}/complete-calls", self.complete_calls, methods=["POST"]),
                advance_route(lambda _account_url: advance(self.state, self._advance)),
            ]
        )

    def _campaign(self, request: Request) -> dict[str, Any]:
        campaign = self.state.campaigns.get(request.path_params["id"])
        if campaign is None or campaign["account_sid"] != request.path_params.get("sid", campaign["account_sid"]):
            raise _refuse(404, f"Campaign {request.path_params['id']} not found")
        return self._advance(campaign)

    @staticmethod
    def _advance(campaign: dict[str, Any]) -> dict[str, Any]:
        send_at = (campaign.get("schedule") or {}).get("send_at")
        if campaign["status"] == "created" and (
            send_at is None or datetime.fromisoformat(send_at) <= datetime.now(UTC)
        ):
            campaign.update(status="in-progress", date_started=campaign["date_started"] or now())
        return campaign

    async def _one(self, request: Request, model: type[Strict]) -> Any:
        body = await self.api.body(request)
        items = body.get("campaigns") if isinstance(body, dict) and set(body) == {"campaigns"} else None
        if not isinstance(items, list) or len(items) != 1:
            raise _refuse(400, 'The body is {"campaigns": [one campaign]}')
        return self.api.parsed(model, items[0])

    async def create(self, request: Request) -> Response:
        spec = await self._one(request, Create)
        sid, created = request.path_params["sid"], now()
        numbers = spec.from_ or []
        campaign = {
            "id": secrets.token_hex(16),
            "account_sid": sid,
            **spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            "name": spec.name or f"{sid} {created[:10]} {created[11:19]}",
            "status": "created",
            "date_created": created,
            "date_updated": created,
            "date_started": None,
            "stats": {"created": len(numbers), "pending": len(numbers), **dict.fromkeys(STATS, 0)},
        }
        campaign["uri"] = f"/v2/accounts/{sid}/campaigns/{campaign['id']}"
        self.state.campaigns[campaign["id"]] = campaign
        self.state.children[campaign["id"]] = []
        return _answer("POST", self._advance(campaign))

    async def list(self, request: Request) -> Response:
        offset, limit = (
            self.api.query_int(request, "offset", 0, 0, None),
            self.api.query_int(request, "limit", 20, 1, 500),
        )
        statuses = {s.strip() for s in request.query_params.get("status", "").split(",") if s.strip()}
        sid = request.path_params["sid"]
        found = [self._advance(c) for c in self.state.campaigns.values() if c["account_sid"] == sid]
        found = [c for c in found if not statuses or c["status"] in statuses]
        page = found[offset : offset + limit]
        metadata = {"count": len(page), "offset": offset, "total": len(found), "limit": limit}
        return _answer("GET", *page, metadata=metadata)

    async def get(self, request: Request) -> Response:
        return _answer("GET", self._campaign(request))

    async def put(self, request: Request) -> Response:
        """An action (pause, resume, complete, archive) or an edit, each counted under its own name."""
        try:
            body = await read_json(request)
        except ValueError:
            body = None
        items = body.get("campaigns") if isinstance(body, dict) else None
        first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
        action = first.get("action")
        name = ACTIONS[action][2] if action in ACTIONS else "update"
        return await counting(self.state, name, self._act if action is not None else self._edit)(request)

    async def _act(self, request: Request) -> Response:
        change = await self._one(request, Action)
        campaign = self._campaign(request)
        allowed, target, _counter = ACTIONS[change.action]
        if campaign["status"] not in allowed:
            raise _refuse(409, f"Cannot {change.action} a campaign that is {campaign['status']}")
        if change.action == "complete":
            stats = campaign["stats"]
            stats.update(failed=stats["failed"] + stats["pending"], pending=0)
        campaign.update(change.model_dump(exclude_none=True, exclude={"action"}), status=target, date_updated=now())
        return _answer("PUT", self._advance(campaign))

    async def _edit(self, request: Request) -> Response:
        change = await self._one(request, Fields)
        campaign = self._campaign(request)
        send_at = (campaign.get("schedule") or {}).get("send_at")
        if campaign["status"] not in ("created", "paused") or send_at is None or campaign["date_started"]:
            raise _refuse(409, "A campaign can be edited only before its send_at")
        campaign.update(change.model_dump(mode="json", exclude_unset=True), date_updated=now())
        return _answer("PUT", self._advance(campaign))

    async def delete(self, request: Request) -> Response:
        campaign = self._campaign(request)
        if campaign["date_started"]:
            raise _refuse(409, "A campaign can be deleted only if it has not started")
        del self.state.campaigns[campaign["id"]]
        return _answer("DELETE", campaign)

    async def call_details(self, request: Request) -> Response:
        calls = self.state.children[self._campaign(request)["id"]]
        offset, limit = (
            self.api.query_int(request, "offset", 0, 0, None),
            self.api.query_int(request, "limit", 20, 1, 500),
        )
        page = calls[offset : offset + limit]
        metadata = {"count": len(page), "offset": offset, "total": len(calls), "limit": limit}
        return _answer("GET", *page, metadata=metadata)

    async def complete_calls(self, request: Request) -> Response:
        """Sandbox control: the next numbers of an in-progress campaign are called and answer."""
        campaign = self.state.campaigns.get(request.path_params["id"])
        if campaign is None or self._advance(campaign)["status"] != "in-progress":
            raise _refuse(409, "No in-progress campaign with this id")
        calls, stats = self.state.children[campaign["id"]], campaign["stats"]
        left = waiting(campaign, calls)
        count = self.api.query_int(request, "count", len(left))
        for number in left[:count]:
            calls.append(call_record(campaign, number, "completed"))
        done = min(count, len(left))
        stats.update(pending=stats["pending"] - done, completed=stats["completed"] + done)
        if not stats["pending"]:
            campaign["status"] = "completed"
        return _answer("POST", campaign)


def _basic_auth(request: Request, api_key: str | None) -> bool:
    """``Authorization: Basic base64(key:token)`` with both parts set (and the key, when one is given)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        key, _, token = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:
        return False
    return scheme == "Basic" and bool(key) and bool(token) and api_key in (None, key)


def create_app(api_key: str | None = None) -> Starlette:
    """A fresh simulated Exotel account; with ``api_key`` only that key is accepted."""
    return ExotelSandbox(api_key).app()
