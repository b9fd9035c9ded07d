"""Vendor webhooks in (POST /v1/hooks/{token}), events pulled (GET /v1/events, redeliver), in process.

Two tenants, each with a Sarvam sandbox connection with events (Sarvam signs: the connection has
its signing secret) and t1 also a Hamsa and an Exotel one (Exotel may post form fields).
Callbacks are posted the way the vendor posts them; hostile ones must be refused in the error
envelope with nothing stored, and no tenant ever sees another's events.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import yaml

from gateway.app import GatewayApp
from gateway.config import load_config
from gateway.events.models import EventPage
from gateway.keys import key_hash
from gateway.sandboxing import SandboxLink
from tests.conftest import DEMO_WEBHOOK_SECRET as SECRET
from tests.conftest import MAPPINGS, TEST_KEY

SARVAM_SECRET = "sarvam-signing-secret-of-t1"
OTHER_KEY = "cgw_test_key_of_the_second_tenant_000000000"
CAMPAIGNS_ONLY = "cgw_test_key_with_campaign_scopes_only_0000"
READ_ONLY = "cgw_test_key_with_events_read_only_00000000"
SARVAM_PARAMS = {"org_id": "o", "workspace_id": "w", "connection_id": "c"}


def sarvam(name: str, secret: str) -> dict[str, Any]:
    credentials = {"api_key": "sandbox-key", "webhook_secret": secret}
    return {"name": name, "vendor": "sarvam", "base_url": "sandbox", "credentials": credentials,
            "params": SARVAM_PARAMS, "events": True}  # fmt: skip


def write(directory: Path, webhooks: dict[str, Any] | None = None) -> Path:
    """Two tenants with events; t1's keys: all scopes, campaign scopes only, events:read only."""
    t1_keys = [
        {"id": "all", "hash": key_hash(TEST_KEY)},
        {"id": "campaigns", "hash": key_hash(CAMPAIGNS_ONLY), "scopes": ["campaigns:read", "campaigns:write"]},
        {"id": "reader", "hash": key_hash(READ_ONLY), "scopes": ["events:read"]},
    ]
    hamsa = {"name": "hamsa", "vendor": "hamsa", "base_url": "sandbox", "credentials": {"api_key": "k"}, "events": True}
    exotel = {"name": "exotel", "vendor": "exotel", "base_url": "sandbox", "events": True,
              "params": {"subdomain": "api", "account_sid": "s"},
              "credentials": {"api_key": "k", "api_token": "t"}}  # fmt: skip
    document = {
        "mappings_dir": str(MAPPINGS),
        "public_url": "http://gateway.test",
        "events": {"store": str(directory / "events.sqlite3")},
        "tenants": [
            {"id": "t1", "keys": t1_keys, "webhooks": {"secret": SECRET, **(webhooks or {})},
             "default_connection": "sarvam", "connections": [sarvam("sarvam", SARVAM_SECRET), hamsa, exotel]},
            {"id": "t2", "keys": [{"id": "t2", "hash": key_hash(OTHER_KEY)}], "webhooks": {"secret": SECRET},
             "default_connection": "sarvam", "connections": [sarvam("sarvam", "sarvam-signing-secret-of-t2")]},
        ],
    }  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class Gateway:
    def __init__(self, app: GatewayApp, client: httpx.AsyncClient, sent: list[bytes]) -> None:
        self.app, self.client, self.sent = app, client, sent

    async def close(self) -> None:
        await self.client.aclose()
        await self.app.aclose()

    async def hook(self, tenant: str, connection: str) -> str:
        """The path of a connection's hook, as GET /v1/connections tells its tenant."""
        key = TEST_KEY if tenant == "t1" else OTHER_KEY
        answer = await self.client.get("/v1/connections", headers={"Authorization": f"Bearer {key}"})
        [url] = [c["hook_url"] for c in answer.json()["data"] if c["name"] == connection]
        return url.removeprefix("http://gateway.test")

    async def events(self, key: str = TEST_KEY, **query: Any) -> dict[str, Any]:
        answer = await self.client.get("/v1/events", params=query, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        EventPage.model_validate(answer.json())
        return answer.json()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    opened = await _gateway(tmp_path)
    yield opened
    await opened.close()


async def _gateway(tmp_path: Path, **webhooks: Any) -> Gateway:
    config, problems = load_config(write(tmp_path, webhooks or None))
    assert config is not None, problems
    link, sent = SandboxLink(), []

    class Recording:  # what the vendor is sent
        def __init__(self, connection: Any) -> None:
            self.inner = link.transport("t1", connection)

        async def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Any:
            sent.append(body or b"")
            return await self.inner.send(method, url, headers, body)

        async def close(self) -> None:
            await self.inner.close()

    app = GatewayApp(config, Recording, sandboxes=link)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers=headers)
    return Gateway(app, client, sent)


def attempt(attempt_id: str = "019d392a-4f5a-7db3", campaign: str = "camp-1", **changes: Any) -> bytes:
    """Sarvam's documented 'connected' example, with changes."""
    payload = {
        "app_id": "my-agent-app", "app_version": 1, "attempt_id": attempt_id, "campaign_id": campaign,
        "cohort_id": "cohort-batch-01", "completion_status": "completed", "connectivity_status": "connected",
        "next_action_status": None, "failure_reason": None, "user_identifier": "user-1001",
        "user_phone_number": "+919876543210", "agent_phone_number": "+91804XXXXXXX", "duration": 42.5,
        "interaction_id": "20260329/a1b2c3d4-10:30:00-e5f6a7b8", "retry_attempt": 0,
        "executed_at": "2026-03-29T10:30:45+05:30", "initial_agent_variables": {"customer_name": "Rahul Kumar"},
        "final_agent_variables": {"payment_confirmed": "yes"}, "interaction_transcript": None,
        "metadata": {"team": "collections"}, **changes,
    }  # fmt: skip
    return orjson.dumps(payload)


def signed(body: bytes, secret: str = SARVAM_SECRET, stamp: float | None = None) -> dict[str, str]:
    """Sarvam's headers: Sarvam-Timestamp and the hex HMAC-SHA256 of "{timestamp}.{body}"."""
    moment = str(int(time.time() if stamp is None else stamp))
    digest = hmac.new(secret.encode(), moment.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Sarvam-Timestamp": moment, "Sarvam-Signature": digest, "Content-Type": "application/json"}


async def post(gateway: Gateway, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await gateway.client.post(path, content=body, headers={"Authorization": "", **headers})


def refused(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["request_id"] == answer.headers["x-request-id"], error
    return error


async def test_a_signed_callback_is_one_event_however_often_the_vendor_sends_it(gateway: Gateway) -> None:
    hook, body = await gateway.hook("t1", "sarvam"), attempt()
    answers = [await post(gateway, hook, body, signed(body)) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["status"] for a in answers] == ["stored"] + ["duplicate"] * 4
    assert len({a.json()["event_id"] for a in answers}) == 1
    [event] = (await gateway.events())["data"]
    assert (event["id"], event["type"], event["tenant"]) == (answers[0].json()["event_id"], "call.completed", "t1")
    assert (event["connection"], event["vendor"], event["campaign_id"]) == ("sarvam", "sarvam", "camp-1")
    assert event["data"]["outcome"] == "answered" and event["data"]["vendor_data"]["cohort_id"] == "cohort-batch-01"
    assert event["delivery"]["state"] == "undeliverable"  # no campaign of this gateway, no tenant url


def _hostile(hook: str) -> dict[str, tuple[str, bytes, dict[str, str], int, str]]:
    body = attempt()
    wrong = signed(body, secret="not-the-secret")
    old = signed(body, stamp=time.time() - 301)
    huge = attempt(interaction_transcript=[{"role": "user", "en_text": "x" * 2 * 1024 * 1024}])
    text = b"connected, attempt 1"
    return {
        "unknown token": ("/v1/hooks/hk_" + "A" * 32, body, signed(body), 404, "not_found"),
        "no signature": (hook, body, {"Content-Type": "application/json"}, 401, "unauthorized"),
        "bad signature": (hook, body, wrong, 401, "unauthorized"),
        "signature of another body": (hook, attempt(duration=1), signed(body), 401, "unauthorized"),
        "replayed outside the tolerance": (hook, body, old, 401, "unauthorized"),
        "2 MiB body": (hook, huge, signed(huge), 413, "payload_too_large"),
        "not JSON": (hook, text, signed(text), 422, "validation_error"),
        "JSON but no object": (hook, b"[1]", signed(b"[1]"), 422, "validation_error"),
    }


async def test_hostile_callbacks_are_refused_in_the_envelope_and_nothing_is_stored(gateway: Gateway) -> None:
    hook = await gateway.hook("t1", "sarvam")
    for name, (path, body, headers, status, code) in _hostile(hook).items():
        error = refused(await post(gateway, path, body, headers), status, code)
        assert SARVAM_SECRET not in str(error) and hook.rsplit("/", 1)[1] not in str(error), name
    assert (await gateway.events())["data"] == []
    metrics = (await gateway.client.get("/metrics")).text
    for result, count in (("unknown_token", 1), ("unauthorized", 4), ("too_large", 1), ("invalid", 2)):
        assert re.search(rf'^gateway_events_received_total{{result="{result}",.*}} {count}\.0$', metrics, re.M), result


async def test_a_hook_token_never_reaches_the_access_line_whatever_the_method(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    hook, body = await gateway.hook("t1", "sarvam"), attempt()
    token = hook.rsplit("/", 1)[1]
    caplog.set_level("INFO", logger="gateway.access")
    answers = {
        "POST": await post(gateway, hook, body, signed(body)),
        "GET": await gateway.client.get(hook),  # a person or a vendor's probe opening the URL: 405
        "DELETE": await gateway.client.delete(hook + "/x"),  # no such endpoint: 404
    }
    assert {method: a.status_code for method, a in answers.items()} == {"POST": 200, "GET": 405, "DELETE": 404}
    lines = [r.fields for r in caplog.records if r.name == "gateway.access"]  # type: ignore[attr-defined]
    assert sorted(line["method"] for line in lines if line["path"] == "/v1/hooks/…") == ["DELETE", "GET", "POST"]
    assert not [line for line in lines if token in str(line)]


async def test_a_callback_in_form_fields_is_read_where_the_vendors_map_says_so(gateway: Gateway) -> None:
    """Exotel's map reads JSON and form fields (its docs show JSON; its older callbacks are forms)."""
    hook = await gateway.hook("t1", "exotel")
    fields = {"campaign_sid": "camp_abc123", "call_sid": "call_ghi789", "number": "+919876543211",
              "date_created": "2024-01-15T09:20:00+05:30", "date_updated": "2024-01-15T09:20:45+05:30",
              "status": "no-answer"}  # fmt: skip
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    stored = await post(gateway, hook, urlencode(fields).encode(), form)
    assert (stored.status_code, stored.json()["status"]) == (200, "stored"), stored.text
    again = await post(gateway, hook, orjson.dumps(fields), {"Content-Type": "application/json"})
    assert again.json() == {"status": "duplicate", "event_id": stored.json()["event_id"]}  # one notification
    [event] = (await gateway.events())["data"]
    assert (event["type"], event["campaign_id"], event["data"]["outcome"]) == (
        "call.failed",
        "camp_abc123",
        "no_answer",
    )
    assert event["data"]["recipient"]["phone_number"] == "+919876543211"
    error = refused(await post(gateway, hook, b"status=\xff", form), 422, "validation_error")
    assert (
        error["message"]
        == "the callback's body is not a JSON object or form fields (application/x-www-form-urlencoded)"
    )
    sarvam = await gateway.hook("t1", "sarvam")  # a vendor that posts JSON only: form fields are no JSON
    body = urlencode({"attempt_id": "a1"}).encode()
    refused(await post(gateway, sarvam, body, {**signed(body), **form}), 422, "validation_error")


async def test_another_tenants_callbacks_never_reach_this_tenant(gateway: Gateway) -> None:
    mine, theirs = await gateway.hook("t1", "sarvam"), await gateway.hook("t2", "sarvam")
    assert mine != theirs
    body = attempt()
    refused(await post(gateway, theirs, body, signed(body)), 401, "unauthorized")  # signed with t1's secret
    stored = await post(gateway, theirs, body, signed(body, secret="sarvam-signing-secret-of-t2"))
    assert stored.json()["status"] == "stored"  # the same attempt id is t2's own event, not a duplicate of t1's
    assert (await post(gateway, mine, body, signed(body))).json()["status"] == "stored"
    [own] = (await gateway.events())["data"]
    [other] = (await gateway.events(OTHER_KEY))["data"]
    assert (own["tenant"], other["tenant"]) == ("t1", "t2") and own["id"] != other["id"]
    redeliver = await gateway.client.post(f"/v1/events/{other['id']}/redeliver")
    refused(redeliver, 404, "not_found")


async def test_a_payload_that_is_no_call_outcome_is_acknowledged_and_not_kept(gateway: Gateway) -> None:
    hook = await gateway.hook("t1", "hamsa")
    started = {"eventType": "call.started", "callId": "c-1", "timestamp": "2026-03-29T10:30:00Z", "data": {}}
    answer = await post(gateway, hook, orjson.dumps(started), {"Content-Type": "application/json"})
    assert (answer.status_code, answer.json()) == (200, {"status": "ignored"})
    assert (await gateway.events())["data"] == []


async def test_events_page_oldest_first_filter_and_poll_from_the_last_cursor(gateway: Gateway) -> None:
    hook = await gateway.hook("t1", "sarvam")
    outcomes = [("a", "connected"), ("b", "busy"), ("a", "no_answer"), ("b", "connected"), ("a", "connected")]
    for n, (campaign, status) in enumerate(outcomes):
        body = attempt(f"attempt-{n}", campaign, connectivity_status=status)
        assert (await post(gateway, hook, body, signed(body))).status_code == 200
    first = await gateway.events(limit=2)
    assert [e["data"]["call_id"] for e in first["data"]] == ["attempt-0", "attempt-1"] and first["has_more"]
    rest = await gateway.events(limit=10, cursor=first["next_cursor"])
    assert [e["data"]["call_id"] for e in rest["data"]] == ["attempt-2", "attempt-3", "attempt-4"]
    assert not rest["has_more"]
    failed_in_a = await gateway.events(campaign_id="a", type="call.failed")
    assert [(e["data"]["call_id"], e["data"]["outcome"]) for e in failed_in_a["data"]] == [("attempt-2", "no_answer")]
    polled = await gateway.events(cursor=rest["next_cursor"])
    assert (polled["data"], polled["next_cursor"]) == ([], rest["next_cursor"])  # nothing new: poll again later
    body = attempt("attempt-5")
    await post(gateway, hook, body, signed(body))
    assert [e["data"]["call_id"] for e in (await gateway.events(cursor=rest["next_cursor"]))["data"]] == ["attempt-5"]
    bad = await gateway.client.get("/v1/events", params={"limit": "0", "type": "call.ended", "cursor": "zz"})
    assert {d["field"] for d in refused(bad, 422, "validation_error")["details"]} == {"limit", "type", "cursor"}


async def test_the_events_scopes_are_enforced_and_campaign_keys_keep_working(gateway: Gateway) -> None:
    campaigns_only = {"Authorization": f"Bearer {CAMPAIGNS_ONLY}"}
    refused(await gateway.client.get("/v1/events", headers=campaigns_only), 403, "forbidden")
    refused(await gateway.client.post("/v1/events/evt_x/redeliver", headers=campaigns_only), 403, "forbidden")
    assert (await gateway.client.get("/v1/campaigns", headers=campaigns_only)).status_code == 200
    assert (await gateway.events(READ_ONLY))["data"] == []
    reader = {"Authorization": f"Bearer {READ_ONLY}"}
    refused(await gateway.client.post("/v1/events/evt_x/redeliver", headers=reader), 403, "forbidden")
    refused(await gateway.client.get("/v1/campaigns", headers=reader), 403, "forbidden")


async def test_redelivery_needs_somewhere_to_go(tmp_path: Path) -> None:
    for webhooks, status in (({}, 409), ({"url": "http://127.0.0.1:9/tenant-default"}, 202)):
        gateway = await _gateway(tmp_path / str(status), **webhooks)
        hook, body = await gateway.hook("t1", "sarvam"), attempt()
        await post(gateway, hook, body, signed(body))
        [event] = (await gateway.events())["data"]
        answer = await gateway.client.post(f"/v1/events/{event['id']}/redeliver")
        assert answer.status_code == status, answer.text
        if status == 202:
            assert answer.json()["delivery"]["state"] == "pending"
        await gateway.close()


async def test_a_create_gives_the_vendor_the_hook_url_and_reads_show_the_clients_webhook_url(
    gateway: Gateway,
) -> None:
    hook = "http://gateway.test" + await gateway.hook("t1", "sarvam")
    body = {
        "name": "E",
        "agent_id": "app_1",
        "from_number": "+919876543210",
        "webhook_url": "https://client.example/in",
    }
    body["schedule"] = {"end_at": "2030-01-01T00:00:00Z"}
    created = await gateway.client.post("/v1/campaigns", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["webhook_url"] == "https://client.example/in"
    [create] = [orjson.loads(sent) for sent in gateway.sent if b"app_config" in sent]
    assert create["app_config"]["webhook_config"]["url"] == hook
    assert all(b"client.example" not in sent for sent in gateway.sent)
    read = await gateway.client.get(f"/v1/campaigns/{created.json()['id']}", headers={"Cache-Control": "no-cache"})
    listed = await gateway.client.get("/v1/campaigns")
    assert read.json()["webhook_url"] == listed.json()["data"][0]["webhook_url"] == "https://client.example/in"
