"""Round trips through the in-process demo gateway, one vendor at a time.

Each connection of the shipped config.yaml is driven through create → get → list → recipients →
pause / resume / cancel (+ update) → delete, as far as GET /v1/connections says its map offers;
every operation it does not offer must answer 501 operation_not_supported. After create, GET must
fill in every canonical field the vendor reports (the lists below, read from each map's
``shapes.campaign``) and nothing else. Also: ``?include=vendor_data``, list paging, ``?status=``
filtering and the response cache headers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from gateway import models
from tests.conftest import MAPPINGS, ROOT
from tests.fakes import FakeVendor, SentRequest, json_answer

ALL_OPERATIONS = (
    "create",
    "get",
    "list",
    "update",
    "delete",
    "start",
    "pause",
    "resume",
    "cancel",
    "recipients_add",
    "recipients_list",
)
NESTED = {"schedule": models.Schedule, "retry": models.Retry, "stats": models.Stats}
ENGINE_FIELDS = {"id", "connection", "vendor", "vendor_data"}


def _at(days: int) -> str:
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    return moment.isoformat().replace("+00:00", "Z")


START_AT = _at(30)
END_AT = _at(60)


def ann_and_abe() -> list[dict[str, object]]:
    """The two recipients a create gives, on every vendor that takes names (fresh each time)."""
    return [
        {"phone_number": "+14155550111", "name": "Ann", "variables": {"plan": "gold"}},
        {"phone_number": "+14155550112", "name": "Abe"},
    ]


LENIENT = {"Prefer": "handling=lenient"}
NEW_RECIPIENTS = [
    {"phone_number": "+14155550122", "name": "Bob", "variables": {"tier": "gold"}},
    {"phone_number": "+14155550133", "name": "Cy"},
]


@dataclass(frozen=True)
class VendorCase:
    """What one demo connection takes on create and what it must answer afterwards."""

    connection: str
    vendor: str
    map_file: str
    create: Callable[[str], dict[str, Any]]
    # canonical leaf fields (``schedule.days``) GET must report non-null after create: exactly these
    filled: frozenset[str]
    # fields of shapes.campaign the sandbox never reports (so they stay null)
    unreported: frozenset[str] = frozenset()
    # leaf field -> the value GET must show after create
    values: dict[str, Any] = field(default_factory=dict)
    created_status: frozenset[tuple[str | None, str | None]] = frozenset()
    # the lifecycle operations the round trip runs, in order (those the vendor offers)
    lifecycle: tuple[str, ...] = ("pause", "update", "resume", "cancel")
    # operation -> (status, vendor_status) of its answer; ``after_get`` where a later GET differs
    after: dict[str, tuple[str, str]] = field(default_factory=dict)
    after_get: dict[str, tuple[str, str]] = field(default_factory=dict)
    # phone numbers a recipients listing shows right after create, and the status each has there
    recipients_at_create: tuple[str, ...] = ()
    recipient_status: str | None = "pending"
    # a key of vendor_data (a vendor field without a canonical home) GET must keep
    vendor_only_field: str = ""
    # what a lenient add of NEW_RECIPIENTS leaves out (Dropped-Fields), if anything
    recipients_dropped: str | None = None


HAMSA = VendorCase(
    connection="hamsa-sandbox",
    vendor="hamsa",
    map_file="hamsa.yaml",
    create=lambda name: {
        "name": name,
        "agent_id": "3f2a6c1e-8b7d-4e2f-9a10-1b2c3d4e5f60",
        "from_number": "+14155550100",
        "recipients": ann_and_abe(),
        "start_at": START_AT,
        "schedule": {
            "timezone": "Europe/Berlin",
            "days": ["monday", "wednesday", "friday"],
            "daily_start": "09:00",
            "daily_end": "17:30",
        },
        "max_concurrent_calls": 4,
        "webhook_url": "https://hooks.example.com/hamsa",
    },
    # from_numbers: Hamsa only answers phoneNumberId; end_at, retry.interval_minutes: no field.
    filled=frozenset(
        {
            "name",
            "status",
            "vendor_status",
            "agent_id",
            "max_concurrent_calls",
            "schedule.start_at",
            "schedule.timezone",
            "schedule.days",
            "schedule.daily_start",
            "schedule.daily_end",
            "retry.max_attempts",
            "stats.total",
            "stats.pending",
            "stats.queued",
            "stats.in_progress",
            "stats.completed",
            "stats.failed",
            "stats.no_answer",
            "webhook_url",
            "created_at",
            "updated_at",
        }
    ),
    values={
        "agent_id": "3f2a6c1e-8b7d-4e2f-9a10-1b2c3d4e5f60",
        "max_concurrent_calls": 4,
        "schedule.start_at": START_AT,
        "schedule.timezone": "Europe/Berlin",
        "schedule.days": ["monday", "wednesday", "friday"],
        "schedule.daily_start": "09:00",
        "schedule.daily_end": "17:30",
        "stats.total": 2,
        "stats.pending": 2,
        "stats.queued": 0,
        "stats.in_progress": 0,
        "stats.completed": 0,
        "stats.failed": 0,
        "stats.no_answer": 0,
        "webhook_url": "https://hooks.example.com/hamsa",
    },
    created_status=frozenset({("scheduled", "SCHEDULED")}),
    recipients_at_create=("+14155550111", "+14155550112"),
    vendor_only_field="phoneNumberId",
)

VOISO = VendorCase(
    connection="voiso-sandbox",
    vendor="voiso",
    map_file="voiso.yaml",
    create=lambda name: {
        "name": name,
        "from_number": "+14155550100",
        "schedule": {"timezone": "Europe/London", "daily_start": "09:00", "daily_end": "18:00"},
        "retry": {"max_attempts": 3, "interval_minutes": 30},
    },
    filled=frozenset(
        {"name", "status", "vendor_status", "from_numbers", "retry.max_attempts", "created_at", "updated_at"}
    ),
    values={"from_numbers": ["+14155550100"], "retry.max_attempts": 3},
    created_status=frozenset({("draft", "draft")}),
    after={
        "start": ("active", "active"),
        "resume": ("active", "active"),
        "pause": ("paused", "paused"),
        "cancel": ("cancelled", "stopped"),
    },
    vendor_only_field="strategy",
    recipients_dropped="recipients[*].variables",
)

SARVAM = VendorCase(
    connection="sarvam-sandbox",
    vendor="sarvam",
    map_file="sarvam.yaml",
    create=lambda name: {
        "name": name,
        "agent_id": "agent-42",
        "from_number": "+919876543210",
        "schedule": {
            "end_at": END_AT,
            "timezone": "Asia/Kolkata",
            "days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "daily_start": "09:00",
            "daily_end": "18:00",
        },
        "retry": {"max_attempts": 3, "interval_minutes": 30},
        "webhook_url": "https://hooks.example.com/sarvam",
    },
    filled=frozenset(
        {
            "name",
            "status",
            "vendor_status",
            "agent_id",
            "from_numbers",
            "schedule.start_at",
            "schedule.end_at",
            "schedule.timezone",
            "schedule.days",
            "schedule.daily_start",
            "schedule.daily_end",
            "retry.max_attempts",
            "retry.interval_minutes",
            "webhook_url",
            "created_at",
            "updated_at",
        }
    ),
    values={
        "agent_id": "agent-42",
        "from_numbers": ["+919876543210"],
        "schedule.end_at": END_AT,
        "schedule.timezone": "Asia/Kolkata",
        "schedule.days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
        "schedule.daily_start": "09:00",
        "schedule.daily_end": "18:00",
        "retry.max_attempts": 3,
        "retry.interval_minutes": 30,
        "webhook_url": "https://hooks.example.com/sarvam",
    },
    # no start time: it starts now, so it reads as active (scheduled until the clock passes it)
    created_status=frozenset({("active", "active"), ("scheduled", "scheduled")}),
    after={
        "pause": ("paused", "paused"),
        "update": ("paused", "paused"),
        "resume": ("scheduled", "scheduled"),
        "cancel": ("cancelled", "cancelled"),
    },
    # a resumed campaign whose start has passed reads as active again
    after_get={"resume": ("active", "active")},
    vendor_only_field="app_type",
)

DIALNEXA = VendorCase(
    connection="dialnexa-sandbox",
    vendor="dialnexa",
    map_file="generic.yaml",
    create=lambda name: {
        "name": name,
        "agent_id": "agt_demo42",
        "from_number": "+14155550100",
        "start_at": START_AT,
        "max_concurrent_calls": 3,
        "retry": {"max_attempts": 2, "interval_minutes": 15},
    },
    filled=frozenset(
        {
            "name",
            "status",
            "vendor_status",
            "agent_id",
            "from_numbers",
            "max_concurrent_calls",
            "schedule.start_at",
            "retry.max_attempts",
            "retry.interval_minutes",
            "stats.total",
            "stats.pending",
            "stats.completed",
            "created_at",
        }
    ),
    unreported=frozenset({"updated_at"}),  # the DialNexa record has no updated_at
    values={
        "agent_id": "agt_demo42",
        "from_numbers": ["+14155550100"],
        "max_concurrent_calls": 3,
        "schedule.start_at": START_AT,
        "retry.max_attempts": 2,
        "retry.interval_minutes": 15,
        "stats.total": 0,
        "stats.pending": 0,
        "stats.completed": 0,
    },
    created_status=frozenset({("draft", "draft")}),
    after={
        "start": ("active", "active"),
        "resume": ("active", "active"),
        "pause": ("paused", "paused"),
        "update": ("paused", "paused"),
        "cancel": ("cancelled", "cancelled"),
    },
    vendor_only_field="organization_id",
)

VAPI = VendorCase(
    connection="vapi-sandbox",
    vendor="vapi",
    map_file="vapi.yaml",
    create=lambda name: {
        "name": name,
        "agent_id": "4c7e2b1a-9d3f-4e5a-8b6c-0d1e2f3a4b5c",
        "from_number": "+14155550100",  # one of the sandbox organization's phone numbers
        "recipients": ann_and_abe(),
        "start_at": START_AT,
        "schedule": {"end_at": END_AT},
        "max_concurrent_calls": 4,
        "webhook_url": "https://hooks.example.com/vapi",
    },
    filled=frozenset(
        {
            "name",
            "status",
            "vendor_status",
            "agent_id",
            "from_numbers",
            "max_concurrent_calls",
            "schedule.start_at",
            "schedule.end_at",
            "stats.total",
            "stats.pending",
            "stats.queued",
            "stats.in_progress",
            "stats.completed",
            "webhook_url",
            "created_at",
            "updated_at",
        }
    ),
    values={
        "agent_id": "4c7e2b1a-9d3f-4e5a-8b6c-0d1e2f3a4b5c",
        "from_numbers": ["+14155550100"],
        "max_concurrent_calls": 4,
        "schedule.start_at": START_AT,
        "schedule.end_at": END_AT,
        "stats.total": 2,
        "stats.pending": 2,
        "stats.completed": 0,
        "webhook_url": "https://hooks.example.com/vapi",
    },
    created_status=frozenset({("scheduled", "scheduled")}),
    after={"update": ("scheduled", "scheduled"), "cancel": ("cancelled", "ended")},
    recipients_at_create=("+14155550111", "+14155550112"),
    recipient_status=None,  # outcomes are per call, in the campaign's calls map
    vendor_only_field="orgId",
)

ELEVENLABS = VendorCase(
    connection="elevenlabs-sandbox",
    vendor="elevenlabs",
    map_file="elevenlabs.yaml",
    create=lambda name: {
        "name": name,
        "agent_id": "agent_9f8b7c6d5e4a3b2c1d0e",
        "from_number": "+14155550100",  # one of the sandbox workspace's phone numbers
        "recipients": [
            {"phone_number": "+14155550111", "variables": {"plan": "gold"}},
            {"phone_number": "+14155550112"},
        ],
        "start_at": START_AT,
        "schedule": {"timezone": "America/New_York"},
        "max_concurrent_calls": 3,
    },
    filled=frozenset(
        {
            "name",
            "status",
            "vendor_status",
            "agent_id",
            "from_numbers",
            "max_concurrent_calls",
            "schedule.start_at",
            "schedule.timezone",
            "stats.total",
            "stats.pending",
            "stats.in_progress",
            "stats.completed",
            "stats.failed",
            "stats.no_answer",
            "created_at",
            "updated_at",
        }
    ),
    values={
        "agent_id": "agent_9f8b7c6d5e4a3b2c1d0e",
        "from_numbers": ["+14155550100"],
        "max_concurrent_calls": 3,
        "schedule.start_at": START_AT,
        "schedule.timezone": "America/New_York",
        "stats.total": 2,
        "stats.pending": 2,
        "stats.in_progress": 0,
        "stats.completed": 0,
    },
    created_status=frozenset({("scheduled", "pending")}),
    # no pause; resume is ElevenLabs' retry, which calls a finished batch's unreached recipients again
    lifecycle=("cancel", "resume"),
    after={"cancel": ("cancelled", "cancelled"), "resume": ("scheduled", "pending")},
    recipients_at_create=("+14155550111", "+14155550112"),
    vendor_only_field="agent_name",
)

BLAND = VendorCase(
    connection="bland-sandbox",
    vendor="bland",
    map_file="bland.yaml",
    create=lambda name: {
        "name": name,
        "agent_id": "c2b4e1f0-8a7d-4b6c-9e5f-1a2b3c4d5e6f",
        "from_number": "+14155550100",
        "recipients": ann_and_abe(),
        "start_at": START_AT,
        "webhook_url": "https://hooks.example.com/bland",
    },
    # a batch read back has no status, counters or webhook: what Bland reports is all there is, and the
    # webhook_url the gateway keeps as the campaign's destination (the connection has events)
    filled=frozenset({"name", "agent_id", "from_numbers", "schedule.start_at", "webhook_url", "created_at"}),
    values={
        "agent_id": "c2b4e1f0-8a7d-4b6c-9e5f-1a2b3c4d5e6f",
        "from_numbers": ["+14155550100"],
        "schedule.start_at": START_AT,
        "webhook_url": "https://hooks.example.com/bland",
    },
    created_status=frozenset({(None, None)}),
    after={"cancel": (None, None)},
    recipients_at_create=("+14155550111", "+14155550112"),
    vendor_only_field="base_prompt",
)

EXOTEL = VendorCase(
    connection="exotel-sandbox",
    vendor="exotel",
    map_file="exotel.yaml",
    create=lambda name: {
        "name": name,
        "agent_id": "http://my.exotel.com/demo-sid/exoml/start_voice/12345",  # the call flow's URL
        "from_number": "+918047112200",
        "recipients": [{"phone_number": "+919876543210"}, {"phone_number": "+919876543211"}],
        "start_at": START_AT,
        "schedule": {"end_at": END_AT},
        "retry": {"max_attempts": 3, "interval_minutes": 10},
        "webhook_url": "https://hooks.example.com/exotel",
    },
    filled=frozenset(
        {
            "name",
            "status",
            "vendor_status",
            "agent_id",
            "from_numbers",
            "schedule.start_at",
            "schedule.end_at",
            "retry.max_attempts",
            "retry.interval_minutes",
            "stats.total",
            "stats.pending",
            "stats.in_progress",
            "stats.completed",
            "stats.failed",
            "stats.no_answer",
            "webhook_url",
            "created_at",
            "updated_at",
        }
    ),
    values={
        "agent_id": "http://my.exotel.com/demo-sid/exoml/start_voice/12345",
        "from_numbers": ["+918047112200"],
        "schedule.start_at": START_AT,
        "schedule.end_at": END_AT,
        "retry.max_attempts": 3,
        "retry.interval_minutes": 10,
        "stats.total": 2,
        "stats.pending": 2,
        "webhook_url": "https://hooks.example.com/exotel",
    },
    created_status=frozenset({("scheduled", "created")}),
    # cancel is Exotel's "complete", which takes a paused campaign: pause again first
    lifecycle=("pause", "update", "resume", "pause", "cancel"),
    after={
        "pause": ("paused", "paused"),
        "update": ("paused", "paused"),
        "resume": ("scheduled", "created"),
        "cancel": ("completed", "completed"),
    },
    vendor_only_field="account_sid",  # recipients are call records: none before a call is made
)

CASES = [HAMSA, VOISO, SARVAM, DIALNEXA, VAPI, ELEVENLABS, BLAND, EXOTEL]
BY_CONNECTION = {case.connection: case for case in CASES}
IDS = [case.vendor for case in CASES]


# --- helpers ---------------------------------------------------------------------------------------


def leaves(campaign: dict[str, Any]) -> dict[str, Any]:
    """The campaign's canonical fields flattened (``schedule.days``), nested nulls expanded."""
    out: dict[str, Any] = {}
    for name, value in campaign.items():
        if name in ENGINE_FIELDS:
            continue
        if name in NESTED:
            for sub in NESTED[name].model_fields:
                out[f"{name}.{sub}"] = value.get(sub) if isinstance(value, dict) else None
        else:
            out[name] = value
    return out


def shape_targets(case: VendorCase) -> set[str]:
    document = yaml.safe_load((MAPPINGS / case.map_file).read_text())
    return {str(target) for target in document["shapes"]["campaign"]} - {"id"}


def map_operations(case: VendorCase) -> set[str]:
    return set(yaml.safe_load((MAPPINGS / case.map_file).read_text())["operations"])


def assert_campaign(body: dict[str, Any], case: VendorCase) -> None:
    """A valid canonical Campaign of this connection."""
    models.Campaign.model_validate(body)
    assert body["connection"] == case.connection
    assert body["vendor"] == case.vendor
    assert isinstance(body["id"], str) and body["id"]


def status_of(body: dict[str, Any]) -> tuple[str, str]:
    return body["status"], body["vendor_status"]


async def request(
    client: httpx.AsyncClient,
    connection: str,
    operation: str,
    campaign_id: str = "0",
    body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One canonical operation over HTTP, as a client calls it."""
    all_headers = {"X-Connection": connection, **(headers or {})}
    one = f"/v1/campaigns/{campaign_id}"
    method, path = {
        "create": ("POST", "/v1/campaigns"),
        "list": ("GET", "/v1/campaigns"),
        "get": ("GET", one),
        "update": ("PATCH", one),
        "delete": ("DELETE", one),
        "start": ("POST", one + "/start"),
        "pause": ("POST", one + "/pause"),
        "resume": ("POST", one + "/resume"),
        "cancel": ("POST", one + "/cancel"),
        "recipients_add": ("POST", one + "/recipients"),
        "recipients_list": ("GET", one + "/recipients"),
    }[operation]
    return await client.request(method, path, json=body, params=params, headers=all_headers)


async def offered_operations(client: httpx.AsyncClient) -> dict[str, set[str]]:
    response = await client.get("/v1/connections")
    assert response.status_code == 200, response.text
    return {item["name"]: set(item["operations"]) for item in response.json()["data"]}


async def create(client: httpx.AsyncClient, case: VendorCase, name: str) -> dict[str, Any]:
    response = await request(client, case.connection, "create", body=case.create(name))
    assert response.status_code == 201, response.text
    body = response.json()
    assert_campaign(body, case)
    assert body["name"] == name
    return body


async def get(client: httpx.AsyncClient, case: VendorCase, campaign_id: str, **kwargs: Any) -> httpx.Response:
    response = await request(client, case.connection, "get", campaign_id, **kwargs)
    assert response.status_code == 200, response.text
    assert_campaign(response.json(), case)
    return response


async def make_pausable(client: httpx.AsyncClient, case: VendorCase, created: dict[str, Any]) -> str:
    """Bring a new campaign to a state its vendor lets pause (Voiso: leads, then start); its id.

    Only writes: a read here would fill the cache the caller may be testing.
    """
    campaign_id = created["id"]
    if case.connection == VOISO.connection:
        added = await request(
            client, case.connection, "recipients_add", campaign_id, {"recipients": NEW_RECIPIENTS}, headers=LENIENT
        )
        assert added.status_code == 200, added.text
    if created["status"] == "draft":
        resumed = await request(client, case.connection, "resume", campaign_id)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["status"] == "active"
    return campaign_id


# --- the round trip --------------------------------------------------------------------------------


def test_every_demo_connection_has_a_case() -> None:
    """The cases below cover the shipped config exactly; each filled list stays within its map."""
    document = yaml.safe_load((ROOT / "config.yaml").read_text())
    connections = {c["name"]: c["vendor"] for c in document["tenants"][0]["connections"]}
    assert connections == {case.connection: case.vendor for case in CASES}
    with_events = {c["name"] for c in document["tenants"][0]["connections"] if c.get("events")}
    for case in CASES:
        targets = shape_targets(case)
        # every field the test expects filled comes from the map (or, with events, is the webhook_url the
        # gateway keeps), and every mapped field is expected filled unless listed as one the vendor does not report
        kept = {"webhook_url"} if case.connection in with_events else set()
        assert case.filled <= targets | kept, case.filled - targets
        assert targets - case.filled == case.unreported, targets - case.filled
        assert set(case.values) <= case.filled


async def test_connections_list_each_maps_operations(demo_client: httpx.AsyncClient) -> None:
    offered = await offered_operations(demo_client)
    assert set(offered) == set(BY_CONNECTION)
    for name, operations in offered.items():
        assert operations == map_operations(BY_CONNECTION[name])
        assert operations <= set(ALL_OPERATIONS)
        assert {"create", "get", "list"} <= operations


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_round_trip(demo_client: httpx.AsyncClient, case: VendorCase) -> None:
    client, connection = demo_client, case.connection
    offered = (await offered_operations(client))[connection]
    exercised: set[str] = set()

    # create → get: every field the vendor reports is filled in, and nothing else is
    created = await create(client, case, f"{case.vendor} round trip")
    exercised.add("create")
    campaign_id = created["id"]
    assert status_of(created) in case.created_status

    fetched = (await get(client, case, campaign_id)).json()
    exercised.add("get")
    assert fetched["id"] == campaign_id
    assert "vendor_data" not in fetched
    assert status_of(fetched) in case.created_status
    flat = leaves(fetched)
    non_null = {name for name, value in flat.items() if value is not None}
    assert non_null == set(case.filled), {
        "missing": set(case.filled) - non_null,
        "unexpected": non_null - set(case.filled),
    }
    for name, value in case.values.items():
        assert flat[name] == value, name
    assert flat["name"] == f"{case.vendor} round trip"
    for stamp in ("created_at", "updated_at"):
        if flat[stamp] is not None:
            assert datetime.fromisoformat(flat[stamp]).tzinfo is not None

    # list: the new campaign is on it, as GET shows it
    listed = await request(client, connection, "list")
    exercised.add("list")
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["next_cursor"] is None
    [item] = [c for c in page["data"] if c["id"] == campaign_id]
    assert_campaign(item, case)
    assert status_of(item) == status_of(fetched)
    assert item["name"] == fetched["name"]

    # recipients (before the lifecycle: Voiso starts only with leads, cancelled campaigns take none)
    expected_numbers = list(case.recipients_at_create)
    if "recipients_add" in offered:
        added = await request(
            client, connection, "recipients_add", campaign_id, {"recipients": NEW_RECIPIENTS}, headers=LENIENT
        )
        exercised.add("recipients_add")
        assert added.status_code == 200, added.text
        assert added.headers["preference-applied"] == "handling=lenient"
        assert added.headers.get("dropped-fields") == case.recipients_dropped
        report = models.RecipientsAdded.model_validate(added.json()).model_dump()
        assert report["campaign_id"] == campaign_id
        assert (report["submitted"], report["accepted"], report["rejected"]) == (2, 2, 0)
        expected_numbers += [r["phone_number"] for r in NEW_RECIPIENTS]
    if "recipients_list" in offered:
        exercised.add("recipients_list")
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(len(expected_numbers) + 1):
            params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
            listed = await request(client, connection, "recipients_list", campaign_id, params=params)
            assert listed.status_code == 200, listed.text
            recipient_page = models.RecipientPage.model_validate(listed.json())
            assert len(recipient_page.data) <= 1
            seen += [r.model_dump() for r in recipient_page.data]
            cursor = recipient_page.next_cursor
            if cursor is None:
                break
        assert cursor is None, "recipients paging did not end"
        assert sorted(r["phone_number"] for r in seen) == sorted(expected_numbers)
        assert len({r["id"] for r in seen}) == len(seen)
        assert {r["status"] for r in seen} == ({case.recipient_status} if seen else set())

    # lifecycle: start a draft first, then pause (and edit while paused), resume, cancel
    plan: list[str] = []
    if fetched["status"] == "draft" and "start" in offered:
        plan.append("start")
    plan += [op for op in case.lifecycle if op in offered]
    for operation in plan:
        body = {"name": f"{case.vendor} renamed"} if operation == "update" else None
        answer = await request(client, connection, operation, campaign_id, body)
        exercised.add(operation)
        assert answer.status_code == 200, (operation, answer.text)
        assert_campaign(answer.json(), case)
        assert answer.json()["id"] == campaign_id
        assert status_of(answer.json()) == case.after[operation], operation
        again = (await get(client, case, campaign_id)).json()
        assert status_of(again) == case.after_get.get(operation, case.after[operation]), operation
        if operation == "update":
            assert answer.json()["name"] == again["name"] == f"{case.vendor} renamed"

    if "delete" in offered:
        deleted = await request(client, connection, "delete", campaign_id)
        exercised.add("delete")
        assert deleted.status_code == 204, deleted.text
        gone = await request(client, connection, "get", campaign_id)
        assert gone.status_code == 404, gone.text

    assert exercised == offered

    # everything else answers 501 naming the vendor and the operation
    for operation in sorted(set(ALL_OPERATIONS) - offered):
        body = {
            "update": {"name": "x"},
            "recipients_add": {"recipients": NEW_RECIPIENTS},
        }.get(operation)
        answer = await request(client, connection, operation, campaign_id, body)
        assert answer.status_code == 501, (operation, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "operation_not_supported"
        assert error["vendor"] == case.vendor
        assert operation in error["message"]
        assert answer.headers["x-request-id"] == error["request_id"]


async def test_voiso_create_refuses_an_agent_and_adds_recipients_as_leads(demo_client: httpx.AsyncClient) -> None:
    recipients = [{"phone_number": "+14155550122", "name": "Cy"}]
    body = {**VOISO.create("voiso refused"), "agent_id": "agent-1", "recipients": recipients}
    answer = await request(demo_client, VOISO.connection, "create", body=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["vendor"]) == ("validation_error", "voiso")
    assert {d["field"] for d in error["details"]} == {"agent_id"}
    assert (await request(demo_client, VOISO.connection, "list")).json()["data"] == []

    # without the agent: created, then the recipients added as leads, so the draft can start at once
    del body["agent_id"]
    created = await request(demo_client, VOISO.connection, "create", body=body)
    assert created.status_code == 201, created.text
    started = await request(demo_client, VOISO.connection, "resume", created.json()["id"])
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "active"


async def test_voiso_resume_needs_recipients_first(demo_client: httpx.AsyncClient) -> None:
    campaign_id = (await create(demo_client, VOISO, "voiso without leads"))["id"]
    refused = await request(demo_client, VOISO.connection, "resume", campaign_id)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "conflict"
    assert refused.json()["error"]["upstream_status"] == 409
    assert (await get(demo_client, VOISO, campaign_id)).json()["status"] == "draft"


async def test_sarvam_create_requires_agent_number_and_end(demo_client: httpx.AsyncClient) -> None:
    answer = await request(demo_client, SARVAM.connection, "create", body={"name": "sarvam refused"})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["vendor"]) == ("validation_error", "sarvam")
    assert {d["field"] for d in error["details"]} == {"agent_id", "from_number", "schedule.end_at"}
    listed = await request(demo_client, SARVAM.connection, "list")
    assert listed.json()["data"] == []


async def test_dialnexa_create_adds_its_recipients_as_leads(demo_client: httpx.AsyncClient) -> None:
    recipients = [{"phone_number": "+14155550122", "name": "Cy"}, {"phone_number": "+14155550123"}]
    body = {**DIALNEXA.create("dialnexa leads"), "recipients": recipients}
    answer = await request(demo_client, DIALNEXA.connection, "create", body=body)
    assert answer.status_code == 201, answer.text
    listed = await request(demo_client, DIALNEXA.connection, "recipients_list", answer.json()["id"])
    assert listed.status_code == 200, listed.text
    assert [(r["phone_number"], r["name"]) for r in listed.json()["data"]] == [
        ("+14155550122", "Cy"),
        ("+14155550123", None),
    ]


# --- vendor_data --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_include_vendor_data(demo_client: httpx.AsyncClient, case: VendorCase) -> None:
    campaign_id = (await create(demo_client, case, f"{case.vendor} vendor data"))["id"]
    plain = (await get(demo_client, case, campaign_id)).json()
    assert "vendor_data" not in plain

    rich = (await get(demo_client, case, campaign_id, params={"include": "vendor_data"})).json()
    assert isinstance(rich["vendor_data"], dict)
    assert case.vendor_only_field in rich["vendor_data"]
    # the canonical part is unchanged, and canonical fields are not repeated in vendor_data
    assert {k: v for k, v in rich.items() if k != "vendor_data"} == plain
    assert "name" not in rich["vendor_data"]

    listed = await request(demo_client, case.connection, "list", params={"include": "vendor_data"})
    assert listed.status_code == 200, listed.text
    assert all(isinstance(item["vendor_data"], dict) for item in listed.json()["data"])
    listed_plain = await request(demo_client, case.connection, "list")
    assert all("vendor_data" not in item for item in listed_plain.json()["data"])

    bad = await request(demo_client, case.connection, "get", campaign_id, params={"include": "everything"})
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["details"][0]["field"] == "include"


# --- list paging and filtering ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_list_paging(demo_client: httpx.AsyncClient, case: VendorCase) -> None:
    created = [(await create(demo_client, case, f"{case.vendor} page {n}"))["id"] for n in range(3)]

    first = await request(demo_client, case.connection, "list", params={"limit": "2"})
    assert first.status_code == 200, first.text
    first_page = first.json()
    assert len(first_page["data"]) == 2
    assert first_page["next_cursor"] is not None

    rest = await request(
        demo_client, case.connection, "list", params={"limit": "2", "cursor": first_page["next_cursor"]}
    )
    assert rest.status_code == 200, rest.text
    rest_page = rest.json()
    assert len(rest_page["data"]) == 1
    assert rest_page["next_cursor"] is None

    ids = [c["id"] for c in first_page["data"] + rest_page["data"]]
    assert len(ids) == len(set(ids)), ids
    assert sorted(ids) == sorted(created)
    for item in first_page["data"] + rest_page["data"]:
        assert_campaign(item, case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_list_status_filter(demo_client: httpx.AsyncClient, case: VendorCase) -> None:
    offered = (await offered_operations(demo_client))[case.connection]
    to_pause = await create(demo_client, case, f"{case.vendor} to pause")
    paused_id = to_pause["id"]
    other_id = (await create(demo_client, case, f"{case.vendor} left alone"))["id"]
    other_status = (await get(demo_client, case, other_id)).json()["status"]
    assert other_status != "paused"

    if "pause" in offered:
        await make_pausable(demo_client, case, to_pause)
        paused = await request(demo_client, case.connection, "pause", paused_id)
        assert paused.status_code == 200, paused.text
        assert paused.json()["status"] == "paused"
        expected = [paused_id]
    else:
        expected = []

    filtered = await request(demo_client, case.connection, "list", params={"status": "paused"})
    assert filtered.status_code == 200, filtered.text
    data = filtered.json()["data"]
    assert [c["id"] for c in data] == expected
    assert all(c["status"] == "paused" for c in data)

    # a vendor that reports no status (Bland) has no campaign any status filter matches
    others = await request(demo_client, case.connection, "list", params={"status": other_status or "active"})
    assert others.status_code == 200, others.text
    other_ids = [c["id"] for c in others.json()["data"]]
    assert (other_id in other_ids) is (other_status is not None)
    assert paused_id not in other_ids or "pause" not in offered

    bad = await request(demo_client, case.connection, "list", params={"status": "sleeping"})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "status"


async def test_status_filter_without_a_vendor_word_is_an_empty_page(demo_client: httpx.AsyncClient) -> None:
    """`scheduled` is a valid canonical status; a vendor with no word for it has no such campaign.

    Hamsa, Sarvam and DialNexa answer an empty page; Voiso (which filters upstream) answers 422
    naming the internal field ``filter.status``.
    """
    await create(demo_client, VOISO, "voiso draft")
    answer = await request(demo_client, VOISO.connection, "list", params={"status": "scheduled"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"data": [], "next_cursor": None}


async def test_status_filter_counts_every_vendor_word_for_the_status(make_client: Callable[..., Any]) -> None:
    """`?status=paused` must list every campaign whose canonical status is paused.

    Voiso's map sends ``status=paused`` upstream, so a campaign Voiso reports as ``auto_paused``
    (canonical ``paused`` by the same map) is never listed.
    """
    campaigns = [
        {"id": 1, "name": "manual", "status": "paused"},
        {"id": 2, "name": "automatic", "status": "auto_paused"},
        {"id": 3, "name": "running", "status": "active"},
    ]

    def voiso(request: SentRequest) -> tuple[int, dict[str, str], bytes]:
        query = httpx.URL(request.url).params
        found = [c for c in campaigns if "status" not in query or c["status"] == query["status"]]
        return json_answer(200, {"campaigns": found, "metadata": {"total": len(found)}})

    vendor = FakeVendor(voiso)
    connection = {
        "name": "voiso-main",
        "vendor": "voiso",
        "base_url": "https://demo.voiso.com",
        "credentials": {"api_key": "k"},
        "params": {"cluster_id": "demo", "team": "t"},
    }
    async with make_client([connection], lambda _c: vendor) as client:
        everything = await client.get("/v1/campaigns")
        assert everything.status_code == 200, everything.text
        canonical = {c["id"]: c["status"] for c in everything.json()["data"]}
        assert canonical == {"1": "paused", "2": "paused", "3": "active"}

        answer = await client.get("/v1/campaigns", params={"status": "paused"})
        assert answer.status_code == 200, answer.text
        assert sorted(c["id"] for c in answer.json()["data"]) == ["1", "2"]


# --- the response cache ---------------------------------------------------------------------------

PAUSABLE = [case for case in CASES if case.after.get("pause")]


@pytest.mark.parametrize("case", PAUSABLE, ids=[c.vendor for c in PAUSABLE])
async def test_cache_headers(demo_client: httpx.AsyncClient, case: VendorCase) -> None:
    campaign_id = await make_pausable(demo_client, case, await create(demo_client, case, f"{case.vendor} cached"))

    first = await get(demo_client, case, campaign_id)
    assert first.headers["x-cache"] == "MISS"
    assert "age" not in first.headers
    assert first.json()["status"] != "paused"

    second = await get(demo_client, case, campaign_id)
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["age"].isdigit()
    assert 0 <= int(second.headers["age"]) <= 30
    assert second.json() == first.json()

    bypass = await get(demo_client, case, campaign_id, headers={"Cache-Control": "no-cache"})
    assert bypass.headers["x-cache"] == "BYPASS"
    assert bypass.json() == first.json()
    # the fresh answer was stored
    assert (await get(demo_client, case, campaign_id)).headers["x-cache"] == "HIT"

    # another query string is another entry
    rich = await get(demo_client, case, campaign_id, params={"include": "vendor_data"})
    assert rich.headers["x-cache"] == "MISS"

    paused = await request(demo_client, case.connection, "pause", campaign_id)
    assert paused.status_code == 200, paused.text
    assert "x-cache" not in paused.headers

    after = await get(demo_client, case, campaign_id)
    assert after.headers["x-cache"] == "MISS"
    assert status_of(after.json()) == case.after["pause"]
    assert (await get(demo_client, case, campaign_id)).headers["x-cache"] == "HIT"
    rich_after = await get(demo_client, case, campaign_id, params={"include": "vendor_data"})
    assert rich_after.headers["x-cache"] == "MISS"
    assert rich_after.json()["status"] == "paused"


async def test_list_cache_is_dropped_by_a_create(demo_client: httpx.AsyncClient) -> None:
    case = DIALNEXA
    first_id = (await create(demo_client, case, "listed first"))["id"]
    first = await request(demo_client, case.connection, "list")
    assert first.headers["x-cache"] == "MISS"
    second = await request(demo_client, case.connection, "list")
    assert second.headers["x-cache"] == "HIT"
    assert [c["id"] for c in second.json()["data"]] == [first_id]

    second_id = (await create(demo_client, case, "listed second"))["id"]
    third = await request(demo_client, case.connection, "list")
    assert third.headers["x-cache"] == "MISS"
    assert sorted(c["id"] for c in third.json()["data"]) == sorted([first_id, second_id])


async def test_cache_is_per_connection(demo_client: httpx.AsyncClient) -> None:
    """The same path on two connections is two entries."""
    hamsa = await request(demo_client, HAMSA.connection, "list")
    voiso = await request(demo_client, VOISO.connection, "list")
    assert (hamsa.headers["x-cache"], voiso.headers["x-cache"]) == ("MISS", "MISS")


async def test_no_cache_directive_is_case_insensitive(demo_client: httpx.AsyncClient) -> None:
    """Cache directives compare case-insensitively (RFC 9111 §5.2): `No-Cache` must bypass too."""
    campaign_id = (await create(demo_client, DIALNEXA, "case of the cache"))["id"]
    assert (await get(demo_client, DIALNEXA, campaign_id)).headers["x-cache"] == "MISS"
    answer = await get(demo_client, DIALNEXA, campaign_id, headers={"Cache-Control": "No-Cache"})
    assert answer.headers["x-cache"] == "BYPASS"
