"""Tenants and their API keys, in process: who may call, what they may do, and what they can reach.

Each rule of the issue has its own test: unknown, expired and disabled keys get one and the same
401; a key without the scope of a route gets 403 and the vendor is never called; a tenant cannot
name another tenant's connection (400 unknown_connection) nor read its cached answers or replay
its idempotent writes; rotation keeps two keys live, and editing the old one out (a reload) turns
it into an unknown key. Also `gateway keys new`: 32 random bytes, only the hash in the entry, and
``--expires-in`` setting an ``expires_at`` that `authenticate` honours.

The gateways here run against in-memory fakes of the generic (DialNexa-shaped) REST API, one per
host, each answering only to its own credential.
"""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import yaml

from gateway import cli, keys
from gateway.app import GatewayApp
from gateway.config import Connection, load_config
from gateway.errors import Unauthorized
from gateway.keys import KEY_PREFIX, authenticate, key_hash
from tests.conftest import MAPPINGS
from tests.fakes import Answer, FakeVendor, SentRequest, json_answer

ACME_KEY = "cgw_acme_primary_key_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
ACME_READ_KEY = "cgw_acme_read_only_key_BBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
ACME_WRITE_KEY = "cgw_acme_write_only_key_CCCCCCCCCCCCCCCCCCCCCCCCCCCC"
ACME_EXPIRED_KEY = "cgw_acme_expired_key_DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"
ACME_DISABLED_KEY = "cgw_acme_disabled_key_EEEEEEEEEEEEEEEEEEEEEEEEEEEEEE"
ACME_FUTURE_KEY = "cgw_acme_expires_later_key_FFFFFFFFFFFFFFFFFFFFFFFF"
GLOBEX_KEY = "cgw_globex_primary_key_GGGGGGGGGGGGGGGGGGGGGGGGGGGGG"
UNKNOWN_KEY = "cgw_never_issued_key_HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH"
ACME_SECRET = "acme-vendor-credential-0001"
GLOBEX_SECRET = "globex-vendor-credential-0002"
CAMPAIGN_ID = "cmp_acme_1"
CREATE_BODY = {"name": "Spring", "agent_id": "agt_1", "from_number": "+14155550100"}


# --- a fake vendor: the generic map's REST paths, answering only to its own credential -------------


class TenantVendor(FakeVendor):
    """The generic REST API of one vendor account: campaigns by id, a list, creates, status changes.

    Only ``Authorization: Bearer <credential>`` is served; anything else is the vendor's 401.
    """

    def __init__(self, label: str, credential: str, campaign_ids: tuple[str, ...] = ()) -> None:
        super().__init__(self.answer)
        self.label = label
        self.credential = credential
        self.campaigns: dict[str, dict[str, Any]] = {cid: self.campaign(cid, f"{label} {cid}") for cid in campaign_ids}
        self.created = 0

    @staticmethod
    def campaign(campaign_id: str, name: str, status: str = "active") -> dict[str, Any]:
        return {"id": campaign_id, "name": name, "status": status, "from_phone_number": "+14155550100"}

    def answer(self, request: SentRequest) -> Answer:
        if request.headers.get("Authorization") != f"Bearer {self.credential}":
            return json_answer(401, {"error": {"message": "unknown API key"}})
        segments = urlsplit(request.url).path.split("/")[2:]  # drop "" and "v1"
        campaign_id = segments[1] if len(segments) > 1 and segments[0] == "campaigns" else None
        if campaign_id is not None and campaign_id not in self.campaigns:
            return json_answer(404, {"error": {"message": "no such campaign"}})
        if request.method == "GET" and segments == ["campaigns"]:
            items = list(self.campaigns.values())
            return json_answer(200, {"data": items, "total": len(items)})
        if request.method == "GET" and len(segments) == 2:
            return json_answer(200, self.campaigns[campaign_id])  # type: ignore[index]
        if request.method == "GET" and len(segments) == 3:
            return json_answer(200, {"data": [], "total": 0})
        if request.method == "POST" and segments == ["campaigns"]:
            self.created += 1
            new_id = f"cmp_{self.label.lower()}_new_{self.created}"
            self.campaigns[new_id] = self.campaign(new_id, request.json()["name"], "draft")  # type: ignore[index]
            return json_answer(201, self.campaigns[new_id])
        if request.method == "POST" and segments == ["campaigns-leads"]:
            lead = request.json()
            if lead["campaignId"] not in self.campaigns:  # type: ignore[index]
                return json_answer(404, {"error": {"message": "no such campaign"}})
            return json_answer(201, {"id": f"lead_{len(self.sent)}"})
        if request.method == "PATCH" and campaign_id is not None:
            self.campaigns[campaign_id].update(request.json())  # type: ignore[arg-type]
            return json_answer(200, self.campaigns[campaign_id])
        return json_answer(405, {"error": {"message": "unexpected request"}})


# --- configs and gateways -------------------------------------------------------------------------


def key_entry(label: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"id": label, "hash": key_hash(key), **extra}


def generic_connection(name: str, host: str, credential: str) -> dict[str, Any]:
    return {"name": name, "vendor": "generic", "base_url": f"https://{host}/v1", "credentials": {"api_key": credential}}


def tenant_entry(tenant_id: str, key_entries: list[dict[str, Any]], connections: list[dict[str, Any]], **extra: Any):
    return {
        "id": tenant_id,
        "keys": key_entries,
        "default_connection": connections[0]["name"] if connections else None,
        "connections": connections,
        **extra,
    }


def write_tenants(path: Path, tenants: list[dict[str, Any]], **extra: Any) -> Path:
    document = {"mappings_dir": str(MAPPINGS), **extra, "tenants": tenants}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def acme_and_globex(path: Path, acme_keys: list[dict[str, Any]] | None = None, **extra: Any) -> Path:
    """Tenant acme (connection acme-nexa at acme.test) and globex (globex-nexa at globex.test)."""
    now = datetime.now(UTC)
    acme_keys = acme_keys or [
        key_entry("acme-primary", ACME_KEY),
        key_entry("acme-read", ACME_READ_KEY, scopes=["campaigns:read"]),
        key_entry("acme-write", ACME_WRITE_KEY, scopes=["campaigns:write"]),
        key_entry("acme-expired", ACME_EXPIRED_KEY, expires_at=(now - timedelta(minutes=1)).isoformat()),
        key_entry("acme-disabled", ACME_DISABLED_KEY, disabled=True),
        key_entry("acme-later", ACME_FUTURE_KEY, expires_at=(now + timedelta(days=1)).isoformat()),
    ]
    return write_tenants(
        path,
        [
            tenant_entry("acme", acme_keys, [generic_connection("acme-nexa", "acme.test", ACME_SECRET)]),
            tenant_entry(
                "globex",
                [key_entry("globex-primary", GLOBEX_KEY)],
                [generic_connection("globex-nexa", "globex.test", GLOBEX_SECRET)],
            ),
        ],
        **extra,
    )


def two_vendors() -> dict[str, TenantVendor]:
    return {
        "acme.test": TenantVendor("Acme", ACME_SECRET, (CAMPAIGN_ID,)),
        "globex.test": TenantVendor("Globex", GLOBEX_SECRET),
    }


def by_host(vendors: dict[str, Any]) -> Callable[[Connection], Any]:
    return lambda connection: vendors[urlsplit(connection.base_url).hostname or ""]


@asynccontextmanager
async def gateway(config_path: Path, vendors: dict[str, Any]) -> AsyncIterator[GatewayApp]:
    config, problems = load_config(config_path)
    assert config is not None, problems
    app = GatewayApp(config, by_host(vendors))
    try:
        yield app
    finally:
        await app.aclose()


def client(app: GatewayApp, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers=headers)


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    return body["error"]


def without_request_id(response: httpx.Response) -> Any:
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body["error"].pop("request_id", None)
    return body


# --- who may call: one 401 for every key that does not work --------------------------------------


ROUTES = [
    ("GET", f"/v1/campaigns/{CAMPAIGN_ID}", None),
    ("GET", "/v1/campaigns", None),
    ("POST", "/v1/campaigns", CREATE_BODY),
    ("POST", f"/v1/campaigns/{CAMPAIGN_ID}/pause", None),
    ("GET", "/v1/connections", None),
]
REFUSED_CREDENTIALS: dict[str, dict[str, str]] = {
    "unknown key": {"Authorization": f"Bearer {UNKNOWN_KEY}"},
    "expired key": {"Authorization": f"Bearer {ACME_EXPIRED_KEY}"},
    "disabled key": {"Authorization": f"Bearer {ACME_DISABLED_KEY}"},
    "unknown key in X-API-Key": {"X-API-Key": UNKNOWN_KEY},
    "expired key in X-API-Key": {"X-API-Key": ACME_EXPIRED_KEY},
    "disabled key in X-API-Key": {"X-API-Key": ACME_DISABLED_KEY},
    "the stored hash presented as a key": {"Authorization": f"Bearer {key_hash(ACME_KEY)}"},
    "the hash's hex presented as a key": {"Authorization": f"Bearer {key_hash(ACME_KEY).removeprefix('sha256:')}"},
    "a key of another case": {"Authorization": f"Bearer {ACME_KEY.upper()}"},
    "a valid key with a character more": {"Authorization": f"Bearer {ACME_KEY}x"},
    "no credentials at all": {},
    "an empty bearer token": {"Authorization": "Bearer "},
    "a valid key under another scheme": {"Authorization": f"Basic {ACME_KEY}"},
}


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_unknown_expired_and_disabled_keys_get_one_and_the_same_401(
    tmp_path: Path, method: str, path: str, body: dict[str, Any] | None
) -> None:
    vendors = two_vendors()
    async with gateway(acme_and_globex(tmp_path / "config.yaml"), vendors) as app, client(app) as anonymous:
        answers: dict[str, httpx.Response] = {}
        for n, (label, headers) in enumerate(REFUSED_CREDENTIALS.items()):
            answers[label] = await anonymous.request(
                method, path, json=body, headers={**headers, "X-Request-ID": f"probe-{n:02d}"}
            )
        assert vendors["acme.test"].sent == vendors["globex.test"].sent == []
        # the keys that do work, so that a 401 above is about the key and nothing else
        for working in (ACME_KEY, ACME_FUTURE_KEY):
            answer = await anonymous.request(method, path, json=body, headers={"Authorization": f"Bearer {working}"})
            assert answer.status_code in (200, 201), (working, answer.text)

    reference = answers["unknown key"]
    ref_error = error_of(reference, 401, "unauthorized")
    assert ref_error == {"code": "unauthorized", "message": ref_error["message"], "request_id": "probe-00"}
    comparable = {"x-request-id", "server-timing"}
    ref_headers = {k: v for k, v in reference.headers.items() if k not in comparable}
    assert not any(name.lower().startswith("ratelimit") for name in reference.headers)
    for n, (label, answer) in enumerate(answers.items()):
        error = error_of(answer, 401, "unauthorized")
        assert error["request_id"] == f"probe-{n:02d}", label
        assert answer.headers["x-request-id"] == f"probe-{n:02d}", label
        assert {**error, "request_id": "-"} == {**ref_error, "request_id": "-"}, label
        assert {k: v for k, v in answer.headers.items() if k not in comparable} == ref_headers, label
        assert answer.content.replace(f"probe-{n:02d}".encode(), b"-") == reference.content.replace(b"probe-00", b"-")


def test_a_key_works_until_the_moment_it_expires(tmp_path: Path) -> None:
    expires = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    path = acme_and_globex(
        tmp_path / "config.yaml", [key_entry("acme-dated", ACME_KEY, expires_at=expires.isoformat())]
    )
    config, problems = load_config(path)
    assert config is not None, problems
    tenant, key = authenticate(config, ACME_KEY, now=expires - timedelta(seconds=1))
    assert (tenant.id, key.id) == ("acme", "acme-dated")
    for later in (expires, expires + timedelta(seconds=1), expires + timedelta(days=400)):
        with pytest.raises(Unauthorized) as refused:
            authenticate(config, ACME_KEY, now=later)
        with pytest.raises(Unauthorized) as unknown:
            authenticate(config, UNKNOWN_KEY, now=later)
        assert str(refused.value) == str(unknown.value)


# --- what a key may do: scopes -------------------------------------------------------------------

WRITE_ROUTES = [
    ("POST", "/v1/campaigns", CREATE_BODY),
    ("PATCH", f"/v1/campaigns/{CAMPAIGN_ID}", {"name": "Renamed"}),
    ("DELETE", f"/v1/campaigns/{CAMPAIGN_ID}", None),
    ("POST", f"/v1/campaigns/{CAMPAIGN_ID}/pause", None),
    ("POST", f"/v1/campaigns/{CAMPAIGN_ID}/resume", None),
    ("POST", f"/v1/campaigns/{CAMPAIGN_ID}/cancel", None),
    ("POST", f"/v1/campaigns/{CAMPAIGN_ID}/recipients", {"recipients": [{"phone_number": "+14155550111"}]}),
]
READ_ROUTES = [
    ("GET", f"/v1/campaigns/{CAMPAIGN_ID}", None),
    ("GET", "/v1/campaigns", None),
    ("GET", f"/v1/campaigns/{CAMPAIGN_ID}/recipients", None),
    ("GET", "/v1/connections", None),
]
SCOPE_CASES = [(ACME_READ_KEY, "campaigns:write", route) for route in WRITE_ROUTES] + [
    (ACME_WRITE_KEY, "campaigns:read", route) for route in READ_ROUTES
]


@pytest.mark.parametrize(
    ("key", "missing", "route"),
    SCOPE_CASES,
    ids=[f"{'read-only' if k == ACME_READ_KEY else 'write-only'} {r[0]} {r[1]}" for k, _, r in SCOPE_CASES],
)
async def test_a_key_without_the_routes_scope_gets_403_and_the_vendor_is_not_called(
    tmp_path: Path, key: str, missing: str, route: tuple[str, str, dict[str, Any] | None]
) -> None:
    method, path, body = route
    vendors = two_vendors()
    async with gateway(acme_and_globex(tmp_path / "config.yaml"), vendors) as app, client(app, key) as acme:
        refused = await acme.request(method, path, json=body)
        error = error_of(refused, 403, "forbidden")
        assert missing in error["message"]
        assert vendors["acme.test"].sent == []
        # the same route with a key that has every scope gets past authentication and scopes
        async with client(app, ACME_KEY) as full:
            allowed = await full.request(method, path, json=body)
        assert allowed.status_code not in (401, 403), allowed.text


async def test_each_single_scope_key_can_do_its_own_half(tmp_path: Path) -> None:
    vendors = two_vendors()
    async with (
        gateway(acme_and_globex(tmp_path / "config.yaml"), vendors) as app,
        client(app, ACME_READ_KEY) as reader,
        client(app, ACME_WRITE_KEY) as writer,
    ):
        read = await reader.get(f"/v1/campaigns/{CAMPAIGN_ID}")
        assert read.status_code == 200, read.text
        assert read.json()["name"] == f"Acme {CAMPAIGN_ID}"
        created = await writer.post("/v1/campaigns", json=CREATE_BODY)
        assert created.status_code == 201, created.text
        assert created.json()["id"] == "cmp_acme_new_1"
        assert (await reader.post("/v1/campaigns", json=CREATE_BODY)).status_code == 403
        assert (await writer.get(f"/v1/campaigns/{CAMPAIGN_ID}")).status_code == 403
    assert vendors["acme.test"].created == 1


# --- what a tenant can reach: only its own connections, entries and idempotency records ------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [*READ_ROUTES[:3], *WRITE_ROUTES],
    ids=[f"{m} {p}" for m, p, _ in [*READ_ROUTES[:3], *WRITE_ROUTES]],
)
async def test_another_tenants_connection_name_is_an_unknown_connection(
    tmp_path: Path, method: str, path: str, body: dict[str, Any] | None
) -> None:
    vendors = two_vendors()
    async with gateway(acme_and_globex(tmp_path / "config.yaml"), vendors) as app, client(app, ACME_KEY) as acme:
        crossed = await acme.request(method, path, json=body, headers={"X-Connection": "globex-nexa"})
        made_up = await acme.request(method, path, json=body, headers={"X-Connection": "nosuch-nexa"})
        own = await acme.request(method, path, json=body, headers={"X-Connection": "acme-nexa"})
    crossed_error = error_of(crossed, 400, "unknown_connection")
    made_up_error = error_of(made_up, 400, "unknown_connection")
    # the other tenant's connection looks exactly like one that does not exist
    assert crossed_error["message"].replace("globex-nexa", "N") == made_up_error["message"].replace("nosuch-nexa", "N")
    assert set(crossed_error) == set(made_up_error) == {"code", "message", "request_id"}
    assert "x-cache" not in crossed.headers
    assert vendors["globex.test"].sent == []
    assert own.status_code not in (400, 401, 403), own.text
    assert {request.headers["Authorization"] for request in vendors["acme.test"].sent} <= {f"Bearer {ACME_SECRET}"}


async def test_the_connections_list_shows_only_the_tenants_own(tmp_path: Path) -> None:
    async with (
        gateway(acme_and_globex(tmp_path / "config.yaml"), two_vendors()) as app,
        client(app, ACME_KEY) as acme,
        client(app, GLOBEX_KEY) as globex,
    ):
        assert [c["name"] for c in (await acme.get("/v1/connections")).json()["data"]] == ["acme-nexa"]
        assert [c["name"] for c in (await globex.get("/v1/connections")).json()["data"]] == ["globex-nexa"]


async def test_a_tenant_cannot_read_another_tenants_cached_campaign(tmp_path: Path) -> None:
    """Same connection name, same vendor host: globex's probes of acme's cached reads all reach globex's account."""
    vendor = TenantVendor("Shared", ACME_SECRET, (CAMPAIGN_ID,))
    other_account = TenantVendor("GlobexAccount", GLOBEX_SECRET)

    def route(connection: Connection) -> TenantVendor:
        return vendor if ACME_SECRET in connection.auth_headers["Authorization"] else other_account

    path = write_tenants(
        tmp_path / "config.yaml",
        [
            tenant_entry(
                "acme", [key_entry("acme-primary", ACME_KEY)], [generic_connection("nexa", "v.test", ACME_SECRET)]
            ),
            tenant_entry(
                "globex",
                [key_entry("globex-primary", GLOBEX_KEY)],
                [generic_connection("nexa", "v.test", GLOBEX_SECRET)],
            ),
        ],
    )
    config, problems = load_config(path)
    assert config is not None, problems
    app = GatewayApp(config, route)
    try:
        async with client(app, ACME_KEY) as acme, client(app, GLOBEX_KEY) as globex:
            probes = [
                f"/v1/campaigns/{CAMPAIGN_ID}",
                "/v1/campaigns",
                f"/v1/campaigns/{CAMPAIGN_ID}/recipients",
                "/v1/campaigns?limit=5",
            ]
            for probe in probes:
                first = await acme.get(probe)
                assert (first.status_code, first.headers.get("x-cache")) == (200, "MISS"), (probe, first.text)
                again = await acme.get(probe)
                assert (again.status_code, again.headers.get("x-cache")) == (200, "HIT"), probe
            acme_calls = len(vendor.sent)

            for probe in probes:
                first = await globex.get(probe)
                assert first.headers.get("x-cache") in (None, "MISS"), (probe, first.headers)
                assert f"Shared {CAMPAIGN_ID}" not in first.text, (probe, first.text)
                named = await globex.get(probe, headers={"X-Connection": "nexa", "Cache-Control": "no-cache"})
                assert named.status_code == first.status_code, probe
                assert without_request_id(named) == without_request_id(first), probe
            # globex's own account has no such campaign, and its list is its own (empty)
            error_of(await globex.get(probes[0]), 404, "not_found")
            assert (await globex.get("/v1/campaigns")).json()["data"] == []
            # every globex probe went to globex's account, none to acme's
            assert len(vendor.sent) == acme_calls
            assert other_account.sent, "globex's reads must reach its own account"
            assert {r.headers["Authorization"] for r in other_account.sent} == {f"Bearer {GLOBEX_SECRET}"}

            # acme's entries are still there and still acme's
            kept = await acme.get(probes[0])
            assert (kept.headers.get("x-cache"), kept.json()["name"]) == ("HIT", f"Shared {CAMPAIGN_ID}")
    finally:
        await app.aclose()


async def test_identical_connections_of_two_tenants_still_keep_separate_entries(tmp_path: Path) -> None:
    """Even one vendor account configured twice (same name, URL and credential): no entry is shared."""
    vendor = TenantVendor("Shared", ACME_SECRET, (CAMPAIGN_ID,))
    same = generic_connection("nexa", "v.test", ACME_SECRET)
    path = write_tenants(
        tmp_path / "config.yaml",
        [
            tenant_entry("acme", [key_entry("acme-primary", ACME_KEY)], [same]),
            tenant_entry("globex", [key_entry("globex-primary", GLOBEX_KEY)], [same]),
        ],
    )
    async with (
        gateway(path, {"v.test": vendor}) as app,
        client(app, ACME_KEY) as acme,
        client(app, GLOBEX_KEY) as globex,
    ):
        assert (await acme.get(f"/v1/campaigns/{CAMPAIGN_ID}")).headers["x-cache"] == "MISS"
        assert (await acme.get(f"/v1/campaigns/{CAMPAIGN_ID}")).headers["x-cache"] == "HIT"
        assert len(vendor.sent) == 1
        probe = await globex.get(f"/v1/campaigns/{CAMPAIGN_ID}")
        assert (probe.status_code, probe.headers["x-cache"]) == (200, "MISS")
        assert len(vendor.sent) == 2, "globex's read must be fetched for globex, not served from acme's entry"
        # a write by globex drops globex's entry only
        assert (await globex.post(f"/v1/campaigns/{CAMPAIGN_ID}/pause")).status_code == 200
        assert (await acme.get(f"/v1/campaigns/{CAMPAIGN_ID}")).headers["x-cache"] == "HIT"
        assert (await globex.get(f"/v1/campaigns/{CAMPAIGN_ID}")).headers["x-cache"] == "MISS"


async def test_a_tenant_cannot_replay_another_tenants_idempotent_create(tmp_path: Path) -> None:
    vendors = two_vendors()
    async with (
        gateway(acme_and_globex(tmp_path / "config.yaml"), vendors) as app,
        client(app, ACME_KEY) as acme,
        client(app, GLOBEX_KEY) as globex,
    ):
        headers = {"Idempotency-Key": "order-42"}
        first = await acme.post("/v1/campaigns", json=CREATE_BODY, headers=headers)
        replay = await acme.post("/v1/campaigns", json=CREATE_BODY, headers=headers)
        other = await globex.post("/v1/campaigns", json=CREATE_BODY, headers=headers)
    assert first.status_code == replay.status_code == other.status_code == 201
    assert replay.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in other.headers
    assert (first.json()["id"], other.json()["id"]) == ("cmp_acme_new_1", "cmp_globex_new_1")
    assert other.json()["connection"] == "globex-nexa"
    assert (vendors["acme.test"].created, vendors["globex.test"].created) == (1, 1)


# --- rotation: two keys live, then the old one edited out ------------------------------------------


async def test_rotation_two_keys_live_then_the_old_one_removed_by_editing_the_config(tmp_path: Path) -> None:
    old_key, new_key = keys.new_key(), keys.new_key()
    path = tmp_path / "config.yaml"
    acme_and_globex(path, [key_entry("acme-2024", old_key)])
    vendors = two_vendors()
    async with gateway(path, vendors) as app, client(app, old_key) as old, client(app, new_key) as new:
        assert (await old.get(f"/v1/campaigns/{CAMPAIGN_ID}")).status_code == 200
        error_of(await new.get(f"/v1/campaigns/{CAMPAIGN_ID}"), 401, "unauthorized")

        # step 1: the new key is added next to the old one; both work, as the same tenant
        acme_and_globex(path, [key_entry("acme-2024", old_key), key_entry("acme-2025", new_key)])
        assert await app.watcher.reload() is True
        for probe in (old, new):
            answer = await probe.get(f"/v1/campaigns/{CAMPAIGN_ID}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["connection"] == "acme-nexa"
        assert authenticate(app.config, old_key)[0] is authenticate(app.config, new_key)[0]

        # step 2: the old key is edited out; it is now exactly an unknown key
        acme_and_globex(path, [key_entry("acme-2025", new_key)])
        assert await app.watcher.reload() is True
        retired = await old.get(f"/v1/campaigns/{CAMPAIGN_ID}", headers={"X-Request-ID": "r-1"})
        unknown = await old.get(
            f"/v1/campaigns/{CAMPAIGN_ID}", headers={"X-Request-ID": "r-1", "Authorization": f"Bearer {UNKNOWN_KEY}"}
        )
        error_of(retired, 401, "unauthorized")
        assert retired.content == unknown.content
        kept = await new.get(f"/v1/campaigns/{CAMPAIGN_ID}")
        assert kept.status_code == 200, kept.text
        assert kept.headers["x-cache"] == "HIT"  # the reload kept the tenant's cache
        error_of(await old.post("/v1/campaigns", json=CREATE_BODY), 401, "unauthorized")
        assert (await new.post("/v1/campaigns", json=CREATE_BODY)).status_code == 201


# --- gateway keys new ------------------------------------------------------------------------------


def _new_key_output(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, Any], str]:
    assert cli.main(["keys", "new", *argv]) == 0
    captured = capsys.readouterr()
    key = captured.out.splitlines()[0]
    entry = yaml.safe_load(captured.out[len(key) :])[0]
    return key, entry, captured.err


def test_keys_new_draws_32_random_bytes_for_each_key(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    """The key's body is exactly the bytes the OS's CSPRNG gave (secrets -> SystemRandom -> os.urandom)."""
    drawn: list[bytes] = []
    real_urandom = random._urandom  # type: ignore[attr-defined]

    def recording_urandom(size: int) -> bytes:
        data = real_urandom(size)
        drawn.append(data)
        return data

    monkeypatch.setattr(random, "_urandom", recording_urandom)
    key, _entry, _err = _new_key_output(["--tenant", "acme", "--id", "acme-ci"], capsys)
    monkeypatch.undo()
    assert key.startswith(KEY_PREFIX)
    suffix = key.removeprefix(KEY_PREFIX)
    random_bytes = base64.urlsafe_b64decode(suffix + "=" * (-len(suffix) % 4))
    assert len(random_bytes) * 8 >= 256
    assert random_bytes in drawn, "the key's body must be bytes drawn from the OS's CSPRNG, verbatim"
    many = {keys.new_key() for _ in range(200)}
    assert len(many) == 200
    assert len({k[len(KEY_PREFIX) : len(KEY_PREFIX) + 8] for k in many}) == 200


@pytest.mark.parametrize(
    ("duration", "delta"), [("90d", timedelta(days=90)), ("12h", timedelta(hours=12)), ("30m", timedelta(minutes=30))]
)
def test_keys_new_expires_in_sets_expires_at_and_the_key_stops_working_then(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], duration: str, delta: timedelta
) -> None:
    before = datetime.now(UTC)
    key, entry, err = _new_key_output(
        ["--tenant", "acme", "--id", "acme-temp", "--scope", "campaigns:read", "--expires-in", duration], capsys
    )
    after = datetime.now(UTC)
    assert set(entry) == {"id", "hash", "scopes", "expires_at"}
    assert key not in orjson.dumps(entry, default=str).decode() and key not in err
    expires_at = entry["expires_at"]
    expires_at = expires_at if isinstance(expires_at, datetime) else datetime.fromisoformat(expires_at)
    assert expires_at.utcoffset() == timedelta(0)
    assert before + delta - timedelta(seconds=1) <= expires_at <= after + delta

    # the printed entry, pasted into a config, is accepted and honoured
    config_path = acme_and_globex(tmp_path / "config.yaml", [entry])
    config, problems = load_config(config_path)
    assert config is not None, problems
    tenant, spec = authenticate(config, key)
    assert (tenant.id, spec.id, spec.scopes, spec.expires_at) == ("acme", "acme-temp", ["campaigns:read"], expires_at)
    authenticate(config, key, now=expires_at - timedelta(seconds=1))
    with pytest.raises(Unauthorized):
        authenticate(config, key, now=expires_at)


def test_keys_new_without_expires_in_sets_no_expiry(capsys: pytest.CaptureFixture[str]) -> None:
    _key, entry, _err = _new_key_output(["--tenant", "acme", "--id", "acme-forever"], capsys)
    assert "expires_at" not in entry


@pytest.mark.parametrize("duration", ["90", "d", "-1d", "1w", "1.5d", "90 d"])
def test_keys_new_refuses_a_duration_it_cannot_read(capsys: pytest.CaptureFixture[str], duration: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["keys", "new", "--tenant", "acme", "--expires-in", duration])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert "--expires-in" in captured.err
    assert KEY_PREFIX not in captured.out
