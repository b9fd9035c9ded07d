"""The simulated Hamsa account's calls and webhooks (docs.tryhamsa.com webhook-integration-guide).

Each attempt posts the documented envelope ``{eventType, callId, timestamp, projectId, agentId,
agentName, data}`` to the campaign's ``webhookUrl``: ``call.started``, ``call.answered`` when it
connects, then ``call.ended``. Assumptions where the docs are silent:

* ``call.ended``'s ``data`` is the campaign recipient as the get answer lists it (after the call),
  plus the documented ``data.outcomeResult`` (the recipient's variables, echoed as params are);
  ``call.started`` / ``call.answered`` carry ``phoneNumber`` and ``params`` / ``ringDuration``;
* a recipient who does not answer reads ``NO_ANSWER``, one busy or failed ``FAILED`` (the get
  answer has no busy group), with ``lastError``; with attempts left it gets a ``nextRetryAt`` and
  is called again by the next advance, up to ``maxAttempts``;
* the campaign reads ``RUNNING`` once it has called, ``COMPLETED`` when every recipient is done;
* the agent has no webhook auth set (the docs' "no auth" option): no Authorization header is sent.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sandboxes._calls import ANSWERED, NO_ANSWER, Advanced, Webhook, outcome_of
from sandboxes._common import SandboxState, utc_now

AGENT_NAME = "Sandbox Agent"
RUNNING = frozenset({"SCHEDULED", "RUNNING"})
RETRY_AFTER = timedelta(hours=1)
ERRORS = {NO_ANSWER: "NO_ANSWER", "busy": "USER_BUSY", "failed": "CALL_FAILED"}


def advance(state: SandboxState, project_id: str) -> Advanced:
    """One call for every recipient not done yet, in every campaign that is scheduled or running."""
    done = Advanced()
    for campaign_id, campaign in state.campaigns.items():
        if campaign["status"] not in RUNNING:
            continue
        people = state.children[campaign_id]
        for person in people:
            if _done(person):
                continue
            events = _call(person)
            done.calls += 1
            if campaign["webhookUrl"]:
                done.webhooks += [_webhook(campaign, project_id, *event) for event in events]
        campaign["status"] = "COMPLETED" if all(_done(person) for person in people) else "RUNNING"
        campaign["updatedAt"] = utc_now()
    return done


def _done(person: dict[str, Any]) -> bool:
    return person["status"] == "COMPLETED" or (person["status"] != "PENDING" and person["nextRetryAt"] is None)


def _call(person: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Place one call: update the recipient, and say what Hamsa sends about it (type, call id, data)."""
    call_id, now = str(uuid.uuid4()), utc_now()
    outcome = outcome_of(person["phoneNumber"])
    person["attempts"] += 1
    person.update(jobId=call_id, latestActionTimestamp=now, updatedAt=now)
    if outcome == ANSWERED:
        person.update(status="COMPLETED", completedAt=now, nextRetryAt=None, lastError=None)
    else:
        retry = datetime.now(UTC) + RETRY_AFTER if person["attempts"] < person["maxAttempts"] else None
        person.update(
            status="NO_ANSWER" if outcome == NO_ANSWER else "FAILED",
            lastError=ERRORS[outcome],
            nextRetryAt=None if retry is None else retry.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
    params = person["dynamicVariables"]
    events = [("call.started", call_id, {"phoneNumber": person["phoneNumber"], "params": params})]
    if outcome == ANSWERED:
        events.append(("call.answered", call_id, {"phoneNumber": person["phoneNumber"], "ringDuration": 4}))
    events.append(("call.ended", call_id, {**person, "data": {"outcomeResult": dict(params)}}))
    return events


def _webhook(campaign: dict[str, Any], project_id: str, event: str, call_id: str, data: dict[str, Any]) -> Webhook:
    envelope = {
        "eventType": event,
        "callId": call_id,
        "timestamp": utc_now(),
        "projectId": project_id,
        "agentId": campaign["voiceAgentId"],
        "agentName": AGENT_NAME,
        "data": data,
    }
    return Webhook(campaign["webhookUrl"], json.dumps(envelope).encode())
