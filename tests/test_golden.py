"""Golden files: seed answers of each vendor translated to canonical campaigns, and canonical creates
translated to vendor requests. Expected values in tests/golden were written by hand from the maps and
the vendor docs, not produced by the engine.
"""

from __future__ import annotations

import csv
import io
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway import models
from gateway.engine import vendor_request
from gateway.mapping import VendorMap, load_map, load_maps, lookups

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"
GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_FILES = sorted(GOLDEN.glob("*/*.json"))
RESPONSE_CASES = [p for p in GOLDEN_FILES if "vendor_payload" in json.loads(p.read_text())]
REQUEST_CASES = [p for p in GOLDEN_FILES if "canonical_request" in json.loads(p.read_text())]
VENDOR_NAMES = ("hamsa", "voiso", "sarvam", "dialnexa", "vapi", "elevenlabs", "bland", "exotel")
NOW = "2026-01-01T00:00:00Z"


@cache
def vendor_map(vendor: str) -> VendorMap:
    loaded, problems = load_map(MAPPINGS / f"{vendor}.yaml")
    assert loaded is not None and not problems, [str(p) for p in problems]
    return loaded


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def tables(path: Path, case: dict[str, Any]) -> lookups.Loaded | None:
    """The lookup tables a case's vendor list answers give (``lookups``: name -> the vendor's answer)."""
    compiled = vendor_map(path.parent.name).lookups
    answers = case.get("lookups", {})
    return lookups.Loaded({name: compiled[name].table(answer) for name, answer in answers.items()}) if answers else None


def parse(path: Path, case: dict[str, Any], include_vendor_data: bool) -> Any:
    operation = vendor_map(path.parent.name).operations[case["operation"]]
    with lookups.using(tables(path, case)):
        return operation.parse_response(
            case["vendor_payload"], {"page": {"offset": 0, "limit": 20}}, include_vendor_data
        )


def differences(actual: Any, expected: Any, where: str = "") -> list[str]:
    """Every differing field, by dotted path, so a failure names the field and both values."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        out: list[str] = []
        for key in sorted(set(actual) | set(expected), key=str):
            here = f"{where}.{key}" if where else str(key)
            if key not in actual:
                out.append(f"{here}: missing from the result (expected {expected[key]!r})")
            elif key not in expected:
                out.append(f"{here}: not expected (got {actual[key]!r})")
            else:
                out.extend(differences(actual[key], expected[key], here))
        return out
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected):
        return [
            d for i, (a, e) in enumerate(zip(actual, expected, strict=True)) for d in differences(a, e, f"{where}[{i}]")
        ]
    if actual != expected or type(actual) is not type(expected):
        return [f"{where or 'value'}: got {actual!r}, expected {expected!r}"]
    return []


def assert_same(actual: Any, expected: Any, label: str) -> None:
    found = differences(actual, expected)
    assert not found, f"{label}: " + "; ".join(found)
    assert actual == expected


def test_golden_files_are_all_of_a_known_kind() -> None:
    assert GOLDEN_FILES, "no golden files found"
    assert len(RESPONSE_CASES) + len(REQUEST_CASES) == len(GOLDEN_FILES)
    vendors = {p.parent.name for p in GOLDEN_FILES}
    assert vendors == {"hamsa", "voiso", "sarvam", "generic", "vapi", "elevenlabs", "bland", "exotel"}
    # and, for vendors whose create takes a webhook URL, a create on a connection with events
    hooked = {f"{v}/create_request_events" for v in ("vapi", "bland", "exotel")}
    assert {case_id(p) for p in REQUEST_CASES} == {f"{v}/create_request" for v in vendors} | hooked
    for path in REQUEST_CASES:  # with events the client's webhook_url is its destination, never sent on
        case = json.loads(path.read_text())
        assert ("hook_url" in case) is (case_id(path) in hooked), case_id(path)
        assert "hook_url" not in case or "webhook_url" not in case["canonical_request"], case_id(path)
    for path in RESPONSE_CASES:
        case = json.loads(path.read_text())
        assert case["operation"] in ("get", "create", "list"), case_id(path)
        assert not {"connection", "vendor", "vendor_data"} & set(case["canonical"]), case_id(path)
        if "canonical_with_vendor_data" in case:
            extended = dict(case["canonical_with_vendor_data"])
            assert isinstance(extended.pop("vendor_data"), dict), case_id(path)
            assert extended == case["canonical"], case_id(path)


def test_differences_names_the_field() -> None:
    found = differences({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 2, "c": [1, 3]}})
    assert found == ["a.b: got 1, expected 2", "a.c[1]: got 2, expected 3"]
    assert differences({"x": 1}, {"x": 1.0}) == ["x: got 1, expected 1.0"]


# ---------------------------------------------------------------------------------------------- answers


@pytest.mark.parametrize("path", RESPONSE_CASES, ids=case_id)
def test_vendor_answer_to_canonical(path: Path) -> None:
    case = json.loads(path.read_text())
    assert_same(parse(path, case, False), case["canonical"], case_id(path))


@pytest.mark.parametrize(
    "path", [p for p in RESPONSE_CASES if "canonical_with_vendor_data" in json.loads(p.read_text())], ids=case_id
)
def test_vendor_answer_with_vendor_data(path: Path) -> None:
    case = json.loads(path.read_text())
    assert_same(parse(path, case, True), case["canonical_with_vendor_data"], case_id(path) + " (include=vendor_data)")


@pytest.mark.parametrize("include_vendor_data", [False, True], ids=["plain", "vendor_data"])
@pytest.mark.parametrize("path", RESPONSE_CASES, ids=case_id)
def test_canonical_answer_is_a_valid_campaign(path: Path, include_vendor_data: bool) -> None:
    case = json.loads(path.read_text())
    vendor = path.parent.name
    result = parse(path, case, include_vendor_data)
    try:
        campaign = models.Campaign.model_validate({"connection": "c1", "vendor": vendor, **result})
    except ValidationError as exc:
        pytest.fail(f"{case_id(path)}: the canonical answer breaks the Campaign schema: {exc}")
    assert campaign.id == case["canonical"]["id"]
    if include_vendor_data:
        assert isinstance(result["vendor_data"], dict)


def test_expected_canonical_values_are_valid_campaigns() -> None:
    """The hand-written expectations themselves respect the canonical schema."""
    for path in RESPONSE_CASES:
        case = json.loads(path.read_text())
        for key in ("canonical", "canonical_with_vendor_data"):
            if key in case:
                models.Campaign.model_validate({"connection": "c1", "vendor": path.parent.name, **case[key]})


def test_vendor_data_is_an_object_when_every_field_was_read() -> None:
    """An answer whose every field has a canonical home still has vendor_data {} (a JSON object)."""
    operation = vendor_map("generic").operations["get"]
    result = operation.parse_response({"id": "cmp_1", "name": "Only mapped fields"}, {}, True)
    assert result["vendor_data"] == {}, f"vendor_data is {result['vendor_data']!r}, expected {{}}"


# ---------------------------------------------------------------------------------------------- requests


def create_context(body: dict[str, Any], params: dict[str, Any], hook_url: str | None = None) -> dict[str, Any]:
    return {
        "hook_url": hook_url,  # the gateway's callback, on a connection with events
        "body": body,
        "id": None,
        "params": params,
        "page": {"offset": 0, "limit": 20, "number": 1, "cursor": None},
        "filter": {"status": None},
        "now": NOW,
    }


@pytest.mark.parametrize("path", REQUEST_CASES, ids=case_id)
def test_canonical_create_to_vendor_request(path: Path) -> None:
    case = json.loads(path.read_text())
    body = models.CampaignCreate.model_validate(case["canonical_request"]).model_dump(mode="json", exclude_none=True)
    operation = vendor_map(path.parent.name).operations[case["operation"]]
    assert operation.fields is not None
    assert operation.fields.apply(body, False, "vendor").problems == [], "the golden request is refused as it is"
    with lookups.using(tables(path, case)):  # the engine's own path: vendor_options merged where the map says
        context = create_context(body, case["params"], case.get("hook_url"))
        request = vendor_request(operation, context, path.parent.name)
    expected = case["vendor_request"]
    assert request.method == expected["method"]
    assert request.path == expected["path"]
    assert request.query == {}
    assert request.data is None and request.files is None
    assert_same(request.json, expected["json"], case_id(path))


@pytest.mark.parametrize(
    ("vendor", "expected"),
    [
        ("hamsa", ["agent_id", "from_number", "recipients", "recipients[*].name"]),
        ("voiso", []),
        ("sarvam", ["agent_id", "from_number", "schedule.end_at"]),
        ("generic", []),
        ("vapi", ["agent_id", "from_number", "recipients"]),
        ("elevenlabs", ["agent_id", "from_number", "recipients"]),
        ("bland", ["recipients"]),
        ("exotel", ["from_number", "recipients"]),
    ],
)
def test_create_required_fields(vendor: str, expected: list[str]) -> None:
    assert vendor_map(vendor).capabilities["create"]["required"] == expected


def test_hamsa_create_without_schedule_sends_now_and_defaults() -> None:
    body = models.CampaignCreate.model_validate(
        {
            "name": "Now",
            "agent_id": "a1",
            "from_number": "+14155551212",
            "recipients": [{"phone_number": "+14155550100"}],
        }
    ).model_dump(mode="json", exclude_none=True)
    request = vendor_map("hamsa").operations["create"].build_request(create_context(body, {}))
    assert request.json == {
        "name": "Now",
        "phoneNumber": "+14155551212",
        "voiceAgentId": "a1",
        "recipients": [{"phoneNumber": "+14155550100", "ignoreE164Validation": False}],
        "sendType": "NOW",
        "timeRange": {
            "days": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
            "startCallingTime": "00:00",
            "endCallingTime": "23:59",
        },
        "reservedConcurrency": 1,
    }


def test_hamsa_create_start_at_without_timezone_is_utc() -> None:
    body = models.CampaignCreate.model_validate({"name": "Later", "start_at": "2026-03-01T08:00:00+01:00"}).model_dump(
        mode="json", exclude_none=True
    )
    request = vendor_map("hamsa").operations["create"].build_request(create_context(body, {}))
    assert request.json["sendType"] == "SCHEDULED"
    assert request.json["scheduledDate"] == "2026-03-01T07:00:00Z"
    assert request.json["scheduledTimezone"] == "UTC"


def test_sarvam_create_without_start_starts_now() -> None:
    body = models.CampaignCreate.model_validate(
        {
            "name": "Now",
            "agent_id": "app_1",
            "from_number": "+919876543210",
            "schedule": {"end_at": "2026-01-08T00:00:00Z"},
        }
    ).model_dump(mode="json", exclude_none=True)
    params = {"org_id": "o", "workspace_id": "w", "connection_id": "c"}
    operation = vendor_map("sarvam").operations["create"]
    assert operation.refetch is True
    request = operation.build_request(create_context(body, params))
    assert request.json["start_timestamp"] == NOW
    assert request.json["allowed_schedule"] == {
        "timezone": "UTC",
        "allowed_days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
        "allowed_start_time": "00:00",
        "allowed_end_time": "23:59",
    }
    assert "retry_config" not in request.json["app_config"]


def test_sarvam_recipients_add_uploads_csv_and_transformation() -> None:
    body = models.RecipientsAdd.model_validate(
        {
            "recipients": [
                {"phone_number": "+919876543210", "name": "Asha", "variables": {"city": "Pune", "due": 1200}},
                {"phone_number": "+919812345678", "variables": {"plan": "gold, annual", "city": "Delhi"}},
                {"phone_number": "+919800000000", "name": "Ravi"},
            ]
        }
    ).model_dump(mode="json", exclude_none=True)
    params = {"org_id": "org1", "workspace_id": "ws1", "connection_id": "conn1"}
    context = {**create_context(body, params), "id": "cmp/1"}
    request = vendor_map("sarvam").operations["recipients_add"].build_request(context)
    assert request.method == "POST"
    assert request.path == "/v1/orgs/org1/workspaces/ws1/campaigns/cmp%2F1/cohorts/upload"
    assert request.json is None
    assert request.data == {"name": "gateway-upload"}
    files = dict(request.files or [])
    assert list(files) == ["cohort_file", "cohort_transformation_file"]

    filename, content, content_type = files["cohort_file"]
    assert (filename, content_type) == ("recipients.csv", "text/csv")
    text = content.decode()
    assert text == (
        "phone_number,user_identifier,city,due,plan\n"
        "+919876543210,Asha,Pune,1200,\n"
        '+919812345678,,Delhi,,"gold, annual"\n'
        "+919800000000,Ravi,,,\n"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[1] == {
        "phone_number": "+919812345678",
        "user_identifier": "",
        "city": "Delhi",
        "due": "",
        "plan": "gold, annual",
    }

    filename, content, content_type = files["cohort_transformation_file"]
    assert (filename, content_type) == ("transformation.json", "application/json")
    assert json.loads(content) == {
        "phone_number": "phone_number",
        "user_identifier": "user_identifier",
        "app_variables": ["city", "due", "plan"],
    }


def test_sarvam_recipients_add_without_variables() -> None:
    body = {"recipients": [{"phone_number": "+919876543210"}]}
    context = {**create_context(body, {"org_id": "o", "workspace_id": "w"}), "id": "c1"}
    request = vendor_map("sarvam").operations["recipients_add"].build_request(context)
    files = dict(request.files or [])
    assert files["cohort_file"][1].decode() == "phone_number,user_identifier\n+919876543210,\n"
    assert json.loads(files["cohort_transformation_file"][1])["app_variables"] == []


# ---------------------------------------------------------------------------------------------- maps and code


def test_every_map_compiles_without_problems() -> None:
    maps, problems = load_maps(MAPPINGS)
    assert problems == [], [str(p) for p in problems]
    assert set(maps) == {"hamsa", "voiso", "sarvam", "generic", "dialnexa", "vapi", "elevenlabs", "bland", "exotel"}
    assert maps["dialnexa"] is maps["generic"]
    for name, compiled in maps.items():
        assert {"create", "get", "list"} <= set(compiled.operations), name


def test_no_vendor_name_in_gateway_code() -> None:
    pattern = re.compile("|".join(VENDOR_NAMES), re.IGNORECASE)
    sources = sorted((ROOT / "gateway").rglob("*.py"))
    assert len(sources) > 10
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    offenders += [str(path.relative_to(ROOT)) for path in sources if pattern.search(str(path.relative_to(ROOT)))]
    assert offenders == [], "vendor names in engine code:\n" + "\n".join(offenders)
