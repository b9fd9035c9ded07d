"""/openapi.json is a document generators can use as is: operation ids, every header declared,
a description on every field, examples that are real answers, and no ``default: null``."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import models
from gateway.events.models import Event, EventPage
from gateway.openapi import EXAMPLES, build_openapi
from tests.test_portability import readme_create_body

DOCUMENT = build_openapi()
EVENTS = ("/v1/events", "/v1/hooks/")  # no connection, no cache: tested apart below
API = {path: methods for path, methods in DOCUMENT["paths"].items() if path.startswith("/v1/")}
CAMPAIGNS = {path: methods for path, methods in API.items() if not path.startswith(EVENTS)}


def operations(paths: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, methods in paths.items() for method, operation in methods.items()]


def header_names(operation: dict[str, Any]) -> set[str]:
    parameters = DOCUMENT["components"]["parameters"]
    refs = [ref["$ref"].rsplit("/", 1)[-1] for ref in operation.get("parameters", [])]
    return {parameters[name]["name"] for name in refs if parameters[name]["in"] == "header"}


def test_every_operation_has_an_id_of_its_own() -> None:
    ids = [operation["operationId"] for _method, _path, operation in operations(DOCUMENT["paths"])]
    assert len(ids) == len(set(ids))
    assert {
        "createCampaign",
        "getCampaign",
        "listCampaigns",
        "updateCampaign",
        "deleteCampaign",
        "startCampaign",
    } <= set(ids)
    assert {
        "pauseCampaign",
        "resumeCampaign",
        "cancelCampaign",
        "listRecipients",
        "addRecipients",
        "listConnections",
    } <= set(ids)


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _ in operations(CAMPAIGNS)])
def test_every_header_a_client_sends_is_declared(method: str, path: str) -> None:
    operation = API[path][method]
    sent = header_names(operation)
    assert {"X-Connection", "X-Request-ID"} <= sent
    if method == "post":
        assert {"Idempotency-Key", "Prefer"} <= sent
    if method == "patch":
        assert "Prefer" in sent
    cached = method == "get" and path != "/v1/connections"
    if cached:
        assert "Cache-Control" in sent
    answer = operation["responses"][next(iter(operation["responses"]))]
    assert {"X-Request-ID", "Server-Timing"} <= set(answer["headers"])
    if cached:
        assert {"X-Cache", "Age"} <= set(answer["headers"])
    if method == "post":
        assert {"Idempotent-Replayed", "Preference-Applied", "Dropped-Fields"} <= set(answer["headers"])
    assert {"bearer": []} in operation["security"]


def test_the_answer_headers_include_rate_limits_and_retry_after() -> None:
    declared = set(DOCUMENT["components"]["headers"])
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"} <= declared


def test_every_field_has_a_description_and_no_optional_field_a_null_default() -> None:
    for name, schema in DOCUMENT["components"]["schemas"].items():
        for field, spec in schema.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{field} has no description"
    assert '"default": null' not in str(DOCUMENT).replace("None", "null"), "an optional field says default: null"


def test_the_examples_are_what_the_models_take_and_give() -> None:
    models.CampaignCreate.model_validate(EXAMPLES["create"])
    models.CampaignUpdate.model_validate(EXAMPLES["update"])
    models.RecipientsAdd.model_validate(EXAMPLES["recipients"])
    models.Campaign.model_validate(EXAMPLES["campaign"])
    models.CampaignPage.model_validate(EXAMPLES["campaign_page"])
    models.RecipientPage.model_validate(EXAMPLES["recipient_page"])
    models.RecipientsAdded.model_validate(EXAMPLES["recipients_added"])
    models.ConnectionList.model_validate(EXAMPLES["connections"])
    models.ErrorEnvelope.model_validate(EXAMPLES["error"])
    assert EXAMPLES["create"] == readme_create_body(), "the documented create is the README's"


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _ in operations(API)])
def test_every_endpoint_has_an_example(method: str, path: str) -> None:
    operation = API[path][method]
    status, answer = next(iter(operation["responses"].items()))
    if status != "204":
        assert "example" in answer["content"]["application/json"], (method, path)
    if "requestBody" in operation:
        assert "example" in operation["requestBody"]["content"]["application/json"], (method, path)


def test_the_events_endpoints_and_the_webhooks_a_tenant_receives_are_described() -> None:
    """The pull API takes a key (the hook takes none: its token is the secret), and `webhooks` (OpenAPI 3.1)
    gives each event type with the canonical Event and the Standard Webhooks headers to verify it by."""
    for path, method, scopes in (("/v1/events", "get", True), ("/v1/events/{id}/redeliver", "post", True)):
        operation = API[path][method]
        assert "X-Request-ID" in header_names(operation) and ({"bearer": []} in operation["security"]) is scopes
    assert API["/v1/hooks/{token}"]["post"]["security"] == []
    assert set(DOCUMENT["webhooks"]) == {"call.completed", "call.failed", "campaign.status_changed"}
    for kind, methods in DOCUMENT["webhooks"].items():
        content = methods["post"]["requestBody"]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Event"}
        assert Event.model_validate(content["example"]).type == kind
        sent = {p["name"] for p in methods["post"]["parameters"]}
        assert sent == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    page = API["/v1/events"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    EventPage.model_validate(page)
