"""Simulated Hamsa outbound voice-agent campaign API (``https://api.tryhamsa.com``).

Documented (docs.tryhamsa.com create/get/list campaign pages and the seeds), and enforced here:

- Auth: ``Authorization: Token <key>``; anything else (``Bearer <key>``, no header) is a 401.
- ``POST /v1/voice-agents/campaigns``: ``name`` 1-100 characters, ``phoneNumber`` E.164,
  ``voiceAgentId`` UUID, ``recipients`` at least one (each ``phoneNumber``, ``name``,
  ``ignoreE164Validation``), ``sendType`` ``NOW`` | ``SCHEDULED``, ``timeRange`` {``days``
  upper-case weekday names, ``startCallingTime`` / ``endCallingTime`` "HH:MM"},
  ``reservedConcurrency`` integer >= 1, ``scheduledDate`` (ISO 8601) and ``scheduledTimezone``
  (IANA) required when ``SCHEDULED``; optional ``webhookUrl``.
- ``GET /v1/voice-agents/campaigns/{id}``: the campaign plus ``totalRecipients``, ``agentName`` and
  ``recipients`` grouped into ``pending, queued, inProgress, completed, failed, noAnswer``.
- ``GET /v1/voice-agents/campaigns?take=&skip=&voiceAgentId=&search=``: ``{campaigns,
  totalCount, returnedCount}``, each campaign with ``recipientsCount`` instead of recipients.
- Every answer is the envelope ``{success, message, messageKey, data}``.
- ``POST /_sandbox/advance`` (a sandbox addition): every recipient not done yet gets a call, and
  Hamsa's call webhooks are sent to the campaign's ``webhookUrl`` (sandboxes/hamsa_calls.py).

Assumptions where the docs are silent:

- Errors use the same envelope: ``{"success": false, "message": <text>, "messageKey": <KEY>,
  "data": null}``. Keys: ``UNAUTHORIZED`` (401), ``INVALID_JSON`` (400, body is not JSON),
  ``VALIDATION_ERROR`` (400, one message that starts with the first failing field's path, e.g.
  ``recipients[0].phoneNumber must be ...``; also for a body that is not an object, an empty one
  included), ``CAMPAIGN_NOT_FOUND`` (404, also for an id that is not a UUID), ``NOT_FOUND``
  (404, unknown path) and ``METHOD_NOT_ALLOWED`` (405).
- Create answers 201. A new campaign's ``status`` is ``SCHEDULED`` whatever its ``sendType`` (the
  seed shows ``SCHEDULED`` for a ``NOW`` campaign); only ``/_sandbox/advance`` moves it on.
- ``projectId`` and ``userId`` are fixed per app instance; ``phoneNumberId`` is a UUID derived
  from the caller number (the same number always gets the same id). The caller number itself is
  not echoed back (the docs only show ``phoneNumberId``).
- The get answer carries the seed's fields plus ``webhookUrl``, ``userId`` and ``phoneNumberId``
  (the reference says "as above plus ..."); list items carry the create answer's fields plus
  ``recipientsCount``.
- Recipients: ``name`` must be a non-blank string, ``ignoreE164Validation`` a boolean (default
  false; when true any non-blank ``phoneNumber`` is taken), optional ``dynamicVariables`` an
  object of string / number / boolean values (default ``{}``). Each is stored ``PENDING`` with
  ``attempts`` 0, ``maxAttempts`` 3 and null ``latestActionTimestamp``, ``nextRetryAt``,
  ``jobId``, ``lastError`` and ``completedAt``.
- ``timeRange.days`` must be a non-empty list without repeats; the calling window's order is not
  checked (an overnight window is accepted). ``scheduledDate`` may lie in the past.
  ``scheduledDate`` / ``scheduledTimezone`` sent with ``NOW`` are validated and echoed.
- A body with ``NaN`` / ``Infinity`` is invalid JSON (as for a JSON.parse back end).
- ``webhookUrl`` must be an absolute http(s) URL. Optional fields sent as null count as absent.
  Unknown body fields are ignored.
- List: ``take`` defaults to 10, ``skip`` to 0, both non-negative integers of up to 15 digits;
  ``voiceAgentId`` must be a UUID; ``search`` matches a case-insensitive part of the name or the
  id. Newest campaigns come first.
- No update, pause/resume/cancel, delete or add-recipients endpoint exists (none is documented).
- Counters at ``GET /_sandbox/calls``: create, get, list. Refused calls (401, 400, 404) count too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandboxes._calls import advance_route
from sandboxes._common import (
    SandboxState,
    control_routes,
    counting,
    key_accepted,
    read_json,
    utc_now,
)
from sandboxes.hamsa_calls import AGENT_NAME, advance

CAMPAIGNS_PATH = "/v1/voice-agents/campaigns"
WEEKDAYS = frozenset({"MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"})
SEND_TYPES = ("NOW", "SCHEDULED")
# Recipient status word -> group name in the get answer, in the seed's order.
RECIPIENT_GROUPS = {
    "PENDING": "pending",
    "QUEUED": "queued",
    "IN_PROGRESS": "inProgress",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "NO_ANSWER": "noAnswer",
}
MAX_ATTEMPTS = 3
DEFAULT_TAKE = 10

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HH_MM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_DIGITS = re.compile(r"[0-9]{1,15}")
_TIMEZONES = frozenset(available_timezones())
_PHONE_NAMESPACE = uuid.UUID("5b0c1f9e-2d4a-4c55-9a51-6b2f0d3e7a10")

Handler = Callable[[Request], Awaitable[Response]]


class HamsaError(Exception):
    """A request Hamsa refuses; rendered as the error envelope."""

    def __init__(self, status: int, message: str, message_key: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.message_key = message_key


def _invalid(message: str) -> HamsaError:
    return HamsaError(400, message, "VALIDATION_ERROR")


def _envelope(data: Any, message: str, message_key: str, status: int = 200) -> JSONResponse:
    body = {"success": True, "message": message, "messageKey": message_key, "data": data}
    return JSONResponse(body, status_code=status)


def _error_response(error: HamsaError, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "success": False,
        "message": error.message,
        "messageKey": error.message_key,
        "data": None,
    }
    return JSONResponse(body, status_code=error.status, headers=headers)


# --- field checks (each raises HamsaError on the first problem) -------------------------------


def _present(body: dict[str, Any], field: str, where: str = "") -> Any:
    value = body.get(field)
    if value is None:
        raise _invalid(f"{where}{field} is required")
    return value


def _text(value: Any, field: str, max_length: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{field} must be a non-empty string")
    if max_length is not None and len(value) > max_length:
        raise _invalid(f"{field} must be between 1 and {max_length} characters")
    return value


def _e164(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _E164.fullmatch(value):
        raise _invalid(f"{field} must be a phone number in E.164 format")
    return value


def _uuid(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise _invalid(f"{field} must be a UUID")
    return value


def _boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(f"{field} must be a boolean")
    return value


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{field} must be an integer")
    if value < 1:
        raise _invalid(f"{field} must not be less than 1")
    return value


def _iso_datetime(value: Any, field: str) -> str:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _invalid(f"{field} must be an ISO 8601 date-time") from None
    return value


def _timezone(value: Any, field: str) -> str:
    if not isinstance(value, str) or value not in _TIMEZONES:
        raise _invalid(f"{field} must be an IANA time zone")
    return value


def _http_url(value: Any, field: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid(f"{field} must be an http(s) URL")
    return value


def _flat_object(value: Any) -> bool:
    scalars = (str, int, float, bool)
    return isinstance(value, dict) and all(isinstance(item, scalars) for item in value.values())


def _time_range(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("timeRange must be an object")
    days = _present(value, "days", "timeRange.")
    if not isinstance(days, list) or not days:
        raise _invalid("timeRange.days must be a non-empty array")
    known = all(isinstance(day, str) and day in WEEKDAYS for day in days)
    if not known or len(set(days)) != len(days):
        raise _invalid("timeRange.days must hold distinct upper-case weekday names (MONDAY...)")
    window = {}
    for field in ("startCallingTime", "endCallingTime"):
        moment = _present(value, field, "timeRange.")
        if not isinstance(moment, str) or not _HH_MM.fullmatch(moment):
            raise _invalid(f"timeRange.{field} must be a time in HH:MM format")
        window[field] = moment
    return {"days": list(days), **window}


def _recipient(value: Any, index: int) -> dict[str, Any]:
    where = f"recipients[{index}]."
    if not isinstance(value, dict):
        raise _invalid(f"recipients[{index}] must be an object")
    ignore = value.get("ignoreE164Validation")
    ignore = False if ignore is None else _boolean(ignore, f"{where}ignoreE164Validation")
    phone = _present(value, "phoneNumber", where)
    check_phone = _text if ignore else _e164
    variables = value.get("dynamicVariables")
    if variables is not None and not _flat_object(variables):
        raise _invalid(f"{where}dynamicVariables must be an object of string, number or boolean")
    return {
        "phoneNumber": check_phone(phone, f"{where}phoneNumber"),
        "name": _text(_present(value, "name", where), f"{where}name"),
        "ignoreE164Validation": ignore,
        "dynamicVariables": dict(variables or {}),
    }


def _recipients(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _invalid("recipients must contain at least 1 element")
    return [_recipient(item, index) for index, item in enumerate(value)]


def _schedule(body: dict[str, Any]) -> dict[str, Any]:
    send_type = _present(body, "sendType")
    if send_type not in SEND_TYPES:
        raise _invalid("sendType must be one of the following values: NOW, SCHEDULED")
    date, zone = body.get("scheduledDate"), body.get("scheduledTimezone")
    if send_type == "SCHEDULED":
        date = _present(body, "scheduledDate")
        zone = _present(body, "scheduledTimezone")
    return {
        "sendType": send_type,
        "scheduledDate": None if date is None else _iso_datetime(date, "scheduledDate"),
        "scheduledTimezone": None if zone is None else _timezone(zone, "scheduledTimezone"),
    }


def _create_input(body: Any) -> dict[str, Any]:
    """The checked create body, in the order Hamsa would report the first problem."""
    if not isinstance(body, dict):
        raise _invalid("request body must be a JSON object")
    webhook = body.get("webhookUrl")
    return {
        "name": _text(_present(body, "name"), "name", max_length=100),
        "phoneNumber": _e164(_present(body, "phoneNumber"), "phoneNumber"),
        "voiceAgentId": _uuid(_present(body, "voiceAgentId"), "voiceAgentId"),
        "recipients": _recipients(_present(body, "recipients")),
        **_schedule(body),
        "timeRange": _time_range(_present(body, "timeRange")),
        "reservedConcurrency": _positive_int(_present(body, "reservedConcurrency"), "reservedConcurrency"),
        "webhookUrl": None if webhook is None else _http_url(webhook, "webhookUrl"),
    }


async def _json_body(request: Request) -> Any:
    """The parsed body; NaN/Infinity and absurd nesting count as invalid JSON, as in JSON.parse."""
    try:
        body = await read_json(request)
    except ValueError:
        raise HamsaError(400, "Request body is not valid JSON", "INVALID_JSON") from None
    return body


def _page_number(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw):
        raise _invalid(f"{name} must be a non-negative integer")
    return int(raw)


# --- records and views -------------------------------------------------------------------------


def _recipient_record(campaign_id: str, fields: dict[str, Any], now: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "campaignId": campaign_id,
        **fields,
        "status": "PENDING",
        "latestActionTimestamp": None,
        "attempts": 0,
        "maxAttempts": MAX_ATTEMPTS,
        "nextRetryAt": None,
        "jobId": None,
        "lastError": None,
        "completedAt": None,
        "createdAt": now,
        "updatedAt": now,
    }


def _grouped(recipients: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {group: [] for group in RECIPIENT_GROUPS.values()}
    for recipient in recipients:
        groups[RECIPIENT_GROUPS[recipient["status"]]].append(recipient)
    return groups


def _matches(campaign: dict[str, Any], agent_id: str | None, search: str | None) -> bool:
    if agent_id is not None and campaign["voiceAgentId"].lower() != agent_id.lower():
        return False
    if not search:
        return True
    needle = search.lower()
    return needle in campaign["name"].lower() or needle in campaign["id"]


class _HamsaApi:
    """Route handlers over one account's state."""

    def __init__(self, state: SandboxState, api_key: str | None) -> None:
        self.state = state
        self.api_key = api_key
        self.project_id = str(uuid.uuid4())
        self.user_id = str(uuid.uuid4())

    def guarded(self, handler: Handler) -> Handler:
        """Check the ``Token`` header, then turn refusals into the error envelope."""

        async def run(request: Request) -> Response:
            if not key_accepted(request, "Authorization", "Token ", self.api_key):
                return _error_response(HamsaError(401, "Unauthorized", "UNAUTHORIZED"))
            try:
                return await handler(request)
            except HamsaError as error:
                return _error_response(error)

        return run

    def _campaign_record(self, fields: dict[str, Any], now: str) -> dict[str, Any]:
        """A new campaign as the create answer shows it (the seed's field order)."""
        return {
            "id": str(uuid.uuid4()),
            "name": fields["name"],
            "status": "SCHEDULED",
            "sendType": fields["sendType"],
            "scheduledDate": fields["scheduledDate"],
            "scheduledTimezone": fields["scheduledTimezone"],
            "timeRange": fields["timeRange"],
            "reservedConcurrency": fields["reservedConcurrency"],
            "webhookUrl": fields["webhookUrl"],
            "projectId": self.project_id,
            "userId": self.user_id,
            "voiceAgentId": fields["voiceAgentId"],
            "phoneNumberId": str(uuid.uuid5(_PHONE_NAMESPACE, fields["phoneNumber"])),
            "createdAt": now,
            "updatedAt": now,
        }

    def _campaign(self, campaign_id: str) -> dict[str, Any]:
        campaign = self.state.campaigns.get(campaign_id.lower())
        if campaign is None:
            raise HamsaError(404, "Campaign not found", "CAMPAIGN_NOT_FOUND")
        return campaign

    async def create(self, request: Request) -> Response:
        fields = _create_input(await _json_body(request))
        now = utc_now()
        campaign = self._campaign_record(fields, now)
        self.state.campaigns[campaign["id"]] = campaign
        self.state.children[campaign["id"]] = [
            _recipient_record(campaign["id"], item, now) for item in fields["recipients"]
        ]
        return _envelope(campaign, "Campaign created successfully", "CAMPAIGN_CREATED_SUCCESSFULLY", 201)

    async def get(self, request: Request) -> Response:
        campaign = self._campaign(request.path_params["campaign_id"])
        recipients = self.state.children[campaign["id"]]
        data = {
            **campaign,
            "totalRecipients": len(recipients),
            "agentName": AGENT_NAME,
            "recipients": _grouped(recipients),
        }
        return _envelope(data, "Campaign retrieved successfully", "CAMPAIGN_RETRIEVED_SUCCESSFULLY")

    async def list(self, request: Request) -> Response:
        take = _page_number(request, "take", DEFAULT_TAKE)
        skip = _page_number(request, "skip", 0)
        agent_id = request.query_params.get("voiceAgentId")
        if agent_id is not None:
            _uuid(agent_id, "voiceAgentId")
        search = request.query_params.get("search")
        found = [
            campaign for campaign in reversed(self.state.campaigns.values()) if _matches(campaign, agent_id, search)
        ]
        page = [
            {**campaign, "recipientsCount": len(self.state.children[campaign["id"]])}
            for campaign in found[skip : skip + take]
        ]
        data = {"campaigns": page, "totalCount": len(found), "returnedCount": len(page)}
        return _envelope(data, "Campaigns retrieved successfully", "CAMPAIGNS_RETRIEVED_SUCCESSFULLY")


async def _http_error(_: Request, exc: Exception) -> Response:
    """Unknown paths and methods, in the envelope rather than Starlette's plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    headers = exc.headers if isinstance(exc, HTTPException) else None
    if status == 405:
        return _error_response(HamsaError(405, "Method not allowed", "METHOD_NOT_ALLOWED"), headers)
    return _error_response(HamsaError(status, "Not found", "NOT_FOUND"), headers)


def create_app(api_key: str | None = None) -> Starlette:
    """A fresh simulated Hamsa account; with ``api_key`` only that key is accepted."""
    state = SandboxState()
    api = _HamsaApi(state, api_key)

    def route(path: str, name: str, handler: Handler, method: str) -> Route:
        return Route(path, counting(state, name, api.guarded(handler)), methods=[method])

    routes = [
        route(CAMPAIGNS_PATH, "create", api.create, "POST"),
        route(CAMPAIGNS_PATH, "list", api.list, "GET"),
        route(CAMPAIGNS_PATH + "/{campaign_id}", "get", api.get, "GET"),
        *control_routes(state),
        advance_route(lambda _account_url: advance(state, api.project_id)),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
