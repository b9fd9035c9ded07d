"""What Vapi, ElevenLabs, Bland and Exotel need in their own forms, through the gateway and the shipped sandboxes.

Each connection of the shipped config (``X-Connection``) against its simulated vendor: callers
looked up among the account's numbers, options merged where the vendor takes them, auth forms,
recipients that are call records. The generic round trips are tests/test_roundtrip.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import GatewayApp
from gateway.config import load_config
from gateway.mapping import UpstreamRequest
from gateway.translate import canonical_call, vendor_side
from tests.conftest import DEMO_KEY
from tests.test_roundtrip import BLAND, ELEVENLABS, EXOTEL, VAPI, request


@pytest.fixture
async def demo(demo_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return demo_client


async def calls(client: httpx.AsyncClient, connection: str) -> dict[str, int]:
    answer = await client.get("/_sandbox/calls", headers={"X-Connection": connection})
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- callers as the vendor's phone-number ids ------------------------------------------------------


@pytest.mark.parametrize("case", [VAPI, ELEVENLABS], ids=["vapi", "elevenlabs"])
async def test_a_caller_the_account_does_not_own_is_refused_before_anything_is_created(
    demo: httpx.AsyncClient, case: Any
) -> None:
    body = {**case.create("unknown caller"), "from_number": "+14155550999"}
    refused = await request(demo, case.connection, "create", body=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["vendor"]) == ("validation_error", case.vendor)
    assert error["details"] == [
        {"field": "from_number", "message": "'+14155550999' is not one of this vendor account's phone_numbers"}
    ]
    assert (await calls(demo, case.connection)) == {"phone_numbers": 1}, "the list was read, nothing created"

    created = await request(demo, case.connection, "create", body={**body, "from_number": "+442071838750"})
    assert created.status_code == 201, created.text
    assert created.json()["from_numbers"] == ["+442071838750"]
    assert (await calls(demo, case.connection))["phone_numbers"] == 1, "the table is kept"


async def test_a_vapi_connection_of_workflows_sends_the_agent_as_a_workflow(
    tmp_path: Path, make_client: Callable[..., httpx.AsyncClient]
) -> None:
    connection = {
        "name": "vapi-flows",
        "vendor": "vapi",
        "base_url": "sandbox",
        "credentials": {"api_key": "sandbox-key"},
        "params": {"agent_type": "workflow"},
    }
    async with make_client([connection]) as client:
        created = await client.post("/v1/campaigns", json=VAPI.create("workflow"))
        assert created.status_code == 201, created.text  # the sandbox takes exactly one of the three
        assert created.json()["agent_id"] == VAPI.create("")["agent_id"]
    config, problems = load_config(tmp_path / "config.yaml")  # the one make_client wrote
    assert config is not None, problems
    call = canonical_call("create", orjson.dumps(VAPI.create("workflow")), None)
    sent = vendor_side(config.tenants["t1"].connections["vapi-flows"], call)
    assert {"workflowId", "assistantId", "squadId"} & set(sent["requests"][0]["body"]) == {"workflowId"}


# --- Bland: vendor options into global ------------------------------------------------------------


async def test_bland_takes_a_prompt_through_vendor_options_and_refuses_a_batch_with_neither(
    demo: httpx.AsyncClient,
) -> None:
    body = {key: value for key, value in BLAND.create("prompted").items() if key != "agent_id"}
    prompted = await request(demo, BLAND.connection, "create", body={**body, "vendor_options": {"task": "Say hi"}})
    assert prompted.status_code == 201, prompted.text
    fetched = await request(demo, BLAND.connection, "get", prompted.json()["id"], params={"include": "vendor_data"})
    assert '"task": "Say hi"' in fetched.json()["vendor_data"]["base_prompt"]

    refused = await request(demo, BLAND.connection, "create", body=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["upstream_status"], error["message"]) == (400, "bland: global must include task or pathway_id")


async def test_bland_recipients_are_the_batch_calls_and_stop_cancels_them(demo: httpx.AsyncClient) -> None:
    created = await request(demo, BLAND.connection, "create", body=BLAND.create("stopped"))
    campaign_id = created.json()["id"]
    assert (await request(demo, BLAND.connection, "cancel", campaign_id)).status_code == 200
    listed = await request(demo, BLAND.connection, "recipients_list", campaign_id)
    assert [(r["name"], r["status"], r["vendor_status"]) for r in listed.json()["data"]] == [
        ("Ann", None, "canceled"),  # Bland's canceled has no canonical word: null, never "completed"
        ("Abe", None, "canceled"),
    ]
    again = await request(demo, BLAND.connection, "cancel", campaign_id)
    assert (again.status_code, again.json()["error"]["code"]) == (422, "validation_error")


# --- Exotel: basic auth, calls as recipients -------------------------------------------------------


async def test_exotel_recipients_are_the_calls_made(demo_config: Any) -> None:
    app = GatewayApp(demo_config)
    headers = {"Authorization": f"Bearer {DEMO_KEY}", "X-Connection": EXOTEL.connection}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", headers=headers
    ) as client:
        body = {**EXOTEL.create("calls"), "start_at": None, "schedule": None}
        created = await client.post("/v1/campaigns", json={k: v for k, v in body.items() if v is not None})
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "active"
        campaign_id = created.json()["id"]
        upstream = app.runtime.upstream(
            demo_config.tenants["demo"], demo_config.tenants["demo"].connections[EXOTEL.connection]
        )
        control = UpstreamRequest("POST", f"/_sandbox/campaigns/{campaign_id}/complete-calls", {"count": "1"})
        status, _, _ = await upstream.roundtrip(control, time.monotonic() + 5)
        assert status == 200

        listed = await client.get(f"/v1/campaigns/{campaign_id}/recipients")
        assert listed.status_code == 200, listed.text
        [call] = listed.json()["data"]
        assert (call["phone_number"], call["status"], call["vendor_status"]) == (
            "+919876543210",
            "completed",
            "completed",
        )
        stats = (await client.get(f"/v1/campaigns/{campaign_id}")).json()["stats"]
        assert (stats["total"], stats["pending"], stats["completed"]) == (2, 1, 1)
    await app.aclose()


async def test_exotel_cancel_of_a_running_campaign_says_pause_first(demo: httpx.AsyncClient) -> None:
    body = {key: value for key, value in EXOTEL.create("running").items() if key not in ("start_at", "schedule")}
    campaign_id = (await request(demo, EXOTEL.connection, "create", body=body)).json()["id"]
    refused = await request(demo, EXOTEL.connection, "cancel", campaign_id)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_state"
    assert error["message"] == (
        f"campaign {campaign_id} is active; exotel cannot cancel it from there (from active it allows pause). "
        "exotel: Cannot complete a campaign that is in-progress"
    )
    assert (await request(demo, EXOTEL.connection, "pause", campaign_id)).status_code == 200
    completed = await request(demo, EXOTEL.connection, "cancel", campaign_id)
    assert (completed.json()["status"], completed.json()["stats"]["failed"]) == ("completed", 2)


async def test_exotel_options_go_into_the_campaign_and_a_throttle_is_refused_saying_why(
    demo: httpx.AsyncClient,
) -> None:
    body = {**EXOTEL.create("options"), "vendor_options": {"call_duplicate_numbers": True, "custom_field": "ref-7"}}
    created = await request(demo, EXOTEL.connection, "create", body=body, params={"include": "vendor_data"})
    assert created.status_code == 201, created.text
    assert {k: created.json()["vendor_data"][k] for k in ("call_duplicate_numbers", "custom_field")} == {
        "call_duplicate_numbers": True,
        "custom_field": "ref-7",
    }
    throttled = await request(
        demo, EXOTEL.connection, "create", body={**EXOTEL.create("fast"), "max_concurrent_calls": 9}
    )
    assert throttled.status_code == 422, throttled.text
    [detail] = throttled.json()["error"]["details"]
    assert detail["field"] == "max_concurrent_calls"
    assert detail["message"].startswith("exotel has a related field, but the map has no conversion to it: throttle")


# --- faults reach every new sandbox --------------------------------------------------------------


@pytest.mark.parametrize("case", [VAPI, ELEVENLABS, BLAND, EXOTEL], ids=lambda case: case.vendor)
async def test_faults_are_injected_in_front_of_each_new_sandbox(demo: httpx.AsyncClient, case: Any) -> None:
    headers = {"X-Connection": case.connection}
    fault = [{"kind": "status", "value": 500, "method": "GET", "count": 1}]
    assert (await demo.post("/_sandbox/faults", json=fault, headers=headers)).status_code == 200
    faulted = await request(demo, case.connection, "list")
    assert faulted.status_code == 502, faulted.text
    assert (faulted.json()["error"]["code"], faulted.json()["error"]["upstream_status"]) == ("upstream_error", 500)
    assert (await request(demo, case.connection, "list", headers={"Cache-Control": "no-cache"})).status_code == 200
