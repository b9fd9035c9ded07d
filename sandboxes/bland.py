"""Simulated Bland batch calling, v2 (``https://api.bland.ai/v2/batches``) and the calls of a batch.

Documented (docs.bland.ai/api-v2/post/batches, /api-v2/get/batches, /api-v2/get/batches-id,
/api-v2/post/batches-id-stop, /api-v1/post/calls, /api-v1/get/calls; source github.com/CINTELLILABS/docs),
and enforced here:

- Auth: the ``authorization`` header holds the API key itself, with no scheme; anything else is 401
  ``{"data": null, "errors": [{"error": "AUTH_FAILURE", "message": "Unauthorized"}]}``.
- ``POST /v2/batches/create``: ``global`` (required; defaults for every call, with ``task`` or
  ``pathway_id``, never ``phone_number``), ``call_objects`` (each a ``/v1/calls`` object with its
  ``phone_number``; its fields override ``global``), ``description`` (at most 60 characters),
  ``status_webhook``. Answers ``{"data": {"batch_id"}, "errors": null}``.
- ``start_time`` is ``YYYY-MM-DD HH:MM:SS`` with an optional ``±HH:MM`` offset (UTC without),
  at least 5 minutes ahead.
- ``GET /v2/batches/list?take=&skip=`` and ``GET /v2/batches/{id}`` answer ``{"data", "errors":
  null}``; a batch is ``id``, ``user_id``, ``base_prompt`` (``global`` as JSON text),
  ``created_at``, ``call_objects`` (a preview), ``description``: no status, no counters.
- ``POST /v2/batches/{id}/stop`` -> ``{"data": null, "errors": null}``: its calls not yet done end
  as ``canceled``.
- ``GET /v1/calls?batch_id=&from=&to=&limit=`` -> ``{"total_count", "count", "calls"}``; a call has
  ``call_id``, ``c_id``, ``batch_id``, ``to``, ``from``, ``created_at``, ``completed``,
  ``queue_status``, ``status``, ``request_data``, ``metadata``, ``variables``.

Assumptions where the docs are silent:

- Errors of the batch endpoints are ``{"data": null, "errors": [{"error", "message"}]}``: 400 for
  a body that does not validate (the first problem; unknown fields are refused: "additional
  properties not allowed"), 404 ``BATCH_NOT_FOUND``, 400 ``BATCH_NOT_ACTIVE`` for a second stop.
- A call object takes the documented ``/v1/calls`` fields in ``CALL_FIELDS``.
- Each call object becomes a call at once: ``queue_status`` ``new`` and ``status`` null until
  the call is placed (by ``POST /_sandbox/advance``, a sandbox addition that also sends the
  batch's and the calls' webhooks: sandboxes/bland_calls.py); stop makes them ``complete`` /
  ``canceled``.
- ``/v1/calls``: ``from`` is inclusive and ``to`` exclusive, ``limit`` defaults to 1000; batches
  and calls come oldest first; the preview holds the first 10 call objects.
- Counters at ``GET /_sandbox/calls``: create, list, get, cancel (stop), recipients_list (calls).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandboxes._calls import advance_route
from sandboxes._common import SandboxState, VendorApi, VendorError, key_accepted, utc_now
from sandboxes.bland_calls import SIGNING_SECRET, advance

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
START_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}( ?[+-]\d{2}:\d{2})?$")
CALL_FIELDS = frozenset(
    {
        "phone_number", "task", "pathway_id", "pathway_version", "persona_id", "voice", "first_sentence",
        "model", "language", "wait_for_greeting", "temperature", "interruption_threshold", "from",
        "dialing_strategy", "timezone", "start_time", "transfer_phone_number", "transfer_list",
        "max_duration", "b_cid", "record", "voicemail", "retry", "summary_prompt", "dispositions",
        "request_data", "metadata", "webhook", "webhook_events", "keywords", "tools", "dynamic_data",
    }
)  # fmt: skip
BATCH_FIELDS = frozenset({"global", "call_objects", "description", "status_webhook"})
HIDDEN = frozenset({"active", "status_webhook", "webhooks"})  # the sandbox's own, not Bland's fields
PREVIEW = 10


def _refuse(status: int, message: str, code: str | None = None) -> VendorError:
    word = code or {401: "AUTH_FAILURE", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(status, "INVALID_REQUEST")
    return VendorError(status, {"data": None, "errors": [{"error": word, "message": message}]})


def _bad(message: str) -> VendorError:
    return _refuse(400, message)


def _check_call(call: Any, where: str, *, in_global: bool = False) -> dict[str, Any]:
    """A /v1/calls object as a batch takes it, or 400 naming the first problem."""
    if not isinstance(call, dict):
        raise _bad(f"{where} must be an object")
    extra = sorted(set(call) - CALL_FIELDS)
    if extra:
        raise _bad(f"{where}.{extra[0]}: additional properties not allowed")
    if in_global and "phone_number" in call:
        raise _bad("global.phone_number is not allowed: each call object has its own")
    if not in_global and not (isinstance(call.get("phone_number"), str) and E164.match(call["phone_number"])):
        raise _bad(f"{where}.phone_number: invalid phone number")
    for name in ("from", "transfer_phone_number"):
        if name in call and not (isinstance(call[name], str) and E164.match(call[name])):
            raise _bad(f"{where}.{name}: invalid phone number")
    for name in ("request_data", "metadata"):
        if name in call and not isinstance(call[name], dict):
            raise _bad(f"{where}.{name} must be an object")
    if "start_time" in call:
        _check_start(call["start_time"], where)
    return call


def _check_start(value: Any, where: str) -> None:
    if not isinstance(value, str) or not START_TIME.match(value):
        raise _bad(f"{where}.start_time: invalid start_time, expected YYYY-MM-DD HH:MM:SS -HH:MM")
    moment = datetime.fromisoformat(value.replace(" +", "+").replace(" -", "-"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment < datetime.now(UTC) + timedelta(minutes=5):
        raise _bad("Calls must be scheduled at least 5 minutes in advance, or more")


def _check_batch(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object")
    extra = sorted(set(body) - BATCH_FIELDS)
    if extra:
        raise _bad(f"{extra[0]}: additional properties not allowed")
    shared = _check_call(body.get("global"), "global", in_global=True)
    if not (shared.get("task") or shared.get("pathway_id")):
        raise _bad("global must include task or pathway_id")
    calls = body.get("call_objects")
    if not isinstance(calls, list) or not calls:
        raise _bad("call_objects must be a non-empty array")
    for index, call in enumerate(calls):
        _check_call(call, f"call_objects[{index}]")
    description = body.get("description", "Untitled Batch")
    if not isinstance(description, str) or len(description) > 60:
        raise _bad("description must be a string of at most 60 characters")
    webhook = body.get("status_webhook")
    if webhook is not None and not (isinstance(webhook, str) and webhook.startswith(("http://", "https://"))):
        raise _bad("status_webhook: invalid webhook URL")
    return body


class BlandSandbox:
    """One simulated Bland organization."""

    def __init__(self, api_key: str | None, signing_secret: str) -> None:
        self.state = SandboxState()
        self.signing_secret = signing_secret
        self.api = VendorApi(self.state, lambda request: _key_accepted(request, api_key), _refuse)

    def app(self) -> Starlette:
        route, one = self.api.route, "/v2/batches/{id}"
        return self.api.app(
            [
                route("create", "/v2/batches/create", self.create, "POST"),
                route("list", "/v2/batches/list", self.list, "GET"),
                route("get", one, self.get, "GET"),
                route("cancel", one + "/stop", self.stop, "POST"),
                route("recipients_list", "/v1/calls", self.calls, "GET"),
                advance_route(lambda _account_url: advance(self.state, self.signing_secret)),
            ]
        )

    def _batch(self, request: Request) -> dict[str, Any]:
        batch = self.state.campaigns.get(request.path_params["id"])
        if batch is None:
            raise _refuse(404, "Batch not found", "BATCH_NOT_FOUND")
        return batch

    async def create(self, request: Request) -> Response:
        body = _check_batch(await self.api.body(request))
        batch_id, now = str(uuid.uuid4()), utc_now()
        calls = [{**body["global"], **call} for call in body["call_objects"]]
        self.state.children[batch_id] = [_call(batch_id, fields, now) for fields in calls]
        self.state.campaigns[batch_id] = {
            "id": batch_id,
            "user_id": "org_sandbox",
            "base_prompt": json.dumps(body["global"]),
            "created_at": now,
            "call_objects": body["call_objects"][:PREVIEW],
            "description": body.get("description", "Untitled Batch"),
            # not shown: whether it runs, and where its webhooks go
            "active": True,
            "status_webhook": body.get("status_webhook"),
            "webhooks": {
                c["call_id"]: f.get("webhook") for c, f in zip(self.state.children[batch_id], calls, strict=True)
            },
        }
        return JSONResponse({"data": {"batch_id": batch_id}, "errors": None})

    async def list(self, request: Request) -> Response:
        take, skip = self.api.query_int(request, "take", 100), self.api.query_int(request, "skip", 0)
        batches = [_shown(b) for b in self.state.campaigns.values()][skip : skip + take]
        return JSONResponse({"data": batches, "errors": None})

    async def get(self, request: Request) -> Response:
        return JSONResponse({"data": _shown(self._batch(request)), "errors": None})

    async def stop(self, request: Request) -> Response:
        batch = self._batch(request)
        if not batch["active"]:
            raise _refuse(400, "The batch is not running or scheduled", "BATCH_NOT_ACTIVE")
        batch["active"] = False
        for call in self.state.children[batch["id"]]:
            if not call["completed"]:
                call.update(queue_status="complete", status="canceled", completed=True)
        return JSONResponse({"data": None, "errors": None})

    async def calls(self, request: Request) -> Response:
        batch_id = request.query_params.get("batch_id")
        found = [c for calls in self.state.children.values() for c in calls if batch_id in (None, c["batch_id"])]
        start, limit = self.api.query_int(request, "from", 0), self.api.query_int(request, "limit", 1000)
        end = min(self.api.query_int(request, "to", start + limit), start + limit)
        page = found[start:end]
        return JSONResponse({"total_count": len(found), "count": len(page), "calls": page})


def _key_accepted(request: Request, api_key: str | None) -> bool:
    """The key itself, with no scheme: a value with a blank in it (``Bearer x``) is not a key."""
    return " " not in request.headers.get("authorization", " ") and key_accepted(request, "authorization", "", api_key)


def _shown(batch: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in batch.items() if key not in HIDDEN}


def _call(batch_id: str, fields: dict[str, Any], now: str) -> dict[str, Any]:
    call_id = str(uuid.uuid4())
    return {
        "call_id": call_id,
        "c_id": call_id,
        "batch_id": batch_id,
        "to": fields["phone_number"],
        "from": fields.get("from"),
        "created_at": now,
        "inbound": False,
        "completed": False,
        "queue_status": "new",
        "status": None,
        "request_data": fields.get("request_data", {}),
        "metadata": fields.get("metadata", {}),
        "variables": {},
    }


def create_app(api_key: str | None = None, *, signing_secret: str = SIGNING_SECRET) -> Starlette:
    """A fresh simulated Bland organization; with ``api_key`` only that key is accepted."""
    return BlandSandbox(api_key, signing_secret).app()
