"""The simulated Vapi organization's calls and campaign webhooks (docs.vapi.ai/outbound-campaigns/webhooks).

Every event is the documented envelope ``{"message": {"type": "campaign.event", "timestamp" (Unix
ms), "campaignId", "eventType", "data"}}``, posted to the campaign's ``server.url`` for the events
its ``serverMessages`` select; a campaign that selects none sends nothing. Assumptions where the
docs are silent:

* an in-progress campaign (or a scheduled one whose ``earliestAt`` has passed: it starts, and sends
  ``campaign.started``) calls each contact once: Vapi does not call a contact again. Once every
  contact is done it ends (``ended``, ``campaign.ended.success``) and sends ``campaign.ended``;
* a call that connects is ``contact.completed`` (``customer-ended-call``); one that does not is
  ``contact.failed``, its ``endedReason`` saying why (``customer-did-not-answer``,
  ``customer-busy``, ``twilio-failed-to-connect-call``); the campaign's ``calls`` map and counters
  follow;
* what the API's own actions cause goes with the next advance: ``campaign.started`` for a campaign
  that starts at its create, ``campaign.cancelled`` (with its ``endedReason``) for one ended by
  ``PATCH`` status ended;
* a credential named by ``server.credentialId`` is not simulated: no Authorization header is sent.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sandboxes._calls import ANSWERED, BUSY, NO_ANSWER, Advanced, Webhook, outcome_of
from sandboxes._common import SandboxState, utc_now

ENDED_REASONS = {
    ANSWERED: "customer-ended-call",
    NO_ANSWER: "customer-did-not-answer",
    BUSY: "customer-busy",
}
CONNECT_FAILED = "twilio-failed-to-connect-call"
ENDED = "campaign.ended.success"


def announce(into: list[Webhook], campaign: dict[str, Any], event_type: str, data: dict[str, Any]) -> None:
    """Add the documented envelope of ``event_type`` for the campaign's server, if it selected that event."""
    url = (campaign.get("server") or {}).get("url")
    if not url or event_type not in campaign.get("serverMessages", []):
        return
    message = {
        "type": "campaign.event",
        "timestamp": int(time.time() * 1000),
        "campaignId": campaign["id"],
        "eventType": event_type,
        "data": data,
    }
    into.append(Webhook(url, json.dumps({"message": message}).encode()))


def advance(state: SandboxState, queued: list[Webhook]) -> Advanced:
    """One call to every contact not called yet, in every running campaign, after the ``queued`` events."""
    done = Advanced(webhooks=queued[:])
    queued.clear()
    for campaign_id, campaign in state.campaigns.items():
        if not _running(campaign):
            continue
        if campaign["status"] == "scheduled":
            campaign["status"] = "in-progress"
            announce(done.webhooks, campaign, "campaign.started", {"workflowId": campaign.get("workflowId")})
        contacts = state.children[campaign_id]
        for contact in contacts:
            if contact["status"] == "contact.pending":
                done.calls += 1
                _call(campaign, contact, done.webhooks)
        campaign["updatedAt"] = utc_now()
        if all(contact["status"] != "contact.pending" for contact in contacts):
            campaign.update(status="ended", endedReason=ENDED)
            announce(done.webhooks, campaign, "campaign.ended", {"endedReason": ENDED})
    return done


def _running(campaign: dict[str, Any]) -> bool:
    """In progress, or scheduled with its start passed."""
    if campaign["status"] == "in-progress":
        return True
    plan = campaign.get("schedulePlan") or {}
    return campaign["status"] == "scheduled" and datetime.fromisoformat(plan["earliestAt"]) <= datetime.now(UTC)


def _call(campaign: dict[str, Any], contact: dict[str, Any], webhooks: list[Webhook]) -> None:
    """Call one contact: its status, the campaign's calls map and counters, and the event that says so."""
    call_id, now, outcome = str(uuid.uuid4()), utc_now(), outcome_of(contact["number"])
    reason = ENDED_REASONS.get(outcome, CONNECT_FAILED)
    contact.update(status="contact.completed" if outcome == ANSWERED else "contact.failed", endedReason=reason)
    customer = {"number": contact["number"], "name": contact["name"]}
    campaign["calls"][call_id] = {
        "id": call_id,
        "customer": customer,
        "status": "ended",
        "endedReason": reason,
        "startedAt": now,
        "endedAt": now,
    }
    campaign["callsCounterScheduled"] -= 1
    campaign["callsCounterEnded"] += 1
    announce(
        webhooks, campaign, contact["status"], {"contactId": contact["id"], "callId": call_id, "endedReason": reason}
    )
