"""The gateway's one error hierarchy; nothing else builds error bodies.

GatewayError (status, code)
├── Unauthorized            401 unauthorized
├── Forbidden               403 forbidden
├── NotFound                404 not_found
├── MethodNotAllowed        405 method_not_allowed
├── RequestTimeout          408 request_timeout (a request head or body too slow to arrive)
├── UnknownConnection       400 unknown_connection
├── BadRequest              400 bad_request
├── Conflict                409 conflict
│   └── InvalidState        409 invalid_state (the campaign's status does not allow the operation)
├── PayloadTooLarge         413 payload_too_large
├── UnsupportedMediaType    415 unsupported_media_type
├── ValidationFailed        422 validation_error
├── RateLimited             429 rate_limited
├── OperationNotSupported   501 operation_not_supported
├── UpstreamError           502 upstream_error
│   └── PartialFailure      502 partial_failure (a composed operation failed after its first step)
├── UpstreamUnavailable     503 upstream_unavailable
├── UpstreamTimeout         504 upstream_timeout
└── ServerBusy              503 server_busy (a limit of the gateway itself, or it is stopping)
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """An answer the client gets as the canonical error envelope."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        upstream_status: int | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.vendor = vendor
        self.upstream_status = upstream_status
        self.details = details
        self.headers = headers or {}
        self.retry_after = retry_after  # seconds the vendor itself asked for, if it did
        self.refused: list[tuple[str, str]] = []  # (field as the vendor names it, its message), from a vendor error

    def envelope(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "request_id": request_id,
        }
        if self.vendor is not None:
            body["vendor"] = self.vendor
        if self.upstream_status is not None:
            body["upstream_status"] = self.upstream_status
        if self.details:
            body["details"] = self.details
        return {"error": body}


class Unauthorized(GatewayError):
    status, code = 401, "unauthorized"


class Forbidden(GatewayError):
    status, code = 403, "forbidden"


class NotFound(GatewayError):
    status, code = 404, "not_found"


class MethodNotAllowed(GatewayError):
    status, code = 405, "method_not_allowed"


class RequestTimeout(GatewayError):
    status, code = 408, "request_timeout"


class UnknownConnection(GatewayError):
    status, code = 400, "unknown_connection"


class BadRequest(GatewayError):
    status, code = 400, "bad_request"


class Conflict(GatewayError):
    status, code = 409, "conflict"


class InvalidState(Conflict):
    code = "invalid_state"


class PayloadTooLarge(GatewayError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status, code = 415, "unsupported_media_type"


class HeadersTooLarge(GatewayError):
    status, code = 431, "headers_too_large"


class ValidationFailed(GatewayError):
    status, code = 422, "validation_error"


class RateLimited(GatewayError):
    status, code = 429, "rate_limited"


class OperationNotSupported(GatewayError):
    status, code = 501, "operation_not_supported"


class UpstreamError(GatewayError):
    status, code = 502, "upstream_error"


class PartialFailure(UpstreamError):
    """The first step of a composed operation took effect and a later one did not.

    ``progress`` is what an Idempotency-Key keeps, so that a retry resumes where this stopped.
    """

    code = "partial_failure"

    def __init__(self, message: str, *, progress: Any, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.progress = progress


class UpstreamUnavailable(GatewayError):
    status, code = 503, "upstream_unavailable"


class UpstreamTimeout(GatewayError):
    status, code = 504, "upstream_timeout"


class ServerBusy(GatewayError):
    status, code = 503, "server_busy"


ERRORS_BY_CODE: dict[str, type[GatewayError]] = {
    cls.code: cls
    for cls in (
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        RequestTimeout,
        UnknownConnection,
        BadRequest,
        Conflict,
        InvalidState,
        PayloadTooLarge,
        UnsupportedMediaType,
        HeadersTooLarge,
        ValidationFailed,
        RateLimited,
        OperationNotSupported,
        UpstreamError,
        PartialFailure,
        UpstreamUnavailable,
        UpstreamTimeout,
        ServerBusy,
    )
}
