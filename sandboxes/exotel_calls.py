"""The simulated Exotel account's campaign calls and callbacks.

Documented at developer.exotel.com/docs/campaigns/api-reference/webhooks. Each call attempt,
retries included, is a call-details record and posts the call status callback
``{campaign_sid, call_sid, date_created, date_updated, number, status}`` to the campaign's
``call_status_callback``; when no number is left to call the campaign completes and its
``status_callback`` gets ``{campaign_sid, status: "Completed", date_created, date_updated,
report_url}``. Exotel signs nothing. Assumptions where the docs are silent:

* the callbacks are JSON, as the docs show them (Exotel's older voice callbacks are form fields);
* each advance gives every number not done one attempt; a number is done once it answers, once an
  attempt ends in a status ``retries.on_status`` does not retry, or after ``number_of_retries`` + 1
  attempts (the interval is not waited for); its final status is counted in ``stats``;
* an answered call lasts 42 s; ``/_sandbox/campaigns/{id}/complete-calls`` completes numbers
  without any callback.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sandboxes._calls import ANSWERED, NO_ANSWER, Advanced, Webhook, outcome_of
from sandboxes._common import SandboxState

IST = timezone(timedelta(hours=5, minutes=30))
CONNECTED_SECONDS = 42
STATUSES = {ANSWERED: "completed", NO_ANSWER: "no-answer", "busy": "busy", "failed": "failed"}
ALL_RETRIED = ("busy", "no-answer", "failed")


def now() -> str:
    """Exotel's times: RFC 3339 in IST."""
    return datetime.now(IST).isoformat(timespec="seconds")


def waiting(campaign: dict[str, Any], calls: list[dict[str, Any]]) -> list[str]:
    """The campaign's numbers still to be called, in order."""
    retries = campaign.get("retries") or {}
    tries, retried = retries.get("number_of_retries", 0) + 1, retries.get("on_status", ALL_RETRIED)
    left = []
    for number in campaign.get("from", []):
        made = [call["status"] for call in calls if call["number"] == number]
        if not made or (made[-1] != "completed" and made[-1] in retried and len(made) < tries):
            left.append(number)
    return left


def call_record(campaign: dict[str, Any], number: str, status: str) -> dict[str, Any]:
    """One attempt as the campaign's call details list it."""
    started = datetime.now(IST)
    seconds = CONNECTED_SECONDS if status == "completed" else 0
    return {
        "call_sid": secrets.token_hex(16),
        "number": number,
        "name": None,
        "status": status,
        "duration": seconds,
        "date_created": started.isoformat(timespec="seconds"),
        "start_time": started.isoformat(timespec="seconds"),
        "end_time": (started + timedelta(seconds=seconds)).isoformat(timespec="seconds"),
        "caller_id": campaign["caller_id"],
        "direction": "outbound-api",
        "recording_url": None,
        "digits": None,
    }


def advance(state: SandboxState, current: Callable[[dict[str, Any]], dict[str, Any]]) -> Advanced:
    """One attempt for every number not done, in every in-progress campaign (``current``: a status brought to the
    clock)."""
    done = Advanced()
    for campaign_id, campaign in state.campaigns.items():
        if current(campaign)["status"] != "in-progress" or not campaign.get("from"):
            continue  # a campaign of lists calls nobody: the sandbox keeps no lists
        calls = state.children[campaign_id]
        for number in waiting(campaign, calls):
            call = call_record(campaign, number, STATUSES[outcome_of(number)])
            calls.append(call)
            done.calls += 1
            if number not in waiting(campaign, calls):
                _count(campaign["stats"], call["status"])
            callback = {"campaign_sid": campaign_id, "call_sid": call["call_sid"], "date_created": call["date_created"]}
            callback |= {"date_updated": now(), "number": number, "status": call["status"]}
            _post(done, campaign.get("call_status_callback"), callback)
        if not waiting(campaign, calls):
            campaign.update(status="completed", date_updated=now())
            report = f"https://my.exotel.com/{campaign['account_sid']}/campaigns/{campaign_id}/report.csv"
            status = {"campaign_sid": campaign_id, "status": "Completed", "date_created": campaign["date_created"]}
            _post(done, campaign.get("status_callback"), {**status, "date_updated": now(), "report_url": report})
    return done


def _count(stats: dict[str, int], status: str) -> None:
    stats.update({"pending": stats["pending"] - 1, status: stats[status] + 1})


def _post(done: Advanced, url: str | None, payload: dict[str, Any]) -> None:
    if url:
        done.webhooks.append(Webhook(url, json.dumps(payload).encode()))
