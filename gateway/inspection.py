"""A sandbox's own endpoints through the gateway: ``/_sandbox/calls``, ``/_sandbox/faults``, ``/_sandbox/advance``.

They reach the sandbox of the connection the request picks (``X-Connection``, else the tenant's
default), authenticated like /v1, so a user of the default config can read call counts or inject a
fault without a sandbox process of their own, with one worker or several (the account is the
same). For a live connection they do not exist: 404. The answer is the sandbox's own JSON; a
refusal becomes the canonical error of its status, with the sandbox's message.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.asgi import Receive, read_body
from gateway.errors import ERRORS_BY_CODE, NotFound, UpstreamError, ValidationFailed
from gateway.inbound import require_json
from gateway.mapping import UpstreamRequest
from gateway.routing import Route
from gateway.upstream import STATUS_CODES, Upstream
from sandboxes.hub import HOOK_HEADER


async def forward(
    upstream: Upstream, route: Route, method: str, headers: dict[bytes, bytes], receive: Receive, hook_url: str | None
) -> tuple[int, bytes]:
    """The sandbox's status and JSON answer to the request.

    Past the connection's circuit breaker: these calls are no vendor traffic, and faults must be
    clearable while the circuit is open. A connection with events names its ``hook_url`` to the
    sandbox: a vendor whose webhook is set for the whole account (in its dashboard, by hand) posts
    there, as a live one would once set up.
    """
    connection, vendor, path = upstream.connection, upstream.connection.vendor, route.sandbox_path or ""
    if not connection.sandbox:
        raise NotFound(f"{path} is a sandbox endpoint, and {connection.name} is not a sandbox connection")
    body = await _json_body(headers, receive) if route.has_body else None
    request = UpstreamRequest(method, path, {}, json=body, headers={HOOK_HEADER: hook_url} if hook_url else {})
    status, _headers, content = await upstream.roundtrip(request, time.monotonic() + connection.timeouts.total)
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        message = f"the {vendor} sandbox answered {path} with a body that is not JSON"
        raise UpstreamError(message, vendor=vendor, upstream_status=status) from None
    if status >= 400:
        said = answer.get("error") if isinstance(answer, dict) else None
        message = f"the {vendor} sandbox answered {path} with HTTP {status}"
        message += f": {said}" if isinstance(said, str) else ""
        raise ERRORS_BY_CODE[STATUS_CODES.get(status, "upstream_error")](message, vendor=vendor, upstream_status=status)
    return status, content


async def _json_body(headers: dict[bytes, bytes], receive: Receive) -> Any:
    """The request's JSON body; None when it has none (``POST /_sandbox/advance`` needs none)."""
    raw = await read_body(receive)
    if not raw:
        return None
    require_json(headers)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed("the body is not valid JSON", details=[{"field": "body", "message": str(exc)}]) from exc
