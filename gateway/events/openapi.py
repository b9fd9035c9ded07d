"""Events in /openapi.json: the pull API, the vendors' hook, and the OpenAPI 3.1 ``webhooks`` section.

``webhooks`` describes what a tenant's endpoint receives: one POST per event type, the canonical
``Event`` as the body, and the Standard Webhooks headers to verify it by. The example event is
gateway/examples.json's ``event`` (the code names no vendor), passed in by gateway/openapi.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.events.models import EVENT_TYPES, Event, EventPage, Redelivery

MODELS: list[type[BaseModel]] = [Event, EventPage, Redelivery]
VENDOR_PAYLOAD = {
    "type": "object",
    "description": "The vendor's own webhook payload, as its docs show it; its map reads it into a canonical event",
}
PARAMETERS: dict[str, dict[str, Any]] = {
    "CampaignFilter": {
        "name": "campaign_id",
        "in": "query",
        "description": "Only the events of this campaign",
        "schema": {"type": "string"},
    },
    "TypeFilter": {
        "name": "type",
        "in": "query",
        "description": "Only events of this type",
        "schema": {"type": "string", "enum": sorted(EVENT_TYPES)},
    },
    "EventId": {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The event's id",
        "schema": {"type": "string"},
    },
    "HookToken": {
        "name": "token",
        "in": "path",
        "required": True,
        "description": "The connection's secret hook token (GET /v1/connections: hook_url)",
        "schema": {"type": "string"},
    },
}
_DELIVERED = {
    "state": "delivered",
    "attempts": 1,
    "next_attempt_at": None,
    "last_status": 200,
    "last_error": None,
    "delivered_at": "2026-03-29T05:00:46.140Z",
}
_PENDING = {**_DELIVERED, "state": "pending", "attempts": 0, "last_status": None, "delivered_at": None}
_PENDING["next_attempt_at"] = "2026-03-29T06:00:00.000Z"
_ERRORS = {
    "401": "Missing or invalid API key (the hook: the vendor's signature or token does not verify)",
    "403": "The key lacks the scope (events:read, events:write)",
    "404": "No such event for this tenant (the hook: no such token)",
    "409": "The event has nowhere to go (no webhook_url for its campaign, no webhooks.url for the tenant)",
    "413": "The vendor's body is larger than 1 MiB",
    "422": "Invalid query parameters (the hook: the body is not what the vendor sends)",
    "429": "Rate limited (see Retry-After)",
    "503": "Events cannot be stored right now: the vendor should send it again",
}
_SIGNATURE_HEADERS = [
    ("webhook-id", "The event's id: the same on every try (use it to drop a second delivery)"),
    ("webhook-timestamp", "Unix seconds of this try; refuse one more than 5 minutes from your clock"),
    ("webhook-signature", 'v1,<base64 of HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}">, keyed with '
     "the base64-decoded part of your whsec_ secret (space-separated when there are several)"),
]  # fmt: skip


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any], description: str, example: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema, "example": example}}}


def _operation(
    operation_id: str,
    summary: str,
    ok: tuple[str, dict[str, Any]],
    errors: tuple[str, ...],
    params: tuple[str, ...],
    description: str,
    keyed: bool = True,
) -> dict[str, Any]:
    status, answer = ok
    answer["headers"] = {name: _ref("headers", name) for name in ("X-Request-ID", "Server-Timing")}
    responses = {status: answer}
    responses |= {code: _json(_ref("schemas", "ErrorEnvelope"), _ERRORS[code], None) for code in errors}
    for code in errors:
        del responses[code]["content"]["application/json"]["example"]
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "parameters": [_ref("parameters", name) for name in ("XRequestID", *params)],
        "responses": responses,
        "security": [{"bearer": []}, {"apiKey": []}] if keyed else [],
    }


def paths(example: dict[str, Any]) -> dict[str, Any]:
    page = {"data": [{**example, "delivery": _DELIVERED}], "next_cursor": "ZTQy", "has_more": False}
    hook = _operation(
        "receiveVendorWebhook",
        "For vendors: their webhook, at the URL the gateway gave them",
        ("200", _json({"type": "object"}, "Stored (or a duplicate, or no event)", {"status": "stored"})),
        ("401", "404", "413", "422", "503"),
        ("HookToken",),
        "No API key: the unguessable token (and the vendor's own signature, where it signs) authenticate. "
        "Answered 200 once the event is stored.",
        keyed=False,
    )
    payload = _ref("schemas", "VendorWebhook")
    hook["requestBody"] = {
        "required": True,
        "description": "JSON; form fields too from a vendor whose map says so (formats: [json, form])",
        "content": {
            "application/json": {"schema": payload, "example": {"attempt_id": "a1"}},
            "application/x-www-form-urlencoded": {"schema": payload, "example": {"call_sid": "c1", "status": "busy"}},
        },
    }
    return {
        "/v1/events": {
            "get": _operation(
                "listEvents",
                "Your events, oldest first (poll with the last next_cursor)",
                ("200", _json(_ref("schemas", "EventPage"), "A page of events", page)),
                ("401", "403", "422", "429"),
                ("CampaignFilter", "TypeFilter", "Limit", "Cursor"),
                "Each event as it was (or is to be) delivered, with where its delivery stands. Scope events:read.",
            )
        },
        "/v1/events/{id}/redeliver": {
            "post": _operation(
                "redeliverEvent",
                "Deliver an event again, now",
                (
                    "202",
                    _json(_ref("schemas", "Redelivery"), "Queued", {"id": example["id"], "delivery": _PENDING}),
                ),
                ("401", "403", "404", "409", "429"),
                ("EventId",),
                "To its campaign's webhook_url (else the tenant's webhooks.url); a dead event gets a new round of "
                "tries. Scope events:write.",
            )
        },
        "/v1/hooks/{token}": {"post": hook},
    }


def webhooks(example: dict[str, Any]) -> dict[str, Any]:
    """One entry per event type: what the tenant's endpoint receives, and how it answers."""
    examples = _examples(example)
    headers = [
        {"name": name, "in": "header", "required": True, "description": text, "schema": {"type": "string"}}
        for name, text in _SIGNATURE_HEADERS
    ]
    about = {
        "call.completed": "A call connected (outcome answered, or voicemail where the vendor says so)",
        "call.failed": "A call did not connect: outcome no_answer, busy, failed (or voicemail)",
        "campaign.status_changed": "A campaign's status changed at the vendor (data.status)",
    }
    return {
        kind: {
            "post": {
                "operationId": "on" + "".join(part.title() for part in kind.replace("_", ".").split(".")),
                "summary": about[kind],
                "description": "Signed per Standard Webhooks; tried until your endpoint answers 2xx (first retries "
                "within seconds, then with growing gaps over about 3 days), then dead: GET /v1/events shows it "
                "and POST /v1/events/{id}/redeliver sends it again. A 410 stops the tries at once.",
                "parameters": headers,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("schemas", "Event"), "example": examples[kind]}},
                },
                "responses": {"2XX": {"description": "Taken. Anything else (or no answer in 15 s) is tried again"}},
            }
        }
        for kind in sorted(EVENT_TYPES)
    }


def _examples(completed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An example of each type, from one of a completed call."""
    data = completed["data"]
    failed = {"outcome": "no_answer", "vendor_status": "no_answer", "duration_seconds": None, "reason": "No answer"}
    empty = {key: None for key in data} | {"vendor_data": {}, "status": "completed", "vendor_status": "ended"}
    return {
        "call.completed": completed,
        "call.failed": {**completed, "type": "call.failed", "data": {**data, **failed}},
        "campaign.status_changed": {**completed, "type": "campaign.status_changed", "data": empty},
    }
