"""The simulated Bland organization's batch calls and webhooks.

Documented at docs.bland.ai/api-v2/post/batches (Status webhook) and /tutorials/post-call-webhooks.
A batch's ``status_webhook`` gets ``{batch_id, status, timestamp}`` per lifecycle phase (progress
with a ``message``) and a final one with ``calls_total``, ``calls_successful`` and
``calls_failed``; each call's ``webhook`` (from ``global`` or its call object) gets the call object
when it ends. Every webhook is signed as the docs say: ``X-Webhook-Signature``, the hex
HMAC-SHA256 of the body keyed with the account's signing secret (``SIGNING_SECRET`` unless the app
is given another). Assumptions where the docs are silent:

* the body is compact JSON (what ``JSON.stringify`` writes, as Bland's verification example
  re-serialises it), and status webhooks are signed like the others;
* a running batch calls each of its calls once, in one advance (Bland retries on voicemail only,
  which the sandbox does not simulate), reporting validating, in_progress and then completed;
* a call that connects lasts 42 s and is ``completed`` (``answered_by`` human); the others are
  ``no-answer``, ``busy`` or ``failed`` (with an ``error_message``), none of them connected.
"""

from __future__ import annotations

import json
from typing import Any

from sandboxes._calls import ANSWERED, NO_ANSWER, Advanced, Webhook, hex_hmac, outcome_of
from sandboxes._common import SandboxState, utc_now

SIGNING_SECRET = "bland-sandbox-signing-secret"
CONNECTED_SECONDS = 42
STATUSES = {ANSWERED: "completed", NO_ANSWER: "no-answer", "busy": "busy", "failed": "failed"}
ERRORS = {"busy": "The line was busy", "failed": "The call could not be connected"}


def advance(state: SandboxState, secret: str) -> Advanced:
    """Every call not placed yet, in every batch still running: each such batch runs to its end."""
    done = Advanced()
    for batch_id, batch in state.campaigns.items():
        calls = state.children[batch_id]
        waiting = [call for call in calls if not call["completed"]]
        if not batch["active"] or not waiting:
            continue
        count = len(waiting)
        _status(done.webhooks, batch, secret, "validating")
        message = f"Requested: {count}. Validated: {count}. Dispatched: {count}. CPS: 1.00."
        _status(done.webhooks, batch, secret, "in_progress", message=message)
        for call in waiting:
            _place(call)
            done.calls += 1
            url = batch["webhooks"][call["call_id"]]
            if url:
                done.webhooks.append(_signed(url, call, secret))
        batch["active"] = False
        successful = sum(call["status"] == "completed" for call in calls)
        counts = {"calls_total": len(calls), "calls_successful": successful, "calls_failed": len(calls) - successful}
        _status(done.webhooks, batch, secret, "completed", **counts)
    return done


def _place(call: dict[str, Any]) -> None:
    """The call happens: its record as /v1/calls and the post-call webhook show it."""
    outcome = outcome_of(call["to"])
    connected = outcome == ANSWERED
    call.update(
        completed=True,
        queue_status="complete",
        status=STATUSES[outcome],
        answered_by="human" if connected else "no-answer" if outcome == NO_ANSWER else None,
        started_at=utc_now() if connected else None,
        call_length=CONNECTED_SECONDS / 60 if connected else 0,
        corrected_duration=str(CONNECTED_SECONDS if connected else 0),
        error_message=ERRORS.get(outcome),
    )


def _status(into: list[Webhook], batch: dict[str, Any], secret: str, status: str, **fields: Any) -> None:
    """The batch's status webhook, if it has one."""
    if batch["status_webhook"]:
        payload = {"batch_id": batch["id"], "status": status, **fields, "timestamp": utc_now()}
        into.append(_signed(batch["status_webhook"], payload, secret))


def _signed(url: str, payload: dict[str, Any], secret: str) -> Webhook:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Webhook(url, body, {"X-Webhook-Signature": hex_hmac(secret, body)})
