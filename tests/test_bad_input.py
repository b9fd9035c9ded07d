"""Bad input gets the canonical error envelope with the right status, never a 500.

Most checks run against the shipped config (sandboxed vendors, ``demo_client``). Checks that must
see what reaches the vendor (ids that try to escape their path segment, fields refused before any
upstream call) use a FakeVendor behind ``make_client``, and a few drive the ASGI app with a raw
scope, because httpx normalises ``..`` segments out of the URLs it sends.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest
import yaml
from yarl import URL

from gateway.app import GatewayApp
from gateway.asgi import MAX_BODY_BYTES
from gateway.config import load_config
from gateway.keys import key_hash
from tests.conftest import DEMO_KEY, TEST_KEY, write_config
from tests.fakes import FakeVendor, SentRequest, json_answer

JSON = {"content-type": "application/json"}
E164_NUMBER = "+14155551212"
GENERIC = {
    "name": "gen",
    "vendor": "generic",
    "base_url": "https://vendor.test/v1",
    "credentials": {"api_key": "generic-secret"},
}
HAMSA = {
    "name": "ham",
    "vendor": "hamsa",
    "base_url": "https://hamsa.test",
    "credentials": {"api_key": "hamsa-secret"},
}
SARVAM = {
    "name": "sar",
    "vendor": "sarvam",
    "base_url": "https://sarvam.test",
    "credentials": {"api_key": "sarvam-secret"},
    "params": {"org_id": "org", "workspace_id": "ws", "connection_id": "conn"},
}
# What Hamsa needs on create, so a test can name only the field it is about.
HAMSA_NEEDS = {
    "agent_id": "a",
    "from_number": E164_NUMBER,
    "recipients": [{"phone_number": E164_NUMBER, "name": "Ada"}],
}
GENERIC_CAMPAIGN = {"id": "c-1", "name": "Spring", "status": "active"}


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The ``error`` object of a canonical envelope, after checking status, code and request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    assert error["request_id"] == response.headers["x-request-id"], (body, response.headers)
    return error


def detail_fields(error: dict[str, Any]) -> list[str]:
    details = error.get("details")
    assert isinstance(details, list) and details, error
    for detail in details:
        assert set(detail) == {"field", "message"} and detail["message"], detail
    return [detail["field"] for detail in details]


def recording_vendor(answer: Callable[[SentRequest], Any] | None = None) -> FakeVendor:
    return FakeVendor(answer or (lambda _request: json_answer(200, GENERIC_CAMPAIGN)))


@pytest.fixture
async def generic_vendor(make_client) -> AsyncIterator[tuple[httpx.AsyncClient, FakeVendor]]:
    vendor = recording_vendor()
    async with make_client([GENERIC], lambda _connection: vendor) as client:
        yield client, vendor


# --- malformed and invalid bodies ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{nope",
        b"",
        b'{"name": "x",}',
        b'{"name": "\xff\xfe"}',
        b"\x00\x01\x02",
        b"[" * 50_000 + b"]" * 50_000,
        b'{"name": "x"} trailing',
    ],
    ids=["broken", "empty", "trailing-comma", "bad-utf8", "binary", "deeply-nested", "trailing-garbage"],
)
async def test_malformed_json_is_a_422_on_the_body(demo_client: httpx.AsyncClient, raw: bytes) -> None:
    response = await demo_client.post("/v1/campaigns", content=raw, headers=JSON)
    error = error_of(response, 422, "validation_error")
    assert detail_fields(error) == ["body"]
    assert "vendor" not in error and "upstream_status" not in error


@pytest.mark.parametrize("raw", [b"[]", b"null", b'"a string"', b"42", b"true"])
async def test_a_body_that_is_not_an_object_is_a_422_on_the_body(demo_client: httpx.AsyncClient, raw: bytes) -> None:
    response = await demo_client.post("/v1/campaigns", content=raw, headers=JSON)
    assert detail_fields(error_of(response, 422, "validation_error")) == ["body"]


async def test_malformed_json_on_patch_and_recipients_too(demo_client: httpx.AsyncClient) -> None:
    headers = {**JSON, "X-Connection": "dialnexa-sandbox"}
    for path, method in (("/v1/campaigns/c-1", "PATCH"), ("/v1/campaigns/c-1/recipients", "POST")):
        response = await demo_client.request(method, path, content=b"{oops", headers=headers)
        assert detail_fields(error_of(response, 422, "validation_error")) == ["body"], path


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"name"}),
        ({"name": 3, "recipients": [{"phone_number": 5}]}, {"name", "recipients[0].phone_number"}),
        (
            {"name": "ok", "recipients": [{"phone_number": E164_NUMBER}, {"name": "no number"}]},
            {"recipients[1].phone_number"},
        ),
        ({"name": "", "max_concurrent_calls": "many"}, {"name", "max_concurrent_calls"}),
        ({"name": "x", "recipients": "everyone"}, {"recipients"}),
        (
            {"name": "x", "schedule": {"days": ["monday", "funday"], "daily_start": "25:00"}},
            {"schedule.days[1]", "schedule.daily_start"},
        ),
        (
            {"name": "x", "retry": {"max_attempts": 0, "interval_minutes": -1}},
            {"retry.max_attempts", "retry.interval_minutes"},
        ),
        ({"name": "x", "start_at": "2030-01-01T09:00:00"}, {"start_at"}),
        ({"name": "x", "schedule": {"timezone": "Mars/Olympus_Mons"}}, {"schedule.timezone"}),
        ({"name": "x", "webhook_url": "ftp://example.com/hook"}, {"webhook_url"}),
        ({"name": "x", "vendor_options": ["not", "an", "object"]}, {"vendor_options"}),
        ({"name": "x", "surprise": 1}, {"surprise"}),
        ({"name": "x", "recipients": [{"phone_number": E164_NUMBER, "variables": {"v": [1]}}]}, None),
    ],
    ids=[
        "missing-name",
        "wrong-types",
        "second-recipient",
        "name-and-concurrency",
        "recipients-not-a-list",
        "schedule",
        "retry",
        "naive-start",
        "timezone",
        "webhook",
        "vendor-options",
        "unknown-field",
        "variable-type",
    ],
)
async def test_each_bad_field_is_named(demo_client: httpx.AsyncClient, body: dict, fields: set[str] | None) -> None:
    response = await demo_client.post("/v1/campaigns", json=body)
    named = detail_fields(error_of(response, 422, "validation_error"))
    if fields is None:  # a nested value of a bad type: named somewhere under the recipient's variables
        assert all(name.startswith("recipients[0].variables.v") for name in named), named
    else:
        assert set(named) == fields, named


async def test_details_name_every_recipient_that_is_wrong(demo_client: httpx.AsyncClient) -> None:
    recipients = [{"phone_number": E164_NUMBER}, {"phone_number": "12"}, {"phone_number": E164_NUMBER}, {}]
    response = await demo_client.post("/v1/campaigns", json={"name": "x", "recipients": recipients})
    named = detail_fields(error_of(response, 422, "validation_error"))
    assert set(named) == {"recipients[1].phone_number", "recipients[3].phone_number"}


@pytest.mark.parametrize(
    "number",
    ["4155551212", "+0415555121", "+1 415 555 1212", "+1415555121234567", "+12", "+1415555abcd", "0014155551212", ""],
)
async def test_a_phone_number_that_is_not_e164_is_refused(demo_client: httpx.AsyncClient, number: str) -> None:
    body = {"name": "x", "from_number": number, "recipients": [{"phone_number": number}]}
    response = await demo_client.post("/v1/campaigns", json=body)
    error = error_of(response, 422, "validation_error")
    assert set(detail_fields(error)) == {"from_number", "recipients[0].phone_number"}
    assert all("E.164" in detail["message"] for detail in error["details"]), error


async def test_recipients_add_refuses_a_bad_number_naming_it(demo_client: httpx.AsyncClient) -> None:
    body = {"recipients": [{"phone_number": E164_NUMBER}, {"phone_number": "555-1234"}]}
    response = await demo_client.post(
        "/v1/campaigns/c-1/recipients", json=body, headers={"X-Connection": "dialnexa-sandbox"}
    )
    assert detail_fields(error_of(response, 422, "validation_error")) == ["recipients[1].phone_number"]


async def test_recipients_add_needs_at_least_one(demo_client: httpx.AsyncClient) -> None:
    response = await demo_client.post(
        "/v1/campaigns/c-1/recipients", json={"recipients": []}, headers={"X-Connection": "dialnexa-sandbox"}
    )
    assert detail_fields(error_of(response, 422, "validation_error")) == ["recipients"]


async def test_a_bad_body_is_refused_before_anything_reaches_the_vendor(make_client) -> None:
    vendor = recording_vendor()
    async with make_client([GENERIC], lambda _connection: vendor) as client:
        for body in ({}, {"name": "x", "from_number": "nope"}):
            error_of(await client.post("/v1/campaigns", json=body), 422, "validation_error")
        error_of(await client.post("/v1/campaigns", content=b"{", headers=JSON), 422, "validation_error")
    assert vendor.sent == []


# --- connections --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nope", "HAMSA-SANDBOX", "hamsa-sandbox-2", "../hamsa-sandbox", "ham sandbox"])
async def test_an_unknown_connection_is_a_400(demo_client: httpx.AsyncClient, name: str) -> None:
    response = await demo_client.get("/v1/campaigns", headers={"X-Connection": name})
    error = error_of(response, 400, "unknown_connection")
    assert name in error["message"]


async def test_a_non_ascii_connection_header_is_a_400(demo_client: httpx.AsyncClient) -> None:
    response = await demo_client.get("/v1/campaigns", headers={"X-Connection": b"caf\xe9\xff"})
    error_of(response, 400, "unknown_connection")


async def test_another_tenants_connection_is_unknown_to_this_tenant(tmp_path: Path) -> None:
    """Tenant t1 names t2's connection: the same answer as for a name nobody has, and t2's vendor sees nothing."""
    theirs, ours = recording_vendor(), recording_vendor()
    path = write_config(tmp_path, [GENERIC])
    document = yaml.safe_load(path.read_text())
    other_key = "cgw_other_tenant_key_000000000000000000000000"
    document["tenants"].append(
        {
            "id": "t2",
            "keys": [{"id": "t2-key", "hash": key_hash(other_key)}],
            "default_connection": "t2-private",
            "connections": [{**GENERIC, "name": "t2-private"}],
        }
    )
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    config, problems = load_config(path)
    assert config is not None, problems
    app = GatewayApp(config, lambda connection: theirs if connection.name == "t2-private" else ours)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        mine = {"Authorization": f"Bearer {TEST_KEY}"}
        foreign = await client.get("/v1/campaigns/c-1", headers={**mine, "X-Connection": "t2-private"})
        unknown = await client.get("/v1/campaigns/c-1", headers={**mine, "X-Connection": "t2-privatf"})
        foreign_error = error_of(foreign, 400, "unknown_connection")
        unknown_error = error_of(unknown, 400, "unknown_connection")
        assert foreign_error["message"].replace("t2-private", "N") == unknown_error["message"].replace(
            "t2-privatf", "N"
        )
        listed = (await client.get("/v1/connections", headers=mine)).json()["data"]
        assert [c["name"] for c in listed] == ["gen"]
        # the owner can use it, so the refusal above was about tenancy, not the connection
        owner = await client.get("/v1/campaigns/c-1", headers={"Authorization": f"Bearer {other_key}"})
        assert owner.status_code == 200, owner.text
    await app.aclose()
    assert len(theirs.sent) == 1 and ours.sent == []


# --- unknown campaigns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connection", "vendor"),
    [
        ("hamsa-sandbox", "hamsa"),
        ("sarvam-sandbox", "sarvam"),
        ("dialnexa-sandbox", "dialnexa"),
        ("voiso-sandbox", "voiso"),
    ],
)
async def test_an_unknown_campaign_is_a_404_from_the_vendor(
    demo_client: httpx.AsyncClient, connection: str, vendor: str
) -> None:
    unknown = "424242" if vendor == "voiso" else "no-such-campaign"
    response = await demo_client.get(f"/v1/campaigns/{unknown}", headers={"X-Connection": connection})
    error = error_of(response, 404, "not_found")
    assert error["vendor"] == vendor
    assert error["upstream_status"] == 404


async def test_an_id_the_vendor_could_never_have_issued_is_a_404_without_a_call(demo_client) -> None:
    """Voiso ids are digits (id_pattern): anything else is not found, naming the vendor."""
    response = await demo_client.get("/v1/campaigns/not-a-number", headers={"X-Connection": "voiso-sandbox"})
    error = error_of(response, 404, "not_found")
    assert error["vendor"] == "voiso"
    assert "not-a-number" in error["message"]


async def test_lifecycle_on_an_unknown_campaign_is_a_404(demo_client: httpx.AsyncClient) -> None:
    for action in ("pause", "resume", "cancel"):
        response = await demo_client.post(
            f"/v1/campaigns/no-such-campaign/{action}", headers={"X-Connection": "dialnexa-sandbox"}
        )
        error = error_of(response, 404, "not_found")
        assert (error["vendor"], error["upstream_status"]) == ("dialnexa", 404), action


# --- transport-level refusals -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "multipart/form-data; boundary=x"},
        {"content-type": "application/json-patch+json"},
        {"content-type": "application/xml"},
        {},
    ],
    ids=["text", "form", "multipart", "json-patch", "xml", "none"],
)
async def test_a_body_that_is_not_json_is_a_415(demo_client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    content = orjson.dumps({"name": "x"})
    for method, path in (
        ("POST", "/v1/campaigns"),
        ("PATCH", "/v1/campaigns/c-1"),
        ("POST", "/v1/campaigns/c-1/recipients"),
    ):
        response = await demo_client.request(method, path, content=content, headers=headers)
        error_of(response, 415, "unsupported_media_type")


async def test_json_with_parameters_or_other_case_is_still_json(demo_client: httpx.AsyncClient) -> None:
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        response = await demo_client.post("/v1/campaigns", content=b"{}", headers={"content-type": content_type})
        # past the media-type check: the body itself is what is wrong now
        assert detail_fields(error_of(response, 422, "validation_error")) == ["name"]


async def test_a_body_over_one_mib_is_a_413(demo_client: httpx.AsyncClient) -> None:
    padding = "a" * MAX_BODY_BYTES
    response = await demo_client.post("/v1/campaigns", json={"name": "x", "vendor_options": {"pad": padding}})
    error_of(response, 413, "payload_too_large")


async def test_a_streamed_body_over_one_mib_is_a_413(demo_client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "x", "vendor_options": {"pad": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}}'

    response = await demo_client.post("/v1/campaigns", content=chunks(), headers=JSON)
    error_of(response, 413, "payload_too_large")


async def test_a_body_of_exactly_one_mib_is_read(demo_client: httpx.AsyncClient) -> None:
    head, tail = b'{"name": "", "vendor_options": {"pad": "', b'"}}'
    body = head + b"a" * (MAX_BODY_BYTES - len(head) - len(tail)) + tail
    assert len(body) == MAX_BODY_BYTES
    response = await demo_client.post("/v1/campaigns", content=body, headers=JSON)
    assert detail_fields(error_of(response, 422, "validation_error")) == ["name"]


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/v2/campaigns",
        "/v1",
        "/v1/",
        "/v1/nope",
        "/v1/campaigns/",
        "/v1//campaigns",
        "/v1/campaigns/c-1/nope",
        "/v1/campaigns/c-1/recipients/extra",
        "/v1/campaigns/c-1/pause/now",
        "/v1/campaigns//recipients",
        "/v1/connections/gen",
        "/healthz/",
    ],
)
async def test_an_unknown_endpoint_is_a_404(demo_client: httpx.AsyncClient, path: str) -> None:
    error = error_of(await demo_client.get(path), 404, "not_found")
    assert "vendor" not in error


async def test_an_unknown_endpoint_is_a_404_even_without_a_key(demo_client: httpx.AsyncClient) -> None:
    response = await demo_client.get("/v1/nope", headers={"Authorization": ""})
    error_of(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/campaigns", {"GET", "POST"}),
        ("DELETE", "/v1/campaigns", {"GET", "POST"}),
        ("PUT", "/v1/campaigns/c-1", {"GET", "PATCH", "DELETE"}),
        ("POST", "/v1/campaigns/c-1", {"GET", "PATCH", "DELETE"}),
        ("GET", "/v1/campaigns/c-1/pause", {"POST"}),
        ("DELETE", "/v1/campaigns/c-1/cancel", {"POST"}),
        ("PATCH", "/v1/campaigns/c-1/recipients", {"GET", "POST"}),
        ("POST", "/v1/connections", {"GET"}),
    ],
)
async def test_a_wrong_method_is_a_405_with_allow(
    demo_client: httpx.AsyncClient, method: str, path: str, allow: set[str]
) -> None:
    response = await demo_client.request(method, path)
    error_of(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["allow"].split(",")} == allow


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
async def test_a_wrong_method_on_a_service_endpoint_is_a_405_envelope(
    demo_client: httpx.AsyncClient, path: str
) -> None:
    """The contract: *every* non-2xx answer is the envelope, the service endpoints included."""
    response = await demo_client.post(path)
    error_of(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


# --- query values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("limit=0", {"limit"}),
        ("limit=abc", {"limit"}),
        ("limit=", {"limit"}),
        ("limit=-1", {"limit"}),
        ("limit=101", {"limit"}),
        ("limit=1.5", {"limit"}),
        ("limit=1e2", {"limit"}),
        ("status=bogus", {"status"}),
        ("status=ACTIVE", {"status"}),
        ("status=", {"status"}),
        ("include=x", {"include"}),
        ("include=vendor_data,x", {"include"}),
        ("limit=0&status=bogus&include=x", {"limit", "status", "include"}),
    ],
)
async def test_bad_query_values_are_a_422_naming_each(demo_client: httpx.AsyncClient, query: str, fields: set) -> None:
    for path in ("/v1/campaigns", "/v1/campaigns/no-such-campaign/recipients"):
        response = await demo_client.get(f"{path}?{query}")
        named = detail_fields(error_of(response, 422, "validation_error"))
        assert set(named) == fields, (path, named)


async def test_include_is_checked_on_a_single_campaign_too(demo_client: httpx.AsyncClient) -> None:
    response = await demo_client.get("/v1/campaigns/no-such-campaign?include=everything")
    assert detail_fields(error_of(response, 422, "validation_error")) == ["include"]


@pytest.mark.parametrize(
    "query", ["limit=%C2%B2", "limit=%E2%91%A0", "cursor=%C2%B2"], ids=["sup2", "circled1", "cursor-sup2"]
)
async def test_unicode_digits_in_the_query_are_a_422_not_a_500(demo_client: httpx.AsyncClient, query: str) -> None:
    """``'²'.isdigit()`` is True but ``int('²')`` raises: the query check must not crash on it."""
    response = await demo_client.get(f"/v1/campaigns?{query}")
    assert response.status_code != 500, response.text
    error = error_of(response, 422, "validation_error")
    assert set(detail_fields(error)) <= {"limit", "cursor"}


async def test_a_cursor_this_api_never_gave_is_a_422(demo_client: httpx.AsyncClient) -> None:
    response = await demo_client.get("/v1/campaigns?cursor=not-a-cursor")
    assert detail_fields(error_of(response, 422, "validation_error")) == ["cursor"]


# --- what a vendor cannot carry, needs, or does not offer ---------------------------------------


@pytest.mark.parametrize(
    ("connection", "body", "fields"),
    [
        (HAMSA, {**HAMSA_NEEDS, "retry": {"max_attempts": 3}}, {"retry.max_attempts"}),
        (HAMSA, {**HAMSA_NEEDS, "schedule": {"end_at": "2030-01-02T00:00:00Z"}}, {"schedule.end_at"}),
        (
            HAMSA,
            {"retry": {"interval_minutes": 5}, "schedule": {"end_at": "2030-01-02T00:00:00Z"}},
            {"retry.interval_minutes", "schedule.end_at", "agent_id", "from_number", "recipients"},
        ),
        (HAMSA, {**HAMSA_NEEDS, "recipients": [{"phone_number": E164_NUMBER}]}, {"recipients[0].name"}),
        (
            GENERIC,
            {"schedule": {"timezone": "UTC", "daily_start": "09:00"}},
            {"schedule.timezone", "schedule.daily_start"},
        ),
        (
            GENERIC,
            {"webhook_url": "https://example.com/hook", "schedule": {"days": ["monday"]}},
            {"webhook_url", "schedule.days"},
        ),
        (SARVAM, {"agent_id": "a", "from_number": E164_NUMBER}, {"schedule.end_at"}),
        (SARVAM, {"schedule": {"end_at": "2030-01-02T00:00:00Z"}}, {"agent_id", "from_number"}),
        (
            SARVAM,
            {"agent_id": "a", "from_number": E164_NUMBER, "max_concurrent_calls": 3},
            {"max_concurrent_calls", "schedule.end_at"},
        ),
    ],
    ids=[
        "hamsa-retry",
        "hamsa-end",
        "hamsa-both-and-missing",
        "hamsa-recipient-without-name",
        "generic-schedule-window",
        "generic-webhook-days",
        "sarvam-no-end",
        "sarvam-no-agent-number",
        "sarvam-unsupported-and-missing",
    ],
)
async def test_fields_a_vendor_cannot_carry_or_needs_are_named(
    make_client, connection: dict, body: dict, fields: set[str]
) -> None:
    vendor = recording_vendor()
    async with make_client([connection], lambda _connection: vendor) as client:
        response = await client.post("/v1/campaigns", json={"name": "Spring", **body})
    error = error_of(response, 422, "validation_error")
    assert error["vendor"] == connection["vendor"]
    assert set(detail_fields(error)) == fields
    assert vendor.sent == [], "refused fields must not reach the vendor"


async def test_refused_fields_on_the_shipped_sandboxes(demo_client: httpx.AsyncClient) -> None:
    response = await demo_client.post("/v1/campaigns", json={"name": "x", **HAMSA_NEEDS, "retry": {"max_attempts": 2}})
    assert detail_fields(error_of(response, 422, "validation_error")) == ["retry.max_attempts"]
    response = await demo_client.post(
        "/v1/campaigns",
        json={"name": "x", "agent_id": "a", "from_number": E164_NUMBER},
        headers={"X-Connection": "sarvam-sandbox"},
    )
    error = error_of(response, 422, "validation_error")
    assert error["vendor"] == "sarvam"
    assert detail_fields(error) == ["schedule.end_at"]


@pytest.mark.parametrize(
    ("connection", "method", "path", "body", "operation"),
    [
        ("hamsa-sandbox", "DELETE", "/v1/campaigns/c-1", None, "delete"),
        ("hamsa-sandbox", "POST", "/v1/campaigns/c-1/pause", None, "pause"),
        ("hamsa-sandbox", "POST", "/v1/campaigns/c-1/resume", None, "resume"),
        ("hamsa-sandbox", "POST", "/v1/campaigns/c-1/cancel", None, "cancel"),
        ("hamsa-sandbox", "PATCH", "/v1/campaigns/c-1", {"name": "new"}, "update"),
        (
            "hamsa-sandbox",
            "POST",
            "/v1/campaigns/c-1/recipients",
            {"recipients": [{"phone_number": E164_NUMBER}]},
            "recipients_add",
        ),
        ("sarvam-sandbox", "GET", "/v1/campaigns/c-1/recipients", None, "recipients_list"),
        ("sarvam-sandbox", "DELETE", "/v1/campaigns/c-1", None, "delete"),
        ("voiso-sandbox", "PATCH", "/v1/campaigns/1", {"name": "new"}, "update"),
        ("voiso-sandbox", "GET", "/v1/campaigns/1/recipients", None, "recipients_list"),
        ("dialnexa-sandbox", "DELETE", "/v1/campaigns/c-1", None, "delete"),
    ],
)
async def test_an_operation_the_vendor_lacks_is_a_501(
    demo_client: httpx.AsyncClient, connection: str, method: str, path: str, body: Any, operation: str
) -> None:
    response = await demo_client.request(method, path, json=body, headers={"X-Connection": connection})
    error = error_of(response, 501, "operation_not_supported")
    vendor = connection.removesuffix("-sandbox")
    assert error["vendor"] == vendor
    assert vendor in error["message"] and operation in error["message"]
    assert "upstream_status" not in error


async def test_connections_list_only_the_operations_that_do_not_501(demo_client: httpx.AsyncClient) -> None:
    listed = {c["name"]: set(c["operations"]) for c in (await demo_client.get("/v1/connections")).json()["data"]}
    assert "delete" not in listed["hamsa-sandbox"] and "get" in listed["hamsa-sandbox"]
    assert "recipients_list" not in listed["sarvam-sandbox"]


# --- authentication and scopes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {DEMO_KEY}x"},
        {"Authorization": f"Bearer {DEMO_KEY[:-1]}"},
        {"Authorization": f"Basic {DEMO_KEY}"},
        {"Authorization": DEMO_KEY},
        {"Authorization": "", "X-API-Key": "cgw_wrong"},
        {"Authorization": "", "X-API-Key": ""},
    ],
    ids=[
        "empty",
        "bearer-only",
        "bearer-space",
        "extra-char",
        "missing-char",
        "basic",
        "no-scheme",
        "bad-x-api-key",
        "empty-x-api-key",
    ],
)
async def test_a_missing_or_invalid_key_is_a_401(demo_client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/v1/campaigns"), ("GET", "/v1/connections"), ("POST", "/v1/campaigns")):
        response = await demo_client.request(method, path, headers=headers, json={"name": "x"})
        error = error_of(response, 401, "unauthorized")
        assert DEMO_KEY not in response.text
        assert "vendor" not in error


async def test_no_key_at_all_is_a_401(demo_config) -> None:
    app = GatewayApp(demo_config)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        error_of(await client.get("/v1/campaigns"), 401, "unauthorized")
        # authentication comes before reading the body: garbage from a stranger is still a 401
        error_of(await client.post("/v1/campaigns", content=b"{", headers=JSON), 401, "unauthorized")
        error_of(await client.get("/v1/campaigns", headers={"X-Connection": "nope"}), 401, "unauthorized")
    await app.aclose()


async def test_the_x_api_key_header_is_accepted(demo_config) -> None:
    app = GatewayApp(demo_config)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        response = await client.get("/v1/connections", headers={"X-API-Key": DEMO_KEY})
        assert response.status_code == 200, response.text
        assert {c["name"] for c in response.json()["data"]} >= {"hamsa-sandbox", "voiso-sandbox"}
        response = await client.get("/v1/campaigns?limit=1", headers={"X-API-Key": DEMO_KEY})
        assert response.status_code == 200, response.text
        error_of(await client.get("/v1/connections", headers={"X-API-Key": DEMO_KEY + "x"}), 401, "unauthorized")
    await app.aclose()


@pytest.fixture
async def read_only(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, FakeVendor]]:
    """A tenant whose only key has the scope campaigns:read."""
    path = write_config(tmp_path, [GENERIC])
    document = yaml.safe_load(path.read_text())
    document["tenants"][0]["keys"] = [{"id": "reader", "hash": key_hash(TEST_KEY), "scopes": ["campaigns:read"]}]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    config, problems = load_config(path)
    assert config is not None, problems
    vendor = recording_vendor()
    app = GatewayApp(config, lambda _connection: vendor)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers) as client:
        yield client, vendor
    await app.aclose()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/campaigns", {"name": "Spring"}),
        ("PATCH", "/v1/campaigns/c-1", {"name": "Summer"}),
        ("DELETE", "/v1/campaigns/c-1", None),
        ("POST", "/v1/campaigns/c-1/pause", None),
        ("POST", "/v1/campaigns/c-1/resume", None),
        ("POST", "/v1/campaigns/c-1/cancel", None),
        ("POST", "/v1/campaigns/c-1/recipients", {"recipients": [{"phone_number": E164_NUMBER}]}),
    ],
)
async def test_a_read_only_key_cannot_write(read_only, method: str, path: str, body: Any) -> None:
    client, vendor = read_only
    response = await client.request(method, path, json=body)
    error = error_of(response, 403, "forbidden")
    assert "campaigns:write" in error["message"]
    assert vendor.sent == []


async def test_a_read_only_key_can_read(read_only) -> None:
    client, vendor = read_only
    response = await client.get("/v1/campaigns/c-1")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "c-1"
    assert (await client.get("/v1/connections")).status_code == 200
    assert [request.method for request in vendor.sent] == ["GET"]


# --- request ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/connections"), ("GET", "/v1/campaigns/no-such-campaign"), ("GET", "/v1/nope"), ("GET", "/healthz")],
)
async def test_a_given_request_id_is_echoed(demo_client: httpx.AsyncClient, method: str, path: str) -> None:
    request_id = "client-chosen.id:42_A-b"
    response = await demo_client.request(method, path, headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    if response.status_code >= 400:
        assert response.json()["error"]["request_id"] == request_id


async def test_a_request_id_is_made_when_absent(demo_client: httpx.AsyncClient) -> None:
    seen = set()
    for path in ("/v1/connections", "/v1/campaigns/no-such-campaign", "/v1/nope", "/healthz", "/v1/campaigns?limit=0"):
        response = await demo_client.get(path)
        request_id = response.headers.get("x-request-id")
        assert request_id and re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", request_id), (path, request_id)
        if response.status_code >= 400:
            assert response.json()["error"]["request_id"] == request_id
        seen.add(request_id)
    assert len(seen) == 5, "each request gets its own id"


@pytest.mark.parametrize("given", ["has space", "x" * 200, "semi;colon", "new\tline"])
async def test_an_unsafe_request_id_is_replaced(demo_client: httpx.AsyncClient, given: str) -> None:
    response = await demo_client.get("/v1/nope", headers={"X-Request-ID": given})
    request_id = response.headers["x-request-id"]
    assert request_id != given and re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", request_id)
    assert response.json()["error"]["request_id"] == request_id


# --- ids that try to leave their path segment ---------------------------------------------------


def assert_one_segment(url: str, expected: str) -> None:
    """``url`` is exactly ``expected``, and the real (aiohttp/yarl) transport would send it unchanged."""
    assert url == expected
    sent = URL(url, encoded=True)
    assert sent.raw_path == URL(expected, encoded=True).raw_path
    prefix = "/v1/campaigns/"
    assert sent.raw_path.startswith(prefix)
    segment = sent.raw_path[len(prefix) :].split("/")[0]
    assert "/" not in unquote(segment) or "%2F" in segment
    assert segment not in (".", "..")


@pytest.mark.parametrize(
    ("sent_path", "upstream"),
    [
        ("/v1/campaigns/a%2Fb", "https://vendor.test/v1/campaigns/a%2Fb"),
        ("/v1/campaigns/..%2Fx", "https://vendor.test/v1/campaigns/..%2Fx"),
        ("/v1/campaigns/%2e%2e", "https://vendor.test/v1/campaigns/%2E%2E"),
        ("/v1/campaigns/%2E%2E", "https://vendor.test/v1/campaigns/%2E%2E"),
        ("/v1/campaigns/%2e", "https://vendor.test/v1/campaigns/%2E"),
        ("/v1/campaigns/%2F..%2Fadmin", "https://vendor.test/v1/campaigns/%2F..%2Fadmin"),
        ("/v1/campaigns/%2e%2e%2f%2e%2e%2fadmin", "https://vendor.test/v1/campaigns/..%2F..%2Fadmin"),
        ("/v1/campaigns/%2e%2e%5cadmin", "https://vendor.test/v1/campaigns/..%5Cadmin"),
        ("/v1/campaigns/a%3Fadmin%3Dtrue", "https://vendor.test/v1/campaigns/a%3Fadmin%3Dtrue"),
        ("/v1/campaigns/a%23frag", "https://vendor.test/v1/campaigns/a%23frag"),
        ("/v1/campaigns/%252F", "https://vendor.test/v1/campaigns/%252F"),
        ("/v1/campaigns/a%20b", "https://vendor.test/v1/campaigns/a%20b"),
        ("/v1/campaigns/%00", "https://vendor.test/v1/campaigns/%00"),
    ],
)
async def test_an_id_is_one_encoded_upstream_segment(generic_vendor, sent_path: str, upstream: str) -> None:
    client, vendor = generic_vendor
    request = client.build_request("GET", "/v1/campaigns/placeholder")
    request.url = request.url.copy_with(raw_path=sent_path.encode())
    assert request.url.raw_path == sent_path.encode(), "httpx changed the path before sending"
    response = await client.send(request)
    assert response.status_code == 200, response.text
    assert [r.url for r in vendor.sent] == [upstream]
    assert_one_segment(vendor.sent[0].url, upstream)


@pytest.mark.parametrize(
    ("method", "suffix", "body", "upstream_method", "upstream_suffix"),
    [
        ("POST", "/pause", None, "PATCH", ""),
        ("PATCH", "", {"name": "Summer"}, "PATCH", ""),
        ("GET", "/recipients", None, "GET", "/leads?limit=20&offset=0"),
    ],
)
async def test_an_id_stays_encoded_on_every_operation(
    generic_vendor, method: str, suffix: str, body: Any, upstream_method: str, upstream_suffix: str
) -> None:
    client, vendor = generic_vendor
    vendor.handler = lambda r: json_answer(200, {"data": [], "total": 0} if "/leads" in r.url else GENERIC_CAMPAIGN)
    response = await client.request(method, f"/v1/campaigns/%2e%2e%2Fadmin{suffix}", json=body)
    assert response.status_code == 200, response.text
    assert [(r.method, r.url) for r in vendor.sent] == [
        (upstream_method, f"https://vendor.test/v1/campaigns/..%2Fadmin{upstream_suffix}")
    ]


async def asgi_request(app: GatewayApp, method: str, raw_path: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    """Drive the app as uvicorn would for a request line carrying ``raw_path`` byte for byte."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"gateway"), (b"authorization", f"Bearer {TEST_KEY}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("gateway", 80),
    }
    messages: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if requested:
            return {"type": "http.disconnect"}
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


@pytest.fixture
async def raw_generic(tmp_path: Path) -> AsyncIterator[tuple[GatewayApp, FakeVendor]]:
    config, problems = load_config(write_config(tmp_path, [GENERIC]))
    assert config is not None, problems
    vendor = recording_vendor()
    app = GatewayApp(config, lambda _connection: vendor)
    yield app, vendor
    await app.aclose()


@pytest.mark.parametrize(
    ("raw_path", "upstream"),
    [
        (b"/v1/campaigns/..", "https://vendor.test/v1/campaigns/%2E%2E"),
        (b"/v1/campaigns/.", "https://vendor.test/v1/campaigns/%2E"),
        (b"/v1/campaigns/...", "https://vendor.test/v1/campaigns/%2E%2E%2E"),
        (b"/v1/campaigns/../recipients", "https://vendor.test/v1/campaigns/%2E%2E/leads?limit=20&offset=0"),
    ],
)
async def test_a_literal_dot_id_never_climbs(raw_generic, raw_path: bytes, upstream: str) -> None:
    app, vendor = raw_generic
    vendor.handler = lambda r: json_answer(200, {"data": [], "total": 0} if "/leads" in r.url else GENERIC_CAMPAIGN)
    status, _headers, body = await asgi_request(app, "GET", raw_path)
    assert status == 200, body
    assert [r.url for r in vendor.sent] == [upstream]


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/v1/campaigns/../x",
        b"/v1/campaigns/../../admin",
        b"/v1/campaigns/a/../../x",
        b"/v1/campaigns/./../connections",
    ],
)
async def test_a_dot_segment_path_is_not_an_endpoint(raw_generic, raw_path: bytes) -> None:
    app, vendor = raw_generic
    status, headers, body = await asgi_request(app, "GET", raw_path)
    assert status == 404, body
    error = orjson.loads(body)["error"]
    assert error["code"] == "not_found" and error["request_id"] == headers[b"x-request-id"].decode()
    assert vendor.sent == []


# --- a sweep: nothing here is ever a 500 --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "content", "headers"),
    [
        ("GET", "/v1/campaigns/%ff%fe", None, {}),
        ("GET", "/v1/campaigns/" + "a" * 4000, None, {}),
        ("GET", "/v1/campaigns?limit=%00", None, {}),
        ("GET", "/v1/campaigns?status=%ff", None, {}),
        ("GET", "/v1/campaigns?cursor=99999999999999999999", None, {}),
        ("GET", "/v1/campaigns?limit=5&limit=abc", None, {}),
        ("POST", "/v1/campaigns", b'{"name": "x", "max_concurrent_calls": 1e400}', JSON),
        ("POST", "/v1/campaigns", b'{"name": "x", "max_concurrent_calls": 99999999999999999999999}', JSON),
        ("POST", "/v1/campaigns", b'{"name": "x", "vendor_options": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2001, JSON),
        ("POST", "/v1/campaigns", b'{"name": "x", "name": 5}', JSON),
        (
            "POST",
            "/v1/campaigns",
            orjson.dumps({"name": "x", "recipients": [{"phone_number": E164_NUMBER}] * 1001}),
            JSON,
        ),
        ("POST", "/v1/campaigns", b'{"name": "\\ud800"}', JSON),
        ("PATCH", "/v1/campaigns/c-1", b'{"schedule": {"start_at": "yesterday"}}', JSON),
    ],
)
async def test_garbage_is_never_a_500(
    demo_client: httpx.AsyncClient, method: str, path: str, content: bytes | None, headers: dict[str, str]
) -> None:
    response = await demo_client.request(method, path, content=content, headers=headers)
    assert response.status_code != 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["request_id"] == response.headers["x-request-id"]
        assert error["code"] != "internal_error"
