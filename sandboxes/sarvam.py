"""Simulated Sarvam scheduling API: campaigns, status actions and cohort uploads.

Serves what lives below the real base URL ``https://apps.sarvam.ai/api/scheduling``. Every vendor
path starts ``/v1/orgs/{org_id}/workspaces/{workspace_id}`` (``…`` below); records are kept per
org/workspace pair, so a campaign is not found under another workspace.

Endpoints (operation name counted in ``GET /_sandbox/calls``):

* ``POST …/campaigns`` (create) → 200, the summary metadata of the new campaign;
* ``GET …/campaigns?offset=&limit=`` (list) → ``{items, total, limit, offset, next_page_uri,
  prev_page_uri}`` with summary items;
* ``GET …/campaigns/{campaign_id}`` (get) → the full record, keys as in the seed;
* ``PATCH …/campaigns/{campaign_id}`` (update) → the full record;
* ``PUT …/campaigns/{campaign_id}/status`` ``{"action": "pause"|"resume"|"cancel"}`` (status) →
  the full record;
* ``POST …/campaigns/{campaign_id}/cohorts/upload`` multipart (recipients_add) → the cohort;
* ``GET …/campaigns/{campaign_id}/cohorts?offset=&limit=`` (recipients_list) → a page of cohorts;
* ``GET …/campaigns/{campaign_id}/cohorts/{cohort_id}/records?offset=&limit=`` (recipients_list)
  → a page of ``{phone_number, user_identifier, app_variables, status}``;
* ``POST /_sandbox/advance``: every pending recipient of a running campaign gets a call, and its
  campaign webhook is sent (sandboxes/sarvam_calls.py, signed with ``SIGNING_SECRET``).

Error shapes (FastAPI style):

* 401 ``{"detail": "Invalid or missing API key"}`` unless ``X-API-Key: <key>`` is sent;
* 400 ``{"detail": "Malformed JSON body"}`` (also for a malformed multipart body);
* 404 ``{"detail": "Campaign not found"}`` / ``"Cohort not found"`` / ``"Not Found"``;
* 409 ``{"detail": "<why>"}`` for an action or edit the campaign's status does not allow;
* 422 ``{"detail": [{"loc": ["body"|"query", ...], "msg": ..., "type": ...}]}`` (pydantic v2
  messages and types, as FastAPI reports them).

Assumptions where the docs are silent:

* create answers 200 (FastAPI's default; the docs list no 201); ``campaign_id`` and ``cohort_id``
  are UUID strings; ``created_by``/``updated_by`` are ``"api-key"``;
* request models ignore unknown keys (FastAPI default); ``app_config.app_type`` defaults to
  ``agent`` and is mirrored with ``app_id``/``app_version`` at the top level of the record;
* ``app_config.connection_configs`` is required (at least one), each with ``connection_id`` and at
  least one E.164 phone number (``+`` then 7-15 digits); ``weight`` ≥ 1 defaults to 1;
* ``retry_config`` is optional (defaults: 0 retries, every ``retry_on`` reason disabled,
  ``retry_interval_minutes: []``); ``retry_interval_minutes`` may be a number or a list (the docs
  show both) and is stored as sent;
* timestamps without an offset are UTC; all are returned in UTC (``…Z``); an end before or equal
  to the start is rejected, an end in the past is not (the campaign then reads as ``ended``);
* ``allowed_schedule.timezone`` defaults to ``Asia/Kolkata`` and must be an IANA name;
  ``allowed_start_time`` must be before ``allowed_end_time`` (no windows across midnight);
* status follows the clock on every read: scheduled → active once ``start_timestamp`` is reached,
  any non-terminal status → ended once ``end_timestamp`` has passed; a resume answers
  ``scheduled`` and activates on a later read; ``ended``/``cancelled`` are terminal (409);
* PATCH accepts ``name``, ``description``, ``app_config`` (deep-merged; lists replaced),
  ``start_timestamp``, ``end_timestamp``, ``allowed_schedule`` (deep-merged) only while scheduled or
  paused (else 409); the merged campaign is validated like a create;
* the list of campaigns returns summary items, newest first (as the cohort list's documented
  default ``sort_by=created_at, sort_order=desc``); ``limit`` defaults to 10, at most 100;
* cohort upload needs a scheduled, active or paused campaign (else 409); the transformation file
  is ``{"phone_number": col, "user_identifier": col?, "app_variables": [col, ...]?}`` (other keys,
  such as ``app_overrides``, are ignored) and every named column must be in the CSV header;
  a row is rejected when its phone number is not E.164 or repeats one earlier in the file;
* the upload answers ``status: "processing"`` with the final ``result`` counts; processing is
  instant, so the cohort then lists as ``completed`` (``failed`` when no row was valid);
* the records listing is a sandbox addition so the gateway can list recipients; it holds the valid
  rows in file order with ``status: "pending"``; one gateway recipients listing may therefore
  count several ``recipients_list`` calls (the cohorts page plus one records page per cohort).

``create_app`` also takes ``clock`` (a callable returning an aware ``datetime``) so tests can move
time and see scheduled → active → ended.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import uuid4
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
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
from sandboxes.sarvam_calls import SIGNING_SECRET, advance

PREFIX = "/v1/orgs/{org_id}/workspaces/{workspace_id}"
ACTOR = "api-key"
E164_PATTERN = r"^\+[1-9]\d{6,14}$"
E164 = re.compile(E164_PATTERN)
COHORT_NAME_PATTERN = r"^[\w\- ]{1,50}$"
COHORT_NAME = re.compile(COHORT_NAME_PATTERN)

TERMINAL = frozenset({"ended", "cancelled"})
EDITABLE = frozenset({"scheduled", "paused"})
ACCEPTS_COHORTS = frozenset({"scheduled", "active", "paused"})
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "pause": (frozenset({"scheduled", "active"}), "paused"),
    "resume": (frozenset({"paused"}), "scheduled"),
    "cancel": (frozenset({"scheduled", "active", "paused"}), "cancelled"),
}
SPEC_FIELDS = (
    "name",
    "description",
    "app_config",
    "start_timestamp",
    "end_timestamp",
    "allowed_schedule",
)
SUMMARY_FIELDS = (
    "name",
    "campaign_id",
    "status",
    "app_id",
    "created_by",
    "created_at",
    "updated_at",
    "description",
    "app_type",
    "app_version",
    "updated_by",
)

Clock = Callable[[], datetime]
Handler = Callable[[Request], Awaitable[Response]]
Weekday = Literal["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
PhoneNumber = Annotated[str, StringConstraints(pattern=E164_PATTERN)]
PositiveMinutes = Annotated[int, Field(ge=1)]
Model = TypeVar("Model", bound=BaseModel)


class SarvamError(Exception):
    """An answer in Sarvam's FastAPI error shape: ``{"detail": ...}``."""

    def __init__(self, status: int, detail: str | list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _error_item(loc: Sequence[str | int], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def _unprocessable(loc: Sequence[str | int], message: str) -> SarvamError:
    """A 422 for a rule pydantic cannot express, worded like a pydantic ``value_error``."""
    return SarvamError(422, [_error_item(loc, f"Value error, {message}", "value_error")])


def _validate(model: type[Model], data: Any, *where: str) -> Model:
    """``model`` validated from ``data``; a 422 with every problem, each located under ``where``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [_error_item([*where, *e["loc"]], e["msg"], e["type"]) for e in exc.errors()]
        raise SarvamError(422, errors) from None


# --- request models ---------------------------------------------------------------------------


class ConnectionConfig(BaseModel):
    connection_id: str = Field(min_length=1)
    phone_numbers: list[PhoneNumber] = Field(min_length=1)
    weight: int = Field(default=1, ge=1)


class RetryReason(BaseModel):
    enabled: bool = False


class ShortDurationRetry(RetryReason):
    threshold_seconds: int | None = Field(default=None, ge=1)


class ErrorRetry(RetryReason):
    max_retries: int | None = Field(default=None, ge=0)
    retry_interval_minutes: int | None = Field(default=None, ge=1)


class RetryOn(BaseModel):
    busy: RetryReason = Field(default_factory=RetryReason)
    failed: RetryReason = Field(default_factory=RetryReason)
    no_answer: RetryReason = Field(default_factory=RetryReason)
    short_duration: ShortDurationRetry = Field(default_factory=ShortDurationRetry)
    provider_error: ErrorRetry = Field(default_factory=ErrorRetry)
    internal_error: ErrorRetry = Field(default_factory=ErrorRetry)


class RetryConfig(BaseModel):
    max_retries: int = Field(default=0, ge=0)
    retry_on: RetryOn = Field(default_factory=RetryOn)
    retry_interval_minutes: PositiveMinutes | list[PositiveMinutes] = Field(default_factory=list)


class WebhookConfig(BaseModel):
    url: str = Field(pattern=r"^https?://\S+$")
    metadata: dict[str, Any] = Field(default_factory=dict)


class AppConfig(BaseModel):
    app_id: str = Field(min_length=1)
    app_version: int | None = Field(default=None, ge=1)
    attempts_per_second: float | None = Field(default=None, gt=0)
    connection_configs: list[ConnectionConfig] = Field(min_length=1)
    retry_config: RetryConfig = Field(default_factory=RetryConfig)
    app_type: Literal["agent", "workflow"] = "agent"
    webhook_config: WebhookConfig | None = None


class AllowedSchedule(BaseModel):
    allowed_start_time: ClockTime
    allowed_end_time: ClockTime
    allowed_days: list[Weekday] = Field(min_length=1)
    timezone: str = "Asia/Kolkata"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone") from None
        return value

    @model_validator(mode="after")
    def _window_in_order(self) -> AllowedSchedule:
        if self.allowed_start_time >= self.allowed_end_time:
            raise ValueError("allowed_start_time must be before allowed_end_time")
        return self


class CampaignSpec(BaseModel):
    """The writable part of a campaign: the create body, and what a PATCH merges into."""

    name: str = Field(min_length=1)
    description: str | None = Field(default=None, max_length=150)
    app_config: AppConfig
    start_timestamp: datetime
    end_timestamp: datetime
    allowed_schedule: AllowedSchedule

    @field_validator("start_timestamp", "end_timestamp")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _ends_after_start(self) -> CampaignSpec:
        if self.end_timestamp <= self.start_timestamp:
            raise ValueError("end_timestamp must be after start_timestamp")
        return self


class StatusChange(BaseModel):
    action: Literal["pause", "resume", "cancel"]


class Paging(BaseModel):
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=10, ge=1, le=100)


class CohortTransformation(BaseModel):
    phone_number: str = Field(min_length=1)
    user_identifier: str | None = None
    app_variables: list[str] = Field(default_factory=list)

    def columns(self) -> list[str]:
        named = [self.phone_number, self.user_identifier, *self.app_variables]
        return [column for column in named if column]


# --- records ----------------------------------------------------------------------------------


def _full_record(spec: CampaignSpec, meta: dict[str, Any]) -> dict[str, Any]:
    """The stored campaign, keys in the order of the seed's get response."""
    body = spec.model_dump(mode="json")
    app = body["app_config"]
    return {
        "name": body["name"],
        "campaign_id": meta["campaign_id"],
        "status": meta["status"],
        "app_id": app["app_id"],
        "created_by": meta["created_by"],
        "created_at": meta["created_at"],
        "updated_at": meta["updated_at"],
        "app_config": app,
        "start_timestamp": body["start_timestamp"],
        "end_timestamp": body["end_timestamp"],
        "allowed_schedule": body["allowed_schedule"],
        "description": body["description"],
        "app_type": app["app_type"],
        "app_version": app["app_version"],
        "updated_by": meta["updated_by"],
    }


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {name: record[name] for name in SUMMARY_FIELDS}


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` laid over it: objects merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _page(request: Request, items: list[dict[str, Any]], paging: Paging) -> dict[str, Any]:
    """One page of ``items`` with Sarvam's paging keys; the URIs are paths with query strings."""
    offset, limit, total = paging.offset, paging.limit, len(items)
    path = request.url.path
    following = f"{path}?offset={offset + limit}&limit={limit}" if offset + limit < total else None
    previous = f"{path}?offset={max(offset - limit, 0)}&limit={limit}" if offset > 0 else None
    return {
        "items": items[offset : offset + limit],
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_page_uri": following,
        "prev_page_uri": previous,
    }


# --- cohort files -----------------------------------------------------------------------------


async def _form_file(form: FormData, field: str, errors: list[dict[str, Any]]) -> bytes | None:
    """The bytes of the uploaded file ``field``; records a FastAPI-style error when it is absent."""
    value = form.get(field)
    if value is None:
        errors.append(_error_item(["body", field], "Field required", "missing"))
        return None
    if not isinstance(value, UploadFile):
        message = f"Value error, Expected UploadFile, received: {type(value)}"
        errors.append(_error_item(["body", field], message, "value_error"))
        return None
    return await value.read()


def _cohort_name(form: FormData, errors: list[dict[str, Any]]) -> str:
    value = form.get("name")
    if value is None:
        errors.append(_error_item(["body", "name"], "Field required", "missing"))
    elif not isinstance(value, str):
        message = "Input should be a valid string"
        errors.append(_error_item(["body", "name"], message, "string_type"))
    elif not COHORT_NAME.fullmatch(value):
        message = f"String should match pattern '{COHORT_NAME_PATTERN}'"
        errors.append(_error_item(["body", "name"], message, "string_pattern_mismatch"))
    else:
        return value
    return ""


def _csv_rows(raw: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the non-blank data rows of the cohort CSV, each row keyed by column."""
    where = ("body", "cohort_file")
    try:
        lines = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error):
        raise _unprocessable(where, "cohort_file must be a UTF-8 CSV file") from None
    header = [column.strip() for column in lines[0]] if lines else []
    data = [line for line in lines[1:] if any(cell.strip() for cell in line)]
    if not any(header) or not data:
        raise _unprocessable(where, "cohort_file needs a header row and at least one data row")
    padding = [""] * len(header)
    return header, [dict(zip(header, [*line, *padding], strict=False)) for line in data]


def _transformation(raw: bytes, header: list[str]) -> CohortTransformation:
    """The column map, checked against the CSV header."""
    where = ("body", "cohort_transformation_file")
    try:
        data = json.loads(raw)
    except ValueError:
        raise _unprocessable(where, "cohort_transformation_file must be a JSON file") from None
    mapping = _validate(CohortTransformation, data, *where)
    missing = [column for column in mapping.columns() if column not in header]
    if missing:
        raise _unprocessable(where, f"columns not in the cohort file header: {missing}")
    return mapping


def _cohort_records(rows: list[dict[str, str]], mapping: CohortTransformation) -> tuple[list[dict[str, Any]], int]:
    """The valid rows as recipient records, and how many rows were rejected."""
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        phone = row[mapping.phone_number].strip()
        if not E164.fullmatch(phone) or phone in seen:
            continue
        seen.add(phone)
        identifier = row[mapping.user_identifier].strip() if mapping.user_identifier else ""
        records.append(
            {
                "phone_number": phone,
                "user_identifier": identifier or None,
                "app_variables": {column: row[column] for column in mapping.app_variables},
                "status": "pending",
            }
        )
    return records, len(rows) - len(records)


# --- the app ----------------------------------------------------------------------------------


class SarvamSandbox:
    """One simulated Sarvam account: its records, its key and its clock."""

    def __init__(self, api_key: str | None, clock: Clock, signing_secret: str) -> None:
        self.state = SandboxState()
        self.api_key = api_key
        self.clock = clock
        self.signing_secret = signing_secret
        self.attempts: dict[str, int] = {}  # calls made per cohort row

    def routes(self) -> list[Route]:
        campaign = "/campaigns/{campaign_id}"
        return [
            self._route("create", "/campaigns", self.create, "POST"),
            self._route("list", "/campaigns", self.list_campaigns, "GET"),
            self._route("get", campaign, self.get, "GET"),
            self._route("update", campaign, self.update, "PATCH"),
            self._route("status", f"{campaign}/status", self.change_status, "PUT"),
            self._route("recipients_add", f"{campaign}/cohorts/upload", self.upload_cohort, "POST"),
            self._route("recipients_list", f"{campaign}/cohorts", self.list_cohorts, "GET"),
            self._route(
                "recipients_list",
                f"{campaign}/cohorts/{{cohort_id}}/records",
                self.list_records,
                "GET",
            ),
            *control_routes(self.state),
            advance_route(lambda _account_url: advance(self.state, self._advance, self.attempts, self.signing_secret)),
        ]

    def _route(self, operation: str, path: str, handler: Handler, method: str) -> Route:
        """A counted route under the org/workspace prefix that first checks ``X-API-Key``."""

        async def authorized(request: Request) -> Response:
            if not key_accepted(request, "X-API-Key", "", self.api_key):
                raise SarvamError(401, "Invalid or missing API key")
            return await handler(request)

        return Route(PREFIX + path, counting(self.state, operation, authorized), methods=[method])

    # helpers

    @staticmethod
    def _scope(request: Request) -> str:
        params = request.path_params
        return f"{params['org_id']}/{params['workspace_id']}/"

    def _key(self, request: Request) -> str:
        return self._scope(request) + request.path_params["campaign_id"]

    def _campaign(self, request: Request) -> dict[str, Any]:
        """The addressed campaign, its status brought up to the clock; 404 when unknown."""
        record = self.state.campaigns.get(self._key(request))
        if record is None:
            raise SarvamError(404, "Campaign not found")
        return self._advance(record)

    def _advance(self, record: dict[str, Any]) -> dict[str, Any]:
        if record["status"] in TERMINAL:
            return record
        now = self.clock()
        if datetime.fromisoformat(record["end_timestamp"]) <= now:
            record["status"] = "ended"
        elif record["status"] == "scheduled" and datetime.fromisoformat(record["start_timestamp"]) <= now:
            record["status"] = "active"
        return record

    @staticmethod
    async def _body(request: Request) -> Any:
        try:
            return await read_json(request)
        except ValueError:
            raise SarvamError(400, "Malformed JSON body") from None

    @staticmethod
    def _paging(request: Request) -> Paging:
        return _validate(Paging, dict(request.query_params), "query")

    def _cohorts(self, request: Request) -> list[dict[str, Any]]:
        self._campaign(request)
        return self.state.children.setdefault(self._key(request), [])

    # handlers

    async def create(self, request: Request) -> Response:
        spec = _validate(CampaignSpec, await self._body(request), "body")
        now = utc_now()
        campaign_id = str(uuid4())
        meta = {
            "campaign_id": campaign_id,
            "status": "scheduled",
            "created_by": ACTOR,
            "created_at": now,
            "updated_at": now,
            "updated_by": None,
        }
        record = _full_record(spec, meta)
        self.state.campaigns[self._scope(request) + campaign_id] = record
        return JSONResponse(_summary(record))

    async def get(self, request: Request) -> Response:
        return JSONResponse(self._campaign(request))

    async def list_campaigns(self, request: Request) -> Response:
        paging = self._paging(request)
        scope = self._scope(request)
        records = [
            _summary(self._advance(record))
            for key, record in reversed(self.state.campaigns.items())
            if key.startswith(scope)
        ]
        return JSONResponse(_page(request, records, paging))

    async def update(self, request: Request) -> Response:
        patch = await self._body(request)
        if not isinstance(patch, dict):
            message = "Input should be a valid dictionary or object to extract fields from"
            raise SarvamError(422, [_error_item(["body"], message, "model_attributes_type")])
        record = self._campaign(request)
        if record["status"] not in EDITABLE:
            status = record["status"]
            raise SarvamError(409, f"Cannot edit a campaign that is {status}")
        current = {name: record[name] for name in SPEC_FIELDS}
        writable = {name: value for name, value in patch.items() if name in SPEC_FIELDS}
        spec = _validate(CampaignSpec, _deep_merge(current, writable), "body")
        meta = {**record, "updated_at": utc_now(), "updated_by": ACTOR}
        updated = _full_record(spec, meta)
        self.state.campaigns[self._key(request)] = updated
        return JSONResponse(updated)

    async def change_status(self, request: Request) -> Response:
        action = _validate(StatusChange, await self._body(request), "body").action
        record = self._campaign(request)
        allowed_from, target = ACTIONS[action]
        if record["status"] not in allowed_from:
            raise SarvamError(409, f"Cannot {action} a campaign that is {record['status']}")
        record.update(status=target, updated_at=utc_now(), updated_by=ACTOR)
        return JSONResponse(record)

    async def upload_cohort(self, request: Request) -> Response:
        record = self._campaign(request)
        if record["status"] not in ACCEPTS_COHORTS:
            raise SarvamError(409, f"Cannot add a cohort to a campaign that is {record['status']}")
        errors: list[dict[str, Any]] = []
        async with request.form() as form:
            name = _cohort_name(form, errors)
            csv_raw = await _form_file(form, "cohort_file", errors)
            map_raw = await _form_file(form, "cohort_transformation_file", errors)
        if errors or csv_raw is None or map_raw is None:
            raise SarvamError(422, errors)
        header, rows = _csv_rows(csv_raw)
        records, rejected = _cohort_records(rows, _transformation(map_raw, header))
        cohort_id = str(uuid4())
        now = utc_now()
        cohort = {
            "name": name,
            "cohort_id": cohort_id,
            "status": "completed" if records else "failed",
            "source_type": "upload",
            "created_by": ACTOR,
            "created_at": now,
            "updated_at": now,
            "result": {
                "total_records": len(rows),
                "valid_records": len(records),
                "rejected_records": rejected,
            },
            "updated_by": None,
        }
        self._cohorts(request).append(cohort)
        self.state.children[f"{self._key(request)}/{cohort_id}"] = records
        return JSONResponse({**cohort, "status": "processing"})

    async def list_cohorts(self, request: Request) -> Response:
        paging = self._paging(request)
        cohorts = list(reversed(self._cohorts(request)))
        return JSONResponse(_page(request, cohorts, paging))

    async def list_records(self, request: Request) -> Response:
        paging = self._paging(request)
        self._campaign(request)
        cohort_key = f"{self._key(request)}/{request.path_params['cohort_id']}"
        records = self.state.children.get(cohort_key)
        if records is None:
            raise SarvamError(404, "Cohort not found")
        return JSONResponse(_page(request, records, paging))


async def _vendor_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SarvamError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status)


async def _http_error(_: Request, exc: Exception) -> Response:
    """Unknown paths, wrong methods and unreadable multipart bodies, in the vendor's shape."""
    assert isinstance(exc, HTTPException)
    detail = "Malformed multipart body" if exc.status_code == 400 else exc.detail
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


def _system_clock() -> datetime:
    return datetime.now(UTC)


def create_app(
    api_key: str | None = None, *, clock: Clock | None = None, signing_secret: str = SIGNING_SECRET
) -> Starlette:
    """A fresh simulated Sarvam account; only ``api_key`` is accepted when it is given."""
    sandbox = SarvamSandbox(api_key, clock or _system_clock, signing_secret)
    handlers = {SarvamError: _vendor_error, HTTPException: _http_error}
    return Starlette(routes=sandbox.routes(), exception_handlers=handlers)
