"""The simulated Sarvam account's calls and campaign webhooks (docs.sarvam.ai …/campaigns/webhooks/webhook-payload).

Each attempt posts one payload in the documented shape (every field of the field table, as in the
documented examples) to the campaign's ``app_config.webhook_config.url``; a campaign without one
sends nothing. Assumptions where the docs are silent:

* every campaign webhook is signed as a stored webhook config's would be: ``Sarvam-Timestamp``
  (Unix seconds) and ``Sarvam-Signature``, the hex HMAC-SHA256 of ``"{timestamp}.{raw body}"``
  keyed with the account's signing secret (``SIGNING_SECRET`` unless the app is given another);
* a scheduled or active campaign calls (pause, cancel and the end time stop it); its recipients
  are the valid rows of its cohorts, each called up to ``max_retries`` + 1 times;
* a call that connects lasts 42.5 s and completes; ``retry_attempt`` counts from 0; an attempt
  with retries left says ``next_action_status: "retry"``, the last one null; the recipient's
  record then reads ``completed`` (connected) or ``failed``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sandboxes._calls import ANSWERED, Advanced, Webhook, hex_hmac, outcome_of
from sandboxes._common import SandboxState

SIGNING_SECRET = "sarvam-sandbox-signing-secret"
RUNNING = frozenset({"scheduled", "active"})
CONNECTED_SECONDS = 42.5
REASONS = {
    "no_answer": "TelephonyProvider: No Answer",
    "busy": "TelephonyProvider: User Busy",
    "failed": "TelephonyProvider: Call Failed",
}


def advance(
    state: SandboxState, current: Callable[[dict[str, Any]], dict[str, Any]], attempts: dict[str, int], secret: str
) -> Advanced:
    """One attempt for every pending recipient of every running campaign; ``current`` brings a status to the clock."""
    done = Advanced()
    for key, campaign in list(state.campaigns.items()):
        if current(campaign)["status"] not in RUNNING:
            continue
        app = campaign["app_config"]
        tries = app["retry_config"]["max_retries"] + 1
        for cohort in state.children.get(key, []):
            cohort_key = f"{key}/{cohort['cohort_id']}"
            for person in state.children.get(cohort_key, []):
                if person["status"] != "pending":
                    continue
                called = f"{cohort_key}/{person['phone_number']}"
                attempt = attempts[called] = attempts.get(called, 0) + 1
                outcome = outcome_of(person["phone_number"])
                last = outcome == ANSWERED or attempt >= tries
                if last:
                    person["status"] = "completed" if outcome == ANSWERED else "failed"
                payload = _payload(campaign, cohort["cohort_id"], person, attempt - 1, outcome, last)
                done.calls += 1
                webhook = app.get("webhook_config") or {}
                if webhook.get("url"):
                    done.webhooks.append(_signed(webhook["url"], payload, secret))
    return done


def _payload(
    campaign: dict[str, Any], cohort_id: str, person: dict[str, Any], attempt: int, outcome: str, last: bool
) -> dict[str, Any]:
    """One attempt's webhook, keys in the documented order."""
    app, connected = campaign["app_config"], outcome == ANSWERED
    now = datetime.now(UTC)
    numbers = [number for config in app["connection_configs"] for number in config["phone_numbers"]]
    variables = person["app_variables"] or None
    return {
        "app_id": app["app_id"],
        "app_version": app["app_version"] or 1,
        "attempt_id": str(uuid4()),
        "campaign_id": campaign["campaign_id"],
        "cohort_id": cohort_id,
        "completion_status": "completed" if connected else "failed",
        "connectivity_status": "connected" if connected else outcome,
        "next_action_status": None if last else "retry",
        "failure_reason": None if connected else REASONS[outcome],
        "user_identifier": person["user_identifier"] or person["phone_number"],
        "user_phone_number": person["phone_number"],
        "agent_phone_number": numbers[0] if numbers else None,
        "duration": CONNECTED_SECONDS if connected else None,
        "interaction_id": f"{now:%Y%m%d}/{uuid4()}" if connected else None,
        "retry_attempt": attempt,
        "executed_at": now.isoformat(timespec="seconds"),
        "initial_agent_variables": variables,
        "final_agent_variables": {**(variables or {}), "call_outcome": "reached"} if connected else None,
        "interaction_transcript": _transcript() if connected else None,
        "metadata": (app.get("webhook_config") or {}).get("metadata") or {},
    }


def _transcript() -> list[dict[str, str]]:
    return [
        {"role": "agent", "en_text": "Hello, this is a sandbox call about your campaign."},
        {"role": "user", "en_text": "Thank you, that is all I needed."},
    ]


def _signed(url: str, payload: dict[str, Any], secret: str) -> Webhook:
    body, stamp = json.dumps(payload).encode(), str(int(time.time()))
    signature = hex_hmac(secret, f"{stamp}.".encode() + body)
    return Webhook(url, body, {"Sarvam-Timestamp": stamp, "Sarvam-Signature": signature})
