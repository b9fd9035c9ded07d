"""A fifth vendor added with nothing but a YAML map, against a real HTTP upstream on loopback.

"acmedial" is invented: camelCase fields, status words LIVE / HALTED, caller numbers as digits
without ``+``, answers wrapped in ``{"result": {...}}`` and auth by ``X-Acme-Token``. Its fake API
is a Starlette app served by uvicorn in a background thread; the gateway runs in-process and
reaches it through its production (aiohttp) transport. No Python is written for the vendor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import models
from gateway.app import GatewayApp
from gateway.config import load_config
from gateway.transport import AiohttpTransport
from tests.conftest import TEST_KEY, write_config
from tests.fakes import Served, served_on_loopback

TOKEN = "acme-secret-token-123"

ACMEDIAL_MAP = """\
# acmedial: an invented vendor, for the test of adding a vendor by map alone.
vendor: acmedial
description: Acme Dial campaigns (invented)
base_url: https://api.acmedial.invalid
auth:
  headers:
    X-Acme-Token: "{credentials.token}"
errors:
  message: [error.msg]

enums:
  status:
    map: {LIVE: active, HALTED: paused, QUEUED: scheduled, DONE: completed, KILLED: cancelled}
    unknown: null

shapes:
  campaign:
    id: {from: campaignId, pipe: [string]}
    name: campaignName
    status: {from: state, pipe: [{enum: status}]}
    vendor_status: state
    agent_id: botRef
    from_numbers: {from: callerDigits, pipe: [list, e164]}
    max_concurrent_calls: lineCount
    schedule.start_at: {from: goLiveAt, pipe: [utc]}
    schedule.timezone: tz
    retry.max_attempts: retryPolicy.attempts
    retry.interval_minutes: retryPolicy.gapMinutes
    stats.total: counters.contacts
    stats.completed: counters.finished
    webhook_url: callbackUrl
    created_at: {from: createdOn, pipe: [utc]}
    updated_at: {from: modifiedOn, pipe: [utc]}

operations:
  create:
    unsupported: [recipients]
    request:
      method: POST
      path: /api/campaigns
      body:
        campaignName: body.name
        botRef: body.agent_id
        callerDigits: {from: body.from_number, pipe: [digits]}
        lineCount: body.max_concurrent_calls
        goLiveAt: {coalesce: [body.start_at, body.schedule.start_at], pipe: [utc]}
        tz: {from: body.schedule.timezone, default: UTC}
        retryPolicy.attempts: body.retry.max_attempts
        retryPolicy.gapMinutes: body.retry.interval_minutes
        callbackUrl: body.webhook_url
    response: {unwrap: result, shape: campaign}

  get:
    request: {method: GET, path: "/api/campaigns/{id}"}
    response: {unwrap: result, shape: campaign}

  pause:
    request: {method: POST, path: "/api/campaigns/{id}/halt"}
    response: {unwrap: result, shape: campaign}
"""


# --- the fake upstream ----------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class AcmeDial:
    """The invented vendor's API: what it stores and every request it received."""

    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def app(self) -> Starlette:
        async def guarded(request: Request, handler: Any) -> Response:
            raw = await request.body()
            body = await request.json() if raw else None
            self.received.append(Received(request.method, request.url.path, dict(request.headers), body))
            if request.headers.get("x-acme-token") != TOKEN:
                return JSONResponse({"error": {"msg": "bad token"}}, status_code=401)
            return await handler(request, body)

        async def create(request: Request, body: Any) -> Response:
            number = 7000 + len(self.campaigns) + 1
            record = {
                "campaignId": number,
                "campaignName": body["campaignName"],
                "state": "LIVE",
                "botRef": body.get("botRef"),
                "callerDigits": body["callerDigits"],
                "lineCount": body.get("lineCount", 1),
                "goLiveAt": body.get("goLiveAt"),
                "tz": body.get("tz"),
                "retryPolicy": body.get("retryPolicy", {"attempts": 1, "gapMinutes": 0}),
                "callbackUrl": body.get("callbackUrl"),
                "counters": {"contacts": 0, "finished": 0},
                "createdOn": "2025-06-01T10:00:00+02:00",
                "modifiedOn": "2025-06-01T10:00:00+02:00",
                # fields the map has no canonical home for
                "region": "eu-west-2",
                "billingCode": "ACME-17",
                "dialer": {"mode": "progressive", "amd": True},
            }
            self.campaigns[str(number)] = record
            return JSONResponse({"ok": True, "result": record}, status_code=201)

        async def get(request: Request, _body: Any) -> Response:
            record = self.campaigns.get(request.path_params["campaign_id"])
            if record is None:
                return JSONResponse({"error": {"msg": "no such campaign"}}, status_code=404)
            return JSONResponse({"ok": True, "result": record})

        async def halt(request: Request, _body: Any) -> Response:
            record = self.campaigns.get(request.path_params["campaign_id"])
            if record is None:
                return JSONResponse({"error": {"msg": "no such campaign"}}, status_code=404)
            record.update(state="HALTED", modifiedOn="2025-06-02T08:30:00Z")
            return JSONResponse({"ok": True, "result": record})

        def route(path: str, handler: Any, method: str) -> Route:
            async def endpoint(request: Request) -> Response:
                return await guarded(request, handler)

            return Route(path, endpoint, methods=[method])

        return Starlette(
            routes=[
                route("/api/campaigns", create, "POST"),
                route("/api/campaigns/{campaign_id}", get, "GET"),
                route("/api/campaigns/{campaign_id}/halt", halt, "POST"),
            ]
        )


@pytest.fixture
def acmedial() -> Iterator[Served[AcmeDial]]:
    """The fake vendor on 127.0.0.1, on a free port, in a background thread."""
    vendor = AcmeDial()
    with served_on_loopback(vendor.app()) as base_url:
        yield Served(vendor, base_url)


@pytest.fixture
def tmp_mappings(tmp_path: Path) -> Path:
    folder = tmp_path / "maps"
    folder.mkdir()
    (folder / "acmedial.yaml").write_text(ACMEDIAL_MAP)
    return folder


@pytest.fixture
async def gateway(
    tmp_path: Path, tmp_mappings: Path, acmedial: Served
) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayApp]]:
    connection = {
        "name": "acme-main",
        "vendor": "acmedial",
        "base_url": acmedial.base_url,
        "credentials": {"token": TOKEN},
        "timeouts": {"connect": 2, "read": 5},
    }
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config, problems = load_config(write_config(config_dir, [connection], mappings_dir=tmp_mappings))
    assert config is not None, problems
    app = GatewayApp(config)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers) as client:
        yield client, app
    await app.aclose()


CREATE_BODY = {
    "name": "Acme spring push",
    "agent_id": "bot-77",
    "from_number": "+14155550100",
    "start_at": "2031-03-01T09:00:00-05:00",
    "schedule": {"timezone": "America/New_York"},
    "max_concurrent_calls": 6,
    "retry": {"max_attempts": 4, "interval_minutes": 45},
    "webhook_url": "https://hooks.example.com/acme",
}


# --- the tests -----------------------------------------------------------------------------------


def test_the_map_folder_holds_only_the_new_map(tmp_mappings: Path) -> None:
    assert [p.name for p in tmp_mappings.iterdir()] == ["acmedial.yaml"]


async def test_fifth_vendor_create_and_get(gateway: tuple[httpx.AsyncClient, GatewayApp], acmedial: Served) -> None:
    client, app = gateway
    [upstream] = app.runtime.upstreams.values()
    assert upstream.connection.name == "acme-main"
    assert isinstance(upstream.transport, AiohttpTransport)

    connections = (await client.get("/v1/connections")).json()["data"]
    [acme] = connections
    assert {key: acme[key] for key in ("name", "vendor", "default", "operations", "unsupported_fields")} == {
        "name": "acme-main",
        "vendor": "acmedial",
        "default": True,
        "operations": ["create", "get", "pause"],
        "unsupported_fields": "reject",
    }
    # derived from the map alone: what its create body sends, and everything else
    assert acme["capabilities"]["create"]["native"] == [
        "name",
        "agent_id",
        "from_number",
        "start_at",
        "schedule.start_at",
        "schedule.timezone",
        "max_concurrent_calls",
        "retry.max_attempts",
        "retry.interval_minutes",
        "webhook_url",
        "vendor_options",
    ]
    assert acme["capabilities"]["create"]["unsupported"] == [
        "recipients[*].phone_number",
        "recipients[*].name",
        "recipients[*].variables",
        "schedule.end_at",
        "schedule.days",
        "schedule.daily_start",
        "schedule.daily_end",
    ]

    created = await client.post("/v1/campaigns", json=CREATE_BODY)
    assert created.status_code == 201, created.text

    # the upstream got the vendor's own request: translated body, its auth header, its path
    [sent] = acmedial.vendor.received
    assert (sent.method, sent.path) == ("POST", "/api/campaigns")
    assert sent.headers["x-acme-token"] == TOKEN
    assert "authorization" not in sent.headers
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == {
        "campaignName": "Acme spring push",
        "botRef": "bot-77",
        "callerDigits": "14155550100",
        "lineCount": 6,
        "goLiveAt": "2031-03-01T14:00:00Z",
        "tz": "America/New_York",
        "retryPolicy": {"attempts": 4, "gapMinutes": 45},
        "callbackUrl": "https://hooks.example.com/acme",
    }

    expected = {
        "id": "7001",
        "connection": "acme-main",
        "vendor": "acmedial",
        "name": "Acme spring push",
        "status": "active",
        "vendor_status": "LIVE",
        "agent_id": "bot-77",
        "from_numbers": ["+14155550100"],
        "max_concurrent_calls": 6,
        "schedule": {
            "start_at": "2031-03-01T14:00:00Z",
            "end_at": None,
            "timezone": "America/New_York",
            "days": None,
            "daily_start": None,
            "daily_end": None,
        },
        "retry": {"max_attempts": 4, "interval_minutes": 45},
        "stats": {
            "total": 0,
            "pending": None,
            "queued": None,
            "in_progress": None,
            "completed": 0,
            "failed": None,
            "no_answer": None,
        },
        "webhook_url": "https://hooks.example.com/acme",
        "created_at": "2025-06-01T08:00:00Z",
        "updated_at": "2025-06-01T08:00:00Z",
    }
    assert created.json() == expected
    models.Campaign.model_validate(created.json())

    fetched = await client.get("/v1/campaigns/7001")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == expected
    assert fetched.headers["x-cache"] == "MISS"
    assert acmedial.vendor.received[-1].path == "/api/campaigns/7001"
    assert acmedial.vendor.received[-1].method == "GET"
    assert acmedial.vendor.received[-1].headers["x-acme-token"] == TOKEN

    # vendor_data keeps exactly what no canonical field took, the envelope excluded
    rich = await client.get("/v1/campaigns/7001", params={"include": "vendor_data"})
    assert rich.status_code == 200, rich.text
    assert rich.json()["vendor_data"] == {
        "region": "eu-west-2",
        "billingCode": "ACME-17",
        "dialer": {"mode": "progressive", "amd": True},
    }
    assert {k: v for k, v in rich.json().items() if k != "vendor_data"} == expected


async def test_fifth_vendor_lifecycle_errors_and_unsupported(
    gateway: tuple[httpx.AsyncClient, GatewayApp], acmedial: Served
) -> None:
    client, _app = gateway
    created = await client.post("/v1/campaigns", json={"name": "Acme minimal", "from_number": "+442071838750"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert acmedial.vendor.received[-1].body == {
        "campaignName": "Acme minimal",
        "callerDigits": "442071838750",
        "tz": "UTC",
    }
    assert (body["status"], body["vendor_status"], body["from_numbers"]) == ("active", "LIVE", ["+442071838750"])
    assert body["agent_id"] is None and body["webhook_url"] is None

    paused = await client.post(f"/v1/campaigns/{body['id']}/pause")
    assert paused.status_code == 200, paused.text
    assert (paused.json()["status"], paused.json()["vendor_status"]) == ("paused", "HALTED")
    assert paused.json()["updated_at"] == "2025-06-02T08:30:00Z"
    assert acmedial.vendor.received[-1].path == f"/api/campaigns/{body['id']}/halt"

    missing = await client.get("/v1/campaigns/999")
    assert missing.status_code == 404, missing.text
    error = missing.json()["error"]
    assert (error["code"], error["vendor"], error["upstream_status"]) == ("not_found", "acmedial", 404)
    assert "no such campaign" in error["message"]

    for method, path in (("GET", "/v1/campaigns"), ("POST", f"/v1/campaigns/{body['id']}/resume")):
        answer = await client.request(method, path)
        assert answer.status_code == 501, answer.text
        assert answer.json()["error"]["code"] == "operation_not_supported"
        assert answer.json()["error"]["vendor"] == "acmedial"

    refused = await client.post("/v1/campaigns", json={**CREATE_BODY, "recipients": [{"phone_number": "+14155550111"}]})
    assert refused.status_code == 422, refused.text
    assert [d["field"] for d in refused.json()["error"]["details"]] == ["recipients[*].phone_number"]


async def test_fifth_vendor_bad_token_is_reported_not_leaked(
    tmp_path: Path, tmp_mappings: Path, acmedial: Served
) -> None:
    connection = {
        "name": "acme-wrong",
        "vendor": "acmedial",
        "base_url": acmedial.base_url,
        "credentials": {"token": "not-the-token"},
    }
    config, problems = load_config(write_config(tmp_path, [connection], mappings_dir=tmp_mappings))
    assert config is not None, problems
    app = GatewayApp(config)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"Authorization": f"Bearer {TEST_KEY}"},
        ) as client:
            answer = await client.post("/v1/campaigns", json=CREATE_BODY)
    finally:
        await app.aclose()
    assert answer.status_code == 401, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["vendor"], error["upstream_status"]) == ("unauthorized", "acmedial", 401)
    assert "not-the-token" not in answer.text
    assert acmedial.vendor.received[-1].headers["x-acme-token"] == "not-the-token"
