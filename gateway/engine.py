"""Runs one canonical operation against one connection: translate, send, translate back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.config import Connection
from gateway.errors import (
    GatewayError,
    NotFound,
    OperationNotSupported,
    UpstreamError,
    ValidationFailed,
)
from gateway.mapping import CompiledOperation, Page, UpstreamRequest
from gateway.mapping.compiler import MalformedResponse
from gateway.mapping.expressions import TranslationError
from gateway.upstream import Upstream


@dataclass
class Call:
    """One canonical request, as the engine needs it."""

    operation: str
    id: str | None = None
    body: dict[str, Any] | None = None
    offset: int = 0
    limit: int = 20
    cursor: str | None = None
    status: str | None = None
    include_vendor_data: bool = False
    idempotency_key: bool = False  # a create may be retried only when it carries one


def prepare(connection: Connection, call: Call) -> tuple[CompiledOperation, dict[str, Any]]:
    """The vendor's operation for ``call`` and the context its map reads, after the checks that need no vendor."""
    vendor = connection.vendor
    operation = connection.map.operations.get(call.operation)
    if operation is None:
        raise OperationNotSupported(f"{vendor} does not offer the operation {call.operation}", vendor=vendor)
    if call.id is not None and connection.map.id_pattern and not connection.map.id_pattern.fullmatch(call.id):
        raise NotFound(f"campaign {call.id} not found at {connection.name}", vendor=vendor)
    if call.cursor is not None and not operation.takes_cursor and call.cursor != str(call.offset):
        raise ValidationFailed("invalid cursor", details=[{"field": "cursor", "message": "not a cursor this API gave"}])
    if call.body is not None:
        _check_fields(operation, call.body, vendor)
    context = {
        "now": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "body": call.body,
        "id": call.id,
        "params": connection.params,
        "page": {
            "offset": call.offset,
            "limit": call.limit,
            "number": call.offset // call.limit + 1,
            "cursor": call.cursor,
        },
        "filter": {"status": call.status},
    }
    return operation, context


async def run(connection: Connection, upstream: Upstream, call: Call) -> Any:
    """The canonical answer of ``call`` (a dict, a list page, or None for delete)."""
    operation, context = prepare(connection, call)
    if operation.fan_out is not None:
        return await _fan_out(operation, upstream, context, call)
    result = await _exchange(operation, upstream, context, call)
    if operation.refetch and isinstance(result, dict):
        refetch = Call("get", id=result["id"], include_vendor_data=call.include_vendor_data)
        return await run(connection, upstream, refetch)
    return finish(connection, operation.kind, result, call, filtered_upstream=operation.filters_status)


def vendor_request(operation: CompiledOperation, context: dict[str, Any], vendor: str) -> UpstreamRequest:
    """The vendor request a canonical one becomes; a value the vendor cannot take is a 422 naming it."""
    try:
        request = operation.build_request(context)
    except TranslationError as exc:
        field_name = exc.field.removeprefix("body.").removeprefix("item.")
        raise ValidationFailed(
            f"{vendor} cannot take this request",
            vendor=vendor,
            details=[{"field": field_name, "message": exc.message}],
        ) from exc
    body = context["body"]
    if request.json is not None and body and body.get("vendor_options"):
        request.json.update(_deep_merge(request.json, body["vendor_options"]))
    return request


def translate_answer(
    operation: CompiledOperation, answer: Any, context: dict[str, Any], include: bool, vendor: str, status: int
) -> Any:
    """The canonical form of a vendor's answer; one the map cannot read is a 502 naming the status."""
    try:
        return operation.parse_response(answer, context, include)
    except MalformedResponse as exc:
        raise UpstreamError(
            f"{vendor} answered in a shape the map cannot read: {exc}", vendor=vendor, upstream_status=status
        ) from exc


async def _exchange(operation: CompiledOperation, upstream: Upstream, context: dict[str, Any], call: Call) -> Any:
    """One upstream round trip: build the vendor request, send it, translate the answer."""
    vendor = upstream.connection.vendor
    retry = operation.idempotent or call.idempotency_key
    status, answer = await upstream.send(vendor_request(operation, context, vendor), retry=retry)
    return translate_answer(operation, answer, context, call.include_vendor_data, vendor, status)


async def _fan_out(operation: CompiledOperation, upstream: Upstream, context: dict[str, Any], call: Call) -> Any:
    """One upstream call per element (vendors that add one recipient at a time), in order.

    Partial success is reported per element; when every element fails, the first error is the answer.
    """
    items = (operation.fan_out(context) if operation.fan_out else None) or []
    results: list[Any] = []
    errors: list[dict[str, Any]] = []
    first_error: GatewayError | None = None
    for index, item in enumerate(items):
        try:
            results.append(await _exchange(operation, upstream, {**context, "item": item}, call))
        except GatewayError as error:
            first_error = first_error or error
            errors.append({"index": index, "code": error.code, "message": error.message})
    if first_error is not None and not results:
        raise first_error
    answer: dict[str, Any] = {
        "accepted": len(results),
        "rejected": len(errors),
        "errors": errors or None,
    }
    if call.include_vendor_data:
        answer["vendor_data"] = {"results": results}
    return finish(upstream.connection, operation.kind, answer, call, filtered_upstream=False)


def finish(connection: Connection, kind: str, result: Any, call: Call, *, filtered_upstream: bool) -> Any:
    if kind == "campaign":
        return _campaign(connection, result)
    if kind == "campaign_page":
        items = [_campaign(connection, item) for item in result.items]
        if call.status and not filtered_upstream:
            items = [item for item in items if item["status"] == call.status]
        return Page(items, result.next_cursor)
    if kind == "recipients_added":
        submitted = len((call.body or {}).get("recipients") or [])
        return {"campaign_id": call.id, "submitted": submitted, "errors": None, **result}
    return result


def _campaign(connection: Connection, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": result["id"],
        "connection": connection.name,
        "vendor": connection.vendor,
        **result,
    }


_ABSENT = (None, [], {})


def _check_fields(operation: CompiledOperation, body: dict[str, Any], vendor: str) -> None:
    """Refuse what the vendor cannot carry and what it needs but the request lacks, naming each field."""
    details = [
        {"field": name, "message": f"{vendor} has no equivalent for this field"}
        for name, get in operation.unsupported
        if get(body) not in _ABSENT
    ]
    details += [
        {"field": name, "message": f"{vendor} requires this field"}
        for name, get in operation.required
        if get(body) in _ABSENT
    ]
    if details:
        raise ValidationFailed(f"{vendor} cannot take this request as it is", vendor=vendor, details=details)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
