"""Reading a client's request: its id, its key, its connection, its query and its body.

Everything here works on the raw ASGI scope, and every bad value becomes a canonical error.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, ValidationError

from gateway import models
from gateway.asgi import Receive, Scope, read_body
from gateway.config import Connection, Tenant
from gateway.engine import Call, Handling
from gateway.errors import UnknownConnection, UnsupportedMediaType, ValidationFailed
from gateway.mapping.canonical import REQUEST_MODELS as BODY_MODELS
from gateway.mapping.canonical import field_text, parse_field

HANDLINGS: frozenset[str] = frozenset(Handling.__args__)  # type: ignore[attr-defined]
MAX_LIMIT = 100
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts "²"
_STATUSES = frozenset(models.Status.__args__)  # type: ignore[attr-defined]


def request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is a valid one, else a new id unique to this process's life."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    return f"{_ID_PREFIX}{next(_ID_SEQUENCE):016x}"


# 16 random hex digits per process, then a counter: unique ids without reading urandom per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_SEQUENCE = itertools.count(1)


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    authorization = headers.get(b"authorization")
    if authorization:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    api_key = headers.get(b"x-api-key")
    return api_key.decode("latin-1").strip() if api_key else None


def wants_fresh(cache_control: bytes) -> bool:
    """A Cache-Control header asking for a fresh answer (``no-cache``): never one from the cache."""
    return b"no-cache" in cache_control.lower()


def pick_connection(tenant: Tenant, requested: bytes | None) -> Connection:
    name = header_text(requested) if requested else tenant.default_connection
    connection = tenant.connections.get(name) if name is not None else None
    if connection is None:
        known = ", ".join(sorted(tenant.connections)) or "none"
        said = (
            f"unknown connection '{name}'" if name is not None else "no X-Connection header and no default connection"
        )
        raise UnknownConnection(f"{said}; yours are: {known}")
    return connection


def header_text(value: bytes) -> str:
    """A header value as text for a message: UTF-8 where it is, escaped bytes where it is not."""
    return value.decode("utf-8", "backslashreplace")


def handling(headers: list[tuple[bytes, bytes]], connection: Connection) -> tuple[Handling, bool]:
    """Strict or lenient (RFC 7240 ``Prefer: handling=...``, else the connection's default), and whether asked.

    The first ``handling`` preference counts; one with another value is ignored, as RFC 7240 says.
    """
    for name, value in headers:
        if name != b"prefer":
            continue
        for preference in value.decode("latin-1").split(","):
            token, _, word = preference.split(";", 1)[0].partition("=")
            if token.strip().lower() == "handling":
                chosen = word.strip().strip('"').lower()
                if chosen in HANDLINGS:
                    return chosen, True  # type: ignore[return-value]
                break
    return ("lenient" if connection.lenient else "strict"), False


def query_pairs(scope: Scope) -> list[tuple[str, str]]:
    query = scope.get("query_string", b"")
    return parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else []


def normalised_query(pairs: list[tuple[str, str]]) -> str:
    """The query as part of a cache key: the same parameters in any order are one entry."""
    return urlencode(sorted(pairs)) if pairs else ""


def parse_call(operation: str, campaign_id: str | None, query: list[tuple[str, str]]) -> Call:
    """The engine call for a route and its query string; bad query values are a 422 naming each."""
    values = dict(query)
    details: list[dict[str, str]] = []
    call = Call(operation, id=campaign_id, include_vendor_data=values.get("include") == "vendor_data")
    if "include" in values and values["include"] != "vendor_data":
        details.append({"field": "include", "message": "the only value is vendor_data"})
    if "limit" in values:
        limit = values["limit"]
        if _DIGITS.fullmatch(limit) and 1 <= int(limit) <= MAX_LIMIT:
            call.limit = int(limit)
        else:
            details.append({"field": "limit", "message": f"an integer from 1 to {MAX_LIMIT}"})
    if values.get("cursor"):
        call.cursor = values["cursor"]
        if _DIGITS.fullmatch(call.cursor) and len(call.cursor) < 10:
            call.offset = int(call.cursor)
    if "status" in values:
        if values["status"] in _STATUSES:
            call.status = values["status"]
        else:
            details.append({"field": "status", "message": f"one of {', '.join(sorted(_STATUSES))}"})
    if details:
        raise ValidationFailed("invalid query parameters", details=details)
    return call


async def read_canonical_body(
    operation: str, headers: dict[bytes, bytes], receive: Receive
) -> tuple[dict[str, Any], bytes]:
    """The validated canonical body (as a plain dict) and its raw bytes."""
    require_json(headers)
    raw = await read_body(receive)
    return validate_body(operation, raw), raw


def validate_body(operation: str, raw: bytes) -> dict[str, Any]:
    """The canonical body of ``operation`` as a plain dict; a 422 naming each problem (and the field meant)."""
    model = BODY_MODELS[operation]
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        raise ValidationFailed("the request body is not valid", details=validation_details(exc, model)) from exc
    return parsed.model_dump(mode="json", exclude_none=True)


def require_json(headers: dict[bytes, bytes]) -> None:
    """415 unless the request says its body is JSON."""
    content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if content_type != b"application/json":
        raise UnsupportedMediaType("send the body as application/json")


def validation_details(error: ValidationError, model: type[BaseModel]) -> list[dict[str, str]]:
    details = []
    for item in error.errors(include_url=False, include_input=False):
        field = field_text(tuple(item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            hint = (parse_field(field, model, indexes=True)[1] or "").partition("; ")[2]
            message = f"unknown field; {hint}" if hint else "unknown field"
        if item["type"] == "json_invalid":
            reason = (item.get("ctx") or {}).get("error")
            message = f"the body is not valid JSON ({reason})" if reason else "the body is not valid JSON"
        details.append({"field": field or "body", "message": message})
    return details
