"""Calls a sandbox places when told to (``POST /_sandbox/advance``), and the vendor webhooks it sends about them.

One advance gives every recipient not done yet one call attempt, in every campaign of the account
that is running. How a call goes depends on the number called, so tests can ask for each outcome
(as payment sandboxes do with card numbers): a number ending in 1 does not answer, 2 is busy, 3
fails; any other number answers. A recipient who did not answer is called again by a later advance
until the campaign's attempts are used up.

The webhooks go out as the vendor's own (each vendor module builds its documented payloads) to
the URL the campaign was given (or the account's, where the vendor has one webhook for all), over
HTTP, one after another in the order the calls happened; ``{"repeat": N}`` sends each N times, as a
vendor does when it is unsure its webhook arrived.
The answer counts calls and webhooks: ``{"calls": 3, "webhooks": {"sent": 9, "failed": 0}}``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandboxes._common import read_json
from sandboxes.hub import HOOK_HEADER

ANSWERED, NO_ANSWER, BUSY, FAILED = "answered", "no_answer", "busy", "failed"
_BY_LAST_DIGIT = {"1": NO_ANSWER, "2": BUSY, "3": FAILED}
MAX_REPEAT = 10
POST_SECONDS = 10.0


def outcome_of(phone_number: str) -> str:
    """How a call to this number goes in the sandbox (see the module docstring)."""
    return _BY_LAST_DIGIT.get(phone_number[-1:], ANSWERED)


def hex_hmac(secret: str, message: bytes) -> str:
    """The hex HMAC-SHA256 of ``message``: how the vendors that sign their webhooks sign them."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass
class Webhook:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Advanced:
    """What one advance did: the calls placed and the webhooks to send about them, in order."""

    calls: int = 0
    webhooks: list[Webhook] = field(default_factory=list)


def advance_route(advance: Callable[[str | None], Advanced]) -> Route:
    """``POST /_sandbox/advance`` for a sandbox whose ``advance`` places the calls and says what to send.

    ``advance`` is given the account's own webhook URL, for a vendor whose webhook is set for the
    whole account rather than per campaign: the gateway names its connection's hook URL (the
    ``x-gateway-hook-url`` header), as an operator sets it in the vendor's dashboard.
    """

    async def handle(request: Request) -> Response:
        try:
            options = await read_json(request) or {}
        except ValueError:
            options = None
        repeat = options.get("repeat", 1) if isinstance(options, dict) else None
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= MAX_REPEAT:
            return JSONResponse({"error": f"repeat is an integer from 1 to {MAX_REPEAT}"}, 400)
        done = advance(request.headers.get(HOOK_HEADER))
        sent, failed = await _send(done.webhooks, repeat)
        return JSONResponse({"calls": done.calls, "webhooks": {"sent": sent, "failed": failed}})

    return Route("/_sandbox/advance", handle, methods=["POST"])


async def _send(webhooks: list[Webhook], repeat: int) -> tuple[int, int]:
    """POST each webhook ``repeat`` times; (answered 2xx, not).

    aiohttp, not httpx: httpx logs each URL, and a hook URL's token is a secret.
    """
    sent = failed = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_SECONDS)) as session:
        for webhook in webhooks:
            headers = {"content-type": "application/json", **webhook.headers}
            for _ in range(repeat):
                try:
                    async with session.post(webhook.url, data=webhook.body, headers=headers) as answer:
                        ok = 200 <= answer.status < 300
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                sent, failed = sent + ok, failed + (not ok)
    return sent, failed
