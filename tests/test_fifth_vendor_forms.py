"""Another vendor added with nothing but a YAML map, this one needing every form the map language grew for #12.

"tickdial" is invented: HTTP basic auth; the caller as the id of one of the account's numbers (a
lookup); moments in Unix milliseconds; the calling window in minutes since midnight; a pending
count the map computes from two counters, and a completed count of contacts by state; a next page
that is the last item's id while the vendor says there is more; contacts without ids (their
position is theirs); retry settings sent only with a retry. Its fake API is a Starlette app on
loopback; the gateway reaches it through its production transport. No Python is written for it.
"""

from __future__ import annotations

import base64
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

from gateway.app import GatewayApp
from gateway.config import load_config
from tests.conftest import TEST_KEY, write_config
from tests.fakes import Served, served_on_loopback

USER, SECRET = "tick-user", "tick-secret-0042"
NUMBERS = [{"sid": "PN100", "e164": "+14155550100"}, {"sid": "PN200", "e164": "+14155550200"}]

TICKDIAL_MAP = """\
vendor: tickdial
base_url: https://api.tickdial.invalid
auth:
  basic: {username: "{credentials.user}", password: "{credentials.secret}"}
errors:
  message: [fault]

lookups:
  numbers:
    request: {method: GET, path: /v1/numbers}
    items: numbers
    vendor: sid
    canonical: {from: e164, pipe: [e164]}

enums:
  state:
    map: {queued: scheduled, dialing: active, held: paused, done: completed}
    unknown: null
  day:
    map: {MO: monday, TU: tuesday, WE: wednesday, TH: thursday, FR: friday, SA: saturday, SU: sunday}
    unknown: null

shapes:
  drive:
    id: id
    name: title
    status: {from: state, pipe: [{enum: state}]}
    vendor_status: state
    from_numbers: {from: caller_sid, pipe: [{lookup: numbers}, list]}
    schedule.start_at: {from: opens_at_ms, pipe: [{from_epoch: milliseconds}]}
    schedule.days: {from: window.weekdays, pipe: [{enum: day}]}
    schedule.daily_start: {from: window.from_min, pipe: [{from_time_of_day: minutes}]}
    schedule.daily_end: {from: window.to_min, pipe: [{from_time_of_day: minutes}]}
    retry.max_attempts: {from: redial.extra, pipe: [{add: 1}]}
    stats.total: counters.planned
    stats.pending: {difference: [counters.planned, counters.placed]}
    stats.completed: {from: contacts, pipe: [{where: {state: done}}, count]}
    created_at: {from: created_s, pipe: [{from_epoch: seconds}]}
  contact:
    id: {index: 1, pipe: [string]}
    phone_number: {from: msisdn, pipe: [e164]}

operations:
  create:
    request:
      method: POST
      path: /v1/drives
      body:
        title: body.name
        caller_sid: {from: body.from_number, pipe: [{vendor_lookup: numbers}]}
        opens_at_ms: {coalesce: [body.start_at, body.schedule.start_at], pipe: [{epoch: milliseconds}]}
        window.weekdays: {from: body.schedule.days, pipe: [{vendor_enum: day}]}
        window.from_min: {from: body.schedule.daily_start, pipe: [{time_of_day: minutes}]}
        window.to_min: {from: body.schedule.daily_end, pipe: [{time_of_day: minutes}]}
        redial.extra: {from: body.retry.max_attempts, pipe: [{add: -1}]}
        redial.mode: {const: steady, when: body.retry.max_attempts}
        contacts: {from: body.recipients, each: {msisdn: phone_number, seq: {index: 1}}}
    response: {unwrap: drive, shape: drive}
  get:
    request: {method: GET, path: "/v1/drives/{id}"}
    response: {unwrap: drive, shape: drive}
  list:
    request: {method: GET, path: /v1/drives, query: {size: page.limit, after: page.cursor}}
    response: {items: drives, next_cursor: {from: "drives[-1].id", when: more}, shape: drive}
  recipients_list:
    paging: gateway
    request: {method: GET, path: "/v1/drives/{id}"}
    response: {unwrap: drive, items: contacts, shape: contact}
"""


@dataclass
class TickDial:
    """The invented vendor: what it stores and every body it received."""

    drives: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)

    def app(self) -> Starlette:
        expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()

        def guarded(handler: Any) -> Any:
            async def endpoint(request: Request) -> Response:
                if request.headers.get("authorization") != expected:
                    return JSONResponse({"fault": "bad credentials"}, status_code=401)
                return await handler(request)

            return endpoint

        async def numbers(_request: Request) -> Response:
            return JSONResponse({"numbers": NUMBERS})

        async def create(request: Request) -> Response:
            body = await request.json()
            self.bodies.append(body)
            contacts = [
                {"msisdn": c["msisdn"], "state": "done" if c["seq"] == 1 else "waiting"} for c in body["contacts"]
            ]
            drive = {
                **body,
                "id": f"drv-{len(self.drives) + 1}",
                "state": "queued",
                "contacts": contacts,
                "counters": {"planned": len(contacts), "placed": 1},
                "created_s": 1767225600,  # 2026-01-01T00:00:00Z
            }
            self.drives.append(drive)
            return JSONResponse({"drive": drive}, status_code=201)

        async def get(request: Request) -> Response:
            found = [d for d in self.drives if d["id"] == request.path_params["id"]]
            return JSONResponse({"drive": found[0]}) if found else JSONResponse({"fault": "no drive"}, status_code=404)

        async def listing(request: Request) -> Response:
            ids = [d["id"] for d in self.drives]
            after = request.query_params.get("after")
            start = ids.index(after) + 1 if after in ids else 0
            size = int(request.query_params["size"])
            page = self.drives[start : start + size]
            return JSONResponse({"drives": page, "more": start + size < len(ids)})

        return Starlette(
            routes=[
                Route("/v1/numbers", guarded(numbers), methods=["GET"]),
                Route("/v1/drives", guarded(create), methods=["POST"]),
                Route("/v1/drives", guarded(listing), methods=["GET"]),
                Route("/v1/drives/{id}", guarded(get), methods=["GET"]),
            ]
        )


@pytest.fixture
def tickdial() -> Iterator[Served[TickDial]]:
    vendor = TickDial()
    with served_on_loopback(vendor.app()) as base_url:
        yield Served(vendor, base_url)


@pytest.fixture
async def client(tmp_path: Path, tickdial: Served) -> AsyncIterator[httpx.AsyncClient]:
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "tickdial.yaml").write_text(TICKDIAL_MAP)
    connection = {
        "name": "tick",
        "vendor": "tickdial",
        "base_url": tickdial.base_url,
        "credentials": {"user": USER, "secret": SECRET},
    }
    config, problems = load_config(write_config(tmp_path, [connection], mappings_dir=maps))
    assert config is not None, problems
    app = GatewayApp(config)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", headers=headers) as http:
        yield http
    await app.aclose()


CREATE = {
    "name": "Spring drive",
    "from_number": "+14155550200",
    "recipients": [
        {"phone_number": "+14155551111"},
        {"phone_number": "+14155552222"},
        {"phone_number": "+14155553333"},
    ],
    "start_at": "2026-03-01T09:30:00.250+01:00",
    "schedule": {"days": ["monday", "friday"], "daily_start": "00:00", "daily_end": "23:59"},
    "retry": {"max_attempts": 3},
}


async def test_the_vendor_gets_its_own_forms_and_the_client_the_canonical_ones(
    client: httpx.AsyncClient, tickdial: Served
) -> None:
    created = await client.post("/v1/campaigns", json=CREATE)
    assert created.status_code == 201, created.text
    assert tickdial.vendor.bodies == [
        {
            "title": "Spring drive",
            "caller_sid": "PN200",
            "opens_at_ms": 1772353800250,
            "window": {"weekdays": ["MO", "FR"], "from_min": 0, "to_min": 1439},
            "redial": {"extra": 2, "mode": "steady"},
            "contacts": [
                {"msisdn": "+14155551111", "seq": 1},
                {"msisdn": "+14155552222", "seq": 2},
                {"msisdn": "+14155553333", "seq": 3},
            ],
        }
    ]
    campaign = created.json()
    assert (campaign["status"], campaign["vendor_status"], campaign["from_numbers"]) == (
        "scheduled",
        "queued",
        ["+14155550200"],
    )
    assert campaign["schedule"] == {
        "start_at": "2026-03-01T08:30:00.250Z",
        "end_at": None,
        "timezone": None,
        "days": ["monday", "friday"],
        "daily_start": "00:00",
        "daily_end": "23:59",
    }
    assert campaign["retry"] == {"max_attempts": 3, "interval_minutes": None}
    assert campaign["stats"] == {
        "total": 3,
        "pending": 2,
        "queued": None,
        "in_progress": None,
        "completed": 1,
        "failed": None,
        "no_answer": None,
    }
    assert campaign["created_at"] == "2026-01-01T00:00:00Z"

    recipients = await client.get(f"/v1/campaigns/{campaign['id']}/recipients", params={"limit": "2"})
    page = recipients.json()
    assert [(r["id"], r["phone_number"]) for r in page["data"]] == [("1", "+14155551111"), ("2", "+14155552222")]
    rest = await client.get(f"/v1/campaigns/{campaign['id']}/recipients", params={"cursor": page["next_cursor"]})
    assert [r["id"] for r in rest.json()["data"]] == ["3"]


async def test_without_a_retry_nothing_of_it_is_sent(client: httpx.AsyncClient, tickdial: Served) -> None:
    bare = {"name": "Bare", "from_number": "+14155550100", "recipients": CREATE["recipients"][:1]}
    assert (await client.post("/v1/campaigns", json=bare)).status_code == 201
    assert tickdial.vendor.bodies[-1] == {
        "title": "Bare",
        "caller_sid": "PN100",
        "contacts": [{"msisdn": "+14155551111", "seq": 1}],
    }


async def test_paging_by_the_last_items_id_while_there_is_more(client: httpx.AsyncClient) -> None:
    for n in range(3):
        assert (await client.post("/v1/campaigns", json={**CREATE, "name": f"Drive {n}"})).status_code == 201
    first = (await client.get("/v1/campaigns", params={"limit": "2"})).json()
    assert ([c["name"] for c in first["data"]], first["next_cursor"]) == (["Drive 0", "Drive 1"], "drv-2")
    last = (await client.get("/v1/campaigns", params={"limit": "2", "cursor": "drv-2"})).json()
    assert ([c["name"] for c in last["data"]], last["next_cursor"]) == (["Drive 2"], None)


async def test_a_value_the_vendor_has_no_form_for_is_refused_naming_the_field(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/v1/campaigns", json={**CREATE, "from_number": "+14155550999"})
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"]["details"] == [
        {"field": "from_number", "message": "'+14155550999' is not one of this vendor account's numbers"}
    ]
    refused = await client.post("/v1/campaigns", json={**CREATE, "webhook_url": "https://hooks.example.com/t"})
    assert refused.json()["error"]["details"] == [
        {"field": "webhook_url", "message": "tickdial has no equivalent for this field"}
    ]
