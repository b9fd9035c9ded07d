"""Call outcomes end to end, on real `gateway serve` processes and a real endpoint (tests/receiver.py).

The shipped config (sandboxes only, no credentials) with a retry schedule in fractions of a second:
campaigns are created with ``webhook_url`` pointing at the receiver, the sandboxes are advanced so
their calls complete and they post their vendors' own webhooks to the gateway, and the receiver
must get canonical events whose Standard Webhooks signature verifies — at least once, never lost:
through endpoint failures, a SIGKILL, a vendor's retries, and with two instances on one Redis.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.events.models import Event
from tests.conftest import DEMO_KEY, MAPPINGS, ROOT, RedisServer, free_port
from tests.conftest import DEMO_WEBHOOK_SECRET as SECRET
from tests.processes import start_gateway, stop, wait_for_http
from tests.receiver import Receiver

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
FAST = {"retry_seconds": [0.3, 0.3, 0.3], "jitter": 0, "timeout_seconds": 2, "lease_seconds": 3, "poll_seconds": 0.2}
HAMSA, SARVAM, VAPI, ELEVENLABS, BLAND, EXOTEL = (
    "hamsa-sandbox", "sarvam-sandbox", "vapi-sandbox", "elevenlabs-sandbox", "bland-sandbox", "exotel-sandbox",
)  # fmt: skip
# What a create on each connection needs besides the recipients and the caller
NEEDS: dict[str, dict[str, Any]] = {
    HAMSA: {"agent_id": "68f7656f-098b-4c43-b165-7cfd2cc8ac40"},
    SARVAM: {"agent_id": "app_1", "schedule": {"end_at": "2030-01-01T00:00:00Z"}},
    VAPI: {"agent_id": "asst_sandbox"},
    ELEVENLABS: {"agent_id": "agent_sandbox"},
    BLAND: {"agent_id": "pathway_sandbox"},
    EXOTEL: {
        "agent_id": "http://my.exotel.com/demo-sid/exoml/start_voice/926",
        "retry": {"max_attempts": 2, "interval_minutes": 5},
    },
}
NAMELESS = {ELEVENLABS, EXOTEL}  # their recipients take no name
# Sandbox numbers: the last digit says how the call goes (0 answers, 1 no answer, 2 busy).
ANSWERS, NO_ANSWER, BUSY = "+14155550100", "+14155550101", "+14155550102"


def config(directory: Path, cache: str = "memory", tenant_url: str | None = None, **events: Any) -> Path:
    """The shipped config.yaml, with its maps where they are, a store in ``directory`` and FAST retries
    (and ``tenant_url`` where events of no campaign go)."""
    document = yaml.safe_load((ROOT / "config.yaml").read_text())
    store = str(directory / "events.sqlite3")
    document |= {"mappings_dir": str(MAPPINGS), "events": {**FAST, "store": store, **events}}
    document["cache"]["backend"] = cache
    if tenant_url is not None:
        document["tenants"][0]["webhooks"]["url"] = tenant_url
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@contextlib.contextmanager
def gateway(path: Path, *extra: str, name: str = "gateway") -> Iterator[tuple[httpx.Client, Any]]:
    """`gateway serve` on a free port until the block ends: (a client with the demo key, the process)."""
    port, log = free_port(), path.parent / f"{name}.log"
    process = start_gateway("serve", "--config", str(path), "--port", str(port), *extra, log_path=log)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process, log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=20) as client:
            yield client, process
    finally:
        stop(process)


def create(client: httpx.Client, connection: str, url: str, *numbers: str) -> str:
    """A campaign on ``connection`` whose events go to ``url``; its id."""
    recipients = [
        {"phone_number": number}
        if connection in NAMELESS
        else {"phone_number": number, "name": f"Person {number[-2:]}"}
        for number in numbers
    ]
    body: dict[str, Any] = {"name": "Outcomes", "from_number": "+14155551212", "recipients": recipients}
    body |= {"webhook_url": url, **NEEDS[connection]}
    answer = client.post("/v1/campaigns", json=body, headers={"X-Connection": connection})
    assert answer.status_code == 201, answer.text
    assert answer.json()["webhook_url"] == url
    return str(answer.json()["id"])


def advance(client: httpx.Client, connection: str, times: int = 1, repeat: int = 1) -> None:
    for _ in range(times):
        answer = client.post("/_sandbox/advance", json={"repeat": repeat}, headers={"X-Connection": connection})
        assert answer.status_code == 200, answer.text
        assert answer.json()["webhooks"]["failed"] == 0, answer.json()


def events(client: httpx.Client, **query: Any) -> list[dict[str, Any]]:
    answer = client.get("/v1/events", params={"limit": 100, **query})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def metric(client: httpx.Client, name: str) -> float:
    text = client.get("/metrics").text
    return sum(float(value) for value in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def outcomes(received: list[Any], campaign: str | None) -> list[tuple[Any, ...]]:
    """Each event of a campaign, in the order received: (the number's last digit, type, attempt, outcome,
    final) for a call, ("campaign", status) for a campaign's."""
    found = [r.json() for r in received if r.json()["campaign_id"] == campaign]
    return [summary(e["type"], e["data"]) for e in found]


def summary(kind: str, data: dict[str, Any]) -> tuple[Any, ...]:
    if kind == "campaign.status_changed":
        return "campaign", data["status"]
    number = (data["recipient"] or {}).get("phone_number")
    return number[-1] if number else None, kind, data["attempt"], data["outcome"], data["final"]


def signed_events(receiver: Receiver, count: int) -> list[Any]:
    """The first ``count`` deliveries, once they came: each a canonical event of the demo tenant that verifies."""
    receiver.wait_until(lambda r: len(r.delivered()) >= count, what=f"{count} deliveries")
    received = receiver.delivered()
    assert len(received) == count and all(r.verifies(SECRET) for r in received)
    for request in received:
        event = Event.model_validate(request.json())
        assert request.headers["webhook-id"] == event.id and event.tenant == "demo"
    return received


@pytest.mark.parametrize("workers", [1, 2])
def test_on_the_sandbox_default_the_endpoint_gets_signed_call_events_of_each_vendor(
    tmp_path: Path, workers: int
) -> None:
    """Hamsa calls each recipient up to 3 times; Sarvam once (no retries asked): every call is one event."""
    with Receiver().running() as receiver, gateway(config(tmp_path), "--workers", str(workers)) as (client, _):
        hamsa = create(client, HAMSA, receiver.url, ANSWERS, NO_ANSWER, BUSY)
        sarvam = create(client, SARVAM, receiver.url, "+919800000000", "+919800000001")
        advance(client, HAMSA, times=3)
        advance(client, SARVAM)
        received = signed_events(receiver, 9)
        assert outcomes(received, hamsa) == [
            ("0", "call.completed", 1, "answered", True),
            ("1", "call.failed", 1, "no_answer", False),
            ("2", "call.failed", 1, "failed", False),
            ("1", "call.failed", 2, "no_answer", False),
            ("2", "call.failed", 2, "failed", False),
            ("1", "call.failed", 3, "no_answer", True),
            ("2", "call.failed", 3, "failed", True),
        ]
        assert outcomes(received, sarvam) == [
            ("0", "call.completed", 1, "answered", True),
            ("1", "call.failed", 1, "no_answer", True),
        ]
        listed = events(client)
        assert [e["id"] for e in listed if e["campaign_id"] == hamsa] == [
            r.json()["id"] for r in received if r.json()["campaign_id"] == hamsa
        ]  # delivered in the order stored, per campaign
        assert {e["delivery"]["state"] for e in listed} == {"delivered"}
        assert client.get(f"/v1/campaigns/{hamsa}", headers={"X-Connection": HAMSA}).json()["status"] == "completed"


def test_the_endpoint_gets_signed_events_of_the_vendors_added_later(tmp_path: Path) -> None:
    """Vapi reports its campaign's start and end too, and names the contact, not the number. ElevenLabs's
    webhook is the workspace's (the sandbox is told the hook URL); a failure names no batch, so it goes to
    the tenant's webhooks.url. Bland reports each phase of its batch (status webhook) and each call;
    Exotel each attempt (retries included) and its campaign's end, unsigned."""
    receiver = Receiver()
    with receiver.running(), gateway(config(tmp_path, tenant_url=receiver.url), "--workers", "2") as (client, _):
        vapi = create(client, VAPI, receiver.url, ANSWERS, NO_ANSWER, BUSY)
        elevenlabs = create(client, ELEVENLABS, receiver.url, ANSWERS, NO_ANSWER, BUSY)
        bland = create(client, BLAND, receiver.url, ANSWERS, NO_ANSWER, BUSY)
        exotel = create(client, EXOTEL, receiver.url, ANSWERS, NO_ANSWER, BUSY)
        for connection in (VAPI, ELEVENLABS, BLAND, EXOTEL):
            advance(client, connection, times=3)
        received = signed_events(receiver, 20)
        assert outcomes(received, vapi) == [
            ("campaign", "active"),
            (None, "call.completed", 1, "answered", True),
            (None, "call.failed", 1, "no_answer", True),
            (None, "call.failed", 1, "busy", True),
            ("campaign", "completed"),
        ]
        assert outcomes(received, elevenlabs) == [("0", "call.completed", None, "answered", None)]
        assert outcomes(received, None) == [
            ("1", "call.failed", None, "no_answer", None),
            ("2", "call.failed", None, "busy", None),
        ]
        assert outcomes(received, bland) == [
            ("campaign", "active"),
            ("campaign", "active"),
            ("0", "call.completed", None, "answered", None),
            ("1", "call.failed", None, "no_answer", None),
            ("2", "call.failed", None, "busy", None),
            ("campaign", "completed"),
        ]
        assert outcomes(received, exotel) == [
            ("0", "call.completed", None, "answered", None),
            ("1", "call.failed", None, "no_answer", None),
            ("2", "call.failed", None, "busy", None),
            ("1", "call.failed", None, "no_answer", None),
            ("2", "call.failed", None, "busy", None),
            ("campaign", "completed"),
        ]
        for connection, campaign in ((VAPI, vapi), (ELEVENLABS, elevenlabs), (EXOTEL, exotel)):
            read = client.get(f"/v1/campaigns/{campaign}", headers={"X-Connection": connection}).json()
            assert read["status"] == "completed"


def test_an_endpoint_that_fails_gets_the_event_again_until_it_takes_it(tmp_path: Path) -> None:
    with Receiver().running() as receiver, gateway(config(tmp_path)) as (client, _):
        receiver.fail_first(500, 503, 500)
        create(client, SARVAM, receiver.url, "+919800000000")
        advance(client, SARVAM)
        receiver.wait_until(lambda r: len(r.delivered()) == 1, what="the delivery")
        assert [r.status for r in receiver.requests] == [500, 503, 500, 200]
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # one event, tried four times
        assert all(r.verifies(SECRET) and r.body == receiver.requests[0].body for r in receiver.requests)
        [event] = events(client)
        assert event["delivery"] | {"delivered_at": None} == {
            "state": "delivered", "attempts": 4, "next_attempt_at": None, "last_status": 200, "last_error": None,
            "delivered_at": None,
        }  # fmt: skip
        assert (metric(client, "gateway_events_retried_total"), metric(client, "gateway_events_delivered_total")) == (
            3,
            1,
        )


def test_after_the_last_try_an_event_is_dead_and_a_redelivery_brings_it(tmp_path: Path) -> None:
    with Receiver().running() as receiver, gateway(config(tmp_path)) as (client, _):
        receiver.fail_first(500, 500, 500, 410)
        create(client, SARVAM, receiver.url, "+919800000000")
        advance(client, SARVAM)
        receiver.wait_until(lambda r: len(r.requests) == 4, what="four tries")
        with contextlib.suppress(AssertionError):
            receiver.wait_until(lambda r: len(r.requests) > 4, seconds=1.5)  # no fifth: it is dead
        [event] = events(client)
        assert (event["delivery"]["state"], event["delivery"]["attempts"]) == ("dead", 4)
        assert metric(client, "gateway_events_dead_lettered_total") == 1
        answer = client.post(f"/v1/events/{event['id']}/redeliver")
        assert answer.status_code == 202 and answer.json()["delivery"]["state"] == "pending", answer.text
        receiver.wait_until(lambda r: len(r.delivered()) == 1, what="the redelivery")
        assert receiver.delivered()[0].headers["webhook-id"] == event["id"]


def test_events_pending_when_the_gateway_is_killed_are_delivered_after_a_restart(tmp_path: Path) -> None:
    path = config(tmp_path, retry_seconds=[0.5] * 100)  # none of them dies while the endpoint is down
    with Receiver().running() as receiver:
        receiver.fail_first(*[500] * 1000)
        with gateway(path, name="before") as (client, process):
            create(client, SARVAM, receiver.url, "+919800000000", "+919800000001", "+919800000005")
            advance(client, SARVAM)
            receiver.wait_until(lambda r: len(r.requests) >= 4, what="tries that fail")
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        assert receiver.delivered() == []
        receiver.fail_first()
        with gateway(path, name="after") as (client, _):
            receiver.wait_until(lambda r: len(r.delivered()) == 3, what="the deliveries after the restart")
            assert sorted(r.json()["data"]["recipient"]["phone_number"] for r in receiver.delivered()) == [
                "+919800000000", "+919800000001", "+919800000005",
            ]  # fmt: skip
            assert {e["delivery"]["state"] for e in events(client)} == {"delivered"}


def test_a_vendor_sending_each_webhook_five_times_makes_one_event_of_each(tmp_path: Path) -> None:
    with Receiver().running() as receiver, gateway(config(tmp_path)) as (client, _):
        create(client, SARVAM, receiver.url, "+919800000000", "+919800000001")
        create(client, HAMSA, receiver.url, ANSWERS)
        advance(client, SARVAM, repeat=5)
        advance(client, HAMSA, repeat=5)
        receiver.wait_until(lambda r: len(r.delivered()) >= 3, what="three deliveries")
        with contextlib.suppress(AssertionError):
            receiver.wait_until(lambda r: len(r.requests) > 3, seconds=1.5)
        assert len(receiver.requests) == 3 and len(events(client)) == 3
        assert metric(client, 'gateway_events_received_total{result="duplicate",vendor="sarvam"}') == 8
        assert metric(client, 'gateway_events_received_total{result="duplicate",vendor="hamsa"}') == 4
        # Hamsa's call.started and call.answered are no events: acknowledged, five times each
        assert metric(client, 'gateway_events_received_total{result="ignored",vendor="hamsa"}') == 10


def test_two_instances_on_one_redis_deliver_each_event_exactly_once(tmp_path: Path, redis_server: RedisServer) -> None:
    path = config(tmp_path, cache=redis_server.url)
    numbers = [f"+91980000{n:04d}" for n in range(40) if str(n)[-1] not in "123"]
    with (
        Receiver().running() as receiver,
        gateway(path, name="first") as (first, _),
        gateway(path, name="second") as (second, _),
    ):
        campaigns = [create(first, SARVAM, receiver.url, *numbers[i::4]) for i in range(4)]
        advance(first, SARVAM)
        receiver.wait_until(lambda r: len(r.delivered()) >= len(numbers), what="every delivery")
        with contextlib.suppress(AssertionError):
            receiver.wait_until(lambda r: len(r.requests) > len(numbers), seconds=1.5)
        ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
        assert len(ids) == len(numbers) and set(ids.values()) == {1}
        assert {r.json()["campaign_id"] for r in receiver.requests} == set(campaigns)
        delivered = [metric(instance, "gateway_events_delivered_total") for instance in (first, second)]
        assert sum(delivered) == len(numbers), delivered
        assert len(events(second)) == len(numbers)  # either instance lists every event
