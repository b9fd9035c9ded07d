"""The response cache, in process: HIT / MISS / BYPASS, isolation, invalidation, single flight, bounds, TTL.

Each test runs a GatewayApp in process against a stateful fake of the generic (DialNexa-shaped)
REST API, which counts every upstream call. Most tests run twice: on the default bounded
in-process cache and on a real redis-server (the ``redis_server`` fixture). The maps come from a
copy of mappings/generic.yaml with a ``delete`` operation added, so that every write the issue
names can be exercised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest
import redis
import yaml

from gateway.app import GatewayApp
from gateway.cache import MemoryCache, Placement
from gateway.config import Connection, load_config
from gateway.keys import key_hash
from tests.conftest import MAPPINGS, TEST_KEY, RedisServer, write_config
from tests.fakes import Answer, FakeVendor, SentRequest, json_answer

CAMPAIGN_ID = "cmp_shared_77"  # not hex, so it cannot turn up inside a key's digest by chance
OTHER_ID = "cmp_other_88"
NO_CACHE = {"Cache-Control": "no-cache"}


# --- a stateful fake of the generic REST API ------------------------------------------------------


def vendor_campaign(campaign_id: str, name: str, status: str = "active") -> dict[str, Any]:
    return {
        "id": campaign_id,
        "name": name,
        "status": status,
        "agent_id": "agt_1",
        "from_phone_number": "+14155550100",
        "created_at": "2024-05-01T10:00:00Z",
    }


def vendor_error(status: int, message: str) -> Answer:
    return json_answer(status, {"error": {"type": "error", "message": message}})


class CampaignVendor(FakeVendor):
    """The generic map's REST paths, kept in memory; ``calls(op)`` counts what reached it.

    An answer is computed when the request arrives (a snapshot of the state at that moment), then
    held back by ``delay`` seconds and, for GETs, until ``gate`` is set, when one is given.
    ``failures[op]`` is a list of HTTP statuses the next calls of ``op`` answer with instead.
    """

    def __init__(self, label: str, campaign_ids: tuple[str, ...] = (CAMPAIGN_ID, OTHER_ID)) -> None:
        super().__init__(self.answer)
        self.label = label
        self.delay = 0.0
        self.gate: asyncio.Event | None = None
        self.failures: dict[str, list[int]] = {}
        self.created = 0
        self.campaigns = {cid: vendor_campaign(cid, f"{label} {cid}") for cid in campaign_ids}
        self.leads: dict[str, list[dict[str, Any]]] = {
            cid: [{"id": f"lead_{cid}_1", "phone_number": "+14155550111", "name": f"{label} lead", "status": "pending"}]
            for cid in campaign_ids
        }

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        request = SentRequest(method, url, dict(headers), body)
        self.sent.append(request)
        answer = self.answer(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.gate is not None and method == "GET":
            await asyncio.wait_for(self.gate.wait(), 10)
        return answer

    def calls(self, operation: str) -> int:
        return sum(1 for request in self.sent if operation_of(request) == operation)

    def answer(self, request: SentRequest) -> Answer:
        operation = operation_of(request)
        scripted = self.failures.get(operation)
        if scripted:
            return vendor_error(scripted.pop(0), "scripted failure")
        parts = urlsplit(request.url)
        segments = [unquote(s) for s in parts.path.split("/")[2:]]  # drop "" and "v1"
        query = dict(parse_qsl(parts.query))
        campaign_id = segments[1] if len(segments) > 1 and segments[0] == "campaigns" else None
        if campaign_id is not None and campaign_id not in self.campaigns:
            return vendor_error(404, "no such campaign")
        if operation == "list":
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 20))
            items = list(self.campaigns.values())
            return json_answer(200, {"data": items[offset : offset + limit], "total": len(items)})
        if operation == "get":
            return json_answer(200, self.campaigns[campaign_id])
        if operation == "recipients_list":
            leads = self.leads[campaign_id]
            return json_answer(200, {"data": leads, "total": len(leads)})
        if operation == "create":
            self.created += 1
            new_id = f"cmp_new_{self.created}"
            self.campaigns[new_id] = vendor_campaign(new_id, request.json()["name"], status="draft")  # type: ignore[index]
            self.leads[new_id] = []
            return json_answer(201, self.campaigns[new_id])
        if operation in ("status", "update"):
            self.campaigns[campaign_id].update(request.json())  # type: ignore[arg-type]
            return json_answer(200, self.campaigns[campaign_id])
        if operation == "delete":
            del self.campaigns[campaign_id]
            return 204, {}, b""
        if operation == "recipients_add":
            lead = request.json()
            assert isinstance(lead, dict)
            target = lead["campaignId"]
            if target not in self.campaigns:
                return vendor_error(404, "no such campaign")
            number = lead["countryCode"] + lead["phoneNumber"]
            self.leads[target].append(
                {"id": f"lead_{target}_{len(self.leads[target]) + 1}", "phone_number": number, "status": "pending"}
            )
            return json_answer(201, {"id": f"lead_{target}_{len(self.leads[target])}"})
        return vendor_error(405, "unexpected request")


def operation_of(request: SentRequest) -> str:
    segments = urlsplit(request.url).path.split("/")[2:]
    if request.method == "GET":
        return {1: "list", 2: "get", 3: "recipients_list"}[len(segments)]
    if request.method == "POST":
        return "create" if segments == ["campaigns"] else "recipients_add"
    if request.method == "PATCH":
        return "status" if "status" in request.json() else "update"  # type: ignore[operator]
    return request.method.lower()


# --- gateways over that fake ----------------------------------------------------------------------


@pytest.fixture
def maps_dir(tmp_path: Path) -> Path:
    """mappings/generic.yaml plus a delete operation (the shipped map documents none)."""
    directory = tmp_path / "maps"
    directory.mkdir()
    text = (MAPPINGS / "generic.yaml").read_text().rstrip("\n")
    text += '\n\n  delete:\n    request: {method: DELETE, path: "/campaigns/{id}"}\n'
    (directory / "generic.yaml").write_text(text)
    return directory


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """cache.backend: the in-process default, or a real redis-server's URL."""
    if request.param == "memory":
        return "memory"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


def connection(name: str, host: str, api_key: str = "vendor-secret-key") -> dict[str, Any]:
    return {
        "name": name,
        "vendor": "generic",
        "base_url": f"https://{host}/v1",
        "credentials": {"api_key": api_key},
        # One attempt: these tests count upstream calls, and retries (tested elsewhere) would add some.
        "retries": {"attempts": 1},
    }


def by_host(vendors: dict[str, CampaignVendor]) -> Callable[[Connection], CampaignVendor]:
    """A transport factory: each connection reaches the fake named by its base_url's host."""
    return lambda conn: vendors[urlsplit(conn.base_url).hostname or ""]


def one_tenant_config(directory: Path, maps: Path, **cache: Any) -> Path:
    """Tenant t1 (key TEST_KEY) with connections nexa (default, host nexa.test) and other (other.test)."""
    connections = [connection("nexa", "nexa.test"), connection("other", "other.test")]
    return write_config(directory, connections, mappings_dir=maps, cache=cache)


@asynccontextmanager
async def gateway(
    config_path: Path, vendors: dict[str, CampaignVendor], key: str = TEST_KEY
) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayApp]]:
    config, problems = load_config(config_path)
    assert config is not None, problems
    app = GatewayApp(config, by_host(vendors))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"Authorization": f"Bearer {key}"},
            timeout=20,
        ) as client:
            yield client, app
    finally:
        await app.aclose()


def two_vendors() -> dict[str, CampaignVendor]:
    return {"nexa.test": CampaignVendor("nexa"), "other.test": CampaignVendor("other")}


async def read(client: httpx.AsyncClient, path: str, expect: str, **kwargs: Any) -> httpx.Response:
    """GET ``path``; it must answer 200 with ``X-Cache: expect`` (and Age exactly when a HIT)."""
    response = await client.get(path, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.text)
    assert response.headers.get("x-cache") == expect, (path, dict(response.headers))
    if expect == "HIT":
        assert response.headers["age"].isdigit(), response.headers
    else:
        assert "age" not in response.headers, (path, dict(response.headers))
    return response


CAMPAIGN_PATH = f"/v1/campaigns/{CAMPAIGN_ID}"
RECIPIENTS_PATH = f"/v1/campaigns/{CAMPAIGN_ID}/recipients"
OTHER_PATH = f"/v1/campaigns/{OTHER_ID}"
READS = {"get": CAMPAIGN_PATH, "list": "/v1/campaigns", "recipients_list": RECIPIENTS_PATH}


# --- HIT, MISS, BYPASS ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation", list(READS))
async def test_miss_then_hit_then_bypass(tmp_path: Path, maps_dir: Path, backend: str, operation: str) -> None:
    vendors = two_vendors()
    nexa, path = vendors["nexa.test"], READS[operation]
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        first = await read(client, path, "MISS")
        assert nexa.calls(operation) == 1
        second = await read(client, path, "HIT")
        assert second.json() == first.json()
        assert second.content == first.content
        assert nexa.calls(operation) == 1, "a HIT must not reach the vendor"

        nexa.campaigns[CAMPAIGN_ID]["name"] = "changed behind the gateway's back"
        nexa.leads[CAMPAIGN_ID].append({"id": "lead_x", "phone_number": "+14155550199", "status": "queued"})
        stale = await read(client, path, "HIT")
        assert stale.json() == first.json()

        bypassed = await read(client, path, "BYPASS", headers=NO_CACHE)
        assert nexa.calls(operation) == 2
        assert bypassed.json() != first.json(), "no-cache must skip the cached answer"
        # the fresh answer fetched by a no-cache read is what the cache then holds
        after = await read(client, path, "HIT")
        assert after.json() == bypassed.json()
        assert nexa.calls(operation) == 2
        # the directive is matched case-insensitively, among others
        await read(client, path, "BYPASS", headers={"Cache-Control": "max-age=0, No-Cache"})
        assert nexa.calls(operation) == 3


async def test_age_counts_seconds_since_the_answer_was_stored(
    tmp_path: Path, maps_dir: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendors = two_vendors()
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        await read(client, CAMPAIGN_PATH, "MISS")
        assert (await read(client, CAMPAIGN_PATH, "HIT")).headers["age"] in ("0", "1")
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 7)
        assert (await read(client, CAMPAIGN_PATH, "HIT")).headers["age"] in ("7", "8")
    assert vendors["nexa.test"].calls("get") == 1


async def test_query_variants_are_separate_entries_and_order_does_not_matter(
    tmp_path: Path, maps_dir: Path, backend: str
) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        page_one = await read(client, "/v1/campaigns?limit=1", "MISS")
        assert [c["id"] for c in page_one.json()["data"]] == [CAMPAIGN_ID]
        page_two = await read(client, "/v1/campaigns?limit=1&cursor=1", "MISS")
        assert [c["id"] for c in page_two.json()["data"]] == [OTHER_ID]
        assert (await read(client, "/v1/campaigns?cursor=1&limit=1", "HIT")).json() == page_two.json()
        whole = await read(client, "/v1/campaigns", "MISS")
        assert len(whole.json()["data"]) == 2
        plain = await read(client, CAMPAIGN_PATH, "MISS")
        assert "vendor_data" not in plain.json()
        detailed = await read(client, CAMPAIGN_PATH + "?include=vendor_data", "MISS")
        assert "vendor_data" in detailed.json()
        assert (await read(client, CAMPAIGN_PATH, "HIT")).json() == plain.json()
        assert nexa.calls("list") == 3 and nexa.calls("get") == 2


async def test_the_connection_header_selects_its_own_entries(tmp_path: Path, maps_dir: Path, backend: str) -> None:
    vendors = two_vendors()
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        nexa = await read(client, CAMPAIGN_PATH, "MISS")
        other = await read(client, CAMPAIGN_PATH, "MISS", headers={"X-Connection": "other"})
        assert (nexa.json()["name"], nexa.json()["connection"]) == (f"nexa {CAMPAIGN_ID}", "nexa")
        assert (other.json()["name"], other.json()["connection"]) == (f"other {CAMPAIGN_ID}", "other")
        assert (await read(client, CAMPAIGN_PATH, "HIT", headers={"X-Connection": "nexa"})).json() == nexa.json()
        assert (await read(client, CAMPAIGN_PATH, "HIT", headers={"X-Connection": "other"})).json() == other.json()
    assert vendors["nexa.test"].calls("get") == vendors["other.test"].calls("get") == 1


async def test_a_zero_ttl_for_one_operation_bypasses_only_that_one(
    tmp_path: Path, maps_dir: Path, backend: str
) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    config = one_tenant_config(tmp_path, maps_dir, backend=backend, ttl_by_operation={"list": 0})
    async with gateway(config, vendors) as (client, _app):
        for expected_calls in (1, 2, 3):
            await read(client, "/v1/campaigns", "BYPASS")
            assert nexa.calls("list") == expected_calls
        await read(client, CAMPAIGN_PATH, "MISS")
        await read(client, CAMPAIGN_PATH, "HIT")
        await read(client, RECIPIENTS_PATH, "MISS")
        await read(client, RECIPIENTS_PATH, "HIT")
    assert nexa.calls("get") == nexa.calls("recipients_list") == 1


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 429, 500, 503])
async def test_errors_are_not_cached(tmp_path: Path, maps_dir: Path, backend: str, status: int) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        for operation, path in READS.items():
            nexa.failures[operation] = [status, status]
            for attempt in (1, 2):
                failed = await client.get(path)
                assert failed.status_code == (502 if status == 500 else status), failed.text
                assert failed.json()["error"]["upstream_status"] == status
                assert nexa.calls(operation) == attempt, "an error answer must not be served from the cache"
            fine = await read(client, path, "MISS")
            assert nexa.calls(operation) == 3
            assert (await read(client, path, "HIT")).json() == fine.json()


async def test_a_campaign_that_appears_later_is_not_a_cached_404(tmp_path: Path, maps_dir: Path, backend: str) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        missing = await client.get("/v1/campaigns/cmp_later")
        assert missing.status_code == 404
        nexa.campaigns["cmp_later"] = vendor_campaign("cmp_later", "later")
        nexa.leads["cmp_later"] = []
        found = await read(client, "/v1/campaigns/cmp_later", "MISS")
        assert found.json()["name"] == "later"


# --- tenant isolation -----------------------------------------------------------------------------

ACME_KEY = "cgw_acme_key_0000000000000000000000000000000"
GLOBEX_KEY = "cgw_globex_key_00000000000000000000000000000"
ACME_SECRET = "acme-vendor-credential-s3cr3t"
GLOBEX_SECRET = "globex-vendor-credential-s3cr3t"


def two_tenant_config(directory: Path, maps: Path, backend: str, same_connection_name: bool) -> Path:
    """Tenants acme and globex, each with its own key and one connection, to hosts acme.test / globex.test."""
    names = ("nexa", "nexa") if same_connection_name else ("acme-nexa", "globex-nexa")
    document = {
        "mappings_dir": str(maps),
        "cache": {"backend": backend},
        "tenants": [
            {
                "id": tenant,
                "keys": [{"id": f"{tenant}-key", "hash": key_hash(key)}],
                "default_connection": name,
                "connections": [connection(name, f"{tenant}.test", secret)],
            }
            for tenant, key, name, secret in (
                ("acme", ACME_KEY, names[0], ACME_SECRET),
                ("globex", GLOBEX_KEY, names[1], GLOBEX_SECRET),
            )
        ],
    }
    path = directory / "two-tenants.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize("same_connection_name", [False, True], ids=["own-connection-names", "same-connection-name"])
async def test_tenants_never_see_each_others_entries(
    tmp_path: Path, maps_dir: Path, backend: str, same_connection_name: bool
) -> None:
    vendors = {"acme.test": CampaignVendor("Acme"), "globex.test": CampaignVendor("Globex")}
    config = two_tenant_config(tmp_path, maps_dir, backend, same_connection_name)
    config_obj, problems = load_config(config)
    assert config_obj is not None, problems
    app = GatewayApp(config_obj, by_host(vendors))
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://gw", headers={"X-API-Key": ACME_KEY}) as acme,
            httpx.AsyncClient(transport=transport, base_url="http://gw", headers={"X-API-Key": GLOBEX_KEY}) as globex,
        ):
            for round_, expect in enumerate(("MISS", "HIT", "HIT")):
                for client, label in ((acme, "Acme"), (globex, "Globex")):
                    campaign = await read(client, CAMPAIGN_PATH, expect)
                    assert campaign.json()["name"] == f"{label} {CAMPAIGN_ID}", (round_, label)
                    page = await read(client, "/v1/campaigns", expect)
                    assert {c["name"] for c in page.json()["data"]} == {
                        f"{label} {CAMPAIGN_ID}",
                        f"{label} {OTHER_ID}",
                    }
                    recipients = await read(client, RECIPIENTS_PATH, expect)
                    assert [r["name"] for r in recipients.json()["data"]] == [f"{label} lead"]
            for vendor in vendors.values():
                assert (vendor.calls("get"), vendor.calls("list"), vendor.calls("recipients_list")) == (1, 1, 1)
                assert {request.headers["Authorization"] for request in vendor.sent} == {
                    f"Bearer {ACME_SECRET if vendor.label == 'Acme' else GLOBEX_SECRET}"
                }

            # a write by one tenant drops only that tenant's entries
            paused = await acme.post(f"{CAMPAIGN_PATH}/pause")
            assert paused.status_code == 200, paused.text
            assert (await read(acme, CAMPAIGN_PATH, "MISS")).json()["status"] == "paused"
            assert (await read(acme, "/v1/campaigns", "MISS")).json()["data"][0]["status"] == "paused"
            assert (await read(globex, CAMPAIGN_PATH, "HIT")).json()["status"] == "active"
            assert (await read(globex, "/v1/campaigns", "HIT")).json()["data"][0]["status"] == "active"
            # a key of one tenant cannot name the other tenant's connection to reach its entries
            if not same_connection_name:
                crossed = await acme.get(CAMPAIGN_PATH, headers={"X-Connection": "globex-nexa"})
                assert crossed.status_code == 400, crossed.text
                assert "x-cache" not in crossed.headers
            unauthenticated = await acme.get(CAMPAIGN_PATH, headers={"X-API-Key": "cgw_not_a_key"})
            assert unauthenticated.status_code == 401
            assert "x-cache" not in unauthenticated.headers
    finally:
        await app.aclose()

    if backend.startswith("redis://"):
        forbidden = [
            "acme",
            "globex",
            "nexa",
            CAMPAIGN_ID,
            OTHER_ID,
            ACME_SECRET,
            GLOBEX_SECRET,
            ACME_KEY,
            GLOBEX_KEY,
            key_hash(ACME_KEY).removeprefix("sha256:"),
            key_hash(GLOBEX_KEY).removeprefix("sha256:"),
        ]
        client = redis.Redis.from_url(backend)
        try:
            names = [name.decode() for name in client.scan_iter(count=1000)]
            members = [m.decode() for name in names if client.type(name) == b"set" for m in client.smembers(name)]
        finally:
            client.close()
        entries = [name for name in names if name.startswith("cgw:v1:e:")]
        assert len(entries) >= 5, names  # both tenants' reads were stored (acme's paused ones too)
        for name in names + members:
            lowered = name.lower()
            for word in forbidden:
                assert word.lower() not in lowered, (word, name)


# --- invalidation by writes -----------------------------------------------------------------------

NEW_CAMPAIGN = {"name": "Fresh", "agent_id": "agt_1", "from_number": "+14155550100"}
WRITES: dict[str, tuple[str, str, dict[str, Any] | None, int]] = {
    "update": ("PATCH", CAMPAIGN_PATH, {"name": "Renamed"}, 200),
    "pause": ("POST", f"{CAMPAIGN_PATH}/pause", None, 200),
    "resume": ("POST", f"{CAMPAIGN_PATH}/resume", None, 200),
    "cancel": ("POST", f"{CAMPAIGN_PATH}/cancel", None, 200),
    "delete": ("DELETE", CAMPAIGN_PATH, None, 204),
    "recipients_add": ("POST", RECIPIENTS_PATH, {"recipients": [{"phone_number": "+14155550122"}]}, 200),
    "create": ("POST", "/v1/campaigns", NEW_CAMPAIGN, 201),
}


async def prime(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    """Read everything once (MISS) and again (HIT): the nexa connection's get, list, recipients
    of CAMPAIGN_ID, get of OTHER_ID, and the list of the tenant's other connection."""
    reads = {
        "get": (CAMPAIGN_PATH, {}),
        "list": ("/v1/campaigns", {}),
        "list-page": ("/v1/campaigns?limit=1&cursor=1", {}),
        "recipients_list": (RECIPIENTS_PATH, {}),
        "other-get": (OTHER_PATH, {}),
        "other-recipients": (f"{OTHER_PATH}/recipients", {}),
        "other-connection-list": ("/v1/campaigns", {"headers": {"X-Connection": "other"}}),
    }
    answers = {}
    for name, (path, kwargs) in reads.items():
        answers[name] = await read(client, path, "MISS", **kwargs)
    for name, (path, kwargs) in reads.items():
        assert (await read(client, path, "HIT", **kwargs)).json() == answers[name].json()
    return answers


@pytest.mark.parametrize("write", list(WRITES))
async def test_each_write_drops_its_campaign_and_the_list_pages_before_answering(
    tmp_path: Path, maps_dir: Path, backend: str, write: str
) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    if write == "resume":
        nexa.campaigns[CAMPAIGN_ID]["status"] = "paused"
    method, path, body, status = WRITES[write]
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        before = await prime(client)
        calls = {op: nexa.calls(op) for op in READS}

        written = await client.request(method, path, json=body)
        assert written.status_code == status, written.text

        # the connection's list pages are always fresh after a write
        listed = await read(client, "/v1/campaigns", "MISS")
        await read(client, "/v1/campaigns?limit=1&cursor=1", "MISS")
        assert nexa.calls("list") == calls["list"] + 2
        if write == "create":
            assert written.json()["id"] in {c["id"] for c in listed.json()["data"]}
            # a create names no campaign: every campaign's entries stay
            await read(client, CAMPAIGN_PATH, "HIT")
            await read(client, RECIPIENTS_PATH, "HIT")
        elif write == "delete":
            assert CAMPAIGN_ID not in {c["id"] for c in listed.json()["data"]}
            gone = await client.get(CAMPAIGN_PATH)
            assert gone.status_code == 404, gone.text
            assert nexa.calls("get") == calls["get"] + 1
        else:
            fresh = await read(client, CAMPAIGN_PATH, "MISS")
            recipients = await read(client, RECIPIENTS_PATH, "MISS")
            assert nexa.calls("get") == calls["get"] + 1
            assert nexa.calls("recipients_list") == calls["recipients_list"] + 1
            expected = {
                "update": ("name", "Renamed"),
                "pause": ("status", "paused"),
                "resume": ("status", "active"),
                "cancel": ("status", "cancelled"),
                "recipients_add": ("name", before["get"].json()["name"]),
            }[write]
            assert fresh.json()[expected[0]] == expected[1]
            listed_one = next(c for c in listed.json()["data"] if c["id"] == CAMPAIGN_ID)
            assert listed_one[expected[0]] == expected[1]
            added = len(recipients.json()["data"]) - len(before["recipients_list"].json()["data"])
            assert added == (1 if write == "recipients_add" else 0)
        # another campaign's entries, and the tenant's other connection, are untouched
        assert (await read(client, OTHER_PATH, "HIT")).json() == before["other-get"].json()
        await read(client, f"{OTHER_PATH}/recipients", "HIT")
        await read(client, "/v1/campaigns", "HIT", headers={"X-Connection": "other"})


async def test_a_write_the_vendor_refuses_changes_nothing_cached(tmp_path: Path, maps_dir: Path, backend: str) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        await prime(client)
        nexa.failures["status"] = [409]
        refused = await client.post(f"{CAMPAIGN_PATH}/pause")
        assert refused.status_code == 409, refused.text
        assert (await read(client, CAMPAIGN_PATH, "HIT")).json()["status"] == "active"


async def test_a_replayed_idempotent_create_still_leaves_fresh_lists(
    tmp_path: Path, maps_dir: Path, backend: str
) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        await prime(client)
        created = await client.post("/v1/campaigns", json=NEW_CAMPAIGN, headers={"Idempotency-Key": "k1"})
        assert created.status_code == 201
        listed = await read(client, "/v1/campaigns", "MISS")
        assert created.json()["id"] in {c["id"] for c in listed.json()["data"]}
        replayed = await client.post("/v1/campaigns", json=NEW_CAMPAIGN, headers={"Idempotency-Key": "k1"})
        assert replayed.headers.get("idempotent-replayed") == "true"
        assert nexa.calls("create") == 1
        assert (await read(client, "/v1/campaigns", "HIT")).json() == listed.json()


# --- single flight --------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", list(READS))
async def test_fifty_concurrent_misses_make_one_upstream_call(
    tmp_path: Path, maps_dir: Path, backend: str, operation: str
) -> None:
    vendors = two_vendors()
    nexa, path = vendors["nexa.test"], READS[operation]
    nexa.delay = 0.5  # long enough for all 50 to arrive while the first is upstream
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        answers = await asyncio.wait_for(asyncio.gather(*(client.get(path) for _ in range(50))), 30)
        assert [a.status_code for a in answers] == [200] * 50
        assert {a.headers["x-cache"] for a in answers} == {"MISS"}
        assert len({a.content for a in answers}) == 1
        assert nexa.calls(operation) == 1, "50 concurrent misses must make exactly one upstream call"
        assert len(nexa.sent) == 1
        nexa.delay = 0
        await read(client, path, "HIT")
        assert nexa.calls(operation) == 1


async def test_concurrent_misses_of_different_keys_do_not_share_a_flight(
    tmp_path: Path, maps_dir: Path, backend: str
) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    nexa.delay = 0.3
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        paths = [CAMPAIGN_PATH, OTHER_PATH] * 10
        answers = await asyncio.wait_for(asyncio.gather(*(client.get(p) for p in paths)), 30)
        for path, answer in zip(paths, answers, strict=True):
            assert answer.status_code == 200
            assert answer.json()["id"] == path.rsplit("/", 1)[1]
        assert nexa.calls("get") == 2


async def test_fifty_concurrent_misses_share_one_error_and_it_is_not_cached(
    tmp_path: Path, maps_dir: Path, backend: str
) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    nexa.delay = 0.5
    nexa.failures["get"] = [503]
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        answers = await asyncio.wait_for(asyncio.gather(*(client.get(CAMPAIGN_PATH) for _ in range(50))), 30)
        assert [a.status_code for a in answers] == [503] * 50
        assert {a.json()["error"]["code"] for a in answers} == {"upstream_unavailable"}
        assert nexa.calls("get") == 1
        nexa.delay = 0
        await read(client, CAMPAIGN_PATH, "MISS")
        assert nexa.calls("get") == 2


# --- bounds and expiry ----------------------------------------------------------------------------


async def test_the_memory_cache_is_bounded_and_evicts_the_least_recently_used(tmp_path: Path, maps_dir: Path) -> None:
    ids = [f"cmp_bounded_{n}" for n in range(6)]
    vendors = {"nexa.test": CampaignVendor("nexa", tuple(ids)), "other.test": CampaignVendor("other")}
    nexa = vendors["nexa.test"]
    config = one_tenant_config(tmp_path, maps_dir, max_entries=3)
    async with gateway(config, vendors) as (client, _app):
        for campaign_id in ids[:3]:
            await read(client, f"/v1/campaigns/{campaign_id}", "MISS")
        await read(client, f"/v1/campaigns/{ids[0]}", "HIT")  # now the most recently used
        await read(client, f"/v1/campaigns/{ids[3]}", "MISS")  # evicts ids[1], the least recently used
        await read(client, f"/v1/campaigns/{ids[0]}", "HIT")
        await read(client, f"/v1/campaigns/{ids[2]}", "HIT")
        await read(client, f"/v1/campaigns/{ids[3]}", "HIT")
        await read(client, f"/v1/campaigns/{ids[1]}", "MISS")
        for campaign_id in ids:
            await client.get(f"/v1/campaigns/{campaign_id}")
        status = (await client.get("/readyz")).json()["cache"]
        assert status["backend"] == "memory"
        assert status["entries"] == 3
        assert status["evictions"] >= 2
        assert nexa.calls("get") > 6


async def test_a_thousand_reads_stay_within_max_entries(tmp_path: Path, maps_dir: Path) -> None:
    vendors = two_vendors()
    config = one_tenant_config(tmp_path, maps_dir, max_entries=50)
    async with gateway(config, vendors) as (client, app):
        for n in range(1000):
            assert (await client.get(f"/v1/campaigns?limit=1&cursor={n % 500}&n={n}")).status_code == 200
        status = app.runtime.cache.status()
        assert status["entries"] == 50
        assert status["evictions"] == 950


@pytest.mark.parametrize("override", [False, True], ids=["ttl_seconds", "ttl_by_operation"])
async def test_entries_expire_after_their_ttl(tmp_path: Path, maps_dir: Path, backend: str, override: bool) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    cache: dict[str, Any] = {"backend": backend, "ttl_seconds": 0.6}
    if override:
        cache = {"backend": backend, "ttl_seconds": 300, "ttl_by_operation": {"get": 0.6}}
    async with gateway(one_tenant_config(tmp_path, maps_dir, **cache), vendors) as (client, _app):
        await read(client, CAMPAIGN_PATH, "MISS")
        await read(client, "/v1/campaigns", "MISS")
        await read(client, CAMPAIGN_PATH, "HIT")
        await read(client, "/v1/campaigns", "HIT")
        await asyncio.sleep(1.0)
        await read(client, CAMPAIGN_PATH, "MISS")
        await read(client, "/v1/campaigns", "HIT" if override else "MISS")
        await read(client, CAMPAIGN_PATH, "HIT")
    assert nexa.calls("get") == 2
    assert nexa.calls("list") == (1 if override else 2)


async def test_redis_entries_carry_the_ttl(tmp_path: Path, maps_dir: Path, redis_server: RedisServer) -> None:
    vendors = two_vendors()
    config = one_tenant_config(tmp_path, maps_dir, backend=redis_server.url, ttl_seconds=40)
    async with gateway(config, vendors) as (client, _app):
        await read(client, CAMPAIGN_PATH, "MISS")
    client = redis.Redis.from_url(redis_server.url)
    try:
        entries = [name for name in client.scan_iter("cgw:v1:e:*")]
        assert len(entries) == 1
        assert 35_000 < client.pttl(entries[0]) <= 40_000
        groups = [name for name in client.scan_iter("cgw:v1:g:*")]
        assert len(groups) == 1 and client.smembers(groups[0]) == set(entries)
        assert 0 < client.pttl(groups[0]) <= 40_000
    finally:
        client.close()


# --- Redis: shared between instances, and unreachable ---------------------------------------------


async def test_two_gateways_on_one_redis_share_entries_and_invalidations(
    tmp_path: Path, maps_dir: Path, redis_server: RedisServer
) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    config = one_tenant_config(tmp_path, maps_dir, backend=redis_server.url)
    async with gateway(config, vendors) as (a, _app_a), gateway(config, vendors) as (b, _app_b):
        for path in READS.values():
            first = await read(a, path, "MISS")
            assert (await read(b, path, "HIT")).json() == first.json()
        assert (nexa.calls("get"), nexa.calls("list"), nexa.calls("recipients_list")) == (1, 1, 1)
        paused = await b.post(f"{CAMPAIGN_PATH}/pause")
        assert paused.status_code == 200
        assert (await read(a, CAMPAIGN_PATH, "MISS")).json()["status"] == "paused"
        assert (await read(a, "/v1/campaigns", "MISS")).json()["data"][0]["status"] == "paused"
        await read(a, RECIPIENTS_PATH, "MISS")
        await read(b, CAMPAIGN_PATH, "HIT")


async def test_when_redis_goes_away_the_gateway_answers_uncached_and_says_so(
    tmp_path: Path, maps_dir: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    config = one_tenant_config(tmp_path, maps_dir, backend=redis_server.url)
    caplog.set_level(logging.WARNING, logger="gateway.cache")
    async with gateway(config, vendors) as (client, _app):
        await read(client, CAMPAIGN_PATH, "MISS")
        await read(client, CAMPAIGN_PATH, "HIT")
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["cache"]["ok"] is True

        redis_server.stop()
        started = time.monotonic()
        for n in range(5):
            got = await read(client, CAMPAIGN_PATH, "MISS")
            assert got.json()["id"] == CAMPAIGN_ID
            assert nexa.calls("get") == 2 + n
            await read(client, "/v1/campaigns", "MISS")
        paused = await client.post(f"{CAMPAIGN_PATH}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        assert (await read(client, CAMPAIGN_PATH, "MISS")).json()["status"] == "paused"
        assert time.monotonic() - started < 10, "an unreachable Redis must not stall every request"
        degraded = await client.get("/readyz")
        assert degraded.status_code == 503
        assert degraded.json()["cache"]["ok"] is False
        assert degraded.json()["cache"]["backend"] == "redis"
        assert degraded.json()["status"] == "degraded"
        outages = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(outages) == 1, [r.getMessage() for r in caplog.records]
        assert redis_server.url not in caplog.text  # not even the address leaks into the warning

        redis_server.start()
        deadline = time.monotonic() + 10
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "/readyz did not recover within 10 s"
            await asyncio.sleep(0.1)
        assert (await read(client, CAMPAIGN_PATH, "MISS")).json()["status"] == "paused"
        assert (await read(client, CAMPAIGN_PATH, "HIT")).json()["status"] == "paused"
        assert (await client.get("/readyz")).json()["cache"] == {
            "backend": "redis",
            "ok": True,
            "pending_invalidations": 0,
        }
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_invalidations_queued_during_an_outage_are_all_sent_by_the_next_read(
    tmp_path: Path, maps_dir: Path, redis_server: RedisServer
) -> None:
    """Three writes to one campaign while Redis is down queue the same two groups three times.

    The next cached read sends them (one round trip) and the queue is empty; the read after it is
    a HIT. Today ``_flush_pending`` removes only as many queued names as there are *distinct*
    ones, so the queue drains two names per read, and every such read drops the entry the
    previous read just stored (for every instance sharing the Redis).
    """
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    config = one_tenant_config(tmp_path, maps_dir, backend=redis_server.url)
    async with gateway(config, vendors) as (client, _app):
        await read(client, CAMPAIGN_PATH, "MISS")
        redis_server.stop()
        for action in ("pause", "resume", "pause"):
            assert (await client.post(f"{CAMPAIGN_PATH}/{action}")).status_code == 200
        assert (await client.get("/readyz")).json()["cache"]["pending_invalidations"] == 6
        redis_server.start()
        assert (await read(client, CAMPAIGN_PATH, "MISS")).json()["status"] == "paused"
        status = (await client.get("/readyz")).json()["cache"]
        assert status["ok"] is True
        assert status["pending_invalidations"] == 0, status
        await read(client, CAMPAIGN_PATH, "HIT")
    assert nexa.calls("get") == 2


class RedisProxy:
    """A TCP relay in front of Redis that can be cut (connections dropped, port refusing) and restored."""

    def __init__(self, target_port: int, port: int) -> None:
        self.target_port, self.port = target_port, port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {client_writer, redis_writer}

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pump(client_reader, redis_writer), pump(redis_reader, client_writer))
        self._writers -= {client_writer, redis_writer}


async def test_an_invalidation_missed_during_an_outage_reaches_other_instances_once_redis_is_back(
    tmp_path: Path, maps_dir: Path, redis_server: RedisServer
) -> None:
    """B loses Redis (A keeps it), pauses a campaign A has cached, then gets Redis back.

    Once B reports ready again, the pause B answered must not be hidden from A by the entry it
    should have dropped: B still holds the invalidation it could not send.
    """
    from tests.conftest import free_port

    vendors = two_vendors()
    proxy = RedisProxy(redis_server.port, free_port())
    await proxy.start()
    direct = one_tenant_config(tmp_path, maps_dir, backend=redis_server.url)
    (tmp_path / "b").mkdir()
    via_proxy = one_tenant_config(tmp_path / "b", maps_dir, backend=proxy.url)
    try:
        async with gateway(direct, vendors) as (a, _app_a), gateway(via_proxy, vendors) as (b, _app_b):
            assert (await read(a, CAMPAIGN_PATH, "MISS")).json()["status"] == "active"
            await read(b, CAMPAIGN_PATH, "HIT")
            await proxy.cut()
            assert (await b.post(f"{CAMPAIGN_PATH}/pause")).status_code == 200
            assert (await b.get("/readyz")).status_code == 503
            await proxy.start()
            deadline = time.monotonic() + 10
            while (await b.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "B's /readyz did not recover within 10 s"
                await asyncio.sleep(0.1)
            after = await a.get(CAMPAIGN_PATH)
            assert after.json()["status"] == "paused", (
                "B is ready again but A still serves the entry B's pause should have dropped",
                dict(after.headers),
                (await b.get("/readyz")).json(),
            )
    finally:
        if proxy._server is not None:
            await proxy.cut()


# --- bugs: reads that must not share an entry, and writes racing reads ----------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/v1/campaigns?a=1&limit=1", "/v1/campaigns?a=1%26limit%3D1"),
        (f"{CAMPAIGN_PATH}?a=b%1Fx=", f"{CAMPAIGN_PATH}%1Fa=b?x="),
    ],
    ids=["query-value-holding-&-and-=", "campaign-id-holding-the-key-separator"],
)
async def test_different_reads_never_share_an_entry(
    tmp_path: Path, maps_dir: Path, backend: str, first: str, second: str
) -> None:
    """Two reads with different meanings (a page of 1 vs the default 20; campaign ``X`` vs the
    unknown campaign ``X<US>a=b``) must not collide on one key: the key joins its parts with
    ``\x1f`` and rebuilds the query from decoded pairs without escaping them again."""
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        one = await read(client, first, "MISS")
        calls = len(nexa.sent)
        two = await client.get(second)
        assert two.headers.get("x-cache") != "HIT", (
            f"{second} was answered from the entry of {first}",
            one.json(),
            two.json(),
        )
        assert len(nexa.sent) == calls + 1


async def test_a_read_that_overlaps_a_write_does_not_leave_a_stale_entry(
    tmp_path: Path, maps_dir: Path, backend: str
) -> None:
    """A GET reaches the vendor before a pause and comes back after the pause was answered.

    Its (pre-pause) answer may be served to itself, but must not be stored over the invalidation:
    a read that starts after the pause was answered must see the pause.
    """
    vendors = two_vendors()
    nexa = vendors["nexa.test"]
    nexa.gate = asyncio.Event()
    async with gateway(one_tenant_config(tmp_path, maps_dir, backend=backend), vendors) as (client, _app):
        slow_read = asyncio.create_task(client.get(CAMPAIGN_PATH))
        deadline = time.monotonic() + 5
        while nexa.calls("get") == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        paused = await client.post(f"{CAMPAIGN_PATH}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        nexa.gate.set()
        overlapped = await asyncio.wait_for(slow_read, 10)
        assert overlapped.status_code == 200
        after = await client.get(CAMPAIGN_PATH)
        assert after.json()["status"] == "paused", (
            "a read begun after the pause was answered got the pre-pause campaign",
            dict(after.headers),
        )


async def test_a_fetch_begun_before_a_write_never_stores_even_after_the_write_is_forgotten() -> None:
    """The invalidation record is bounded (1 024 groups here): a group pushed out reads as the
    highest generation pushed out, so a read that began before its group's write still sees it."""
    memory = MemoryCache(max_entries=10)
    place = Placement(("t", "c", "get", "cmp-1"), (("t", "c", "cmp-1"),))
    token = await memory.begin(place)  # the read starts: its group was never written
    await memory.invalidate([place.groups[0]])  # a write to that campaign lands meanwhile
    await memory.invalidate([("t", "c", f"other-{i}") for i in range(1100)])  # and is pushed out of the record
    await memory.put(place, b"stale", ttl=60, token=token)
    assert await memory.get(place.key) is None
    fresh = await memory.begin(place)  # a read that starts now stores its answer
    await memory.put(place, b"fresh", ttl=60, token=fresh)
    entry = await memory.get(place.key)
    assert entry is not None and entry.body == b"fresh"
