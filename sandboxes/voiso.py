"""Simulated Voiso dialer campaign API, v4 (``https://{cluster_id}.voiso.com/api/v4``).

Documented (developers.voiso.com: Get campaign, Get list of campaigns, Pause campaign, Add leads
to a campaign, Create campaign description, Error codes; docs.voiso.com "Running an API
campaign"), and enforced here:

- Auth: ``Authorization: Bearer <key>``; anything else is a 401.
- ``GET /api/v4/campaigns/{campaign_id}`` (integer id) -> ``{"campaign": {...}}`` with the seed's
  fields: id, name, status, strategy, dial_level, dial_level_override, max_dial_time,
  max_wait_time, max_dial_attempts, amd_enabled, amd_voicemail_message, caller_id_sets,
  use_local_caller_id, asr_optimization_enabled, follow_up_mode, created_at, updated_at.
- ``GET /api/v4/campaigns?limit=&offset=&name=&status=&strategy=&live=`` -> ``{"campaigns":
  [...], "metadata": {"total": n}}``; ``limit`` defaults to 100 and may not exceed 100, ``offset``
  defaults to 0, ``name`` is a partial match.
- ``POST /api/v4/campaigns/{id}/pause`` (no body) -> the updated campaign object, unwrapped, as
  in the docs' example; 409 when the campaign is not active.
- ``POST /api/v4/campaigns/{id}/leads`` with a JSON array of ``{phone_number (required), name,
  source {system, url}, priority 1-1000, active, context_headers}`` -> ``{"leads_import":
  {"created": [...], "rejected": [...], "duplicates": [...]}}`` listing the request's numbers. At
  most 1000 leads a call; invalid numbers are rejected, numbers already in the campaign (or
  repeated in the request) are duplicates.
- Create fields: ``name`` (required, unique), ``campaign_type`` (required, ``"live"``),
  ``timezone`` (required, IANA), ``start_hour`` / ``end_hour`` ("HH:MM"), ``retry_attempts`` and
  ``retry_interval`` (minutes) integers >= 0, ``agents`` (sign-in e-mails), ``teams`` (names).
- ``start`` needs at least one agent and one lead; ``pause`` and ``stop`` only act on an active
  campaign.
- Errors: ``{"error": "Bad Request" | "Unauthorized" | "Not found" | ...}`` for 400 / 401 / 404;
  ``{"errors": {"<field>": ["<message>", ...]}}`` for 409 and 422.

Assumptions where the docs are silent:

- Create is ``POST /api/v4/campaigns`` and answers 201 ``{"campaign": {...}}`` (the get shape).
  Validation failures are 422 with every failing field listed; a taken name (compared
  case-insensitively, ignoring surrounding blanks) is 422 ``{"name": ["has already been taken"]}``.
  A body that is not a JSON object (or not JSON) is 400 ``{"error": "Bad Request"}``.
- Create also takes the get fields ``strategy`` (simple | predictive_ai, default simple),
  ``dial_level`` (number >= 1, default 1), ``dial_level_override``, ``max_dial_time`` (default
  60), ``max_wait_time`` (default 5), ``amd_enabled``, ``amd_voicemail_message``,
  ``use_local_caller_id``, ``asr_optimization_enabled`` (default false), ``follow_up_mode``
  (default "timer") and ``caller_id_sets`` ([{phone_numbers: [digits]}]; a number with ``+``,
  non-digits, a leading 0 or not 7-15 digits is refused), plus ``caller_id_group`` (a name, kept
  but not shown). ``agents`` must look like e-mail addresses (no agent directory is simulated).
  Unknown fields are ignored; optional fields sent as null count as absent.
- The stored campaign starts as ``draft`` with ``max_dial_attempts = retry_attempts + 1``
  (retry_attempts defaults to 0). Create-only settings (campaign_type, timezone, hours,
  retry_interval, agents, teams, caller_id_group) are kept but, like the docs' get answer, not
  shown.
- Lifecycle: ``POST /api/v4/campaigns/{id}/start`` and ``.../stop`` mirror the documented
  ``.../pause``. start: draft | paused -> active; pause: active -> paused; stop: active ->
  stopped. Changes are immediate (no ``pausing`` / ``stopping`` step). Refusals are 409 with
  ``{"errors": {"status": [...]}}``, or for a start without agents/leads ``{"errors": {"agents":
  [...], "leads": [...]}}``.
- List: ``limit`` 1-100, ``offset`` >= 0, ``status`` / ``strategy`` must be known words,
  ``live`` is ``true`` | ``false`` (every campaign here is live); otherwise 422. ``method`` is
  accepted and ignored. Campaigns come in id order.
- Leads: the add answers 200; an empty array or more than 1000 leads is 422 ``{"leads": [...]}``;
  a lead with a wrongly typed field is 422 keyed ``leads[<index>].<field>`` (nothing is added). A
  number is valid when it is 7-15 digits without ``+`` and not starting with 0. Leads can be
  added in any status. The "two seconds between calls" advice is not enforced (calls never
  overlap here). There is no endpoint to read leads back.
- Counters at ``GET /_sandbox/calls``: create, get, list, resume (start), pause, cancel (stop),
  recipients_add (leads). Refused calls (401, 404, ...) count too.
- Unknown paths and non-integer ids are 404 ``{"error": "Not found"}``; a known path with the
  wrong method is 405 ``{"error": "Method Not Allowed"}``. ``NaN`` / ``Infinity`` in a body is
  not JSON (400). There is no delete and no update.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import available_timezones

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

CAMPAIGNS_PATH = "/api/v4/campaigns"
STATUSES = frozenset(
    {
        "draft",
        "active",
        "paused",
        "stopping",
        "completed",
        "processing",
        "stopped",
        "auto_paused",
        "pausing",
        "auto_pausing",
        "import_error",
    }
)
STRATEGIES = ("simple", "predictive_ai")
MAX_LEADS_PER_CALL = 1000
MAX_PAGE = 100
# operation -> (statuses it may start from, status it leads to)
OPERATIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"draft", "paused"}), "active"),
    "pause": (frozenset({"active"}), "paused"),
    "stop": (frozenset({"active"}), "stopped"),
}
# operation -> counter name at /_sandbox/calls
OPERATION_COUNTERS = {"start": "resume", "pause": "pause", "stop": "cancel"}

_DIGITS = re.compile(r"[0-9]+")
_SHORT_DIGITS = re.compile(r"[0-9]{1,15}")
_HH_MM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TIMEZONES = frozenset(available_timezones())

Handler = Callable[[Request], Awaitable[Response]]
Check = Callable[[Any], str | None]
Spec = dict[str, tuple[bool, Check]]
Errors = dict[str, list[str]]


class VoisoError(Exception):
    """A refused request and the body Voiso answers it with."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body

    @classmethod
    def simple(cls, status: int, text: str) -> VoisoError:
        return cls(status, {"error": text})

    @classmethod
    def fields(cls, errors: Errors, status: int = 422) -> VoisoError:
        return cls(status, {"errors": errors})


# --- value checks: each returns None when the value is fine, else a message ---------------------


def _filled_string(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a filled string"


def _is_string(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be boolean"


def _hh_mm(value: Any) -> str | None:
    ok = isinstance(value, str) and _HH_MM.fullmatch(value)
    return None if ok else "must be a time in HH:MM format"


def _time_zone(value: Any) -> str | None:
    ok = isinstance(value, str) and value in _TIMEZONES
    return None if ok else "must be an IANA time zone"


def _email(value: Any) -> str | None:
    ok = isinstance(value, str) and _EMAIL.fullmatch(value)
    return None if ok else "must be an e-mail address"


def _one_of(*allowed: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in allowed else f"must be one of: {', '.join(allowed)}"

    return check


def _integer(minimum: int, maximum: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            return f"must be {bound}"
        return None

    return check


def _number(minimum: float) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        return None if value >= minimum else f"must be >= {minimum}"

    return check


def _phone_digits(value: Any) -> str | None:
    """Why ``value`` is not a number in E.164 without ``+``; None when it is one."""
    if not isinstance(value, str):
        return "must be a string"
    if value.startswith("+"):
        return "must be digits without a leading '+'"
    if not _DIGITS.fullmatch(value):
        return "must contain digits only"
    if not 7 <= len(value) <= 15 or value.startswith("0"):
        return "must be 7 to 15 digits starting with a country code"
    return None


def _list_of(item: Check, min_items: int = 0) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return "must be an array"
        if len(value) < min_items:
            return f"must have at least {min_items} item(s)"
        for index, element in enumerate(value):
            message = item(element)
            if message:
                return f"[{index}] {message}"
        return None

    return check


def _string_map(value: Any) -> str | None:
    ok = isinstance(value, dict) and all(isinstance(item, str) for item in value.values())
    return None if ok else "must be an object of strings"


def _object_of(spec: Spec) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return "must be an object"
        first = next(iter(_validate(value, spec).items()), None)
        return None if first is None else f"{first[0]} {first[1][0]}"

    return check


def _validate(body: dict[str, Any], spec: Spec, prefix: str = "") -> Errors:
    """Every problem of ``body`` against ``spec``, keyed by (prefixed) field name."""
    errors: Errors = {}
    for field, (required, check) in spec.items():
        value = body.get(field)
        if value is None and not required:
            continue
        message = "is missing" if value is None else check(value)
        if message:
            errors.setdefault(prefix + field, []).append(message)
    return errors


_OVERRIDE: Spec = {
    "enabled": (False, _boolean),
    "value": (False, _number(1)),
    "active_agents_threshold": (False, _integer(0)),
}
_VOICEMAIL: Spec = {
    "enabled": (False, _boolean),
    "voice_message": (
        False,
        _object_of({"type": (False, _filled_string), "name": (False, _filled_string)}),
    ),
}
_CREATE: Spec = {
    "name": (True, _filled_string),
    "campaign_type": (True, _one_of("live")),
    "timezone": (True, _time_zone),
    "start_hour": (False, _hh_mm),
    "end_hour": (False, _hh_mm),
    "retry_attempts": (False, _integer(0)),
    "retry_interval": (False, _integer(0)),
    "agents": (False, _list_of(_email)),
    "teams": (False, _list_of(_filled_string)),
    "caller_id_group": (False, _filled_string),
    "caller_id_sets": (
        False,
        _list_of(_object_of({"phone_numbers": (True, _list_of(_phone_digits, min_items=1))})),
    ),
    "strategy": (False, _one_of(*STRATEGIES)),
    "dial_level": (False, _number(1)),
    "dial_level_override": (False, _object_of(_OVERRIDE)),
    "max_dial_time": (False, _integer(1)),
    "max_wait_time": (False, _integer(1)),
    "amd_enabled": (False, _boolean),
    "amd_voicemail_message": (False, _object_of(_VOICEMAIL)),
    "use_local_caller_id": (False, _boolean),
    "asr_optimization_enabled": (False, _boolean),
    "follow_up_mode": (False, _filled_string),
}
_LEAD: Spec = {
    "phone_number": (True, _is_string),
    "name": (False, _is_string),
    "source": (False, _object_of({"system": (False, _is_string), "url": (False, _is_string)})),
    "priority": (False, _integer(1, 1000)),
    "active": (False, _boolean),
    "context_headers": (False, _string_map),
}
_LIST_QUERY: Spec = {
    "limit": (False, _integer(1, MAX_PAGE)),
    "offset": (False, _integer(0)),
    "status": (False, _one_of(*sorted(STATUSES))),
    "strategy": (False, _one_of(*STRATEGIES)),
    "live": (False, _one_of("true", "false")),
}
_SETTINGS = (
    "campaign_type",
    "timezone",
    "start_hour",
    "end_hour",
    "retry_interval",
    "agents",
    "teams",
    "caller_id_group",
)


# --- records -------------------------------------------------------------------------------------


def _given(body: dict[str, Any], field: str, default: Any) -> Any:
    value = body.get(field)
    return default if value is None else value


def _merged(body: dict[str, Any], field: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """A nested object with only its known keys, defaults filling the gaps."""
    given = body.get(field) or {}
    return {key: _given(given, key, default) for key, default in defaults.items()}


def _voicemail(body: dict[str, Any]) -> dict[str, Any]:
    message = _merged(body, "amd_voicemail_message", {"enabled": False, "voice_message": None})
    if message["voice_message"] is not None:
        message["voice_message"] = _merged(message, "voice_message", {"type": None, "name": None})
    return message


def _campaign_record(number: int, body: dict[str, Any], now: str) -> dict[str, Any]:
    """The campaign as the get answer shows it."""
    override_defaults = {"enabled": False, "value": None, "active_agents_threshold": None}
    return {
        "id": number,
        "name": body["name"].strip(),
        "status": "draft",
        "strategy": _given(body, "strategy", "simple"),
        "dial_level": _given(body, "dial_level", 1),
        "dial_level_override": _merged(body, "dial_level_override", override_defaults),
        "max_dial_time": _given(body, "max_dial_time", 60),
        "max_wait_time": _given(body, "max_wait_time", 5),
        "max_dial_attempts": _given(body, "retry_attempts", 0) + 1,
        "amd_enabled": _given(body, "amd_enabled", False),
        "amd_voicemail_message": _voicemail(body),
        "caller_id_sets": [
            {"phone_numbers": list(item["phone_numbers"])} for item in _given(body, "caller_id_sets", [])
        ],
        "use_local_caller_id": _given(body, "use_local_caller_id", False),
        "asr_optimization_enabled": _given(body, "asr_optimization_enabled", False),
        "follow_up_mode": _given(body, "follow_up_mode", "timer"),
        "created_at": now,
        "updated_at": now,
    }


def _lead_record(item: dict[str, Any], now: str) -> dict[str, Any]:
    return {
        "phone_number": item["phone_number"],
        "name": item.get("name"),
        "source": _merged(item, "source", {"system": None, "url": None}),
        "priority": item.get("priority"),
        "active": _given(item, "active", True),
        "context_headers": dict(item.get("context_headers") or {}),
        "created_at": now,
    }


async def _json_body(request: Request, kind: type) -> Any:
    """The body when it is JSON of the ``kind`` expected (NaN/Infinity are not JSON)."""
    try:
        body = await read_json(request)
    except ValueError:
        raise VoisoError.simple(400, "Bad Request") from None
    if not isinstance(body, kind):
        raise VoisoError.simple(400, "Bad Request")
    return body


def _list_query(request: Request) -> dict[str, Any]:
    """The paging and filters of a list request, defaults filled in (422 when malformed)."""
    query: dict[str, Any] = {key: request.query_params[key] for key in _LIST_QUERY if key in request.query_params}
    for field in ("limit", "offset"):
        if field in query and _SHORT_DIGITS.fullmatch(query[field]):
            query[field] = int(query[field])
    errors = _validate(query, _LIST_QUERY)
    if errors:
        raise VoisoError.fields(errors)
    return {"limit": MAX_PAGE, "offset": 0, "name": request.query_params.get("name"), **query}


def _listed(campaign: dict[str, Any], query: dict[str, Any]) -> bool:
    name = query["name"]
    if name and name.lower() not in campaign["name"].lower():
        return False
    if query.get("live") == "false":
        return False
    return all(campaign[key] == query[key] for key in ("status", "strategy") if key in query)


def _import_leads(leads: list[dict[str, Any]], items: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Add the valid, new numbers to ``leads``; sort every number into its outcome."""
    known = {lead["phone_number"] for lead in leads}
    result: dict[str, list[str]] = {"created": [], "rejected": [], "duplicates": []}
    now = utc_now()
    for item in items:
        number = item["phone_number"]
        if _phone_digits(number):
            result["rejected"].append(number)
        elif number in known:
            result["duplicates"].append(number)
        else:
            known.add(number)
            leads.append(_lead_record(item, now))
            result["created"].append(number)
    return result


class _VoisoApi:
    """Route handlers over one contact centre's state."""

    def __init__(self, state: SandboxState, api_key: str | None) -> None:
        self.state = state
        self.api_key = api_key
        self.settings: dict[str, dict[str, Any]] = {}

    def guarded(self, handler: Handler) -> Handler:
        """Check the ``Bearer`` header, then turn refusals into Voiso's error bodies."""

        async def run(request: Request) -> Response:
            if not key_accepted(request, "Authorization", "Bearer ", self.api_key):
                return JSONResponse({"error": "Unauthorized"}, status_code=401)
            try:
                return await handler(request)
            except VoisoError as error:
                return JSONResponse(error.body, status_code=error.status)

        return run

    def _campaign(self, request: Request) -> dict[str, Any]:
        raw = request.path_params["campaign_id"]
        key = (raw.lstrip("0") or "0") if _DIGITS.fullmatch(raw) else None
        campaign = self.state.campaigns.get(key) if key else None
        if campaign is None:
            raise VoisoError.simple(404, "Not found")
        return campaign

    def _name_taken(self, name: str) -> bool:
        wanted = name.strip().lower()
        return any(c["name"].lower() == wanted for c in self.state.campaigns.values())

    async def create(self, request: Request) -> Response:
        body = await _json_body(request, dict)
        errors = _validate(body, _CREATE)
        if "name" not in errors and self._name_taken(body["name"]):
            errors["name"] = ["has already been taken"]
        if errors:
            raise VoisoError.fields(errors)
        campaign = _campaign_record(self.state.next_number(), body, utc_now())
        key = str(campaign["id"])
        self.state.campaigns[key] = campaign
        self.state.children[key] = []
        self.settings[key] = {field: body.get(field) for field in _SETTINGS}
        return JSONResponse({"campaign": campaign}, status_code=201)

    async def get(self, request: Request) -> Response:
        return JSONResponse({"campaign": self._campaign(request)})

    async def list(self, request: Request) -> Response:
        query = _list_query(request)
        found = [c for c in self.state.campaigns.values() if _listed(c, query)]
        page = found[query["offset"] : query["offset"] + query["limit"]]
        return JSONResponse({"campaigns": page, "metadata": {"total": len(found)}})

    def _start_blockers(self, key: str) -> Errors:
        settings, errors = self.settings[key], {}
        if not (settings["agents"] or settings["teams"]):
            errors["agents"] = ["at least one agent must be assigned to start the campaign"]
        if not self.state.children[key]:
            errors["leads"] = ["at least one lead must be added to start the campaign"]
        return errors

    def operation(self, name: str) -> Handler:
        """The handler for ``POST .../{id}/<name>`` (start, pause or stop)."""
        allowed_from, target = OPERATIONS[name]

        async def run(request: Request) -> Response:
            campaign = self._campaign(request)
            if campaign["status"] not in allowed_from:
                message = f"cannot {name} a campaign that is {campaign['status']}"
                raise VoisoError.fields({"status": [message]}, status=409)
            blockers = self._start_blockers(str(campaign["id"])) if name == "start" else {}
            if blockers:
                raise VoisoError.fields(blockers, status=409)
            campaign.update(status=target, updated_at=utc_now())
            return JSONResponse(campaign)

        return run

    async def add_leads(self, request: Request) -> Response:
        campaign = self._campaign(request)
        items = await _json_body(request, list)
        if not items or len(items) > MAX_LEADS_PER_CALL:
            raise VoisoError.fields({"leads": [f"must hold 1 to {MAX_LEADS_PER_CALL} leads"]})
        errors: Errors = {}
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                errors[f"leads[{index}]"] = ["must be an object"]
            else:
                errors.update(_validate(item, _LEAD, prefix=f"leads[{index}]."))
        if errors:
            raise VoisoError.fields(errors)
        result = _import_leads(self.state.children[str(campaign["id"])], items)
        return JSONResponse({"leads_import": result})


async def _http_error(_: Request, exc: Exception) -> Response:
    """Unknown paths and methods, in Voiso's simple error shape."""
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return JSONResponse({"error": "Method Not Allowed"}, status_code=405, headers=exc.headers)
    return JSONResponse({"error": "Not found"}, status_code=404)


def create_app(api_key: str | None = None) -> Starlette:
    """A fresh simulated Voiso contact centre; with ``api_key`` only that key is accepted."""
    state = SandboxState()
    api = _VoisoApi(state, api_key)
    one = CAMPAIGNS_PATH + "/{campaign_id}"

    def route(path: str, name: str, handler: Handler, method: str = "POST") -> Route:
        return Route(path, counting(state, name, api.guarded(handler)), methods=[method])

    routes = [
        route(CAMPAIGNS_PATH, "create", api.create),
        route(CAMPAIGNS_PATH, "list", api.list, "GET"),
        route(one, "get", api.get, "GET"),
        *(route(f"{one}/{op}", OPERATION_COUNTERS[op], api.operation(op)) for op in OPERATIONS),
        route(one + "/leads", "recipients_add", api.add_leads),
        *control_routes(state),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
