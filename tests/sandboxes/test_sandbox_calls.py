"""``POST /_sandbox/advance``: the sandboxes place calls and post their vendors' webhooks.

The webhooks go over real HTTP to a receiver (tests/receiver.py): their shape is each vendor's
documented payload, signed where the vendor signs; a call's outcome follows the number's last digit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from sandboxes.bland import create_app as bland_app
from sandboxes.bland_calls import SIGNING_SECRET as BLAND_SECRET
from sandboxes.elevenlabs import BATCHES
from sandboxes.elevenlabs import create_app as elevenlabs_app
from sandboxes.elevenlabs_calls import WEBHOOK_SECRET as ELEVENLABS_SECRET
from sandboxes.exotel import create_app as exotel_app
from sandboxes.hamsa import create_app as hamsa_app
from sandboxes.hub import HOOK_HEADER
from sandboxes.sarvam import create_app as sarvam_app
from sandboxes.sarvam_calls import SIGNING_SECRET
from sandboxes.vapi import create_app as vapi_app
from tests.receiver import Received, Receiver
from tests.sandboxes import test_bland_sandbox as bland
from tests.sandboxes import test_elevenlabs_sandbox as elevenlabs
from tests.sandboxes import test_exotel_sandbox as exotel
from tests.sandboxes import test_hamsa_sandbox as hamsa
from tests.sandboxes import test_sarvam_sandbox as sarvam
from tests.sandboxes import test_vapi_sandbox as vapi

# The documented field table of Sarvam's campaign webhook, in its order.
SARVAM_FIELDS = [
    "app_id", "app_version", "attempt_id", "campaign_id", "cohort_id", "completion_status", "connectivity_status",
    "next_action_status", "failure_reason", "user_identifier", "user_phone_number", "agent_phone_number",
    "duration", "interaction_id", "retry_attempt", "executed_at", "initial_agent_variables",
    "final_agent_variables", "interaction_transcript", "metadata",
]  # fmt: skip
HAMSA_ENVELOPE = ["eventType", "callId", "timestamp", "projectId", "agentId", "agentName", "data"]


@pytest.fixture
def receiver() -> AsyncIterator[Receiver]:
    with Receiver().running() as running:
        yield running


async def advance(client: httpx.AsyncClient, headers: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
    answer = await client.post("/_sandbox/advance", json=options or None, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def sarvam_signed(request: Received) -> bool:
    stamp = request.headers["sarvam-timestamp"]
    digest = hmac.new(SIGNING_SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest, request.headers["sarvam-signature"])


async def test_sarvam_calls_each_row_until_it_connects_or_its_retries_are_used(receiver: Receiver) -> None:
    clock = sarvam.FakeClock(sarvam.START + timedelta(hours=1))  # the campaign has started
    app = sarvam_app(clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as client:
        body = sarvam.campaign_body()
        body["app_config"]["webhook_config"]["url"] = receiver.url
        campaign = await sarvam.create(client, body)  # max_retries 2: three tries
        rows = "phone,customer,city\n+919812345670,c-0,Pune\n+919812345671,c-1,Goa\n"
        assert (await sarvam.upload(client, campaign, rows)).status_code == 200
        calls = [(await advance(client))["calls"] for _ in range(4)]
    assert calls == [2, 1, 1, 0]
    payloads = [request.json() for request in receiver.requests]
    assert all(list(p) == SARVAM_FIELDS for p in payloads) and all(map(sarvam_signed, receiver.requests))
    keys = ("user_identifier", "connectivity_status", "retry_attempt", "next_action_status")
    assert [tuple(p[key] for key in keys) for p in payloads] == [
        ("c-0", "connected", 0, None),
        ("c-1", "no_answer", 0, "retry"),
        ("c-1", "no_answer", 1, "retry"),
        ("c-1", "no_answer", 2, None),
    ]  # fmt: skip
    assert payloads[0]["metadata"] == {"team": "a"} and payloads[0]["duration"] == 42.5


async def test_a_paused_sarvam_campaign_places_no_calls(receiver: Receiver) -> None:
    app = sarvam_app(clock=sarvam.FakeClock(sarvam.START + timedelta(hours=1)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as client:
        campaign = await sarvam.create(client)
        await sarvam.upload(client, campaign)
        assert (await sarvam.act(client, campaign, "pause")).status_code == 200
        assert await advance(client) == {"calls": 0, "webhooks": {"sent": 0, "failed": 0}}


async def test_hamsa_sends_started_answered_and_ended_and_completes_the_campaign(receiver: Receiver) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hamsa_app()), base_url="http://sandbox") as client:
        recipients = [{"phoneNumber": "+14155550100", "name": "Ada"}, {"phoneNumber": "+14155550102", "name": "Bo"}]
        campaign = await hamsa.create(client, hamsa.body(recipients=recipients, webhookUrl=receiver.url))
        answers = [await advance(client, repeat=2) for _ in range(4)]
        read = (await client.get(f"{hamsa.PATH}/{campaign['id']}", headers=hamsa.AUTH)).json()["data"]
    assert [a["calls"] for a in answers] == [2, 1, 1, 0]
    assert answers[0]["webhooks"] == {"sent": 10, "failed": 0}  # 5 webhooks, each sent twice
    sent = [request.json() for request in receiver.requests[::2]]
    assert all(list(envelope) == HAMSA_ENVELOPE for envelope in sent)
    assert [(e["eventType"], e["data"]["phoneNumber"][-1]) for e in sent[:5]] == [
        ("call.started", "0"), ("call.answered", "0"), ("call.ended", "0"), ("call.started", "2"), ("call.ended", "2"),
    ]  # fmt: skip
    ended = [e["data"] for e in sent if e["eventType"] == "call.ended"]
    assert [(d["status"], d["attempts"], d["nextRetryAt"] is None) for d in ended] == [
        ("COMPLETED", 1, True), ("FAILED", 1, False), ("FAILED", 2, False), ("FAILED", 3, True),
    ]  # fmt: skip
    assert ended[0]["jobId"] == sent[0]["callId"] and ended[0]["data"]["outcomeResult"] == {}
    assert read["status"] == "COMPLETED"
    assert [r["status"] for r in read["recipients"]["completed"] + read["recipients"]["failed"]] == [
        "COMPLETED",
        "FAILED",
    ]


VAPI_EVENTS = ["campaign.started", "campaign.ended", "campaign.cancelled", "contact.completed", "contact.failed"]


async def test_vapi_sends_the_campaign_events_it_selected_and_calls_each_contact_once(receiver: Receiver) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=vapi_app()), base_url="http://sandbox") as client:
        customers = [{"number": f"+1415555010{digit}"} for digit in "0123"]
        server = {"url": receiver.url, "backoffPlan": {"type": "exponential", "maxRetries": 5, "baseDelaySeconds": 5}}
        selected = await vapi.body(client, customers=customers, server=server, serverMessages=VAPI_EVENTS)
        created = (await client.post("/campaign", json=selected, headers=vapi.AUTH)).json()
        quiet = await vapi.body(client, server={"url": receiver.url})  # selects no event: sends none
        assert (await client.post("/campaign", json=quiet, headers=vapi.AUTH)).status_code == 201
        answers = [await advance(client) for _ in range(2)]
        read = (await client.get(f"/campaign/{created['id']}", headers=vapi.AUTH)).json()
    assert [a["calls"] for a in answers] == [5, 0] and answers[1]["webhooks"]["sent"] == 0
    messages = [request.json()["message"] for request in receiver.requests]
    assert all(list(m) == ["type", "timestamp", "campaignId", "eventType", "data"] for m in messages)
    assert {(m["type"], m["campaignId"]) for m in messages} == {("campaign.event", created["id"])}
    assert [(m["eventType"], m["data"].get("endedReason")) for m in messages] == [
        ("campaign.started", None), ("contact.completed", "customer-ended-call"),
        ("contact.failed", "customer-did-not-answer"), ("contact.failed", "customer-busy"),
        ("contact.failed", "twilio-failed-to-connect-call"), ("campaign.ended", "campaign.ended.success"),
    ]  # fmt: skip
    calls = [m["data"]["callId"] for m in messages[1:5]]
    assert sorted(calls) == sorted(read["calls"]) and len({m["data"]["contactId"] for m in messages[1:5]}) == 4
    assert (read["status"], read["endedReason"], read["callsCounterScheduled"], read["callsCounterEnded"]) == (
        "ended", "campaign.ended.success", 0, 4,
    )  # fmt: skip


async def test_an_ended_vapi_campaign_sends_campaign_cancelled_with_the_next_advance(receiver: Receiver) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=vapi_app()), base_url="http://sandbox") as client:
        body = await vapi.body(client, server={"url": receiver.url}, serverMessages=VAPI_EVENTS)
        created = (await client.post("/campaign", json=body, headers=vapi.AUTH)).json()
        ended = await client.patch(f"/campaign/{created['id']}", json={"status": "ended"}, headers=vapi.AUTH)
        assert ended.status_code == 200
        assert await advance(client) == {"calls": 0, "webhooks": {"sent": 2, "failed": 0}}
    assert [(m["eventType"], m["data"]) for m in (r.json()["message"] for r in receiver.requests)] == [
        ("campaign.started", {"workflowId": None}),
        ("campaign.cancelled", {"endedReason": "campaign.in-progress.ended-by-user"}),
    ]


def elevenlabs_signed(request: Received) -> bool:
    """ElevenLabs-Signature t=<unix>,v0=<hex HMAC of "t.body">, made within the docs' 30 minutes."""
    found = re.fullmatch(r"t=(\d+),v0=([0-9a-f]{64})", request.headers["elevenlabs-signature"])
    assert found is not None and abs(time.time() - int(found[1])) < 1800
    digest = hmac.new(ELEVENLABS_SECRET.encode(), found[1].encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest, found[2])


async def test_elevenlabs_posts_each_call_to_the_workspace_webhook_signed(receiver: Receiver) -> None:
    transport = httpx.ASGITransport(app=elevenlabs_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        numbers = (await client.get("/v1/convai/phone-numbers", headers=elevenlabs.AUTH)).json()
        recipients = [{"phone_number": f"+1415555010{digit}", "id": f"r{digit}"} for digit in "0123"]
        caller = numbers[1]["phone_number_id"]
        batch = (await elevenlabs.submit(client, recipients=recipients, agent_phone_number_id=caller)).json()
        answers = [await advance(client, {HOOK_HEADER: receiver.url}) for _ in range(2)]
        read = (await client.get(f"{BATCHES}/{batch['id']}", headers=elevenlabs.AUTH)).json()
        assert (await client.post(f"{BATCHES}/{batch['id']}/retry", headers=elevenlabs.AUTH)).status_code == 200
        unheard = await advance(client)  # no workspace webhook: the calls happen, nothing is posted
    assert [a["calls"] for a in answers] == [4, 0] and answers[0]["webhooks"] == {"sent": 4, "failed": 0}
    assert unheard == {"calls": 3, "webhooks": {"sent": 0, "failed": 0}}
    assert all(map(elevenlabs_signed, receiver.requests))
    sent = [request.json() for request in receiver.requests]
    assert all(list(payload) == ["type", "event_timestamp", "data"] for payload in sent)
    assert [(p["type"], p["data"].get("failure_reason")) for p in sent] == [
        ("post_call_transcription", None), ("call_initiation_failure", "no-answer"),
        ("call_initiation_failure", "busy"), ("call_initiation_failure", "unknown"),
    ]  # fmt: skip
    metadata = sent[0]["data"]["metadata"]
    assert metadata["batch_call"] == {"batch_call_id": batch["id"], "batch_call_recipient_id": "r0"}
    assert (metadata["phone_call"]["agent_number"], metadata["phone_call"]["external_number"]) == (
        numbers[1]["phone_number"], "+14155550100",
    )  # fmt: skip
    assert sent[1]["data"]["metadata"]["body"]["To"] == "+14155550101"
    conversations = [p["data"]["conversation_id"] for p in sent]
    assert [(r["status"], r["conversation_id"]) for r in read["recipients"]] == list(
        zip(["completed", "failed", "failed", "failed"], conversations, strict=True)
    )
    assert (read["status"], read["total_calls_dispatched"], read["total_calls_finished"]) == ("completed", 4, 4)


async def test_bland_reports_the_batch_and_posts_each_call_signed(receiver: Receiver) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bland_app()), base_url="http://sandbox") as client:
        calls = [{"phone_number": f"+1415555010{digit}", "metadata": {"name": f"P{digit}"}} for digit in "0123"]
        shared = {**bland.BATCH["global"], "webhook": receiver.url}
        body = {**bland.BATCH, "global": shared, "call_objects": calls, "status_webhook": receiver.url}
        batch_id = (await client.post("/v2/batches/create", json=body, headers=bland.AUTH)).json()["data"]["batch_id"]
        answers = [await advance(client) for _ in range(2)]
        listed = (await client.get("/v1/calls", params={"batch_id": batch_id}, headers=bland.AUTH)).json()["calls"]
        shown = (await client.get(f"/v2/batches/{batch_id}", headers=bland.AUTH)).json()["data"]
    assert [a["calls"] for a in answers] == [4, 0] and answers[0]["webhooks"] == {"sent": 7, "failed": 0}
    for request in receiver.requests:
        digest = hmac.new(BLAND_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers["x-webhook-signature"], digest)
        assert request.body == json.dumps(request.json(), separators=(",", ":")).encode()  # compact, as JSON.stringify
    sent = [request.json() for request in receiver.requests]
    assert [(p["to"][-1] if "call_id" in p else "batch", p["status"]) for p in sent] == [
        ("batch", "validating"), ("batch", "in_progress"), ("0", "completed"), ("1", "no-answer"), ("2", "busy"),
        ("3", "failed"), ("batch", "completed"),
    ]  # fmt: skip
    assert {p["batch_id"] for p in sent} == {batch_id} and sent[1]["message"].startswith("Requested: 4.")
    assert (sent[-1]["calls_total"], sent[-1]["calls_successful"], sent[-1]["calls_failed"]) == (4, 1, 3)
    assert (sent[2]["answered_by"], sent[2]["corrected_duration"], sent[2]["metadata"]) == (
        "human",
        "42",
        {"name": "P0"},
    )
    assert [call["status"] for call in listed] == ["completed", "no-answer", "busy", "failed"]
    assert "status_webhook" not in shown and "webhooks" not in shown


async def test_exotel_calls_each_number_until_it_answers_or_its_retries_are_used(receiver: Receiver) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=exotel_app()), base_url="http://sandbox") as client:
        callbacks = {"call_status_callback": receiver.url, "status_callback": receiver.url}
        numbers = [f"+91980000000{digit}" for digit in "0123"]
        retries = {"number_of_retries": 1, "interval_mins": 5}
        campaign = exotel.data(await exotel.create(client, **callbacks, retries=retries, **{"from": numbers}))
        calls = [(await advance(client))["calls"] for _ in range(3)]
        read = exotel.data(await client.get(f"{exotel.PATH}/{campaign['id']}", headers=exotel.AUTH))
        details = (await client.get(f"{exotel.PATH}/{campaign['id']}/call-details", headers=exotel.AUTH)).json()
    assert calls == [4, 3, 0]
    sent = [request.json() for request in receiver.requests]
    assert all(
        list(p) == ["campaign_sid", "call_sid", "date_created", "date_updated", "number", "status"] for p in sent[:-1]
    )
    assert [(p["number"][-1], p["status"]) for p in sent[:-1]] == [
        ("0", "completed"), ("1", "no-answer"), ("2", "busy"), ("3", "failed"),
        ("1", "no-answer"), ("2", "busy"), ("3", "failed"),
    ]  # fmt: skip
    assert [p["call_sid"] for p in sent[:-1]] == [item["data"]["call_sid"] for item in details["response"]]
    assert sent[-1]["status"] == "Completed" and sent[-1]["report_url"].endswith(".csv")
    assert {p["campaign_sid"] for p in sent} == {campaign["id"]}
    assert read["status"] == "completed"
    assert {key: read["stats"][key] for key in ("pending", "completed", "no-answer", "busy", "failed")} == {
        "pending": 0, "completed": 1, "no-answer": 1, "busy": 1, "failed": 1,
    }  # fmt: skip


@pytest.mark.parametrize("options", [{"repeat": 0}, {"repeat": 11}, {"repeat": "2"}, [1]])
async def test_advance_refuses_options_it_cannot_take(options: Any) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hamsa_app()), base_url="http://sandbox") as client:
        answer = await client.post("/_sandbox/advance", json=options)
    assert answer.status_code == 400 and "repeat" in answer.json()["error"]
