"""The OpenAPI 3.1 document: schemas generated from the canonical models, the path table written here.

Every operation has an id (generated clients name their functions by it), every header a client
sends or reads is declared, and optional request fields carry no ``default: null`` (TypeScript
generators would read that as "always present").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway import models
from gateway.events import openapi as events

# What the shipped demo config's sandboxes take and give, per endpoint (data: the code names no vendor).
EXAMPLES: dict[str, Any] = json.loads((Path(__file__).parent / "examples.json").read_text())
_ERROR_STATUSES = {
    "400": "Unknown connection",
    "401": "Missing or invalid API key",
    "403": "The key lacks the scope",
    "404": "Not found (a campaign id belongs to the connection that created it)",
    "409": "Conflict, or invalid_state: the campaign's status does not allow this",
    "422": "Validation error: details name each field",
    "429": "Rate limited (see Retry-After)",
    "501": "The vendor does not offer this operation",
    "502": "The vendor answered with an error (or partial_failure: a later step of a composed operation)",
    "503": "The vendor could not be reached (see Retry-After)",
    "504": "The vendor did not answer in time",
}
_REQUEST_MODELS: list[type[BaseModel]] = [models.CampaignCreate, models.CampaignUpdate, models.RecipientsAdd]
_RESPONSE_MODELS: list[type[BaseModel]] = [
    models.Campaign,
    models.CampaignPage,
    models.RecipientPage,
    models.RecipientsAdded,
    models.ConnectionList,
    models.ErrorEnvelope,
]
_HEADERS: dict[str, tuple[str, dict[str, Any]]] = {
    "X-Request-ID": ("This request's id: yours (X-Request-ID sent), else a new one", {"type": "string"}),
    "X-Cache": ("Whether the answer came from the cache", {"type": "string", "enum": ["HIT", "MISS", "BYPASS"]}),
    "Age": ("Seconds the cached answer has been stored (hits only)", {"type": "integer"}),
    "Idempotent-Replayed": (
        "true when the answer is the stored first answer of this Idempotency-Key",
        {"type": "string"},
    ),
    "Preference-Applied": (
        "RFC 7240: the handling applied (handling=lenient, or strict when asked)",
        {"type": "string"},
    ),
    "Dropped-Fields": ("Canonical fields a lenient request left out, comma-separated", {"type": "string"}),
    "RateLimit-Limit": ("Requests per minute of the limit that applies (limited keys only)", {"type": "string"}),
    "RateLimit-Remaining": ("Requests left now (limited keys only)", {"type": "string"}),
    "RateLimit-Reset": ("Seconds until one more request is allowed (limited keys only)", {"type": "string"}),
    "Retry-After": ("Seconds to wait before retrying", {"type": "string"}),
    "Server-Timing": ("upstream;dur=… (the vendor's time) and gateway;dur=… (the gateway's), ms", {"type": "string"}),
}
_PARAMETERS: dict[str, dict[str, Any]] = {
    "XConnection": {
        "name": "X-Connection",
        "in": "header",
        "description": "One of the caller's connections (GET /v1/connections); default: the tenant's default",
        "schema": {"type": "string"},
    },
    "XRequestID": {
        "name": "X-Request-ID",
        "in": "header",
        "description": "Your id for this request (1-128 of A-Z a-z 0-9 . _ : -), echoed back and logged",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "A retry with the same key and request answers the first result; kept 24 h",
        "schema": {"type": "string"},
    },
    "Prefer": {
        "name": "Prefer",
        "in": "header",
        "description": "handling=strict (refuse what the vendor cannot carry) or handling=lenient (leave it out, "
        "named in Dropped-Fields); default: the connection's unsupported_fields",
        "schema": {"type": "string", "enum": ["handling=strict", "handling=lenient"]},
    },
    "CacheControl": {
        "name": "Cache-Control",
        "in": "header",
        "description": "no-cache: skip the cache read (the fresh answer is still stored)",
        "schema": {"type": "string", "enum": ["no-cache"]},
    },
    "Id": {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The campaign's id, as the connection that created it gave it",
        "schema": {"type": "string"},
    },
    "Include": {
        "name": "include",
        "in": "query",
        "description": "vendor_data: add every vendor field with no canonical home",
        "schema": {"type": "string", "enum": ["vendor_data"]},
    },
    "Limit": {
        "name": "limit",
        "in": "query",
        "description": "Page size, 1-100 (default 20)",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    "Cursor": {
        "name": "cursor",
        "in": "query",
        "description": "next_cursor of the previous page (opaque)",
        "schema": {"type": "string"},
    },
    "Status": {
        "name": "status",
        "in": "query",
        "description": "Only campaigns in this canonical status",
        "schema": {"type": "string", "enum": list(models.Status.__args__)},  # type: ignore[attr-defined]
    },
}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(model: type[BaseModel] | None, description: str, example: Any = None) -> dict[str, Any]:
    if model is None:
        return {"description": description}
    content: dict[str, Any] = {"schema": _ref("schemas", model.__name__)}
    if example is not None:
        content["example"] = example
    return {"description": description, "content": {"application/json": content}}


def _operation(
    operation_id: str,
    summary: str,
    ok: tuple[str, type[BaseModel] | None, Any],
    *,
    body: tuple[type[BaseModel], Any] | None = None,
    params: tuple[str, ...] = (),
    answer_headers: tuple[str, ...] = (),
    description: str = "",
) -> dict[str, Any]:
    status, model, example = ok
    success = _json(model, "Success" if model else "Deleted", example)
    success["headers"] = {name: _ref("headers", name) for name in ("X-Request-ID", "Server-Timing", *answer_headers)}
    responses: dict[str, Any] = {status: success}
    responses.update({code: _json(models.ErrorEnvelope, text) for code, text in _ERROR_STATUSES.items()})
    responses["422"]["content"]["application/json"]["example"] = EXAMPLES["error"]
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": [_ref("parameters", name) for name in ("XConnection", "XRequestID", *params)],
        "responses": responses,
        "security": [{"bearer": []}, {"apiKey": []}],
    }
    if description:
        operation["description"] = description
    if body is not None:
        schema, sample = body
        content = {"schema": _ref("schemas", schema.__name__), "example": sample}
        operation["requestBody"] = {"required": True, "content": {"application/json": content}}
    return operation


_READ = ("CacheControl",)
_READ_HEADERS = ("X-Cache", "Age")
_WRITE = ("Prefer",)
_WRITE_HEADERS = ("Preference-Applied", "Dropped-Fields")
_POST = ("IdempotencyKey", "Prefer")
_POST_HEADERS = ("Idempotent-Replayed", *_WRITE_HEADERS)
_LIFECYCLE = {
    "start": "Start a draft",
    "pause": "Pause a campaign",
    "resume": "Resume a paused campaign",
    "cancel": "Cancel a campaign",
}


def _paths() -> dict[str, Any]:
    campaign = ("200", models.Campaign, EXAMPLES["campaign"])
    actions = {
        f"/v1/campaigns/{{id}}/{verb}": {
            "post": _operation(
                f"{verb}Campaign",
                summary,
                campaign,
                params=("Id", *_POST),
                answer_headers=_POST_HEADERS,
                description="A 409 invalid_state names the campaign's status and what it allows",
            )
        }
        for verb, summary in _LIFECYCLE.items()
    }
    return {
        "/v1/campaigns": {
            "post": _operation(
                "createCampaign",
                "Create a campaign",
                ("201", models.Campaign, EXAMPLES["campaign"]),
                body=(models.CampaignCreate, EXAMPLES["create"]),
                params=("Include", *_POST),
                answer_headers=_POST_HEADERS,
                description="Recipients given here reach every vendor: where its create takes none, they are "
                "added right after it (a 502 partial_failure names the campaign if that fails)",
            ),
            "get": _operation(
                "listCampaigns",
                "List campaigns",
                ("200", models.CampaignPage, EXAMPLES["campaign_page"]),
                params=("Limit", "Cursor", "Status", "Include", *_READ),
                answer_headers=_READ_HEADERS,
            ),
        },
        "/v1/campaigns/{id}": {
            "get": _operation(
                "getCampaign",
                "Get a campaign",
                campaign,
                params=("Id", "Include", *_READ),
                answer_headers=_READ_HEADERS,
            ),
            "patch": _operation(
                "updateCampaign",
                "Change a campaign",
                campaign,
                body=(models.CampaignUpdate, EXAMPLES["update"]),
                params=("Id", *_WRITE),
                answer_headers=_WRITE_HEADERS,
            ),
            "delete": _operation("deleteCampaign", "Delete a campaign", ("204", None, None), params=("Id",)),
        },
        **actions,
        "/v1/campaigns/{id}/recipients": {
            "get": _operation(
                "listRecipients",
                "List recipients",
                ("200", models.RecipientPage, EXAMPLES["recipient_page"]),
                params=("Id", "Limit", "Cursor", *_READ),
                answer_headers=_READ_HEADERS,
            ),
            "post": _operation(
                "addRecipients",
                "Add recipients",
                ("200", models.RecipientsAdded, EXAMPLES["recipients_added"]),
                body=(models.RecipientsAdd, EXAMPLES["recipients"]),
                params=("Id", *_POST),
                answer_headers=_POST_HEADERS,
            ),
        },
        "/v1/connections": {
            "get": _operation(
                "listConnections",
                "The caller's connections, what each offers, and what it does with each field",
                ("200", models.ConnectionList, EXAMPLES["connections"]),
            )
        },
        **_SERVICE_PATHS,
    }


def _service(operation_id: str, summary: str, media_type: str, schema: dict[str, Any], *errors: str) -> dict[str, Any]:
    """An operations endpoint: no API key (health probes, scrapers, browsers)."""
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {media_type: {"schema": schema}}}}
    for status in errors:
        responses[status] = _json(models.ErrorEnvelope, _SERVICE_ERRORS[status])
    return {"get": {"operationId": operation_id, "summary": summary, "security": [], "responses": responses}}


_SERVICE_ERRORS = {
    "401": "The scrape token is missing or wrong",
    "403": "Not a loopback client, and no scrape token is configured",
    "503": "Not ready: the shared backend is unreachable",
}
_OBJECT = {"type": "object"}
_SERVICE_PATHS = {
    "/healthz": _service("getHealth", "Liveness: the process answers", "application/json", _OBJECT),
    "/readyz": _service("getReadiness", "Readiness, with detail", "application/json", _OBJECT, "503"),
    "/metrics": _service("getMetrics", "Prometheus metrics", "text/plain", {"type": "string"}, "401", "403"),
    "/openapi.json": _service("getOpenapi", "This document", "application/json", _OBJECT),
    "/docs": _service("getDocs", "This document, as a page", "text/html", {"type": "string"}),
}


def _without_null_defaults(node: Any) -> Any:
    """The schema with every ``"default": null`` removed: an absent optional field is simply absent."""
    if isinstance(node, dict):
        return {
            key: _without_null_defaults(value)
            for key, value in node.items()
            if not (key == "default" and value is None)
        }
    if isinstance(node, list):
        return [_without_null_defaults(item) for item in node]
    return node


def build_openapi() -> dict[str, Any]:
    members = [(m, "validation") for m in _REQUEST_MODELS]
    members += [(m, "serialization") for m in (*_RESPONSE_MODELS, *events.MODELS)]
    _, schema = models_json_schema(members, ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Campaign Gateway",
            "version": "1",
            "description": "One API for outbound voice-call campaigns, in front of every vendor. Authenticate "
            "with Authorization: Bearer <key> (or X-API-Key); pick the vendor account with X-Connection.",
        },
        "paths": {**_paths(), **events.paths(EXAMPLES["event"])},
        "webhooks": events.webhooks(EXAMPLES["event"]),
        "components": {
            "schemas": {**_without_null_defaults(schema.get("$defs", {})), "VendorWebhook": events.VENDOR_PAYLOAD},
            "parameters": {**_PARAMETERS, **events.PARAMETERS},
            "headers": {name: {"description": text, "schema": kind} for name, (text, kind) in _HEADERS.items()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The same key"},
            },
        },
    }
