"""The simulated Sarvam API behaves like the documented one, strictly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandboxes.sarvam import create_app

BASE = "/v1/orgs/org_1/workspaces/ws_1"
KEY = {"X-API-Key": "test-key"}
START = datetime(2030, 1, 1, tzinfo=UTC)

SUMMARY_KEYS = {
    "name",
    "campaign_id",
    "status",
    "app_id",
    "created_by",
    "created_at",
    "updated_at",
    "description",
    "app_type",
    "app_version",
    "updated_by",
}
RECORD_KEYS = SUMMARY_KEYS | {"app_config", "start_timestamp", "end_timestamp", "allowed_schedule"}
APP_CONFIG_KEYS = {
    "app_id",
    "app_version",
    "attempts_per_second",
    "connection_configs",
    "retry_config",
    "app_type",
    "webhook_config",
}


class FakeClock:
    """A clock the tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def campaign_body(**changes: Any) -> dict[str, Any]:
    """A valid create body, with top-level keys replaced by ``changes``."""
    body: dict[str, Any] = {
        "name": "Renewals",
        "description": "Policy renewal reminders",
        "app_config": {
            "app_id": "app_42",
            "app_version": 3,
            "app_type": "agent",
            "attempts_per_second": 2.5,
            "connection_configs": [{"connection_id": "conn_1", "phone_numbers": ["+918012345678"], "weight": 1}],
            "retry_config": {
                "max_retries": 2,
                "retry_interval_minutes": 30,
                "retry_on": {"busy": {"enabled": True}, "no_answer": {"enabled": True}},
            },
            "webhook_config": {"url": "https://example.test/hook", "metadata": {"team": "a"}},
        },
        "start_timestamp": "2030-01-01T00:00:00Z",
        "end_timestamp": "2030-01-31T00:00:00+05:30",
        "allowed_schedule": {
            "allowed_start_time": "09:00",
            "allowed_end_time": "18:00",
            "allowed_days": ["Monday", "Wednesday"],
            "timezone": "Asia/Kolkata",
        },
    }
    body.update(changes)
    return body


def with_app_config(**changes: Any) -> dict[str, Any]:
    body = campaign_body()
    body["app_config"].update(changes)
    return body


def with_schedule(**changes: Any) -> dict[str, Any]:
    body = campaign_body()
    body["allowed_schedule"].update(changes)
    return body


def cohort_files(csv_text: str, mapping: dict[str, Any] | str) -> dict[str, tuple[str, bytes, str]]:
    raw_map = mapping if isinstance(mapping, str) else json.dumps(mapping)
    return {
        "cohort_file": ("cohort.csv", csv_text.encode(), "text/csv"),
        "cohort_transformation_file": ("map.json", raw_map.encode(), "application/json"),
    }


MAPPING = {"phone_number": "phone", "user_identifier": "customer", "app_variables": ["city"]}
CSV = "phone,customer,city\n+919812345678,c-1,Pune\n9812345679,c-2,Delhi\n+919812345678,c-3,Goa\n\n+14155550100,c-4,\n"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START - timedelta(days=1))


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        yield http


async def create(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> str:
    response = await client.post(f"{BASE}/campaigns", json=body or campaign_body(), headers=KEY)
    assert response.status_code == 200, response.text
    return response.json()["campaign_id"]


async def act(client: httpx.AsyncClient, campaign_id: str, action: str) -> httpx.Response:
    url = f"{BASE}/campaigns/{campaign_id}/status"
    return await client.put(url, json={"action": action}, headers=KEY)


def error_at(response: httpx.Response, loc: list[str | int]) -> dict[str, Any]:
    """The 422 error reported at ``loc`` (fails when there is none)."""
    assert response.status_code == 422, response.text
    found = [error for error in response.json()["detail"] if error["loc"] == loc]
    assert found, response.json()
    assert set(found[0]) == {"loc", "msg", "type"}
    return found[0]


# --- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer test-key"}, {"X-API-Key": ""}],
    ids=["missing", "bearer-form", "empty"],
)
async def test_requests_without_an_x_api_key_are_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get(f"{BASE}/campaigns", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or missing API key"}


async def test_a_configured_key_is_the_only_one_accepted() -> None:
    transport = httpx.ASGITransport(app=create_app(api_key="secret"))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        wrong = await http.get(f"{BASE}/campaigns", headers={"X-API-Key": "other"})
        right = await http.get(f"{BASE}/campaigns", headers={"X-API-Key": "secret"})
    assert wrong.status_code == 401
    assert right.status_code == 200


# --- create, get, list ------------------------------------------------------------------------


async def test_create_answers_the_summary_and_get_the_full_record(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(f"{BASE}/campaigns", json=campaign_body(), headers=KEY)
    assert created.status_code == 200
    summary = created.json()
    assert set(summary) == SUMMARY_KEYS
    assert summary["status"] == "scheduled"
    assert summary["app_id"] == "app_42"
    assert summary["app_version"] == 3
    assert summary["updated_by"] is None

    fetched = await client.get(f"{BASE}/campaigns/{summary['campaign_id']}", headers=KEY)
    assert fetched.status_code == 200
    record = fetched.json()
    assert set(record) == RECORD_KEYS
    assert set(record["app_config"]) == APP_CONFIG_KEYS
    assert {key: record[key] for key in SUMMARY_KEYS} == summary
    assert record["start_timestamp"] == "2030-01-01T00:00:00Z"
    assert record["end_timestamp"] == "2030-01-30T18:30:00Z"
    assert record["allowed_schedule"]["allowed_days"] == ["Monday", "Wednesday"]
    retry = record["app_config"]["retry_config"]
    assert retry["max_retries"] == 2
    assert retry["retry_interval_minutes"] == 30
    assert retry["retry_on"]["busy"] == {"enabled": True}
    assert retry["retry_on"]["failed"] == {"enabled": False}
    assert record["app_config"]["connection_configs"][0]["phone_numbers"] == ["+918012345678"]


async def test_optional_parts_get_defaults(client: httpx.AsyncClient) -> None:
    body = campaign_body(description=None)
    for optional in ("app_version", "app_type", "retry_config", "webhook_config"):
        del body["app_config"][optional]
    del body["allowed_schedule"]["timezone"]
    record = (await client.get(f"{BASE}/campaigns/{await create(client, body)}", headers=KEY)).json()
    assert record["app_type"] == "agent"
    assert record["app_version"] is None
    assert record["description"] is None
    assert record["app_config"]["webhook_config"] is None
    assert record["app_config"]["retry_config"]["max_retries"] == 0
    assert record["app_config"]["retry_config"]["retry_interval_minutes"] == []
    assert record["allowed_schedule"]["timezone"] == "Asia/Kolkata"


async def test_list_pages_newest_first(client: httpx.AsyncClient) -> None:
    ids = [await create(client, campaign_body(name=f"c{n}")) for n in range(3)]
    first = (await client.get(f"{BASE}/campaigns?limit=2", headers=KEY)).json()
    assert [item["campaign_id"] for item in first["items"]] == [ids[2], ids[1]]
    assert set(first["items"][0]) == SUMMARY_KEYS
    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert first["next_page_uri"] == f"{BASE}/campaigns?offset=2&limit=2"
    assert first["prev_page_uri"] is None

    second = (await client.get(f"{BASE}/campaigns?offset=2&limit=2", headers=KEY)).json()
    assert [item["campaign_id"] for item in second["items"]] == [ids[0]]
    assert second["next_page_uri"] is None
    assert second["prev_page_uri"] == f"{BASE}/campaigns?offset=0&limit=2"


async def test_list_defaults_to_ten_per_page(client: httpx.AsyncClient) -> None:
    page = (await client.get(f"{BASE}/campaigns", headers=KEY)).json()
    assert page == {
        "items": [],
        "total": 0,
        "limit": 10,
        "offset": 0,
        "next_page_uri": None,
        "prev_page_uri": None,
    }


@pytest.mark.parametrize(
    ("query", "loc", "kind"),
    [
        ("limit=101", ["query", "limit"], "less_than_equal"),
        ("limit=0", ["query", "limit"], "greater_than_equal"),
        ("limit=ten", ["query", "limit"], "int_parsing"),
        ("offset=-1", ["query", "offset"], "greater_than_equal"),
    ],
)
async def test_list_rejects_bad_paging(client: httpx.AsyncClient, query: str, loc: list[str], kind: str) -> None:
    response = await client.get(f"{BASE}/campaigns?{query}", headers=KEY)
    assert error_at(response, loc)["type"] == kind


async def test_campaigns_belong_to_their_workspace(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    other = "/v1/orgs/org_1/workspaces/ws_2"
    assert (await client.get(f"{other}/campaigns/{campaign_id}", headers=KEY)).status_code == 404
    assert (await client.get(f"{other}/campaigns", headers=KEY)).json()["total"] == 0


# --- create validation ------------------------------------------------------------------------


def _without_name() -> dict[str, Any]:
    body = campaign_body()
    del body["name"]
    return body


def _without_app_id() -> dict[str, Any]:
    body = campaign_body()
    del body["app_config"]["app_id"]
    return body


def _without_schedule() -> dict[str, Any]:
    body = campaign_body()
    del body["allowed_schedule"]
    return body


APP = ["body", "app_config"]
SCHEDULE = ["body", "allowed_schedule"]
PHONES = [*APP, "connection_configs", 0, "phone_numbers"]


@pytest.mark.parametrize(
    ("make_body", "loc", "kind"),
    [
        (_without_name, ["body", "name"], "missing"),
        (lambda: campaign_body(name=7), ["body", "name"], "string_type"),
        (lambda: campaign_body(description="x" * 151), ["body", "description"], "string_too_long"),
        (_without_app_id, [*APP, "app_id"], "missing"),
        (lambda: with_app_config(app_type="bot"), [*APP, "app_type"], "literal_error"),
        (lambda: with_app_config(connection_configs=[]), [*APP, "connection_configs"], "too_short"),
        (
            lambda: with_app_config(connection_configs=[{"connection_id": "c", "phone_numbers": "+918012345678"}]),
            PHONES,
            "list_type",
        ),
        (
            lambda: with_app_config(connection_configs=[{"connection_id": "c", "phone_numbers": ["08012345678"]}]),
            [*PHONES, 0],
            "string_pattern_mismatch",
        ),
        (
            lambda: with_app_config(retry_config={"max_retries": -1}),
            [*APP, "retry_config", "max_retries"],
            "greater_than_equal",
        ),
        (
            lambda: with_app_config(attempts_per_second=0),
            [*APP, "attempts_per_second"],
            "greater_than",
        ),
        (_without_schedule, SCHEDULE, "missing"),
        (
            lambda: with_schedule(allowed_days=["monday"]),
            [*SCHEDULE, "allowed_days", 0],
            "literal_error",
        ),
        (lambda: with_schedule(allowed_days=[]), [*SCHEDULE, "allowed_days"], "too_short"),
        (
            lambda: with_schedule(allowed_start_time="9:00"),
            [*SCHEDULE, "allowed_start_time"],
            "string_pattern_mismatch",
        ),
        (
            lambda: with_schedule(allowed_end_time="24:00"),
            [*SCHEDULE, "allowed_end_time"],
            "string_pattern_mismatch",
        ),
        (
            lambda: with_schedule(allowed_start_time="18:00", allowed_end_time="09:00"),
            SCHEDULE,
            "value_error",
        ),
        (lambda: with_schedule(timezone="Mars/Olympus"), [*SCHEDULE, "timezone"], "value_error"),
        (lambda: campaign_body(start_timestamp="soon"), ["body", "start_timestamp"], None),
        (
            lambda: campaign_body(end_timestamp="2029-12-31T23:59:59Z"),
            ["body"],
            "value_error",
        ),
        (lambda: [campaign_body()], ["body"], "model_type"),
    ],
)
async def test_create_rejects_what_sarvam_rejects(
    client: httpx.AsyncClient,
    make_body: Callable[[], Any],
    loc: list[str | int],
    kind: str | None,
) -> None:
    response = await client.post(f"{BASE}/campaigns", json=make_body(), headers=KEY)
    error = error_at(response, loc)
    if kind is not None:
        assert error["type"] == kind
    assert (await client.get(f"{BASE}/campaigns", headers=KEY)).json()["total"] == 0


async def test_create_rejects_malformed_json_with_400(client: httpx.AsyncClient) -> None:
    headers = {**KEY, "Content-Type": "application/json"}
    response = await client.post(f"{BASE}/campaigns", content=b'{"name": ', headers=headers)
    assert response.status_code == 400
    assert response.json() == {"detail": "Malformed JSON body"}


# --- status actions ---------------------------------------------------------------------------


async def test_pause_resume_cancel(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    paused = await act(client, campaign_id, "pause")
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused"
    assert paused.json()["updated_by"] == "api-key"
    assert set(paused.json()) == RECORD_KEYS

    resumed = await act(client, campaign_id, "resume")
    assert resumed.json()["status"] == "scheduled"

    cancelled = await act(client, campaign_id, "cancel")
    assert cancelled.json()["status"] == "cancelled"
    fetched = await client.get(f"{BASE}/campaigns/{campaign_id}", headers=KEY)
    assert fetched.json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ([], "resume"),
        (["pause"], "pause"),
        (["cancel"], "cancel"),
        (["cancel"], "resume"),
        (["cancel"], "pause"),
    ],
)
async def test_actions_the_status_does_not_allow_are_409(
    client: httpx.AsyncClient, setup: list[str], action: str
) -> None:
    campaign_id = await create(client)
    for step in setup:
        assert (await act(client, campaign_id, step)).status_code == 200
    response = await act(client, campaign_id, action)
    assert response.status_code == 409
    assert isinstance(response.json()["detail"], str)


async def test_unknown_action_is_422(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    response = await act(client, campaign_id, "stop")
    assert error_at(response, ["body", "action"])["type"] == "literal_error"


async def test_status_follows_the_clock(client: httpx.AsyncClient, clock: FakeClock) -> None:
    campaign_id = await create(client)
    url = f"{BASE}/campaigns/{campaign_id}"
    assert (await client.get(url, headers=KEY)).json()["status"] == "scheduled"

    clock.now = START + timedelta(hours=1)
    assert (await client.get(url, headers=KEY)).json()["status"] == "active"
    assert (await act(client, campaign_id, "pause")).json()["status"] == "paused"
    assert (await act(client, campaign_id, "resume")).json()["status"] == "scheduled"
    assert (await client.get(url, headers=KEY)).json()["status"] == "active"

    clock.now = START + timedelta(days=60)
    assert (await client.get(url, headers=KEY)).json()["status"] == "ended"
    for action in ("pause", "resume", "cancel"):
        assert (await act(client, campaign_id, action)).status_code == 409
    edit = await client.patch(url, json={"name": "late"}, headers=KEY)
    assert edit.status_code == 409


# --- partial update ---------------------------------------------------------------------------


async def test_patch_merges_into_the_record(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    patch = {
        "name": "Renewals v2",
        "app_config": {"attempts_per_second": 5, "retry_config": {"max_retries": 4}},
        "allowed_schedule": {"allowed_days": ["Friday"]},
        "status": "active",
    }
    response = await client.patch(f"{BASE}/campaigns/{campaign_id}", json=patch, headers=KEY)
    assert response.status_code == 200
    record = response.json()
    assert record["name"] == "Renewals v2"
    assert record["status"] == "scheduled"
    assert record["updated_by"] == "api-key"
    assert record["app_config"]["attempts_per_second"] == 5
    assert record["app_config"]["app_id"] == "app_42"
    assert record["app_config"]["retry_config"]["max_retries"] == 4
    assert record["app_config"]["retry_config"]["retry_on"]["busy"] == {"enabled": True}
    assert record["allowed_schedule"] == {
        "allowed_start_time": "09:00",
        "allowed_end_time": "18:00",
        "allowed_days": ["Friday"],
        "timezone": "Asia/Kolkata",
    }
    fetched = await client.get(f"{BASE}/campaigns/{campaign_id}", headers=KEY)
    assert fetched.json() == record


async def test_patch_is_allowed_while_paused(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    await act(client, campaign_id, "pause")
    url = f"{BASE}/campaigns/{campaign_id}"
    response = await client.patch(url, json={"description": "edited"}, headers=KEY)
    assert response.status_code == 200
    assert response.json()["description"] == "edited"
    assert response.json()["status"] == "paused"


@pytest.mark.parametrize(
    ("patch", "loc"),
    [
        ({"end_timestamp": "2029-06-01T00:00:00Z"}, ["body"]),
        ({"allowed_schedule": {"timezone": "Nowhere/City"}}, [*SCHEDULE, "timezone"]),
        ({"app_config": {"app_type": "robot"}}, [*APP, "app_type"]),
        ({"name": None}, ["body", "name"]),
        (["name"], ["body"]),
    ],
)
async def test_patch_validates_the_merged_campaign(client: httpx.AsyncClient, patch: Any, loc: list[str]) -> None:
    campaign_id = await create(client)
    url = f"{BASE}/campaigns/{campaign_id}"
    error_at(await client.patch(url, json=patch, headers=KEY), loc)
    assert (await client.get(url, headers=KEY)).json()["name"] == "Renewals"


async def test_patch_is_refused_while_active_or_cancelled(client: httpx.AsyncClient, clock: FakeClock) -> None:
    active_id = await create(client)
    cancelled_id = await create(client)
    await act(client, cancelled_id, "cancel")
    clock.now = START + timedelta(hours=1)
    for campaign_id in (active_id, cancelled_id):
        url = f"{BASE}/campaigns/{campaign_id}"
        response = await client.patch(url, json={"name": "x"}, headers=KEY)
        assert response.status_code == 409
        assert "detail" in response.json()


# --- cohorts ----------------------------------------------------------------------------------


async def upload(
    client: httpx.AsyncClient,
    campaign_id: str,
    csv_text: str = CSV,
    mapping: dict[str, Any] | str = MAPPING,
    name: str | None = "first batch",
) -> httpx.Response:
    data = {"name": name} if name is not None else {}
    url = f"{BASE}/campaigns/{campaign_id}/cohorts/upload"
    return await client.post(url, data=data, files=cohort_files(csv_text, mapping), headers=KEY)


async def test_cohort_upload_parses_and_counts_rows(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    response = await upload(client, campaign_id)
    assert response.status_code == 200
    cohort = response.json()
    assert cohort["status"] == "processing"
    assert cohort["name"] == "first batch"
    assert cohort["result"] == {"total_records": 4, "valid_records": 2, "rejected_records": 2}

    listed = (await client.get(f"{BASE}/campaigns/{campaign_id}/cohorts", headers=KEY)).json()
    assert listed["total"] == 1
    assert listed["items"][0]["cohort_id"] == cohort["cohort_id"]
    assert listed["items"][0]["status"] == "completed"

    url = f"{BASE}/campaigns/{campaign_id}/cohorts/{cohort['cohort_id']}/records"
    records = (await client.get(url, headers=KEY)).json()
    assert records["total"] == 2
    assert records["items"] == [
        {
            "phone_number": "+919812345678",
            "user_identifier": "c-1",
            "app_variables": {"city": "Pune"},
            "status": "pending",
        },
        {
            "phone_number": "+14155550100",
            "user_identifier": "c-4",
            "app_variables": {"city": ""},
            "status": "pending",
        },
    ]


async def test_cohorts_and_records_page(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    first = (await upload(client, campaign_id, name="one")).json()["cohort_id"]
    second = (await upload(client, campaign_id, name="two")).json()["cohort_id"]
    url = f"{BASE}/campaigns/{campaign_id}/cohorts"
    page = (await client.get(f"{url}?limit=1", headers=KEY)).json()
    assert [item["cohort_id"] for item in page["items"]] == [second]
    assert page["next_page_uri"] == f"{url}?offset=1&limit=1"
    records = (await client.get(f"{url}/{first}/records?offset=1&limit=1", headers=KEY)).json()
    assert [item["phone_number"] for item in records["items"]] == ["+14155550100"]
    assert records["prev_page_uri"] == f"{url}/{first}/records?offset=0&limit=1"


async def test_a_cohort_without_valid_rows_fails(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    response = await upload(client, campaign_id, csv_text="phone,customer,city\n12345,c,x\n")
    assert response.json()["result"]["valid_records"] == 0
    listed = (await client.get(f"{BASE}/campaigns/{campaign_id}/cohorts", headers=KEY)).json()
    assert listed["items"][0]["status"] == "failed"


async def test_cohort_upload_without_files_lists_each_missing_field(
    client: httpx.AsyncClient,
) -> None:
    campaign_id = await create(client)
    url = f"{BASE}/campaigns/{campaign_id}/cohorts/upload"
    response = await client.post(url, data={"cohort_file": "not a file"}, headers=KEY)
    assert error_at(response, ["body", "name"])["type"] == "missing"
    assert error_at(response, ["body", "cohort_file"])["type"] == "value_error"
    assert error_at(response, ["body", "cohort_transformation_file"])["type"] == "missing"


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"name": "bad/name!"}, ["body", "name"]),
        ({"name": "x" * 51}, ["body", "name"]),
        ({"csv_text": "phone,customer,city\n"}, ["body", "cohort_file"]),
        ({"csv_text": ""}, ["body", "cohort_file"]),
        ({"mapping": "{not json"}, ["body", "cohort_transformation_file"]),
        (
            {"mapping": {"user_identifier": "customer"}},
            ["body", "cohort_transformation_file", "phone_number"],
        ),
        ({"mapping": {"phone_number": "mobile"}}, ["body", "cohort_transformation_file"]),
        (
            {"mapping": {"phone_number": "phone", "app_variables": ["plan"]}},
            ["body", "cohort_transformation_file"],
        ),
    ],
)
async def test_cohort_upload_rejects_bad_input(
    client: httpx.AsyncClient, changes: dict[str, Any], loc: list[str]
) -> None:
    campaign_id = await create(client)
    error_at(await upload(client, campaign_id, **changes), loc)
    listed = (await client.get(f"{BASE}/campaigns/{campaign_id}/cohorts", headers=KEY)).json()
    assert listed["total"] == 0


async def test_cohort_upload_to_a_cancelled_campaign_is_409(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    await act(client, campaign_id, "cancel")
    assert (await upload(client, campaign_id)).status_code == 409


# --- not found --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/campaigns/nope", {}),
        ("PATCH", "/campaigns/nope", {"json": {"name": "x"}}),
        ("PUT", "/campaigns/nope/status", {"json": {"action": "pause"}}),
        ("GET", "/campaigns/nope/cohorts", {}),
        ("POST", "/campaigns/nope/cohorts/upload", {"files": cohort_files(CSV, MAPPING)}),
    ],
)
async def test_unknown_campaign_is_404(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = await client.request(method, f"{BASE}{path}", headers=KEY, **kwargs)
    assert response.status_code == 404
    assert response.json() == {"detail": "Campaign not found"}


async def test_unknown_cohort_and_path_are_404(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    url = f"{BASE}/campaigns/{campaign_id}/cohorts/nope/records"
    assert (await client.get(url, headers=KEY)).json() == {"detail": "Cohort not found"}
    unknown = await client.get(f"{BASE}/deployments", headers=KEY)
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Not Found"}


async def test_delete_is_not_offered(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    response = await client.delete(f"{BASE}/campaigns/{campaign_id}", headers=KEY)
    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}


# --- call counts ------------------------------------------------------------------------------


async def test_calls_are_counted_per_operation(client: httpx.AsyncClient) -> None:
    campaign_id = await create(client)
    url = f"{BASE}/campaigns/{campaign_id}"
    await client.get(url, headers=KEY)
    await client.get(f"{BASE}/campaigns", headers=KEY)
    await client.patch(url, json={"name": "n"}, headers=KEY)
    await act(client, campaign_id, "pause")
    cohort_id = (await upload(client, campaign_id)).json()["cohort_id"]
    await client.get(f"{url}/cohorts", headers=KEY)
    await client.get(f"{url}/cohorts/{cohort_id}/records", headers=KEY)
    await client.get(url)  # refused, still counted

    counts = (await client.get("/_sandbox/calls")).json()
    assert counts == {
        "create": 1,
        "get": 2,
        "list": 1,
        "update": 1,
        "status": 1,
        "recipients_add": 1,
        "recipients_list": 2,
    }
