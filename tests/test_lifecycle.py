"""Lifecycle: `start` for a draft, `invalid_state` naming the status, and writes that answer what a
read shows — on every vendor's sandbox of the shipped config, in the README's order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.test_errors_explained import README_BODY, error_of
from tests.test_roundtrip import CASES

DRAFTS = {
    # connection: a create body that makes a draft
    "voiso-sandbox": {
        "name": "Dialer",
        "from_number": "+18885650001",
        "recipients": [{"phone_number": "+14155550100"}],
    },
    "dialnexa-sandbox": {"name": "Leads", "agent_id": "agt_abc", "from_number": "+912234567890"},
}
# Every vendor's create, in its own forms (the README's body, as each one takes it).
CREATES = {
    "hamsa-sandbox": README_BODY,
    "voiso-sandbox": DRAFTS["voiso-sandbox"],
    "sarvam-sandbox": {
        "name": "Renewals",
        "agent_id": "app_1",
        "from_number": "+919876543210",
        "recipients": [{"phone_number": "+14155550100", "name": "Ada"}],
        "start_at": "2030-01-01T00:00:00Z",
        "schedule": {"end_at": "2030-02-01T00:00:00Z"},
        "retry": {"max_attempts": 2, "interval_minutes": 30},
    },
    "dialnexa-sandbox": {**DRAFTS["dialnexa-sandbox"], "recipients": [{"phone_number": "+14155550100", "name": "Ada"}]},
}
# ... and each vendor added since, as its round trip creates it
CREATES |= {case.connection: case.create("agree") for case in CASES if case.connection not in CREATES}
# Fields a vendor documents as changing between a create and the read right after it: none.
CHANGING: dict[str, set[str]] = {connection: set() for connection in CREATES}


def at(connection: str) -> dict[str, str]:
    return {"X-Connection": connection}


@pytest.mark.parametrize("connection", sorted(DRAFTS))
async def test_start_starts_a_draft(demo_client: httpx.AsyncClient, connection: str) -> None:
    created = await demo_client.post("/v1/campaigns", json=DRAFTS[connection], headers=at(connection))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft"
    started = await demo_client.post(f"/v1/campaigns/{created.json()['id']}/start", headers=at(connection))
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "active"


@pytest.mark.parametrize("connection", ["hamsa-sandbox", "sarvam-sandbox"])
async def test_start_is_not_offered_where_there_are_no_drafts(demo_client: httpx.AsyncClient, connection: str) -> None:
    error = error_of(
        await demo_client.post("/v1/campaigns/x-1/start", headers=at(connection)), 501, "operation_not_supported"
    )
    assert "start" in error["message"]


@pytest.mark.parametrize("connection", sorted(DRAFTS))
async def test_pausing_a_draft_is_invalid_state_naming_the_status(
    demo_client: httpx.AsyncClient, connection: str
) -> None:
    created = (await demo_client.post("/v1/campaigns", json=DRAFTS[connection], headers=at(connection))).json()
    refused = await demo_client.post(f"/v1/campaigns/{created['id']}/pause", headers=at(connection))
    error = error_of(refused, 409, "invalid_state")
    assert error["message"].startswith(f"campaign {created['id']} is draft; ")
    allows = error["message"].split("(from draft it allows ", 1)[1].split(")", 1)[0].split(", ")
    assert "start" in allows and "pause" not in allows
    assert error["details"] == [{"field": "status", "message": "is draft"}]
    assert error["upstream_status"] == 409


async def test_a_409_the_status_allows_stays_a_conflict(demo_client: httpx.AsyncClient) -> None:
    """Voiso allows start from draft, but not without leads: that 409 is no state rule."""
    created = (
        await demo_client.post(
            "/v1/campaigns", json={"name": "No leads", "from_number": "+18885650001"}, headers=at("voiso-sandbox")
        )
    ).json()
    refused = await demo_client.post(f"/v1/campaigns/{created['id']}/start", headers=at("voiso-sandbox"))
    error = error_of(refused, 409, "conflict")
    assert "at least one lead" in error["message"]


@pytest.mark.parametrize("connection", sorted(CREATES))
async def test_a_create_answers_what_a_get_right_after_shows(demo_client: httpx.AsyncClient, connection: str) -> None:
    created = await demo_client.post("/v1/campaigns", json=CREATES[connection], headers=at(connection))
    assert created.status_code == 201, created.text
    fetched = await demo_client.get(
        f"/v1/campaigns/{created.json()['id']}", headers={**at(connection), "Cache-Control": "no-cache"}
    )
    differ = {
        name
        for name in set(flat(created.json())) | set(flat(fetched.json()))
        if flat(created.json()).get(name) != flat(fetched.json()).get(name)
    }
    assert differ <= CHANGING[connection], {
        n: (flat(created.json()).get(n), flat(fetched.json()).get(n)) for n in differ
    }


def flat(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


async def test_the_readme_flow_in_its_order(demo_client: httpx.AsyncClient) -> None:
    """Create a draft, edit it, start it, pause it, resume it, cancel it; then a change is invalid_state."""
    nexa = at("dialnexa-sandbox")
    campaign = (await demo_client.post("/v1/campaigns", json=DRAFTS["dialnexa-sandbox"], headers=nexa)).json()
    one = f"/v1/campaigns/{campaign['id']}"
    steps = [
        ("PATCH", one, {"max_concurrent_calls": 3}, "draft"),
        ("POST", one + "/start", None, "active"),
        ("POST", one + "/pause", None, "paused"),
        ("POST", one + "/resume", None, "active"),
        ("POST", one + "/cancel", None, "cancelled"),
    ]
    for method, path, body, status in steps:
        answer = await demo_client.request(method, path, json=body, headers=nexa)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json()["status"] == status
    error = error_of(await demo_client.post(one + "/resume", headers=nexa), 409, "invalid_state")
    assert "is cancelled" in error["message"] and "allows nothing" in error["message"]
