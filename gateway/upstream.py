"""One pooled HTTP client per connection, and the translation of upstream faults into our errors.

The client never knows how bytes move: a transport does (httpx's design). Production uses
aiohttp, ``base_url: sandbox`` the connection's simulated vendor (``gateway/sandboxing.py``), and
unit tests a fake. One code path for all three.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import orjson

from gateway.config import Connection
from gateway.deadlines import Deadlines
from gateway.errors import (
    ERRORS_BY_CODE,
    GatewayError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationFailed,
)
from gateway.mapping import UpstreamRequest
from gateway.mapping.vendor_errors import as_text
from gateway.resilience import CircuitBreaker, RetryBudget, counts_as_failure, with_retries
from gateway.telemetry import current_record
from gateway.transport import (
    AiohttpTransport,
    Transport,
    TransportTimeout,
    TransportTooLarge,
    TransportUnreachable,
)

# Upstream HTTP status -> canonical error code, unless the vendor's map overrides it.
STATUS_CODES: dict[int, str] = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "validation_error",
    429: "rate_limited",
    503: "upstream_unavailable",
    504: "upstream_timeout",
}
_MAX_MESSAGE = 300
T = TypeVar("T")
Read = Callable[[int, Any], T]  # the vendor's status and decoded answer -> what the caller makes of it


class Upstream:
    """The HTTP client of one connection, with the connection's auth applied to every request."""

    def __init__(self, connection: Connection, transport: Transport | None = None) -> None:
        self.connection = connection
        if transport is None:
            transport = AiohttpTransport(connection.timeouts, connection.max_response_bytes)
        self.transport = transport
        self.breaker = CircuitBreaker(connection.circuit, connection.name)
        self._deadlines = Deadlines()
        self.budget = RetryBudget(connection.retries)
        self._headers = {"accept": "application/json", **connection.auth_headers}
        self._secrets = [secret.encode() for secret in connection.secrets]
        self.tables: dict[str, Any] = {}  # the map's lookup tables, fetched through this client (gateway/tables.py)

    async def send(self, request: UpstreamRequest, read: Read[T], *, retry: bool = False) -> T:
        """``read(status, body)`` of the vendor's answer to ``request`` (again after retryable faults when
        ``retry``), within the total time budget and the connection's retry budget.

        ``read`` judges the answer within the attempt, so an answer it cannot use counts against the
        circuit as a vendor fault. Raises a GatewayError.
        """
        deadline = time.monotonic() + self.connection.timeouts.total
        self.budget.request()
        if not retry:
            return await self._attempt(request, read, deadline)
        record = current_record.get()
        return await with_retries(
            self.connection.retries,
            lambda: self._attempt(request, read, deadline),
            deadline=deadline,
            budget=self.budget,
            on_retry=record.add_retry if record is not None else None,
        )

    async def _attempt(self, request: UpstreamRequest, read: Read[T], deadline: float) -> T:
        vendor = self.connection.vendor
        self.breaker.before_call(vendor)
        try:
            result = read(*await self._exchange(request, deadline))
        except GatewayError as error:
            self.breaker.after_call(counts_as_failure(error))
            raise
        except BaseException:
            self.breaker.abandon()
            raise
        self.breaker.after_call(False)
        return result

    async def _exchange(self, request: UpstreamRequest, deadline: float) -> tuple[int, Any]:
        vendor = self.connection.vendor
        status, response_headers, content = await self.roundtrip(request, deadline)
        answer = self._redact_answer(_decode(content), content)
        if status >= 400:
            raise self.error(status, answer, response_headers.get("retry-after"))
        if answer is _NOT_JSON:
            raise UpstreamError(
                f"{vendor} answered with a body that is not JSON", vendor=vendor, upstream_status=status
            )
        return status, answer

    async def roundtrip(self, request: UpstreamRequest, deadline: float) -> tuple[int, Mapping[str, str], bytes]:
        """One call, past the circuit breaker: the answer's status, headers and body (credentials masked).

        A transport fault is raised as its canonical error; what the status means is the caller's to judge.
        """
        vendor = self.connection.vendor
        url, headers, body = self.wire(request)
        record = current_record.get()
        started = time.perf_counter()
        try:
            # Each attempt: no longer than connect + read, and never past the request's total budget.
            timeouts = self.connection.timeouts
            seconds = max(0.0, min(timeouts.connect + timeouts.read, deadline - time.monotonic()))
            async with asyncio.timeout(None) as scope:  # its deadline is kept by the shared timer
                self._deadlines.watch(scope, seconds)
                try:
                    status, response_headers, content = await self.transport.send(request.method, url, headers, body)
                finally:
                    self._deadlines.forget(scope)
        except (TransportTimeout, TimeoutError) as exc:
            raise UpstreamTimeout(f"{vendor} did not answer in time", vendor=vendor) from exc
        except TransportUnreachable as exc:
            raise UpstreamUnavailable(f"{vendor} could not be reached", vendor=vendor) from exc
        except TransportTooLarge as exc:
            raise UpstreamError(f"{vendor} answered with a body too large to take ({exc})", vendor=vendor) from exc
        finally:
            if record is not None:
                record.add_upstream(time.perf_counter() - started)
        if record is not None:
            record.upstream_status = status
        return status, response_headers, self._redact_body(content)

    def wire(self, request: UpstreamRequest) -> tuple[str, dict[str, str], bytes | None]:
        """The URL, headers (auth included) and body bytes that ``request`` goes out as."""
        url = self.connection.base_url + request.path
        query = {**request.query, **self.connection.auth_query}
        if query:
            url += "?" + urlencode(query, doseq=True)
        headers, body = _encode(request, self._headers)
        return url, headers, body

    def error(self, status: int, body: Any, retry_after: str | None) -> GatewayError:
        vendor_map, vendor = self.connection.map, self.connection.vendor
        code = vendor_map.error_codes.get(status) or STATUS_CODES.get(status, "upstream_error")
        said = vendor_map.error_message(body) if body is not _NOT_JSON else None
        message = f"{vendor} answered HTTP {status}"
        if said is not None:
            message = f"{vendor}: {self.redact(as_text(said))[:_MAX_MESSAGE]}"
        refused = vendor_map.error_fields(body) if body is not _NOT_JSON else []
        stated = _retry_after_seconds(retry_after)
        headers = None
        if code == "rate_limited":  # the contract promises a Retry-After with every 429
            headers = {"Retry-After": str(max(1, math.ceil(stated))) if stated is not None else "1"}
        error_class = ERRORS_BY_CODE[code]
        error = error_class(message, vendor=vendor, upstream_status=status, headers=headers, retry_after=stated)
        error.refused = [(self.redact(field), self.redact(said)[:_MAX_MESSAGE]) for field, said in refused]
        return error

    def _redact_body(self, content: bytes) -> bytes:
        """A vendor that echoes a credential back (in an error text, in a field) never gets it through."""
        for secret in self._secrets:
            if secret in content:
                content = content.replace(secret, b"[redacted]")
        return content

    def _redact_answer(self, answer: Any, content: bytes) -> Any:
        """A credential may also come back JSON-escaped (``\\/``, ``\\u0026``): look again after decoding.

        Only needed when the raw body holds an escape at all, which is rare.
        """
        if not self._secrets or b"\\" not in content or answer is _NOT_JSON:
            return answer
        return _map_strings(answer, self.redact)

    def redact(self, text: str) -> str:
        """Blank out any credential of this connection that a vendor echoed back."""
        for secret in self.connection.secrets:
            text = text.replace(secret, "[redacted]")
        return text

    async def close(self) -> None:
        await self.transport.close()


_NOT_JSON = object()


def _map_strings(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {change(k): _map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]
    return value


def _retry_after_seconds(value: str | None) -> float | None:
    """A vendor's Retry-After in seconds, when it is what the header may be: seconds, or an HTTP date."""
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _encode(request: UpstreamRequest, base_headers: dict[str, str]) -> tuple[dict[str, str], bytes | None]:
    """The request's body as bytes, with its content type.

    JSON may carry what no body can be encoded with: lone UTF-16 surrogates (``"\\ud800"``),
    integers beyond 64 bits. That is the client's input, refused as such.
    """
    headers = {**base_headers, **request.headers}
    try:
        if request.files is not None or request.data is not None:
            # Multipart is rare (file uploads): httpx's encoder builds it, boundary and all.
            encoded = httpx.Request("POST", "http://upstream", data=request.data, files=request.files)
            headers["content-type"] = encoded.headers["content-type"]
            return headers, encoded.read()
        if request.json is not None:
            headers["content-type"] = "application/json"
            return headers, orjson.dumps(request.json)
    except (orjson.JSONEncodeError, UnicodeEncodeError) as exc:
        # e.g. "str is not valid UTF-8: surrogates not allowed", "Integer exceeds 64-bit range"
        raise ValidationFailed(
            "the request holds a value that cannot be sent on",
            details=[{"field": "body", "message": str(exc)}],
        ) from exc
    return headers, None


def _decode(content: bytes) -> Any:
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return _NOT_JSON
