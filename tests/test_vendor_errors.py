"""Vendor faults become the contract's error codes, naming the vendor and its HTTP status.

A FakeVendor plays each vendor: it answers one scripted fault, then good answers again, so every
test also checks that the gateway still serves the next request (and did not cache the fault).
Runs over the generic map (errors ``{"error": {"message"}}``) and hamsa's (``{"success": false,
"message"}``): their error shapes differ, so the map's ``errors.message`` paths are exercised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gateway.transport import TransportTimeout, TransportUnreachable
from tests.fakes import Answer, FakeVendor, SentRequest, json_answer

SECRET = "sk_live_TOPsecret_4f9a8b7c6d5e"
CAMPAIGN_ID = "c-1"
# One attempt per request and a breaker that never opens: each scripted fault is exactly what the
# client's request meets, so these tests pin the mapping. Retries and the breaker get their own
# tests at the end of this file, with the shipped defaults.
ONE_SHOT: dict[str, Any] = {"retries": {"attempts": 1}, "circuit": {"min_requests": 1000}}


@dataclass(frozen=True)
class VendorCase:
    name: str
    connection: dict[str, Any]
    get_url: str
    good: Callable[[], object]
    error_body: Callable[[str], object]
    # other places the map looks for the message, each with the text it should surface
    other_error_bodies: list[tuple[object, str]] = field(default_factory=list)
    create_needs: dict[str, Any] = field(default_factory=dict)  # what a create must hold besides the basics


GENERIC = VendorCase(
    name="generic",
    connection={
        "name": "gen",
        "vendor": "generic",
        "base_url": "https://vendor.test/v1",
        "credentials": {"api_key": SECRET},
        **ONE_SHOT,
    },
    get_url=f"https://vendor.test/v1/campaigns/{CAMPAIGN_ID}",
    good=lambda: {"id": CAMPAIGN_ID, "name": "Spring", "status": "running"},
    error_body=lambda message: {"error": {"type": "api_error", "message": message}},
    other_error_bodies=[({"message": "top-level says no"}, "top-level says no")],
)
HAMSA = VendorCase(
    name="hamsa",
    connection={
        "name": "ham",
        "vendor": "hamsa",
        "base_url": "https://hamsa.test",
        "credentials": {"api_key": SECRET},
        **ONE_SHOT,
    },
    get_url=f"https://hamsa.test/v1/voice-agents/campaigns/{CAMPAIGN_ID}",
    create_needs={"recipients": [{"phone_number": "+14155550100", "name": "Ada"}]},
    good=lambda: {
        "success": True,
        "message": "Campaign fetched",
        "data": {"id": CAMPAIGN_ID, "name": "Spring", "status": "RUNNING"},
    },
    error_body=lambda message: {"success": False, "message": message, "messageKey": "SOME_KEY", "data": None},
    other_error_bodies=[
        ({"success": False, "message": "", "messageKey": "ONLY_THE_KEY", "data": None}, "ONLY_THE_KEY"),
    ],
)
CASES = [GENERIC, HAMSA]


class Script:
    """The vendor's answers: queued faults first (an Answer, or an exception to raise), then a
    ``sticky`` fault while one is set, then good answers."""

    def __init__(self, case: VendorCase) -> None:
        self.case = case
        self.queue: list[Answer | Exception] = []
        self.sticky: Answer | Exception | None = None

    def __call__(self, request: SentRequest) -> Answer:
        item = self.queue.pop(0) if self.queue else self.sticky
        if item is None:
            return json_answer(200, self.case.good())
        if isinstance(item, Exception):
            raise item
        return item


@dataclass
class Harness:
    case: VendorCase
    client: httpx.AsyncClient
    vendor: FakeVendor
    script: Script

    async def get(self) -> httpx.Response:
        return await self.client.get(f"/v1/campaigns/{CAMPAIGN_ID}")

    async def assert_still_serves(self, calls_before: int) -> None:
        """The next request goes upstream again (nothing cached from the fault) and succeeds."""
        response = await self.get()
        assert response.status_code == 200, response.text
        campaign = response.json()
        assert (campaign["id"], campaign["vendor"], campaign["status"]) == (CAMPAIGN_ID, self.case.name, "active")
        assert len(self.vendor.sent) == calls_before + 1, "the good request must reach the vendor"
        assert self.vendor.sent[-1].url == self.case.get_url


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
async def harness(request: pytest.FixtureRequest, make_client) -> AsyncIterator[Harness]:
    case: VendorCase = request.param
    script = Script(case)
    vendor = FakeVendor(script)
    async with make_client([case.connection], lambda _connection: vendor) as client:
        yield Harness(case, client, vendor, script)


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, body
    assert error["request_id"] == response.headers["x-request-id"]
    assert isinstance(error["message"], str) and error["message"]
    return error


def assert_no_secret(response: httpx.Response) -> None:
    assert SECRET not in response.text
    assert all(SECRET not in value for value in response.headers.values())


# --- HTTP statuses -------------------------------------------------------------------------------

STATUS_MAP = [
    (400, 422, "validation_error"),
    (401, 401, "unauthorized"),
    (403, 403, "forbidden"),
    (404, 404, "not_found"),
    (409, 409, "conflict"),
    (422, 422, "validation_error"),
    (429, 429, "rate_limited"),
    (500, 502, "upstream_error"),
    (502, 502, "upstream_error"),
    (503, 503, "upstream_unavailable"),
    (504, 504, "upstream_timeout"),
    (418, 502, "upstream_error"),
]


@pytest.mark.parametrize(("upstream", "status", "code"), STATUS_MAP, ids=[str(s[0]) for s in STATUS_MAP])
async def test_a_vendor_status_maps_to_its_code(harness: Harness, upstream: int, status: int, code: str) -> None:
    said = f"vendor says no ({upstream})"
    harness.script.queue.append(json_answer(upstream, harness.case.error_body(said)))
    response = await harness.get()
    error = error_of(response, status, code)
    assert error["vendor"] == harness.case.name
    assert error["upstream_status"] == upstream
    assert said in error["message"], "the vendor's own message reaches the client"
    assert "details" not in error
    if code != "rate_limited":
        assert "retry-after" not in response.headers
    await harness.assert_still_serves(calls_before=1)


async def test_a_vendor_429_passes_retry_after_on(harness: Harness) -> None:
    harness.script.queue.append(json_answer(429, harness.case.error_body("slow down"), headers={"retry-after": "7"}))
    response = await harness.get()
    error = error_of(response, 429, "rate_limited")
    assert (error["vendor"], error["upstream_status"]) == (harness.case.name, 429)
    assert response.headers["retry-after"] == "7"
    assert "slow down" in error["message"]
    await harness.assert_still_serves(calls_before=1)


async def test_a_vendor_429_without_retry_after_is_still_rate_limited(harness: Harness) -> None:
    harness.script.queue.append(json_answer(429, harness.case.error_body("slow down")))
    response = await harness.get()
    error_of(response, 429, "rate_limited")
    await harness.assert_still_serves(calls_before=1)


async def test_faults_on_a_write_map_the_same_way(harness: Harness) -> None:
    """A create the vendor refuses with 409: conflict, naming the vendor; the retry then succeeds."""
    harness.script.queue.append(json_answer(409, harness.case.error_body("a campaign with this name exists")))
    body = {"name": "Spring", "agent_id": "agent-1", "from_number": "+14155551212", **harness.case.create_needs}
    response = await harness.client.post("/v1/campaigns", json=body)
    error = error_of(response, 409, "conflict")
    assert (error["vendor"], error["upstream_status"]) == (harness.case.name, 409)
    assert "a campaign with this name exists" in error["message"]
    harness.script.queue.append(
        json_answer(201, harness.case.good())  # the vendor's create answers the campaign, as get does
    )
    response = await harness.client.post("/v1/campaigns", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["id"] == CAMPAIGN_ID
    # both maps answer a create with a fresh get (their create answers carry less than a get)
    assert [r.method for r in harness.vendor.sent] == ["POST", "POST", "GET"]


# --- where the message comes from, and what it must not carry ------------------------------------


async def test_the_maps_other_message_paths_are_read(harness: Harness) -> None:
    for body, text in harness.case.other_error_bodies:
        harness.script.queue.append(json_answer(400, body))
        error = error_of(await harness.get(), 422, "validation_error")
        assert text in error["message"], (body, error)
    await harness.assert_still_serves(calls_before=len(harness.case.other_error_bodies))


@pytest.mark.parametrize("upstream", [400, 401, 403, 404, 409, 422, 429, 500, 503])
async def test_a_credential_echoed_by_the_vendor_is_redacted(harness: Harness, upstream: int) -> None:
    said = f"invalid key {SECRET} for this account (Authorization: Bearer {SECRET})"
    harness.script.queue.append(json_answer(upstream, harness.case.error_body(said)))
    response = await harness.get()
    error = response.json()["error"]
    assert error["upstream_status"] == upstream
    assert_no_secret(response)
    assert "invalid key" in error["message"] and "for this account" in error["message"]
    await harness.assert_still_serves(calls_before=1)


async def test_a_credential_in_a_structured_vendor_message_is_redacted(make_client) -> None:
    """Generic reads ``error.message``: when that is an object, it is shown as JSON, still redacted."""
    vendor = FakeVendor(
        lambda _r: json_answer(
            422, {"error": {"message": {"api_key": [f"{SECRET} is not valid"], "hint": "rotate it"}}}
        )
    )
    async with make_client([GENERIC.connection], lambda _c: vendor) as client:
        response = await client.get(f"/v1/campaigns/{CAMPAIGN_ID}")
    error = error_of(response, 422, "validation_error")
    assert_no_secret(response)
    assert "rotate it" in error["message"]


async def test_a_huge_vendor_message_is_cut_short(harness: Harness) -> None:
    harness.script.queue.append(json_answer(500, harness.case.error_body("x" * 100_000)))
    response = await harness.get()
    error = error_of(response, 502, "upstream_error")
    assert len(error["message"]) < 1000
    assert len(response.content) < 2000
    await harness.assert_still_serves(calls_before=1)


@pytest.mark.parametrize(
    ("upstream", "content_type", "body"),
    [
        (500, "text/html", b"<html><body>Internal Server Error</body></html>"),
        (502, "text/html", b"<html>Bad Gateway (nginx)</html>"),
        (503, "text/plain", b"service unavailable"),
        (404, "text/plain", b""),
        (401, "text/plain", f"bad token {SECRET}".encode()),
    ],
)
async def test_an_error_without_a_json_body_still_maps(
    harness: Harness, upstream: int, content_type: str, body: bytes
) -> None:
    harness.script.queue.append((upstream, {"content-type": content_type}, body))
    response = await harness.get()
    expected = {500: (502, "upstream_error"), 502: (502, "upstream_error"), 503: (503, "upstream_unavailable")}
    expected |= {404: (404, "not_found"), 401: (401, "unauthorized")}
    error = error_of(response, *expected[upstream])
    assert (error["vendor"], error["upstream_status"]) == (harness.case.name, upstream)
    assert str(upstream) in error["message"]
    assert b"<html" not in response.content
    assert_no_secret(response)
    await harness.assert_still_serves(calls_before=1)


# --- good statuses with bad bodies ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"<html>maintenance</html>", b"not json at all", b"{truncated", b"\xff\xfe\x00"],
    ids=["html", "text", "truncated", "binary"],
)
async def test_a_200_that_is_not_json_is_an_upstream_error(harness: Harness, body: bytes) -> None:
    harness.script.queue.append((200, {"content-type": "application/json"}, body))
    response = await harness.get()
    error = error_of(response, 502, "upstream_error")
    assert error["vendor"] == harness.case.name
    assert error["upstream_status"] == 200
    await harness.assert_still_serves(calls_before=1)


WRONG_SHAPES = {
    "generic": [[GENERIC.good()], "a string", 42, None, {"name": "no id here"}],
    "hamsa": [[HAMSA.good()], {"success": True, "data": [HAMSA.good()["data"]]}, {"success": True, "data": "x"}, None],
}


async def test_a_200_of_the_wrong_shape_is_an_upstream_error(harness: Harness) -> None:
    for shape in WRONG_SHAPES[harness.case.name]:
        harness.script.queue.append(json_answer(200, shape))
        response = await harness.get()
        assert response.status_code != 500, (shape, response.text)
        error = error_of(response, 502, "upstream_error")
        assert error["vendor"] == harness.case.name, shape
    await harness.assert_still_serves(calls_before=len(WRONG_SHAPES[harness.case.name]))


async def test_a_list_answer_of_the_wrong_shape_is_an_upstream_error(harness: Harness) -> None:
    shapes = [[], {"data": "nope"}, {"data": [1, 2, 3]}, {"data": {"campaigns": {"id": "x"}}}]
    for shape in shapes:
        harness.script.queue.append(json_answer(200, shape))
        response = await harness.client.get("/v1/campaigns", headers={"Cache-Control": "no-cache"})
        error = error_of(response, 502, "upstream_error")
        assert error["vendor"] == harness.case.name, shape
    await harness.assert_still_serves(calls_before=len(shapes))


async def test_a_wrong_shape_answer_names_the_upstream_status(harness: Harness) -> None:
    """Like the not-JSON case, a 200 whose JSON the map cannot read says which status the vendor gave."""
    harness.script.queue.append(json_answer(200, ["a", "list"]))
    error = error_of(await harness.get(), 502, "upstream_error")
    assert error["vendor"] == harness.case.name
    assert error.get("upstream_status") == 200, error


# --- transport faults ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (TransportTimeout("read timed out"), 504, "upstream_timeout"),
        (TransportUnreachable("ClientConnectorError"), 503, "upstream_unavailable"),
    ],
    ids=["timeout", "unreachable"],
)
async def test_a_transport_fault_maps_to_its_code(harness: Harness, fault: Exception, status: int, code: str) -> None:
    harness.script.queue.append(fault)
    response = await harness.get()
    error = error_of(response, status, code)
    assert error["vendor"] == harness.case.name
    assert "upstream_status" not in error, "no HTTP answer came back"
    assert harness.case.name in error["message"]
    await harness.assert_still_serves(calls_before=1)


async def test_a_transport_fault_on_a_write_maps_too(harness: Harness) -> None:
    harness.script.queue.append(TransportTimeout("slow"))
    body = {"name": "Spring", "agent_id": "agent-1", "from_number": "+14155551212", **harness.case.create_needs}
    error = error_of(await harness.client.post("/v1/campaigns", json=body), 504, "upstream_timeout")
    assert error["vendor"] == harness.case.name
    harness.script.queue.append(TransportUnreachable("refused"))
    error = error_of(await harness.client.post("/v1/campaigns", json=body), 503, "upstream_unavailable")
    await harness.assert_still_serves(calls_before=2)


async def test_a_run_of_faults_never_wedges_the_gateway(harness: Harness) -> None:
    faults: list[Answer | Exception] = [
        TransportTimeout("t"),
        json_answer(503, harness.case.error_body("down")),
        (200, {"content-type": "text/html"}, b"<html>"),
        TransportUnreachable("u"),
        json_answer(429, harness.case.error_body("slow"), headers={"retry-after": "1"}),
        json_answer(200, [1, 2]),
        json_answer(500, harness.case.error_body("boom")),
    ]
    harness.script.queue.extend(faults)
    statuses = [(await harness.get()).status_code for _ in faults]
    assert statuses == [504, 503, 502, 503, 429, 502, 502]
    await harness.assert_still_serves(calls_before=len(faults))
    # and once good, the answer is cached as usual
    cached = await harness.get()
    assert cached.status_code == 200 and cached.headers.get("x-cache") == "HIT"
    assert len(harness.vendor.sent) == len(faults) + 1


# --- with the shipped retry and breaker defaults -------------------------------------------------


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
async def default_harness(request: pytest.FixtureRequest, make_client) -> AsyncIterator[Harness]:
    case: VendorCase = request.param
    connection = {key: value for key, value in case.connection.items() if key not in ONE_SHOT}
    script = Script(case)
    vendor = FakeVendor(script)
    async with make_client([connection], lambda _connection: vendor) as client:
        yield Harness(case, client, vendor, script)


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (TransportTimeout("read timed out"), 504, "upstream_timeout"),
        (TransportUnreachable("refused"), 503, "upstream_unavailable"),
        ("503", 503, "upstream_unavailable"),
        ("502", 502, "upstream_error"),
        ("404", 404, "not_found"),
    ],
    ids=["timeout", "unreachable", "503", "502", "404"],
)
async def test_a_lasting_fault_still_surfaces_with_its_code(
    default_harness: Harness, fault: Exception | str, status: int, code: str
) -> None:
    """Whatever the gateway retries, a fault that lasts reaches the client mapped, and it recovers after."""
    harness = default_harness
    if isinstance(fault, str):
        harness.script.sticky = json_answer(int(fault), harness.case.error_body(f"vendor fault {fault}"))
    else:
        harness.script.sticky = fault
    response = await harness.get()
    error = error_of(response, status, code)
    assert error["vendor"] == harness.case.name
    if isinstance(fault, str):
        assert error["upstream_status"] == int(fault)
        assert f"vendor fault {fault}" in error["message"]
    assert len(harness.vendor.sent) >= 1
    harness.script.sticky = None
    await harness.assert_still_serves(calls_before=len(harness.vendor.sent))


async def test_a_passing_fault_on_a_read_does_not_stop_the_next_request(default_harness: Harness) -> None:
    harness = default_harness
    harness.script.queue.append(json_answer(503, harness.case.error_body("blip")))
    response = await harness.get()
    # retried or not, the client gets a mapped answer, and the request after it is served
    assert response.status_code in (200, 503), response.text
    harness.script.queue.clear()
    calls = len(harness.vendor.sent)
    second = await harness.client.get(f"/v1/campaigns/{CAMPAIGN_ID}", headers={"Cache-Control": "no-cache"})
    assert second.status_code == 200, second.text
    assert len(harness.vendor.sent) == calls + 1
