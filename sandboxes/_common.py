"""Pieces every simulated vendor shares: state, auth checks, counters and the control endpoint.

A sandbox is a small Starlette app that behaves like one vendor's API, as strictly as its docs:
it checks the auth header form, rejects bad bodies in the vendor's own error shape and keeps
what was created so it can be read back. Each vendor module exposes
``create_app(api_key: str | None = None) -> Starlette``; with ``api_key`` set only that key is
accepted, otherwise any non-empty key of the right form is.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]
Model = TypeVar("Model", bound=BaseModel)


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
    """The request's JSON body, or raise ValueError when it is not JSON.

    Strict as JSON.parse: NaN and Infinity are not JSON, and absurd nesting is refused too.
    """
    raw = await request.body()
    try:
        return json.loads(raw or b"null", parse_constant=_not_json)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def counting(state: SandboxState, name: str, handler: Callable) -> Callable:
    """Wrap a route handler so every call is counted under ``name`` (tests read the counts)."""

    async def counted(request: Request) -> Response:
        state.calls[name] += 1
        return await handler(request)

    return counted


class VendorError(Exception):
    """A refused request, answered with the simulated vendor's own error body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


@dataclass
class VendorApi:
    """What one simulated vendor's routes share: its account, how it checks a key, how it words an error.

    ``refuse(status, message)`` builds the vendor's error; unknown paths (404) and wrong methods
    (405) are worded by it too.
    """

    state: SandboxState
    key_ok: Callable[[Request], bool]
    refuse: Callable[[int, str], VendorError]

    def guarded(self, handler: Handler) -> Handler:
        """``handler`` behind the key check (401 in the vendor's words)."""

        async def authorized(request: Request) -> Response:
            if not self.key_ok(request):
                raise self.refuse(401, "Unauthorized")
            return await handler(request)

        return authorized

    def route(self, operation: str, path: str, handler: Handler, method: str) -> Route:
        """A route counted under ``operation`` that first checks the key."""
        return Route(path, counting(self.state, operation, self.guarded(handler)), methods=[method])

    def app(self, routes: list[Route]) -> Starlette:
        async def vendor_error(_: Request, exc: Exception) -> Response:
            assert isinstance(exc, VendorError)
            return JSONResponse(exc.body, status_code=exc.status)

        async def http_error(_: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            refused = self.refuse(exc.status_code, "Not found" if exc.status_code == 404 else str(exc.detail))
            return JSONResponse(refused.body, status_code=refused.status, headers=exc.headers)

        handlers = {VendorError: vendor_error, HTTPException: http_error}
        return Starlette(routes=[*routes, *control_routes(self.state)], exception_handlers=handlers)

    async def body(self, request: Request) -> Any:
        """The JSON body, or 400 in the vendor's words."""
        try:
            return await read_json(request)
        except ValueError:
            raise self.refuse(400, "The request body is not valid JSON") from None

    def parsed(self, model: type[Model], data: Any, status: int = 400) -> Model:
        """``model`` from ``data``, or ``status`` naming the first offending field (``customers.0.number: …``)."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise self.refuse(status, f"{where}: {first['msg']}" if where else first["msg"]) from None

    def query_int(self, request: Request, name: str, default: int, low: int = 0, high: int | None = None) -> int:
        """The whole-number query parameter ``name`` within ``[low, high]``, or 400 in the vendor's words."""
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
            raise self.refuse(400, f"{name} must be a whole number from {low}" + (f" to {high}" if high else ""))
        return int(raw)


def epoch_now() -> int:
    """The current Unix time in seconds."""
    return int(datetime.now(UTC).timestamp())


def control_routes(state: SandboxState) -> list[Route]:
    """``GET /_sandbox/calls``: how often each operation was called, for tests across processes."""

    async def calls(_: Request) -> Response:
        return JSONResponse(dict(state.calls))

    return [Route("/_sandbox/calls", calls, methods=["GET"])]


class FaultInjector:
    """Wraps a sandbox app: faults queued through ``POST /_sandbox/faults`` hit the next requests.

    Body of the POST: a list of ``{"kind": K, "value": V, "count": N, "path": P, "method": M}``;
    ``count`` (default 1) requests whose path contains ``path`` (default: any) and whose method is
    ``method`` (default: any) get the fault. Kinds: ``latency`` (sleep V seconds, then answer
    normally), ``status`` (answer HTTP V with a small JSON error), ``malformed`` (200, a body that is
    not JSON), ``truncated`` (200, JSON cut short), ``reset`` (drop the connection, no answer),
    ``oversize`` (200, a JSON body of V bytes, default 11 MiB). ``DELETE /_sandbox/faults`` clears.
    Faults hit the vendor's API only: the sandbox's own ``/_sandbox/`` endpoints always answer, so
    call counts can be read while faults are pending.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.faults: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/_sandbox/faults":
            await self._control(scope, receive, send)
            return
        fault = None if scope["path"].startswith("/_sandbox/") else self._take(scope)
        if fault is None:
            await self.app(scope, receive, send)
            return
        kind, value = fault["kind"], fault.get("value")
        if kind == "latency":
            await asyncio.sleep(float(value or 0))
            await self.app(scope, receive, send)
        elif kind == "reset":
            # Start an answer, then fail: the server must drop the connection mid-response (no 500 can
            # follow a started answer), which is what a client sees of a reset.
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": b'{"id": ', "more_body": True})
            raise ConnectionResetError("sandbox fault: connection reset")
        else:
            status, body = self._fault_answer(kind, value)
            response = Response(body, status_code=status, media_type="application/json")
            await response(scope, receive, send)

    @staticmethod
    def _fault_answer(kind: str, value: Any) -> tuple[int, bytes]:
        if kind == "status":
            return int(value), json.dumps({"error": {"message": f"sandbox fault {value}"}}).encode()
        if kind == "malformed":
            return 200, b"<html>not json</html>"
        if kind == "truncated":
            return 200, b'{"id": "1", "name": "cut sh'
        if kind == "oversize":
            size = int(value or 11 * 1024 * 1024)
            return 200, b'{"padding": "' + b"x" * size + b'"}'
        raise ValueError(f"unknown fault kind {kind!r}")

    def _take(self, scope: dict[str, Any]) -> dict[str, Any] | None:
        for fault in self.faults:
            if fault.get("path", "") in scope["path"] and fault.get("method", scope["method"]) == scope["method"]:
                fault["count"] = fault.get("count", 1) - 1
                if fault["count"] <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def _control(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        if request.method == "POST":
            faults = await read_json(request)
            kinds = {"latency", "status", "malformed", "truncated", "reset", "oversize"}
            if not isinstance(faults, list) or any(f.get("kind") not in kinds for f in faults):
                await JSONResponse({"error": f"a list of faults of kinds {sorted(kinds)}"}, 400)(scope, receive, send)
                return
            self.faults.extend(faults)
        elif request.method == "DELETE":
            self.faults.clear()
        await JSONResponse(self.faults)(scope, receive, send)
