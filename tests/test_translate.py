"""`gateway translate`: the vendor request a canonical request becomes, for each shipped vendor.

Runs ``gateway.cli.main`` in-process on the shipped config.yaml (all four connections sandboxed)
and on a copy whose connections point at an unroutable address (http://127.0.0.1:9) with a long
credential. Nothing may be sent: the gateway's transports are replaced by ones that fail the test.
Every printed request has its credentials masked ("[redacted]"); an operation the vendor lacks
exits 1 with the operation_not_supported envelope on stderr; ``--response`` prints the
canonical campaign a vendor answer becomes.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import cli, transport
from tests.conftest import ROOT, write_config

SHIPPED = ROOT / "config.yaml"
GOLDEN = ROOT / "tests" / "golden"
SANDBOX_CREDENTIAL = "sandbox-key"  # the shipped config's credential for every connection
SECRET = "sk_live_translate_SECRET_9f8e7d6c5b4a"
UNROUTABLE = "http://127.0.0.1:9"
FUTURE = "2031-05-04T09:00:00Z"
RECIPIENTS = [
    {"phone_number": "+14155550111", "name": "Ann", "variables": {"city": "Paris"}},
    {"phone_number": "+919876543210", "name": "Bob", "variables": {"city": "Pune"}},
]

# connection -> (auth header name, its masked value)
AUTH = {
    "hamsa-sandbox": ("Authorization", "Token [redacted]"),
    "voiso-sandbox": ("Authorization", "Bearer [redacted]"),
    "sarvam-sandbox": ("X-API-Key", "[redacted]"),
    "dialnexa-sandbox": ("Authorization", "Bearer [redacted]"),
    "vapi-sandbox": ("Authorization", "Bearer [redacted]"),
    "elevenlabs-sandbox": ("xi-api-key", "[redacted]"),
    "exotel-sandbox": ("Authorization", "Basic [redacted]"),
}
SARVAM_BASE = "http://sandbox/v1/orgs/demo-org/workspaces/demo-workspace/campaigns"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """translate must never send: any transport use fails the test."""

    async def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("gateway translate sent a request")

    monkeypatch.setattr(transport.AiohttpTransport, "send", refuse)
    monkeypatch.setattr(transport.HttpxTransport, "send", refuse)
    monkeypatch.setattr(httpx.AsyncClient, "send", refuse)


def translate(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    connection: str,
    operation: str,
    *,
    body: Any = None,
    campaign_id: str | None = None,
    response: Any = None,
    config: Path = SHIPPED,
    handling: str = "strict",
) -> tuple[int, Any, str]:
    """Run `gateway translate`; answer its exit code, its stdout as JSON (or None) and its stderr."""
    argv = ["translate", "--config", str(config), "--connection", connection, operation, "--handling", handling]
    if body is not None:
        body_file = tmp_path / f"body-{operation}.json"
        body_file.write_text(json.dumps(body))
        argv += ["--body", str(body_file)]
    if campaign_id is not None:
        argv += ["--id", campaign_id]
    if response is not None:
        response_file = tmp_path / f"response-{operation}.json"
        response_file.write_text(json.dumps(response))
        argv += ["--response", str(response_file)]
    capsys.readouterr()
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def only_request(output: dict[str, Any], connection: str, operation: str) -> dict[str, Any]:
    assert output["operation"] == operation
    assert output["vendor"] == connection.removesuffix("-sandbox")
    assert len(output["requests"]) == 1, output
    return check_masked(output["requests"][0], connection)


def check_masked(request: dict[str, Any], connection: str) -> dict[str, Any]:
    name, masked = AUTH[connection]
    assert request["headers"][name] == masked, request["headers"]
    assert request["headers"]["accept"] == "application/json"
    assert SANDBOX_CREDENTIAL not in json.dumps(request)
    return request


def not_offered(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, connection: str, operation: str, **kwargs: Any
) -> None:
    code, out, err = translate(capsys, tmp_path, connection, operation, **kwargs)
    assert code == 1
    assert out is None
    error = json.loads(err)["error"]
    assert error["code"] == "operation_not_supported", err
    vendor = connection.removesuffix("-sandbox")
    assert error["vendor"] == vendor
    assert vendor in error["message"] and operation in error["message"]


def golden_get(vendor: str) -> dict[str, Any]:
    return json.loads((GOLDEN / vendor / "get.json").read_text())


def check_response(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, connection: str, golden_vendor: str
) -> dict[str, Any]:
    """--response with the vendor's seed answer prints the canonical campaign (vendor_data included)."""
    case = golden_get(golden_vendor)
    vendor_id = case["canonical"]["id"]
    code, out, err = translate(
        capsys, tmp_path, connection, "get", campaign_id=vendor_id, response=case["vendor_payload"]
    )
    assert code == 0, err
    expected = {
        "connection": connection,
        "vendor": connection.removesuffix("-sandbox"),
        **case["canonical_with_vendor_data"],
    }
    assert out == expected
    return out


# ------------------------------------------------------------------------------------------------ hamsa


def test_hamsa(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    connection = "hamsa-sandbox"
    body = {
        "name": "Spring",
        "agent_id": "3f2a6c1e-8b7d-4e2f-9a10-1b2c3d4e5f60",
        "from_number": "+14155550100",
        "recipients": RECIPIENTS,
        "start_at": FUTURE,
        "schedule": {"timezone": "Europe/Berlin", "days": ["monday", "friday"], "daily_start": "09:00"},
        "max_concurrent_calls": 3,
        "webhook_url": "https://hooks.example.com/x",
    }
    code, out, err = translate(capsys, tmp_path, connection, "create", body=body)
    assert code == 0, err
    request = only_request(out, connection, "create")
    assert (request["method"], request["url"]) == ("POST", "http://sandbox/v1/voice-agents/campaigns")
    assert request["headers"]["content-type"] == "application/json"
    assert request["body"] == {
        "name": "Spring",
        "phoneNumber": "+14155550100",
        "voiceAgentId": "3f2a6c1e-8b7d-4e2f-9a10-1b2c3d4e5f60",
        "recipients": [
            {
                "phoneNumber": "+14155550111",
                "name": "Ann",
                "dynamicVariables": {"city": "Paris"},
                "ignoreE164Validation": False,
            },
            {
                "phoneNumber": "+919876543210",
                "name": "Bob",
                "dynamicVariables": {"city": "Pune"},
                "ignoreE164Validation": False,
            },
        ],
        "sendType": "SCHEDULED",
        "scheduledDate": FUTURE,
        "scheduledTimezone": "Europe/Berlin",
        "timeRange": {"days": ["MONDAY", "FRIDAY"], "startCallingTime": "09:00", "endCallingTime": "23:59"},
        "reservedConcurrency": 3,
        "webhookUrl": "https://hooks.example.com/x",
    }

    code, out, err = translate(capsys, tmp_path, connection, "get", campaign_id="a8f7-1")
    assert code == 0, err
    request = only_request(out, connection, "get")
    assert (request["method"], request["url"], request["body"]) == (
        "GET",
        "http://sandbox/v1/voice-agents/campaigns/a8f7-1",
        None,
    )
    assert "content-type" not in request["headers"]

    code, out, err = translate(capsys, tmp_path, connection, "list")
    assert code == 0, err
    request = only_request(out, connection, "list")
    assert (request["method"], request["url"]) == ("GET", "http://sandbox/v1/voice-agents/campaigns?take=20&skip=0")

    # Hamsa documents no lifecycle, update, delete or recipients_add
    for operation in ("pause", "resume", "cancel", "delete"):
        not_offered(capsys, tmp_path, connection, operation, campaign_id="a8f7-1")
    not_offered(capsys, tmp_path, connection, "recipients_add", campaign_id="a8f7-1", body={"recipients": RECIPIENTS})

    # a field Hamsa cannot carry is refused, naming it
    code, out, err = translate(capsys, tmp_path, connection, "create", body={**body, "retry": {"max_attempts": 2}})
    assert code == 1 and out is None
    error = json.loads(err)["error"]
    assert error["code"] == "validation_error"
    assert "retry" in json.dumps(error)

    canonical = check_response(capsys, tmp_path, connection, "hamsa")
    assert canonical["status"] == "scheduled"


# ------------------------------------------------------------------------------------------------ voiso


def test_voiso(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    connection = "voiso-sandbox"
    body = {
        "name": "Leads",
        "from_number": "+14155550100",
        "schedule": {"timezone": "Europe/London", "daily_start": "08:30", "daily_end": "17:45"},
        "retry": {"max_attempts": 3, "interval_minutes": 15},
    }
    code, out, err = translate(capsys, tmp_path, connection, "create", body=body)
    assert code == 0, err
    request = only_request(out, connection, "create")
    assert (request["method"], request["url"]) == ("POST", "http://sandbox/api/v4/campaigns")
    assert request["body"] == {
        "name": "Leads",
        "campaign_type": "live",
        "timezone": "Europe/London",
        "start_hour": "08:30",
        "end_hour": "17:45",
        "retry_attempts": 2,
        "retry_interval": 15,
        "teams": ["demo-team"],
        "caller_id_sets": [{"phone_numbers": ["14155550100"]}],
    }

    code, out, err = translate(capsys, tmp_path, connection, "get", campaign_id="42")
    assert code == 0, err
    assert only_request(out, connection, "get")["url"] == "http://sandbox/api/v4/campaigns/42"

    code, out, err = translate(capsys, tmp_path, connection, "list")
    assert code == 0, err
    assert only_request(out, connection, "list")["url"] == "http://sandbox/api/v4/campaigns?limit=20&offset=0"

    for operation, verb in (("pause", "pause"), ("resume", "start"), ("cancel", "stop")):
        code, out, err = translate(capsys, tmp_path, connection, operation, campaign_id="42")
        assert code == 0, err
        request = only_request(out, connection, operation)
        assert (request["method"], request["url"]) == ("POST", f"http://sandbox/api/v4/campaigns/42/{verb}")

    # A lead has no variables: refused as it is, left out (and named) when lenient.
    code, out, err = translate(
        capsys, tmp_path, connection, "recipients_add", campaign_id="42", body={"recipients": RECIPIENTS}
    )
    assert code == 1 and '"recipients[*].variables"' in err
    code, out, err = translate(
        capsys,
        tmp_path,
        connection,
        "recipients_add",
        campaign_id="42",
        body={"recipients": RECIPIENTS},
        handling="lenient",
    )
    assert code == 0, err
    assert out["dropped"] == ["recipients[*].variables"]
    request = only_request(out, connection, "recipients_add")
    assert (request["method"], request["url"]) == ("POST", "http://sandbox/api/v4/campaigns/42/leads")
    assert request["body"] == [
        {"phone_number": "14155550111", "name": "Ann"},
        {"phone_number": "919876543210", "name": "Bob"},
    ]

    not_offered(capsys, tmp_path, connection, "delete", campaign_id="42")
    not_offered(capsys, tmp_path, connection, "update", campaign_id="42", body={"name": "Renamed"})
    not_offered(capsys, tmp_path, connection, "recipients_list", campaign_id="42")

    canonical = check_response(capsys, tmp_path, connection, "voiso")
    assert canonical["from_numbers"] == ["+18885650001", "+18885650002"]

    # a list answer becomes a canonical page
    vendor_campaign = golden_get("voiso")["vendor_payload"]["campaign"]
    code, out, err = translate(
        capsys, tmp_path, connection, "list", response={"campaigns": [vendor_campaign], "metadata": {"total": 1}}
    )
    assert code == 0, err
    assert set(out) == {"data", "next_cursor"}
    assert out["next_cursor"] is None
    assert [c["id"] for c in out["data"]] == [str(vendor_campaign["id"])]
    assert out["data"][0]["connection"] == connection


# ----------------------------------------------------------------------------------------------- sarvam


def test_sarvam(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    connection = "sarvam-sandbox"
    body = {
        "name": "Reminders",
        "agent_id": "agent-42",
        "from_number": "+919876543210",
        "start_at": "2031-05-01T04:30:00Z",
        "schedule": {"end_at": FUTURE, "timezone": "Asia/Kolkata", "days": ["tuesday"]},
        "retry": {"max_attempts": 2, "interval_minutes": 10},
    }
    code, out, err = translate(capsys, tmp_path, connection, "create", body=body)
    assert code == 0, err
    request = only_request(out, connection, "create")
    assert (request["method"], request["url"]) == ("POST", SARVAM_BASE)
    assert request["body"] == {
        "name": "Reminders",
        "app_config": {
            "app_id": "agent-42",
            "app_type": "agent",
            "connection_configs": [{"connection_id": "demo-connection", "phone_numbers": ["+919876543210"]}],
            "retry_config": {"max_retries": 1, "retry_interval_minutes": 10},
        },
        "start_timestamp": "2031-05-01T04:30:00Z",
        "end_timestamp": FUTURE,
        "allowed_schedule": {
            "timezone": "Asia/Kolkata",
            "allowed_days": ["Tuesday"],
            "allowed_start_time": "00:00",
            "allowed_end_time": "23:59",
        },
    }

    # Sarvam needs an end time: a create without one is refused, naming the field
    code, out, err = translate(
        capsys, tmp_path, connection, "create", body={**body, "schedule": {"timezone": "Asia/Kolkata"}}
    )
    assert code == 1 and out is None
    error = json.loads(err)["error"]
    assert error["code"] == "validation_error"
    assert "schedule.end_at" in json.dumps(error)

    code, out, err = translate(capsys, tmp_path, connection, "get", campaign_id="cmp-7")
    assert code == 0, err
    request = only_request(out, connection, "get")
    assert (request["method"], request["url"]) == ("GET", f"{SARVAM_BASE}/cmp-7")

    code, out, err = translate(capsys, tmp_path, connection, "list")
    assert code == 0, err
    assert only_request(out, connection, "list")["url"] == f"{SARVAM_BASE}?offset=0&limit=20"

    for action in ("pause", "resume", "cancel"):
        code, out, err = translate(capsys, tmp_path, connection, action, campaign_id="cmp-7")
        assert code == 0, err
        request = only_request(out, connection, action)
        assert (request["method"], request["url"]) == ("PUT", f"{SARVAM_BASE}/cmp-7/status")
        assert request["body"] == {"action": action}

    code, out, err = translate(
        capsys, tmp_path, connection, "recipients_add", campaign_id="cmp-7", body={"recipients": RECIPIENTS}
    )
    assert code == 0, err
    request = only_request(out, connection, "recipients_add")
    assert (request["method"], request["url"]) == ("POST", f"{SARVAM_BASE}/cmp-7/cohorts/upload")
    content_type = request["headers"]["content-type"]
    boundary = re.fullmatch(r"multipart/form-data; boundary=(\S+)", content_type)
    assert boundary, content_type
    parts = multipart_parts(request["body"], boundary[1])
    assert parts["name"] == (None, None, "gateway-upload")
    filename, part_type, text = parts["cohort_file"]
    assert (filename, part_type) == ("recipients.csv", "text/csv")
    assert list(csv.reader(io.StringIO(text))) == [
        ["phone_number", "user_identifier", "city"],
        ["+14155550111", "Ann", "Paris"],
        ["+919876543210", "Bob", "Pune"],
    ]
    filename, part_type, text = parts["cohort_transformation_file"]
    assert (filename, part_type) == ("transformation.json", "application/json")
    assert json.loads(text) == {
        "phone_number": "phone_number",
        "user_identifier": "user_identifier",
        "app_variables": ["city"],
    }

    not_offered(capsys, tmp_path, connection, "delete", campaign_id="cmp-7")
    not_offered(capsys, tmp_path, connection, "recipients_list", campaign_id="cmp-7")

    canonical = check_response(capsys, tmp_path, connection, "sarvam")
    assert (canonical["status"], canonical["vendor_status"]) == ("completed", "ended")


def multipart_parts(body: str, boundary: str) -> dict[str, tuple[str | None, str | None, str]]:
    """name -> (filename, content type, text) of each part of a multipart/form-data body."""
    assert body.endswith(f"--{boundary}--\r\n"), body[-80:]
    parts: dict[str, tuple[str | None, str | None, str]] = {}
    for chunk in body.split(f"--{boundary}")[1:-1]:
        head, _, text = chunk.removeprefix("\r\n").partition("\r\n\r\n")
        name = re.search(r'name="([^"]+)"', head)
        filename = re.search(r'filename="([^"]+)"', head)
        part_type = re.search(r"Content-Type: (\S+)", head)
        assert name, head
        parts[name[1]] = (
            filename[1] if filename else None,
            part_type[1] if part_type else None,
            text.removesuffix("\r\n"),
        )
    return parts


# --------------------------------------------------------------------------------------------- dialnexa


def test_dialnexa(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    connection = "dialnexa-sandbox"
    body = {
        "name": "Re-engage",
        "agent_id": "agt_abc123",
        "from_number": "+14155550100",
        "start_at": FUTURE,
        "max_concurrent_calls": 4,
        "retry": {"max_attempts": 3, "interval_minutes": 20},
    }
    code, out, err = translate(capsys, tmp_path, connection, "create", body=body)
    assert code == 0, err
    request = only_request(out, connection, "create")
    assert (request["method"], request["url"]) == ("POST", "http://sandbox/campaigns")
    assert request["body"] == {
        "name": "Re-engage",
        "agent_id": "agt_abc123",
        "from_phone_number": "+14155550100",
        "scheduled_at": FUTURE,
        "max_concurrent_calls": 4,
        "retry_config": {"max_retries": 2, "retry_interval_minutes": 20},
    }

    code, out, err = translate(capsys, tmp_path, connection, "get", campaign_id="cmp_1")
    assert code == 0, err
    assert only_request(out, connection, "get")["url"] == "http://sandbox/campaigns/cmp_1"

    code, out, err = translate(capsys, tmp_path, connection, "list")
    assert code == 0, err
    assert only_request(out, connection, "list")["url"] == "http://sandbox/campaigns?limit=20&offset=0"

    for action, status in (("pause", "paused"), ("resume", "active"), ("cancel", "cancelled")):
        code, out, err = translate(capsys, tmp_path, connection, action, campaign_id="cmp_1")
        assert code == 0, err
        request = only_request(out, connection, action)
        assert (request["method"], request["url"], request["body"]) == (
            "PATCH",
            "http://sandbox/campaigns/cmp_1",
            {"status": status},
        )

    # one vendor request per recipient
    code, out, err = translate(
        capsys, tmp_path, connection, "recipients_add", campaign_id="cmp_1", body={"recipients": RECIPIENTS}
    )
    assert code == 0, err
    assert out["operation"] == "recipients_add"
    requests = [check_masked(r, connection) for r in out["requests"]]
    assert [(r["method"], r["url"]) for r in requests] == [("POST", "http://sandbox/campaigns-leads")] * 2
    assert [r["body"] for r in requests] == [
        {
            "name": "Ann",
            "phoneNumber": "4155550111",
            "countryCode": "+1",
            "campaignId": "cmp_1",
            "notes": {"city": "Paris"},
        },
        {
            "name": "Bob",
            "phoneNumber": "9876543210",
            "countryCode": "+91",
            "campaignId": "cmp_1",
            "notes": {"city": "Pune"},
        },
    ]

    not_offered(capsys, tmp_path, connection, "delete", campaign_id="cmp_1")

    canonical = check_response(capsys, tmp_path, connection, "generic")
    assert canonical["retry"] == {"max_attempts": 4, "interval_minutes": 120}


# ------------------------------------------------------------------- vapi, elevenlabs, exotel


@pytest.mark.parametrize(
    ("connection", "list_url", "caller"),
    [
        ("vapi-sandbox", "http://sandbox/phone-number?limit=1000", "phoneNumberId"),
        ("elevenlabs-sandbox", "http://sandbox/v1/convai/phone-numbers", "agent_phone_number_id"),
    ],
)
def test_a_looked_up_caller_is_shown_not_fetched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, connection: str, list_url: str, caller: str
) -> None:
    body = {"name": "Looked up", "agent_id": "a-1", "from_number": "+14155550100", "recipients": RECIPIENTS[:1]}
    code, out, err = translate(capsys, tmp_path, connection, "create", body=body, handling="lenient")
    assert code == 0, err
    [lookup] = out["lookups"]
    assert (lookup["name"], lookup["method"], lookup["url"]) == ("phone_numbers", "GET", list_url)
    check_masked(lookup, connection)
    assert only_request(out, connection, "create")["body"][caller] == "<phone_numbers: +14155550100>"


def test_exotel_basic_auth_is_masked_whole(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    connection = "exotel-sandbox"
    code, out, err = translate(capsys, tmp_path, connection, "get", campaign_id="c1")
    assert code == 0, err
    request = only_request(out, connection, "get")
    assert request["url"] == "http://sandbox/v2/accounts/demo-sid/campaigns/c1"
    token = base64.b64encode(b"sandbox-key:sandbox-token").decode()
    assert token not in json.dumps(out) and "sandbox-token" not in json.dumps(out)


# ------------------------------------------------------------------- a real address, a real credential

# connection name -> (vendor, golden directory)
REAL = {
    "hamsa-real": ("hamsa", "hamsa"),
    "voiso-real": ("voiso", "voiso"),
    "sarvam-real": ("sarvam", "sarvam"),
    "dialnexa-real": ("dialnexa", "generic"),
}


def test_translate_sends_nothing_to_a_configured_address(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Connections at an unroutable address with a long credential: each golden canonical create
    becomes the golden vendor request, at that address, with the credential masked everywhere."""
    connections = []
    for name, (vendor, golden) in REAL.items():
        case = json.loads((GOLDEN / golden / "create_request.json").read_text())
        params = {"team": "demo-team", **case["params"]} if vendor == "voiso" else case["params"]
        if vendor == "sarvam":
            params = {"org_id": "o", "workspace_id": "w", "connection_id": "c", **params}
        connections.append(
            {
                "name": name,
                "vendor": vendor,
                "base_url": UNROUTABLE,
                "credentials": {"api_key": SECRET},
                "params": params,
            }
        )
    config = write_config(tmp_path, connections)

    for name, (vendor, golden) in REAL.items():
        case = json.loads((GOLDEN / golden / "create_request.json").read_text())
        code, out, err = translate(capsys, tmp_path, name, "create", body=case["canonical_request"], config=config)
        assert code == 0, err
        assert SECRET not in json.dumps(out) and SECRET not in err
        assert out["vendor"] == vendor
        [request] = out["requests"]
        expected = case["vendor_request"]
        assert request["method"] == expected["method"]
        assert request["url"] == UNROUTABLE + expected["path"]
        if "[redacted]" not in request["headers"].get("Authorization", ""):
            assert request["headers"]["X-API-Key"] == "[redacted]", (name, request["headers"])
        assert request["body"] == expected["json"], name

        code, out, err = translate(capsys, tmp_path, name, "get", campaign_id="12345", config=config)
        assert code == 0, err
        assert SECRET not in json.dumps(out)
        [request] = out["requests"]
        assert request["url"].startswith(UNROUTABLE + "/") and request["url"].endswith("/12345")


def test_translate_reports_an_unknown_connection(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = translate(capsys, tmp_path, "no-such-connection", "list")
    assert code == 1 and out is None
    assert "no-such-connection" in err
