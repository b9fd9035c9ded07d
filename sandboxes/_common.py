"""Pieces every simulated vendor shares: state, auth checks, counters and the control endpoint.

A sandbox is a small Starlette app that behaves like one vendor's API, as strictly as its docs:
it checks the auth header form, rejects bad bodies in the vendor's own error shape and keeps
what was created so it can be read back. Each vendor module exposes
``create_app(api_key: str | None = None) -> Starlette``; with ``api_key`` set only that key is
accepted, otherwise any non-empty key of the right form is.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def utc_now() -> str:
    """The current time as the ISO 8601 UTC string vendors return (millisecond precision)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SandboxState:
    """In-memory records of one simulated vendor account."""

    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    sequence: itertools.count = field(default_factory=lambda: itertools.count(1))

    def next_number(self) -> int:
        return next(self.sequence)


def bearer_token(request: Request, header: str, prefix: str) -> str | None:
    """The key from ``header`` when it has the form ``<prefix><key>``; None otherwise."""
    value = request.headers.get(header, "")
    if not value.startswith(prefix):
        return None
    key = value[len(prefix) :].strip()
    return key or None


def key_accepted(request: Request, header: str, prefix: str, api_key: str | None) -> bool:
    key = bearer_token(request, header, prefix)
    if key is None:
        return False
    return api_key is None or key == api_key


async def read_json(request: Request) -> Any:
    """The request's JSON body, or raise ValueError when it is not JSON."""
    raw = await request.body()
    return json.loads(raw or b"null")


def counting(state: SandboxState, name: str, handler: Callable) -> Callable:
    """Wrap a route handler so every call is counted under ``name`` (tests read the counts)."""

    async def counted(request: Request) -> Response:
        state.calls[name] += 1
        return await handler(request)

    return counted


def control_routes(state: SandboxState) -> list[Route]:
    """``GET /_sandbox/calls``: how often each operation was called, for tests across processes."""

    async def calls(_: Request) -> Response:
        return JSONResponse(dict(state.calls))

    return [Route("/_sandbox/calls", calls, methods=["GET"])]
