"""Simulated ElevenLabs batch calling (``https://api.elevenlabs.io/v1/convai/batch-calling``).

Documented (the official Python SDK github.com/elevenlabs/elevenlabs-python,
``conversational_ai/batch_calls``, ``types/batch_call_*``, ``outbound_call_recipient*``;
elevenlabs.io/docs/api-reference/batch-calling/create, …/list, …/get), and enforced here:

- Auth: ``xi-api-key: <key>`` (no scheme); anything else is 401
  ``{"detail": {"status": "invalid_api_key", "message": …}}``.
- ``POST /v1/convai/batch-calling/submit``: ``call_name``, ``agent_id`` and ``recipients``
  required; ``agent_phone_number_id`` (one of the workspace's numbers), ``scheduled_time_unix``
  (Unix seconds), ``timezone``, ``target_concurrency_limit``, ``telephony_call_config``,
  ``branch_id``, ``environment``. A recipient has ``id``, ``phone_number``, ``whatsapp_user_id``,
  ``conversation_initiation_client_data`` (``dynamic_variables`` of strings, numbers, booleans).
  Answers a BatchCallResponse: ``id``, ``name``, ``agent_id``, ``agent_name``, ``phone_number_id``,
  ``phone_provider``, ``created_at_unix``, ``scheduled_time_unix``, ``last_updated_at_unix``,
  ``timezone``, ``total_calls_scheduled``, ``total_calls_dispatched``, ``total_calls_finished``,
  ``status`` (pending | in_progress | completed | failed | cancelled), ``retry_count``,
  ``telephony_call_config``, ``target_concurrency_limit``.
- ``GET /v1/convai/batch-calling/workspace?limit=&last_doc=&agent_id=`` -> ``{"batch_calls",
  "next_doc", "has_more"}`` (``limit`` default 100).
- ``GET /v1/convai/batch-calling/{id}`` -> the batch with ``recipients`` (``id``, ``phone_number``,
  ``status`` pending | dispatched | initiated | in_progress | completed | failed | cancelled |
  voicemail, ``created_at_unix``, ``updated_at_unix``, ``conversation_id``,
  ``conversation_initiation_client_data``).
- ``POST …/{id}/cancel``: the batch and its recipients become cancelled. ``POST …/{id}/retry``:
  failed and unanswered recipients are called again. ``DELETE …/{id}`` removes it.
- ``GET /v1/convai/phone-numbers`` -> a plain array of ``{phone_number_id, phone_number, label,
  provider, assigned_agent}``.

Assumptions where the docs are silent:

- Errors other than 401: 422 ``{"detail": [{"loc", "msg", "type"}]}`` for a body that does not
  validate (unknown fields are refused too, so a map's typo shows; the real API may ignore them);
  404 and 409 ``{"detail": {"status", "message"}}`` for an unknown batch and a refused action.
- ``last_doc`` is the id of the last batch already seen: the page starts after it; ``next_doc`` is
  the last id of the page, and ``has_more`` says whether any batch follows. Batches come oldest first.
- Cancel works on a pending or in_progress batch. Retry works on a finished one (completed, failed
  or cancelled) that has failed, voicemail or cancelled recipients: they become pending again, the
  batch pending, and ``retry_count`` grows; otherwise 409. Delete answers 200 ``{}``.
- No call is placed by itself: a batch stays pending until ``POST /_sandbox/advance`` (a sandbox
  addition) calls its recipients and posts the workspace's post-call webhooks, to the URL the
  advance names as the workspace's (sandboxes/elevenlabs_calls.py). ``scheduled_time_unix`` is the
  given time or now.
- Every workspace owns the numbers in ``PHONE_NUMBERS``; ``agent_name`` is "Sandbox agent".
- Counters at ``GET /_sandbox/calls``: create, list, get, cancel, resume (retry), delete, phone_numbers.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandboxes._calls import Advanced, advance_route
from sandboxes._common import SandboxState, VendorApi, VendorError, epoch_now, key_accepted
from sandboxes.elevenlabs_calls import WEBHOOK_SECRET, advance

BATCHES = "/v1/convai/batch-calling"
PHONE_NUMBERS = ("+14155550100", "+14155551212", "+442071838750")
RUNNING = frozenset({"pending", "in_progress"})
RETRIED = frozenset({"failed", "voicemail", "cancelled"})
Variable = str | int | float | bool | None


def _refuse(status: int, message: str) -> VendorError:
    word = {401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed", 409: "invalid_state"}
    return VendorError(status, {"detail": {"status": word.get(status, "invalid_request"), "message": message}})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ClientData(Strict):
    model_config = ConfigDict(extra="allow", strict=True)  # overrides, user_id…: kept, not simulated
    dynamic_variables: dict[str, Variable] | None = None


class Recipient(Strict):
    id: str | None = None
    phone_number: Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")] | None = None
    whatsapp_user_id: str | None = None
    conversation_initiation_client_data: ClientData | None = None


class TelephonyConfig(Strict):
    ringing_timeout_secs: int = Field(default=60, ge=1)
    twilio_call_recording_enabled: bool = False


class Submit(Strict):
    call_name: str = Field(min_length=1)
    agent_id: str = Field(min_length=1)
    recipients: list[Recipient] = Field(min_length=1)
    agent_phone_number_id: str | None = None
    scheduled_time_unix: int | None = None
    timezone: str | None = None
    target_concurrency_limit: int | None = Field(default=None, ge=1)
    telephony_call_config: TelephonyConfig = Field(default_factory=TelephonyConfig)
    branch_id: str | None = None
    environment: str | None = None


class ElevenLabsSandbox:
    """One simulated ElevenLabs workspace."""

    def __init__(self, api_key: str | None, webhook_secret: str) -> None:
        self.state = SandboxState()
        self.webhook_secret = webhook_secret
        self.api = VendorApi(self.state, lambda r: key_accepted(r, "xi-api-key", "", api_key), _refuse)
        self.numbers = [
            {
                "phone_number_id": f"phnum_{index:04d}sandbox",
                "phone_number": number,
                "label": f"Sandbox {number}",
                "provider": "twilio",
                "assigned_agent": None,
            }
            for index, number in enumerate(PHONE_NUMBERS, 1)
        ]

    def app(self) -> Starlette:
        route, one = self.api.route, BATCHES + "/{id}"
        return self.api.app(
            [
                route("create", BATCHES + "/submit", self.submit, "POST"),
                route("list", BATCHES + "/workspace", self.list, "GET"),
                route("get", one, self.get, "GET"),
                route("cancel", one + "/cancel", self.cancel, "POST"),
                route("resume", one + "/retry", self.retry, "POST"),
                route("delete", one, self.delete, "DELETE"),
                route("phone_numbers", "/v1/convai/phone-numbers", self.phone_numbers, "GET"),
                advance_route(self.advance),
            ]
        )

    def advance(self, webhook_url: str | None) -> Advanced:
        """The batches' calls, posted to the workspace's post-call webhook (``webhook_url``)."""
        numbers = {n["phone_number_id"]: n["phone_number"] for n in self.numbers}
        return advance(self.state, numbers, webhook_url, self.webhook_secret)

    def _batch(self, request: Request) -> dict[str, Any]:
        batch = self.state.campaigns.get(request.path_params["id"])
        if batch is None:
            raise _refuse(404, f"Batch call {request.path_params['id']} not found")
        return batch

    async def submit(self, request: Request) -> Response:
        try:
            spec = Submit.model_validate(await self.api.body(request))
        except ValidationError as exc:
            detail = [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
            raise VendorError(422, {"detail": detail}) from None
        numbers = {n["phone_number_id"]: n for n in self.numbers}
        if spec.agent_phone_number_id is not None and spec.agent_phone_number_id not in numbers:
            raise _refuse(404, f"Phone number {spec.agent_phone_number_id} not found")
        now = epoch_now()
        batch = {
            "id": "batchcall_" + secrets.token_hex(8),
            "phone_number_id": spec.agent_phone_number_id,
            "phone_provider": "twilio" if spec.agent_phone_number_id else None,
            "whatsapp_params": None,
            "name": spec.call_name,
            "agent_id": spec.agent_id,
            "agent_name": "Sandbox agent",
            "branch_id": spec.branch_id,
            "environment": spec.environment,
            "created_at_unix": now,
            "scheduled_time_unix": spec.scheduled_time_unix if spec.scheduled_time_unix is not None else now,
            "last_updated_at_unix": now,
            "timezone": spec.timezone,
            "total_calls_scheduled": len(spec.recipients),
            "total_calls_dispatched": 0,
            "total_calls_finished": 0,
            "status": "pending",
            "retry_count": 0,
            "telephony_call_config": spec.telephony_call_config.model_dump(),
            "target_concurrency_limit": spec.target_concurrency_limit,
        }
        self.state.campaigns[batch["id"]] = batch
        self.state.children[batch["id"]] = [_recipient(r, now) for r in spec.recipients]
        return JSONResponse(batch)

    async def list(self, request: Request) -> Response:
        limit, last_doc = request.query_params.get("limit", "100"), request.query_params.get("last_doc")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            raise VendorError(422, {"detail": [{"loc": ["query", "limit"], "msg": "1 to 100", "type": "value_error"}]})
        agent = request.query_params.get("agent_id")
        found = [b for b in self.state.campaigns.values() if agent in (None, b["agent_id"])]
        ids = [b["id"] for b in found]
        start = ids.index(last_doc) + 1 if last_doc in ids else 0
        page = found[start : start + int(limit)]
        more = start + len(page) < len(found)
        return JSONResponse({"batch_calls": page, "next_doc": page[-1]["id"] if page else None, "has_more": more})

    async def get(self, request: Request) -> Response:
        batch = self._batch(request)
        return JSONResponse({**batch, "recipients": self.state.children[batch["id"]]})

    async def cancel(self, request: Request) -> Response:
        batch = self._batch(request)
        if batch["status"] not in RUNNING:
            raise _refuse(409, f"Batch call is {batch['status']}: only a running batch can be cancelled")
        now = epoch_now()
        for recipient in self.state.children[batch["id"]]:
            recipient.update(status="cancelled", updated_at_unix=now)
        batch.update(status="cancelled", last_updated_at_unix=now)
        return JSONResponse(batch)

    async def retry(self, request: Request) -> Response:
        batch = self._batch(request)
        again = [r for r in self.state.children[batch["id"]] if r["status"] in RETRIED]
        if batch["status"] in RUNNING or not again:
            raise _refuse(409, f"Batch call is {batch['status']} with nothing to retry")
        now = epoch_now()
        for recipient in again:
            recipient.update(status="pending", updated_at_unix=now)
        batch.update(status="pending", retry_count=batch["retry_count"] + 1, last_updated_at_unix=now)
        return JSONResponse(batch)

    async def delete(self, request: Request) -> Response:
        batch = self._batch(request)
        del self.state.campaigns[batch["id"]], self.state.children[batch["id"]]
        return JSONResponse({})

    async def phone_numbers(self, _request: Request) -> Response:
        return JSONResponse(self.numbers)


def _recipient(spec: Recipient, now: int) -> dict[str, Any]:
    return {
        "id": spec.id or "rcpt_" + secrets.token_hex(6),
        "phone_number": spec.phone_number,
        "whatsapp_user_id": spec.whatsapp_user_id,
        "status": "pending",
        "created_at_unix": now,
        "updated_at_unix": now,
        "conversation_id": None,
        "conversation_initiation_client_data": (
            spec.conversation_initiation_client_data.model_dump(exclude_none=True)
            if spec.conversation_initiation_client_data
            else None
        ),
    }


def create_app(api_key: str | None = None, *, webhook_secret: str = WEBHOOK_SECRET) -> Starlette:
    """A fresh simulated ElevenLabs workspace; with ``api_key`` only that key is accepted."""
    return ElevenLabsSandbox(api_key, webhook_secret).app()
