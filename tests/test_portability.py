"""One request body for every vendor: strict and lenient handling, composed steps, capabilities.

Runs against the shipped config's in-process sandboxes. What a connection does with each
canonical field is read from ``GET /v1/connections`` and must agree with what really reaches
the vendor (``gateway translate``'s engine path, and the sandboxes' call counts).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import capability_table
from gateway.app import GatewayApp
from gateway.config import Config, load_config
from gateway.errors import ValidationFailed
from gateway.inbound import handling
from gateway.mapping.canonical import REQUEST_MODELS, field_text, leaves
from gateway.mapping.paths import EVERY, compile_getter, set_at
from gateway.mapping.paths import Path as FieldPath
from gateway.translate import vendor_side
from tests.conftest import DEMO_KEY, ROOT, TEST_KEY, write_config

CONNECTIONS = (
    "hamsa-sandbox",
    "voiso-sandbox",
    "sarvam-sandbox",
    "dialnexa-sandbox",
    "vapi-sandbox",
    "elevenlabs-sandbox",
    "bland-sandbox",
    "exotel-sandbox",
)
LENIENT = {"Prefer": "handling=lenient"}
STRICT = {"Prefer": "handling=strict"}


def readme_create_body() -> dict[str, Any]:
    """The Hamsa create body of the README's "Try it" section, exactly as a new user copies it."""
    section = (ROOT / "README.md").read_text().split("## Try it", 1)[1]
    found = re.search(r"BODY='(\{.*?\})'", section, flags=re.DOTALL)
    assert found, "the README's Try it section has no create body"
    return json.loads(found[1])


# What a vendor strictly needs in its own forms: its id and number forms, and Sarvam's end.
# (Vapi's and ElevenLabs' caller must be one of the account's numbers: the README's +14155551212 is one.)
OWN_FORMS: dict[str, dict[str, Any]] = {
    "hamsa-sandbox": {},
    "voiso-sandbox": {},
    "sarvam-sandbox": {"schedule": {"end_at": "2030-01-01T00:00:00Z"}},
    "dialnexa-sandbox": {"agent_id": "agt_demo42"},
    "vapi-sandbox": {},
    "elevenlabs-sandbox": {},
    "bland-sandbox": {},
    "exotel-sandbox": {"agent_id": "http://my.exotel.com/demo-sid/exoml/start_voice/12345"},
}
# Connections whose recipients listing shows call records (none before a call is made), not recipients.
LISTS_CALLS = ("exotel-sandbox",)


def with_own_forms(body: dict[str, Any], connection: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for key, value in OWN_FORMS[connection].items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


# A campaign id of the vendor's own form, where "1" is not one (its map's id_pattern).
IDS = {"vapi-sandbox": "7a6f2e4c-1b3d-4c5e-9f8a-0b1c2d3e4f5a"}


def present_leaves(body: dict[str, Any], operation: str) -> list[str]:
    return [field_text(leaf) for leaf in leaves(REQUEST_MODELS[operation]) if _set(compile_getter(leaf)(body))]


def _set(value: Any) -> bool:
    return value not in (None, [], {}, "")


@pytest.fixture
def config(demo_config: Config) -> Config:
    return demo_config


@pytest.fixture
async def gateway(demo_config: Config):
    app = GatewayApp(demo_config)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"Authorization": f"Bearer {DEMO_KEY}"},
    )
    yield app, client
    await client.aclose()
    await app.aclose()


async def sandbox(app: GatewayApp, connection: str, method: str, path: str, body: Any = None) -> Any:
    """A sandbox's own endpoint (call counts, faults), through the gateway as a user reaches it."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        headers = {"Authorization": f"Bearer {_key(app)}", "X-Connection": connection}
        answer = await client.request(method, path, json=body, headers=headers)
    assert answer.status_code == 200, (path, answer.text)
    return answer.json()


def _key(app: GatewayApp) -> str:
    return DEMO_KEY if "demo" in app.config.tenants else TEST_KEY


async def capabilities(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    listed = await client.get("/v1/connections")
    assert listed.status_code == 200, listed.text
    return {item["name"]: item["capabilities"] for item in listed.json()["data"]}


# --- the README's body on every vendor -----------------------------------------------------------


@pytest.mark.parametrize("connection", CONNECTIONS)
async def test_the_readme_body_is_created_everywhere_when_lenient(gateway, connection: str) -> None:
    app, client = gateway
    body = with_own_forms(readme_create_body(), connection)
    report = (await capabilities(client))[connection]["create"]
    expected_dropped = [name for name in present_leaves(body, "create") if name in report["unsupported"]]

    created = await client.post("/v1/campaigns", json=body, headers={"X-Connection": connection, **LENIENT})
    assert created.status_code == 201, created.text
    assert created.headers["preference-applied"] == "handling=lenient"
    assert created.headers.get("dropped-fields", "") == ", ".join(expected_dropped)
    if connection != "hamsa-sandbox":
        assert expected_dropped, "the README body fits Hamsa; every other vendor lacks something of it"

    # the recipient reached the vendor: listed where the vendor lists recipients, else counted at the sandbox
    recipients = [r["phone_number"] for r in body["recipients"]]
    calls = await sandbox(app, connection, "GET", "/_sandbox/calls")
    assert calls["create"] == 1
    if "recipients[*].phone_number" in report["composed"]:
        assert calls["recipients_add"] == 1
    campaign_id = created.json()["id"]
    listed = await client.get(f"/v1/campaigns/{campaign_id}/recipients", headers={"X-Connection": connection})
    if listed.status_code != 501 and connection not in LISTS_CALLS:
        assert [r["phone_number"] for r in listed.json()["data"]] == recipients


@pytest.mark.parametrize("connection", CONNECTIONS[1:])
async def test_strict_is_the_default_and_names_every_field_it_refuses(gateway, connection: str) -> None:
    app, client = gateway
    body = with_own_forms(readme_create_body(), connection)
    report = (await capabilities(client))[connection]["create"]
    for headers in ({}, STRICT):
        refused = await client.post("/v1/campaigns", json=body, headers={"X-Connection": connection, **headers})
        assert refused.status_code == 422, refused.text
        named = [detail["field"] for detail in refused.json()["error"]["details"]]
        assert named == [name for name in present_leaves(body, "create") if name in report["unsupported"]]
        assert "dropped-fields" not in refused.headers
    assert (await sandbox(app, connection, "GET", "/_sandbox/calls")).get("create", 0) == 0


async def test_required_fields_and_bad_values_are_refused_even_when_lenient(gateway) -> None:
    _app, client = gateway
    sarvam = {"X-Connection": "sarvam-sandbox", **LENIENT}
    missing = await client.post("/v1/campaigns", json={"name": "No end", "max_concurrent_calls": 3}, headers=sarvam)
    assert missing.status_code == 422, missing.text
    assert [d["field"] for d in missing.json()["error"]["details"]] == ["agent_id", "from_number", "schedule.end_at"]
    assert missing.headers["preference-applied"] == "handling=lenient"

    hamsa = {"X-Connection": "hamsa-sandbox", **LENIENT}
    body = with_own_forms(readme_create_body(), "hamsa-sandbox")
    body["recipients"].append({"phone_number": "+14155550177"})
    nameless = await client.post("/v1/campaigns", json=body, headers=hamsa)
    assert nameless.status_code == 422, nameless.text
    assert nameless.json()["error"]["details"] == [
        {"field": "recipients[1].name", "message": "hamsa requires this field"}
    ]


async def test_a_connection_that_drops_by_default_and_the_header_that_overrides_it(tmp_path: Path) -> None:
    connection = {
        "name": "voiso-lenient",
        "vendor": "voiso",
        "base_url": "sandbox",
        "credentials": {"api_key": "sandbox-key"},
        "params": {"cluster_id": "demo", "team": "demo-team"},
        "unsupported_fields": "drop",
    }
    config, problems = load_config(write_config(tmp_path, [connection]))
    assert config is not None, problems
    app = GatewayApp(config)
    body = {"name": "Dialer", "from_number": "+18885650001", "agent_id": "a-1", "max_concurrent_calls": 5}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ) as client:
        listed = (await client.get("/v1/connections")).json()["data"]
        assert listed[0]["unsupported_fields"] == "drop"
        dropped = await client.post("/v1/campaigns", json=body)
        assert dropped.status_code == 201, dropped.text
        assert dropped.headers["preference-applied"] == "handling=lenient"
        assert dropped.headers["dropped-fields"] == "agent_id, max_concurrent_calls"
        refused = await client.post("/v1/campaigns", json={**body, "name": "Dialer 2"}, headers=STRICT)
        assert refused.status_code == 422, refused.text
        assert refused.headers["preference-applied"] == "handling=strict"
    await app.aclose()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([b"handling=lenient"], "lenient"),
        ([b'respond-async, Handling = "LENIENT"; x=1'], "lenient"),
        ([b"wait=10", b"handling=lenient"], "lenient"),
        ([b"handling=strict, handling=lenient"], "strict"),  # the first one counts
        ([b"handling=sloppy"], None),  # not a value we know: ignored
        ([b"return=minimal"], None),
    ],
)
def test_the_prefer_header_is_read_as_rfc_7240_says(config: Config, values: list[bytes], expected: str | None) -> None:
    voiso = config.tenants["demo"].connections["voiso-sandbox"]
    chosen, asked = handling([(b"prefer", value) for value in values], voiso)
    assert (chosen, asked) == ((expected, True) if expected else ("strict", False))


# --- no silent drop, for every vendor, operation and field ---------------------------------------

# Two valid values for every leaf: the base a body has when it must, the probe a test sets.
BASE: dict[str, Any] = {
    "name": "Base",
    "agent_id": "agt_base1",
    "from_number": "+14155550100",
    "recipients[*].phone_number": "+14155550111",
    "recipients[*].name": "Ann",
    "recipients[*].variables": {"tier": "silver"},
    "start_at": "2030-01-01T10:00:00Z",
    "schedule.start_at": "2030-01-01T10:00:00Z",
    "schedule.end_at": "2030-02-01T10:00:00Z",
    "schedule.timezone": "Europe/London",
    "schedule.days": ["monday"],
    "schedule.daily_start": "08:00",
    "schedule.daily_end": "18:00",
    "max_concurrent_calls": 2,
    "retry.max_attempts": 2,
    "retry.interval_minutes": 10,
    "webhook_url": "https://hooks.example.com/base",
    "vendor_options": {"base_option": 1},
}
PROBE: dict[str, Any] = {
    "name": "Probe",
    "agent_id": "agt_probe2",
    "from_number": "+14155550199",
    "recipients[*].phone_number": "+14155550122",
    "recipients[*].name": "Bob",
    "recipients[*].variables": {"tier": "gold"},
    "start_at": "2031-03-03T03:03:00Z",
    "schedule.start_at": "2031-03-03T03:03:00Z",
    "schedule.end_at": "2031-04-04T04:04:00Z",
    "schedule.timezone": "Asia/Kolkata",
    "schedule.days": ["friday", "saturday"],
    "schedule.daily_start": "07:15",
    "schedule.daily_end": "19:45",
    "max_concurrent_calls": 7,
    "retry.max_attempts": 5,
    "retry.interval_minutes": 33,
    "webhook_url": "https://hooks.example.com/probe",
    "vendor_options": {"probe_option": 2},
}


def _put(body: dict[str, Any], name: str, value: Any) -> None:
    """Set a leaf; through ``[*]``, in the one recipient the bodies here carry."""
    path: FieldPath = tuple(0 if step == EVERY else step for step in _steps(name))
    set_at(body, path, value)


def _steps(name: str) -> FieldPath:
    return next(
        leaf for leaf in leaves(REQUEST_MODELS["create"]) + leaves(REQUEST_MODELS["update"]) if field_text(leaf) == name
    )


def base_body(operation: str, report: dict[str, list[str]], field: str) -> dict[str, Any]:
    """A valid body for the operation: what it requires, and a recipient (as the vendor takes one) when needed."""
    required = report["required"]
    body: dict[str, Any] = {"name": BASE["name"]} if operation == "create" else {}
    if any(name.startswith("recipients") for name in [*required, field]):
        body["recipients"] = [{"phone_number": BASE["recipients[*].phone_number"]}]
        if "recipients[*].name" not in report["unsupported"]:
            body["recipients"][0]["name"] = BASE["recipients[*].name"]
    for name in required:
        if name in BASE:
            _put(body, name, BASE[name])
    return body


def sent(config: Config, connection: str, operation: str, body: dict[str, Any], lenient: bool) -> dict[str, Any]:
    from gateway.engine import Call

    vendor = config.tenants["demo"].connections[connection]
    campaign_id = None if operation == "create" else IDS.get(connection, "1")
    call = Call(operation, id=campaign_id, body=body, handling="lenient" if lenient else "strict")
    return vendor_side(vendor, call)


def _cases() -> list[tuple[str, str, str]]:
    config, _ = load_config(ROOT / "config.yaml")
    assert config is not None
    cases = []
    for connection in CONNECTIONS:
        vendor_map = config.tenants["demo"].connections[connection].map
        for operation in vendor_map.capabilities:
            cases += [(connection, operation, field_text(leaf)) for leaf in leaves(REQUEST_MODELS[operation])]
    return cases


@pytest.mark.parametrize(("connection", "operation", "field"), _cases())
def test_every_field_reaches_the_vendor_or_is_refused_or_named(
    config: Config, connection: str, operation: str, field: str
) -> None:
    report = config.tenants["demo"].connections[connection].map.capabilities[operation]
    outcomes = [name for name in ("native", "composed", "unsupported") if field in report[name]]
    assert len(outcomes) == 1, (field, report)
    base = base_body(operation, report, field)
    probed = copy.deepcopy(base)
    _put(probed, field, PROBE[field])
    before = sent(config, connection, operation, base, lenient=False)

    if outcomes == ["unsupported"]:
        with pytest.raises(ValidationFailed) as refused:
            sent(config, connection, operation, probed, lenient=False)
        assert [d["field"] for d in refused.value.details or []] == [field]
        lenient = sent(config, connection, operation, probed, lenient=True)
        assert lenient.pop("dropped") == [field]
        assert lenient == before, "a dropped field must not reach the vendor in any form"
        return
    after = sent(config, connection, operation, probed, lenient=False)
    assert "dropped" not in after
    where = "requests" if outcomes == ["native"] else "steps"
    assert after.get(where) != before.get(where), f"{field} does not reach the vendor's {where}"
    if outcomes == ["native"]:
        assert after.get("steps") == before.get("steps")


async def test_the_capabilities_endpoint_is_each_maps_own_report(gateway, config: Config) -> None:
    _app, client = gateway
    listed = await capabilities(client)
    for name, connection in config.tenants["demo"].connections.items():
        assert listed[name] == connection.map.capabilities


# --- composed steps, partial failure and resuming -------------------------------------------------

COMPOSED = {
    # connection: (the create body, the path of the step's calls at the sandbox, calls a full add makes)
    "voiso-sandbox": ({"name": "Leads", "from_number": "+18885650001"}, "/leads", 1),
    "sarvam-sandbox": (
        {
            "name": "Cohort",
            "agent_id": "app_1",
            "from_number": "+919876543210",
            "schedule": {"end_at": "2030-01-01T00:00:00Z"},
        },
        "/cohorts/upload",
        1,
    ),
    "dialnexa-sandbox": (
        {"name": "Leads", "agent_id": "agt_abc", "from_number": "+912234567890"},
        "/campaigns-leads",
        2,
    ),
}
RECIPIENTS = [{"phone_number": "+14155550101", "name": "Ada"}, {"phone_number": "+14155550102", "name": "Bo"}]


@pytest.mark.parametrize("connection", sorted(COMPOSED))
async def test_a_failed_step_is_a_partial_failure_and_a_retry_resumes_it(gateway, connection: str) -> None:
    app, client = gateway
    body, step_path, full_calls = COMPOSED[connection]
    body = {**body, "recipients": RECIPIENTS}
    headers = {"X-Connection": connection, "Idempotency-Key": f"composed-{connection}"}
    await sandbox(app, connection, "POST", "/_sandbox/faults", [{"kind": "status", "value": 422, "path": step_path}])

    failed = await client.post("/v1/campaigns", json=body, headers=headers)
    assert failed.status_code == 502, failed.text
    error = failed.json()["error"]
    assert error["code"] == "partial_failure"
    assert error["upstream_status"] == 422
    campaign_id = error["details"][0]["campaign_id"]
    assert error["details"][0] == {"campaign_id": campaign_id, "step": "recipients_add"}
    assert campaign_id in error["message"]
    assert (await client.get(f"/v1/campaigns/{campaign_id}", headers={"X-Connection": connection})).status_code == 200

    resumed = await client.post("/v1/campaigns", json=body, headers=headers)
    assert resumed.status_code == 201, resumed.text
    assert resumed.json()["id"] == campaign_id
    again = await client.post("/v1/campaigns", json=body, headers=headers)
    assert (again.status_code, again.json()["id"], again.headers["idempotent-replayed"]) == (201, campaign_id, "true")

    calls = await sandbox(app, connection, "GET", "/_sandbox/calls")
    assert calls["create"] == 1, "a retry must never create a second campaign"
    # the failed call, then only what had not taken effect: each recipient reached the vendor once
    assert calls["recipients_add"] == full_calls  # a faulted call never reaches the sandbox's counter
    listed = await client.get("/v1/campaigns", headers={"X-Connection": connection, "Cache-Control": "no-cache"})
    assert [c["id"] for c in listed.json()["data"]] == [campaign_id]
    if connection == "dialnexa-sandbox":
        leads = await client.get(f"/v1/campaigns/{campaign_id}/recipients", headers={"X-Connection": connection})
        assert sorted(r["phone_number"] for r in leads.json()["data"]) == sorted(r["phone_number"] for r in RECIPIENTS)


async def test_a_partial_failure_without_a_key_still_names_the_campaign(gateway) -> None:
    app, client = gateway
    body = {**COMPOSED["dialnexa-sandbox"][0], "recipients": RECIPIENTS}
    fault = [{"kind": "status", "value": 422, "path": "/campaigns-leads", "count": 2}]
    await sandbox(app, "dialnexa-sandbox", "POST", "/_sandbox/faults", fault)
    failed = await client.post("/v1/campaigns", json=body, headers={"X-Connection": "dialnexa-sandbox"})
    assert failed.status_code == 502, failed.text
    details = failed.json()["error"]["details"]
    assert details[0]["step"] == "recipients_add"
    assert [d["field"] for d in details[1:]] == ["recipients[0]", "recipients[1]"]


async def test_progress_is_kept_in_redis_so_any_instance_resumes(tmp_path: Path, redis_server) -> None:
    """Two gateway instances on one Redis: the one that hit the partial failure is gone; the other resumes."""
    connection = {
        "name": "nexa",
        "vendor": "dialnexa",
        "base_url": "sandbox",
        "credentials": {"api_key": "sandbox-key"},
    }
    config, problems = load_config(
        write_config(tmp_path, [connection], cache={"backend": redis_server.url, "ttl_seconds": 30})
    )
    assert config is not None, problems
    first = GatewayApp(config)
    second = GatewayApp(config, sandboxes=first.sandboxes)  # both reach one vendor account
    body = {**COMPOSED["dialnexa-sandbox"][0], "recipients": RECIPIENTS}
    headers = {"Authorization": f"Bearer {TEST_KEY}", "Idempotency-Key": "across-instances"}
    await sandbox(
        first, "nexa", "POST", "/_sandbox/faults", [{"kind": "status", "value": 422, "path": "/campaigns-leads"}]
    )
    for app, status in ((first, 502), (second, 201)):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            answer = await client.post("/v1/campaigns", json=body, headers=headers)
        assert answer.status_code == status, answer.text
    calls = await sandbox(first, "nexa", "GET", "/_sandbox/calls")
    assert (calls["create"], calls["recipients_add"]) == (1, 2)
    await first.aclose()
    await second.aclose()


async def test_what_a_lenient_write_left_out_is_in_the_access_line_and_the_metrics(
    gateway, caplog: pytest.LogCaptureFixture
) -> None:
    app, client = gateway
    body = {"name": "Dialer", "from_number": "+18885650001", "agent_id": "a-1", "max_concurrent_calls": 5}
    with caplog.at_level("INFO", logger="gateway.access"):
        created = await client.post("/v1/campaigns", json=body, headers={"X-Connection": "voiso-sandbox", **LENIENT})
    assert created.status_code == 201, created.text
    [line] = [r for r in caplog.records if r.name == "gateway.access"]
    assert line.fields["dropped"] == ["agent_id", "max_concurrent_calls"]  # type: ignore[attr-defined]
    exposition = app.telemetry.exposition().decode()
    for field in ("agent_id", "max_concurrent_calls"):
        assert f'gateway_dropped_fields_total{{field="{field}",vendor="voiso"}} 1.0' in exposition


def test_the_readme_vendor_tables_are_the_capability_report(config: Config) -> None:
    """The README's tables are `gateway capabilities --format markdown` on the shipped config, verbatim."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- capabilities:", 1)[1].split("\n", 1)[1].split("<!-- /capabilities -->", 1)[0]
    assert block.strip() == capability_table.document(config, capability_table.markdown)
