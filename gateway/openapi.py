"""The OpenAPI 3.1 document, generated from the canonical models; only the path table is listed here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway import models

_ERROR_STATUSES = {
    "400": "Unknown connection",
    "401": "Missing or invalid API key",
    "403": "The key lacks the scope",
    "404": "Not found",
    "422": "Validation error",
    "429": "Rate limited",
    "501": "The vendor does not offer this operation",
    "502": "The vendor answered with an error",
    "503": "The vendor could not be reached",
    "504": "The vendor did not answer in time",
}
_REQUEST_MODELS: list[type[BaseModel]] = [
    models.CampaignCreate,
    models.CampaignUpdate,
    models.RecipientsAdd,
]
_RESPONSE_MODELS: list[type[BaseModel]] = [
    models.Campaign,
    models.CampaignPage,
    models.RecipientPage,
    models.RecipientsAdded,
    models.ConnectionList,
    models.ErrorEnvelope,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _operation(
    summary: str,
    ok: tuple[str, type[BaseModel] | None],
    body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status, model = ok
    responses: dict[str, Any] = {status: _json(model, "Success") if model else {"description": "Deleted"}}
    responses.update({code: _json(models.ErrorEnvelope, text) for code, text in _ERROR_STATUSES.items()})
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/XConnection"}, *(params or [])],
        "responses": responses,
        "security": [{"bearer": []}, {"apiKey": []}],
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The vendor's id",
}
_INCLUDE = _query("include", {"type": "string", "enum": ["vendor_data"]}, "Add vendor_data to each campaign")
_PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size"),
    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
]
_STATUSES = ["draft", "scheduled", "active", "paused", "completed", "cancelled", "failed"]


def _paths() -> dict[str, Any]:
    campaign: tuple[str, type[BaseModel] | None] = ("200", models.Campaign)
    action = {
        f"/v1/campaigns/{{id}}/{verb}": {"post": _operation(f"{verb.capitalize()} a campaign", campaign, params=[_ID])}
        for verb in ("pause", "resume", "cancel")
    }
    return {
        "/v1/campaigns": {
            "post": _operation("Create a campaign", ("201", models.Campaign), models.CampaignCreate, [_INCLUDE]),
            "get": _operation(
                "List campaigns",
                ("200", models.CampaignPage),
                params=[
                    *_PAGING,
                    _query("status", {"type": "string", "enum": _STATUSES}, "Only this status"),
                    _INCLUDE,
                ],
            ),
        },
        "/v1/campaigns/{id}": {
            "get": _operation("Get a campaign", campaign, params=[_ID, _INCLUDE]),
            "patch": _operation("Change a campaign", campaign, models.CampaignUpdate, [_ID]),
            "delete": _operation("Delete a campaign", ("204", None), params=[_ID]),
        },
        **action,
        "/v1/campaigns/{id}/recipients": {
            "get": _operation("List recipients", ("200", models.RecipientPage), params=[_ID, *_PAGING]),
            "post": _operation("Add recipients", ("200", models.RecipientsAdded), models.RecipientsAdd, [_ID]),
        },
        "/v1/connections": {"get": _operation("The caller's connections", ("200", models.ConnectionList))},
        **_SERVICE_PATHS,
    }


def _service(summary: str, media_type: str, schema: dict[str, Any], *errors: str) -> dict[str, Any]:
    """An operations endpoint: no API key (health probes, scrapers, browsers)."""
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {media_type: {"schema": schema}}}}
    for status in errors:
        responses[status] = _json(models.ErrorEnvelope, _SERVICE_ERRORS[status])
    return {"get": {"summary": summary, "security": [], "responses": responses}}


_SERVICE_ERRORS = {
    "401": "The scrape token is missing or wrong",
    "403": "Not a loopback client, and no scrape token is configured",
    "503": "Not ready: the shared backend is unreachable",
}
_OBJECT = {"type": "object"}
_SERVICE_PATHS = {
    "/healthz": _service("Liveness: the process answers", "application/json", _OBJECT),
    "/readyz": _service("Readiness, with detail", "application/json", _OBJECT, "503"),
    "/metrics": _service("Prometheus metrics", "text/plain", {"type": "string"}, "401", "403"),
    "/openapi.json": _service("This document", "application/json", _OBJECT),
    "/docs": _service("This document, as a page", "text/html", {"type": "string"}),
}


def build_openapi() -> dict[str, Any]:
    members = [(m, "validation") for m in _REQUEST_MODELS] + [(m, "serialization") for m in _RESPONSE_MODELS]
    _, schema = models_json_schema(members, ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Campaign Gateway",
            "version": "1",
            "description": "One API for outbound voice-call campaigns, in front of every vendor.",
        },
        "paths": _paths(),
        "components": {
            "schemas": schema.get("$defs", {}),
            "parameters": {
                "XConnection": {
                    "name": "X-Connection",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "One of the caller's connections; default: the tenant's default_connection",
                }
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
