"""The simulated ElevenLabs workspace's batch calls and post-call webhooks.

Documented at elevenlabs.io/docs/eleven-agents/workflows/post-call-webhooks.
A workspace has one post-call webhook for all its conversations (set in its settings, not per
batch): here the URL the advance is given (the gateway's hook URL for the connection). Each call
posts ``{"type", "event_timestamp", "data"}``, signed ``ElevenLabs-Signature: t=<unix>,v0=<hex
HMAC-SHA256 of "t.body">`` with the webhook's secret (``WEBHOOK_SECRET`` unless the app is given
another): ``post_call_transcription`` when the call connects (the GET conversation model, with
``metadata.phone_call`` and ``metadata.batch_call``), ``call_initiation_failure`` when it does not
(``failure_reason`` busy, no-answer or unknown; a Twilio status callback as ``metadata.body``).
Assumptions where the docs are silent:

* a pending or in_progress batch calls each pending recipient once: it is in_progress after its
  first calls, completed when no recipient is pending; a connected call lasts 42 s;
* a recipient whose call connects is completed (with its ``conversation_id``), any other failed,
  so the batch's retry calls it again;
* a workspace without a webhook URL sends nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from sandboxes._calls import ANSWERED, BUSY, NO_ANSWER, Advanced, Webhook, hex_hmac, outcome_of
from sandboxes._common import SandboxState, epoch_now

WEBHOOK_SECRET = "elevenlabs-sandbox-webhook-secret"
RUNNING = frozenset({"pending", "in_progress"})
CONNECTED_SECONDS = 42
FAILURES = {NO_ANSWER: ("no-answer", "no-answer", 480), BUSY: ("busy", "busy", 486)}  # reason, CallStatus, SIP code
UNKNOWN = ("unknown", "failed", 500)


def advance(state: SandboxState, numbers: dict[str, str], url: str | None, secret: str) -> Advanced:
    """One call for every pending recipient of every running batch; ``numbers``: phone number ids -> numbers."""
    done = Advanced()
    for batch_id, batch in state.campaigns.items():
        if batch["status"] not in RUNNING:
            continue
        recipients = state.children[batch_id]
        for recipient in recipients:
            if recipient["status"] != "pending":
                continue
            payload = _call(batch, recipient, numbers.get(batch["phone_number_id"] or ""))
            done.calls += 1
            if url:
                done.webhooks.append(_signed(url, payload, secret))
        finished = sum(r["status"] in ("completed", "failed") for r in recipients)
        pending = any(r["status"] == "pending" for r in recipients)
        batch.update(
            status="in_progress" if pending else "completed",
            total_calls_dispatched=finished,
            total_calls_finished=finished,
            last_updated_at_unix=epoch_now(),
        )
    return done


def _call(batch: dict[str, Any], recipient: dict[str, Any], caller: str | None) -> dict[str, Any]:
    """Place one call: update the recipient, and say what ElevenLabs posts about it."""
    conversation_id, now = "conv_" + secrets.token_hex(10), epoch_now()
    outcome = outcome_of(recipient["phone_number"])
    recipient.update(
        status="completed" if outcome == ANSWERED else "failed", conversation_id=conversation_id, updated_at_unix=now
    )
    if outcome != ANSWERED:
        return {"type": "call_initiation_failure", "event_timestamp": now, "data": _failure(batch, recipient, caller)}
    client_data = recipient["conversation_initiation_client_data"] or {}
    data = {
        "agent_id": batch["agent_id"],
        "conversation_id": conversation_id,
        "status": "done",
        "user_id": None,
        "transcript": [
            {"role": "agent", "message": "Hello, this is a sandbox call.", "time_in_call_secs": 0},
            {"role": "user", "message": "Thank you, goodbye.", "time_in_call_secs": 4},
        ],
        "metadata": {
            "start_time_unix_secs": now - CONNECTED_SECONDS,
            "call_duration_secs": CONNECTED_SECONDS,
            "cost": 420,
            "termination_reason": "Call ended by remote party",
            "phone_call": {
                "type": "twilio",
                "direction": "outbound",
                "phone_number_id": batch["phone_number_id"],
                "agent_number": caller,
                "external_number": recipient["phone_number"],
                "stream_sid": "MZ" + secrets.token_hex(16),
                "call_sid": "CA" + secrets.token_hex(16),
            },
            "batch_call": {"batch_call_id": batch["id"], "batch_call_recipient_id": recipient["id"]},
        },
        "analysis": {"call_successful": "success", "transcript_summary": "The sandbox call was answered."},
        "conversation_initiation_client_data": {"dynamic_variables": client_data.get("dynamic_variables") or {}},
        "has_audio": False,
        "has_user_audio": False,
        "has_response_audio": False,
    }
    return {"type": "post_call_transcription", "event_timestamp": now, "data": data}


def _failure(batch: dict[str, Any], recipient: dict[str, Any], caller: str | None) -> dict[str, Any]:
    reason, status, code = FAILURES.get(outcome_of(recipient["phone_number"]), UNKNOWN)
    body = {
        "CallSid": "CA" + secrets.token_hex(16),
        "CallStatus": status,
        "To": recipient["phone_number"],
        "From": caller,
        "Direction": "outbound-api",
        "SipResponseCode": code,
        "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
    }
    return {
        "agent_id": batch["agent_id"],
        "conversation_id": recipient["conversation_id"],
        "failure_reason": reason,
        "metadata": {"type": "twilio", "body": body},
    }


def _signed(url: str, payload: dict[str, Any], secret: str) -> Webhook:
    body, stamp = json.dumps(payload).encode(), str(int(time.time()))
    signature = hex_hmac(secret, f"{stamp}.".encode() + body)
    return Webhook(url, body, {"ElevenLabs-Signature": f"t={stamp},v0={signature}"})
