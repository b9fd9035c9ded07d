"""Lookup tables through the gateway: fetched from the vendor once, kept, refreshed after a miss or their TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway import tables
from gateway.app import GatewayApp
from gateway.config import load_config
from tests.conftest import TEST_KEY, write_config
from tests.fakes import FakeVendor, SentRequest, json_answer
from tests.mapping.test_lookups import MAP


class Vendor:
    """Lists its numbers at /orgs/o1/numbers and creates campaigns; ``numbers`` may change between calls."""

    def __init__(self) -> None:
        self.numbers = [{"id": "pn_1", "number": "+14155550100"}]
        self.fake = FakeVendor(self.answer)

    def answer(self, request: SentRequest) -> tuple[int, dict[str, str], bytes]:
        if request.url.startswith("https://api.acme.example/orgs/o1/numbers"):
            return json_answer(200, self.numbers)
        if request.method == "POST":
            return json_answer(201, {"id": "c1", **request.json()})  # type: ignore[dict-item]
        return json_answer(200, {"id": "c1", "caller": "pn_1"})

    def listings(self) -> int:
        return sum("/numbers" in sent.url for sent in self.fake.sent)


@pytest.fixture
async def acme(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Vendor]]:
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "acme.yaml").write_text(yaml.safe_dump(MAP))
    connection = {"name": "acme", "vendor": "acme", "credentials": {}, "params": {"org": "o1"}}
    config, problems = load_config(write_config(tmp_path, [connection], mappings_dir=maps))
    assert config is not None, problems
    vendor = Vendor()
    app = GatewayApp(config, lambda _connection: vendor.fake)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", headers=headers
    ) as client:
        yield client, vendor
    await app.aclose()


async def create(client: httpx.AsyncClient, number: str) -> httpx.Response:
    return await client.post("/v1/campaigns", json={"name": "Looked up", "from_number": number})


async def test_the_table_is_fetched_once_and_used_both_ways(acme: tuple[httpx.AsyncClient, Vendor]) -> None:
    client, vendor = acme
    created = await create(client, "+14155550100")
    assert created.status_code == 201, created.text
    assert vendor.fake.sent[-1].json() == {"name": "Looked up", "caller": "pn_1"}
    assert created.json()["from_numbers"] == ["+14155550100"]
    fetched = await client.get("/v1/campaigns/c1")
    assert fetched.json()["from_numbers"] == ["+14155550100"]
    assert vendor.listings() == 1


async def test_an_unknown_number_is_a_422_naming_the_field(acme: tuple[httpx.AsyncClient, Vendor]) -> None:
    client, vendor = acme
    refused = await create(client, "+14155550199")
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["vendor"]) == ("validation_error", "acme")
    assert error["details"] == [
        {"field": "from_number", "message": "'+14155550199' is not one of this vendor account's phone_numbers"}
    ]
    assert [sent.method for sent in vendor.fake.sent] == ["GET"]  # nothing was created


async def test_a_miss_refreshes_a_table_older_than_a_few_seconds(
    acme: tuple[httpx.AsyncClient, Vendor], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, vendor = acme
    assert (await create(client, "+14155550199")).status_code == 422
    vendor.numbers.append({"id": "pn_9", "number": "+14155550199"})  # bought since
    assert (await create(client, "+14155550199")).status_code == 422  # the table is a moment old: kept
    assert vendor.listings() == 1

    monkeypatch.setattr(tables, "REFRESH_AFTER_MISS", 0.0)
    created = await create(client, "+14155550199")
    assert created.status_code == 201, created.text
    assert vendor.fake.sent[-1].json()["caller"] == "pn_9"
    assert vendor.listings() == 2
    assert (await create(client, "+14155550100")).status_code == 201
    assert vendor.listings() == 2  # no miss, within the TTL: kept


async def test_a_table_past_its_ttl_is_fetched_again(
    acme: tuple[httpx.AsyncClient, Vendor], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, vendor = acme
    assert (await create(client, "+14155550100")).status_code == 201
    clock = tables.time.monotonic() + 61  # MAP's ttl_seconds is 60
    monkeypatch.setattr(tables.time, "monotonic", lambda: clock)
    assert (await create(client, "+14155550100")).status_code == 201
    assert vendor.listings() == 2


async def test_a_vendor_that_cannot_list_its_numbers_fails_the_request(acme: tuple[httpx.AsyncClient, Vendor]) -> None:
    client, vendor = acme

    def broken(request: SentRequest) -> Any:
        return json_answer(401, {"message": "bad key"}) if "/numbers" in request.url else vendor.answer(request)

    vendor.fake.handler = broken
    refused = await create(client, "+14155550100")
    assert refused.status_code == 401, refused.text
    assert (refused.json()["error"]["code"], refused.json()["error"]["upstream_status"]) == ("unauthorized", 401)
    assert [sent.method for sent in vendor.fake.sent] == ["GET"]
